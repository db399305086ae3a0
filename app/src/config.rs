//! The bot's configuration file (`kefu.yaml`): optional, every key has a default.
//!
//! ```yaml
//! variables:                 # filled into answers as {name}
//!   shop_name: 星辰卡铺
//!   support_hours: "9:00–23:00"
//! skill_groups: [general, orders, payments, refunds, accounts, risk, complaints, wholesale]
//! thresholds: { answer: 0.5, suggest: 0.25 }
//! knowledge: { dir: ./faq }  # omit to use the default knowledge base built into kefu
//! entities:                  # regexes replacing the built-in ones of the same kind
//!   order_no: '(KM\d{10})'
//! storage:                   # where conversations, the queue, tickets and orders live
//!   url: sqlite://data/kefu.db                      # the default: a file, created on first start
//!   # url: postgres://kefu@db.internal:5432/kefu    # many kefu processes sharing one database
//!   # schema: kefu                                  # PostgreSQL only: the schema to use
//! orders:
//!   backend: auto            # auto | tables | http | none
//!   verification_minutes: 30
//!   max_failed_proofs: 5
//!   http:                    # backend: http — the shop's own order API (docs/orders-api.md)
//!     base_url: https://shop.example.com/kefu   # https; http only on this machine (below)
//!     secret_env: KEFU_ORDERS_SECRET   # or `secret: ...` in the file, exactly one of the two
//!     timeout_ms: 3000                 # one attempt
//!     deadline_ms: 5000                # one call with all its retries
//!     retries: 2
//!     allow_loopback_http: false       # true: accept http://127.0.0.1 / ::1 / localhost
//!   link_chat_identity: true # a proof by secret links the chat account to the order
//! self_service:              # what a proven buyer may do without a person
//!   key_views_per_day: 5            # card-key views (first + resends) per order a day; 0: no limit
//!   cancel_unpaid: true             # cancel unpaid orders (else a ticket asks a person to)
//!   refund_auto_approve_cents: 5000 # refund undelivered orders up to ¥50 at once; 0: never
//!   refund_skill_group: refunds     # the team that reviews the other refunds
//!   ticket_sla_hours: 24            # when a ticket the bot opens is due
//!   ticket_due_hours: { card_key: 2, delivery: 2 }   # by ticket kind, instead of the above
//!   utc_offset_minutes: 480         # the shop's time zone for times shown (UTC+8)
//! handoff:
//!   support_hours: "09:00-24:00"  # or "mon-fri 09:00-18:00" (self_service.utc_offset_minutes);
//!                                 # outside them a hand-off opens a ticket; omit: always staffed
//!   answer_while_waiting: true    # a customer waiting for a person still gets FAQ answers
//!   survey_on_close: true         # closing a conversation asks the customer for a 1-5 rating
//!   pickup_target_seconds: 30     # waiting longer escalates (priority up, flagged in the console)
//!   groups:                       # a skill group's own hours and target
//!     refunds: { support_hours: "mon-fri 09:00-18:00", pickup_target_seconds: 120 }
//!   vip:                          # the VIP lane: at least high priority, served first, marked
//!     customers: ["telegram:12345", "alice"]   # user or channel:user
//!     min_paid_orders: 5          # repeat buyers (orders in the order tables)
//!   auto_assign: false            # give waiting conversations to the least-loaded available agent
//! limits:
//!   max_message_chars: 4000  # longer messages get "please send it shorter" and are not read
//!   turn_lock_wait_ms: 30000 # a message waits this long for its conversation's lock
//! server:                    # kefu serve
//!   listen: 127.0.0.1:8080   # 0.0.0.0:8080 to listen on every interface
//!   max_body_bytes: 65536    # larger requests get 413
//! channels:
//!   web:                     # the customers' web chat at /chat (kefu serve)
//!     enabled: true
//!     per_ip_per_minute: 600            # pages, messages and streams from one address; 0: no limit
//!     per_conversation_per_minute: 20   # messages in one conversation; 0: no limit
//!     secure_cookie: false              # true when served over HTTPS (behind a proxy)
//!   webhook:                 # the generic signed webhook (docs/webhook.md); off when absent
//!     secret_env: KEFU_WEBHOOK_SECRET   # or `secret: ...` in the file, exactly one of the two
//!     callback_url: https://shop.example.com/kefu/callback  # later messages; https
//!     per_ip_per_minute: 1200           # 0: no limit
//!     per_conversation_per_minute: 30   # 0: no limit
//!   telegram:                # the Telegram bot (docs/telegram.md); off when absent
//!     token_env: KEFU_TELEGRAM_TOKEN    # the variable holding the token from @BotFather
//!     mode: polling                     # or webhook (Telegram posts to /telegram/webhook)
//!     webhook_url: https://bot.example.com/telegram/webhook   # webhook mode
//!     webhook_secret_env: KEFU_TELEGRAM_WEBHOOK_SECRET         # webhook mode
//!   discord:                 # the Discord bot (docs/discord.md); off when absent
//!     token_env: KEFU_DISCORD_TOKEN     # the variable holding the bot token
//!     application_id: 123456789012345678
//!     public_key: 0f1e…                 # hex; serves /discord/interactions when set
//!     gateway: true                     # DMs, mentions and slash commands over the gateway
//!   wechat:                  # a WeChat Official Account (docs/wechat.md); off when absent
//!     app_id: wx0123456789abcdef
//!     app_secret_env: KEFU_WECHAT_APP_SECRET
//!     token_env: KEFU_WECHAT_TOKEN
//!     encoding_aes_key_env: KEFU_WECHAT_AES_KEY   # compatible and safe mode
//!   wecom:                   # a WeCom application (docs/wechat.md); off when absent
//!     corp_id: ww0123456789abcdef
//!     agent_id: 1000002
//!     corp_secret_env: KEFU_WECOM_SECRET
//!     token_env: KEFU_WECOM_TOKEN
//!     encoding_aes_key_env: KEFU_WECOM_AES_KEY
//! console:                   # the agents' console at /console (kefu serve; docs/console.md)
//!   enabled: true
//!   canned_replies: canned.yaml   # agents' canned replies; omit: the built-in ones
//!   session_hours: 12        # a log-in lasts this long
//!   secure_cookie: false     # true when served over HTTPS (behind a proxy)
//!   failed_logins_per_account: 5   # then that account's log-ins wait 15 minutes
//!   failed_logins_per_address: 20  # the same for one address
//! ```
//!
//! The environment variable `KEFU_DATABASE_URL` overrides `storage.url`.

use anyhow::Context;
use kefu_core::entities::{EntityExtractor, DEFAULT_PATTERNS};
use kefu_core::{EngineConfig, Thresholds};
use kefu_knowledge::faq::{ValidationOptions, DEFAULT_SKILL_GROUPS};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The name of the configuration file looked for in the working directory.
pub const DEFAULT_FILE: &str = "kefu.yaml";

/// Everything in `kefu.yaml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Template variables filled into answers.
    pub variables: BTreeMap<String, String>,
    /// The human teams hand-offs go to.
    pub skill_groups: BTreeSet<String>,
    /// The answer / suggest / decline bands.
    pub thresholds: Thresholds,
    /// Where the FAQ files are.
    pub knowledge: KnowledgeConfig,
    /// Entity patterns by kind (`order_no`, `ticket_no`, `email`, `phone`, or new kinds),
    /// replacing the built-in pattern of the same kind.
    pub entities: BTreeMap<String, String>,
    /// Where durable state lives.
    pub storage: StorageConfig,
    /// Where the bot looks orders up, and how long a customer's proof of owning one holds.
    pub orders: OrdersConfig,
    /// What a proven buyer may do without a person, and the tickets the bot opens.
    pub self_service: SelfServiceConfig,
    /// Limits that protect the service: message length, lock waits.
    pub limits: LimitsConfig,
    /// When people answer, and what the bot does while a customer waits for one.
    pub handoff: HandoffConfig,
    /// Where `kefu serve` listens, and its request limits.
    pub server: ServerConfig,
    /// The channels customers reach the bot through (besides `kefu chat`).
    pub channels: ChannelsConfig,
    /// The agents' console served by `kefu serve`.
    pub console: ConsoleConfig,
}

/// The `console` section: the agents' console at `/console`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Whether `kefu serve` serves `/console`.
    pub enabled: bool,
    /// The canned replies file (YAML); the built-in ones when absent.
    pub canned_replies: Option<PathBuf>,
    /// How long a log-in lasts, in hours.
    pub session_hours: u64,
    /// Marks the session cookie `Secure`: set it when agents reach the console over HTTPS.
    pub secure_cookie: bool,
    /// Failed log-ins to one account within 15 minutes before its log-ins are refused for
    /// the rest of them.
    pub failed_logins_per_account: usize,
    /// The same for one address.
    pub failed_logins_per_address: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            canned_replies: None,
            session_hours: 12,
            secure_cookie: false,
            failed_logins_per_account: 5,
            failed_logins_per_address: 20,
        }
    }
}

