//! serenity itself, run by the adapter, against a local fake of Discord's HTTP API and
//! gateway: messages and interactions in, replies out through the outbox worker and the
//! interaction callbacks.

mod common;

use common::*;
use kefu_core::{
    Channels, ConversationKey, ConversationStore, Engine, MemoryStore, Outbound, OutboundKind,
    OutboxState, OutboxWorker, QuickReply, RetryPolicy, SendError,
};
use kefu_discord::{Discord, DiscordSettings, CHANNEL};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

const DM: u64 = 800_000_000_000_001;
const GUILD: u64 = 300_000_000_000_003;
const ROOM: u64 = 550_000_000_000_005;
const OTHER_ROOM: u64 = 550_000_000_000_006;

struct Bot {
    fake: FakeDiscord,
    discord: Arc<Discord>,
    engine: Arc<Engine>,
    store: Arc<MemoryStore>,
    stop: Option<oneshot::Sender<()>>,
    gateway: Option<tokio::task::JoinHandle<Result<(), kefu_discord::DiscordError>>>,
    stop_worker: Option<oneshot::Sender<()>>,
}

fn settings(fake: &FakeDiscord) -> DiscordSettings {
    DiscordSettings {
        token: TOKEN.into(),
        application_id: APP_ID,
        public_key: None,
        api_url: Some(fake.api_url.clone()),
        gateway: true,
        max_body_bytes: 16 * 1024,
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(1),
        send_timeout: Duration::from_secs(5),
        lease: Duration::from_secs(30),
        batch: 16,
        idle_poll: Duration::from_millis(50),
    }
}

/// The fake, the adapter connected to it through serenity (READY seen, commands registered)
/// and the outbox worker delivering through the adapter's channel, woken by it.
async fn start() -> Bot {
    let fake = FakeDiscord::start().await;
    let (engine, store) = engine();
    let wake = Arc::new(Notify::new());
    let discord = Discord::new(engine.clone(), settings(&fake), wake.clone()).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let gateway = tokio::spawn(discord.clone().run_gateway(async move {
        let _ = stopped.await;
    }));
    let worker = Arc::new(
        OutboxWorker::new(
            store.outbox(),
            Channels::new().with(discord.channel()),
            policy(),
        )
        .with_wake(wake),
    );
    let (stop_worker, worker_stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        worker
            .run(async move {
                let _ = worker_stopped.await;
            })
            .await
    });
    let state = fake.state.clone();
    eventually("the slash commands registered on READY", || {
        (!state.requests("PUT", "/api/v10/applications/").is_empty()).then_some(())
    })
    .await;
    Bot {
        fake,
        discord,
        engine,
        store,
        stop: Some(stop),
        gateway: Some(gateway),
        stop_worker: Some(stop_worker),
    }
}

impl Bot {
    async fn message_to(&self, channel: u64, count: usize) -> Vec<Value> {
        let state = self.fake.state.clone();
        eventually(&format!("{count} message(s) posted to {channel}"), || {
            let posted = state.posted(channel);
            (posted.len() >= count).then_some(posted)
        })
        .await
    }

    async fn callback(&self, interaction: u64) -> Value {
        let state = self.fake.state.clone();
        eventually(
            &format!("the callback of interaction {interaction}"),
            || state.callbacks(interaction).into_iter().next(),
        )
        .await
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(10), self.gateway.take().unwrap())
            .await
            .expect("the gateway stops on shutdown")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
        let _ = self.stop_worker.take().unwrap().send(());
    }
}

