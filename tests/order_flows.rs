//! The order flows on the built-in knowledge base, in Chinese and English: card keys and
//! delivery status only for the customer who proves they bought the order.

use kefu_core::conversation::{HandoffReason, Speaker};
use kefu_core::{
    AuditLog, ConversationKey, Engine, EngineConfig, HandoffRequest, Inbound, MemoryAudit,
    MemoryOrder, MemoryOrders, MemoryQueue, MemoryStore, Order, OrderStatus, Outbound,
    OutboundKind, Priority,
};
use kefu_knowledge::{defaults, KnowledgeBase, MatcherOptions, ValidationOptions};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

const KEYS: [&str; 2] = ["STEAM-AAAA-BBBB-7F3K", "STEAM-CCCC-DDDD-9Q2Z"];
const DELIVERED: &str = "2024112300017";
const DELIVERING: &str = "2024112300018";
const FAILED: &str = "2024112300019";
const OVERDUE: &str = "2024112300020";
const UNKNOWN: &str = "2024112399999";

fn knowledge() -> Arc<KnowledgeBase> {
    static KB: OnceLock<Arc<KnowledgeBase>> = OnceLock::new();
    KB.get_or_init(|| {
        let set = defaults::load(&ValidationOptions::default()).expect("default FAQ");
        Arc::new(KnowledgeBase::build(set, MatcherOptions::default()).expect("default KB"))
    })
    .clone()
}

fn now() -> u64 {
    kefu_core::conversation::now_millis()
}

fn shop() -> Arc<MemoryOrders> {
    let orders = MemoryOrders::new();
    let mut delivered = Order::new(DELIVERED, "Steam 钱包充值卡 100 元", OrderStatus::Delivered);
    delivered.redeem = Some("Steam 客户端 → 账户 → 兑换钱包充值码".to_string());
    orders.insert(MemoryOrder {
        order: Some(delivered),
        keys: KEYS.iter().map(|k| k.to_string()).collect(),
        password: Some("pass1234".to_string()),
        contacts: vec!["Buyer@Example.com".to_string(), "13800138000".to_string()],
        identities: vec![("telegram".to_string(), "linked-user".to_string())],
    });
    let mut delivering = Order::new(DELIVERING, "王者荣耀 600 点券", OrderStatus::Delivering);
    delivering.delivery_due_at = Some(now() + 10 * 60_000);
    let mut overdue = Order::new(OVERDUE, "原神 月卡", OrderStatus::Paid);
    overdue.delivery_due_at = Some(now() - 30 * 60_000);
    for order in [
        delivering,
        Order::new(FAILED, "Netflix gift card", OrderStatus::Failed),
        overdue,
    ] {
        orders.insert(MemoryOrder {
            order: Some(order),
            password: Some("pass1234".to_string()),
            ..MemoryOrder::default()
        });
    }
    Arc::new(orders)
}

struct Bot {
    engine: Engine,
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    audit: Arc<MemoryAudit>,
    orders: Arc<MemoryOrders>,
    next: u64,
}

impl Bot {
    fn new() -> Bot {
        Bot::with(EngineConfig::default())
    }

    fn with(config: EngineConfig) -> Bot {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let audit = Arc::new(MemoryAudit::new());
        let orders = shop();
        let engine = Engine::builder(knowledge())
            .store(store.clone())
            .queue(queue.clone())
            .audit(audit.clone())
            .orders(orders.clone())
            .config(config)
            .build();
        Bot {
            engine,
            store,
            queue,
            audit,
            orders,
            next: 0,
        }
    }

    async fn send(&mut self, message: Inbound) -> Vec<Outbound> {
        self.next += 1;
        let message = Inbound {
            message_id: format!("m{}", self.next),
            ..message
        };
        self.engine.handle(message).await.expect("turn")
    }

    /// A private message from `user` in chat `chat` on Telegram.
    async fn say(&mut self, chat: &str, user: &str, text: &str) -> String {
        let key = ConversationKey::new("telegram", chat);
        let replies = self.send(Inbound::new(key, user, "", text)).await;
        texts(&replies)
    }

    async fn transcript(&self, chat: &str) -> Vec<kefu_core::TranscriptLine> {
        use kefu_core::ConversationStore;
        self.store
            .transcript(&ConversationKey::new("telegram", chat))
            .await
            .unwrap()
    }

