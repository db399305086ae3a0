//! kefu's Telegram channel, on the teloxide client.
//!
//! # How a message travels
//!
//! 1. An update arrives by long polling (`getUpdates`, the default: nothing to expose to the
//!    internet) or by Telegram's webhook, mounted on `kefu serve`'s server at
//!    `POST /telegram/webhook` ([`Telegram::router`]), its `X-Telegram-Bot-Api-Secret-Token`
//!    header checked in constant time.
//! 2. [`update::read`] decides whether the bot is addressed — private chats always; groups
//!    only when the bot is mentioned, replied to or commanded — and which conversation it is
//!    (a private chat, or one member of a group: `chat:user`).
//! 3. The engine runs the turn with [`Engine::handle_via_outbox`]: the turn and its replies
//!    are stored together. Only then is the update acknowledged — the polling offset moves
//!    past it, or the webhook answers 200 — so a crash makes Telegram deliver it again
//!    rather than lose it, and a repeated update (same message id) is answered once.
//! 4. The outbox worker sends the replies through [`Telegram::channel`]: quick replies and
//!    surveys as inline keyboards, at most about one message a second per chat (twenty a
//!    minute per group) and thirty a second in all ([`pace`]); a 429 pauses the bot for its
//!    `retry_after` and the message waits in the outbox; a customer who blocked the bot is
//!    marked unreachable and not retried.
//!
//! Card keys never go to a group: the engine refuses there, with a button that opens a
//! private chat with the bot (a deep link, [`kefu_core::message::PRIVATE_CHAT`]).

pub mod pace;
mod send;
#[cfg(feature = "testing")]
pub mod testing;
pub mod update;
mod webhook;

pub use pace::Rates;
pub use update::Identity;
pub use webhook::{Cause, Rejections, SECRET_HEADER, WEBHOOK_PATH};

use kefu_core::limit::Recent;
use kefu_core::{Engine, EngineError, Locale, Outbound, OutboundKind, Outbox};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use teloxide::prelude::Requester;
use teloxide::types::{AllowedUpdate, BotCommand, MessageId, Update};
use teloxide::{Bot, RequestError};
use tokio::sync::Notify;
use update::Incoming;

/// The channel's name: [`kefu_core::ConversationKey::channel`] of Telegram conversations.
pub const CHANNEL: &str = "telegram";

/// How updates arrive.
#[derive(Clone, PartialEq, Eq)]
pub enum Mode {
    /// Long polling with `getUpdates` (any webhook set before is removed at start).
    Polling,
    /// Telegram posts updates to `POST /telegram/webhook` on kefu's server.
    Webhook {
        /// The public HTTPS address Telegram posts to, registered with `setWebhook` at
        /// start; `None` when it was registered some other way.
        url: Option<String>,
        /// The secret Telegram sends in `X-Telegram-Bot-Api-Secret-Token`.
        secret: String,
    },
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Polling => f.write_str("Polling"),
            Mode::Webhook { url, .. } => f
                .debug_struct("Webhook")
                .field("url", url)
                .field("secret", &"<hidden>")
                .finish(),
        }
    }
}

/// How the channel is set up.
#[derive(Clone)]
pub struct TelegramSettings {
    /// The bot's token from @BotFather.
    pub token: String,
    /// The Bot API server (default `https://api.telegram.org/`): a local Bot API server, or
    /// a fake in tests.
    pub api_url: Option<String>,
    /// Polling or webhook.
    pub mode: Mode,
    /// How long one `getUpdates` waits for updates (Telegram's long-poll `timeout`).
    pub poll_timeout: Duration,
    /// The largest webhook body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How fast messages may go out.
    pub rates: Rates,
    /// Messages a minute one conversation may send the bot (after a burst of 20); a flood
    /// past it is dropped unanswered, the customer told once a minute to slow down (0: no
    /// limit).
    pub per_conversation_per_minute: u32,
}

impl std::fmt::Debug for TelegramSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSettings")
            .field("token", &"<hidden>")
            .field("api_url", &self.api_url)
            .field("mode", &self.mode)
            .field("poll_timeout", &self.poll_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("rates", &self.rates)
            .field(
                "per_conversation_per_minute",
                &self.per_conversation_per_minute,
            )
            .finish()
    }
}

