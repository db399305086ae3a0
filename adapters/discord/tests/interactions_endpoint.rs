//! The HTTP interactions endpoint on a real server on loopback, with requests signed by
//! `ring`'s Ed25519 (not the adapter's ed25519-dalek), as Discord signs them.

mod common;

use async_trait::async_trait;
use common::*;
use kefu_core::store::{Committed, TurnCommit, TurnLock, TurnStart};
use kefu_core::{
    Conversation, ConversationKey, ConversationStore, Engine, MemoryStore, Outbox, StoreError,
    TranscriptLine,
};
use kefu_discord::{Cause, Discord, DiscordSettings};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const MAX_BODY: usize = 4096;

/// A store that fails while `down` is set (otherwise the memory store).
#[derive(Default)]
struct SwitchableStore {
    inner: MemoryStore,
    down: AtomicBool,
}

impl SwitchableStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(
                "the test turned the store off".into(),
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl ConversationStore for SwitchableStore {
    async fn lock(&self, key: &ConversationKey) -> Result<TurnLock, StoreError> {
        self.check()?;
        self.inner.lock(key).await
    }
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        self.check()?;
        self.inner.load(key).await
    }
    async fn is_processed(&self, key: &ConversationKey, id: &str) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.is_processed(key, id).await
    }
    async fn start_turn(&self, key: &ConversationKey, id: &str) -> Result<TurnStart, StoreError> {
        self.check()?;
        self.inner.start_turn(key, id).await
    }
    async fn commit(&self, turn: TurnCommit) -> Result<Committed, StoreError> {
        self.check()?;
        self.inner.commit(turn).await
    }
    async fn transcript(&self, key: &ConversationKey) -> Result<Vec<TranscriptLine>, StoreError> {
        self.check()?;
        self.inner.transcript(key).await
    }
    fn outbox(&self) -> Arc<dyn Outbox> {
        self.inner.outbox()
    }
}

struct Endpoint {
    url: String,
    keys: Ed25519KeyPair,
    discord: Arc<Discord>,
    store: Arc<SwitchableStore>,
    http: reqwest::Client,
}

