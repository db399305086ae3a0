//! Interactions — slash commands and button presses — whichever way they come (the gateway
//! or the HTTP endpoint): what the customer asked, the engine's answer, and the response.
//! Here too the HTTP endpoint `POST /discord/interactions`: Ed25519 signatures, stale and
//! replayed requests, size limit, PING.

use crate::render::{self, Pressed, Say};
use crate::{Discord, DiscordError, Place, INTERACTIONS_PATH};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use ed25519_dalek::{Signature, VerifyingKey};
use kefu_core::conversation::Speaker;
use kefu_core::limit::{RefusalCause, RefusalCounts};
use kefu_core::{EngineError, Inbound, Locale, QuickReply};
use serde::{Deserialize, Serialize};
use serenity::builder::{
    CreateAllowedMentions, CreateInteractionResponse, CreateInteractionResponseMessage,
};
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The signature header Discord sends (hex Ed25519 signature).
pub const SIGNATURE_HEADER: &str = "x-signature-ed25519";
/// The timestamp header Discord sends (Unix seconds), signed with the body.
pub const TIMESTAMP_HEADER: &str = "x-signature-timestamp";
/// How far a request's timestamp may be from now, in seconds.
pub(crate) const WINDOW_SECS: i64 = 300;
/// How many recent signatures are remembered to refuse replays.
pub(crate) const REPLAY_CAPACITY: usize = 10_000;

/// Why interactions requests were refused, counted (for `/metrics`).
pub type Rejections = RefusalCounts<Cause>;

/// Why an interactions request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The body was over the size limit (413).
    TooLarge,
    /// The body was not an interaction (400).
    Malformed,
    /// No signature headers (401).
    SignatureMissing,
    /// Unreadable signature headers (401).
    SignatureMalformed,
    /// A timestamp more than 5 minutes from now (401).
    SignatureStale,
    /// A signature that does not match the application's public key (401).
    SignatureMismatch,
    /// A request seen before (401).
    Replayed,
    /// The store was unavailable or busy (503).
    Unavailable,
    /// A gateway message from a conversation over its message rate (dropped unread).
    RateLimitedConversation,
}

impl RefusalCause for Cause {
    const ALL: &'static [Cause] = &[
        Cause::TooLarge,
        Cause::Malformed,
        Cause::SignatureMissing,
        Cause::SignatureMalformed,
        Cause::SignatureStale,
        Cause::SignatureMismatch,
        Cause::Replayed,
        Cause::Unavailable,
        Cause::RateLimitedConversation,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Cause::TooLarge => "too_large",
            Cause::Malformed => "malformed",
            Cause::SignatureMissing => "signature_missing",
            Cause::SignatureMalformed => "signature_malformed",
            Cause::SignatureStale => "signature_stale",
            Cause::SignatureMismatch => "signature_mismatch",
            Cause::Replayed => "replayed",
            Cause::Unavailable => "unavailable",
            Cause::RateLimitedConversation => "rate_limited_conversation",
        }
    }
}

/// The application's public key from its hex form.
pub(crate) fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, DiscordError> {
    let bytes = hex::decode(hex_key.trim()).map_err(|_| {
        DiscordError::PublicKey("not hex; copy the developer portal's Public Key".into())
    })?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
        DiscordError::PublicKey("not 32 bytes (64 hex digits); copy the whole Public Key".into())
    })?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| DiscordError::PublicKey("not a valid Ed25519 public key".into()))
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureError {
    Missing,
    Malformed,
    Stale,
    Mismatch,
}

impl SignatureError {
    fn cause(self) -> Cause {
        match self {
            SignatureError::Missing => Cause::SignatureMissing,
            SignatureError::Malformed => Cause::SignatureMalformed,
            SignatureError::Stale => Cause::SignatureStale,
            SignatureError::Mismatch => Cause::SignatureMismatch,
        }
    }

