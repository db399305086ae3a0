//! The agents' console at `/console`, served by `kefu serve`: server-rendered pages with a
//! little JavaScript, updated live over server-sent events.
//!
//! - **Log-in** with an account made by `kefu agents add` (Argon2id hashes, roles agent and
//!   admin). The session token lives in an `HttpOnly`, `SameSite=Strict` cookie scoped to
//!   `/console`; the database keeps only its hash. Every form carries a CSRF token derived
//!   from the session, and a post whose `Origin` is another site is refused. Failed log-ins
//!   are counted per account and per address (atomically, across processes); past the limit
//!   log-ins wait 15 minutes.
//! - **The queue**, live: who waits (VIP and escalated ones marked, with how long), what each
//!   agent holds, overdue tickets; the agent's status (available, away).
//! - **A conversation** with its context panel: the transcript with what the bot understood
//!   and how sure it was, the customer's earlier conversations, orders (card keys masked;
//!   revealing one is audited), tickets, ratings and the hand-off history with its notes.
//!   Reply (canned replies with `{variables}` and search), take, transfer to a group or an
//!   agent with a note, open a ticket, hand back to the bot, close (the survey follows).
//! - **The dashboard** for admins: the service report over a chosen period.
//!
//! Changes reach open pages through [`Console::changed`]: the engine's events of this process
//! and, on PostgreSQL, every process's announcements on the database.

mod canned;
mod page;

pub use canned::{load_canned, CannedReply};

use crate::config::Config;
use crate::App;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kefu_core::attempts::{Counter, Limit, Space, Taken};
use kefu_core::conversation::now_millis;
use kefu_core::{
    Attempts, Conversation, ConversationKey, EngineError, EngineEvent, HandoffQueue, TransferTo,
};
use kefu_sql::{Account, Role, SqlAccounts, Status};
use kefu_web::cookie::CookieKey;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The session cookie's name.
pub const COOKIE_NAME: &str = "kefu_console";
/// The database topic console changes are announced on.
pub const TOPIC: &str = "console";
/// The window failed log-ins are counted in.
pub const LOGIN_WINDOW_MS: u64 = 15 * 60 * 1000;
/// How often an agent's `seen_at` is refreshed while they use the console.
const SEEN_EVERY_MS: u64 = 30_000;

/// The console's settings, from the `console` section and the rest of `kefu.yaml`.
#[derive(Clone)]
pub struct ConsoleSettings {
    /// Signs the forms' CSRF tokens (kept in the database, shared by every process).
    pub key: CookieKey,
    /// How long a log-in lasts.
    pub session_ms: u64,
    /// Marks the cookie `Secure`.
    pub secure_cookie: bool,
    /// Failed log-ins to one account within [`LOGIN_WINDOW_MS`].
    pub failed_per_account: usize,
    /// Failed log-ins from one address within [`LOGIN_WINDOW_MS`].
    pub failed_per_address: usize,
    /// The canned replies.
    pub canned: Vec<CannedReply>,
    /// The whole configuration (skill groups, targets, variables, time zone).
    pub config: Config,
    /// The largest form accepted, in bytes.
    pub max_body_bytes: usize,
}

/// The agents' console.
pub struct Console {
    app: App,
    accounts: SqlAccounts,
    attempts: Arc<dyn Attempts>,
    settings: ConsoleSettings,
    changes: tokio::sync::broadcast::Sender<String>,
    closing: tokio::sync::watch::Sender<bool>,
    announce: bool,
}

/// The payload of a change that concerns every page (the queue moved, events were missed).
pub const EVERYTHING: &str = "*";

/// A conversation's name in change announcements and page links.
pub fn change_id(key: &ConversationKey) -> String {
    format!("{}:{}", key.channel, key.id)
}

impl Console {
    /// The console over `app`. Call [`Console::start`] to follow the engine's events.
    pub fn new(app: App, settings: ConsoleSettings) -> Arc<Self> {
        let (changes, _) = tokio::sync::broadcast::channel(1024);
        let (closing, _) = tokio::sync::watch::channel(false);
        let announce = app.db.backend() == kefu_sql::Backend::Postgres;
        Arc::new(Console {
            accounts: app.db.accounts(),
            attempts: Arc::new(app.db.attempts()),
            app,
            settings,
            changes,
            closing,
            announce,
        })
    }