impl TelegramSettings {
    /// Long polling with the default limits.
    pub fn polling(token: impl Into<String>) -> Self {
        TelegramSettings {
            token: token.into(),
            api_url: None,
            mode: Mode::Polling,
            poll_timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            rates: Rates::default(),
            per_conversation_per_minute: 30,
        }
    }
}

/// Why the channel could not start or go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelegramError {
    /// The settings are wrong (an API address that is not a URL, an empty token).
    #[error("{0}")]
    Settings(String),
    /// Telegram refused or could not be reached.
    #[error("Telegram: {0}")]
    Api(String),
}

/// Why an update could not be handled now; it is to be delivered again.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The bot has not learnt who it is yet (`getMe` has not succeeded).
    #[error("the Telegram channel is still starting")]
    NotReady,
    /// The turn could not be stored.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The Telegram channel: the updates in, the messages out.
pub struct Telegram {
    engine: Arc<Engine>,
    outbox: Arc<dyn Outbox>,
    wake: Arc<Notify>,
    bot: Bot,
    settings: TelegramSettings,
    me: OnceLock<Identity>,
    pacer: pace::Pacer,
    /// In groups, the customer's last message, which the answers reply to.
    reply_to: Mutex<Recent<String, MessageId>>,
    /// Chats that blocked the bot or that it was removed from.
    unreachable: Mutex<HashSet<i64>>,
    /// Updates handled lately: one delivered again is acknowledged without another turn.
    handled: Mutex<Recent<u32, ()>>,
    /// Messages a minute per conversation: a flood past it is dropped, not answered.
    per_conversation: kefu_core::limit::RateLimiter,
    /// When each flooding conversation was last told to slow down.
    flood_notices: Mutex<Recent<String, std::time::Instant>>,
    rejections: Rejections,
}

/// The commands the bot lists in Telegram's menu, in English and in Chinese.
pub fn commands(locale: Locale) -> Vec<BotCommand> {
    let list: [(&str, &str, &str); 6] = [
        ("start", "Start: what I can do", "开始：我能做什么"),
        (
            "order",
            "Look up an order: /order ORDER_NO",
            "查订单：/order 订单号",
        ),
        ("human", "Talk to a person", "转人工客服"),
        (
            "lang",
            "Language: /lang zh or /lang en",
            "切换语言：/lang zh 或 /lang en",
        ),
        (
            "cancel",
            "Stop, or leave the queue",
            "取消当前操作或取消排队",
        ),
        ("help", "Help and commands", "帮助与命令"),
    ];
    list.iter()
        .map(|(command, en, zh)| {
            BotCommand::new(*command, if locale == Locale::Zh { *zh } else { *en })
        })
        .collect()
}

impl Telegram {
    /// A channel answering through `engine`, writing replies to `outbox` (the engine's
    /// store's) and waking the outbox worker with `wake`. Nothing is sent before
    /// [`Telegram::start`].
    pub fn new(
        engine: Arc<Engine>,
        outbox: Arc<dyn Outbox>,
        wake: Arc<Notify>,
        settings: TelegramSettings,
    ) -> Result<Arc<Self>, TelegramError> {
        if settings.token.trim().is_empty() {
            return Err(TelegramError::Settings(
                "the Telegram bot token is empty; get one from @BotFather".to_string(),
            ));
        }
        // teloxide's own client settings, on rustls whatever other TLS backends the build
        // links.
        let client = teloxide::net::default_reqwest_settings()
            .use_rustls_tls()
            .build()
            .map_err(|e| TelegramError::Settings(format!("the HTTP client: {e}")))?;
        let mut bot = Bot::with_client(settings.token.trim(), client);
        if let Some(url) = &settings.api_url {
            let mut url = url::Url::parse(url).map_err(|e| {
                TelegramError::Settings(format!(
                    "the Telegram API address {url:?} is not a URL: {e}"
                ))
            })?;
            if !url.path().ends_with('/') {
                let path = format!("{}/", url.path());
                url.set_path(&path);
            }
            bot = bot.set_api_url(url);
        }
        let per_minute = settings.per_conversation_per_minute;
        Ok(Arc::new(Telegram {
            pacer: pace::Pacer::new(settings.rates),
            engine,
            outbox,
            wake,
            bot,
            settings,
            me: OnceLock::new(),
            reply_to: Mutex::new(Recent::new(20_000)),
            unreachable: Mutex::new(HashSet::new()),
            handled: Mutex::new(Recent::new(10_000)),
            per_conversation: kefu_core::limit::RateLimiter::new(per_minute, 20),
            flood_notices: Mutex::new(Recent::new(10_000)),
            rejections: Rejections::default(),
        }))
    }