fn keypair(seed: u8) -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn endpoint() -> Endpoint {
    let keys = keypair(7);
    let store = Arc::new(SwitchableStore::default());
    let engine = Arc::new(
        Engine::builder(Arc::new(knowledge()))
            .store(store.clone())
            .orders(orders(&[CUSTOMER]))
            .build(),
    );
    let settings = DiscordSettings {
        token: TOKEN.into(),
        application_id: APP_ID,
        public_key: Some(hex(keys.public_key().as_ref())),
        // Nothing listens there: the endpoint must not need the API.
        api_url: Some("http://127.0.0.1:9".into()),
        gateway: false,
        max_body_bytes: MAX_BODY,
    };
    let discord = Discord::new(engine, settings, Arc::new(tokio::sync::Notify::new())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/discord/interactions",
        listener.local_addr().unwrap()
    );
    let app = discord.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Endpoint {
        url,
        keys,
        discord,
        store,
        http: reqwest::Client::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Discord's signature: Ed25519 over `timestamp + body`.
fn sign(keys: &Ed25519KeyPair, timestamp: &str, body: &[u8]) -> String {
    let mut message = timestamp.as_bytes().to_vec();
    message.extend_from_slice(body);
    hex(keys.sign(&message).as_ref())
}

impl Endpoint {
    async fn send_signed(
        &self,
        body: &[u8],
        timestamp: i64,
        signer: &Ed25519KeyPair,
    ) -> (u16, Value) {
        let ts = timestamp.to_string();
        let signature = sign(signer, &ts, body);
        self.send(body, Some(&ts), Some(&signature)).await
    }

    async fn send(
        &self,
        body: &[u8],
        timestamp: Option<&str>,
        signature: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(ts) = timestamp {
            request = request.header("X-Signature-Timestamp", ts);
        }
        if let Some(sig) = signature {
            request = request.header("X-Signature-Ed25519", sig);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn refused(&self, cause: Cause) -> u64 {
        self.discord
            .rejections()
            .snapshot()
            .into_iter()
            .find(|(c, _)| *c == cause)
            .map_or(0, |(_, n)| n)
    }
}

fn body(value: Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

#[tokio::test]
async fn a_signed_ping_is_answered_with_a_pong() {
    let e = endpoint().await;
    let ping = body(
        json!({"type": 1, "id": "1", "application_id": APP_ID.to_string(), "token": "t", "version": 1}),
    );
    let (status, answer) = e.send_signed(&ping, now(), &e.keys).await;
    assert_eq!((status, answer), (200, json!({"type": 1})));
}

#[tokio::test]
async fn a_signed_command_is_answered_from_the_knowledge_base_with_buttons() {
    let e = endpoint().await;
    let ask = body(command_json(
        101,
        555,
        Some(333),
        CUSTOMER,
        "ask",
        Some(("question", "what is the refund policy")),
        "en-US",
    ));
    let (status, answer) = e.send_signed(&ask, now(), &e.keys).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["type"], 4);
    assert_eq!(
        answer["data"]["content"],
        "Undelivered orders are refunded in full."
    );
    assert_eq!(
        answer["data"]["flags"], 64,
        "ephemeral in a server: {answer}"
    );
    let buttons = &answer["data"]["components"][0]["components"];
    assert_eq!(buttons[0]["label"], "How to get a refund");
    assert_eq!(buttons[0]["custom_id"], "p:how do i get a refund");
    assert_eq!(
        buttons[1]["custom_id"], "qr:1",
        "the long question is referenced"
    );

    // The second button, pressed: resolved from the transcript by the message it was on.
    let press = body(button_json(
        102,
        555,
        Some(333),
        CUSTOMER,
        "qr:1",
        "Undelivered orders are refunded in full.",
    ));
    let (status, answer) = e.send_signed(&press, now(), &e.keys).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["content"], "The warranty is 7 days.");

    // A Chinese command in a DM: not ephemeral, answered in Chinese.
    let zh = body(command_json(
        103,
        556,
        None,
        CUSTOMER,
        "ask",
        Some(("question", "退款政策是什么")),
        "zh-CN",
    ));
    let (status, answer) = e.send_signed(&zh, now(), &e.keys).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["content"], "未发货订单可全额退款。");
    let flags = answer["data"]["flags"].as_u64().unwrap_or(0);
    assert_eq!(flags & 64, 0, "a DM answer is not ephemeral: {answer}");
}

#[tokio::test]
async fn a_forged_signature_is_refused() {
    let e = endpoint().await;
    let ask = body(command_json(
        201,
        555,
        Some(333),
        CUSTOMER,
        "human",
        None,
        "en-US",
    ));
    let (status, answer) = e.send_signed(&ask, now(), &keypair(8)).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"], "signature_mismatch");
    // Signed properly, but the body changed on the way.
    let ts = now().to_string();
    let signature = sign(&e.keys, &ts, &ask);
    let mut tampered = ask.clone();
    tampered.extend_from_slice(b" ");
    let (status, _) = e.send(&tampered, Some(&ts), Some(&signature)).await;
    assert_eq!(status, 401);
    // No headers, or unreadable ones.
    assert_eq!(e.send(&ask, None, None).await.0, 401);
    assert_eq!(e.send(&ask, Some(&ts), Some("not-hex")).await.0, 401);
    assert_eq!(e.refused(Cause::SignatureMismatch), 2);
    assert_eq!(e.refused(Cause::SignatureMissing), 1);
    assert_eq!(e.refused(Cause::SignatureMalformed), 1);
    let key = ConversationKey::new(kefu_discord::CHANNEL, format!("555:{CUSTOMER}"));
    assert!(
        e.discord_engine_conversation(&key).await.is_none(),
        "nothing was processed"
    );
}

impl Endpoint {
    async fn discord_engine_conversation(&self, key: &ConversationKey) -> Option<Conversation> {
        self.store.load(key).await.unwrap()
    }
}

#[tokio::test]
async fn a_stale_timestamp_is_refused_even_when_signed() {
    let e = endpoint().await;
    let ping = body(json!({"type": 1}));
    let (status, answer) = e.send_signed(&ping, now() - 600, &e.keys).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"], "signature_stale");
    let (status, _) = e.send_signed(&ping, now() + 600, &e.keys).await;
    assert_eq!(status, 401, "from the future");
    assert_eq!(e.refused(Cause::SignatureStale), 2);
}

#[tokio::test]
async fn a_replayed_request_is_refused() {
    let e = endpoint().await;
    let ask = body(command_json(
        301,
        555,
        Some(333),
        CUSTOMER,
        "ask",
        Some(("question", "what is the refund policy")),
        "en-US",
    ));
    let ts = now().to_string();
    let signature = sign(&e.keys, &ts, &ask);
    let (status, _) = e.send(&ask, Some(&ts), Some(&signature)).await;
    assert_eq!(status, 200);
    let (status, answer) = e.send(&ask, Some(&ts), Some(&signature)).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"], "replayed");
    assert_eq!(e.refused(Cause::Replayed), 1);
}

#[tokio::test]
async fn an_oversize_body_is_refused_with_413() {
    let e = endpoint().await;
    let big = body(json!({"type": 1, "padding": "x".repeat(MAX_BODY)}));
    assert!(big.len() > MAX_BODY);
    let (status, answer) = e.send_signed(&big, now(), &e.keys).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(e.refused(Cause::TooLarge), 1);
    // Just at the limit is fine.
    let mut exact = body(json!({"type": 1, "padding": ""}));
    let pad = MAX_BODY - exact.len();
    exact = body(json!({"type": 1, "padding": "x".repeat(pad)}));
    assert_eq!(exact.len(), MAX_BODY);
    assert_eq!(e.send_signed(&exact, now(), &e.keys).await.0, 200);
}

#[tokio::test]
async fn malformed_json_is_refused_with_a_clear_message() {
    let e = endpoint().await;
    let (status, answer) = e.send_signed(b"{\"type\": 2, oops", now(), &e.keys).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "malformed");
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("not an interaction"), "{message}");
    // Valid JSON that is not an answerable interaction.
    let (status, answer) = e
        .send_signed(&body(json!({"type": 2, "id": "5"})), now(), &e.keys)
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("channel_id"),
        "{answer}"
    );
    let (status, _) = e.send_signed(b"\xff\xfe", now(), &e.keys).await;
    assert_eq!(status, 400);
    assert_eq!(e.refused(Cause::Malformed), 3);
}