#[tokio::test]
async fn the_bot_identifies_registers_its_slash_commands_and_stops_on_shutdown() {
    let bot = start().await;
    let identify = bot.fake.state.identifies.lock().unwrap()[0].clone();
    assert_eq!(
        identify["token"],
        format!("Bot {TOKEN}"),
        "serenity identifies with the bot token"
    );
    let intents = identify["intents"].as_u64().unwrap();
    assert_eq!(
        intents,
        (1 << 9) | (1 << 12),
        "GUILD_MESSAGES | DIRECT_MESSAGES"
    );
    let put = &bot.fake.state.requests("PUT", "/api/v10/applications/")[0];
    assert_eq!(put.path, format!("/api/v10/applications/{APP_ID}/commands"));
    assert_eq!(put.authorization.as_deref(), Some(&*format!("Bot {TOKEN}")));
    let names: Vec<_> = put
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, [json!("ask"), json!("human"), json!("order")]);
    assert_eq!(put.body[0]["name_localizations"]["zh-CN"], "提问");
    assert_eq!(
        put.body[1]["description_localizations"]["zh-CN"],
        "转人工客服"
    );
    assert_eq!(put.body[2]["options"][0]["name"], "number");
    assert_eq!(put.body[2]["options"][0]["required"], true);
    // The gateway was asked through the proxy, not discord.com.
    assert!(!bot
        .fake
        .state
        .requests("GET", "/api/v10/gateway")
        .is_empty());
    // Heartbeats are sent and acknowledged, and the session holds (no second IDENTIFY).
    let state = bot.fake.state.clone();
    eventually("three heartbeats", || {
        (*state.heartbeats.lock().unwrap() >= 3).then_some(())
    })
    .await;
    assert_eq!(bot.fake.state.identifies.lock().unwrap().len(), 1);
    bot.stop().await;
}

