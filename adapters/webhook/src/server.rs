//! The webhook endpoint: `POST /v1/webhook`, a signed JSON message in, the bot's replies out.

use crate::signing::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::CHANNEL;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use kefu_core::limit::{RateLimiter, RefusalCause, RefusalCounts};
use kefu_core::{ConversationKey, Engine, EngineError, Inbound, Locale, Outbound, QuickReply};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest message id and conversation id, in characters.
pub const MAX_ID_CHARS: usize = 200;
/// The longest message text, in characters.
pub const MAX_TEXT_CHARS: usize = 4_000;

/// How the endpoint is set up.
#[derive(Clone)]
pub struct WebhookSettings {
    /// The secret shared with the shop.
    pub secret: Vec<u8>,
    /// The largest body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Requests a minute per client address (0: no limit).
    pub per_ip_per_minute: u32,
    /// Messages a minute per conversation (0: no limit).
    pub per_conversation_per_minute: u32,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("secret", &"<hidden>")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("per_ip_per_minute", &self.per_ip_per_minute)
            .field(
                "per_conversation_per_minute",
                &self.per_conversation_per_minute,
            )
            .finish()
    }
}

/// Why requests were refused, counted (for `/metrics`).
pub type Rejections = RefusalCounts<Cause>;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The body was over the size limit.
    TooLarge,
    /// The body was not the message JSON.
    Malformed,
    /// No signature headers.
    SignatureMissing,
    /// Unreadable signature headers.
    SignatureMalformed,
    /// A timestamp outside the replay window.
    SignatureStale,
    /// A signature that does not match.
    SignatureMismatch,
    /// Too many requests from one address.
    RateLimitedIp,
    /// Too many messages in one conversation.
    RateLimitedConversation,
    /// The store was unavailable or busy.
    Unavailable,
}

impl RefusalCause for Cause {
    const ALL: &'static [Cause] = &[
        Cause::TooLarge,
        Cause::Malformed,
        Cause::SignatureMissing,
        Cause::SignatureMalformed,
        Cause::SignatureStale,
        Cause::SignatureMismatch,
        Cause::RateLimitedIp,
        Cause::RateLimitedConversation,
        Cause::Unavailable,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Cause::TooLarge => "too_large",
            Cause::Malformed => "malformed",
            Cause::SignatureMissing => "signature_missing",
            Cause::SignatureMalformed => "signature_malformed",
            Cause::SignatureStale => "signature_stale",
            Cause::SignatureMismatch => "signature_mismatch",
            Cause::RateLimitedIp => "rate_limited_ip",
            Cause::RateLimitedConversation => "rate_limited_conversation",
            Cause::Unavailable => "unavailable",
        }
    }
}

/// The webhook endpoint's state.
pub struct Webhook {
    engine: Arc<Engine>,
    settings: WebhookSettings,
    per_ip: RateLimiter,
    per_conversation: RateLimiter,
    rejections: Rejections,
}

impl Webhook {
    /// An endpoint answering through `engine`.
    pub fn new(engine: Arc<Engine>, settings: WebhookSettings) -> Arc<Self> {
        Arc::new(Webhook {
            per_ip: RateLimiter::new(
                settings.per_ip_per_minute,
                settings.per_ip_per_minute.div_ceil(6).max(10),
            ),
            per_conversation: RateLimiter::new(settings.per_conversation_per_minute, 5),
            engine,
            settings,
            rejections: Rejections::default(),
        })
    }

    /// Requests refused so far, by cause.
    pub fn rejections(&self) -> &Rejections {
        &self.rejections
    }

    /// The routes: `POST /v1/webhook`. Serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()` so clients are told apart.
    pub fn router(self: &Arc<Self>) -> Router {
        // The body limit is checked in the handler (with a JSON answer); this layer only
        // stops axum's own smaller default from applying first.
        Router::new()
            .route("/v1/webhook", post(receive))
            .layer(DefaultBodyLimit::max(self.settings.max_body_bytes))
            .with_state(self.clone())
    }

    fn refuse(&self, cause: Cause, status: StatusCode, message: String) -> Response {
        self.rejections.count(cause);
        tracing::info!(cause = cause.as_str(), "webhook request refused: {message}");
        (
            status,
            Json(ErrorBody {
                error: cause.as_str(),
                message,
            }),
        )
            .into_response()
    }

    fn too_many(&self, cause: Cause, wait: Duration, what: &str) -> Response {
        let mut response = self.refuse(
            cause,
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many requests {what}; try again in {} s",
                wait.as_secs().max(1)
            ),
        );
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert("retry-after", value);
        }
        response
    }
}

/// A message as the shop posts it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageIn {
    /// The message's id: the idempotency key (the same on every retry).
    id: String,
    /// The conversation (a chat, a customer session) it belongs to.
    conversation: String,
    /// Who wrote it; the conversation id when absent.
    user: Option<String>,
    /// What they wrote, or the payload of a quick reply they pressed.
    text: String,
    /// Whether the chat is private (card keys are shown only in private chats).
    #[serde(default = "private_by_default")]
    private: bool,
    /// `zh` or `en`, if the shop knows the customer's language.
    locale: Option<String>,
}