/// The `server` section: `kefu serve`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The address and port to listen on.
    pub listen: String,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".to_string(),
            max_body_bytes: 64 * 1024,
        }
    }
}

/// The `channels` section.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelsConfig {
    /// The customers' web chat at `/chat`.
    pub web: WebChatConfig,
    /// The generic signed webhook (docs/webhook.md); off when absent.
    pub webhook: Option<WebhookConfig>,
    /// The Telegram bot (docs/telegram.md); off when absent.
    pub telegram: Option<TelegramConfig>,
    /// The Discord bot (docs/discord.md); off when absent.
    pub discord: Option<DiscordConfig>,
    /// A WeChat Official Account (公众号; docs/wechat.md); off when absent.
    pub wechat: Option<WechatConfig>,
    /// A WeCom (企业微信) application (docs/wechat.md); off when absent.
    pub wecom: Option<WecomConfig>,
}

/// The `channels.wechat` section: a WeChat Official Account's server configuration.
/// Secrets come from environment variables only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WechatConfig {
    /// The account's AppID (开发者ID).
    pub app_id: String,
    /// The environment variable holding the AppSecret (开发者密码), for the customer-service
    /// message API.
    pub app_secret_env: String,
    /// The environment variable holding the Token entered in the server configuration.
    pub token_env: String,
    /// The environment variable holding the EncodingAESKey (43 characters), for compatible
    /// and safe mode; omit it in plaintext mode.
    pub encoding_aes_key_env: Option<String>,
    /// Another WeChat API address (tests, proxies); omit for api.weixin.qq.com.
    pub api_url: Option<String>,
    /// How long a turn may take before the message is answered later through the
    /// customer-service API instead of in WeChat's 5-second reply (ms, below 5000).
    pub reply_budget_ms: u64,
}

impl Default for WechatConfig {
    fn default() -> Self {
        WechatConfig {
            app_id: String::new(),
            app_secret_env: "KEFU_WECHAT_APP_SECRET".to_string(),
            token_env: "KEFU_WECHAT_TOKEN".to_string(),
            encoding_aes_key_env: None,
            api_url: None,
            reply_budget_ms: 4000,
        }
    }
}

/// The `channels.wecom` section: a WeCom application's API reception settings. Secrets come
/// from environment variables only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WecomConfig {
    /// The company's CorpID (企业ID).
    pub corp_id: String,
    /// The application's AgentId.
    pub agent_id: i64,
    /// The environment variable holding the application's Secret.
    pub corp_secret_env: String,
    /// The environment variable holding the Token of the API reception settings.
    pub token_env: String,
    /// The environment variable holding the EncodingAESKey (43 characters).
    pub encoding_aes_key_env: String,
    /// Another WeCom API address (tests, proxies); omit for qyapi.weixin.qq.com.
    pub api_url: Option<String>,
    /// As for `channels.wechat` (ms, below 5000).
    pub reply_budget_ms: u64,
}

impl Default for WecomConfig {
    fn default() -> Self {
        WecomConfig {
            corp_id: String::new(),
            agent_id: 0,
            corp_secret_env: "KEFU_WECOM_SECRET".to_string(),
            token_env: "KEFU_WECOM_TOKEN".to_string(),
            encoding_aes_key_env: "KEFU_WECOM_AES_KEY".to_string(),
            api_url: None,
            reply_budget_ms: 4000,
        }
    }
}

fn check_budget(ms: u64, key: &str, at: &dyn Fn(&str) -> String) -> anyhow::Result<()> {
    if !(1..5000).contains(&ms) {
        anyhow::bail!(
            "{}: {key} is {ms}; WeChat waits 5 seconds for a reply, so give 1–4999 ms (4000 leaves room for the network)",
            at("reply_budget_ms")
        );
    }
    Ok(())
}

impl WechatConfig {
    /// The token, the AppSecret and the EncodingAESKey, read from the environment; errors
    /// name `path`.
    pub fn secrets(&self, path: &Path) -> anyhow::Result<(String, String, Option<String>)> {
        let at = |_: &str| path.display().to_string();
        let token = env_secret(&self.token_env, "channels.wechat.token_env", &at)?;
        let secret = env_secret(&self.app_secret_env, "channels.wechat.app_secret_env", &at)?;
        let key = match &self.encoding_aes_key_env {
            Some(name) => Some(env_secret(
                name,
                "channels.wechat.encoding_aes_key_env",
                &at,
            )?),
            None => None,
        };
        Ok((token, secret, key))
    }

    fn check(&self, at: &dyn Fn(&str) -> String) -> anyhow::Result<()> {
        if self.app_id.trim().is_empty() {
            anyhow::bail!(
                "{}: channels.wechat needs app_id (the account's AppID, 开发者ID)",
                at("app_id")
            );
        }
        check_budget(self.reply_budget_ms, "channels.wechat.reply_budget_ms", at)
    }
}

impl WecomConfig {
    /// The token, the application's Secret and the EncodingAESKey, read from the
    /// environment; errors name `path`.
    pub fn secrets(&self, path: &Path) -> anyhow::Result<(String, String, String)> {
        let at = |_: &str| path.display().to_string();
        Ok((
            env_secret(&self.token_env, "channels.wecom.token_env", &at)?,
            env_secret(&self.corp_secret_env, "channels.wecom.corp_secret_env", &at)?,
            env_secret(
                &self.encoding_aes_key_env,
                "channels.wecom.encoding_aes_key_env",
                &at,
            )?,
        ))
    }

    fn check(&self, at: &dyn Fn(&str) -> String) -> anyhow::Result<()> {
        if self.corp_id.trim().is_empty() {
            anyhow::bail!(
                "{}: channels.wecom needs corp_id (the company's CorpID, 企业ID)",
                at("corp_id")
            );
        }
        if self.agent_id == 0 {
            anyhow::bail!(
                "{}: channels.wecom needs agent_id (the application's AgentId)",
                at("agent_id")
            );
        }
        check_budget(self.reply_budget_ms, "channels.wecom.reply_budget_ms", at)
    }
}

/// How Telegram delivers updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TelegramMode {
    /// `getUpdates` long polling: nothing to expose to the internet.
    #[default]
    Polling,
    /// Telegram posts to `POST /telegram/webhook` on this server.
    Webhook,
}

/// The `channels.telegram` section. Secrets come from environment variables only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    /// The environment variable holding the bot token from @BotFather.
    pub token_env: String,
    /// `polling` (default) or `webhook`.
    pub mode: TelegramMode,
    /// Webhook mode: the public HTTPS address of `/telegram/webhook`, registered with
    /// Telegram at start; omit when it is registered some other way.
    pub webhook_url: Option<String>,
    /// Webhook mode: the environment variable holding the secret Telegram sends with every
    /// update (1–256 of `A-Z a-z 0-9 _ -`).
    pub webhook_secret_env: Option<String>,
    /// A Bot API server other than Telegram's (a local one); omit for api.telegram.org.
    pub api_url: Option<String>,
    /// Messages a minute one conversation may send (after a burst of 20); past it messages
    /// are not read and the customer is told once a minute to slow down (0: no limit).
    pub per_conversation_per_minute: u32,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            token_env: "KEFU_TELEGRAM_TOKEN".to_string(),
            mode: TelegramMode::Polling,
            webhook_url: None,
            webhook_secret_env: None,
            api_url: None,
            per_conversation_per_minute: 30,
        }
    }
}

/// The value of environment variable `name`, named in the error when unset.
fn env_secret(name: &str, key: &str, at: &dyn Fn(&str) -> String) -> anyhow::Result<String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
        _ => anyhow::bail!(
            "{}: {key} names the environment variable {name}, which is not set (or empty); \
             export it before `kefu serve`",
            at(key.rsplit('.').next().unwrap_or(key))
        ),
    }
}

impl TelegramConfig {
    /// The bot token and, in webhook mode, the webhook's secret, read from the environment;
    /// errors name `path`, the configuration file.
    pub fn secrets(&self, path: &Path) -> anyhow::Result<(String, Option<String>)> {
        let at = |_: &str| path.display().to_string();
        let token = env_secret(&self.token_env, "channels.telegram.token_env", &at)?;
        let secret = match (self.mode, &self.webhook_secret_env) {
            (TelegramMode::Webhook, Some(name)) => {
                let secret = env_secret(name, "channels.telegram.webhook_secret_env", &at)?;
                let valid = (1..=256).contains(&secret.len())
                    && secret
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !valid {
                    anyhow::bail!(
                        "{}: the Telegram webhook secret in {name} must be 1–256 characters of \
                         A-Z, a-z, 0-9, _ and -",
                        path.display()
                    );
                }
                Some(secret)
            }
            _ => None,
        };
        Ok((token, secret))
    }