    fn waiting(&self, chat: &str) -> Option<HandoffRequest> {
        self.queue
            .waiting()
            .into_iter()
            .find(|r| r.conversation.id == chat)
    }
}

fn texts(replies: &[Outbound]) -> String {
    replies
        .iter()
        .map(|r| r.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn shows_keys(text: &str) -> bool {
    KEYS.iter().all(|k| text.contains(k))
}

#[tokio::test]
async fn a_buyer_gets_card_keys_with_the_query_password_in_chinese() {
    let mut bot = Bot::new();
    let asked = bot.say("c1", "u1", "我的卡密在哪里查看").await;
    assert!(asked.contains("订单号"), "{asked}");
    let proof = bot.say("c1", "u1", DELIVERED).await;
    assert!(proof.contains("查询密码") && !shows_keys(&proof), "{proof}");
    let keys = bot.say("c1", "u1", "pass1234").await;
    assert!(shows_keys(&keys), "{keys}");
    assert!(keys.contains("兑换钱包充值码"), "how to redeem: {keys}");
    // The transcript keeps the keys masked and the password hidden.
    let transcript = bot.transcript("c1").await;
    let all: String = transcript.iter().map(|l| l.text.clone() + "\n").collect();
    assert!(!all.contains("pass1234"), "{all}");
    assert!(all.contains("****-****-****-7F3K"), "{all}");
    assert!(KEYS.iter().all(|k| !all.contains(k)), "{all}");
    let events = bot.audit.for_subject(DELIVERED).await.unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["order.verified", "card_key.shown"]);
    assert_eq!(events[1].actor, "customer:telegram:u1");
    // Within the verification window the next question needs no proof.
    let again = bot
        .say("c1", "u1", &format!("订单{DELIVERED}发货了吗"))
        .await;
    assert!(again.contains("已发货完成"), "{again}");
}

#[tokio::test]
async fn the_chat_identity_linked_to_the_order_is_proof_enough_in_english() {
    let mut bot = Bot::new();
    let keys = bot
        .say(
            "c2",
            "linked-user",
            &format!("show me the code for order {DELIVERED} plz"),
        )
        .await;
    assert!(shows_keys(&keys), "{keys}");
    assert!(keys.contains("How to redeem"), "{keys}");
    // Another user in another chat naming the same order gets asked for proof.
    let other = bot
        .say("c3", "stranger", &format!("get my key {DELIVERED}"))
        .await;
    assert!(
        !shows_keys(&other) && other.contains("query password"),
        "{other}"
    );
}

#[tokio::test]
async fn the_buyers_email_or_phone_proves_the_order() {
    let mut bot = Bot::new();
    bot.say("c4", "u4", "where is my card key").await;
    let asked = bot.say("c4", "u4", DELIVERED).await;
    assert!(asked.contains("query password"), "{asked}");
    let keys = bot.say("c4", "u4", "my email is buyer@example.COM").await;
    assert!(shows_keys(&keys), "{keys}");

    bot.say("c5", "u5", "卡密在哪看").await;
    bot.say("c5", "u5", DELIVERED).await;
    let keys = bot.say("c5", "u5", "+86 138-0013-8000").await;
    assert!(shows_keys(&keys), "{keys}");
    let transcript = bot.transcript("c5").await;
    assert!(transcript.iter().all(|l| !l.text.contains("138-0013")));
}

#[tokio::test]
async fn five_wrong_passwords_lock_lookups_and_hand_to_the_risk_group() {
    let mut bot = Bot::new();
    bot.say("c6", "u6", "我的卡密在哪里查看").await;
    bot.say("c6", "u6", DELIVERED).await;
    for attempt in 1..5 {
        let reply = bot.say("c6", "u6", &format!("wrong{attempt}")).await;
        assert!(
            reply.contains("不匹配") && !shows_keys(&reply),
            "{attempt}: {reply}"
        );
        assert!(bot.waiting("c6").is_none());
    }
    let locked = bot.say("c6", "u6", "wrong5").await;
    assert!(locked.contains("验证失败次数过多"), "{locked}");
    let request = bot.waiting("c6").expect("handed off");
    assert_eq!(request.skill_group, "risk");
    assert_eq!(request.reason, HandoffReason::VerificationFailed);
    assert_eq!(request.priority, Priority::High);
    // The person sees what happened, without the guesses.
    let context: String = request.transcript.iter().map(|l| l.text.clone()).collect();
    assert!(!context.contains("wrong"), "{context}");

    // The same customer in another chat, even with the right password, is still locked out.
    bot.say("c7", "u6", "where is my card key").await;
    let locked_again = bot.say("c7", "u6", DELIVERED).await;
    assert!(
        locked_again.contains("too many failed checks"),
        "{locked_again}"
    );
    assert!(bot.waiting("c7").is_some());
    // So is the order, for anybody.
    bot.say("c8", "someone-else", "where is my card key").await;
    let order_locked = bot.say("c8", "someone-else", DELIVERED).await;
    assert!(
        order_locked.contains("too many failed checks"),
        "{order_locked}"
    );
}

#[tokio::test]
async fn an_unknown_order_gets_the_same_answer_as_a_wrong_password() {
    let mut bot = Bot::new();
    bot.say("c9", "u9", "where is my card key").await;
    let ask_known = bot.say("c9", "u9", DELIVERED).await;
    let wrong = bot.say("c9", "u9", "nope123").await;
    bot.say("c10", "u10", "where is my card key").await;
    let ask_unknown = bot.say("c10", "u10", UNKNOWN).await;
    let unknown = bot.say("c10", "u10", "nope123").await;
    assert_eq!(
        ask_known.replace(DELIVERED, "N"),
        ask_unknown.replace(UNKNOWN, "N")
    );
    assert_eq!(wrong.replace(DELIVERED, "N"), unknown.replace(UNKNOWN, "N"));
    // Failures count for unknown numbers too (guessing numbers is what they stop).
    let events = bot.audit.for_subject(UNKNOWN).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "order.proof_failed");
}