    fn message(self) -> &'static str {
        match self {
            SignatureError::Missing => {
                "the X-Signature-Ed25519 and X-Signature-Timestamp headers are required"
            }
            SignatureError::Malformed => {
                "the signature headers are not a hex Ed25519 signature and a Unix timestamp"
            }
            SignatureError::Stale => "the timestamp is more than 5 minutes from now",
            SignatureError::Mismatch => "the signature does not match the application's public key",
        }
    }
}

/// Checks Discord's signature: Ed25519 (strict) over `timestamp + body`, the timestamp within
/// [`WINDOW_SECS`] of `now`. Returns the signature (for the replay check) and the timestamp.
pub(crate) fn verify(
    key: &VerifyingKey,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<([u8; 64], i64), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    if timestamp.is_empty()
        || timestamp.len() > 12
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(SignatureError::Malformed);
    }
    let at: i64 = timestamp.parse().map_err(|_| SignatureError::Malformed)?;
    let bytes: [u8; 64] = hex::decode(signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::Malformed)?;
    if (now - at).abs() > WINDOW_SECS {
        return Err(SignatureError::Stale);
    }
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    key.verify_strict(&signed, &Signature::from_bytes(&bytes))
        .map_err(|_| SignatureError::Mismatch)?;
    Ok((bytes, at))
}

/// The signatures of requests accepted lately, to refuse the same request twice: each kept
/// until its timestamp leaves the window, at most `capacity` (the oldest go first).
pub(crate) struct ReplayGuard {
    capacity: usize,
    inner: Mutex<Replays>,
}

#[derive(Default)]
struct Replays {
    seen: HashSet<[u8; 64]>,
    /// In the order seen: (signature, when it may be forgotten).
    order: VecDeque<([u8; 64], i64)>,
}

impl ReplayGuard {
    pub(crate) fn new(capacity: usize) -> Self {
        ReplayGuard {
            capacity: capacity.max(1),
            inner: Mutex::new(Replays::default()),
        }
    }

    /// Records `signature` (of a request stamped `at`); false when it was seen before.
    pub(crate) fn first_time(&self, signature: [u8; 64], at: i64, now: i64) -> bool {
        let mut replays = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Replays { seen, order } = &mut *replays;
        // Timestamps are not in order, so forget by sweeping the whole list once it is full,
        // and from the front otherwise.
        while order.front().is_some_and(|(_, until)| *until < now) {
            if let Some((old, _)) = order.pop_front() {
                seen.remove(&old);
            }
        }
        if seen.contains(&signature) {
            return false;
        }
        if order.len() >= self.capacity {
            order.retain(|(s, until)| {
                let keep = *until >= now;
                if !keep {
                    seen.remove(s);
                }
                keep
            });
        }
        while order.len() >= self.capacity {
            if let Some((old, _)) = order.pop_front() {
                seen.remove(&old);
                tracing::warn!("discord: the replay guard is full; forgetting the oldest request");
            }
        }
        seen.insert(signature);
        order.push_back((signature, at.max(now) + WINDOW_SECS));
        true
    }

    /// Forgets `signature` (its request was not processed, so it may come again).
    pub(crate) fn forget(&self, signature: &[u8; 64]) {
        let mut replays = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if replays.seen.remove(signature) {
            replays.order.retain(|(s, _)| s != signature);
        }
    }
}

/// An interaction, whichever way it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interaction {
    /// The interaction's id.
    pub(crate) id: u64,
    /// The channel it was made in.
    pub(crate) channel: u64,
    /// Whether it was made somewhere other than the bot's DM (a server, a group DM).
    pub(crate) group: bool,
    /// Who made it.
    pub(crate) user: u64,
    /// The customer's Discord locale.
    pub(crate) locale: Option<Locale>,
    /// What they did.
    pub(crate) action: Action,
}

/// What the customer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// A slash command and its one option's value.
    Command {
        name: String,
        option: Option<String>,
    },
    /// A button press, with the content of the message the button was on.
    Button { custom_id: String, message: String },
}

/// The answer to an interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) text: String,
    pub(crate) buttons: Vec<QuickReply>,
    /// Only the customer sees it (answers in a server's channel).
    pub(crate) ephemeral: bool,
}

