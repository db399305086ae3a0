//! A fake Telegram Bot API server on loopback (feature `testing`), speaking the real wire
//! format — `POST /bot{token}/{method}` with a JSON body, answered `{"ok": true, "result": …}`
//! or `{"ok": false, "error_code": …, "description": …, "parameters": {"retry_after": N}}` —
//! so tests run the real teloxide client against it. It queues updates for `getUpdates`
//! (long polling, honouring `offset` and `timeout`), records every call, and can be told to
//! answer 429 or 403.

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The fake bot's user id.
pub const BOT_ID: i64 = 777_000;
/// The fake bot's username.
pub const BOT_USERNAME: &str = "ShopHelpBot";

/// A message the bot sent (`sendMessage`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The chat it went to.
    pub chat_id: i64,
    /// Its text.
    pub text: String,
    /// Its inline keyboard, if any (`reply_markup`).
    pub reply_markup: Option<Value>,
    /// The message it replied to, if any.
    pub reply_to: Option<i64>,
}

impl Sent {
    /// The keyboard's buttons as (label, callback_data or url), row by row.
    pub fn buttons(&self) -> Vec<(String, String)> {
        let Some(rows) = self
            .reply_markup
            .as_ref()
            .and_then(|m| m["inline_keyboard"].as_array())
        else {
            return Vec::new();
        };
        rows.iter()
            .filter_map(Value::as_array)
            .flatten()
            .map(|b| {
                let target = b["callback_data"]
                    .as_str()
                    .or_else(|| b["url"].as_str())
                    .unwrap_or_default();
                (
                    b["text"].as_str().unwrap_or_default().to_string(),
                    target.to_string(),
                )
            })
            .collect()
    }
}

#[derive(Default)]
struct Inner {
    updates: VecDeque<Value>,
    /// The highest `offset` a `getUpdates` was called with: updates below it are confirmed.
    confirmed: i64,
    calls: Vec<(String, Value)>,
    sent: Vec<Sent>,
    /// `sendMessage` calls still to answer 429, and the `retry_after` to give.
    rate_limited: u32,
    retry_after: u32,
    blocked: HashSet<i64>,
    next_message_id: i64,
}

struct Shared {
    token: String,
    inner: Mutex<Inner>,
    /// Something was called or sent (for the tests' waits).
    changed: Notify,
    /// An update was queued (for a waiting `getUpdates`).
    pushed: Notify,
}