#[tokio::test]
async fn card_keys_are_never_shown_in_a_group_chat() {
    let mut bot = Bot::new();
    let key = ConversationKey::new("telegram", "group-1");
    let replies = bot
        .send(
            Inbound::new(
                key.clone(),
                "linked-user",
                "",
                format!("卡密在哪看 订单号{DELIVERED}"),
            )
            .in_group(),
        )
        .await;
    let text = texts(&replies);
    assert!(text.contains("私聊") && !shows_keys(&text), "{text}");
    assert!(
        !text.contains("为保护您的订单安全"),
        "no proof asked in a group: {text}"
    );
    let replies = bot
        .send(
            Inbound::new(
                key.clone(),
                "linked-user",
                "",
                format!("show me the code for order {DELIVERED} plz"),
            )
            .in_group(),
        )
        .await;
    assert!(!shows_keys(&texts(&replies)));
    // Delivery status may be told in a group to the linked buyer, but nobody is asked for a
    // password there.
    let ask = |user: &str| {
        Inbound::new(key.clone(), user, "", format!("订单{DELIVERED}发货了吗")).in_group()
    };
    let status = texts(&bot.send(ask("linked-user")).await);
    assert!(status.contains("已发货完成"), "{status}");
    let stranger = texts(&bot.send(ask("stranger")).await);
    assert!(
        stranger.contains("私聊") && !stranger.contains("为保护您的订单安全，请回复"),
        "{stranger}"
    );
}

#[tokio::test]
async fn a_customer_can_change_topic_while_asked_for_proof() {
    let mut bot = Bot::new();
    bot.say("c11", "u11", "我的卡密在哪里查看").await;
    bot.say("c11", "u11", DELIVERED).await;
    let answer = bot.say("c11", "u11", "可以用支付宝付款吗").await;
    assert!(answer.contains("支付宝"), "{answer}");
    assert!(!answer.contains("不匹配"), "{answer}");
    // No failure recorded, and the question stays in the transcript as written.
    assert!(bot.audit.for_subject(DELIVERED).await.unwrap().is_empty());
    let transcript = bot.transcript("c11").await;
    assert!(transcript.iter().any(|l| l.text == "可以用支付宝付款吗"));
    // Cancelling works as in any flow.
    bot.say("c11", "u11", "where is my card key").await;
    bot.say("c11", "u11", DELIVERED).await;
    let cancelled = bot.say("c11", "u11", "cancel").await;
    assert!(cancelled.contains("cancelled"), "{cancelled}");
}