    /// Follows this process's engine events (and, on PostgreSQL, the other processes'
    /// announcements) so open pages update live.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        let mut events = self.app.events.subscribe();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let changed = match events.recv().await {
                    Ok(EngineEvent::Turn(turn)) => change_id(&turn.conversation),
                    Ok(EngineEvent::Agent(action)) => action
                        .conversation
                        .as_ref()
                        .map_or_else(|| EVERYTHING.to_string(), change_id),
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        EVERYTHING.to_string()
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(console) = weak.upgrade() else {
                    return;
                };
                console.changed(&changed).await;
            }
        });
        if self.announce {
            let mut heard = self
                .app
                .db
                .listen(TOPIC)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for console changes: {e}"))?;
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                while let Some(signal) = heard.recv().await {
                    let Some(console) = weak.upgrade() else {
                        return;
                    };
                    let id = match signal {
                        kefu_sql::Signal::Payload(id) => id,
                        kefu_sql::Signal::Everything => EVERYTHING.to_string(),
                    };
                    let _ = console.changes.send(id);
                }
            });
        }
        Ok(())
    }

    /// Tells open pages that `id` (a [`change_id`] or [`EVERYTHING`]) changed: on
    /// PostgreSQL through the database, so every process's pages hear it.
    pub async fn changed(&self, id: &str) {
        if self.announce {
            if let Err(e) = self.app.db.announce(TOPIC, id).await {
                tracing::warn!(error = %e, "cannot announce a console change");
                let _ = self.changes.send(id.to_string());
            }
        } else {
            let _ = self.changes.send(id.to_string());
        }
    }

    /// Ends the open pages' event streams (the server is stopping).
    pub fn close(&self) {
        let _ = self.closing.send(true);
    }

    /// Open event streams.
    pub fn watching(&self) -> usize {
        self.changes.receiver_count()
    }

    /// The console's routes, under `/console`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/console", get(queue_page))
            .route("/console/", get(queue_page))
            .route("/console/login", get(login_page).post(log_in))
            .route("/console/logout", post(log_out))
            .route("/console/queue", get(queue_fragment))
            .route("/console/events", get(events))
            .route("/console/status", post(set_status))
            .route("/console/conversation", get(conversation_page))
            .route("/console/conversation/live", get(transcript_fragment))
            .route("/console/act", post(act))
            .route("/console/dashboard", get(dashboard))
            .route("/console/static/console.js", get(script))
            .route("/console/static/console.css", get(style))
            .layer(DefaultBodyLimit::max(self.settings.max_body_bytes))
            .with_state(self.clone())
    }

    /// The account of the request's session cookie, if it is live; refreshes its last-seen
    /// time now and then.
    async fn session(&self, headers: &HeaderMap) -> Option<(String, Account)> {
        let token = cookie(headers, COOKIE_NAME)?;
        let now = now_millis();
        let account = match self.accounts.session(&token, now).await {
            Ok(found) => found?,
            Err(e) => {
                tracing::warn!(error = %e, "console: cannot read a session");
                return None;
            }
        };
        if account
            .seen_at
            .is_none_or(|seen| now.saturating_sub(seen) > SEEN_EVERY_MS)
        {
            if let Err(e) = self.accounts.seen(&account.name, now).await {
                tracing::debug!(error = %e, "console: cannot note an agent as seen");
            }
        }
        Some((token, account))
    }

    /// The session of a form post: a live session, a CSRF token made from it, and no
    /// other site's `Origin`. The refusal otherwise.
    async fn post_session(
        &self,
        headers: &HeaderMap,
        form: &BTreeMap<String, String>,
    ) -> Result<(String, Account), Box<Response>> {
        if !same_origin(headers) {
            return Err(Box::new(refuse(
                StatusCode::FORBIDDEN,
                "This form was sent from another site; it was not accepted.",
            )));
        }
        let Some((token, account)) = self.session(headers).await else {
            return Err(Box::new(refuse(
                StatusCode::UNAUTHORIZED,
                "Your session has ended or is not valid: log in again at /console/login.",
            )));
        };
        let csrf = form.get("csrf").map(String::as_str).unwrap_or("");
        if !self.settings.key.csrf_ok(&token, csrf) {
            return Err(Box::new(refuse(
                StatusCode::FORBIDDEN,
                "The form's security token is missing or wrong: reload the page and try again.",
            )));
        }
        Ok((token, account))
    }

    fn csrf(&self, token: &str) -> String {
        self.settings.key.csrf(token)
    }

    fn cookie_header(&self, token: &str, max_age_secs: u64) -> String {
        format!(
            "{COOKIE_NAME}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
            if self.settings.secure_cookie {
                "; Secure"
            } else {
                ""
            }
        )
    }

    /// Everything the queue page shows.
    async fn queue_view(&self, account: &Account) -> Result<page::QueueView, String> {
        let queue = self.app.db.queue();
        let waiting = queue.waiting(None).await.map_err(|e| e.to_string())?;
        let held = queue.held(None).await.map_err(|e| e.to_string())?;
        let now = now_millis();
        let overdue = self
            .app
            .agents
            .tickets()
            .overdue(now)
            .await
            .map_err(|e| e.to_string())?;
        let accounts = self.accounts.list().await.map_err(|e| e.to_string())?;
        let handoff = &self.settings.config.handoff;
        let waiting = waiting
            .into_iter()
            .map(|request| {
                let target = handoff.pickup_target_ms(&request.skill_group);
                let late = now.saturating_sub(request.enqueued_at) > target;
                (request, late)
            })
            .collect();
        Ok(page::QueueView {
            me: account.clone(),
            waiting,
            held,
            overdue,
            team: accounts.into_iter().filter(|a| !a.disabled).collect(),
            groups: self.settings.config.skill_groups.iter().cloned().collect(),
            now,
            offset_minutes: self.settings.config.self_service.utc_offset_minutes,
        })
    }

    /// What a conversation's page updates live: its transcript and who holds it. `None`
    /// for a conversation that does not exist.
    async fn live_view(
        &self,
        key: &ConversationKey,
        account: &Account,
    ) -> Result<Option<(Conversation, page::LiveView)>, String> {
        let agents = &self.app.agents;
        let Some(conversation) = agents.conversation(key).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let transcript = agents.transcript(key).await.map_err(|e| e.to_string())?;
        let queue = self.app.db.queue();
        let owner = queue.claimed_by(key).await.map_err(|e| e.to_string())?;
        let waiting = queue.position(key).await.map_err(|e| e.to_string())?;
        let live = page::LiveView {
            agent: account.name.clone(),
            transcript,
            owner,
            waiting: waiting.map(|p| p.position),
            offset_minutes: self.settings.config.self_service.utc_offset_minutes,
        };
        Ok(Some((conversation, live)))
    }

    /// Everything a conversation's page shows: the [live part](Console::live_view) and the
    /// context panel.
    async fn conversation_view(
        &self,
        key: &ConversationKey,
        account: &Account,
    ) -> Result<Option<page::ConversationView>, String> {
        let agents = &self.app.agents;
        let Some((conversation, live)) = self.live_view(key, account).await? else {
            return Ok(None);
        };
        let history = self
            .app
            .db
            .queue()
            .history(key, 20)
            .await
            .map_err(|e| e.to_string())?;
        let earlier = self
            .app
            .db
            .conversations()
            .of_customer(&conversation.user, 20)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|c| &c.key != key)
            .collect();
        let orders = agents
            .customer_orders(&key.channel, &conversation.user)
            .await
            .map_err(|e| e.to_string());
        let mut keys = BTreeMap::new();
        if let Ok(orders) = &orders {
            for order in orders.iter().take(10) {
                if let Ok(masked) = agents.masked_card_keys(&order.number).await {
                    keys.insert(order.number.clone(), masked);
                }
            }
        }
        let tickets = agents
            .tickets()
            .for_customer(&key.channel, &conversation.user)
            .await
            .map_err(|e| e.to_string())?;
        let team = self
            .accounts
            .list()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|a| !a.disabled)
            .map(|a| a.name)
            .collect();
        let canned = canned::fill(
            &self.settings.canned,
            conversation.locale,
            &canned::values(&self.settings.config, &conversation, &account.name),
        );
        Ok(Some(page::ConversationView {
            me: account.clone(),
            live,
            conversation,
            history,
            earlier,
            orders,
            keys,
            tickets,
            team,
            groups: self.settings.config.skill_groups.iter().cloned().collect(),
            canned,
            now: now_millis(),
            revealed: None,
        }))
    }
}

