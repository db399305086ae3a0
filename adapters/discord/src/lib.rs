//! kefu's Discord channel (see `docs/discord.md`).
//!
//! - The **gateway bot** ([`Discord::run_gateway`], a serenity [`Client`]) answers direct
//!   messages, and messages in servers' channels that mention the bot; their replies go
//!   through the durable outbox ([`kefu_core::Engine::handle_via_outbox`]) and out through
//!   [`Discord::channel`]. On READY it registers the slash commands `/ask`, `/human` and
//!   `/order`, and answers them — and presses of the buttons it renders for quick replies —
//!   in the interaction's response.
//! - The **HTTP interactions endpoint** ([`Discord::router`], `POST /discord/interactions`)
//!   answers the same interactions when the application's "Interactions Endpoint URL" points
//!   at kefu: Ed25519 signatures checked, stale and replayed requests refused.
//!
//! Conversations: a direct message channel is one conversation (its channel id, private); in
//! a server's channel every customer has their own (`"{channel_id}:{user_id}"`, not private,
//! so card keys are never shown there), answered in that channel with a mention.
//!
//! [`Client`]: serenity::Client

mod gateway;
mod interactions;
mod render;
mod send;
#[cfg(feature = "testing")]
pub mod testing;

pub use interactions::{Cause, Rejections};

use ed25519_dalek::VerifyingKey;
use kefu_core::{ConversationKey, Engine};
use serenity::http::{Http, HttpBuilder};
use serenity::model::id::ApplicationId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The channel name of Discord conversations ([`ConversationKey::channel`]).
pub const CHANNEL: &str = "discord";

/// The path of the HTTP interactions endpoint.
pub const INTERACTIONS_PATH: &str = "/discord/interactions";

/// How long a request to Discord's HTTP API may take before it counts as unavailable.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How the Discord channel is set up.
#[derive(Clone)]
pub struct DiscordSettings {
    /// The bot's token (a secret: never logged, hidden from `Debug`).
    pub token: String,
    /// The application's id (the developer portal's "Application ID").
    pub application_id: u64,
    /// The application's Ed25519 public key, hex; `Some` serves the interactions endpoint.
    pub public_key: Option<String>,
    /// Where Discord's HTTP API is (`http://127.0.0.1:PORT` for a local fake in tests); `None`
    /// for `https://discord.com`.
    pub api_url: Option<String>,
    /// Whether [`Discord::run_gateway`] connects the gateway bot.
    pub gateway: bool,
    /// The largest interactions request body accepted, in bytes (413 above it).
    pub max_body_bytes: usize,
}

impl std::fmt::Debug for DiscordSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordSettings")
            .field("token", &"<hidden>")
            .field("application_id", &self.application_id)
            .field("public_key", &self.public_key)
            .field("api_url", &self.api_url)
            .field("gateway", &self.gateway)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// What can go wrong setting up or running the Discord channel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscordError {
    /// A setting is missing or unusable.
    #[error("discord settings: {0}")]
    Settings(String),
    /// The public key is not 64 hex digits of a valid Ed25519 key.
    #[error("discord public_key: {0}")]
    PublicKey(String),
    /// The gateway connection failed for good (a refused token, disallowed intents, ...).
    #[error("discord gateway: {0}")]
    Gateway(String),
}

/// The Discord channel: the gateway bot, the interactions endpoint and the [`Channel`] the
/// outbox sends through.
///
/// [`Channel`]: kefu_core::Channel
pub struct Discord {
    engine: Arc<Engine>,
    settings: DiscordSettings,
    wake: Arc<tokio::sync::Notify>,
    http: Arc<Http>,
    /// The client that executes the channel's sends (serenity's requests), to read the
    /// response's headers.
    client: reqwest::Client,
    verifying_key: Option<VerifyingKey>,
    replays: interactions::ReplayGuard,
    /// The bot's user id once READY told it (0 before).
    bot_user: AtomicU64,
    rejections: Rejections,
    /// Gateway messages a minute per conversation ([`MESSAGES_PER_MINUTE`]): a flood past
    /// it is not read.
    per_conversation: kefu_core::limit::RateLimiter,
}

/// Gateway messages a minute one conversation may send, after a burst of 20.
pub const MESSAGES_PER_MINUTE: u32 = 30;

impl std::fmt::Debug for Discord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discord")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Discord {
    /// The channel for `engine`; `wake` is notified whenever a gateway message's replies were
    /// written to the outbox (give the same one to the outbox worker's `with_wake`).
    pub fn new(
        engine: Arc<Engine>,
        settings: DiscordSettings,
        wake: Arc<tokio::sync::Notify>,
    ) -> Result<Arc<Self>, DiscordError> {
        let token = bare_token(&settings.token);
        if token.is_empty() {
            return Err(DiscordError::Settings(
                "the bot token is empty; copy it from the developer portal's Bot page".into(),
            ));
        }
        if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(DiscordError::Settings(
                "the bot token has spaces or control characters; give the token alone".into(),
            ));
        }
        if settings.application_id == 0 {
            return Err(DiscordError::Settings(
                "application_id is 0; copy the Application ID from the developer portal".into(),
            ));
        }
        if let Some(url) = &settings.api_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(DiscordError::Settings(format!(
                    "api_url {url:?} is not an http(s) URL"
                )));
            }
        }
        let verifying_key = settings
            .public_key
            .as_deref()
            .map(interactions::parse_public_key)
            .transpose()?;
        let client = reqwest::Client::builder()
            // rustls, not the OpenSSL that serenity's gateway links (see Cargo.toml).
            .use_rustls_tls()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| DiscordError::Settings(format!("HTTP client: {e}")))?;
        let http = Arc::new(build_http(&settings, client.clone()));
        Ok(Arc::new(Discord {
            engine,
            wake,
            http,
            client,
            verifying_key,
            replays: interactions::ReplayGuard::new(interactions::REPLAY_CAPACITY),
            bot_user: AtomicU64::new(0),
            rejections: Rejections::default(),
            per_conversation: kefu_core::limit::RateLimiter::new(MESSAGES_PER_MINUTE, 20),
            settings,
        }))
    }

    /// The [`kefu_core::Channel`] named [`CHANNEL`] that sends messages to Discord
    /// conversations through the bot's HTTP API (register it with the outbox worker).
    pub fn channel(self: &Arc<Self>) -> Arc<dyn kefu_core::Channel> {
        self.clone()
    }

    /// Interactions requests refused so far, by cause (for `/metrics`).
    pub fn rejections(&self) -> &Rejections {
        &self.rejections
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &DiscordSettings {
        &self.settings
    }

    /// The bot's own user id: from READY, else the application id (the same for bots made
    /// in the developer portal).
    fn bot_user_id(&self) -> u64 {
        match self.bot_user.load(Ordering::Relaxed) {
            0 => self.settings.application_id,
            id => id,
        }
    }
}