    fn check(&self, at: &dyn Fn(&str) -> String) -> anyhow::Result<()> {
        if self.token_env.trim().is_empty() {
            anyhow::bail!(
                "{}: channels.telegram.token_env is empty; name the environment variable holding the bot token",
                at("token_env")
            );
        }
        match self.mode {
            TelegramMode::Webhook if self.webhook_secret_env.is_none() => anyhow::bail!(
                "{}: channels.telegram.mode is webhook, which needs webhook_secret_env (the \
                 environment variable holding the secret Telegram sends with each update)",
                at("webhook_secret_env")
            ),
            TelegramMode::Polling if self.webhook_url.is_some() => anyhow::bail!(
                "{}: channels.telegram.webhook_url is set but mode is polling; set `mode: webhook` \
                 or remove webhook_url",
                at("webhook_url")
            ),
            _ => {}
        }
        if let Some(url) = &self.webhook_url {
            if !url.starts_with("https://") {
                anyhow::bail!(
                    "{}: channels.telegram.webhook_url must be an https:// address (Telegram posts only over HTTPS)",
                    at("webhook_url")
                );
            }
        }
        if let Some(url) = &self.api_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                anyhow::bail!(
                    "{}: channels.telegram.api_url must be an http(s):// address",
                    at("api_url")
                );
            }
        }
        Ok(())
    }
}

/// The `channels.discord` section. The token comes from an environment variable only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscordConfig {
    /// The environment variable holding the bot token.
    pub token_env: String,
    /// The application's id (the developer portal's "Application ID").
    pub application_id: u64,
    /// The application's public key (hex): set it to serve the HTTP interactions endpoint
    /// at `/discord/interactions`.
    pub public_key: Option<String>,
    /// Whether to connect to the gateway (direct messages, mentions, slash commands).
    pub gateway: bool,
    /// A Discord API address other than discord.com (tests, proxies).
    pub api_url: Option<String>,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        DiscordConfig {
            token_env: "KEFU_DISCORD_TOKEN".to_string(),
            application_id: 0,
            public_key: None,
            gateway: true,
            api_url: None,
        }
    }
}

impl DiscordConfig {
    /// The bot token, read from the environment; errors name `path`.
    pub fn token(&self, path: &Path) -> anyhow::Result<String> {
        env_secret(&self.token_env, "channels.discord.token_env", &|_| {
            path.display().to_string()
        })
    }

    fn check(&self, at: &dyn Fn(&str) -> String) -> anyhow::Result<()> {
        if self.token_env.trim().is_empty() {
            anyhow::bail!(
                "{}: channels.discord.token_env is empty; name the environment variable holding the bot token",
                at("token_env")
            );
        }
        if self.application_id == 0 {
            anyhow::bail!(
                "{}: channels.discord needs application_id (the developer portal's Application ID)",
                at("application_id")
            );
        }
        if !self.gateway && self.public_key.is_none() {
            anyhow::bail!(
                "{}: channels.discord has the gateway off and no public_key, so nothing would \
                 reach the bot; set `gateway: true` or the interactions endpoint's public_key",
                at("gateway")
            );
        }
        Ok(())
    }
}

/// The `channels.web` section: the customers' web chat. Its cookies are signed with a key
/// kefu makes once and keeps in the database, shared by every process on it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebChatConfig {
    /// Whether `kefu serve` serves `/chat`.
    pub enabled: bool,
    /// Requests a minute from one address — pages, messages and event streams (0: no limit).
    pub per_ip_per_minute: u32,
    /// Messages a minute in one conversation (0: no limit).
    pub per_conversation_per_minute: u32,
    /// Marks the cookie `Secure`: set it when customers reach the chat over HTTPS.
    pub secure_cookie: bool,
}

impl Default for WebChatConfig {
    fn default() -> Self {
        WebChatConfig {
            enabled: true,
            per_ip_per_minute: 600,
            per_conversation_per_minute: 20,
            secure_cookie: false,
        }
    }
}

/// The `channels.webhook` section.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// The shared secret, written in the file.
    pub secret: Option<String>,
    /// The environment variable holding the shared secret (kept out of the file).
    pub secret_env: Option<String>,
    /// Where later messages (agents' replies, notices, surveys) are posted; without one
    /// they wait in the outbox.
    pub callback_url: Option<String>,
    /// Requests a minute from one address (0: no limit).
    pub per_ip_per_minute: u32,
    /// Messages a minute in one conversation (0: no limit).
    pub per_conversation_per_minute: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            secret: None,
            secret_env: None,
            callback_url: None,
            per_ip_per_minute: 1_200,
            per_conversation_per_minute: 30,
        }
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("secret_env", &self.secret_env)
            .field("callback_url", &self.callback_url)
            .field("per_ip_per_minute", &self.per_ip_per_minute)
            .field(
                "per_conversation_per_minute",
                &self.per_conversation_per_minute,
            )
            .finish()
    }
}

impl WebhookConfig {
    /// The shared secret, read from the environment if so configured; errors name `path`,
    /// the configuration file.
    pub fn secret(&self, path: &Path) -> anyhow::Result<String> {
        self.secret_at(&|_| path.display().to_string())
    }

    fn secret_at(&self, at: &dyn Fn(&str) -> String) -> anyhow::Result<String> {
        shared_secret("channels.webhook", &self.secret, &self.secret_env, at)
    }
}

/// A secret given as `secret` in the file or `secret_env` naming an environment variable:
/// exactly one, not empty. Errors name `section` and are placed by `at`.
fn shared_secret(
    section: &str,
    secret: &Option<String>,
    env: &Option<String>,
    at: &dyn Fn(&str) -> String,
) -> anyhow::Result<String> {
    let secret = match (secret, env) {
        (Some(_), Some(_)) => anyhow::bail!(
            "{}: {section} has both `secret` and `secret_env` — keep exactly one",
            at("secret_env")
        ),
        (None, None) => anyhow::bail!(
            "{}: {section} needs the shared secret — set `secret_env` to the name of an \
             environment variable holding it (or `secret`)",
            at("")
        ),
        (Some(secret), None) => secret.clone(),
        (None, Some(name)) => match std::env::var(name) {
            Ok(value) if !value.trim().is_empty() => value,
            _ => anyhow::bail!(
                "{}: {section}.secret_env names the environment variable {name}, which is not \
                 set (or empty)",
                at("secret_env")
            ),
        },
    };
    if secret.trim().is_empty() {
        anyhow::bail!("{}: {section}.secret is empty", at("secret"));
    }
    Ok(secret)
}

/// The `handoff` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HandoffConfig {
    /// When people answer, in the shop's time zone: `09:00-24:00` (every day) or
    /// `mon-fri 09:00-18:00`. Outside them a hand-off opens a ticket and the customer is told
    /// when people are back. Absent: people always answer.
    pub support_hours: Option<HoursSetting>,
    /// Whether a customer waiting for a person still gets the bot's answers to clear
    /// questions (the messages reach the person either way).
    pub answer_while_waiting: bool,
    /// Whether an agent closing a conversation asks the customer to rate the help (1-5 and
    /// an optional comment).
    pub survey_on_close: bool,
    /// Seconds a conversation may wait for a person before it is escalated (raised in
    /// priority and flagged in the console).
    pub pickup_target_seconds: u64,
    /// Skill groups' own support hours and pick-up targets.
    pub groups: BTreeMap<String, GroupConfig>,
    /// Who is served in the VIP lane.
    pub vip: VipConfig,
    /// Whether waiting conversations are given to the least-loaded available agent of their
    /// group (otherwise agents claim them).
    pub auto_assign: bool,
}

/// A skill group's own settings in `handoff.groups`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct GroupConfig {
    /// The group's support hours (else `handoff.support_hours`).
    pub support_hours: Option<HoursSetting>,
    /// The group's pick-up target in seconds (else `handoff.pickup_target_seconds`).
    pub pickup_target_seconds: Option<u64>,
}

/// `handoff.vip`: the VIP lane, served first.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct VipConfig {
    /// Customers by `user` or `channel:user`.
    pub customers: BTreeSet<String>,
    /// Customers with at least this many paid orders (in the order tables).
    pub min_paid_orders: Option<usize>,
}

impl HandoffConfig {
    /// The pick-up target of `skill_group`, in ms.
    pub fn pickup_target_ms(&self, skill_group: &str) -> u64 {
        self.groups
            .get(skill_group)
            .and_then(|g| g.pickup_target_seconds)
            .unwrap_or(self.pickup_target_seconds)
            .saturating_mul(1000)
    }
}