/// A cookie's value from the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

/// Whether a post comes from this site: its `Origin` (when the browser sends one) names this
/// host, and the browser does not say it is cross-site.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if text("sec-fetch-site").is_some_and(|site| site == "cross-site" || site == "same-site") {
        return false;
    }
    match (text(ORIGIN.as_str()), text(HOST.as_str())) {
        (Some(origin), Some(host)) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        page::message_page("kefu console", message),
    )
        .into_response()
}

fn html(body: String) -> Response {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_string())]).into_response()
}

fn to_login() -> Response {
    see_other("/console/login")
}

fn parse_form(body: &[u8]) -> Option<BTreeMap<String, String>> {
    serde_urlencoded::from_bytes(body).ok()
}

fn query_map(query: Option<String>) -> BTreeMap<String, String> {
    query
        .and_then(|q| serde_urlencoded::from_str(&q).ok())
        .unwrap_or_default()
}

/// The conversation a page or form names (`c` = channel, `id`).
fn key_of(map: &BTreeMap<String, String>) -> Option<ConversationKey> {
    let channel = map.get("c").filter(|c| !c.is_empty())?;
    let id = map.get("id").filter(|i| !i.is_empty())?;
    Some(ConversationKey::new(channel.as_str(), id.as_str()))
}

/// The query string of a conversation's page.
pub fn conversation_query(key: &ConversationKey) -> String {
    serde_urlencoded::to_string([("c", key.channel.as_str()), ("id", key.id.as_str())])
        .unwrap_or_default()
}