impl Interaction {
    fn place(&self) -> Place {
        if self.group {
            Place::Guild {
                channel: self.channel,
                user: self.user,
            }
        } else {
            Place::Direct {
                channel: self.channel,
            }
        }
    }
}

/// The engine text of a slash command (see `docs/discord.md`): `/ask` the question, `/human`
/// the engine's command, `/order` the bare number (which starts the order flows).
pub(crate) fn command_text(name: &str, option: Option<&str>) -> String {
    let option = option.map(str::trim).unwrap_or_default();
    match name {
        "human" => "/human".to_string(),
        "ask" | "order" => option.to_string(),
        _ => "/help".to_string(),
    }
}

impl Discord {
    /// Answers an interaction through the engine: the replies to it, or those already given
    /// when Discord delivers it again.
    pub(crate) async fn answer(&self, interaction: &Interaction) -> Result<Answer, EngineError> {
        let place = interaction.place();
        let key = place.key();
        let say = |what: Say| Answer {
            text: what.text(interaction.locale).to_string(),
            buttons: Vec::new(),
            ephemeral: interaction.group,
        };
        let text = match &interaction.action {
            Action::Command { name, option } => command_text(name, option.as_deref()),
            Action::Button { custom_id, message } => match render::parse_custom_id(custom_id) {
                Some(Pressed::Payload(payload)) => payload,
                Some(Pressed::Index(n)) => match self.resolve(&key, n, message).await? {
                    Some(payload) => payload,
                    None => return Ok(say(Say::ButtonExpired)),
                },
                None => return Ok(say(Say::ButtonExpired)),
            },
        };
        if text.trim().is_empty() {
            return Ok(say(Say::AskSomething));
        }
        let message_id = format!("i:{}", interaction.id);
        let mut inbound = Inbound::new(
            key.clone(),
            interaction.user.to_string(),
            message_id.clone(),
            text,
        );
        if interaction.group {
            inbound = inbound.in_group();
        }
        inbound.locale = interaction.locale;
        let mut replies = match self.engine.handle(inbound).await {
            Ok(replies) => replies,
            Err(EngineError::EmptyMessage) => return Ok(say(Say::AskSomething)),
            Err(e) => return Err(e),
        };
        if replies.is_empty() {
            replies = self.engine.replies_to(&key, &message_id).await?;
        }
        if replies.is_empty() {
            return Ok(say(Say::Received));
        }
        let (text, buttons) = render::joined(&replies);
        Ok(Answer {
            text,
            buttons,
            ephemeral: interaction.group,
        })
    }

    /// The payload of quick reply `n` of the bot's latest message whose text the pressed
    /// message shows.
    async fn resolve(
        &self,
        key: &kefu_core::ConversationKey,
        n: usize,
        shown: &str,
    ) -> Result<Option<String>, EngineError> {
        let shown = shown.trim().trim_end_matches('…').trim();
        let lines = self.engine.transcript(key).await?;
        Ok(lines
            .iter()
            .rev()
            .filter(|l| l.speaker == Speaker::Bot && l.quick_replies.len() > n)
            .find(|l| {
                let text = l.text.trim();
                !text.is_empty()
                    && (shown.contains(text) || (!shown.is_empty() && text.contains(shown)))
            })
            .map(|l| l.quick_replies[n].payload.clone()))
    }

    /// The interaction response (type 4) carrying `answer`.
    pub(crate) fn response(&self, answer: &Answer) -> CreateInteractionResponse {
        let mut message = CreateInteractionResponseMessage::new()
            .content(answer.text.clone())
            .allowed_mentions(
                CreateAllowedMentions::new()
                    .empty_users()
                    .empty_roles()
                    .everyone(false),
            )
            .ephemeral(answer.ephemeral);
        if !answer.buttons.is_empty() {
            message = message.components(render::buttons(&answer.buttons, self.bot_user_id()));
        }
        CreateInteractionResponse::Message(message)
    }