impl Default for HandoffConfig {
    fn default() -> Self {
        HandoffConfig {
            pickup_target_seconds: 30,
            groups: BTreeMap::new(),
            vip: VipConfig::default(),
            auto_assign: false,
            support_hours: None,
            answer_while_waiting: EngineConfig::default().answer_while_queued,
            survey_on_close: EngineConfig::default().survey_on_close,
        }
    }
}

/// Support hours as written in the file, checked as they are read (so a mistake is reported
/// with its line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoursSetting(pub kefu_core::hours::SupportHours);

impl<'de> Deserialize<'de> for HoursSetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        kefu_core::hours::SupportHours::parse(&text)
            .map(HoursSetting)
            .map_err(serde::de::Error::custom)
    }
}

/// The `limits` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The longest message, in characters, the bot reads; a longer one gets a polite request
    /// to send it shorter.
    pub max_message_chars: usize,
    /// How long a message waits for its conversation's lock (held by another message of the
    /// same conversation) before it fails and is left to be delivered again, in ms.
    pub turn_lock_wait_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let engine = EngineConfig::default();
        LimitsConfig {
            max_message_chars: engine.max_message_chars,
            turn_lock_wait_ms: engine.turn_lock_wait_ms,
        }
    }
}

/// The `self_service` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfServiceConfig {
    /// Times an order's card keys are shown (the first time and resends) in 24 hours before a
    /// person must check; 0 for no limit.
    pub key_views_per_day: usize,
    /// Whether buyers may cancel unpaid orders themselves (otherwise a ticket asks a person).
    pub cancel_unpaid: bool,
    /// Refunds of undelivered orders up to this amount (fen, cents) are made at once; 0 makes
    /// every refund a ticket for the refund group.
    pub refund_auto_approve_cents: i64,
    /// The skill group refund tickets go to.
    pub refund_skill_group: String,
    /// Hours the team has for a ticket the bot opens.
    pub ticket_sla_hours: u64,
    /// Hours the team has for tickets of a kind (`card_key`, `delivery`, `refund`, ...),
    /// instead of `ticket_sla_hours`; card-key problems are 2 hours by default.
    pub ticket_due_hours: BTreeMap<String, u64>,
    /// The shop's time zone in minutes from UTC (480: China), for times shown to customers.
    pub utc_offset_minutes: i32,
}

impl Default for SelfServiceConfig {
    fn default() -> Self {
        let engine = EngineConfig::default();
        SelfServiceConfig {
            key_views_per_day: engine.max_key_views_per_day,
            cancel_unpaid: engine.self_cancel,
            refund_auto_approve_cents: engine.refund_auto_approve_cents,
            refund_skill_group: engine.refund_skill_group,
            ticket_sla_hours: engine.ticket_sla_ms / 3_600_000,
            ticket_due_hours: engine
                .ticket_sla_by_kind
                .iter()
                .map(|(kind, ms)| (kind.clone(), ms / 3_600_000))
                .collect(),
            utc_offset_minutes: engine.utc_offset_minutes,
        }
    }
}

/// The `orders` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrdersConfig {
    /// `tables`: kefu's own order tables (filled by `kefu orders import`); `http`: the shop's
    /// own order API (see `http`); `none`: order flows hand off with the number they collected;
    /// `auto` (the default): `tables` once any order has been imported.
    pub backend: OrdersBackend,
    /// Minutes a proof of owning an order holds in a conversation.
    pub verification_minutes: u64,
    /// Failed proofs in an hour, by one customer or for one order, before lookups stop and
    /// the risk group takes over.
    pub max_failed_proofs: usize,
    /// Whether a proof by secret in a private chat links the chat account to the order (if
    /// it has none), so that account needs no proof again.
    pub link_chat_identity: bool,
    /// The shop's order API, for `backend: http`.
    pub http: Option<OrdersHttpConfig>,
    /// The file this was read from, for messages.
    #[serde(skip)]
    pub file: PathBuf,
}

/// The `orders.http` section: where the shop's order API is and the secret it shares.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersHttpConfig {
    /// Where the API lives; requests go to `{base_url}/orders/...`.
    pub base_url: Option<String>,
    /// The shared secret, written in the file.
    pub secret: Option<String>,
    /// The environment variable holding the shared secret (kept out of the file).
    pub secret_env: Option<String>,
    /// How long one attempt may take, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How long one call may take with all its retries, in milliseconds.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Further attempts after a connection failure, a timeout or a server error.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Accept a plain `http://` base URL on this machine (127.0.0.1, ::1, localhost). Any
    /// other `http://` URL is refused.
    #[serde(default)]
    pub allow_loopback_http: bool,
}

fn default_timeout_ms() -> u64 {
    3000
}

fn default_deadline_ms() -> u64 {
    5000
}

fn default_retries() -> u32 {
    2
}

impl std::fmt::Debug for OrdersHttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrdersHttpConfig")
            .field("base_url", &self.base_url)
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("secret_env", &self.secret_env)
            .field("timeout_ms", &self.timeout_ms)
            .field("deadline_ms", &self.deadline_ms)
            .field("retries", &self.retries)
            .field("allow_loopback_http", &self.allow_loopback_http)
            .finish()
    }
}

impl OrdersHttpConfig {
    /// The client configuration, with the secret read from the environment if so configured;
    /// errors name `path`, the configuration file.
    #[cfg(test)]
    pub fn client_config(&self, path: &Path) -> anyhow::Result<kefu_orders_http::HttpOrdersConfig> {
        self.client_config_at(&|_| path.display().to_string())
    }

    /// [`Self::client_config`], with errors placed by `at` (a key of `orders.http` to
    /// `file:line:column`).
    fn client_config_at(
        &self,
        at: &dyn Fn(&str) -> String,
    ) -> anyhow::Result<kefu_orders_http::HttpOrdersConfig> {
        let base_url = match self.base_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url.to_string(),
            _ => anyhow::bail!(
                "{}: orders.http.base_url is missing — give the URL of the shop's order API, \
                 e.g. https://shop.example.com/kefu",
                at("base_url")
            ),
        };
        let secret = shared_secret("orders.http", &self.secret, &self.secret_env, &|key| {
            at(if key.is_empty() { "base_url" } else { key })
        })?;
        let mut config = kefu_orders_http::HttpOrdersConfig::new(base_url, secret);
        config.timeout = std::time::Duration::from_millis(self.timeout_ms.max(1));
        config.deadline = std::time::Duration::from_millis(self.deadline_ms.max(1));
        config.retries = self.retries;
        config.allow_loopback_http = self.allow_loopback_http;
        Ok(config)
    }
}

/// Where orders come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrdersBackend {
    /// `tables` when orders have been imported, else `none`.
    Auto,
    /// kefu's own order tables.
    Tables,
    /// The shop's own order API over HTTP (`orders.http`).
    Http,
    /// No order system.
    None,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        let engine = EngineConfig::default();
        OrdersConfig {
            backend: OrdersBackend::Auto,
            verification_minutes: engine.verification_ttl_ms / 60_000,
            max_failed_proofs: engine.max_failed_proofs,
            link_chat_identity: engine.link_identity_on_proof,
            http: None,
            file: PathBuf::new(),
        }
    }
}

impl OrdersConfig {
    /// The order system to connect, if any.
    pub async fn open(
        &self,
        db: &kefu_sql::Database,
    ) -> anyhow::Result<Option<std::sync::Arc<dyn kefu_core::Orders>>> {
        if self.backend == OrdersBackend::Http {
            let orders = self.http_orders(&self.file)?;
            return Ok(Some(std::sync::Arc::new(orders)));
        }
        let orders = db.orders();
        let connect = match self.backend {
            OrdersBackend::None | OrdersBackend::Http => false,
            OrdersBackend::Tables => true,
            OrdersBackend::Auto => orders.count().await? > 0,
        };
        Ok(connect.then(|| std::sync::Arc::new(orders) as std::sync::Arc<dyn kefu_core::Orders>))
    }

    /// The client for `backend: http`; errors name `path`, the configuration file.
    pub fn http_orders(&self, path: &Path) -> anyhow::Result<kefu_orders_http::HttpOrders> {
        self.http_orders_at(&|_| path.display().to_string())
    }

    /// [`Self::http_orders`], with errors placed by `at` (a key of `orders.http`, or `""` for
    /// the section itself, to `file:line:column`).
    fn http_orders_at(
        &self,
        at: &dyn Fn(&str) -> String,
    ) -> anyhow::Result<kefu_orders_http::HttpOrders> {
        let http = self.http.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: orders.backend is http but there is no orders.http section with the order \
                 API's base_url and secret",
                at("")
            )
        })?;
        kefu_orders_http::HttpOrders::new(http.client_config_at(at)?)
            .map_err(|e| anyhow::anyhow!("{}: orders.http: {e}", at("base_url")))
    }
}