/// serenity's HTTP client for `settings`. Its own rate limiter is off: it would sleep through
/// a 429 (and it ignores the proxy); the outbox reschedules by the platform's retry-after
/// instead, and interaction answers are one request each.
fn build_http(settings: &DiscordSettings, client: reqwest::Client) -> Http {
    let mut builder = HttpBuilder::new(bare_token(&settings.token))
        .client(client)
        .application_id(ApplicationId::new(settings.application_id))
        .ratelimiter_disabled(true);
    if let Some(url) = &settings.api_url {
        builder = builder.proxy(url.trim_end_matches('/'));
    }
    builder.build()
}

/// The token without surrounding space or a pasted "Bot " prefix (serenity adds it).
fn bare_token(token: &str) -> &str {
    let token = token.trim();
    token.strip_prefix("Bot ").unwrap_or(token).trim()
}

/// Where a conversation is on Discord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A direct message channel.
    Direct {
        /// The DM channel's id.
        channel: u64,
    },
    /// One customer in a server's channel.
    Guild {
        /// The channel's id.
        channel: u64,
        /// The customer's user id.
        user: u64,
    },
}

impl Place {
    /// The conversation's key.
    pub(crate) fn key(self) -> ConversationKey {
        ConversationKey::new(CHANNEL, self.id())
    }

    /// The conversation's id.
    pub(crate) fn id(self) -> String {
        match self {
            Place::Direct { channel } => channel.to_string(),
            Place::Guild { channel, user } => format!("{channel}:{user}"),
        }
    }

    /// The place of a conversation id; `None` when it is not one of Discord's.
    pub(crate) fn parse(id: &str) -> Option<Place> {
        let snowflake = |s: &str| {
            s.parse::<u64>()
                .ok()
                .filter(|&n| n != 0 && !s.starts_with('+'))
        };
        match id.split_once(':') {
            None => Some(Place::Direct {
                channel: snowflake(id)?,
            }),
            Some((channel, user)) => Some(Place::Guild {
                channel: snowflake(channel)?,
                user: snowflake(user)?,
            }),
        }
    }

    /// Whether the conversation is private (card keys may be shown).
    pub(crate) fn private(self) -> bool {
        matches!(self, Place::Direct { .. })
    }

    /// The channel messages go to.
    pub(crate) fn channel(self) -> u64 {
        match self {
            Place::Direct { channel } | Place::Guild { channel, .. } => channel,
        }
    }
}

/// The engine's language for a Discord locale ([`kefu_core::Locale::from_platform_tag`]).
pub(crate) fn locale(tag: &str) -> Option<kefu_core::Locale> {
    kefu_core::Locale::from_platform_tag(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_round_trip_and_refuse_what_is_not_discord() {
        for place in [
            Place::Direct { channel: 42 },
            Place::Guild {
                channel: 7,
                user: 9,
            },
        ] {
            assert_eq!(Place::parse(&place.id()), Some(place));
        }
        assert_eq!(
            Place::Guild {
                channel: 7,
                user: 9
            }
            .id(),
            "7:9"
        );
        for bad in ["", "abc", "1:", ":2", "1:2:3", "0", "-1", "+5", "1:x"] {
            assert_eq!(Place::parse(bad), None, "{bad:?}");
        }
        assert!(Place::Direct { channel: 1 }.private());
        assert!(!Place::Guild {
            channel: 1,
            user: 2
        }
        .private());
    }

    #[test]
    fn locales_map_to_the_engines_languages() {
        assert_eq!(locale("zh-CN"), Some(kefu_core::Locale::Zh));
        assert_eq!(locale("zh-TW"), Some(kefu_core::Locale::Zh));
        assert_eq!(locale("en-US"), Some(kefu_core::Locale::En));
        assert_eq!(locale("en-GB"), Some(kefu_core::Locale::En));
        assert_eq!(locale("fr"), Some(kefu_core::Locale::En));
        assert_eq!(locale(""), None);
    }

    #[test]
    fn settings_debug_hides_the_token() {
        let settings = DiscordSettings {
            token: "very-secret-token".into(),
            application_id: 1,
            public_key: None,
            api_url: None,
            gateway: true,
            max_body_bytes: 1,
        };
        assert!(!format!("{settings:?}").contains("very-secret"));
    }
}
