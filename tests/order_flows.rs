//! The order flows on the built-in knowledge base, in Chinese and English: card keys,
//! delivery status, cancellations, refunds and tickets — only for the customer who proves
//! they bought the order.

mod common;

use common::knowledge;
use kefu_core::conversation::{HandoffReason, Speaker};
use kefu_core::{
    AuditLog, ConversationKey, Engine, EngineConfig, HandoffRequest, Inbound, MemoryAudit,
    MemoryOrder, MemoryOrders, MemoryQueue, MemoryStore, MemoryTickets, Order, OrderStatus, Orders,
    OrdersError, Outbound, OutboundKind, Priority, Proof, Ticket, TicketStatus, TicketUpdate,
    Tickets,
};
use std::io::Write;
use std::sync::{Arc, Mutex};

const KEYS: [&str; 2] = ["STEAM-AAAA-BBBB-7F3K", "STEAM-CCCC-DDDD-9Q2Z"];
const DELIVERED: &str = "2024112300017";
const DELIVERING: &str = "2024112300018";
const FAILED: &str = "2024112300019";
const OVERDUE: &str = "2024112300020";
const UNPAID: &str = "2024112300021";
const UNKNOWN: &str = "2024112399999";

fn now() -> u64 {
    kefu_core::conversation::now_millis()
}

fn shop() -> Arc<MemoryOrders> {
    let orders = MemoryOrders::new();
    let mut delivered = Order::new(DELIVERED, "Steam 钱包充值卡 100 元", OrderStatus::Delivered);
    delivered.amount_cents = 10_000;
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
    delivering.amount_cents = 6_000;
    let mut overdue = Order::new(OVERDUE, "原神 月卡", OrderStatus::Paid);
    overdue.delivery_due_at = Some(now() - 30 * 60_000);
    overdue.amount_cents = 3_000;
    let mut failed = Order::new(FAILED, "Netflix gift card", OrderStatus::Failed);
    failed.amount_cents = 2_000;
    let mut unpaid = Order::new(UNPAID, "Razer Gold 50", OrderStatus::AwaitingPayment);
    unpaid.amount_cents = 3_500;
    for order in [delivering, failed, overdue, unpaid] {
        orders.insert(MemoryOrder {
            order: Some(order),
            password: Some("pass1234".to_string()),
            ..MemoryOrder::default()
        });
    }
    Arc::new(orders)
}

struct Bot {
    engine: Arc<Engine>,
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    audit: Arc<MemoryAudit>,
    orders: Arc<MemoryOrders>,
    tickets: Arc<MemoryTickets>,
    next: u64,
}

impl Bot {
    fn new() -> Bot {
        Bot::with(EngineConfig::default())
    }

    fn with(config: EngineConfig) -> Bot {
        let orders = shop();
        Bot::over(config, orders.clone(), orders)
    }

