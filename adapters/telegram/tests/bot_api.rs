//! The Telegram channel end to end: the real teloxide client against a fake Bot API server
//! on loopback, the real engine on SQLite with the built-in knowledge base, and the outbox
//! worker delivering.

use kefu_app::config::Config;
use kefu_app::App;
use kefu_core::{ConversationKey, OutboxState};
use kefu_telegram::testing::{
    button_press, group_text, private_text, FakeBotApi, Sent, BOT_USERNAME,
};
use kefu_telegram::{Mode, Telegram, TelegramSettings, SECRET_HEADER, WEBHOOK_PATH};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "123456:TEST-token";
const WAIT: Duration = Duration::from_secs(20);

/// A bot on a fresh SQLite database, its Telegram channel pointed at a fake.
struct Rig {
    _dir: tempfile::TempDir,
    app: App,
    fake: FakeBotApi,
    telegram: Arc<Telegram>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Rig {
    async fn start(mode: Mode) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "storage:\n  url: sqlite://{}/kefu.db\norders:\n  backend: tables\n",
            dir.path().display()
        );
        let config = Config::parse(std::path::Path::new("kefu.yaml"), &yaml).unwrap();
        let app = App::from_config(&config).await.unwrap();
        // Order DD20261203000001 belongs to Telegram user 42.
        let csv = "order_no,product,status,amount,buyer_channel,buyer_user,paid_at,card_keys\n\
                   DD20261203000001,Steam 100,delivered,100,telegram,42,2026-12-01 10:00,ABCD-EFGH-IJKL-MNOP\n";
        let records = kefu_orders_file::parse_orders(
            std::path::Path::new("orders.csv"),
            csv,
            &kefu_orders_file::ImportOptions::default(),
        )
        .unwrap();
        app.db.orders().import(&records).await.unwrap();
        let fake = FakeBotApi::start(TOKEN).await;
        let mut settings = TelegramSettings::polling(TOKEN);
        settings.api_url = Some(fake.url.clone());
        settings.poll_timeout = Duration::from_secs(1);
        settings.mode = mode;
        let telegram = Telegram::new(
            app.engine.clone(),
            app.outbox.clone(),
            app.outbox_wake.clone(),
            settings,
        )
        .unwrap();
        let app = app.with_channel(telegram.channel());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        let worker = app.outbox_worker();
        let mut worker_stop = stopped.clone();
        tasks.push(tokio::spawn(async move {
            worker
                .run(async move {
                    let _ = worker_stop.wait_for(|s| *s).await;
                })
                .await;
        }));
        let runner = telegram.clone();
        let mut run_stop = stopped.clone();
        tasks.push(tokio::spawn(async move {
            runner
                .run(async move {
                    let _ = run_stop.wait_for(|s| *s).await;
                })
                .await;
        }));
        Rig {
            _dir: dir,
            app,
            fake,
            telegram,
            stop,
            tasks,
        }
    }

    async fn until_ready(&self) {
        for _ in 0..200 {
            if self.telegram.identity().is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the channel never started");
    }

    /// Waits for `n` messages to `chat` and returns them.
    async fn replies(&self, chat: i64, n: usize) -> Vec<Sent> {
        let sent = self
            .fake
            .wait_sent(WAIT, |sent| {
                sent.iter().filter(|s| s.chat_id == chat).count() >= n
            })
            .await;
        let to_chat: Vec<Sent> = sent.into_iter().filter(|s| s.chat_id == chat).collect();
        assert!(
            to_chat.len() >= n,
            "expected {n} messages to {chat}, got {to_chat:#?}"
        );
        to_chat
    }

    /// Waits until the outbox has nothing left to send; returns everything sent.
    async fn settled(&self) -> Vec<Sent> {
        for _ in 0..400 {
            let counts = self.app.outbox.counts().await.unwrap();
            if counts.pending == 0 {
                return self.fake.sent();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the outbox never emptied");
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("stops promptly")
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_chats_in_both_languages_groups_buttons_and_card_keys_only_in_private() {
    let rig = Rig::start(Mode::Polling).await;
    rig.until_ready().await;
    // Started: commands listed in both languages, any webhook removed for polling.
    let commands = rig.fake.calls("setMyCommands");
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert!(commands
        .iter()
        .any(|c| c["language_code"] == "zh" && c["commands"].to_string().contains("转人工")));
    assert!(commands
        .iter()
        .any(|c| c["language_code"].is_null() && c["commands"].to_string().contains("person")));
    assert_eq!(rig.fake.calls("deleteWebhook").len(), 1);

    // A Chinese customer, then an English one, in private.
    rig.fake.push(private_text(1, 501, 1, "/start", "zh-hans"));
    rig.fake.push(private_text(2, 502, 1, "/start", "en"));
    let zh = rig.replies(501, 1).await;
    assert!(zh[0].text.contains("智能客服"), "{zh:?}");
    let en = rig.replies(502, 1).await;
    assert!(en[0].text.contains("support bot"), "{en:?}");
    rig.fake
        .push(private_text(3, 502, 2, "how long does a refund take", "en"));
    let en = rig.replies(502, 2).await;
    assert!(en[1].text.to_lowercase().contains("refund"), "{en:?}");
    assert!(
        rig.fake.wait_confirmed(4, WAIT).await,
        "the updates were acknowledged"
    );

    // In a group: a message that is not for the bot is ignored; a mention is answered,
    // replying to the customer's message.
    rig.fake.push(group_text(
        4,
        -1001,
        42,
        70,
        "大家晚上好，今天有活动吗",
        false,
    ));
    rig.fake
        .push(group_text(5, -1001, 43, 71, "退款多久到账", true));
    assert!(rig.fake.wait_confirmed(6, WAIT).await);
    let group = rig.settled().await;
    let group: Vec<&Sent> = group.iter().filter(|s| s.chat_id == -1001).collect();
    assert!(group[0].text.contains("退款"), "{group:?}");
    assert!(
        group.iter().all(|s| s.reply_to == Some(71)),
        "only the mention is answered, replying to the customer: {group:#?}"
    );
    let before = group.len();

    // The order's buyer asks for the card key in the group: not shown there, with a link
    // to a private chat.
    rig.fake.push(group_text(
        6,
        -1001,
        42,
        72,
        "卡密在哪里看 DD20261203000001",
        true,
    ));
    assert!(rig.fake.wait_confirmed(7, WAIT).await);
    let group: Vec<Sent> = rig.settled().await[..]
        .iter()
        .filter(|s| s.chat_id == -1001)
        .skip(before)
        .cloned()
        .collect();
    let refusal = group
        .iter()
        .find(|s| !s.buttons().is_empty())
        .unwrap_or_else(|| panic!("a refusal with a button: {group:#?}"));
    assert!(!refusal.text.contains("ABCD-EFGH"), "{refusal:?}");
    assert!(refusal.text.contains("私聊"), "{refusal:?}");
    let link = refusal
        .buttons()
        .into_iter()
        .find(|(_, target)| target.starts_with("https://t.me/"))
        .expect("a deep link to the private chat");
    assert_eq!(link.1, format!("https://t.me/{BOT_USERNAME}?start=private"));
    // The deep link opens the private chat with /start private; there the buyer's keys are
    // shown, since the order's chat identity is theirs.
    rig.fake
        .push(private_text(7, 42, 5, "/start private", "zh-hans"));
    rig.fake.push(private_text(
        8,
        42,
        6,
        "卡密在哪里看 DD20261203000001",
        "zh-hans",
    ));
    assert!(rig.fake.wait_confirmed(9, WAIT).await);
    rig.settled().await;
    let private = rig.fake.sent_to(42);
    assert!(private[0].text.contains("智能客服"), "{private:?}");
    assert!(
        private
            .iter()
            .any(|s| s.text.contains("ABCD-EFGH-IJKL-MNOP")),
        "{private:#?}"
    );
    let everything_in_the_group: String = rig
        .fake
        .sent_to(-1001)
        .iter()
        .map(|s| s.text.clone())
        .collect();
    assert!(!everything_in_the_group.contains("ABCD"));

    // Buttons: a vague question gets choices as an inline keyboard; pressing one answers it
    // (and the press is acknowledged).
    // A bare order number: which of the order's questions is it?
    rig.fake
        .push(private_text(9, 503, 1, "DD20261203000001", "zh-hans"));
    let choices = rig.replies(503, 1).await;
    let buttons = choices[0].buttons();
    assert!(!buttons.is_empty(), "{choices:?}");
    let (label, data) = buttons[0].clone();
    assert!(data.len() <= 64, "{data}");
    rig.fake
        .push(button_press(10, 503, 503, "cq-1", &data, &choices[0].text));
    let answered = rig.replies(503, 2).await;
    assert_ne!(answered[1].text, choices[0].text, "{label}: {answered:#?}");
    assert_eq!(rig.fake.calls("answerCallbackQuery").len(), 1);
    assert_eq!(
        rig.fake.calls("answerCallbackQuery")[0]["callback_query_id"],
        "cq-1"
    );

    // A photo in private is asked to be typed.
    rig.fake.push(serde_json::json!({
        "update_id": 11,
        "message": {
            "message_id": 9, "date": 1_700_000_000,
            "chat": {"id": 504, "type": "private", "first_name": "P"},
            "from": {"id": 504, "is_bot": false, "first_name": "P", "language_code": "en"},
            "photo": [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]
        }
    }));
    let photo = rig.replies(504, 1).await;
    assert!(photo[0].text.contains("type your question"), "{photo:?}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_off_reaches_the_agent_and_the_agents_reply_and_survey_reach_the_customer() {
    let rig = Rig::start(Mode::Polling).await;
    rig.until_ready().await;
    rig.fake.push(private_text(1, 601, 1, "转人工", "zh-hans"));
    let handed = rig.replies(601, 1).await;
    assert!(handed[0].text.contains("人工"), "{handed:?}");
    let key = ConversationKey::new("telegram", "601");
    let waiting = kefu_core::HandoffQueue::waiting(&rig.app.db.queue(), None)
        .await
        .unwrap();
    assert!(waiting.iter().any(|r| r.conversation == key), "{waiting:?}");
    rig.app
        .agents
        .message(&key, "alice", "您好，我是客服小王，马上帮您查")
        .await
        .unwrap();
    let sent = rig
        .fake
        .wait_sent(WAIT, |sent| {
            sent.iter()
                .any(|s| s.text == "您好，我是客服小王，马上帮您查")
        })
        .await;
    assert!(
        sent.iter()
            .any(|s| s.chat_id == 601 && s.text == "您好，我是客服小王，马上帮您查"),
        "{sent:#?}"
    );
    // The customer writes back: it goes to the agent, not to the bot.
    rig.fake
        .push(private_text(2, 601, 2, "好的谢谢", "zh-hans"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let transcript = rig.app.engine.transcript(&key).await.unwrap();
    assert!(transcript.iter().any(|l| l.text == "好的谢谢"));
    // Closing sends the survey as buttons; pressing a score is recorded.
    rig.app.agents.close(&key, "alice").await.unwrap();
    let survey = rig
        .fake
        .wait_sent(WAIT, |sent| {
            sent.iter()
                .any(|s| s.chat_id == 601 && !s.buttons().is_empty())
        })
        .await;
    let survey = survey
        .iter()
        .find(|s| s.chat_id == 601 && !s.buttons().is_empty())
        .expect("a survey with buttons")
        .clone();
    let (_, five) = survey
        .buttons()
        .into_iter()
        .find(|(_, data)| data == "5")
        .expect("a 5 button");
    let survey_at = rig.fake.sent_to(601).len();
    rig.fake
        .push(button_press(3, 601, 601, "cq-9", &five, &survey.text));
    let after = rig
        .fake
        .wait_sent(WAIT, |sent| {
            sent.iter().rev().take_while(|s| s.chat_id == 601).count() > 0
                && sent.iter().filter(|s| s.chat_id == 601).count() > survey_at
        })
        .await;
    let thanks = after.iter().rfind(|s| s.chat_id == 601).unwrap();
    assert!(
        thanks.text.contains("谢谢") || thanks.text.contains("感谢"),
        "{thanks:?}"
    );
    let conversation = rig.app.engine.conversation(&key).await.unwrap().unwrap();
    assert_eq!(conversation.ratings.last().map(|r| r.score), Some(5));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_drops_nothing_and_keeps_the_order_and_a_block_is_not_retried() {
    let rig = Rig::start(Mode::Polling).await;
    rig.until_ready().await;
    rig.fake.rate_limit(3, 1);
    let questions = [
        "/start",
        "退款多久到账",
        "怎么联系人工",
        "卡密无效怎么办",
        "/help",
    ];
    for (n, q) in questions.iter().enumerate() {
        rig.fake
            .push(private_text(n as i64 + 1, 701, n as i64 + 1, q, "zh-hans"));
    }
    assert!(
        rig.fake
            .wait_confirmed(questions.len() as i64 + 1, WAIT)
            .await
    );
    let sent: Vec<Sent> = rig
        .settled()
        .await
        .into_iter()
        .filter(|s| s.chat_id == 701)
        .collect();
    let key = ConversationKey::new("telegram", "701");
    let transcript = rig.app.engine.transcript(&key).await.unwrap();
    let bot_lines: Vec<String> = transcript
        .iter()
        .filter(|l| l.speaker == kefu_core::Speaker::Bot)
        .map(|l| l.text.clone())
        .collect();
    let texts: Vec<String> = sent.iter().map(|s| s.text.clone()).collect();
    assert!(bot_lines.len() >= questions.len(), "{bot_lines:#?}");
    assert_eq!(
        texts, bot_lines,
        "nothing dropped, nothing twice, in the order they were answered"
    );
    let attempts = rig.fake.calls("sendMessage").len();
    assert_eq!(attempts, bot_lines.len() + 3, "each 429 tried again");

    // A customer who blocked the bot: the agent's message is given up on at once, not retried.
    rig.fake.push(private_text(10, 702, 1, "转人工", "zh-hans"));
    rig.replies(702, 1).await;
    rig.fake.block(702);
    let blocked = ConversationKey::new("telegram", "702");
    rig.app
        .agents
        .message(&blocked, "alice", "还在吗？")
        .await
        .unwrap();
    let mut dead = Vec::new();
    for _ in 0..200 {
        dead = rig.app.outbox.list(OutboxState::Dead, 10).await.unwrap();
        if dead.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The "agent joined" notice and the agent's message: each tried once at most.
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(dead.iter().all(|d| d.attempts == 1));
    assert!(
        dead.iter()
            .all(|d| d.last_error.as_deref().unwrap().contains("unreachable")),
        "{dead:?}"
    );
    let to_blocked = rig
        .fake
        .calls("sendMessage")
        .iter()
        .filter(|c| c["chat_id"] == 702)
        .count();
    assert_eq!(
        to_blocked, 2,
        "the hand-off reply, and the one try that was refused"
    );
    // The token never shows in what is stored.
    assert!(dead
        .iter()
        .all(|d| !d.last_error.as_deref().unwrap().contains(TOKEN)));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_mode_checks_the_secret_acknowledges_after_storing_and_answers_a_redelivery_once() {
    let secret = "wh-secret_123";
    let rig = Rig::start(Mode::Webhook {
        url: Some("https://shop.example.com/telegram/webhook".to_string()),
        secret: secret.to_string(),
    })
    .await;
    rig.until_ready().await;
    let set = rig.fake.calls("setWebhook");
    assert_eq!(set.len(), 1);
    assert_eq!(set[0]["secret_token"], secret);
    assert_eq!(set[0]["url"], "https://shop.example.com/telegram/webhook");
    assert!(rig.fake.calls("getUpdates").is_empty(), "no polling");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = rig.telegram.router();
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    let http = reqwest::Client::new();
    let post = |body: String, token: Option<&str>| {
        let mut request = http
            .post(format!("{base}{WEBHOOK_PATH}"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.header(SECRET_HEADER, token);
        }
        request.send()
    };
    let update = private_text(900, 801, 1, "怎么退款", "zh-hans").to_string();
    // Forged or missing secret: refused, nothing handled.
    assert_eq!(
        post(update.clone(), Some("guess")).await.unwrap().status(),
        401
    );
    assert_eq!(post(update.clone(), None).await.unwrap().status(), 401);
    let key = ConversationKey::new("telegram", "801");
    assert!(rig.app.engine.conversation(&key).await.unwrap().is_none());
    // The real one: 200 only once the turn is stored.
    assert_eq!(
        post(update.clone(), Some(secret)).await.unwrap().status(),
        200
    );
    assert!(rig.app.engine.conversation(&key).await.unwrap().is_some());
    // Telegram delivers it again (twice, at once): answered once.
    let (a, b) = tokio::join!(
        post(update.clone(), Some(secret)),
        post(update.clone(), Some(secret))
    );
    assert_eq!(a.unwrap().status(), 200);
    assert_eq!(b.unwrap().status(), 200);
    let sent = rig.replies(801, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rig.fake.sent_to(801).len(), 1, "{sent:?}");
    // Malformed and oversize bodies.
    let bad = post("{\"update_id\": \"x\"".to_string(), Some(secret))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("not a Telegram update"));
    let big = post(
        format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)),
        Some(secret),
    )
    .await
    .unwrap();
    assert_eq!(big.status(), 413);
    let refused = rig.telegram.rejections().by_name();
    assert!(
        refused
            .iter()
            .any(|(cause, n)| *cause == "secret_mismatch" && *n == 2),
        "{refused:?}"
    );
    server.abort();
    rig.stop().await;
}

/// A memory store whose first commits fail, as a database that is down for a moment.
struct Flaky {
    store: kefu_core::MemoryStore,
    failures: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl kefu_core::ConversationStore for Flaky {
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
        let left = self.failures.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            self.failures
                .store(left - 1, std::sync::atomic::Ordering::SeqCst);
            return Err(kefu_core::StoreError::Unavailable(
                "the database is restarting".to_string(),
            ));
        }
        self.store.commit(turn).await
    }
    async fn transcript(
        &self,
        key: &ConversationKey,
    ) -> Result<Vec<kefu_core::TranscriptLine>, kefu_core::StoreError> {
        self.store.transcript(key).await
    }
    fn outbox(&self) -> Arc<dyn kefu_core::Outbox> {
        self.store.outbox()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_turn_could_not_be_stored_is_not_acknowledged_and_is_answered_once_later() {
    use kefu_core::ConversationStore;
    let store = Arc::new(Flaky {
        store: kefu_core::MemoryStore::new(),
        failures: 2.into(),
    });
    let engine = Arc::new(
        kefu_core::Engine::builder(Arc::new(kefu_core::testing::OneEntry::new(
            "service.hours",
            "hours",
            "9点到24点",
            "9:00 to 24:00",
        )))
        .store(store.clone())
        .build(),
    );
    let fake = FakeBotApi::start(TOKEN).await;
    let mut settings = TelegramSettings::polling(TOKEN);
    settings.api_url = Some(fake.url.clone());
    settings.poll_timeout = Duration::from_secs(1);
    let wake = Arc::new(tokio::sync::Notify::new());
    let telegram = Telegram::new(engine, store.outbox(), wake.clone(), settings).unwrap();
    let worker = kefu_core::OutboxWorker::new(
        store.outbox(),
        kefu_core::Channels::new().with(telegram.channel()),
        kefu_core::RetryPolicy::default(),
    )
    .with_wake(wake);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (mut a, mut b) = (stopped.clone(), stopped);
    let worker = tokio::spawn(async move {
        worker
            .run(async move {
                let _ = a.wait_for(|s| *s).await;
            })
            .await
    });
    let runner = tokio::spawn(telegram.clone().run(async move {
        let _ = b.wait_for(|s| *s).await;
    }));
    fake.push(private_text(41, 901, 1, "what are your hours?", "en"));
    let sent = fake
        .wait_sent(WAIT, |sent| sent.iter().any(|s| s.chat_id == 901))
        .await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].text, "9:00 to 24:00");
    assert!(
        fake.wait_confirmed(42, WAIT).await,
        "acknowledged once stored"
    );
    // Until then it was asked for again: every poll before the answer kept the offset at it.
    let polls = fake.calls("getUpdates");
    let before: Vec<i64> = polls
        .iter()
        .map(|p| p["offset"].as_i64().unwrap_or(0))
        .take_while(|offset| *offset < 42)
        .collect();
    assert!(
        before.len() >= 3,
        "two failed tries and the one that worked: {polls:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.sent().len(), 1, "answered once");
    let _ = stop.send(true);
    worker.await.unwrap();
    runner.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_manners_edits_and_floods() {
    let rig = Rig::start(Mode::Polling).await;
    rig.until_ready().await;
    // Card keys asked for in a group without an order number: straight to a private chat,
    // no order number asked for there.
    rig.fake
        .push(group_text(1, -2002, 42, 80, "我的卡密在哪里", true));
    assert!(rig.fake.wait_confirmed(2, WAIT).await);
    let group = rig.settled().await;
    let group: Vec<&Sent> = group.iter().filter(|s| s.chat_id == -2002).collect();
    assert!(
        group.iter().any(|s| s
            .buttons()
            .iter()
            .any(|(_, url)| url.starts_with("https://t.me/"))),
        "{group:#?}"
    );
    assert!(
        !group.iter().any(|s| s.text.contains("请发送您的订单号")),
        "{group:#?}"
    );
    // Another member presses a button on the answer to member 42: only they see a notice.
    let before = rig.fake.sent().len();
    rig.fake.push(serde_json::json!({
        "update_id": 2,
        "callback_query": {
            "id": "cq-other", "chat_instance": "ci",
            "from": {"id": 43, "is_bot": false, "first_name": "Other", "language_code": "zh-hans"},
            "data": "1",
            "message": {
                "message_id": 500, "date": 1_700_000_000,
                "chat": {"id": -2002, "type": "supergroup", "title": "Shop group"},
                "from": {"id": kefu_telegram::testing::BOT_ID, "is_bot": true, "first_name": "Shop", "username": BOT_USERNAME},
                "text": "您是想问下面哪个问题？",
                "reply_to_message": {
                    "message_id": 80, "date": 1_700_000_000,
                    "chat": {"id": -2002, "type": "supergroup", "title": "Shop group"},
                    "from": {"id": 42, "is_bot": false, "first_name": "Member"},
                    "text": "@ShopHelpBot 我的卡密在哪里"
                }
            }
        }
    }));
    assert!(rig.fake.wait_confirmed(3, WAIT).await);
    rig.settled().await;
    assert_eq!(rig.fake.sent().len(), before, "nothing posted to the group");
    let answered = rig.fake.calls("answerCallbackQuery");
    let notice = answered
        .iter()
        .find(|c| c["callback_query_id"] == "cq-other")
        .expect("the press is answered");
    assert!(
        notice["text"].as_str().unwrap().contains("提问的人"),
        "{notice}"
    );
    // A bare mention is a greeting.
    rig.fake.push(group_text(3, -2002, 44, 81, "", true));
    let greeting = rig
        .fake
        .wait_sent(WAIT, |sent| sent.iter().any(|s| s.reply_to == Some(81)))
        .await;
    assert!(
        greeting
            .iter()
            .any(|s| s.reply_to == Some(81) && s.text.contains("智能客服")),
        "{greeting:#?}"
    );

    // A typo corrected by editing the message gets an answer to what was meant.
    rig.fake
        .push(private_text(4, 601, 10, "怎么退宽", "zh-hans"));
    assert!(rig.fake.wait_confirmed(5, WAIT).await);
    let first = rig
        .settled()
        .await
        .iter()
        .filter(|s| s.chat_id == 601)
        .count();
    rig.fake.push(serde_json::json!({
        "update_id": 5,
        "edited_message": {
            "message_id": 10, "date": 1_700_000_000, "edit_date": 1_700_000_030,
            "chat": {"id": 601, "type": "private", "first_name": "C"},
            "from": {"id": 601, "is_bot": false, "first_name": "C", "language_code": "zh-hans"},
            "text": "退款多久到账"
        }
    }));
    assert!(rig.fake.wait_confirmed(6, WAIT).await);
    let after: Vec<Sent> = rig
        .settled()
        .await
        .into_iter()
        .filter(|s| s.chat_id == 601)
        .collect();
    assert!(after.len() > first, "{after:#?}");
    assert!(after[first].text.contains("退款"), "{after:#?}");

    // A flood: past the burst, messages are dropped and the customer is told once to slow down.
    for n in 0..30 {
        rig.fake.push(private_text(
            10 + n,
            602,
            100 + n,
            &format!("在吗{n}"),
            "zh-hans",
        ));
    }
    assert!(rig.fake.wait_confirmed(40, WAIT).await);
    let flood: Vec<Sent> = rig
        .settled()
        .await
        .into_iter()
        .filter(|s| s.chat_id == 602)
        .collect();
    let notices = flood.iter().filter(|s| s.text.contains("太快")).count();
    assert_eq!(notices, 1, "{flood:#?}");
    let key = ConversationKey::new("telegram", "602");
    let customer_lines = rig
        .app
        .engine
        .transcript(&key)
        .await
        .unwrap()
        .iter()
        .filter(|l| l.speaker == kefu_core::Speaker::Customer)
        .count();
    assert!(
        (20..30).contains(&customer_lines),
        "the burst is read, the rest dropped: {customer_lines}"
    );
    let refused = rig.telegram.rejections().by_name();
    assert!(
        refused
            .iter()
            .any(|(cause, n)| *cause == "rate_limited_conversation" && *n >= 1),
        "{refused:?}"
    );
    rig.stop().await;
}
