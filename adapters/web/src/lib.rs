//! kefu-web: the web chat for customers, a channel like any other.
//!
//! - `GET /chat` renders the page on the server with the conversation so far; the
//!   conversation is bound to a signed cookie ([`cookie`]), so a reload (or coming back
//!   tomorrow) shows it again. The page works without JavaScript (plain form posts); with it,
//!   messages go to `POST /chat/messages` and the replies show at once.
//! - `GET /chat/events` is a stream of server-sent events: every line added to the
//!   conversation (an agent's message, a notice, a reply given in another tab) arrives live.
//!   Streams wait on the [`hub::Hub`]; the [`WebChannel`] (what the outbox delivers through)
//!   and every turn bump it, and [`Peers`] carry the bump to the other processes serving the
//!   same database.
//! - Card keys: the live reply to the customer's own message carries them; the transcript
//!   (and so a reloaded page) has them masked, as agents see them.
//!
//! Limits: per-address and per-conversation rates (429 with `Retry-After`), a body limit
//! (413), message length, and a CSRF token bound to the conversation on every post.

pub mod cookie;
pub mod hub;
mod page;

pub use page::escape;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, State};
use axum::http::header::{
    ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION,
    SET_COOKIE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cookie::CookieKey;
use hub::Hub;
use kefu_core::conversation::Speaker;
use kefu_core::limit::{RateLimiter, RefusalCause, RefusalCounts};
use kefu_core::{
    Channel, ConversationKey, Engine, EngineError, Inbound, Locale, Outbound, OutboundKind,
    QuickReply, SendError,
};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A refusal's response, boxed (responses are large).
type Refused = Box<Response>;

/// The channel name of web-chat conversations ([`ConversationKey::channel`]).
pub const CHANNEL: &str = "web";
/// The longest message, in characters.
pub const MAX_TEXT_CHARS: usize = 2_000;
/// The longest message id, in characters.
const MAX_ID_CHARS: usize = 100;
/// How long the conversation cookie lives: a customer coming back within it sees the
/// conversation again.
const COOKIE_DAYS: u32 = 30;
/// The cookie remembering the page's language.
const LANG_COOKIE: &str = "kefu_lang";

/// How the web chat is set up.
#[derive(Debug, Clone)]
pub struct WebChatSettings {
    /// Signs the conversation cookies (the same for every process of one deployment).
    pub key: CookieKey,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Requests a minute per client address, pages and streams included (0: no limit).
    pub per_ip_per_minute: u32,
    /// Messages a minute per conversation (0: no limit).
    pub per_conversation_per_minute: u32,
    /// Marks cookies `Secure` (when the chat is served over HTTPS, as it should be).
    pub secure_cookie: bool,
    /// The page's language when the browser says nothing useful.
    pub default_locale: Locale,
}

/// The other processes serving the same web chat (one database, several `kefu serve`).
#[async_trait]
pub trait Peers: Send + Sync {
    /// Tells them conversation `id` changed, so their pages of it look again.
    async fn announce(&self, id: &str);
}

/// Why requests were refused, counted (for `/metrics`).
pub type Refusals = RefusalCounts<Refusal>;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The body was over the size limit.
    TooLarge,
    /// The body was not a message, or the message was empty or too long.
    Malformed,
    /// No valid conversation cookie.
    NoConversation,
    /// The CSRF token was missing or wrong.
    Forged,
    /// Too many requests from one address.
    RateLimitedIp,
    /// Too many messages in one conversation.
    RateLimitedConversation,
    /// The store was unavailable or busy.
    Unavailable,
}

impl RefusalCause for Refusal {
    const ALL: &'static [Refusal] = &[
        Refusal::TooLarge,
        Refusal::Malformed,
        Refusal::NoConversation,
        Refusal::Forged,
        Refusal::RateLimitedIp,
        Refusal::RateLimitedConversation,
        Refusal::Unavailable,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::Malformed => "malformed",
            Refusal::NoConversation => "no_conversation",
            Refusal::Forged => "forged",
            Refusal::RateLimitedIp => "rate_limited_ip",
            Refusal::RateLimitedConversation => "rate_limited_conversation",
            Refusal::Unavailable => "unavailable",
        }
    }
}