    /// A bot whose engine reaches the shop's orders through `port`.
    fn over(config: EngineConfig, orders: Arc<MemoryOrders>, port: Arc<dyn Orders>) -> Bot {
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new());
        let audit = Arc::new(MemoryAudit::new());
        let tickets = Arc::new(MemoryTickets::new());
        let engine = Engine::builder(knowledge())
            .store(store.clone())
            .queue(queue.clone())
            .audit(audit.clone())
            .orders(port)
            .tickets(tickets.clone())
            .config(config)
            .build();
        Bot {
            engine: Arc::new(engine),
            store,
            queue,
            audit,
            orders,
            tickets,
            next: 0,
        }
    }

    /// A bot that refunds undelivered orders up to ¥50 by itself.
    fn self_service() -> Bot {
        Bot::with(EngineConfig {
            refund_auto_approve_cents: 5_000,
            ..EngineConfig::default()
        })
    }

    async fn status(&self, number: &str) -> OrderStatus {
        self.orders.find(number).await.unwrap().unwrap().status
    }

    async fn tickets_of(&self, number: &str) -> Vec<Ticket> {
        self.tickets.for_order(number).await.unwrap()
    }

    /// Proves `number` in a fresh private chat after `question`; returns the reply to the proof.
    async fn proven(&mut self, chat: &str, question: &str, number: &str) -> String {
        self.say(chat, chat, question).await;
        let asked = self.say(chat, chat, number).await;
        assert!(
            asked.contains("查询密码") || asked.contains("query password"),
            "{asked}"
        );
        self.say(chat, chat, "pass1234").await
    }

    /// The replies (with their buttons) of a private message.
    async fn replies(&mut self, chat: &str, text: &str) -> Vec<Outbound> {
        let key = ConversationKey::new("telegram", chat);
        self.send(Inbound::new(key, chat, "", text)).await
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

/// A change an agent makes to a ticket, taking it over if `owns`.
fn agent_update(status: Option<TicketStatus>, agent: &str, owns: bool, note: &str) -> TicketUpdate {
    TicketUpdate {
        status,
        owner: owns.then(|| agent.to_string()),
        by: agent.to_string(),
        note: note.to_string(),
    }
}

/// The quick replies of the replies that have some.
fn buttons(replies: &[Outbound]) -> Vec<kefu_core::QuickReply> {
    replies
        .iter()
        .flat_map(|r| r.quick_replies.iter().cloned())
        .collect()
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
    assert!(all.contains("****7F3K"), "{all}");
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
    // With a button channels render as a way into a private chat with the bot.
    let button = replies
        .iter()
        .flat_map(|r| &r.quick_replies)
        .find(|q| q.payload == kefu_core::message::PRIVATE_CHAT)
        .expect("a 'message me privately' button");
    assert_eq!(button.label, "私聊我");
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
async fn the_order_command_asks_what_to_do_with_an_order_or_for_its_number() {
    let mut bot = Bot::new();
    let with_number = bot
        .say("c-order", "u-order", &format!("/order {DELIVERED}"))
        .await;
    assert!(with_number.contains(DELIVERED), "{with_number}");
    assert!(
        with_number.contains("1.") || with_number.contains("1、") || with_number.contains("1)"),
        "the order's questions as numbered choices: {with_number}"
    );
    let without = bot.say("c-order2", "u-order2", "/order").await;
    assert!(without.contains("订单号"), "asks for the number: {without}");
    // The private-chat button pressed where it is an ordinary button greets.
    let greeting = bot.say("c-order3", "u-order3", "/private").await;
    assert!(greeting.contains("智能客服"), "{greeting}");
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
async fn when_the_order_system_is_down_the_customer_gets_an_apology_and_a_ticket() {
    let mut bot = Bot::new();
    bot.orders.unavailable(true);
    bot.say("c12", "u12", "where is my card key").await;
    let replies = bot.replies("c12", DELIVERED).await;
    let reply = texts(&replies);
    assert!(reply.contains("can't be reached"), "{reply}");
    let tickets = bot.tickets_of(DELIVERED).await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].kind, "order_lookup");
    assert_eq!(tickets[0].skill_group, "orders");
    assert!(reply.contains(&tickets[0].number), "{reply}");
    assert!(
        replies[0]
            .quick_replies
            .iter()
            .any(|q| q.label == "Talk to a person"),
        "a person is offered: {replies:?}"
    );
    // In Chinese too; the bot stays with the customer, who may still ask for a person.
    bot.say("c12b", "u12b", "我的订单怎么还没发货").await;
    let reply = bot.say("c12b", "u12b", DELIVERING).await;
    assert!(
        reply.contains("订单系统暂时无法访问") && reply.contains("工单"),
        "{reply}"
    );
    assert!(bot.waiting("c12b").is_none());
    bot.say("c12b", "u12b", "人工").await;
    assert!(bot.waiting("c12b").is_some());
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
    // Tests on other threads may have cached a callsite as uninteresting (no subscriber there)
    // before this thread's subscriber existed: ask every callsite again.
    tracing::callsite::rebuild_interest_cache();

    let mut bot = Bot::new();
    let mut shown = String::new();
    let mut visible = String::new();
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
    // A refund request and its announced status change, and an agent's audited reveal.
    bot.proven("k4", "我要申请退款", DELIVERED).await;
    for ticket in bot.tickets_of(DELIVERED).await {
        let change = bot
            .engine
            .agents()
            .update_ticket(
                &ticket.number,
                agent_update(Some(TicketStatus::InProgress), "alice", true, ""),
            )
            .await
            .unwrap()
            .unwrap();
        visible += &format!("{change:?}\n");
    }
    bot.engine
        .agents()
        .reveal_card_keys(DELIVERED, "alice", "customer asked")
        .await
        .unwrap();
    for chat in ["k1", "k2", "k3", "k4"] {
        bot.say(chat, "u", "人工").await;
    }

    for chat in ["k1", "k2", "k3", "k4"] {
        for line in bot.transcript(chat).await {
            visible += &format!("{line:?}\n");
        }
        let request = bot.waiting(chat).expect("handed off");
        assert!(
            chat == "k4"
                || request.transcript.iter().any(|l| l.speaker == Speaker::Bot
                    && l.kind == Some(OutboundKind::Answer)
                    && l.text.contains("7F3K"))
        );
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

#[tokio::test]
async fn an_unpaid_order_is_cancelled_after_the_buyer_confirms_in_chinese() {
    let mut bot = Bot::new();
    let asked = bot.say("s1", "s1", "我要取消订单").await;
    assert!(asked.contains("订单号"), "{asked}");
    bot.say("s1", "s1", UNPAID).await;
    let key = ConversationKey::new("telegram", "s1");
    let offer = bot.send(Inbound::new(key, "s1", "", "pass1234")).await;
    let text = texts(&offer);
    assert!(
        text.contains("确定要取消") && text.contains("¥35.00"),
        "{text}"
    );
    assert_eq!(
        buttons(&offer)
            .iter()
            .map(|q| q.label.as_str())
            .collect::<Vec<_>>(),
        ["确认", "不用了"]
    );
    assert_eq!(
        bot.status(UNPAID).await,
        OrderStatus::AwaitingPayment,
        "not before the yes"
    );
    let done = bot.say("s1", "s1", "确认").await;
    assert!(done.contains("已取消"), "{done}");
    assert_eq!(bot.status(UNPAID).await, OrderStatus::Cancelled);
    let actions: Vec<_> = bot
        .audit
        .for_subject(UNPAID)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        ["order.verified", "order.linked", "order.cancelled"]
    );
    // Asked again, the order says where it stands.
    let again = bot.say("s1", "s1", &format!("取消订单 {UNPAID}")).await;
    assert!(again.contains("已取消，没有产生扣款"), "{again}");
}

#[tokio::test]
async fn saying_no_keeps_the_order_in_english() {
    let mut bot = Bot::new();
    let offer = bot.proven("s2", "cancel my order please", UNPAID).await;
    assert!(offer.contains("Do you want to cancel it?"), "{offer}");
    let kept = bot.say("s2", "s2", "no").await;
    assert!(
        kept.contains(&format!("left order {UNPAID} as it is")),
        "{kept}"
    );
    assert_eq!(bot.status(UNPAID).await, OrderStatus::AwaitingPayment);
    // "Cancel" at the confirmation stops the flow, not the order.
    bot.say("s2", "s2", &format!("cancel order {UNPAID}")).await;
    let kept = bot.say("s2", "s2", "cancel").await;
    assert!(kept.contains("as it is"), "{kept}");
    assert_eq!(bot.status(UNPAID).await, OrderStatus::AwaitingPayment);
}

#[tokio::test]
async fn a_small_undelivered_order_is_refunded_at_once_with_a_receipt() {
    let mut bot = Bot::self_service();
    let offer = bot.proven("s3", "refund me", FAILED).await;
    assert!(offer.contains("refund the full ¥20.00"), "{offer}");
    let done = bot.say("s3", "s3", "yes").await;
    assert!(done.contains("refunded in full (¥20.00)"), "{done}");
    assert_eq!(bot.status(FAILED).await, OrderStatus::Refunded);
    let tickets = bot.tickets_of(FAILED).await;
    assert_eq!(tickets.len(), 1, "the refund's record");
    assert_eq!(tickets[0].status, TicketStatus::Resolved);
    assert_eq!(tickets[0].skill_group, "refunds");
    assert!(
        tickets[0].description.contains("refund me"),
        "{:?}",
        tickets[0]
    );
    assert!(done.contains(&tickets[0].number), "{done}");
    let events = bot.audit.for_subject(FAILED).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.action == "order.refunded" && e.detail.contains("¥20.00")));
    // Nothing to refund twice.
    bot.say("s3", "s3", &format!("refund order {FAILED} please"))
        .await;
    let again = bot.say("s3", "s3", "yes").await;
    assert!(!again.contains("refunded in full"), "{again}");
}