fn failed(what: &str, e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "console: {what}");
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("Cannot {what} right now: the database did not answer. Try again in a moment."),
    )
}

async fn login_page(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if console.session(&headers).await.is_some() {
        return see_other("/console");
    }
    html(page::login_page(None))
}

#[derive(Deserialize)]
struct LogInForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

async fn log_in(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !same_origin(&headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "This log-in was sent from another site; it was not accepted.",
        );
    }
    let Ok(form) = serde_urlencoded::from_bytes::<LogInForm>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            html(page::login_page(Some("Enter a name and a password."))),
        )
            .into_response();
    };
    let name = form.name.trim().to_string();
    let now = now_millis();
    let settings = &console.settings;
    // A try is counted before the password is checked (so parallel guesses cannot pass the
    // limit) and withdrawn when it succeeds.
    let attempt = kefu_web::cookie::random_hex(16);
    let by_name = Counter::new(
        Space::ConsoleLogIns,
        format!("name:{}", name.to_lowercase()),
    );
    let by_address = Counter::new(Space::ConsoleLogIns, format!("ip:{}", peer.ip()));
    let since = now.saturating_sub(LOGIN_WINDOW_MS);
    let mut refused = None;
    for (counter, max) in [
        (&by_address, settings.failed_per_address),
        (&by_name, settings.failed_per_account),
    ] {
        let limit = Limit {
            max: max.max(1),
            since,
        };
        match console
            .attempts
            .take(
                &format!("{attempt}:{}", counter.key),
                std::slice::from_ref(counter),
                limit,
                now,
            )
            .await
        {
            Ok(Taken::Yes) => {}
            Ok(Taken::Refused(_)) => {
                refused = Some(());
                break;
            }
            Err(e) => return failed("check the log-in", e),
        }
    }
    let withdraw = |console: Arc<Console>| async move {
        for counter in [&by_address, &by_name] {
            let _ = console
                .attempts
                .withdraw(&format!("{attempt}:{}", counter.key))
                .await;
        }
    };
    if refused.is_some() {
        withdraw(console.clone()).await;
        tracing::warn!(address = %peer.ip(), "console: log-ins refused after too many failures");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            html(page::login_page(Some(
                "Too many failed log-ins: wait 15 minutes and try again, or ask an admin to reset your password (kefu agents password NAME).",
            ))),
        )
            .into_response();
    }
    match console
        .accounts
        .log_in(&name, &form.password, now, settings.session_ms)
        .await
    {
        Ok(Some((token, account))) => {
            withdraw(console.clone()).await;
            tracing::info!(agent = %account.name, "console: logged in");
            let cookie = console.cookie_header(&token, settings.session_ms / 1000);
            (
                StatusCode::SEE_OTHER,
                [(LOCATION, "/console".to_string()), (SET_COOKIE, cookie)],
            )
                .into_response()
        }
        Ok(None) => {
            tracing::info!(address = %peer.ip(), "console: failed log-in");
            (
                StatusCode::UNAUTHORIZED,
                html(page::login_page(Some("Wrong name or password."))),
            )
                .into_response()
        }
        Err(e) => {
            withdraw(console.clone()).await;
            failed("log you in", e)
        }
    }
}