/// The web chat's state.
pub struct WebChat {
    engine: Arc<Engine>,
    settings: WebChatSettings,
    hub: Arc<Hub>,
    peers: Option<Arc<dyn Peers>>,
    per_ip: RateLimiter,
    per_conversation: RateLimiter,
    refusals: Refusals,
    closing: tokio::sync::watch::Sender<bool>,
}

impl WebChat {
    /// A web chat answering through `engine`, alone (one process).
    pub fn new(engine: Arc<Engine>, settings: WebChatSettings) -> Arc<Self> {
        Self::build(engine, settings, None)
    }

    /// A web chat answering through `engine`, one of several processes on one database that
    /// tell each other through `peers` (see [`WebChat::changed_here`] for the other half).
    pub fn with_peers(
        engine: Arc<Engine>,
        settings: WebChatSettings,
        peers: Arc<dyn Peers>,
    ) -> Arc<Self> {
        Self::build(engine, settings, Some(peers))
    }

    fn build(
        engine: Arc<Engine>,
        settings: WebChatSettings,
        peers: Option<Arc<dyn Peers>>,
    ) -> Arc<Self> {
        Arc::new(WebChat {
            per_ip: RateLimiter::new(
                settings.per_ip_per_minute,
                settings.per_ip_per_minute.div_ceil(6).max(10),
            ),
            per_conversation: RateLimiter::new(settings.per_conversation_per_minute, 5),
            engine,
            settings,
            hub: Arc::new(Hub::default()),
            peers,
            refusals: Refusals::default(),
            closing: tokio::sync::watch::channel(false).0,
        })
    }

    /// The routes under `/chat`. Serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()` so clients are told apart.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/chat", get(show).post(post_form))
            .route("/chat/messages", axum::routing::post(post_message))
            .route("/chat/events", get(events))
            .route("/chat/static/chat.js", get(script))
            .route("/chat/static/chat.css", get(style))
            // The body limit is checked in the handlers (with a clear answer); this layer
            // only stops axum's own smaller default from applying first.
            .layer(DefaultBodyLimit::max(self.settings.max_body_bytes))
            .with_state(self.clone())
    }

    /// What the outbox delivers web-chat messages through.
    pub fn channel(self: &Arc<Self>) -> Arc<dyn Channel> {
        Arc::new(WebChannel { chat: self.clone() })
    }

    /// Requests refused so far, by cause.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// How many conversations have a page open on this process.
    pub fn watched(&self) -> usize {
        self.hub.watched()
    }

    /// Conversation `id` changed (another process said so): its pages here look again.
    pub fn changed_here(&self, id: &str) {
        self.hub.changed(id);
    }

    /// Signals from other processes may have been missed: every page here looks again.
    pub fn everything_changed_here(&self) {
        self.hub.everything_changed();
    }

    /// Ends every event stream (the server is stopping: open pages reconnect elsewhere).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Conversation `id` changed: its pages here and on the other processes look again.
    async fn changed(&self, id: &str) {
        self.hub.changed(id);
        if let Some(peers) = &self.peers {
            peers.announce(id).await;
        }
    }

    fn refuse(&self, refusal: Refusal, status: StatusCode, message: &str) -> Response {
        self.refusals.count(refusal);
        tracing::info!(
            cause = refusal.as_str(),
            "web chat request refused: {message}"
        );
        (
            status,
            Json(ErrorBody {
                error: refusal.as_str(),
                message: message.to_string(),
            }),
        )
            .into_response()
    }

    fn too_many(&self, refusal: Refusal, wait: Duration) -> Response {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut response = self.refuse(
            refusal,
            StatusCode::TOO_MANY_REQUESTS,
            &format!("too many requests; try again in {secs} s"),
        );
        if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert("retry-after", value);
        }
        response
    }

    fn check_ip(&self, peer: &SocketAddr) -> Result<(), Refused> {
        self.per_ip
            .check(&peer.ip().to_string(), Instant::now())
            .map_err(|wait| Box::new(self.too_many(Refusal::RateLimitedIp, wait)))
    }

    /// The conversation of the request's cookie, if it is signed right.
    fn conversation_of(&self, headers: &HeaderMap) -> Option<String> {
        cookies(headers, cookie::NAME)
            .find_map(|value| self.settings.key.verify(value).map(str::to_string))
    }

    fn conversation_cookie(&self, id: &str) -> HeaderValue {
        let secure = if self.settings.secure_cookie {
            "; Secure"
        } else {
            ""
        };
        let value = format!(
            "{}={}; Path=/chat; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            cookie::NAME,
            self.settings.key.sign(id),
            COOKIE_DAYS * 86_400,
        );
        HeaderValue::from_str(&value).expect("cookie values are hex and ASCII")
    }

    /// Runs one customer message through the engine: its replies, or why not.
    async fn turn(&self, id: &str, message: MessageIn) -> Result<Vec<ReplyOut>, Refused> {
        let text = message.text.trim();
        let problem = if text.is_empty() {
            Some("the message is empty".to_string())
        } else if text.chars().count() > MAX_TEXT_CHARS {
            Some(format!(
                "the message is longer than {MAX_TEXT_CHARS} characters; send it in parts"
            ))
        } else if message.id.is_empty()
            || message.id.chars().count() > MAX_ID_CHARS
            || !message
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            Some(format!(
                "the message id must be 1 to {MAX_ID_CHARS} letters, digits, '-' or '_'"
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Box::new(self.refuse(
                Refusal::Malformed,
                StatusCode::BAD_REQUEST,
                &problem,
            )));
        }
        if let Err(wait) = self.per_conversation.check(id, Instant::now()) {
            return Err(Box::new(
                self.too_many(Refusal::RateLimitedConversation, wait),
            ));
        }
        let key = ConversationKey::new(CHANNEL, id);
        let inbound = Inbound::new(key.clone(), id, message.id.clone(), text);
        let replies = match self.engine.handle(inbound).await {
            // A retry of a message handled before: the replies it got, as recorded.
            Ok(replies) if replies.is_empty() => self
                .engine
                .replies_to(&key, &message.id)
                .await
                .unwrap_or_default(),
            Ok(replies) => replies,
            Err(e) => {
                tracing::warn!(error = %e, "a web chat message could not be handled");
                let mut response = self.refuse(
                    Refusal::Unavailable,
                    StatusCode::SERVICE_UNAVAILABLE,
                    match e {
                        EngineError::Busy(_) => "the conversation is busy with another message; nothing was processed — send it again in a second",
                        _ => "the chat cannot reach its store right now; nothing was processed — send the message again in a moment",
                    },
                );
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_static("1"));
                return Err(Box::new(response));
            }
        };
        self.changed(id).await;
        Ok(replies.iter().map(ReplyOut::from).collect())
    }
}