#[tokio::test]
async fn delivered_and_large_refunds_become_tickets_for_the_refund_team_in_chinese() {
    let mut bot = Bot::self_service();
    let reply = bot.proven("s4", "我要申请退款", DELIVERED).await;
    assert!(
        reply.contains("已经发货") && reply.contains("工单号"),
        "{reply}"
    );
    let tickets = bot.tickets_of(DELIVERED).await;
    assert_eq!(tickets.len(), 1);
    let ticket = &tickets[0];
    assert_eq!(
        (ticket.kind.as_str(), ticket.skill_group.as_str()),
        ("refund", "refunds")
    );
    assert_eq!(ticket.status, TicketStatus::Open);
    assert_eq!(ticket.customer, "s4");
    assert!(
        reply.contains(&ticket.number) && reply.contains("北京时间"),
        "{reply}"
    );
    assert!(
        ticket.description.contains("我要申请退款"),
        "{}",
        ticket.description
    );
    assert_eq!(bot.status(DELIVERED).await, OrderStatus::Delivered);
    // Asking again points at the same ticket instead of a second one.
    let again = bot
        .say("s4", "s4", &format!("订单{DELIVERED}申请退款"))
        .await;
    assert!(
        again.contains("已经有一个进行中的工单") && again.contains(&ticket.number),
        "{again}"
    );
    assert_eq!(bot.tickets_of(DELIVERED).await.len(), 1);

    // Above the auto-approval limit (¥60 > ¥50): a ticket, no money moved.
    let reply = bot.proven("s5", "refund me", DELIVERING).await;
    assert!(
        reply.contains("refund request") && !reply.contains("Go ahead"),
        "{reply}"
    );
    assert_eq!(bot.status(DELIVERING).await, OrderStatus::Delivering);
    // And with no limit configured (the default), every refund is a ticket.
    let mut strict = Bot::new();
    let reply = strict.proven("s6", "refund me", FAILED).await;
    assert!(reply.contains("ticket"), "{reply}");
    assert_eq!(strict.status(FAILED).await, OrderStatus::Failed);
}