#[tokio::test]
async fn when_the_order_system_is_down_the_customer_gets_an_apology_and_a_person() {
    let mut bot = Bot::new();
    bot.orders.unavailable(true);
    bot.say("c12", "u12", "where is my card key").await;
    let reply = bot.say("c12", "u12", DELIVERED).await;
    assert!(reply.contains("can't be reached"), "{reply}");
    let request = bot.waiting("c12").expect("handed off");
    assert_eq!(request.reason, HandoffReason::OrdersUnavailable);
    assert_eq!(
        request.entities.get("order_no").map(String::as_str),
        Some(DELIVERED)
    );
}

#[tokio::test]
async fn a_proof_expires_and_must_be_given_again() {
    let mut bot = Bot::with(EngineConfig {
        verification_ttl_ms: 30,
        ..EngineConfig::default()
    });
    bot.say("c13", "u13", "where is my card key").await;
    bot.say("c13", "u13", DELIVERED).await;
    assert!(shows_keys(&bot.say("c13", "u13", "pass1234").await));
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    let again = bot.say("c13", "u13", "where is my card key").await;
    assert!(
        again.contains("query password") && !shows_keys(&again),
        "{again}"
    );
    assert!(shows_keys(&bot.say("c13", "u13", "pass1234").await));
}

#[tokio::test]
async fn delivery_status_in_plain_words_with_the_next_step() {
    let mut bot = Bot::new();
    bot.say("c14", "u14", "我的订单怎么还没发货").await;
    bot.say("c14", "u14", DELIVERING).await;
    let status = bot.say("c14", "u14", "pass1234").await;
    assert!(
        status.contains("正在发货") && status.contains("分钟内"),
        "{status}"
    );

    bot.say("c15", "u15", "my order still hasn't been delivered")
        .await;
    bot.say("c15", "u15", FAILED).await;
    let key = ConversationKey::new("telegram", "c15");
    let replies = bot.send(Inbound::new(key, "u15", "", "pass1234")).await;
    let failed = texts(&replies);
    assert!(
        failed.contains("failed") && failed.contains("money is safe"),
        "{failed}"
    );
    assert!(
        replies.iter().any(|r| r
            .quick_replies
            .iter()
            .any(|q| q.label == "Talk to a person")),
        "a person is offered: {replies:?}"
    );

    bot.say("c16", "u16", "订单一直显示处理中").await;
    bot.say("c16", "u16", OVERDUE).await;
    let late = bot.say("c16", "u16", "pass1234").await;
    assert!(late.contains("已超过预计发货时间"), "{late}");
}

/// A `Write` into a shared buffer, for capturing logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_full_card_key_in_transcripts_logs_or_what_agents_see() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut bot = Bot::new();
    let mut shown = String::new();
    // Keys shown by password, by linked identity and by e-mail; then every conversation asks
    // for a person, so the hand-off context (what agents see) holds the whole exchange.
    bot.say("k1", "u1", "我的卡密在哪里查看").await;
    bot.say("k1", "u1", DELIVERED).await;
    shown += &bot.say("k1", "u1", "pass1234").await;
    shown += &bot
        .say("k2", "linked-user", &format!("get my key {DELIVERED}"))
        .await;
    bot.say("k3", "u3", "where is my card key").await;
    bot.say("k3", "u3", DELIVERED).await;
    shown += &bot.say("k3", "u3", "buyer@example.com").await;
    assert_eq!(shown.matches(KEYS[0]).count(), 3, "{shown}");
    for chat in ["k1", "k2", "k3"] {
        bot.say(chat, "u", "人工").await;
    }

    let mut visible = String::new();
    for chat in ["k1", "k2", "k3"] {
        for line in bot.transcript(chat).await {
            visible += &format!("{line:?}\n");
        }
        let request = bot.waiting(chat).expect("handed off");
        assert!(request.transcript.iter().any(|l| l.speaker == Speaker::Bot
            && l.kind == Some(OutboundKind::Answer)
            && l.text.contains("7F3K")));
        visible += &format!("{request:?}\n");
    }
    for event in bot.audit.for_subject(DELIVERED).await.unwrap() {
        visible += &format!("{event:?}\n");
    }
    visible += &String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(visible.contains("card keys shown"), "logs were captured");
    for key in KEYS {
        assert!(!visible.contains(key), "{key} leaked:\n{visible}");
        // Nor its secret part, in any form.
        let secret = &key[..key.len() - 4];
        assert!(!visible.contains(secret), "{secret} leaked");
    }
}