async fn log_out(State(console): State<Arc<Console>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body).unwrap_or_default();
    let (token, _) = match console.post_session(&headers, &form).await {
        Ok(session) => session,
        Err(refused) => return *refused,
    };
    if let Err(e) = console.accounts.log_out(&token).await {
        return failed("log you out", e);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/console/login".to_string()),
            (SET_COOKIE, console.cookie_header("", 0)),
        ],
    )
        .into_response()
}

async fn queue_page(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some((token, account)) = console.session(&headers).await else {
        return to_login();
    };
    match console.queue_view(&account).await {
        Ok(view) => html(page::queue_page(&view, &console.csrf(&token))),
        Err(e) => failed("read the queue", e),
    }
}

async fn queue_fragment(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let Some((token, account)) = console.session(&headers).await else {
        return refuse(StatusCode::UNAUTHORIZED, "log in again");
    };
    match console.queue_view(&account).await {
        Ok(view) => html(page::queue_section(&view, &console.csrf(&token))),
        Err(e) => failed("read the queue", e),
    }
}

async fn events(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if console.session(&headers).await.is_none() {
        return refuse(StatusCode::UNAUTHORIZED, "log in again");
    }
    struct Stream {
        changes: tokio::sync::broadcast::Receiver<String>,
        closing: tokio::sync::watch::Receiver<bool>,
    }
    let state = Stream {
        changes: console.changes.subscribe(),
        closing: console.closing.subscribe(),
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if *s.closing.borrow() {
            return None;
        }
        let id = tokio::select! {
            changed = s.changes.recv() => match changed {
                Ok(id) => id,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => EVERYTHING.to_string(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            },
            _ = s.closing.wait_for(|closing| *closing) => return None,
        };
        Some((Event::default().event("change").data(id), s))
    });
    kefu_web::event_stream(stream)
}

async fn set_status(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_form(&body).unwrap_or_default();
    let (_, account) = match console.post_session(&headers, &form).await {
        Ok(session) => session,
        Err(refused) => return *refused,
    };
    let status = match form.get("status").map(String::as_str) {
        Some("available") => Status::Available,
        Some("away") => Status::Away,
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "The status is `available` or `away`.",
            )
        }
    };
    if let Err(e) = console.accounts.set_status(&account.name, status).await {
        return failed("change your status", e);
    }
    console.changed(EVERYTHING).await;
    see_other("/console")
}

async fn conversation_page(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some((token, account)) = console.session(&headers).await else {
        return to_login();
    };
    let Some(key) = key_of(&query_map(query)) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Which conversation? The link needs c= and id=.",
        );
    };
    match console.conversation_view(&key, &account).await {
        Ok(Some(view)) => html(page::conversation_page(&view, &console.csrf(&token))),
        Ok(None) => refuse(StatusCode::NOT_FOUND, "There is no such conversation."),
        Err(e) => failed("read the conversation", e),
    }
}

async fn transcript_fragment(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some((_, account)) = console.session(&headers).await else {
        return refuse(StatusCode::UNAUTHORIZED, "log in again");
    };
    let Some(key) = key_of(&query_map(query)) else {
        return refuse(StatusCode::BAD_REQUEST, "c= and id= are needed");
    };
    match console.live_view(&key, &account).await {
        Ok(Some((_, live))) => html(page::live_section(&live)),
        Ok(None) => refuse(StatusCode::NOT_FOUND, "There is no such conversation."),
        Err(e) => failed("read the conversation", e),
    }
}