/// The channel the outbox delivers web-chat messages through: the message is already in the
/// conversation's transcript (written with it), so delivering is telling its pages to look.
struct WebChannel {
    chat: Arc<WebChat>,
}

#[async_trait]
impl Channel for WebChannel {
    fn name(&self) -> &str {
        CHANNEL
    }

    async fn send(&self, message: &Outbound) -> Result<(), SendError> {
        self.chat.changed(&message.conversation.id).await;
        Ok(())
    }
}

/// A message as the page posts it.
#[derive(Debug, Deserialize)]
struct MessageIn {
    /// The page's id for it: the same on every retry, so a retry is answered, not repeated.
    id: String,
    /// What the customer wrote, or the payload of the button pressed.
    text: String,
}

/// A message as the page's form posts it (without JavaScript).
#[derive(Debug, Deserialize)]
struct FormIn {
    csrf: String,
    id: String,
    text: String,
}

/// The answer to a message.
#[derive(Debug, Serialize)]
struct Answer {
    replies: Vec<ReplyOut>,
}

/// One reply, or one line of the conversation in an event.
#[derive(Debug, Serialize)]
struct ReplyOut {
    text: String,
    kind: OutboundKind,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    quick_replies: Vec<QuickReply>,
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

/// One line of the conversation as a page sees it (no matching details).
#[derive(Debug, Serialize)]
struct LineOut<'a> {
    speaker: Speaker,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "<[QuickReply]>::is_empty")]
    quick_replies: &'a [QuickReply],
}

#[derive(Debug, Serialize)]
struct ErrorBody {
    error: &'static str,
    message: String,
}

/// The values of cookie `name` in the request.
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

