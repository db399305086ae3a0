//! A fake of the parts of Discord's HTTP API and gateway serenity uses, on loopback (feature
//! `testing`): `GET /api/v10/gateway` names a WebSocket gateway that says HELLO, takes
//! IDENTIFY, sends READY, acknowledges heartbeats and sends the dispatches a test asks for;
//! the HTTP API records messages, interaction callbacks and command registrations.

#![allow(missing_docs)]

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;

/// The bot's application id (and its user id, as for bots made in the developer portal).
pub const APP_ID: u64 = 4_000_000_000_000_001;
/// The bot user's id in READY.
pub const BOT_ID: u64 = 4_000_000_000_000_001;
/// The fake gateway's heartbeat interval (short, so the tests see heartbeats).
pub const HEARTBEAT_MS: u64 = 250;
/// The bot's token in the tests.
pub const TOKEN: &str = "fake-token.abc.xyz";

/// One request the fake API received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

/// What the fake remembers and how it should answer.
#[derive(Default)]
pub struct FakeState {
    pub requests: Mutex<Vec<Recorded>>,
    /// Answers for the next `POST .../messages` (status, retry-after header, body), before
    /// the normal 200.
    pub message_failures: Mutex<VecDeque<(u16, Option<String>, String)>>,
    /// The IDENTIFY payloads the gateway got.
    pub identifies: Mutex<Vec<Value>>,
    /// Heartbeats the gateway acknowledged.
    pub heartbeats: Mutex<u32>,
    next_id: Mutex<u64>,
}

impl FakeState {
    fn record(&self, method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) {
        self.requests.lock().unwrap().push(Recorded {
            method: method.to_string(),
            path: path.to_string(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
        });
    }

    /// The requests with `method` whose path starts with `prefix`.
    pub fn requests(&self, method: &str, prefix: &str) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Messages posted to channel `channel` (their bodies).
    pub fn posted(&self, channel: u64) -> Vec<Value> {
        self.requests("POST", &format!("/api/v10/channels/{channel}/messages"))
            .into_iter()
            .map(|r| r.body)
            .collect()
    }

    /// Interaction callbacks for interaction `id` (their bodies).
    pub fn callbacks(&self, id: u64) -> Vec<Value> {
        self.requests("POST", &format!("/api/v10/interactions/{id}/"))
            .into_iter()
            .map(|r| r.body)
            .collect()
    }

    fn id(&self) -> u64 {
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        7_000_000_000_000_000 + *next
    }
}

/// The fake Discord: the HTTP API at [`FakeDiscord::api_url`], the gateway it names.
pub struct FakeDiscord {
    pub api_url: String,
    pub state: Arc<FakeState>,
    dispatches: mpsc::UnboundedSender<(String, Value)>,
}

impl FakeDiscord {
    pub async fn start() -> FakeDiscord {
        let state = Arc::new(FakeState::default());
        let gateway = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws_url = format!("ws://{}", gateway.local_addr().unwrap());
        let (dispatches, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_gateway(gateway, state.clone(), receiver));
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_url = format!("http://{}", api.local_addr().unwrap());
        let app = Router::new()
            .route("/api/v10/gateway", get(gateway_url))
            .route("/api/v10/gateway/bot", get(gateway_url))
            .route("/api/v10/channels/{channel}/messages", post(create_message))
            .route(
                "/api/v10/interactions/{id}/{token}/callback",
                post(interaction_callback),
            )
            .route("/api/v10/applications/{app}/commands", put(set_commands))
            .fallback(unknown)
            .with_state((state.clone(), ws_url));
        tokio::spawn(async move { axum::serve(api, app).await.unwrap() });
        FakeDiscord {
            api_url,
            state,
            dispatches,
        }
    }

    /// Sends a dispatch (op 0) with event name `t` over the gateway.
    pub fn dispatch(&self, t: &str, d: Value) {
        self.dispatches.send((t.to_string(), d)).unwrap();
    }
}

type Shared = (Arc<FakeState>, String);

async fn gateway_url(
    State((state, ws_url)): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Json<Value> {
    state.record(&method, uri.path(), &headers, b"");
    Json(json!({
        "url": ws_url,
        "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
    }))
}

async fn create_message(
    State((state, _)): State<Shared>,
    Path(channel): Path<u64>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.record(&method, uri.path(), &headers, &body);
    let failure = state.message_failures.lock().unwrap().pop_front();
    if let Some((status, retry_after, body)) = failure {
        let mut response = (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
            .into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", secs.parse().unwrap());
        }
        return response;
    }
    let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Json(message_json(
        state.id(),
        channel,
        None,
        BOT_ID,
        true,
        sent["content"].as_str().unwrap_or_default(),
        &[],
    ))
    .into_response()
}

async fn interaction_callback(
    State((state, _)): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    state.record(&method, uri.path(), &headers, &body);
    StatusCode::NO_CONTENT
}

async fn set_commands(
    State((state, _)): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    state.record(&method, uri.path(), &headers, &body);
    Json(json!([]))
}

async fn unknown(
    State((state, _)): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.record(&method, uri.path(), &headers, &body);
    (
        StatusCode::NOT_FOUND,
        Json(json!({"code": 0, "message": "the fake does not know this route"})),
    )
        .into_response()
}

/// The fake gateway: one connection at a time — HELLO, IDENTIFY, READY, then the test's
/// dispatches; heartbeats acknowledged.
async fn run_gateway(
    listener: TcpListener,
    state: Arc<FakeState>,
    receiver: mpsc::UnboundedReceiver<(String, Value)>,
) {
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
            continue;
        };
        let mut seq = 0u64;
        let hello =
            json!({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_MS}, "s": null, "t": null});
        if ws.send(Ws::Text(hello.to_string())).await.is_err() {
            continue;
        }
        let mut receiver = receiver.lock().await;
        loop {
            tokio::select! {
                frame = ws.next() => {
                    let Some(Ok(frame)) = frame else { break };
                    let Ws::Text(text) = frame else { continue };
                    let Ok(payload) = serde_json::from_str::<Value>(&text) else { continue };
                    match payload["op"].as_u64() {
                        Some(1) => {
                            *state.heartbeats.lock().unwrap() += 1;
                            let ack = json!({"op": 11, "d": null, "s": null, "t": null});
                            if ws.send(Ws::Text(ack.to_string())).await.is_err() { break }
                        }
                        Some(2) => {
                            state.identifies.lock().unwrap().push(payload["d"].clone());
                            seq += 1;
                            if ws.send(Ws::Text(ready(seq).to_string())).await.is_err() { break }
                        }
                        _ => {}
                    }
                }
                dispatch = receiver.recv() => {
                    let Some((t, d)) = dispatch else { return };
                    seq += 1;
                    let event = json!({"op": 0, "s": seq, "t": t, "d": d});
                    if ws.send(Ws::Text(event.to_string())).await.is_err() { break }
                }
            }
        }
    }
}