/// The fake server; dropped, it stops.
pub struct FakeBotApi {
    /// Its base URL, for `api_url` (`http://127.0.0.1:PORT/`).
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBotApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeBotApi {
    /// Starts a fake for the bot with `token` on a free loopback port.
    pub async fn start(token: &str) -> FakeBotApi {
        let shared = Arc::new(Shared {
            token: token.to_string(),
            inner: Mutex::new(Inner {
                next_message_id: 1000,
                ..Inner::default()
            }),
            changed: Notify::new(),
            pushed: Notify::new(),
        });
        let app = Router::new()
            .route("/{bot}/{method}", post(call))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}/", listener.local_addr().expect("an address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeBotApi {
            url,
            shared,
            server,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an update for `getUpdates`.
    pub fn push(&self, update: Value) {
        self.inner().updates.push_back(update);
        self.shared.pushed.notify_waiters();
    }

    /// Every call so far to `method`, with its JSON body.
    pub fn calls(&self, method: &str) -> Vec<Value> {
        self.inner()
            .calls
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// The messages sent so far, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.inner().sent.clone()
    }

    /// The messages sent so far to `chat`.
    pub fn sent_to(&self, chat: i64) -> Vec<Sent> {
        self.sent()
            .into_iter()
            .filter(|s| s.chat_id == chat)
            .collect()
    }

    /// Updates below this id were confirmed by a later `getUpdates` offset.
    pub fn confirmed(&self) -> i64 {
        self.inner().confirmed
    }

    /// The next `n` `sendMessage` calls answer 429 with `retry_after` seconds.
    pub fn rate_limit(&self, n: u32, retry_after: u32) {
        let mut inner = self.inner();
        inner.rate_limited = n;
        inner.retry_after = retry_after;
    }

    /// Messages to `chat` answer 403: the user blocked the bot.
    pub fn block(&self, chat: i64) {
        self.inner().blocked.insert(chat);
    }

    /// Waits until `done` holds for the messages sent, at most `within`; returns them.
    pub async fn wait_sent(&self, within: Duration, done: impl Fn(&[Sent]) -> bool) -> Vec<Sent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.changed.notified();
            let sent = self.sent();
            if done(&sent) || tokio::time::Instant::now() >= deadline {
                return sent;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// Waits until `getUpdates` confirmed every update below `id`, at most `within`.
    pub async fn wait_confirmed(&self, id: i64, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.shared.changed.notified();
            if self.confirmed() >= id {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

fn ok(result: Value) -> Json<Value> {
    Json(json!({"ok": true, "result": result}))
}

fn error(code: u16, description: &str, parameters: Option<Value>) -> Json<Value> {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(p) = parameters {
        body["parameters"] = p;
    }
    Json(body)
}

fn bot_user() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": "Shop Help", "username": BOT_USERNAME})
}

/// The text fields of a `multipart/form-data` body (teloxide sends `setWebhook` that way,
/// since it may carry a certificate), as a JSON object; JSON-looking values parsed.
fn multipart_fields(content_type: &str, body: &[u8]) -> Option<Value> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let text = String::from_utf8_lossy(body);
    let mut fields = serde_json::Map::new();
    for part in text.split(&format!("--{boundary}")) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let Some(name) = head
            .split("name=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        else {
            continue;
        };
        let value = value.strip_suffix("\r\n").unwrap_or(value);
        let parsed = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
        fields.insert(name.to_string(), parsed);
    }
    Some(Value::Object(fields))
}

async fn call(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, Json<Value>) {
    use axum::http::StatusCode;
    if bot != format!("bot{}", shared.token) {
        return (StatusCode::UNAUTHORIZED, error(401, "Unauthorized", None));
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let body: Value = if body.is_empty() {
        json!({})
    } else if content_type.starts_with("multipart/form-data") {
        match multipart_fields(content_type, &body) {
            Some(fields) => fields,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    error(400, "Bad Request: can't parse the form", None),
                )
            }
        }
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    error(400, "Bad Request: can't parse JSON", None),
                )
            }
        }
    };
    // Method names are case-insensitive (teloxide sends `GetMe`); kept as the docs spell them.
    let method = [
        "getMe",
        "getUpdates",
        "sendMessage",
        "answerCallbackQuery",
        "setMyCommands",
        "deleteWebhook",
        "setWebhook",
    ]
    .into_iter()
    .find(|m| m.eq_ignore_ascii_case(&method))
    .map_or(method, str::to_string);
    if method == "getUpdates" {
        return (StatusCode::OK, get_updates(&shared, &body).await);
    }
    let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
    inner.calls.push((method.clone(), body.clone()));
    let answer = match method.as_str() {
        "getMe" => {
            let mut me = bot_user();
            me["can_join_groups"] = json!(true);
            me["can_read_all_group_messages"] = json!(false);
            me["supports_inline_queries"] = json!(false);
            me["has_main_web_app"] = json!(false);
            (StatusCode::OK, ok(me))
        }
        "sendMessage" => {
            let chat_id = body["chat_id"].as_i64().unwrap_or_default();
            if inner.rate_limited > 0 {
                inner.rate_limited -= 1;
                let after = inner.retry_after;
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    error(
                        429,
                        &format!("Too Many Requests: retry after {after}"),
                        Some(json!({"retry_after": after})),
                    ),
                )
            } else if inner.blocked.contains(&chat_id) {
                (
                    StatusCode::FORBIDDEN,
                    error(403, "Forbidden: bot was blocked by the user", None),
                )
            } else {
                inner.next_message_id += 1;
                let id = inner.next_message_id;
                let text = body["text"].as_str().unwrap_or_default().to_string();
                inner.sent.push(Sent {
                    chat_id,
                    text: text.clone(),
                    reply_markup: body.get("reply_markup").cloned(),
                    reply_to: body["reply_parameters"]["message_id"].as_i64(),
                });
                let chat = if chat_id > 0 {
                    json!({"id": chat_id, "type": "private", "first_name": "Customer"})
                } else {
                    json!({"id": chat_id, "type": "supergroup", "title": "Group"})
                };
                (
                    StatusCode::OK,
                    ok(json!({
                        "message_id": id, "date": 1_700_000_000, "chat": chat,
                        "from": bot_user(), "text": text,
                    })),
                )
            }
        }
        "answerCallbackQuery" | "setMyCommands" | "deleteWebhook" | "setWebhook" => {
            (StatusCode::OK, ok(json!(true)))
        }
        _ => (
            StatusCode::NOT_FOUND,
            error(404, "Not Found: method not found", None),
        ),
    };
    drop(inner);
    shared.changed.notify_waiters();
    answer
}