#[tokio::test]
async fn cancelling_a_paid_undelivered_order_is_a_refund() {
    let mut bot = Bot::self_service();
    let reply = bot.proven("s7", "帮我把这个单子取消掉", OVERDUE).await;
    assert!(
        reply.contains("取消就是退款") && reply.contains("全额退款 ¥30.00"),
        "{reply}"
    );
    let done = bot.say("s7", "s7", "好的").await;
    assert!(done.contains("全额退款 ¥30.00"), "{done}");
    assert_eq!(bot.status(OVERDUE).await, OrderStatus::Refunded);
    // A delivered order cannot be cancelled; a refund request is offered.
    let key = ConversationKey::new("telegram", "s8");
    bot.send(Inbound::new(key.clone(), "s8", "", "i want to cancel"))
        .await;
    bot.send(Inbound::new(key.clone(), "s8", "", DELIVERED))
        .await;
    let replies = bot.send(Inbound::new(key, "s8", "", "pass1234")).await;
    assert!(
        texts(&replies).contains("can't be cancelled"),
        "{replies:?}"
    );
    let refund = &buttons(&replies)[0];
    assert_eq!(refund.payload, format!("/refund {DELIVERED}"));
    // Pressing it files the refund request at once (the proof still holds).
    let filed = bot.say("s8", "s8", &refund.payload.clone()).await;
    assert!(filed.contains("filed a refund request"), "{filed}");
}