/// The `storage` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://path/to/file.db` or `postgres://user@host:port/database`.
    pub url: String,
    /// PostgreSQL: the schema kefu's tables live in (created if missing).
    pub schema: Option<String>,
    /// Connections to the database per process.
    pub max_connections: u32,
}

/// The database of a fresh installation: a file under `./data/`, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/kefu.db";

/// The environment variable that overrides `storage.url`.
pub const DATABASE_URL_ENV: &str = "KEFU_DATABASE_URL";

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: DEFAULT_DATABASE_URL.to_string(),
            schema: None,
            max_connections: 8,
        }
    }
}

impl StorageConfig {
    /// The URL to open: `KEFU_DATABASE_URL` when set, else the configured one.
    pub fn effective_url(&self) -> String {
        std::env::var(DATABASE_URL_ENV)
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| self.url.clone())
    }

    /// Opens the database (creating and migrating it as needed).
    pub async fn open(&self) -> anyhow::Result<kefu_sql::Database> {
        self.open_with_lock_wait(std::time::Duration::from_secs(30))
            .await
    }

    /// Opens the database, with turns on PostgreSQL waiting at most `lock_wait` for their
    /// conversation's lock.
    pub async fn open_with_lock_wait(
        &self,
        lock_wait: std::time::Duration,
    ) -> anyhow::Result<kefu_sql::Database> {
        let options = kefu_sql::DbOptions {
            schema: self.schema.clone(),
            max_connections: self.max_connections.max(1),
            lock_wait,
            ..kefu_sql::DbOptions::default()
        };
        let url = self.effective_url();
        let db = kefu_sql::Database::connect(&url, &options).await?;
        tracing::debug!(database = db.target(), "storage opened");
        Ok(db)
    }
}

/// The `knowledge` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KnowledgeConfig {
    /// A directory of FAQ files; the built-in default knowledge base when absent.
    pub dir: Option<PathBuf>,
    /// Match by meaning too, with the sentence encoder (needs a build with the `semantic`
    /// feature and `kefu model install`).
    pub semantic: bool,
    /// The multilingual encoder's model directory (default: where `kefu model install` puts
    /// it).
    pub model_dir: Option<PathBuf>,
    /// With `semantic`, also compare texts without Chinese, Japanese or Korean characters
    /// with the English encoder (all-MiniLM-L6-v2): sharper English matching for about 5 ms
    /// more per English message. On by default; off for a shop whose customers write Chinese.
    pub english_encoder: bool,
    /// The English encoder's model directory (default: where `kefu model install` puts it).
    pub english_model_dir: Option<PathBuf>,
    /// Where trained models and sentence embeddings are kept between starts (default:
    /// `$XDG_CACHE_HOME/kefu`, else `~/.cache/kefu`).
    pub cache_dir: Option<PathBuf>,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        KnowledgeConfig {
            dir: None,
            semantic: false,
            model_dir: None,
            english_encoder: true,
            english_model_dir: None,
            cache_dir: None,
        }
    }
}

impl KnowledgeConfig {
    /// The cache directory in effect; `None` when no home directory is known either.
    pub fn effective_cache_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.cache_dir {
            return Some(dir.clone());
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("kefu"))
    }
}