fn private_by_default() -> bool {
    true
}

/// The answer to a message.
#[derive(Debug, Serialize)]
struct Answer {
    conversation: String,
    replies: Vec<ReplyOut>,
}

/// One reply.
#[derive(Debug, Serialize)]
pub(crate) struct ReplyOut {
    pub(crate) text: String,
    pub(crate) kind: kefu_core::OutboundKind,
    pub(crate) quick_replies: Vec<QuickReply>,
}

impl From<&Outbound> for ReplyOut {
    fn from(o: &Outbound) -> Self {
        ReplyOut {
            text: o.text.clone(),
            kind: o.kind,
            quick_replies: o.quick_replies.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
}

async fn receive(
    State(hook): State<Arc<Webhook>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(wait) = hook.per_ip.check(&peer.ip().to_string(), Instant::now()) {
        return hook.too_many(Cause::RateLimitedIp, wait, "from this address");
    }
    let body = match body {
        Ok(body) if body.len() <= hook.settings.max_body_bytes => body,
        Ok(_) => return too_large(&hook),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return too_large(&hook)
        }
        Err(rejection) => {
            return hook.refuse(
                Cause::Malformed,
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {}", rejection.body_text()),
            )
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = signing::verify(
        &hook.settings.secret,
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        signing::unix_now(),
    ) {
        let cause = match e {
            signing::SignatureError::Missing => Cause::SignatureMissing,
            signing::SignatureError::Malformed => Cause::SignatureMalformed,
            signing::SignatureError::Stale => Cause::SignatureStale,
            signing::SignatureError::Mismatch => Cause::SignatureMismatch,
        };
        return hook.refuse(
            cause,
            StatusCode::UNAUTHORIZED,
            format!("{e}; nothing was processed"),
        );
    }
    let message: MessageIn = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(e) => {
            return hook.refuse(
                Cause::Malformed,
                StatusCode::BAD_REQUEST,
                format!("the body is not a message ({e}); send {{\"id\", \"conversation\", \"text\"}} and optionally \"user\", \"private\", \"locale\" — see docs/webhook.md"),
            )
        }
    };
    if let Err(problem) = check(&message) {
        return hook.refuse(Cause::Malformed, StatusCode::BAD_REQUEST, problem);
    }
    let key = ConversationKey::new(CHANNEL, message.conversation.clone());
    if let Err(wait) = hook
        .per_conversation
        .check(&message.conversation, Instant::now())
    {
        return hook.too_many(Cause::RateLimitedConversation, wait, "in this conversation");
    }
    let user = message
        .user
        .clone()
        .unwrap_or_else(|| message.conversation.clone());
    let mut inbound = Inbound::new(key.clone(), user, message.id.clone(), message.text);
    inbound.private = message.private;
    inbound.locale = message.locale.as_deref().and_then(locale);
    let replies = match hook.engine.handle(inbound).await {
        Ok(replies) if replies.is_empty() => hook
            .engine
            .replies_to(&key, &message.id)
            .await
            .map(|r| r.iter().map(ReplyOut::from).collect())
            .unwrap_or_default(),
        Ok(replies) => replies.iter().map(ReplyOut::from).collect(),
        Err(e) => return unavailable(&hook, e),
    };
    Json(Answer {
        conversation: message.conversation,
        replies,
    })
    .into_response()
}

fn too_large(hook: &Webhook) -> Response {
    hook.refuse(
        Cause::TooLarge,
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the body is larger than {} bytes; send one message per request",
            hook.settings.max_body_bytes
        ),
    )
}

fn check(message: &MessageIn) -> Result<(), String> {
    for (name, value) in [("id", &message.id), ("conversation", &message.conversation)] {
        if value.trim().is_empty() {
            return Err(format!(
                "\"{name}\" is empty; give every message its {name}"
            ));
        }
        if value.chars().count() > MAX_ID_CHARS {
            return Err(format!(
                "\"{name}\" is longer than {MAX_ID_CHARS} characters"
            ));
        }
    }
    if message.text.chars().count() > MAX_TEXT_CHARS {
        return Err(format!(
            "\"text\" is longer than {MAX_TEXT_CHARS} characters; send long messages in parts"
        ));
    }
    if let Some(tag) = &message.locale {
        if locale(tag).is_none() {
            return Err(format!(
                "\"locale\" is {tag:?}; use \"zh\" or \"en\", or leave it out"
            ));
        }
    }
    Ok(())
}

fn locale(tag: &str) -> Option<Locale> {
    let tag = tag.to_ascii_lowercase();
    if tag.starts_with("zh") {
        Some(Locale::Zh)
    } else if tag.starts_with("en") {
        Some(Locale::En)
    } else {
        None
    }
}

fn unavailable(hook: &Webhook, error: EngineError) -> Response {
    let mut response = hook.refuse(
        Cause::Unavailable,
        StatusCode::SERVICE_UNAVAILABLE,
        match &error {
            EngineError::Busy(_) => "the conversation is busy with another message; nothing was processed — send this one again in a second".to_string(),
            _ => "the bot cannot reach its store right now; nothing was processed — send the message again later".to_string(),
        },
    );
    tracing::warn!(%error, "a webhook message could not be handled");
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    response
}