    /// The routes: `POST /discord/interactions` when a public key is set, else none.
    pub fn router(self: &std::sync::Arc<Self>) -> Router {
        if self.verifying_key.is_none() {
            return Router::new();
        }
        // The body limit is checked in the handler (with a JSON answer); this layer only
        // stops axum's own smaller default from applying first.
        Router::new()
            .route(INTERACTIONS_PATH, post(receive))
            .layer(DefaultBodyLimit::max(
                self.settings.max_body_bytes.saturating_add(1),
            ))
            .with_state(self.clone())
    }

    fn refuse(&self, cause: Cause, status: StatusCode, message: String) -> Response {
        self.rejections.count(cause);
        tracing::info!(
            cause = cause.as_str(),
            "discord interaction refused: {message}"
        );
        (
            status,
            Json(ErrorBody {
                error: cause.as_str(),
                message,
            }),
        )
            .into_response()
    }
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn receive(
    State(discord): State<std::sync::Arc<Discord>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let limit = discord.settings.max_body_bytes;
    let too_large = |discord: &Discord| {
        discord.refuse(
            Cause::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {limit} bytes"),
        )
    };
    let body = match body {
        Ok(body) if body.len() <= limit => body,
        Ok(_) => return too_large(&discord),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return too_large(&discord)
        }
        Err(rejection) => {
            return discord.refuse(
                Cause::Malformed,
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {}", rejection.body_text()),
            )
        }
    };
    let Some(key) = &discord.verifying_key else {
        // Not routed without a key; refuse rather than answer unsigned requests.
        return discord.refuse(
            Cause::SignatureMismatch,
            StatusCode::UNAUTHORIZED,
            "no public key is configured".into(),
        );
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = unix_now();
    let (signature, at) = match verify(
        key,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        now,
    ) {
        Ok(verified) => verified,
        Err(e) => {
            return discord.refuse(
                e.cause(),
                StatusCode::UNAUTHORIZED,
                format!("invalid request signature: {}", e.message()),
            )
        }
    };
    if !discord.replays.first_time(signature, at, now) {
        return discord.refuse(
            Cause::Replayed,
            StatusCode::UNAUTHORIZED,
            "invalid request signature: this request was received before".into(),
        );
    }
    let raw: RawInteraction = match serde_json::from_slice(&body) {
        Ok(raw) => raw,
        Err(e) => {
            return discord.refuse(
                Cause::Malformed,
                StatusCode::BAD_REQUEST,
                format!("the body is not an interaction object ({e})"),
            )
        }
    };
    if raw.kind == 1 {
        return Json(serde_json::json!({ "type": 1 })).into_response();
    }
    let interaction = match raw.into_interaction() {
        Ok(interaction) => interaction,
        Err(problem) => {
            return discord.refuse(Cause::Malformed, StatusCode::BAD_REQUEST, problem);
        }
    };
    match discord.answer(&interaction).await {
        Ok(answer) => Json(discord.response(&answer)).into_response(),
        Err(error) => {
            // Nothing was processed: the same request may come again.
            discord.replays.forget(&signature);
            tracing::warn!(%error, "a Discord interaction could not be handled");
            let mut response = discord.refuse(
                Cause::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                "the bot cannot reach its store right now; nothing was processed".into(),
            );
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            response
        }
    }
}

/// A Discord id: a decimal string (or a number).
#[derive(Debug, Clone, Copy)]
struct Snowflake(u64);

impl<'de> Deserialize<'de> for Snowflake {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Number(u64),
        }
        match Either::deserialize(deserializer)? {
            Either::Number(n) => Ok(Snowflake(n)),
            Either::Text(s) => s
                .parse()
                .map(Snowflake)
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a snowflake id"))),
        }
    }
}

/// The parts of Discord's interaction object the adapter reads.
#[derive(Debug, Deserialize)]
struct RawInteraction {
    #[serde(rename = "type")]
    kind: u8,
    id: Option<Snowflake>,
    data: Option<RawData>,
    guild_id: Option<Snowflake>,
    channel_id: Option<Snowflake>,
    channel: Option<RawChannel>,
    member: Option<RawMember>,
    user: Option<RawUser>,
    locale: Option<String>,
    message: Option<RawMessage>,
    context: Option<u8>,
}