#[tokio::test]
async fn a_confirmation_after_the_proof_expired_needs_the_proof_again() {
    let mut bot = Bot::with(EngineConfig {
        verification_ttl_ms: 40,
        refund_auto_approve_cents: 5_000,
        // Linking the account would make it proof enough on its own.
        link_identity_on_proof: false,
        ..EngineConfig::default()
    });
    let offer = bot.proven("s9", "refund me", FAILED).await;
    assert!(offer.contains("Go ahead?"), "{offer}");
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    let again = bot.say("s9", "s9", "yes").await;
    assert!(again.contains("query password"), "{again}");
    assert_eq!(
        bot.status(FAILED).await,
        OrderStatus::Failed,
        "nothing refunded unproven"
    );
    let offer = bot.say("s9", "s9", "pass1234").await;
    assert!(offer.contains("Go ahead?"), "{offer}");
    let done = bot.say("s9", "s9", "yes").await;
    assert!(done.contains("refunded in full"), "{done}");
}

#[tokio::test]
async fn a_new_question_at_a_confirmation_changes_nothing() {
    let mut bot = Bot::self_service();
    bot.proven("s10", "我要取消订单", UNPAID).await;
    let answer = bot.say("s10", "s10", "可以用支付宝付款吗").await;
    assert!(answer.contains("支付宝"), "{answer}");
    assert_eq!(bot.status(UNPAID).await, OrderStatus::AwaitingPayment);
    // The confirmation is over: a later "yes" is not taken for it.
    bot.say("s10", "s10", "好的").await;
    assert_eq!(bot.status(UNPAID).await, OrderStatus::AwaitingPayment);
    // Something that is neither yes nor no is asked again.
    bot.proven("s11", "cancel my order please", UNPAID).await;
    let asked = bot.say("s11", "s11", "hmm").await;
    assert!(asked.contains("reply \"confirm\""), "{asked}");
}

/// Orders read from a system that cannot cancel or refund (the port's defaults).
struct ReadOnly(Arc<MemoryOrders>);

#[async_trait::async_trait]
impl Orders for ReadOnly {
    async fn find(&self, number: &str) -> Result<Option<Order>, OrdersError> {
        self.0.find(number).await
    }
    async fn verify(&self, number: &str, proof: &Proof) -> Result<bool, OrdersError> {
        self.0.verify(number, proof).await
    }
    async fn card_keys(&self, number: &str) -> Result<Vec<String>, OrdersError> {
        self.0.card_keys(number).await
    }
}

#[tokio::test]
async fn an_order_system_that_cannot_change_orders_gets_tickets_instead() {
    let orders = shop();
    let config = EngineConfig {
        refund_auto_approve_cents: 5_000,
        ..EngineConfig::default()
    };
    let mut bot = Bot::over(config, orders.clone(), Arc::new(ReadOnly(orders)));
    bot.proven("s12", "refund me", FAILED).await;
    let reply = bot.say("s12", "s12", "yes").await;
    assert!(reply.contains("filed a refund request"), "{reply}");
    assert_eq!(bot.tickets_of(FAILED).await[0].skill_group, "refunds");
    bot.proven("s13", "我要取消订单", UNPAID).await;
    let reply = bot.say("s13", "s13", "确认").await;
    assert!(
        reply.contains("已为您创建工单") && reply.contains("取消订单"),
        "{reply}"
    );
    let ticket = &bot.tickets_of(UNPAID).await[0];
    assert_eq!(
        (ticket.kind.as_str(), ticket.skill_group.as_str()),
        ("cancel", "orders")
    );
    assert_eq!(bot.status(UNPAID).await, OrderStatus::AwaitingPayment);
}