async fn get_updates(shared: &Shared, body: &Value) -> Json<Value> {
    let offset = body["offset"].as_i64().unwrap_or(0);
    let timeout = Duration::from_secs(body["timeout"].as_u64().unwrap_or(0).min(30));
    let deadline = tokio::time::Instant::now() + timeout;
    {
        let mut inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.calls.push(("getUpdates".to_string(), body.clone()));
        if offset > inner.confirmed {
            inner.confirmed = offset;
        }
        // Confirmed updates are forgotten, as Telegram does.
        inner
            .updates
            .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
    }
    shared.changed.notify_waiters();
    loop {
        let pushed = shared.pushed.notified();
        let due: Vec<Value> = {
            let inner = shared.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.updates.iter().cloned().collect()
        };
        if !due.is_empty() {
            return ok(Value::Array(due));
        }
        if tokio::time::timeout_at(deadline, pushed).await.is_err() {
            return ok(json!([]));
        }
    }
}

/// A private text message from user `user` (whose private chat has the same id).
pub fn private_text(
    update_id: i64,
    user: i64,
    message_id: i64,
    text: &str,
    language: &str,
) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": message_id, "date": 1_700_000_000,
            "chat": {"id": user, "type": "private", "first_name": "Customer"},
            "from": {"id": user, "is_bot": false, "first_name": "Customer", "language_code": language},
            "text": text,
        }
    })
}

/// A text message from `user` in group `chat`; `mention` puts `@ShopHelpBot ` before it.
pub fn group_text(
    update_id: i64,
    chat: i64,
    user: i64,
    message_id: i64,
    text: &str,
    mention: bool,
) -> Value {
    let at = format!("@{BOT_USERNAME}");
    let (text, entities) = if mention {
        let len = at.encode_utf16().count();
        (
            format!("{at} {text}"),
            json!([{"type": "mention", "offset": 0, "length": len}]),
        )
    } else {
        (text.to_string(), json!([]))
    };
    json!({
        "update_id": update_id,
        "message": {
            "message_id": message_id, "date": 1_700_000_000,
            "chat": {"id": chat, "type": "supergroup", "title": "Shop group"},
            "from": {"id": user, "is_bot": false, "first_name": "Member", "language_code": "zh-hans"},
            "text": text, "entities": entities,
        }
    })
}

/// `user` pressed a button with `data` on the bot's message `text` in `chat`.
pub fn button_press(
    update_id: i64,
    chat: i64,
    user: i64,
    id: &str,
    data: &str,
    text: &str,
) -> Value {
    let chat_json = if chat > 0 {
        json!({"id": chat, "type": "private", "first_name": "Customer"})
    } else {
        json!({"id": chat, "type": "supergroup", "title": "Shop group"})
    };
    json!({
        "update_id": update_id,
        "callback_query": {
            "id": id, "chat_instance": "ci",
            "from": {"id": user, "is_bot": false, "first_name": "Customer"},
            "data": data,
            "message": {
                "message_id": 1, "date": 1_700_000_000, "chat": chat_json,
                "from": bot_user(), "text": text,
            }
        }
    })
}
