//! What the WeChat tests share: an engine whose store can be held back, a fake WeChat API
//! on loopback, and servers on 127.0.0.1:0.
#![allow(dead_code)]

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use kefu_core::{ConversationKey, ConversationStore, Engine, MemoryStore, Outbox};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

pub const ANSWER_ZH: &str = "退款请在订单页点击申请退款，1-3 个工作日到账。";
pub const ANSWER_EN: &str = "Refunds: press Request refund on the order page.";
pub const SECRET: &str = "app-secret-DO-NOT-LEAK";

/// A memory store whose commits wait while the gate is closed (or for `delay`), so a turn
/// is as slow as a test wants.
pub struct Gated {
    pub store: MemoryStore,
    pub open: watch::Sender<bool>,
    pub entered: AtomicU32,
    pub commits: AtomicU32,
    pub delay: Option<Duration>,
}

impl Gated {
    pub fn new(open: bool) -> Arc<Gated> {
        Arc::new(Gated {
            store: MemoryStore::new(),
            open: watch::channel(open).0,
            entered: AtomicU32::new(0),
            commits: AtomicU32::new(0),
            delay: None,
        })
    }

    pub fn delayed(delay: Duration) -> Arc<Gated> {
        Arc::new(Gated {
            store: MemoryStore::new(),
            open: watch::channel(true).0,
            entered: AtomicU32::new(0),
            commits: AtomicU32::new(0),
            delay: Some(delay),
        })
    }

    pub fn release(&self) {
        self.open.send_replace(true);
    }

    /// Waits until a commit is waiting at the gate.
    pub async fn until_entered(&self, n: u32) {
        for _ in 0..2000 {
            if self.entered.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("no turn reached the store");
    }
}

#[async_trait::async_trait]
impl ConversationStore for Gated {
    async fn lock(
        &self,
        key: &ConversationKey,
    ) -> Result<kefu_core::TurnLock, kefu_core::StoreError> {
        self.store.lock(key).await
    }
    async fn load(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<kefu_core::Conversation>, kefu_core::StoreError> {
        self.store.load(key).await
    }
    async fn is_processed(
        &self,
        key: &ConversationKey,
        message_id: &str,
    ) -> Result<bool, kefu_core::StoreError> {
        self.store.is_processed(key, message_id).await
    }
    async fn commit(
        &self,
        turn: kefu_core::TurnCommit,
    ) -> Result<kefu_core::Committed, kefu_core::StoreError> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|o| *o).await;
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.store.commit(turn).await
    }
    async fn transcript(
        &self,
        key: &ConversationKey,
    ) -> Result<Vec<kefu_core::TranscriptLine>, kefu_core::StoreError> {
        self.store.transcript(key).await
    }
    fn outbox(&self) -> Arc<dyn Outbox> {
        self.store.outbox()
    }
}

/// An engine answering refund questions (keyword 退款) on `store`.
pub fn engine(store: Arc<Gated>) -> Arc<Engine> {
    let knowledge = kefu_core::testing::OneEntry::new("refund", "退款", ANSWER_ZH, ANSWER_EN);
    Arc::new(Engine::builder(Arc::new(knowledge)).store(store).build())
}

/// One request the fake API received.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub query: HashMap<String, String>,
    pub body: serde_json::Value,
}

/// A fake WeChat / WeCom API: hands out tokens `TOKEN-1`, `TOKEN-2`..., answers sends with
/// scripted errcodes (then 0), and records everything.
#[derive(Clone, Default)]
pub struct FakeApi {
    pub url: String,
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub errcodes: Arc<Mutex<VecDeque<i64>>>,
    tokens: Arc<AtomicU32>,
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let mut fake = FakeApi::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        fake.url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/cgi-bin/token", get(token))
            .route("/cgi-bin/gettoken", get(token))
            .route("/cgi-bin/message/custom/send", post(send))
            .route("/cgi-bin/message/send", post(send))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    pub fn script(&self, codes: &[i64]) {
        self.errcodes.lock().unwrap().extend(codes);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn sends(&self) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.path.contains("/message/"))
            .collect()
    }

    pub fn token_requests(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.path.contains("token"))
            .count()
    }

    /// Waits for `n` sends.
    pub async fn until_sent(&self, n: usize) -> Vec<Call> {
        for _ in 0..1000 {
            let sends = self.sends();
            if sends.len() >= n {
                return sends;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} sends, got {:#?}", self.calls());
    }
}

async fn token(
    State(fake): State<FakeApi>,
    uri: axum::http::Uri,
    Query(query): Query<HashMap<String, String>>,
) -> Json<serde_json::Value> {
    fake.calls.lock().unwrap().push(Call {
        path: uri.path().to_string(),
        query,
        body: serde_json::Value::Null,
    });
    let n = fake.tokens.fetch_add(1, Ordering::SeqCst) + 1;
    Json(
        serde_json::json!({"errcode": 0, "errmsg": "ok", "access_token": format!("TOKEN-{n}"), "expires_in": 7200}),
    )
}

async fn send(
    State(fake): State<FakeApi>,
    uri: axum::http::Uri,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<serde_json::Value>,
) -> Json<serde_json::Value> {
    fake.calls.lock().unwrap().push(Call {
        path: uri.path().to_string(),
        query,
        body,
    });
    let code = fake.errcodes.lock().unwrap().pop_front().unwrap_or(0);
    Json(serde_json::json!({"errcode": code, "errmsg": format!("scripted {code}")}))
}

/// Serves `router` on 127.0.0.1:0; its base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// Runs an outbox worker delivering through `channel` until the test ends.
pub fn run_worker(
    outbox: Arc<dyn Outbox>,
    wake: Arc<tokio::sync::Notify>,
    channel: Arc<dyn kefu_core::Channel>,
) {
    let policy = kefu_core::RetryPolicy {
        idle_poll: Duration::from_millis(50),
        base_delay: Duration::from_millis(50),
        ..Default::default()
    };
    let worker =
        kefu_core::OutboxWorker::new(outbox, kefu_core::Channels::new().with(channel), policy)
            .with_wake(wake);
    tokio::spawn(async move { worker.run(std::future::pending()).await });
}

/// Seconds since the epoch now.
pub fn now_secs() -> String {
    (kefu_core::conversation::now_millis() / 1000).to_string()
}

/// A plaintext text message.
pub fn text_xml(from: &str, msg_id: &str, content: &str) -> String {
    format!("<xml><ToUserName><![CDATA[gh_kefu]]></ToUserName><FromUserName><![CDATA[{from}]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>")
}