#[tokio::test]
async fn a_direct_message_is_answered_through_the_outbox_with_buttons() {
    let bot = start().await;
    bot.fake.dispatch(
        "MESSAGE_CREATE",
        message_json(
            1001,
            DM,
            None,
            CUSTOMER,
            false,
            "what is the refund policy",
            &[],
        ),
    );
    let posted = bot.message_to(DM, 1).await;
    let reply = &posted[0];
    assert_eq!(reply["content"], "Undelivered orders are refunded in full.");
    assert_eq!(reply["allowed_mentions"]["parse"], json!([]), "{reply}");
    assert_eq!(reply["enforce_nonce"], true);
    assert_eq!(reply["nonce"].as_str().unwrap().len(), 24);
    let buttons = &reply["components"][0]["components"];
    assert_eq!(buttons[0]["type"], 2);
    assert_eq!(buttons[0]["label"], "How to get a refund");
    assert_eq!(buttons[0]["custom_id"], "p:how do i get a refund");
    assert_eq!(buttons[1]["label"], "Warranty");
    assert_eq!(buttons[1]["custom_id"], "qr:1");
    let request = &bot.fake.state.requests("POST", "/api/v10/channels/")[0];
    assert_eq!(
        request.authorization.as_deref(),
        Some(&*format!("Bot {TOKEN}"))
    );
    // The conversation is the DM channel's, private.
    let key = ConversationKey::new(CHANNEL, DM.to_string());
    let conversation = bot
        .engine
        .conversation(&key)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(conversation.user, CUSTOMER.to_string());
    // The outbox has nothing left.
    let pending = bot
        .store
        .outbox()
        .list(OutboxState::Pending, 10)
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
    // The same message delivered again by the gateway is not answered twice.
    bot.fake.dispatch(
        "MESSAGE_CREATE",
        message_json(
            1001,
            DM,
            None,
            CUSTOMER,
            false,
            "what is the refund policy",
            &[],
        ),
    );
    bot.fake.dispatch(
        "MESSAGE_CREATE",
        message_json(
            1002,
            DM,
            None,
            CUSTOMER,
            false,
            "how do i get a refund",
            &[],
        ),
    );
    let posted = bot.message_to(DM, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posted_now = bot.fake.state.posted(DM);
    assert_eq!(posted_now.len(), 2, "{posted_now:?}");
    assert_eq!(
        posted[1]["content"],
        "Press \"Request a refund\" on the order page."
    );
    bot.stop().await;
}

#[tokio::test]
async fn in_a_server_only_messages_mentioning_the_bot_are_answered() {
    let bot = start().await;
    // Not for the bot, from another bot, from the bot itself: all ignored.
    bot.fake.dispatch(
        "MESSAGE_CREATE",
        message_json(
            2001,
            OTHER_ROOM,
            Some(GUILD),
            CUSTOMER,
            false,
            "what is the refund policy",
            &[],
        ),
    );
    bot.fake.dispatch(
        "MESSAGE_CREATE",
        message_json(
            2002,
            OTHER_ROOM,
            Some(GUILD),
            123_456_789_000,
            true,
            &format!("<@{BOT_ID}> what is the refund policy"),
            &[BOT_ID],
        ),
    );
    bot.fake.dispatch(
        "MESSAGE_CREATE",
        message_json(
            2003,
            OTHER_ROOM,
            Some(GUILD),
            BOT_ID,
            true,
            "what is the refund policy",
            &[],
        ),
    );
    // For the bot.
    bot.fake.dispatch(
        "MESSAGE_CREATE",
        message_json(
            2004,
            ROOM,
            Some(GUILD),
            CUSTOMER,
            false,
            &format!("<@{BOT_ID}> what is the refund policy"),
            &[BOT_ID],
        ),
    );
    let posted = bot.message_to(ROOM, 1).await;
    let reply = &posted[0];
    assert_eq!(
        reply["content"],
        format!("<@{CUSTOMER}> Undelivered orders are refunded in full.")
    );
    assert_eq!(
        reply["allowed_mentions"]["users"],
        json!([CUSTOMER.to_string()]),
        "{reply}"
    );
    let key = ConversationKey::new(CHANNEL, format!("{ROOM}:{CUSTOMER}"));
    let conversation = bot
        .engine
        .conversation(&key)
        .await
        .unwrap()
        .expect("the customer's own");
    assert_eq!(conversation.user, CUSTOMER.to_string());
    let transcript = bot.engine.transcript(&key).await.unwrap();
    assert_eq!(
        transcript[0].text, "what is the refund policy",
        "the mention is taken out"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(bot.fake.state.posted(OTHER_ROOM).is_empty());
    for user in [CUSTOMER, 123_456_789_000, BOT_ID] {
        let other = ConversationKey::new(CHANNEL, format!("{OTHER_ROOM}:{user}"));
        assert!(
            bot.engine.conversation(&other).await.unwrap().is_none(),
            "{user}"
        );
    }
    bot.stop().await;
}

#[tokio::test]
async fn card_keys_asked_for_in_a_server_are_not_shown_there() {
    let bot = start().await;
    bot.fake.dispatch(
        "MESSAGE_CREATE",
        message_json(
            3001,
            ROOM,
            Some(GUILD),
            CUSTOMER,
            false,
            &format!("<@!{BOT_ID}> where is my card key {ORDER}"),
            &[BOT_ID],
        ),
    );
    // "Let me find your card key.", then why not here.
    let posted = bot.message_to(ROOM, 2).await;
    let texts: Vec<&str> = posted
        .iter()
        .map(|p| p["content"].as_str().unwrap())
        .collect();
    assert!(texts.iter().all(|t| !t.contains(CARD_KEY)), "{texts:?}");
    assert!(
        texts
            .iter()
            .all(|t| t.starts_with(&format!("<@{CUSTOMER}> "))),
        "{texts:?}"
    );
    assert!(texts[1].contains("private"), "{texts:?}");
    let button = &posted[1]["components"][0]["components"][0];
    assert_eq!(button["style"], 5, "a link to the bot's profile: {button}");
    assert_eq!(button["url"], format!("https://discord.com/users/{BOT_ID}"));
    // The same question in the bot's DM shows the key to its buyer.
    bot.fake.dispatch(
        "MESSAGE_CREATE",
        message_json(
            3002,
            DM,
            None,
            CUSTOMER,
            false,
            &format!("where is my card key {ORDER}"),
            &[],
        ),
    );
    let posted = bot.message_to(DM, 2).await;
    let shown: String = posted
        .iter()
        .map(|p| p["content"].as_str().unwrap())
        .collect();
    assert!(shown.contains(CARD_KEY), "{shown}");
    bot.stop().await;
}

#[tokio::test]
async fn slash_commands_and_buttons_are_answered_in_the_interaction_response() {
    let bot = start().await;
    // /ask in a server: the answer, ephemeral, with its buttons.
    bot.fake.dispatch(
        "INTERACTION_CREATE",
        command_json(
            4001,
            ROOM,
            Some(GUILD),
            CUSTOMER,
            "ask",
            Some(("question", "what is the refund policy")),
            "en-US",
        ),
    );
    let callback = bot.callback(4001).await;
    assert_eq!(callback["type"], 4, "{callback}");
    assert_eq!(
        callback["data"]["content"],
        "Undelivered orders are refunded in full."
    );
    assert_eq!(callback["data"]["flags"], 64);
    let buttons = &callback["data"]["components"][0]["components"];
    assert_eq!(buttons[0]["custom_id"], "p:how do i get a refund");
    let path = &bot
        .fake
        .state
        .requests("POST", "/api/v10/interactions/4001/")[0]
        .path;
    assert_eq!(path, "/api/v10/interactions/4001/itoken-4001/callback");

    // Its first button pressed.
    bot.fake.dispatch(
        "INTERACTION_CREATE",
        button_json(
            4002,
            ROOM,
            Some(GUILD),
            CUSTOMER,
            "p:how do i get a refund",
            "Undelivered orders are refunded in full.",
        ),
    );
    let callback = bot.callback(4002).await;
    assert_eq!(
        callback["data"]["content"],
        "Press \"Request a refund\" on the order page."
    );

    // Its second (a long payload kept by reference) pressed.
    bot.fake.dispatch(
        "INTERACTION_CREATE",
        button_json(
            4003,
            ROOM,
            Some(GUILD),
            CUSTOMER,
            "qr:1",
            "Undelivered orders are refunded in full.",
        ),
    );
    let callback = bot.callback(4003).await;
    assert_eq!(callback["data"]["content"], "The warranty is 7 days.");

    // /order in the DM, in Chinese: the bare number starts the order flows.
    bot.fake.dispatch(
        "INTERACTION_CREATE",
        command_json(
            4004,
            DM,
            None,
            CUSTOMER,
            "order",
            Some(("number", ORDER)),
            "zh-CN",
        ),
    );
    let callback = bot.callback(4004).await;
    let text = callback["data"]["content"].as_str().unwrap();
    assert!(text.contains(ORDER), "{callback}");
    let flags = callback["data"]["flags"].as_u64().unwrap_or(0);
    assert_eq!(flags & 64, 0, "a DM answer is not ephemeral: {callback}");
    let key = ConversationKey::new(CHANNEL, DM.to_string());
    let transcript = bot.engine.transcript(&key).await.unwrap();
    assert_eq!(transcript[0].text, ORDER);
    assert_eq!(transcript[0].message_id.as_deref(), Some("i:4004"));

    // /human: a hand-off.
    bot.fake.dispatch(
        "INTERACTION_CREATE",
        command_json(4005, ROOM, Some(GUILD), CUSTOMER, "human", None, "en-US"),
    );
    let callback = bot.callback(4005).await;
    assert!(!callback["data"]["content"].as_str().unwrap().is_empty());
    let guild_key = ConversationKey::new(CHANNEL, format!("{ROOM}:{CUSTOMER}"));
    let transcript = bot.engine.transcript(&guild_key).await.unwrap();
    assert!(
        transcript.iter().any(|l| l.text == "/human"),
        "{transcript:?}"
    );

    // The /ask delivered again is answered again, with what the bot said the first time.
    bot.fake.dispatch(
        "INTERACTION_CREATE",
        command_json(
            4001,
            ROOM,
            Some(GUILD),
            CUSTOMER,
            "ask",
            Some(("question", "what is the refund policy")),
            "en-US",
        ),
    );
    let state = bot.fake.state.clone();
    let again = eventually("the second callback", || {
        let callbacks = state.callbacks(4001);
        (callbacks.len() == 2).then(|| callbacks[1].clone())
    })
    .await;
    assert_eq!(
        again["data"]["content"],
        "Undelivered orders are refunded in full."
    );
    bot.stop().await;
}

#[tokio::test]
async fn a_survey_gets_five_buttons_and_its_press_is_answered() {
    let bot = start().await;
    let survey = Outbound {
        conversation: ConversationKey::new(CHANNEL, DM.to_string()),
        text: "How did we do? 1–5".into(),
        quick_replies: (1..=5)
            .map(|n| QuickReply::new(n.to_string(), n.to_string()))
            .collect(),
        kind: OutboundKind::Survey,
    };
    bot.discord.channel().send(&survey).await.unwrap();
    let posted = bot.message_to(DM, 1).await;
    let row = posted[0]["components"][0]["components"]
        .as_array()
        .unwrap()
        .clone();
    let ids: Vec<_> = row
        .iter()
        .map(|b| b["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["p:1", "p:2", "p:3", "p:4", "p:5"]);
    assert!(
        posted[0].get("nonce").is_none_or(Value::is_null),
        "no delivery id, no nonce"
    );
    bot.fake.dispatch(
        "INTERACTION_CREATE",
        button_json(5001, DM, None, CUSTOMER, "p:5", "How did we do? 1–5"),
    );
    let callback = bot.callback(5001).await;
    assert_eq!(callback["type"], 4);
    let key = ConversationKey::new(CHANNEL, DM.to_string());
    let transcript = bot.engine.transcript(&key).await.unwrap();
    assert_eq!(
        transcript[0].text, "5",
        "the payload is the customer's message"
    );
    bot.stop().await;
}

#[tokio::test]
async fn discords_errors_map_to_send_errors_and_a_429_is_delivered_later() {
    let bot = start().await;
    let message = |text: &str| Outbound {
        conversation: ConversationKey::new(CHANNEL, DM.to_string()),
        text: text.into(),
        quick_replies: Vec::new(),
        kind: OutboundKind::AgentMessage,
    };
    let channel = bot.discord.channel();
    let failures = [
        (
            429,
            Some("2.5"),
            r#"{"message":"You are being rate limited.","retry_after":2.5,"global":false}"#,
        ),
        (
            403,
            None,
            r#"{"code":50007,"message":"Cannot send messages to this user"}"#,
        ),
        (502, None, "bad gateway"),
        (400, None, r#"{"code":50035,"message":"Invalid Form Body"}"#),
    ];
    for (status, retry, body) in failures {
        bot.fake.state.message_failures.lock().unwrap().push_back((
            status,
            retry.map(str::to_string),
            body.to_string(),
        ));
    }
    let started = std::time::Instant::now();
    assert_eq!(
        channel.send(&message("one")).await,
        Err(SendError::RateLimited {
            retry_after: Duration::from_millis(2500)
        })
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no hidden sleep through the 429"
    );
    assert!(matches!(
        channel.send(&message("two")).await,
        Err(SendError::Unreachable(_))
    ));
    assert!(matches!(
        channel.send(&message("three")).await,
        Err(SendError::Unavailable(_))
    ));
    assert!(matches!(
        channel.send(&message("four")).await,
        Err(SendError::Rejected(_))
    ));
    let bad = Outbound {
        conversation: ConversationKey::new(CHANNEL, "not-a-channel"),
        ..message("five")
    };
    assert!(matches!(
        channel.send(&bad).await,
        Err(SendError::Rejected(_))
    ));

    // Through the outbox: a 429 with a short retry-after, then delivered.
    bot.fake.state.message_failures.lock().unwrap().push_back((
        429,
        Some("0.3".into()),
        r#"{"retry_after":0.3,"global":false}"#.into(),
    ));
    bot.fake.dispatch(
        "MESSAGE_CREATE",
        message_json(
            6001,
            DM,
            None,
            CUSTOMER,
            false,
            "what is the refund policy",
            &[],
        ),
    );
    let posted = bot.message_to(DM, 6).await;
    let tries: Vec<_> = posted
        .iter()
        .filter(|p| p["content"] == "Undelivered orders are refunded in full.")
        .collect();
    assert_eq!(tries.len(), 2, "refused once, then delivered: {posted:?}");
    assert_eq!(
        tries[0]["nonce"], tries[1]["nonce"],
        "the retry carries the same nonce"
    );
    let sent = bot
        .store
        .outbox()
        .list(OutboxState::Sent, 10)
        .await
        .unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].attempts >= 2, "{sent:?}");
    bot.stop().await;
}