#[tokio::test]
async fn a_failed_delivery_offers_a_ticket_that_is_opened_once() {
    let mut bot = Bot::new();
    bot.say("s14", "s14", "my order still hasn't been delivered")
        .await;
    bot.say("s14", "s14", FAILED).await;
    let replies = bot.replies("s14", "pass1234").await;
    let button = buttons(&replies)[0].clone();
    assert_eq!(
        (button.label.as_str(), button.payload.clone()),
        ("Open a ticket", format!("/ticket {FAILED}"))
    );
    let opened = bot.say("s14", "s14", &button.payload).await;
    assert!(
        opened.contains("opened ticket") && opened.contains("delivery problem"),
        "{opened}"
    );
    let again = bot.say("s14", "s14", &button.payload).await;
    assert!(again.contains("already has an open ticket"), "{again}");
    assert_eq!(bot.tickets_of(FAILED).await.len(), 1);
    // Somebody who has not proven the order is asked to, and no ticket is opened.
    // (A command says nothing of the language: a first one gets the default, Chinese.)
    let stranger = bot.say("s15", "s15", &format!("/ticket {OVERDUE}")).await;
    assert!(stranger.contains("查询密码"), "{stranger}");
    assert!(bot.tickets_of(OVERDUE).await.is_empty());
    let usage = bot.say("s16", "s16", "/ticket").await;
    assert!(usage.contains("/ticket 202411230001"), "{usage}");
    assert!(usage.contains("订单号"), "{usage}");
}

#[tokio::test]
async fn ticket_progress_is_told_only_to_the_tickets_customer() {
    let mut bot = Bot::new();
    bot.proven("s17", "我要申请退款", DELIVERED).await;
    let number = bot.tickets_of(DELIVERED).await[0].number.clone();
    // Asked without a number: the customer's own tickets.
    let mine = bot.say("s17", "s17", "我的工单处理得怎么样了").await;
    assert!(
        mine.contains(&number) && mine.contains("待处理") && mine.contains("待分配"),
        "{mine}"
    );
    assert!(mine.contains("已创建") && mine.contains("预计"), "{mine}");
    // By number, in English.
    let by_number = bot
        .say(
            "s17",
            "s17",
            &format!("what's the progress of ticket {number}"),
        )
        .await;
    assert!(
        by_number.contains("waiting to be picked up") && by_number.contains("not assigned yet"),
        "{by_number}"
    );
    // Anybody else learns nothing, exactly as for a ticket that does not exist.
    let foreign = bot
        .say(
            "s18",
            "s18",
            &format!("what's the progress of ticket {number}"),
        )
        .await;
    let missing = bot
        .say(
            "s19",
            "s19",
            "what's the progress of ticket T20991231000001",
        )
        .await;
    assert!(!foreign.contains("refund"), "{foreign}");
    assert_eq!(
        foreign.replace(&number, "N"),
        missing.replace("T20991231000001", "N")
    );
    // By order number, after the proof: the order's tickets.
    bot.say("s20", "s20", "ticket status").await;
    bot.say("s20", "s20", DELIVERED).await;
    let by_order = bot.say("s20", "s20", "pass1234").await;
    assert!(by_order.contains(&number), "{by_order}");
}