impl Default for Config {
    fn default() -> Self {
        let variables = [
            ("shop_name", "星辰卡铺 StarCard"),
            ("support_hours", "9:00–24:00 (UTC+8)"),
            ("support_email", "support@example.com"),
            ("website", "https://shop.example.com"),
            ("refund_days", "7"),
            ("delivery_minutes", "5"),
            ("wechat_id", "StarCardKF"),
            ("qq_contact", "800123456"),
            ("telegram_contact", "@StarCardSupport"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Config {
            variables,
            skill_groups: DEFAULT_SKILL_GROUPS.iter().map(|s| s.to_string()).collect(),
            thresholds: Thresholds::default(),
            knowledge: KnowledgeConfig::default(),
            entities: BTreeMap::new(),
            storage: StorageConfig::default(),
            orders: OrdersConfig::default(),
            self_service: SelfServiceConfig::default(),
            limits: LimitsConfig::default(),
            handoff: HandoffConfig::default(),
            server: ServerConfig::default(),
            channels: ChannelsConfig::default(),
            console: ConsoleConfig::default(),
        }
    }
}

impl Config {
    /// Reads `path`, or `kefu.yaml` in the working directory when `path` is `None` and that file
    /// exists, or the defaults.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_FILE).exists() => PathBuf::from(DEFAULT_FILE),
            None => {
                let config = Config::default();
                config.check_environment()?;
                return Ok(config);
            }
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        let config = Self::parse(&path, &text)?;
        config.check_environment()?;
        Ok(config)
    }

    /// Parses configuration text and checks every value, for every command alike; errors
    /// name the file, line and column of the value at fault.
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Config> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let mut config: Config = serde_yaml::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("{}:{}:{}", path.display(), l.line(), l.column()))
                .unwrap_or_else(|| path.display().to_string());
            // serde_yaml ends its message with the position, which `at` already gives.
            let message = e.to_string();
            let message = match message.rsplit_once(" at line ") {
                Some((what, position))
                    if position.split(" column ").all(|n| n.parse::<u64>().is_ok()) =>
                {
                    what.to_string()
                }
                _ => message,
            };
            anyhow::anyhow!(
                "{at}: {message} — see the example at the top of the README's configuration section"
            )
        })?;
        // Where a key stands, for the checks below: `file:line:column`, or just the file.
        let at = |keys: &[&str]| match locate(text, keys) {
            Some((line, column)) => format!("{}:{line}:{column}", path.display()),
            None => path.display().to_string(),
        };
        // Variables given in the file extend the defaults rather than replace them all.
        let mut variables = Config::default().variables;
        variables.append(&mut config.variables);
        config.variables = variables;
        let t = config.thresholds;
        if !(0.0..=1.0).contains(&t.answer)
            || !(0.0..=1.0).contains(&t.suggest)
            || t.suggest > t.answer
        {
            anyhow::bail!(
                "{}: thresholds must satisfy 0 ≤ suggest ≤ answer ≤ 1 (got answer {}, suggest {})",
                at(&["thresholds"]),
                t.answer,
                t.suggest
            );
        }
        kefu_sql::check_url(&config.storage.url)
            .map_err(|e| anyhow::anyhow!("{}: storage.url: {e}", at(&["storage", "url"])))?;
        config.orders.file = path.to_path_buf();
        if config.orders.backend == OrdersBackend::Http {
            // Checked now, so a missing secret is reported when kefu starts.
            config
                .orders
                .http_orders_at(&|key| at(&["orders", "http", key]))?;
        }
        if let Some(webhook) = &config.channels.webhook {
            // Checked now, so a missing secret or a bad callback is reported at start.
            let at = |key: &str| {
                if key.is_empty() {
                    at(&["channels", "webhook"])
                } else {
                    at(&["channels", "webhook", key])
                }
            };
            // The secret itself is read by `kefu serve` only, so other commands run in a shell
            // without it; here only its shape is checked.
            match (&webhook.secret, &webhook.secret_env) {
                (Some(_), Some(_)) | (None, None) => {
                    webhook.secret_at(&at)?;
                }
                (Some(secret), None) if secret.trim().is_empty() => {
                    webhook.secret_at(&at)?;
                }
                _ => {}
            }
            if let Some(url) = &webhook.callback_url {
                kefu_webhook::WebhookChannel::new(url, Vec::new()).map_err(|e| {
                    anyhow::anyhow!("{}: channels.webhook.callback_url: {e}", at("callback_url"))
                })?;
            }
        }
        if let Some(telegram) = &config.channels.telegram {
            telegram.check(&|key| at(&["channels", "telegram", key]))?;
        }
        if let Some(discord) = &config.channels.discord {
            discord.check(&|key| at(&["channels", "discord", key]))?;
        }
        if let Some(wechat) = &config.channels.wechat {
            wechat.check(&|key| at(&["channels", "wechat", key]))?;
        }
        if let Some(wecom) = &config.channels.wecom {
            wecom.check(&|key| at(&["channels", "wecom", key]))?;
        }
        if config
            .server
            .listen
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            anyhow::bail!(
                "{}: server.listen is {:?}; give an address and port such as 127.0.0.1:8080 (or 0.0.0.0:8080 to listen on every interface)",
                at(&["server", "listen"]),
                config.server.listen
            );
        }
        if config.server.max_body_bytes < 1024 {
            anyhow::bail!(
                "{}: server.max_body_bytes must be at least 1024",
                at(&["server", "max_body_bytes"])
            );
        }
        let service = &config.self_service;
        if !config.skill_groups.contains(&service.refund_skill_group) {
            anyhow::bail!(
                "{}: self_service.refund_skill_group `{}` is not one of the skill_groups ({}); add it there or pick one of them",
                at(&["self_service", "refund_skill_group"]),
                service.refund_skill_group,
                config.skill_groups.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        if !(-720..=840).contains(&service.utc_offset_minutes) {
            anyhow::bail!(
                "{}: self_service.utc_offset_minutes must be between -720 and 840 (got {}); China is 480",
                at(&["self_service", "utc_offset_minutes"]),
                service.utc_offset_minutes
            );
        }
        if service.refund_auto_approve_cents < 0 {
            anyhow::bail!(
                "{}: self_service.refund_auto_approve_cents must be 0 or more (0: every refund is a ticket)",
                at(&["self_service", "refund_auto_approve_cents"])
            );
        }
        for group in config.handoff.groups.keys() {
            if !config.skill_groups.contains(group) {
                anyhow::bail!(
                    "{}: handoff.groups has `{group}`, which is not one of the skill_groups ({}); add it there or fix the name",
                    at(&["handoff", "groups", group]),
                    config.skill_groups.iter().cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
        let targets = config
            .handoff
            .groups
            .values()
            .filter_map(|g| g.pickup_target_seconds)
            .chain([config.handoff.pickup_target_seconds]);
        for target in targets {
            if target == 0 {
                anyhow::bail!(
                    "{}: pickup_target_seconds must be more than 0",
                    at(&["handoff"])
                );
            }
        }
        if service.ticket_due_hours.values().any(|h| *h == 0) {
            anyhow::bail!(
                "{}: self_service.ticket_due_hours must be more than 0 for every kind",
                at(&["self_service", "ticket_due_hours"])
            );
        }
        if service.ticket_sla_hours == 0 {
            anyhow::bail!(
                "{}: self_service.ticket_sla_hours must be more than 0",
                at(&["self_service", "ticket_sla_hours"])
            );
        }
        Ok(config)
    }

    /// Checks what comes from the environment rather than the file (`KEFU_DATABASE_URL`).
    pub fn check_environment(&self) -> anyhow::Result<()> {
        let url = self.storage.effective_url();
        if url != self.storage.url {
            kefu_sql::check_url(&url).map_err(|e| anyhow::anyhow!("{DATABASE_URL_ENV}: {e}"))?;
        }
        Ok(())
    }

    /// The engine's behaviour settings.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            thresholds: self.thresholds,
            variables: self.variables.clone(),
            verification_ttl_ms: self.orders.verification_minutes.saturating_mul(60_000),
            max_failed_proofs: self.orders.max_failed_proofs.max(1),
            link_identity_on_proof: self.orders.link_chat_identity,
            max_key_views_per_day: self.self_service.key_views_per_day,
            self_cancel: self.self_service.cancel_unpaid,
            refund_auto_approve_cents: self.self_service.refund_auto_approve_cents,
            refund_skill_group: self.self_service.refund_skill_group.clone(),
            ticket_sla_ms: self.self_service.ticket_sla_hours.saturating_mul(3_600_000),
            utc_offset_minutes: self.self_service.utc_offset_minutes,
            support_hours: self.handoff.support_hours.map(|h| h.0),
            group_hours: self
                .handoff
                .groups
                .iter()
                .filter_map(|(group, g)| g.support_hours.map(|h| (group.clone(), h.0)))
                .collect(),
            vip_customers: self.handoff.vip.customers.clone(),
            vip_min_paid_orders: self.handoff.vip.min_paid_orders,
            ticket_sla_by_kind: {
                // Kinds set in the file replace their default; the others keep it.
                let mut by_kind = EngineConfig::default().ticket_sla_by_kind;
                by_kind.extend(
                    self.self_service
                        .ticket_due_hours
                        .iter()
                        .map(|(kind, hours)| (kind.clone(), hours.saturating_mul(3_600_000))),
                );
                by_kind
            },
            answer_while_queued: self.handoff.answer_while_waiting,
            survey_on_close: self.handoff.survey_on_close,
            max_message_chars: self.limits.max_message_chars.max(1),
            turn_lock_wait_ms: self.limits.turn_lock_wait_ms.max(1),
            ..EngineConfig::default()
        }
    }

    /// The entity extractor: the built-in patterns with the configured ones replacing them.
    pub fn entity_extractor(&self) -> anyhow::Result<EntityExtractor> {
        let mut patterns: Vec<(String, String)> = DEFAULT_PATTERNS
            .iter()
            .map(|(kind, pattern)| {
                let pattern = self.entities.get(*kind).map_or(*pattern, String::as_str);
                (kind.to_string(), pattern.to_string())
            })
            .collect();
        patterns.extend(
            self.entities
                .iter()
                .filter(|(kind, _)| !DEFAULT_PATTERNS.iter().any(|(k, _)| k == kind))
                .map(|(k, p)| (k.clone(), p.clone())),
        );
        EntityExtractor::new(patterns)
            .map_err(|e| anyhow::anyhow!("{e} — fix the pattern under `entities` in the config"))
    }

    /// What FAQ validation checks names against.
    pub fn validation(&self) -> ValidationOptions {
        ValidationOptions {
            skill_groups: self.skill_groups.clone(),
            variables: self.variables.keys().cloned().collect(),
        }
    }
}

/// The 1-based line and column of the value of the nested key `keys` (`["self_service",
/// "refund_skill_group"]`) in block-style YAML, or of the deepest of them found. A key in
/// flow style (`{ a: 1 }`) is found only at its section.
fn locate(text: &str, keys: &[&str]) -> Option<(usize, usize)> {
    let mut found = None;
    let mut depth = 0;
    let mut section_indent: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let Some(key) = keys.get(depth) else {
            break;
        };
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        if section_indent.is_some_and(|s| indent <= s) {
            // Left the section without finding the next key.
            break;
        }
        let Some(rest) = content.strip_prefix(*key) else {
            continue;
        };
        if !rest.trim_start().starts_with(':') {
            continue;
        }
        let value = rest.trim_start()[1..].trim_start();
        let column = if value.is_empty() || value.starts_with('#') {
            indent + 1
        } else {
            line.len() - value.len() + 1
        };
        found = Some((i + 1, column));
        section_indent = Some(indent);
        depth += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_reported_with_their_line() {
        let err = Config::parse(
            Path::new("kefu.yaml"),
            "thresholds:\n  answer: 0.6\n  sugest: 0.2\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("kefu.yaml:3:"), "{err}");
        assert!(err.contains("sugest"), "{err}");
    }

    #[test]
    fn the_telegram_and_discord_sections_are_checked_at_load_and_their_secrets_read_when_serving() {
        let path = Path::new("kefu.yaml");
        let parse = |yaml: &str| Config::parse(path, yaml).map_err(|e| e.to_string());
        let polling = parse("channels:\n  telegram:\n    token_env: KEFU_TEST_TG_UNSET\n").unwrap();
        let telegram = polling.channels.telegram.as_ref().unwrap();
        assert_eq!(telegram.mode, TelegramMode::Polling);
        let err = telegram.secrets(path).unwrap_err().to_string();
        assert!(err.contains("KEFU_TEST_TG_UNSET"), "{err}");
        let unknown = parse("channels:\n  telegram:\n    tokn_env: X\n").unwrap_err();
        assert!(unknown.contains("tokn_env"), "{unknown}");
        let no_secret = parse("channels:\n  telegram:\n    mode: webhook\n").unwrap_err();
        assert!(no_secret.contains("webhook_secret_env"), "{no_secret}");
        let url_without_webhook = parse(
            "channels:\n  telegram:\n    webhook_url: https://bot.example.com/telegram/webhook\n",
        )
        .unwrap_err();
        assert!(
            url_without_webhook.contains("mode is polling"),
            "{url_without_webhook}"
        );
        let plain_http = parse(
            "channels:\n  telegram:\n    mode: webhook\n    webhook_secret_env: S\n    webhook_url: http://bot.example.com/x\n",
        )
        .unwrap_err();
        assert!(plain_http.contains("https://"), "{plain_http}");
        let discord = parse("channels:\n  discord:\n    token_env: T\n").unwrap_err();
        assert!(discord.contains("application_id"), "{discord}");
        let nothing = parse("channels:\n  discord:\n    application_id: 1\n    gateway: false\n")
            .unwrap_err();
        assert!(nothing.contains("public_key"), "{nothing}");
        let ok = parse("channels:\n  discord:\n    application_id: 1\n").unwrap();
        assert!(ok.channels.discord.unwrap().gateway);
    }

    #[test]
    fn the_wechat_and_wecom_sections_are_checked_at_load_and_their_secrets_read_when_serving() {
        let path = Path::new("kefu.yaml");
        let parse = |yaml: &str| Config::parse(path, yaml).map_err(|e| e.to_string());
        let no_app = parse("channels:\n  wechat:\n    token_env: T\n").unwrap_err();
        assert!(no_app.contains("app_id"), "{no_app}");
        let slow = parse("channels:\n  wechat:\n    app_id: wx1\n    reply_budget_ms: 6000\n")
            .unwrap_err();
        assert!(slow.contains("5 seconds"), "{slow}");
        let config =
            parse("channels:\n  wechat:\n    app_id: wx1\n    token_env: KEFU_TEST_WX_UNSET\n")
                .unwrap();
        let err = config
            .channels
            .wechat
            .unwrap()
            .secrets(path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("KEFU_TEST_WX_UNSET"), "{err}");
        let no_agent = parse("channels:\n  wecom:\n    corp_id: ww1\n").unwrap_err();
        assert!(no_agent.contains("agent_id"), "{no_agent}");
        let unknown = parse("channels:\n  wecom:\n    corpid: ww1\n").unwrap_err();
        assert!(unknown.contains("corpid"), "{unknown}");
        assert!(parse("channels:\n  wecom:\n    corp_id: ww1\n    agent_id: 1000002\n").is_ok());
    }

    #[test]
    fn the_webhook_section_is_checked_at_load_and_its_secret_read_when_serving() {
        let path = Path::new("kefu.yaml");
        let parse = |yaml: &str| Config::parse(path, yaml).map_err(|e| e.to_string());
        // Only kefu serve needs the secret: other commands load without it.
        let config =
            parse("channels:\n  webhook:\n    secret_env: KEFU_TEST_WEBHOOK_UNSET\n").unwrap();
        let webhook = config.channels.webhook.as_ref().unwrap();
        let err = webhook.secret(path).unwrap_err().to_string();
        assert!(
            err.contains("KEFU_TEST_WEBHOOK_UNSET, which is not set"),
            "{err}"
        );
        assert_eq!(
            parse("channels:\n  webhook:\n    secret: s\n")
                .unwrap()
                .channels
                .webhook
                .unwrap()
                .secret(path)
                .unwrap(),
            "s"
        );
        let both = parse("channels:\n  webhook:\n    secret: s\n    secret_env: X\n").unwrap_err();
        assert!(
            both.starts_with("kefu.yaml:4:") && both.contains("keep exactly one"),
            "{both}"
        );
        let none = parse("channels:\n  webhook:\n    per_ip_per_minute: 5\n").unwrap_err();
        assert!(none.contains("needs the shared secret"), "{none}");
        let plain = parse(
            "channels:\n  webhook:\n    secret: s\n    callback_url: http://shop.example.com/cb\n",
        )
        .unwrap_err();
        assert!(
            plain.starts_with("kefu.yaml:4:") && plain.contains("use https"),
            "{plain}"
        );
        let listen = parse("server:\n  listen: localhost\n").unwrap_err();
        assert!(
            listen.starts_with("kefu.yaml:2:") && listen.contains("127.0.0.1:8080"),
            "{listen}"
        );
        let typo = parse("channels:\n  webhok: {}\n").unwrap_err();
        assert!(typo.starts_with("kefu.yaml:2:"), "{typo}");
    }

    #[test]
    fn every_mistake_names_its_line_once() {
        let parse = |text: &str| {
            Config::parse(Path::new("kefu.yaml"), text)
                .unwrap_err()
                .to_string()
        };
        // Said once, not as "kefu.yaml:3:3: … at line 3 column 3".
        let err = parse("variables: {}\nthresholds:\n  sugest: 0.2\n");
        assert!(err.starts_with("kefu.yaml:3:3: "), "{err}");
        assert!(!err.contains("at line"), "{err}");
        let err = parse("# the bands\nthresholds:\n  answer: 0.2\n  suggest: 0.5\n");
        assert!(err.starts_with("kefu.yaml:2:1: thresholds"), "{err}");
        let err = parse("variables: {}\nstorage:\n  url: mysql://x\n");
        assert!(err.starts_with("kefu.yaml:3:8: storage.url"), "{err}");
        assert!(err.contains("sqlite: or postgres://"), "{err}");
        let err = parse("storage:\n  url: postgres://kefu:hunter2@db/kefu?sslmode=sometimes\n");
        assert!(err.starts_with("kefu.yaml:2:8: storage.url"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse("self_service:\n  cancel_unpaid: true\n  ticket_sla_hours: 0\n");
        assert!(
            err.starts_with("kefu.yaml:3:21: self_service.ticket_sla_hours"),
            "{err}"
        );
        let err = parse(
            "orders:\n  backend: http\n  http:\n    base_url: https://s.example.com\n    secret_env: KEFU_TEST_NOT_SET_ANYWHERE\n",
        );
        assert!(err.starts_with("kefu.yaml:5:17: "), "{err}");
    }

    #[test]
    fn keys_are_located_in_their_sections() {
        let text = "a:\n  b: 1\nc:\n  # note\n  b: 2\n  d:\n    e: x\n";
        assert_eq!(locate(text, &["a", "b"]), Some((2, 6)));
        assert_eq!(locate(text, &["c", "b"]), Some((5, 6)));
        assert_eq!(locate(text, &["c", "d", "e"]), Some((7, 8)));
        assert_eq!(locate(text, &["c", "d"]), Some((6, 3)));
        assert_eq!(
            locate(text, &["a", "d"]),
            Some((1, 1)),
            "the section at least"
        );
        assert_eq!(locate(text, &["z"]), None);
    }

    #[test]
    fn the_orders_section_sets_the_backend_and_the_proof_rules() {
        let c = Config::parse(
            Path::new("k.yaml"),
            "orders:\n  backend: tables\n  verification_minutes: 5\n  max_failed_proofs: 3\n",
        )
        .unwrap();
        assert_eq!(c.orders.backend, OrdersBackend::Tables);
        let engine = c.engine_config();
        assert_eq!(engine.verification_ttl_ms, 5 * 60_000);
        assert_eq!(engine.max_failed_proofs, 3);
        assert_eq!(Config::default().orders.backend, OrdersBackend::Auto);
        let err = Config::parse(Path::new("k.yaml"), "orders:\n  backend: shop\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("k.yaml") && err.contains("backend"), "{err}");
        let err = Config::parse(Path::new("k.yaml"), "orders:\n  backend: http\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("k.yaml") && err.contains("no orders.http section"),
            "{err}"
        );
    }

    fn http_error(section: &str) -> String {
        Config::parse(
            Path::new("k.yaml"),
            &format!("orders:\n  backend: http\n  http:\n{section}"),
        )
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn the_http_backend_reads_its_section() {
        let c = Config::parse(
            Path::new("k.yaml"),
            "orders:\n  backend: http\n  http:\n    base_url: https://shop.example.com/kefu\n    \
             secret: s3cret\n    timeout_ms: 1500\n    retries: 4\n",
        )
        .unwrap();
        assert_eq!(c.orders.backend, OrdersBackend::Http);
        let http = c.orders.http.as_ref().unwrap();
        let client = http.client_config(Path::new("k.yaml")).unwrap();
        assert_eq!(client.base_url, "https://shop.example.com/kefu");
        assert_eq!(client.secret, "s3cret");
        assert_eq!(client.timeout, std::time::Duration::from_millis(1500));
        assert_eq!(client.retries, 4);
        assert!(!format!("{c:?}").contains("s3cret"));

        std::env::set_var("KEFU_TEST_ORDERS_SECRET_SET", "from-the-environment");
        let c = Config::parse(
            Path::new("k.yaml"),
            "orders:\n  backend: http\n  http:\n    base_url: http://127.0.0.1:8787\n    \
             secret_env: KEFU_TEST_ORDERS_SECRET_SET\n    allow_loopback_http: true\n",
        )
        .unwrap();
        let client = c
            .orders
            .http
            .as_ref()
            .unwrap()
            .client_config(Path::new("k.yaml"))
            .unwrap();
        assert_eq!(client.secret, "from-the-environment");
        assert_eq!(client.timeout, std::time::Duration::from_millis(3000));
        assert_eq!(client.retries, 2);
    }

    #[test]
    fn a_bad_http_section_is_reported_clearly() {
        let err = http_error("    secret: s\n");
        assert!(
            err.contains("k.yaml") && err.contains("base_url is missing"),
            "{err}"
        );
        let err = http_error("    base_url: https://shop.example.com\n");
        assert!(
            err.contains("k.yaml") && err.contains("secret_env"),
            "{err}"
        );
        let err = http_error(
            "    base_url: https://shop.example.com\n    secret: s\n    secret_env: X\n",
        );
        assert!(err.contains("exactly one"), "{err}");
        let err = http_error(
            "    base_url: https://shop.example.com\n    secret_env: KEFU_TEST_ORDERS_SECRET_UNSET\n",
        );
        assert!(
            err.contains("k.yaml")
                && err.contains("variable KEFU_TEST_ORDERS_SECRET_UNSET, which is not set"),
            "{err}"
        );
        let err = http_error("    base_url: shop.example.com\n    secret: s\n");
        assert!(err.contains("k.yaml") && err.contains("base URL"), "{err}");
        // Plain http: refused, and on this machine only with allow_loopback_http.
        let err = http_error("    base_url: http://shop.example.com\n    secret: s\n");
        assert!(err.contains("k.yaml") && err.contains("use https"), "{err}");
        let err = http_error("    base_url: http://127.0.0.1:8787\n    secret: s\n");
        assert!(err.contains("allow_loopback_http"), "{err}");
        let err = http_error(
            "    base_url: http://10.1.2.3\n    secret: s\n    allow_loopback_http: true\n",
        );
        assert!(err.contains("use https"), "{err}");
        let err =
            http_error("    base_url: https://shop.example.com\n    secret: s\n    timeout: 5\n");
        assert!(err.contains("k.yaml") && err.contains("timeout"), "{err}");
    }

    #[test]
    fn the_self_service_section_sets_the_limits() {
        let c = Config::parse(
            Path::new("k.yaml"),
            "self_service:\n  key_views_per_day: 2\n  cancel_unpaid: false\n  refund_auto_approve_cents: 5000\n  ticket_sla_hours: 4\n  utc_offset_minutes: 0\n",
        )
        .unwrap();
        let engine = c.engine_config();
        assert_eq!(engine.max_key_views_per_day, 2);
        assert!(!engine.self_cancel);
        assert_eq!(engine.refund_auto_approve_cents, 5000);
        assert_eq!(engine.refund_skill_group, "refunds");
        assert_eq!(engine.ticket_sla_ms, 4 * 3_600_000);
        assert_eq!(engine.utc_offset_minutes, 0);
        assert_eq!(
            Config::default().engine_config(),
            EngineConfig {
                thresholds: Config::default().thresholds,
                variables: Config::default().variables,
                ..EngineConfig::default()
            }
        );
        for (yaml, words) in [
            ("self_service:\n  refund_skill_group: refundz\n", "refundz"),
            (
                "self_service:\n  utc_offset_minutes: 9999\n",
                "utc_offset_minutes",
            ),
            ("self_service:\n  ticket_sla_hours: 0\n", "ticket_sla_hours"),
            ("self_service:\n  auto_refund: 1\n", "auto_refund"),
        ] {
            let err = Config::parse(Path::new("k.yaml"), yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains("k.yaml") && err.contains(words), "{err}");
        }
    }

    #[test]
    fn the_limits_section_sets_the_message_cap_and_the_lock_wait() {
        let c = Config::parse(
            Path::new("k.yaml"),
            "limits:\n  max_message_chars: 500\n  turn_lock_wait_ms: 2000\n",
        )
        .unwrap();
        let engine = c.engine_config();
        assert_eq!(engine.max_message_chars, 500);
        assert_eq!(engine.turn_lock_wait_ms, 2000);
        let err = Config::parse(Path::new("k.yaml"), "limits:\n  max_chars: 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("k.yaml:2:") && err.contains("max_chars"),
            "{err}"
        );
    }

    #[test]
    fn the_handoff_section_sets_support_hours_and_answers_while_waiting() {
        let c = Config::parse(
            Path::new("k.yaml"),
            "handoff:\n  support_hours: mon-fri 09:00-18:00\n  answer_while_waiting: false\n  survey_on_close: false\n",
        )
        .unwrap();
        let engine = c.engine_config();
        assert!(!engine.survey_on_close);
        assert!(Config::default().engine_config().survey_on_close);
        let hours = engine.support_hours.unwrap();
        assert_eq!((hours.open, hours.close), (540, 1080));
        assert!(!engine.answer_while_queued);
        assert_eq!(Config::default().engine_config().support_hours, None);
        let err = Config::parse(
            Path::new("k.yaml"),
            "variables: {}\nhandoff:\n  support_hours: 9-5\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("k.yaml:3:"), "{err}");
        assert!(err.contains("09:00-24:00"), "{err}");
    }

    #[test]
    fn handoff_groups_vip_and_ticket_due_hours_are_read_and_checked() {
        let c = Config::parse(
            Path::new("k.yaml"),
            "handoff:\n  pickup_target_seconds: 45\n  groups:\n    refunds: { support_hours: \"mon-fri 09:00-18:00\", pickup_target_seconds: 120 }\n  vip:\n    customers: [\"telegram:1\", alice]\n    min_paid_orders: 5\n  auto_assign: true\nself_service:\n  ticket_due_hours: { refund: 8 }\n",
        )
        .unwrap();
        assert_eq!(c.handoff.pickup_target_ms("refunds"), 120_000);
        assert_eq!(c.handoff.pickup_target_ms("general"), 45_000);
        assert!(c.handoff.auto_assign);
        let engine = c.engine_config();
        assert!(engine.group_hours.contains_key("refunds"));
        assert!(engine.vip_customers.contains("alice"));
        assert_eq!(engine.vip_min_paid_orders, Some(5));
        assert_eq!(engine.ticket_sla("refund"), 8 * 3_600_000);
        assert_eq!(engine.ticket_sla("card_key"), 2 * 3_600_000, "default kept");
        assert_eq!(engine.ticket_sla("other"), 24 * 3_600_000);
        assert_eq!(Config::default().handoff.pickup_target_ms("x"), 30_000);

        let err = Config::parse(Path::new("k.yaml"), "handoff:\n  groups:\n    nobody: {}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("k.yaml:3:") && err.contains("skill_groups"),
            "{err}"
        );
        let err = Config::parse(
            Path::new("k.yaml"),
            "handoff:\n  groups:\n    refunds: { pickup_target: 3 }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("pickup_target"), "{err}");
        let err = Config::parse(
            Path::new("k.yaml"),
            "handoff:\n  pickup_target_seconds: 0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("more than 0"), "{err}");
    }

    #[test]
    fn variables_extend_the_defaults() {
        let c = Config::parse(
            Path::new("k.yaml"),
            "variables:\n  shop_name: Acme\n  extra: x\n",
        )
        .unwrap();
        assert_eq!(c.variables["shop_name"], "Acme");
        assert_eq!(c.variables["extra"], "x");
        assert!(c.variables.contains_key("support_hours"));
        assert!(c.validation().variables.contains("extra"));
    }

    #[test]
    fn thresholds_out_of_order_are_rejected() {
        let err = Config::parse(
            Path::new("k.yaml"),
            "thresholds: {answer: 0.2, suggest: 0.5}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("suggest ≤ answer"), "{err}");
    }

    #[test]
    fn entity_patterns_replace_or_extend_the_defaults() {
        let c = Config::parse(
            Path::new("k.yaml"),
            "entities:\n  order_no: 'KM(\\d{5})'\n  member_id: 'VIP(\\d+)'\n",
        )
        .unwrap();
        let found = c
            .entity_extractor()
            .unwrap()
            .extract("单号KM12345 会员VIP77 a@b.cn");
        assert_eq!(found["order_no"], "12345");
        assert_eq!(found["member_id"], "77");
        assert_eq!(found["email"], "a@b.cn");
        let bad = Config::parse(Path::new("k.yaml"), "entities:\n  order_no: '('\n").unwrap();
        let err = bad.entity_extractor().unwrap_err().to_string();
        assert!(err.contains("entity `order_no`"), "{err}");
    }

    #[test]
    fn the_knowledge_section_chooses_the_encoders() {
        let defaults = KnowledgeConfig::default();
        assert!(!defaults.semantic && defaults.english_encoder);
        let c = Config::parse(
            Path::new("k.yaml"),
            "knowledge:\n  semantic: true\n  english_encoder: false\n  english_model_dir: /m/en\n",
        )
        .unwrap();
        assert!(c.knowledge.semantic && !c.knowledge.english_encoder);
        assert_eq!(
            c.knowledge.english_model_dir.as_deref(),
            Some(Path::new("/m/en"))
        );
        let err = Config::parse(Path::new("k.yaml"), "knowledge:\n  english: false\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("k.yaml:2:") && err.contains("english"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_file_means_defaults() {
        assert_eq!(
            Config::parse(Path::new("k.yaml"), "\n").unwrap(),
            Config::default()
        );
    }
}