fn ready(seq: u64) -> Value {
    json!({
        "op": 0, "s": seq, "t": "READY",
        "d": {
            "v": 10,
            "user": user_json(BOT_ID, "kefu-bot", true),
            "guilds": [],
            "session_id": "fake-session",
            "resume_gateway_url": "ws://127.0.0.1:1",
            "application": {"id": APP_ID.to_string(), "flags": 0}
        }
    })
}

pub fn user_json(id: u64, name: &str, bot: bool) -> Value {
    json!({
        "id": id.to_string(), "username": name, "discriminator": "0",
        "global_name": null, "avatar": null, "bot": bot
    })
}

/// A MESSAGE_CREATE payload; `guild` None for a DM.
pub fn message_json(
    id: u64,
    channel: u64,
    guild: Option<u64>,
    author: u64,
    bot: bool,
    content: &str,
    mentions: &[u64],
) -> Value {
    let mut message = json!({
        "id": id.to_string(),
        "channel_id": channel.to_string(),
        "author": user_json(author, if bot { "kefu-bot" } else { "buyer" }, bot),
        "content": content,
        "timestamp": "2024-05-01T12:00:00.000000+00:00",
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": mentions.iter().map(|m| user_json(*m, "kefu-bot", true)).collect::<Vec<_>>(),
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": false,
        "type": 0
    });
    if let Some(guild) = guild {
        message["guild_id"] = json!(guild.to_string());
    }
    message
}

fn member_json(user: u64) -> Value {
    json!({
        "user": user_json(user, "buyer", false),
        "roles": [], "joined_at": "2024-01-01T00:00:00.000000+00:00",
        "deaf": false, "mute": false, "flags": 0
    })
}

/// An INTERACTION_CREATE payload: the slash command `name` with a string option.
pub fn command_json(
    id: u64,
    channel: u64,
    guild: Option<u64>,
    user: u64,
    name: &str,
    option: Option<(&str, &str)>,
    locale: &str,
) -> Value {
    let mut interaction = json!({
        "id": id.to_string(),
        "application_id": APP_ID.to_string(),
        "type": 2,
        "token": format!("itoken-{id}"),
        "version": 1,
        "channel_id": channel.to_string(),
        "locale": locale,
        "entitlements": [],
        "attachment_size_limit": 10_485_760,
        "data": {
            "id": "5000000000000001",
            "name": name,
            "type": 1,
            "options": option.map(|(n, v)| vec![json!({"name": n, "type": 3, "value": v})]).unwrap_or_default()
        }
    });
    place(&mut interaction, guild, user);
    interaction
}

/// An INTERACTION_CREATE payload: a button `custom_id` pressed on a message showing
/// `content`.
pub fn button_json(
    id: u64,
    channel: u64,
    guild: Option<u64>,
    user: u64,
    custom_id: &str,
    content: &str,
) -> Value {
    let mut interaction = json!({
        "id": id.to_string(),
        "application_id": APP_ID.to_string(),
        "type": 3,
        "token": format!("itoken-{id}"),
        "version": 1,
        "channel_id": channel.to_string(),
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": 10_485_760,
        "data": {"custom_id": custom_id, "component_type": 2},
        "message": message_json(6_000_000_000_000_001, channel, guild, BOT_ID, true, content, &[])
    });
    place(&mut interaction, guild, user);
    interaction
}

fn place(interaction: &mut Value, guild: Option<u64>, user: u64) {
    match guild {
        Some(guild) => {
            interaction["guild_id"] = json!(guild.to_string());
            interaction["member"] = member_json(user);
            interaction["context"] = json!(0);
        }
        None => {
            interaction["user"] = user_json(user, "buyer", false);
            interaction["context"] = json!(1);
        }
    }
}