#[tokio::test]
async fn a_store_failure_is_503_and_the_request_can_come_again() {
    let e = endpoint().await;
    let ask = body(command_json(
        401,
        556,
        None,
        CUSTOMER,
        "ask",
        Some(("question", "what is the refund policy")),
        "en-US",
    ));
    let ts = now().to_string();
    let signature = sign(&e.keys, &ts, &ask);
    e.store.down.store(true, Ordering::SeqCst);
    let (status, answer) = e.send(&ask, Some(&ts), Some(&signature)).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(e.refused(Cause::Unavailable), 1);
    e.store.down.store(false, Ordering::SeqCst);
    let (status, answer) = e.send(&ask, Some(&ts), Some(&signature)).await;
    assert_eq!(
        status, 200,
        "not a replay: nothing was processed the first time ({answer})"
    );
    assert_eq!(
        answer["data"]["content"],
        "Undelivered orders are refunded in full."
    );
}

#[tokio::test]
async fn card_keys_are_shown_in_the_bots_dm_but_not_in_a_server() {
    let e = endpoint().await;
    let ask = |id: u64, guild: Option<u64>| {
        body(command_json(
            id,
            if guild.is_some() { 555 } else { 556 },
            guild,
            CUSTOMER,
            "ask",
            Some(("question", &format!("where is my card key {ORDER}"))),
            "en-US",
        ))
    };
    let (status, answer) = e.send_signed(&ask(501, Some(333)), now(), &e.keys).await;
    assert_eq!(status, 200, "{answer}");
    let text = answer["data"]["content"].as_str().unwrap();
    assert!(!text.contains(CARD_KEY), "{text}");
    assert!(text.contains("private"), "{text}");
    let link = &answer["data"]["components"][0]["components"][0];
    assert_eq!(link["url"], format!("https://discord.com/users/{BOT_ID}"));
    let (status, answer) = e.send_signed(&ask(502, None), now(), &e.keys).await;
    assert_eq!(status, 200, "{answer}");
    let text = answer["data"]["content"].as_str().unwrap();
    assert!(
        text.contains(CARD_KEY),
        "the buyer's own DM shows it: {text}"
    );
}

#[tokio::test]
async fn without_a_public_key_there_is_no_endpoint() {
    let (engine, _) = engine();
    let settings = DiscordSettings {
        token: TOKEN.into(),
        application_id: APP_ID,
        public_key: None,
        api_url: None,
        gateway: false,
        max_body_bytes: MAX_BODY,
    };
    let discord = Discord::new(engine, settings, Arc::new(tokio::sync::Notify::new())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/discord/interactions",
        listener.local_addr().unwrap()
    );
    let app = discord.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let status = reqwest::Client::new()
        .post(url)
        .body("{}")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 404);
    // And a key that is not one is refused at start.
    let bad = DiscordSettings {
        token: TOKEN.into(),
        application_id: APP_ID,
        public_key: Some("1234".into()),
        api_url: None,
        gateway: false,
        max_body_bytes: MAX_BODY,
    };
    let (engine, _) = common::engine();
    assert!(Discord::new(engine, bad, Arc::new(tokio::sync::Notify::new())).is_err());
}
