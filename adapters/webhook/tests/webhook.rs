//! The webhook on a real HTTP server on loopback: signed messages in, replies out; forged,
//! stale, replayed, oversize and malformed requests; a callback endpoint that is down.
//!
//! Signatures are computed here with the expected values checked against constants made
//! by OpenSSL (see `signing.rs`), so a mistake in the adapter's signing cannot hide itself.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use kefu_core::outbox::{Clock, RetryPolicy};
use kefu_core::testing::OneEntry;
use kefu_core::{Channels, ConversationKey, Engine, OutboxWorker};
use kefu_webhook::signing::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use kefu_webhook::{Webhook, WebhookChannel, WebhookSettings, CHANNEL};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &[u8] = b"shop-secret";

fn engine() -> Arc<Engine> {
    let kb = Arc::new(OneEntry::new(
        "service.hours",
        "hours",
        "9点到24点",
        "We answer from 9:00 to 24:00.",
    ));
    Arc::new(Engine::builder(kb).build())
}

struct Server {
    url: String,
    engine: Arc<Engine>,
    hook: Arc<Webhook>,
    http: reqwest::Client,
}

async fn server(per_conversation_per_minute: u32) -> Server {
    let engine = engine();
    let hook = Webhook::new(
        engine.clone(),
        WebhookSettings {
            secret: SECRET.to_vec(),
            max_body_bytes: 1024,
            per_ip_per_minute: 0,
            per_conversation_per_minute,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/webhook", listener.local_addr().unwrap());
    let app = hook.router();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Server {
        url,
        engine,
        hook,
        http: reqwest::Client::new(),
    }
}

impl Server {
    async fn post(
        &self,
        body: &str,
        timestamp: u64,
        secret: &[u8],
    ) -> (StatusCode, serde_json::Value, HeaderMap) {
        let signature = signing::sign(secret, timestamp, body.as_bytes());
        let response = self
            .http
            .post(&self.url)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        let headers = HeaderMap::from_iter(response.headers().iter().filter_map(|(k, v)| {
            Some((
                axum::http::HeaderName::from_bytes(k.as_str().as_bytes()).ok()?,
                axum::http::HeaderValue::from_bytes(v.as_bytes()).ok()?,
            ))
        }));
        let json = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, json, headers)
    }

    async fn signed(&self, body: &str) -> (StatusCode, serde_json::Value, HeaderMap) {
        self.post(body, signing::unix_now(), SECRET).await
    }

    async fn lines(&self, conversation: &str) -> usize {
        self.engine
            .transcript(&ConversationKey::new(CHANNEL, conversation))
            .await
            .unwrap()
            .len()
    }

    fn rejected(&self, cause: &str) -> u64 {
        self.hook
            .rejections()
            .by_name()
            .into_iter()
            .find(|(c, _)| *c == cause)
            .map_or(0, |(_, n)| n)
    }
}

const HOURS: &str = r#"{"id":"m1","conversation":"c1","user":"u1","text":"what are your hours?"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_message_is_answered_in_the_response() {
    let s = server(0).await;
    let (status, json, _) = s.signed(HOURS).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["conversation"], "c1");
    assert_eq!(json["replies"][0]["text"], "We answer from 9:00 to 24:00.");
    assert_eq!(json["replies"][0]["kind"], "answer");
    assert_eq!(s.lines("c1").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_unsigned_messages_are_refused_and_nothing_is_processed() {
    let s = server(0).await;
    let now = signing::unix_now();
    let (status, json, _) = s.post(HOURS, now, b"not-the-secret").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"], "signature_mismatch");
    let (status, json, _) = s.post(HOURS, now - 301, SECRET).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"], "signature_stale");
    let response = s.http.post(&s.url).body(HOURS).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // A body changed after signing.
    let signature = signing::sign(SECRET, now, HOURS.as_bytes());
    let changed = HOURS.replace("hours", "HOURS");
    let response = s
        .http
        .post(&s.url)
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(changed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(s.lines("c1").await, 0, "nothing was processed");
    assert_eq!(s.rejected("signature_mismatch"), 2);
    assert_eq!(s.rejected("signature_stale"), 1);
    assert_eq!(s.rejected("signature_missing"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_message_is_answered_again_but_handled_once() {
    let s = server(0).await;
    let (_, first, _) = s.signed(HOURS).await;
    let (status, again, _) = s.signed(HOURS).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["replies"][0]["text"], first["replies"][0]["text"]);
    assert_eq!(s.lines("c1").await, 2, "handled once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_malformed_bodies_get_clear_errors() {
    let s = server(0).await;
    let big = format!(
        r#"{{"id":"m1","conversation":"c1","text":"{}"}}"#,
        "x".repeat(2_000)
    );
    let (status, json, _) = s.signed(&big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    assert_eq!(json["error"], "too_large");
    let (status, json, _) = s.signed("{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "malformed");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("docs/webhook.md"),
        "{json}"
    );
    let (status, json, _) = s
        .signed(r#"{"id":"m1","conversation":"c1","txt":"hi"}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    let (status, json, _) = s
        .signed(r#"{"id":"","conversation":"c1","text":"hi"}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("\"id\" is empty"),
        "{json}"
    );
    let (status, _, _) = s
        .signed(r#"{"id":"m1","conversation":"c1","text":"hi","locale":"fr"}"#)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(s.lines("c1").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_conversation_gets_429_with_retry_after() {
    let s = server(6).await;
    let mut statuses = Vec::new();
    for i in 0..7 {
        let body = format!(r#"{{"id":"m{i}","conversation":"c1","text":"what are your hours?"}}"#);
        let (status, _, headers) = s.signed(&body).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=10).contains(&wait), "{wait}");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    // Another conversation is not slowed down.
    let (status, _, _) = s
        .signed(r#"{"id":"x1","conversation":"c2","text":"hi"}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// A callback endpoint answering from a script of statuses, recording what it got.
#[derive(Clone, Default)]
struct Callback {
    statuses: Arc<Mutex<Vec<u16>>>,
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

async fn callback(State(cb): State<Callback>, headers: HeaderMap, body: String) -> StatusCode {
    let status = {
        let mut statuses = cb.statuses.lock().unwrap();
        if statuses.is_empty() {
            200
        } else {
            statuses.remove(0)
        }
    };
    cb.got.lock().unwrap().push((headers, body));
    StatusCode::from_u16(status).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_message_reaches_a_callback_that_was_down_once_signed() {
    let s = server(0).await;
    s.signed(HOURS).await;
    let cb = Callback::default();
    cb.statuses.lock().unwrap().extend([503, 503]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callback", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/callback", post(callback))
        .with_state(cb.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let key = ConversationKey::new(CHANNEL, "c1");
    s.engine
        .agents()
        .message(&key, "amy", "您好，我是客服小美")
        .await
        .unwrap();
    let channel = Arc::new(WebhookChannel::new(&url, SECRET.to_vec()).unwrap());
    let clock = Clock::manual(1_000_000);
    let policy = RetryPolicy {
        base_delay: Duration::from_secs(1),
        ..RetryPolicy::default()
    };
    let worker = OutboxWorker::new(
        s.engine.agents().outbox(),
        Channels::new().with(channel),
        policy,
    )
    .with_clock(clock.clone());
    let mut sent = 0;
    for _ in 0..6 {
        sent += worker.run_once().await.unwrap().sent;
        clock.advance(Duration::from_secs(60));
    }
    assert_eq!(sent, 1);
    let got = cb.got.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "two refusals, then the delivery");
    let delivery = got[0].0["idempotency-key"].to_str().unwrap().to_string();
    for (headers, body) in &got {
        assert_eq!(
            headers["idempotency-key"],
            delivery.as_str(),
            "the same id on every retry"
        );
        let verified = signing::verify(
            SECRET,
            headers[TIMESTAMP_HEADER].to_str().ok(),
            headers[SIGNATURE_HEADER].to_str().ok(),
            body.as_bytes(),
            signing::unix_now(),
        );
        assert_eq!(verified, Ok(()));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["conversation"], "c1");
        assert_eq!(json["message"]["text"], "您好，我是客服小美");
        assert_eq!(json["message"]["kind"], "agent_message");
    }
}

#[test]
fn plain_http_callbacks_are_refused_unless_local() {
    let e = WebhookChannel::new("http://shop.example.com/cb", SECRET.to_vec()).unwrap_err();
    assert!(e.to_string().contains("use https"), "{e}");
    assert!(WebhookChannel::new("http://127.0.0.1:9/cb", SECRET.to_vec()).is_ok());
    assert!(WebhookChannel::new("https://shop.example.com/cb", SECRET.to_vec()).is_ok());
    assert!(WebhookChannel::new("ftp://x", SECRET.to_vec()).is_err());
}