fn locale_tag(tag: &str) -> Option<Locale> {
    let tag = tag.trim().to_ascii_lowercase();
    if tag.starts_with("zh") {
        Some(Locale::Zh)
    } else if tag.starts_with("en") {
        Some(Locale::En)
    } else {
        None
    }
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    lang: Option<String>,
}

/// The page's language: asked for in the URL, remembered in a cookie, or the browser's first
/// Chinese or English preference.
fn page_locale(chat: &WebChat, query: &ShowQuery, headers: &HeaderMap) -> Locale {
    query
        .lang
        .as_deref()
        .and_then(locale_tag)
        .or_else(|| cookies(headers, LANG_COOKIE).find_map(locale_tag))
        .or_else(|| {
            headers
                .get(ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').find_map(|t| locale_tag(t.split(';').next()?)))
        })
        .unwrap_or(chat.settings.default_locale)
}

fn html_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
}

async fn show(
    State(chat): State<Arc<WebChat>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<ShowQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = chat.check_ip(&peer) {
        return *refused;
    }
    let locale = page_locale(&chat, &query, &headers);
    let (id, new) = match chat.conversation_of(&headers) {
        Some(id) => (id, false),
        None => (cookie::new_id(), true),
    };
    let lines = if new {
        Vec::new()
    } else {
        match chat
            .engine
            .transcript(&ConversationKey::new(CHANNEL, id.as_str()))
            .await
        {
            Ok(lines) => lines,
            Err(e) => {
                tracing::warn!(error = %e, "the web chat cannot read a conversation");
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "客服暂时无法连接，请稍后刷新。\nSupport is unavailable for a moment; please reload shortly.\n",
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_static("5"));
                return response;
            }
        }
    };
    let html = page::render(&page::Page {
        locale,
        lines: &lines,
        csrf: &chat.settings.key.csrf(&id),
        form_id: &cookie::random_hex(12),
        notice: None,
    });
    let mut response = ([(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    html_headers(&mut response);
    if new {
        response
            .headers_mut()
            .append(SET_COOKIE, chat.conversation_cookie(&id));
    }
    if let Some(lang) = query.lang.as_deref().and_then(locale_tag) {
        let value = format!(
            "{LANG_COOKIE}={}; Path=/chat; Max-Age={}; SameSite=Lax",
            lang.code(),
            COOKIE_DAYS * 86_400
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

/// A post's body, if its address is within its rate and the body within the size limit.
fn body_within(
    chat: &WebChat,
    peer: &SocketAddr,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, Refused> {
    chat.check_ip(peer)?;
    let too_large = || {
        chat.refuse(
            Refusal::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request is larger than {} bytes",
                chat.settings.max_body_bytes
            ),
        )
    };
    match body {
        Ok(body) if body.len() <= chat.settings.max_body_bytes => Ok(body),
        Ok(_) => Err(Box::new(too_large())),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(Box::new(too_large()))
        }
        Err(rejection) => Err(Box::new(chat.refuse(
            Refusal::Malformed,
            StatusCode::BAD_REQUEST,
            &format!("the body could not be read: {}", rejection.body_text()),
        ))),
    }
}

/// The conversation of a post: a signed cookie and the CSRF token that goes with it.
fn poster(chat: &WebChat, headers: &HeaderMap, token: Option<&str>) -> Result<String, Refused> {
    let Some(id) = chat.conversation_of(headers) else {
        return Err(Box::new(chat.refuse(
            Refusal::NoConversation,
            StatusCode::FORBIDDEN,
            "no conversation: open /chat first (cookies must be allowed)",
        )));
    };
    if !token.is_some_and(|t| chat.settings.key.csrf_ok(&id, t)) {
        return Err(Box::new(chat.refuse(
            Refusal::Forged,
            StatusCode::FORBIDDEN,
            "the page's token is missing or wrong: reload /chat",
        )));
    }
    Ok(id)
}

async fn post_message(
    State(chat): State<Arc<WebChat>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body_within(&chat, &peer, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let token = headers.get("x-kefu-csrf").and_then(|v| v.to_str().ok());
    let id = match poster(&chat, &headers, token) {
        Ok(id) => id,
        Err(refused) => return *refused,
    };
    let message: MessageIn = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(e) => {
            return chat.refuse(
                Refusal::Malformed,
                StatusCode::BAD_REQUEST,
                &format!("the body is not a message ({e}); send {{\"id\", \"text\"}}"),
            )
        }
    };
    match chat.turn(&id, message).await {
        Ok(replies) => Json(Answer { replies }).into_response(),
        Err(refused) => *refused,
    }
}

/// A message from the page's form (no JavaScript): handled, then back to the page.
async fn post_form(
    State(chat): State<Arc<WebChat>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body_within(&chat, &peer, body) {
        Ok(body) => body,
        Err(refused) => return *refused,
    };
    let form: FormIn = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(_) => {
            return chat.refuse(
                Refusal::Malformed,
                StatusCode::BAD_REQUEST,
                "the form is incomplete: reload /chat",
            )
        }
    };
    let id = match poster(&chat, &headers, Some(&form.csrf)) {
        Ok(id) => id,
        Err(refused) => return *refused,
    };
    match chat
        .turn(
            &id,
            MessageIn {
                id: form.id,
                text: form.text,
            },
        )
        .await
    {
        Ok(_) => (StatusCode::SEE_OTHER, [(LOCATION, "/chat")]).into_response(),
        Err(refused) => *refused,
    }
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    /// How many lines of the conversation the page already shows.
    from: Option<usize>,
}

/// The conversation's new lines, live, as server-sent events: `lines` events carrying
/// `{"next": n, "lines": [...]}` with `n` as the event id (a reconnecting browser sends it
/// back as `Last-Event-ID`), and `reset` when the conversation was shortened (erased) and the
/// page should load again.
async fn events(
    State(chat): State<Arc<WebChat>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = chat.check_ip(&peer) {
        return *refused;
    }
    let Some(id) = chat.conversation_of(&headers) else {
        return chat.refuse(
            Refusal::NoConversation,
            StatusCode::FORBIDDEN,
            "no conversation: open /chat first (cookies must be allowed)",
        );
    };
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or(query.from)
        .unwrap_or(0);
    let state = Stream {
        key: ConversationKey::new(CHANNEL, id.as_str()),
        watch: chat.hub.watch(&id),
        closing: chat.closing.subscribe(),
        chat: chat.clone(),
        next: from,
        look: true,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        let event = s.next_event().await?;
        Some((event, s))
    });
    event_stream(stream)
}

/// A server-sent event stream as a response: a comment every 15 s keeps idle connections
/// open, and proxies are asked not to buffer it.
pub fn event_stream(events: impl futures_util::Stream<Item = Event> + Send + 'static) -> Response {
    use futures_util::StreamExt;
    let mut response = Sse::new(events.map(Ok::<_, std::convert::Infallible>))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// One page's event stream.
struct Stream {
    chat: Arc<WebChat>,
    key: ConversationKey,
    watch: hub::Watch,
    closing: tokio::sync::watch::Receiver<bool>,
    /// Lines the page has.
    next: usize,
    /// Whether to read the transcript before waiting for a change.
    look: bool,
}

impl Stream {
    /// The next event, or `None` when the stream ends (the server is stopping).
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if *self.closing.borrow() {
                return None;
            }
            if !self.look {
                tokio::select! {
                    changed = self.watch.changes.changed() => changed.ok()?,
                    _ = self.closing.changed() => return None,
                }
            }
            self.watch.changes.borrow_and_update();
            self.look = false;
            let lines = match self.chat.engine.transcript(&self.key).await {
                Ok(lines) => lines,
                Err(e) => {
                    tracing::warn!(error = %e, "a web chat stream cannot read its conversation");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    self.look = true;
                    continue;
                }
            };
            if lines.len() < self.next {
                self.next = lines.len();
                return Some(Event::default().event("reset").data("{}"));
            }
            if lines.len() == self.next {
                continue;
            }
            let new: Vec<LineOut<'_>> = (self.next..lines.len())
                .map(|i| (i, &lines[i]))
                .map(|(i, l)| LineOut {
                    speaker: l.speaker,
                    text: page::shown(&lines, i),
                    message_id: l.message_id.as_deref(),
                    quick_replies: &l.quick_replies,
                })
                .collect();
            self.next = lines.len();
            let data = serde_json::json!({ "next": self.next, "lines": new });
            return Some(
                Event::default()
                    .event("lines")
                    .id(self.next.to_string())
                    .data(data.to_string()),
            );
        }
    }
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/chat.js"),
    )
}

async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../assets/chat.css"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests;