#[tokio::test]
async fn ticket_status_changes_are_announced_in_the_customers_language() {
    let mut bot = Bot::new();
    bot.proven("s21", "refund me", DELIVERED).await;
    let number = bot.tickets_of(DELIVERED).await[0].number.clone();
    let change = bot
        .engine
        .agents()
        .update_ticket(
            &number,
            agent_update(
                Some(TicketStatus::InProgress),
                "alice",
                true,
                "We're checking the key with the supplier.",
            ),
        )
        .await
        .unwrap()
        .expect("the ticket exists");
    assert_eq!(change.ticket.owner.as_deref(), Some("alice"));
    let notice = change.notice.expect("the customer is told");
    assert_eq!(notice.kind, OutboundKind::Notification);
    assert_eq!(notice.conversation, ConversationKey::new("telegram", "s21"));
    assert!(
        notice.text.contains(&number) && notice.text.contains("being worked on"),
        "{}",
        notice.text
    );
    assert!(notice.text.contains("checking the key"), "{}", notice.text);
    let transcript = bot.transcript("s21").await;
    assert_eq!(
        transcript.last().unwrap().kind,
        Some(OutboundKind::Notification)
    );
    // A change that is not a status change is not announced.
    let quiet = bot
        .engine
        .agents()
        .update_ticket(&number, agent_update(None, "bob", true, "taking over"))
        .await
        .unwrap()
        .unwrap();
    assert!(quiet.notice.is_none());
    let progress = bot
        .say("s21", "s21", &format!("ticket {number} status?"))
        .await;
    assert!(
        progress.contains("agent bob") && progress.contains("being worked on"),
        "{progress}"
    );
    // A Chinese customer is told in Chinese.
    bot.proven("s22", "我要申请退款", DELIVERING).await;
    let number = bot.tickets_of(DELIVERING).await[0].number.clone();
    let change = bot
        .engine
        .agents()
        .update_ticket(
            &number,
            agent_update(Some(TicketStatus::Resolved), "carol", false, "已原路退款。"),
        )
        .await
        .unwrap()
        .unwrap();
    let notice = change.notice.unwrap().text;
    assert!(
        notice.contains("已解决") && notice.contains("已原路退款"),
        "{notice}"
    );
    assert!(bot
        .engine
        .agents()
        .update_ticket(
            "T20991231000001",
            agent_update(Some(TicketStatus::Closed), "x", false, "")
        )
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn card_keys_are_resent_within_the_daily_limit_only() {
    let mut bot = Bot::with(EngineConfig {
        max_key_views_per_day: 2,
        ..EngineConfig::default()
    });
    assert!(shows_keys(
        &bot.proven("s23", "我的卡密在哪里查看", DELIVERED).await
    ));
    let resent = bot
        .say("s23", "s23", &format!("再发一次订单{DELIVERED}的卡密"))
        .await;
    assert!(shows_keys(&resent), "{resent}");
    let limited = bot
        .say("s23", "s23", &format!("卡密再发我一遍 {DELIVERED}"))
        .await;
    assert!(
        !shows_keys(&limited) && limited.contains("查看过多次"),
        "{limited}"
    );
    let request = bot.waiting("s23").expect("a person checks");
    assert_eq!(request.skill_group, "orders");
}

#[tokio::test]
async fn an_agent_revealing_card_keys_is_audited() {
    let bot = Bot::new();
    let keys = bot
        .engine
        .agents()
        .reveal_card_keys(DELIVERED, "alice", "customer lost access to the chat")
        .await
        .unwrap();
    assert_eq!(keys, KEYS);
    let events = bot.audit.for_subject(DELIVERED).await.unwrap();
    let revealed = events
        .iter()
        .find(|e| e.action == "card_key.revealed")
        .expect("audited");
    assert_eq!(revealed.actor, "agent:alice");
    assert!(revealed.detail.contains("lost access") && revealed.detail.contains("7F3K"));
    assert!(
        KEYS.iter().all(|k| !revealed.detail.contains(k)),
        "{revealed:?}"
    );
    // Without an order system there is nothing to reveal, and the error says why.
    let engine = Arc::new(Engine::builder(knowledge()).build());
    let err = engine
        .agents()
        .reveal_card_keys(DELIVERED, "alice", "x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("order system"), "{err}");
}

#[tokio::test]
async fn a_proof_by_password_links_the_chat_account_once() {
    let mut bot = Bot::new();
    let status = bot
        .proven("s24", "my order still hasn't been delivered", FAILED)
        .await;
    assert!(
        status.contains("failed") && status.contains("linked order"),
        "{status}"
    );
    let events = bot.audit.for_subject(FAILED).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.action == "order.linked" && e.actor == "customer:telegram:s24"));
    // The same account in a new conversation, after the proof expired: no password needed.
    let key = ConversationKey::new("telegram", "s24-later");
    let replies = bot
        .send(Inbound::new(
            key,
            "s24",
            "",
            format!("订单{FAILED}发货了吗"),
        ))
        .await;
    assert!(texts(&replies).contains("发货失败"), "{replies:?}");
    // Another account still has to prove it, and cannot take the link over.
    let other = bot.proven("s25", "where is my order", FAILED).await;
    assert!(!other.contains("linked"), "{other}");
    assert!(!bot
        .say("s26", "s26", &format!("where is order {FAILED}"))
        .await
        .contains("failed"));
    // An order the shop already linked to somebody stays theirs.
    bot.proven("s27", "where is my card key", DELIVERED).await;
    assert!(bot
        .audit
        .for_subject(DELIVERED)
        .await
        .unwrap()
        .iter()
        .all(|e| e.action != "order.linked"));
}

/// A bot over the shop's order API at `base_url` (a short timeout, one retry).
fn over_http(base_url: &str) -> Bot {
    let mut config = kefu_orders_http::HttpOrdersConfig::new(base_url, "shared-secret");
    config.allow_loopback_http = true;
    config.timeout = std::time::Duration::from_millis(200);
    config.retries = 1;
    config.backoff = std::time::Duration::from_millis(10);
    let port = Arc::new(kefu_orders_http::HttpOrders::new(config).expect("client"));
    Bot::over(EngineConfig::default(), shop(), port)
}

#[tokio::test]
async fn when_the_shops_order_api_is_down_the_customer_gets_an_apology_and_a_ticket() {
    // Nothing listening: the port was free a moment ago.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let mut bot = over_http(&dead);
    bot.say("h1", "h1", "我的卡密在哪里查看").await;
    let reply = bot.say("h1", "h1", DELIVERED).await;
    assert!(reply.contains("订单系统暂时无法访问"), "{reply}");
    let tickets = bot.tickets_of(DELIVERED).await;
    assert_eq!(tickets.len(), 1, "{reply}");
    assert!(reply.contains(&tickets[0].number), "{reply}");
    assert!(bot.waiting("h1").is_none());

    // A server answering 503 to everything, in English.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "maintenance") });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut bot = over_http(&url);
    bot.say("h2", "h2", "my order still hasn't been delivered")
        .await;
    let reply = bot.say("h2", "h2", FAILED).await;
    assert!(
        reply.contains("can't be reached") && reply.contains("ticket T"),
        "{reply}"
    );
    assert_eq!(bot.tickets_of(FAILED).await[0].kind, "order_lookup");
}

#[tokio::test]
async fn a_corrected_order_number_must_be_said_and_a_non_answer_is_not_a_failed_proof() {
    let mut bot = Bot::new();
    bot.say("p1", "p1", "where is my card key").await;
    bot.say("p1", "p1", UNKNOWN).await;
    // The customer says they mean another order: asked for the proof of the new order.
    let asked = bot
        .say("p1", "p1", &format!("sorry, wrong order, it's {DELIVERED}"))
        .await;
    assert!(
        asked.contains(DELIVERED) && asked.contains("query password"),
        "{asked}"
    );
    // Words that cannot be a password are asked again, not counted (in the language the
    // proof was asked in: a reply to it does not change the language).
    let again = bot.say("p1", "p1", "我找不到啊").await;
    assert!(
        again.contains("query password") && !again.contains("don't match"),
        "{again}"
    );
    assert!(bot.audit.for_subject(UNKNOWN).await.unwrap().is_empty());
    assert!(bot.audit.for_subject(DELIVERED).await.unwrap().is_empty());
    // "换个订单" without a number asks for the number.
    let which = bot.say("p1", "p1", "换个订单").await;
    assert!(which.contains("order number"), "{which}");
    bot.say("p1", "p1", DELIVERED).await;
    // A password inside a sentence is found.
    let keys = bot.say("p1", "p1", "密码是 pass1234").await;
    assert!(shows_keys(&keys), "{keys}");
    assert!(bot
        .transcript("p1")
        .await
        .iter()
        .all(|l| !l.text.contains("pass1234")));
}