    /// Who the bot is, once [`Telegram::start`] has asked.
    pub fn identity(&self) -> Option<&Identity> {
        self.me.get()
    }

    /// Webhook requests refused so far, by cause (for `/metrics`).
    pub fn rejections(&self) -> &Rejections {
        &self.rejections
    }

    /// Learns who the bot is (`getMe`), lists its commands in both languages
    /// (`setMyCommands`), and sets up how updates arrive: `deleteWebhook` for polling,
    /// `setWebhook` with the secret for a webhook with a URL.
    pub async fn start(&self) -> Result<(), TelegramError> {
        let me = self.bot.get_me().await.map_err(|e| self.api_error(e))?;
        let identity = Identity {
            id: me.user.id,
            username: me.user.username.clone().unwrap_or_default(),
        };
        self.bot
            .set_my_commands(commands(Locale::En))
            .await
            .map_err(|e| self.api_error(e))?;
        let mut zh = self.bot.set_my_commands(commands(Locale::Zh));
        zh.language_code = Some("zh".to_string());
        zh.await.map_err(|e| self.api_error(e))?;
        let allowed = vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery];
        match &self.settings.mode {
            Mode::Polling => {
                self.bot
                    .delete_webhook()
                    .await
                    .map_err(|e| self.api_error(e))?;
            }
            Mode::Webhook {
                url: Some(url),
                secret,
            } => {
                let url = url::Url::parse(url).map_err(|e| {
                    TelegramError::Settings(format!(
                        "the webhook address {url:?} is not a URL: {e}"
                    ))
                })?;
                let mut set = self.bot.set_webhook(url);
                set.secret_token = Some(secret.clone());
                set.allowed_updates = Some(allowed);
                set.await.map_err(|e| self.api_error(e))?;
            }
            Mode::Webhook { url: None, .. } => {}
        }
        tracing::info!(bot = %identity.username, "Telegram bot ready");
        let _ = self.me.set(identity);
        Ok(())
    }

    /// [`Telegram::start`], tried again with growing pauses until it works or `shutdown`
    /// completes (then false): Telegram being unreachable when kefu starts delays the
    /// channel, it does not stop the server.
    pub async fn start_until_ready(&self, shutdown: impl std::future::Future<Output = ()>) -> bool {
        tokio::pin!(shutdown);
        let mut pause = Duration::from_millis(500);
        loop {
            match self.start().await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(error = %e, wait_ms = pause.as_millis() as u64, "the Telegram channel could not start; trying again");
                }
            }
            tokio::select! {
                () = &mut shutdown => return false,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(60));
        }
    }

    /// Starts, then (in polling mode) polls until `shutdown` completes. Each batch's updates
    /// are handled — one chat's in order, different chats side by side — and acknowledged
    /// (the offset moved past them) only once their turns are stored; an update that
    /// could not be stored is asked for again after a pause.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        if !self.start_until_ready(&mut shutdown).await {
            return;
        }
        if self.settings.mode != Mode::Polling {
            return;
        }
        let mut offset: i32 = 0;
        let mut pause = Duration::from_millis(500);
        loop {
            let mut request = self.bot.get_updates();
            request.offset = Some(offset);
            request.timeout = Some(self.settings.poll_timeout.as_secs() as u32);
            request.allowed_updates =
                Some(vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
            let polled = tokio::select! {
                () = &mut shutdown => return,
                polled = request => polled,
            };
            let updates = match polled {
                Ok(updates) => updates,
                Err(e) => {
                    let wait = match &e {
                        RequestError::RetryAfter(after) => after.duration(),
                        _ => pause,
                    };
                    tracing::warn!(error = %self.scrub(&e.to_string()), wait_ms = wait.as_millis() as u64, "getUpdates failed; polling again shortly");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            pause = Duration::from_millis(500);
            let (next, failed) = self.handle_batch(&updates).await;
            if let Some(next) = next {
                offset = offset.max(next);
            }
            if failed {
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }

    /// Handles a batch; returns the offset that acknowledges what was stored (everything
    /// before the first update that failed) and whether one failed.
    async fn handle_batch(&self, updates: &[Update]) -> (Option<i32>, bool) {
        let mut by_chat: HashMap<Option<i64>, Vec<&Update>> = HashMap::new();
        for update in updates {
            by_chat
                .entry(update.chat().map(|c| c.id.0))
                .or_default()
                .push(update);
        }
        let results = futures_util::future::join_all(by_chat.into_values().map(|chat| async move {
            let mut out = Vec::new();
            let mut failed = false;
            for update in chat {
                // After a failure, the chat's later updates wait, so they stay in order.
                let ok = !failed
                    && match self.handle(update).await {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(update = update.id.0, error = %e, "a Telegram update could not be handled; it will be asked for again");
                            false
                        }
                    };
                failed |= !ok;
                out.push((update.id.0, ok));
            }
            out
        }))
        .await;
        let mut outcomes: Vec<(u32, bool)> = results.into_iter().flatten().collect();
        outcomes.sort_by_key(|(id, _)| *id);
        let first_failed = outcomes.iter().find(|(_, ok)| !ok).map(|(id, _)| *id);
        let next = match first_failed {
            Some(id) => Some(id as i32),
            None => outcomes.last().map(|(id, _)| *id as i32 + 1),
        };
        (next, first_failed.is_some())
    }

    /// Handles one update: the engine's turn (its replies stored in the outbox), a button
    /// press answered, an unreadable private message asked to be typed. `Ok` once all of it
    /// is stored.
    pub async fn handle(&self, update: &Update) -> Result<(), HandleError> {
        let me = self.me.get().ok_or(HandleError::NotReady)?;
        if self.lock(&self.handled).contains(&update.id.0) {
            tracing::debug!(
                update = update.id.0,
                "a Telegram update delivered again; already handled"
            );
            return Ok(());
        }
        self.handle_new(update, me).await?;
        self.lock(&self.handled).insert(update.id.0, ());
        Ok(())
    }

    async fn handle_new(&self, update: &Update, me: &Identity) -> Result<(), HandleError> {
        let incoming = update::read(update, me);
        let conversation = match &incoming {
            Incoming::Turn { inbound, .. } => Some(&inbound.conversation),
            Incoming::Unreadable { conversation, .. } => Some(conversation),
            Incoming::Ignored(_) | Incoming::NotYourButton { .. } => None,
        };
        if let Some(conversation) = conversation {
            if self
                .per_conversation
                .check(&conversation.id, std::time::Instant::now())
                .is_err()
            {
                return self.flooded(conversation, &incoming).await;
            }
        }
        match incoming {
            Incoming::NotYourButton { callback, locale } => {
                let text = match locale.unwrap_or(self.engine.config().default_locale) {
                    Locale::Zh => "这个按钮是给提问的人的；有问题请 @ 我提问。",
                    _ => "This button is for the person who asked; mention me to ask your own question.",
                };
                let mut answer = self
                    .bot
                    .answer_callback_query(teloxide::types::CallbackQueryId(callback));
                answer.text = Some(text.to_string());
                if let Err(e) = answer.await {
                    tracing::debug!(error = %self.scrub(&e.to_string()), "answerCallbackQuery failed");
                }
                Ok(())
            }
            Incoming::Ignored(why) => {
                tracing::debug!(update = update.id.0, "Telegram update ignored: {why}");
                Ok(())
            }
            Incoming::Unreadable {
                conversation,
                locale,
            } => {
                let locale = locale.unwrap_or(self.engine.config().default_locale);
                let text = match locale {
                    Locale::Zh => "我暂时只能看懂文字消息，请用文字描述您的问题；需要人工客服请发送 /human。",
                    _ => "I can only read text messages for now — please type your question, or send /human to reach a person.",
                };
                let reply = Outbound {
                    conversation,
                    text: text.to_string(),
                    quick_replies: Vec::new(),
                    kind: OutboundKind::Answer,
                };
                let now = kefu_core::conversation::now_millis();
                self.outbox
                    .enqueue(vec![reply], now)
                    .await
                    .map_err(EngineError::from)?;
                self.wake.notify_one();
                Ok(())
            }
            Incoming::Turn {
                mut inbound,
                chat,
                reply_to,
                callback,
            } => {
                if let Some((id, pressed_on)) = &callback {
                    // Stops the button's spinner; a late answer only fails, harmlessly.
                    let answered = self
                        .bot
                        .answer_callback_query(teloxide::types::CallbackQueryId(id.clone()))
                        .await;
                    if let Err(e) = answered {
                        tracing::debug!(error = %self.scrub(&e.to_string()), "answerCallbackQuery failed");
                    }
                    if let Some(payload) =
                        self.button_payload(&inbound, pressed_on.as_deref()).await?
                    {
                        inbound.text = payload;
                    }
                }
                self.lock(&self.unreachable).remove(&chat.0);
                if let Some(message) = reply_to {
                    self.lock(&self.reply_to)
                        .insert(inbound.conversation.id.clone(), message);
                }
                self.engine.handle_via_outbox(inbound).await?;
                self.wake.notify_one();
                Ok(())
            }
        }
    }

    /// A conversation over its message rate: the message is dropped unanswered (counted), and
    /// the customer is told once a minute to slow down, so a flood neither runs turns nor goes
    /// unexplained.
    async fn flooded(
        &self,
        conversation: &kefu_core::ConversationKey,
        incoming: &Incoming,
    ) -> Result<(), HandleError> {
        self.rejections.count(Cause::RateLimited);
        tracing::info!(%conversation, "Telegram conversation over its message rate; message dropped");
        let now = std::time::Instant::now();
        let told_lately = self
            .lock(&self.flood_notices)
            .get(&conversation.id)
            .is_some_and(|at| now.duration_since(*at) < Duration::from_secs(60));
        if told_lately {
            return Ok(());
        }
        self.lock(&self.flood_notices)
            .insert(conversation.id.clone(), now);
        let locale = match incoming {
            Incoming::Turn { inbound, .. } => inbound.locale,
            Incoming::Unreadable { locale, .. } => *locale,
            _ => None,
        }
        .unwrap_or(self.engine.config().default_locale);
        let text = match locale {
            Locale::Zh => "您发得太快了，我跟不上 🙏 请稍等片刻，把问题合成一条发给我。",
            _ => "You're sending messages faster than I can read them 🙏 Please wait a moment and send your question in one message.",
        };
        let notice = Outbound {
            conversation: conversation.clone(),
            text: text.to_string(),
            quick_replies: Vec::new(),
            kind: OutboundKind::Answer,
        };
        self.outbox
            .enqueue(vec![notice], kefu_core::conversation::now_millis())
            .await
            .map_err(EngineError::from)?;
        self.wake.notify_one();
        Ok(())
    }

    /// What a pressed button sends: its payload, or — for a payload too long for Telegram's
    /// 64-byte `callback_data`, sent as `qr:N` — the Nth quick reply of the bot's message
    /// it was on, from the transcript. `None` leaves the text as it is.
    async fn button_payload(
        &self,
        inbound: &kefu_core::Inbound,
        pressed_on: Option<&str>,
    ) -> Result<Option<String>, EngineError> {
        let Some(n) = inbound
            .text
            .strip_prefix(send::LONG_PAYLOAD)
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return Ok(None);
        };
        let lines = self.engine.transcript(&inbound.conversation).await?;
        let mut offered = lines
            .iter()
            .rev()
            .filter(|l| l.speaker == kefu_core::Speaker::Bot && l.quick_replies.len() > n);
        let line = match pressed_on {
            Some(text) => offered.find(|l| l.text.ends_with(text.trim())),
            None => offered.next(),
        };
        Ok(line.map(|l| l.quick_replies[n].payload.clone()))
    }

    fn lock<'a, T>(&self, mutex: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
        // Each holds a map or a set changed in one call: a panic cannot leave it torn.
        mutex.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `text` with the bot's token taken out, for logs and errors.
    fn scrub(&self, text: &str) -> String {
        let token = self.settings.token.trim();
        if token.is_empty() {
            text.to_string()
        } else {
            text.replace(token, "<token>")
        }
    }

    fn api_error(&self, e: RequestError) -> TelegramError {
        TelegramError::Api(self.scrub(&e.to_string()))
    }
}