/// The refusal of a take beyond the agent's capacity.
fn at_capacity(account: &Account) -> Response {
    refuse(
        StatusCode::CONFLICT,
        &format!(
            "You already hold {} conversations (your capacity): close one first.",
            account.capacity
        ),
    )
}

/// An engine error as the agent should read it.
fn engine_refusal(e: EngineError) -> Response {
    match e {
        EngineError::HeldBy(owner) => refuse(
            StatusCode::CONFLICT,
            &format!("{owner} is handling this conversation: ask them to transfer it to you."),
        ),
        EngineError::EmptyMessage => refuse(
            StatusCode::BAD_REQUEST,
            "The message is empty: write something to send.",
        ),
        EngineError::NoConversation(_) => {
            refuse(StatusCode::NOT_FOUND, "There is no such conversation.")
        }
        other => failed("do that", other),
    }
}

async fn act(State(console): State<Arc<Console>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(form) = parse_form(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "The form could not be read.");
    };
    let (token, account) = match console.post_session(&headers, &form).await {
        Ok(session) => session,
        Err(refused) => return *refused,
    };
    let field = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or("");
    let agents = &console.app.agents;
    let me = account.name.as_str();
    let op = field("op");
    if op == "claim" {
        // The most urgent, longest-waiting one of the group, within the agent's capacity
        // (taken atomically: one a colleague takes first is skipped).
        let waiting = match console.app.db.queue().waiting(Some(field("group"))).await {
            Ok(waiting) => waiting,
            Err(e) => return failed("read the queue", e),
        };
        for request in waiting.into_iter().take(10) {
            let key = request.conversation;
            match agents.take(&key, me, account.capacity as usize).await {
                Ok(kefu_core::Take::Taken(_)) => {
                    console.changed(&change_id(&key)).await;
                    return see_other(&format!(
                        "/console/conversation?{}",
                        conversation_query(&key)
                    ));
                }
                Ok(kefu_core::Take::AtCapacity) => return at_capacity(&account),
                Ok(_) => continue,
                Err(e) => return engine_refusal(e),
            }
        }
        return see_other("/console");
    }
    let Some(key) = key_of(&form) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Which conversation? The form needs c and id.",
        );
    };
    let back = format!("/console/conversation?{}", conversation_query(&key));
    // Somebody else's case: only its owner (or an admin) may hand it on, end it or see its
    // card keys.
    let owner = match console.app.db.queue().claimed_by(&key).await {
        Ok(owner) => owner,
        Err(e) => return failed("read the queue", e),
    };
    let foreign = owner.as_deref().is_some_and(|o| o != me) && account.role != Role::Admin;
    if foreign && matches!(op, "transfer" | "release" | "close" | "reveal") {
        return engine_refusal(EngineError::HeldBy(owner.unwrap_or_default()));
    }
    let done = match op {
        "take" => match agents.take(&key, me, account.capacity as usize).await {
            Ok(kefu_core::Take::Taken(_)) => Ok(()),
            Ok(kefu_core::Take::HeldBy(owner)) => Err(EngineError::HeldBy(owner)),
            Ok(kefu_core::Take::AtCapacity) => return at_capacity(&account),
            Ok(kefu_core::Take::NotQueued) => {
                return refuse(
                    StatusCode::CONFLICT,
                    "This conversation is not waiting for a person (any more).",
                )
            }
            Err(e) => Err(e),
        },
        "reply" => agents.message(&key, me, field("text")).await.map(|_| ()),
        "transfer" => {
            let note = field("note");
            let to = match (field("group"), field("agent")) {
                (_, agent) if !agent.is_empty() => TransferTo::Agent(agent.to_string()),
                (group, _) if console.settings.config.skill_groups.contains(group) => {
                    TransferTo::Group(group.to_string())
                }
                _ => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        "Transfer to which group or agent? Pick one.",
                    )
                }
            };
            agents.transfer_to(&key, me, &to, note).await.map(|_| ())
        }
        "ticket" => {
            let order = Some(field("order")).filter(|o| !o.is_empty());
            let description = field("description");
            if description.is_empty() {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "Describe the problem for the ticket.",
                );
            }
            agents
                .open_ticket(&key, me, field("kind"), order, description, field("form"))
                .await
                .map(|_| ())
        }
        "ticket_update" => {
            let number = field("ticket");
            let Ok(status) = field("status").parse::<kefu_core::tickets::TicketStatus>() else {
                return refuse(StatusCode::BAD_REQUEST, "Pick the ticket's new status.");
            };
            // Only this customer's tickets are changed from their conversation.
            let theirs = match agents.tickets().get(number).await {
                Ok(Some(ticket)) => ticket.conversation.as_ref() == Some(&key),
                Ok(None) => false,
                Err(e) => return failed("read the ticket", e),
            };
            if !theirs {
                return refuse(
                    StatusCode::NOT_FOUND,
                    "This conversation has no such ticket.",
                );
            }
            agents
                .update_ticket(
                    number,
                    kefu_core::tickets::TicketUpdate {
                        status: Some(status),
                        owner: Some(me.to_string()),
                        by: me.to_string(),
                        note: field("note").to_string(),
                    },
                )
                .await
                .map(|_| ())
        }
        "release" => agents.release_to_bot(&key, me).await,
        "close" => agents.close(&key, me).await,
        "reveal" => {
            let order = field("order");
            let reason = field("reason");
            if reason.is_empty() {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "Say why you need the card keys: the reason is recorded in the audit log.",
                );
            }
            let view = match console.conversation_view(&key, &account).await {
                Ok(Some(view)) => view,
                Ok(None) => return refuse(StatusCode::NOT_FOUND, "There is no such conversation."),
                Err(e) => return failed("read the conversation", e),
            };
            let owned = view
                .orders
                .as_ref()
                .is_ok_and(|orders| orders.iter().any(|o| o.number == order));
            if !owned {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "Only the keys of this customer's own orders can be revealed here.",
                );
            }
            return match agents.reveal_card_keys(order, me, reason).await {
                Ok(keys) => {
                    let view = page::ConversationView {
                        revealed: Some((order.to_string(), keys)),
                        ..view
                    };
                    html(page::conversation_page(&view, &console.csrf(&token)))
                }
                Err(e) => engine_refusal(e),
            };
        }
        _ => return refuse(StatusCode::BAD_REQUEST, "Unknown action."),
    };
    match done {
        Ok(()) => {
            console.changed(&change_id(&key)).await;
            if op == "close" || op == "release" || (op == "transfer" && field("agent").is_empty()) {
                see_other("/console")
            } else {
                see_other(&back)
            }
        }
        Err(e) => engine_refusal(e),
    }
}