#[derive(Debug, Deserialize)]
struct RawData {
    name: Option<String>,
    #[serde(default)]
    options: Vec<RawOption>,
    custom_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawOption {
    value: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct RawChannel {
    id: Snowflake,
}

#[derive(Debug, Deserialize)]
struct RawMember {
    user: Option<RawUser>,
}

#[derive(Debug, Deserialize)]
struct RawUser {
    id: Snowflake,
}

#[derive(Debug, Deserialize)]
struct RawMessage {
    #[serde(default)]
    content: String,
}

impl RawInteraction {
    fn into_interaction(self) -> Result<Interaction, String> {
        let id = self.id.ok_or("the interaction has no \"id\"")?.0;
        let channel = self
            .channel_id
            .or(self.channel.map(|c| c.id))
            .ok_or("the interaction has no \"channel_id\"")?
            .0;
        let user = self
            .member
            .and_then(|m| m.user)
            .or(self.user)
            .ok_or("the interaction has no \"member.user\" or \"user\"")?
            .id
            .0;
        let data = self.data.ok_or("the interaction has no \"data\"")?;
        let action = match self.kind {
            2 => Action::Command {
                name: data.name.ok_or("the command has no \"data.name\"")?,
                option: data
                    .options
                    .into_iter()
                    .find_map(|o| o.value)
                    .map(|v| match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    }),
            },
            3 => Action::Button {
                custom_id: data
                    .custom_id
                    .ok_or("the component has no \"data.custom_id\"")?,
                message: self.message.map(|m| m.content).unwrap_or_default(),
            },
            other => {
                return Err(format!(
                    "interaction type {other} is not answered here (only 1 PING, 2 APPLICATION_COMMAND, 3 MESSAGE_COMPONENT)"
                ))
            }
        };
        Ok(Interaction {
            id,
            channel,
            group: self.guild_id.is_some() || self.context.is_some_and(|c| c != 1),
            user,
            locale: self.locale.as_deref().and_then(crate::locale),
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with the openssl CLI (`openssl genpkey -algorithm ed25519`, then `openssl pkeyutl
    /// -sign -rawin` over `1700000000{"type":1}`), not with this crate's Ed25519 library.
    const OPENSSL_PUBLIC_KEY: &str =
        "9ade9c28b7ddc0a9a4e3dc49a4b0430be09f3942ff4d33fd47de08b7e24ff9f4";
    const OPENSSL_SIGNATURE: &str = "f770b7d849fadf790393871a85b12be26518af6649bcc6071d9c37fea7bbb9bfca373fbee3a08e3dc036290f05980a60b24333a805f5b50156f27de24aa2ba0b";

    #[test]
    fn signatures_made_by_openssl_verify_and_tampering_does_not() {
        let key = parse_public_key(OPENSSL_PUBLIC_KEY).unwrap();
        let body = br#"{"type":1}"#;
        let check = |ts: Option<&str>, sig: Option<&str>, body: &[u8], now: i64| {
            verify(&key, ts, sig, body, now).map(|_| ())
        };
        let ts = Some("1700000000");
        let sig = Some(OPENSSL_SIGNATURE);
        assert_eq!(check(ts, sig, body, 1_700_000_000), Ok(()));
        assert_eq!(
            check(ts, sig, body, 1_700_000_300),
            Ok(()),
            "5 minutes is in time"
        );
        assert_eq!(
            check(ts, sig, body, 1_700_000_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check(ts, sig, body, 1_699_999_699),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check(ts, sig, br#"{"type":2}"#, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(Some("1700000001"), sig, body, 1_700_000_000),
            Err(SignatureError::Mismatch),
            "the timestamp is signed too"
        );
        let mut flipped = OPENSSL_SIGNATURE.to_string();
        flipped.replace_range(0..1, "e");
        assert_eq!(
            check(ts, Some(&flipped), body, 1_700_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(check(None, sig, body, 0), Err(SignatureError::Missing));
        assert_eq!(check(ts, None, body, 0), Err(SignatureError::Missing));
        for bad in ["", "zz", &OPENSSL_SIGNATURE[..126]] {
            assert_eq!(
                check(ts, Some(bad), body, 1_700_000_000),
                Err(SignatureError::Malformed)
            );
        }
        for bad in ["", "-5", "1e9", "17000000000000"] {
            assert_eq!(
                check(Some(bad), sig, body, 0),
                Err(SignatureError::Malformed)
            );
        }
        assert!(parse_public_key("abc").is_err());
        assert!(parse_public_key(&"00".repeat(31)).is_err());
    }

    #[test]
    fn the_replay_guard_refuses_repeats_forgets_old_ones_and_stays_bounded() {
        let guard = ReplayGuard::new(3);
        let sig = |n: u8| [n; 64];
        assert!(guard.first_time(sig(1), 1000, 1000));
        assert!(
            !guard.first_time(sig(1), 1000, 1010),
            "the same request again"
        );
        assert!(guard.first_time(sig(2), 1000, 1010));
        // After the window the first is forgotten (and would be stale anyway).
        assert!(guard.first_time(sig(1), 1400, 1400));
        guard.forget(&sig(1));
        assert!(
            guard.first_time(sig(1), 1400, 1400),
            "forgotten after a failure"
        );
        for n in 10..20 {
            assert!(guard.first_time(sig(n), 1400, 1400));
        }
        let inner = guard.inner.lock().unwrap();
        assert!(inner.order.len() <= 3 && inner.seen.len() == inner.order.len());
    }

    #[test]
    fn commands_map_to_engine_texts() {
        assert_eq!(command_text("human", None), "/human");
        assert_eq!(
            command_text("ask", Some("  where is my key ")),
            "where is my key"
        );
        assert_eq!(command_text("order", Some("DD123")), "DD123");
        assert_eq!(command_text("order", None), "");
        assert_eq!(command_text("unknown", None), "/help");
    }

    #[test]
    fn interactions_parse_from_discords_json() {
        let guild: RawInteraction = serde_json::from_str(
            r#"{"type":2,"id":"11","guild_id":"3","channel_id":"4","member":{"user":{"id":"5"}},
               "locale":"zh-CN","data":{"name":"order","options":[{"name":"number","type":3,"value":"DD1"}]}}"#,
        )
        .unwrap();
        let it = guild.into_interaction().unwrap();
        assert_eq!(
            it,
            Interaction {
                id: 11,
                channel: 4,
                group: true,
                user: 5,
                locale: Some(Locale::Zh),
                action: Action::Command {
                    name: "order".into(),
                    option: Some("DD1".into())
                },
            }
        );
        let dm: RawInteraction = serde_json::from_str(
            r#"{"type":3,"id":"12","channel":{"id":"6"},"user":{"id":"7"},"context":1,
               "data":{"custom_id":"p:1","component_type":2},"message":{"content":"Rate us"}}"#,
        )
        .unwrap();
        let it = dm.into_interaction().unwrap();
        assert!(!it.group);
        assert_eq!(it.place(), Place::Direct { channel: 6 });
        let group_dm: RawInteraction = serde_json::from_str(
            r#"{"type":2,"id":"13","channel_id":"6","user":{"id":"7"},"context":2,"data":{"name":"human"}}"#,
        )
        .unwrap();
        assert!(
            group_dm.into_interaction().unwrap().group,
            "not the bot's DM"
        );
        for bad in [
            r#"{"type":2,"channel_id":"6","user":{"id":"7"},"data":{"name":"x"}}"#,
            r#"{"type":2,"id":"1","user":{"id":"7"},"data":{"name":"x"}}"#,
            r#"{"type":2,"id":"1","channel_id":"6","data":{"name":"x"}}"#,
            r#"{"type":3,"id":"1","channel_id":"6","user":{"id":"7"},"data":{}}"#,
            r#"{"type":5,"id":"1","channel_id":"6","user":{"id":"7"},"data":{}}"#,
        ] {
            let raw: RawInteraction = serde_json::from_str(bad).unwrap();
            assert!(raw.into_interaction().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<RawInteraction>(r#"{"type":2,"id":"x"}"#).is_err());
    }
}