async fn dashboard(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some((token, account)) = console.session(&headers).await else {
        return to_login();
    };
    if account.role != Role::Admin {
        return refuse(StatusCode::FORBIDDEN, "The dashboard is for admins.");
    }
    let days = query_map(query)
        .get("days")
        .and_then(|d| d.parse::<u64>().ok())
        .filter(|d| (1..=366).contains(d))
        .unwrap_or(7);
    let until = now_millis();
    let since = until.saturating_sub(days * 24 * 60 * 60 * 1000);
    match console.app.db.report(since, until).await {
        Ok(report) => html(page::dashboard_page(
            &account,
            &report,
            days,
            &console.csrf(&token),
        )),
        Err(e) => failed("compute the report", e),
    }
}

/// A static file of the console, revalidated on every load (so a new version shows at once).
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response()
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/console.js"),
    )
}

async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../assets/console.css"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn posts_from_other_sites_are_not_same_origin() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "shop.example"),
            ("origin", "https://shop.example.evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[("origin", "null")])));
    }

    #[test]
    fn cookies_are_read_by_name() {
        let h = headers(&[("cookie", "a=1; kefu_console=abc; b=2")]);
        assert_eq!(cookie(&h, COOKIE_NAME).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn a_conversation_link_round_trips_odd_ids() {
        let key = ConversationKey::new("web", "a&b=c d/é");
        let query = conversation_query(&key);
        assert_eq!(key_of(&query_map(Some(query))), Some(key));
        assert_eq!(key_of(&query_map(Some("c=web".into()))), None);
    }
}
