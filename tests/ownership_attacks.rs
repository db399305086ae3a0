//! The order flows as an attacker approaches them: many guesses in one message, guesses raced
//! from many accounts, locking a chosen customer out, passwords shaped like order numbers,
//! stored states an engine no longer understands, turns run twice. Each test is named for
//! what must hold.

mod common;

use async_trait::async_trait;
use common::knowledge;
use kefu_core::conversation::{FlowState, Holder};
use kefu_core::{
    AuditLog, Committed, Conversation, ConversationKey, ConversationStore, Engine, EngineConfig,
    EngineError, Inbound, MemoryAttempts, MemoryAudit, MemoryOrder, MemoryOrders, MemoryQueue,
    MemoryStore, MemoryTickets, Order, OrderChange, OrderStatus, Orders, OrdersError, Proof,
    StoreError, Tickets, TranscriptLine, TurnCommit, TurnLock, TurnStart,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ORDER: &str = "2024112300017";
const PAID: &str = "2024112300018";
const UNPAID: &str = "2024112300021";
const PIN: &str = "7319";
const KEY: &str = "STEAM-AAAA-BBBB-7F3K";

fn shop() -> MemoryOrders {
    let orders = MemoryOrders::new();
    let mut delivered = Order::new(ORDER, "Steam 钱包充值卡 100 元", OrderStatus::Delivered);
    delivered.amount_cents = 10_000;
    orders.insert(MemoryOrder {
        order: Some(delivered),
        keys: vec![KEY.to_string()],
        password: Some(PIN.to_string()),
        contacts: Vec::new(),
        identities: vec![("telegram".to_string(), "victim".to_string())],
    });
    let mut paid = Order::new(PAID, "原神 月卡", OrderStatus::Paid);
    paid.amount_cents = 3_000;
    let mut unpaid = Order::new(UNPAID, "Razer Gold 50", OrderStatus::AwaitingPayment);
    unpaid.amount_cents = 3_500;
    for order in [paid, unpaid] {
        orders.insert(MemoryOrder {
            order: Some(order),
            password: Some("pass1234".to_string()),
            ..MemoryOrder::default()
        });
    }
    orders
}

/// The shop's orders, counting and recording what the engine asks, optionally slowly.
struct Watched {
    inner: MemoryOrders,
    verify_calls: AtomicUsize,
    numbers: Mutex<Vec<String>>,
    delay: Duration,
}

impl Watched {
    fn new(delay: Duration) -> Arc<Watched> {
        Arc::new(Watched {
            inner: shop(),
            verify_calls: AtomicUsize::new(0),
            numbers: Mutex::new(Vec::new()),
            delay,
        })
    }

    fn note(&self, number: &str) {
        self.numbers.lock().unwrap().push(number.to_string());
    }

    fn secret_checks(&self) -> usize {
        self.verify_calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Orders for Watched {
    async fn find(&self, number: &str) -> Result<Option<Order>, OrdersError> {
        self.note(number);
        self.inner.find(number).await
    }
    async fn verify(&self, number: &str, proof: &Proof) -> Result<bool, OrdersError> {
        self.note(number);
        if matches!(proof, Proof::Secret(_)) {
            self.verify_calls.fetch_add(1, Ordering::SeqCst);
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.verify(number, proof).await
    }
    async fn card_keys(&self, number: &str) -> Result<Vec<String>, OrdersError> {
        self.note(number);
        self.inner.card_keys(number).await
    }
    async fn link(&self, number: &str, channel: &str, user: &str) -> Result<bool, OrdersError> {
        self.inner.link(number, channel, user).await
    }
    async fn cancel(&self, number: &str, key: &str) -> Result<OrderChange, OrdersError> {
        self.note(number);
        self.inner.cancel(number, key).await
    }
    async fn refund(
        &self,
        number: &str,
        reason: &str,
        key: &str,
    ) -> Result<OrderChange, OrdersError> {
        self.note(number);
        self.inner.refund(number, reason, key).await
    }
}

struct Bot {
    engine: Arc<Engine>,
    store: Arc<dyn ConversationStore>,
    audit: Arc<MemoryAudit>,
    tickets: Arc<MemoryTickets>,
    attempts: Arc<MemoryAttempts>,
    orders: Arc<Watched>,
    next: AtomicUsize,
}

impl Bot {
    fn new() -> Bot {
        Bot::with(Duration::ZERO, EngineConfig::default())
    }

    fn with(delay: Duration, config: EngineConfig) -> Bot {
        Bot::over(
            Arc::new(MemoryStore::new()),
            Some(Watched::new(delay)),
            config,
        )
    }

    /// An engine on `store`, with an order system or (`None`) without one.
    fn over(
        store: Arc<dyn ConversationStore>,
        orders: Option<Arc<Watched>>,
        config: EngineConfig,
    ) -> Bot {
        let audit = Arc::new(MemoryAudit::new());
        let tickets = Arc::new(MemoryTickets::new());
        let attempts = Arc::new(MemoryAttempts::new());
        let mut builder = Engine::builder(knowledge())
            .store(store.clone())
            .queue(Arc::new(MemoryQueue::new()))
            .audit(audit.clone())
            .tickets(tickets.clone())
            .attempts(attempts.clone())
            .config(config);
        if let Some(orders) = &orders {
            builder = builder.orders(orders.clone());
        }
        Bot {
            engine: Arc::new(builder.build()),
            store,
            audit,
            tickets,
            attempts,
            orders: orders.unwrap_or_else(|| Watched::new(Duration::ZERO)),
            next: AtomicUsize::new(0),
        }
    }

    async fn say(&self, user: &str, text: &str) -> String {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let key = ConversationKey::new("telegram", user);
        let message = Inbound::new(key, user, format!("m{id}"), text);
        let replies = self.engine.handle(message).await.expect("turn");
        replies
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn transcript(&self, user: &str) -> String {
        self.store
            .transcript(&ConversationKey::new("telegram", user))
            .await
            .unwrap()
            .iter()
            .map(|l| l.text.clone() + "\n")
            .collect()
    }

    async fn failures(&self, subject: &str) -> usize {
        self.audit
            .for_subject(subject)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.action == "order.proof_failed")
            .count()
    }
}

fn locked(reply: &str) -> bool {
    reply.contains("too many failed checks") || reply.contains("验证失败次数过多")
}

#[tokio::test]
async fn a_message_with_a_thousand_guesses_reveals_nothing_and_counts_the_guesses_it_tried() {
    // Long enough for the whole message to be read: the limit under test is the one on
    // proofs, not the one on length.
    let bot = Bot::with(
        Duration::ZERO,
        EngineConfig {
            max_message_chars: 10_000,
            ..EngineConfig::default()
        },
    );
    let mut guesses: Vec<String> = (0..1000).map(|n| format!("{:04}", 9999 - n)).collect();
    // The right password is among them, half-way.
    guesses[500] = PIN.to_string();
    let message = guesses.join(" ");
    bot.say("attacker", "where is my card key").await;
    bot.say("attacker", ORDER).await;
    let reply = bot.say("attacker", &message).await;
    assert!(!reply.contains(KEY), "{reply}");
    let tried = kefu_core::engine::MAX_PROOFS_PER_MESSAGE;
    assert_eq!(bot.orders.secret_checks(), tried);
    assert_eq!(bot.failures(ORDER).await, tried);
    assert_eq!(bot.failures("customer:telegram:attacker").await, tried);
    // The next such message reaches the limit of 5 and locks; the order system was asked 5
    // times in all, and a person of the risk team has the conversation now.
    let last = bot.say("attacker", &message).await;
    assert!(!last.contains(KEY) && locked(&last), "{last}");
    assert_eq!(bot.orders.secret_checks(), 5);
    assert_eq!(bot.failures(ORDER).await, 5);
    // Nothing of the guesses reached the transcript.
    assert!(!bot.transcript("attacker").await.contains("9999"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_wrong_proofs_record_exactly_the_limit_and_lock() {
    // The order system takes 30 ms to answer each proof, as a real one might.
    let bot = Arc::new(Bot::with(
        Duration::from_millis(30),
        EngineConfig::default(),
    ));
    for i in 0..20 {
        let user = format!("acct{i}");
        bot.say(&user, "where is my card key").await;
        let asked = bot.say(&user, ORDER).await;
        assert!(asked.contains("query password"), "{asked}");
    }
    let mut racing = tokio::task::JoinSet::new();
    for i in 0..20 {
        let bot = bot.clone();
        racing.spawn(async move { bot.say(&format!("acct{i}"), "wrong99").await });
    }
    let replies = racing.join_all().await;
    assert_eq!(bot.failures(ORDER).await, 5, "exactly the limit");
    assert_eq!(bot.orders.secret_checks(), 5, "the shop was asked 5 times");
    // The 15 refused lock at once; the 5 tried lock once their failures are in.
    assert!(
        replies.iter().filter(|r| locked(r)).count() >= 16,
        "{replies:?}"
    );
    // And the order stays locked for the next account.
    bot.say("acct20", "where is my card key").await;
    assert!(locked(&bot.say("acct20", ORDER).await));
}

#[tokio::test]
async fn a_buyer_with_a_linked_identity_is_never_locked_out_by_other_accounts() {
    let bot = Bot::new();
    // Naming the victim's customer key as an "order number" is refused before anything is
    // counted or sent.
    for i in 0..5 {
        let user = format!("throwaway{i}");
        let reply = bot.say(&user, "/ticket customer:telegram:victim").await;
        assert!(reply.contains("不像订单号"), "{reply}");
        let reply = bot.say(&user, "nope1234").await;
        assert!(!reply.contains("don't match"), "{reply}");
    }
    assert_eq!(bot.orders.secret_checks(), 0);
    assert!(bot.orders.numbers.lock().unwrap().is_empty());
    // Locking the victim's order itself: five accounts, five wrong proofs.
    for i in 0..5 {
        let user = format!("throwaway{i}");
        bot.say(&user, &format!("/ticket {ORDER}")).await;
        bot.say(&user, "nope1234").await;
    }
    assert_eq!(bot.failures(ORDER).await, 5);
    // The victim writes from the chat account linked to the order: the keys, not a lock-out.
    bot.say("victim", "where is my card key").await;
    let keys = bot.say("victim", ORDER).await;
    assert!(keys.contains(KEY), "{keys}");
    let victim = kefu_core::Counter::new(kefu_core::Space::CustomerProofs, "telegram:victim");
    use kefu_core::Attempts;
    assert_eq!(bot.attempts.count(&victim, 0).await.unwrap(), 0);
    // `/refund` refuses non-numbers the same way, and `..` never becomes a path.
    for token in ["..", "customer:telegram:victim", "../verify"] {
        let reply = bot.say("throwaway0", &format!("/refund {token}")).await;
        assert!(reply.contains("doesn't look like"), "{token}: {reply}");
    }
}

#[tokio::test]
async fn a_password_shaped_like_an_order_number_is_a_secret() {
    for password in ["pw20241123", "202411239999123", "DD20991231000001"] {
        let bot = Bot::new();
        let user = format!("u-{password}");
        bot.say(&user, "where is my card key").await;
        bot.say(&user, ORDER).await;
        let reply = bot.say(&user, password).await;
        assert!(reply.contains("don't match"), "{password}: {reply}");
        assert!(!reply.contains(password), "echoed: {reply}");
        let transcript = bot.transcript(&user).await;
        assert!(!transcript.contains(password), "{transcript}");
        let state = bot
            .engine
            .conversation(&ConversationKey::new("telegram", &user))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            state.entities.get("order_no").map(String::as_str),
            Some(ORDER)
        );
        assert!(state.flow.is_some_and(|f| f.slots["order_no"] == ORDER));
        // Starting over must be said; then the words are kept for the agents, a password not.
        let other = bot
            .say(&user, &format!("sorry, wrong order, it is {PAID}"))
            .await;
        assert!(other.contains(PAID), "{other}");
        bot.say(&user, "换个订单 2024112300021 密码 pass1234").await;
        let transcript = bot.transcript(&user).await;
        assert!(transcript.contains("sorry, wrong order"), "{transcript}");
        assert!(!transcript.contains("pass1234"), "{transcript}");
        // The order system only ever heard of the real order numbers.
        let numbers = bot.orders.numbers.lock().unwrap().clone();
        assert!(
            numbers
                .iter()
                .all(|n| [ORDER, PAID, UNPAID].contains(&n.as_str())),
            "{numbers:?}"
        );
        assert_eq!(bot.failures(ORDER).await, 1);
    }
}

#[tokio::test]
async fn order_numbers_written_differently_share_one_lockout() {
    let bot = Bot::new();
    // The shop may look numbers up case-insensitively; the limit counts them as one.
    for (i, written) in ["dd2024112300099", "Dd2024112300099", "DD-2024112300099"]
        .iter()
        .enumerate()
    {
        let user = format!("v{i}");
        bot.say(&user, "where is my card key").await;
        bot.say(&user, written).await;
        bot.say(&user, "wrong111").await;
        bot.say(&user, "wrong222").await;
    }
    bot.say("v9", "where is my card key").await;
    let reply = bot.say("v9", "DD2024112300099").await;
    assert!(locked(&reply), "{reply}");
}

/// Every flow stopped where it waits on the order system, then the engine restarted without
/// one: the next message is answered politely (no panic, no error), a person takes over, and
/// a password sent then is still hidden.
#[tokio::test]
async fn an_engine_restarted_mid_flow_without_an_order_system_answers_without_panicking() {
    let cases: [(&str, &str, &[&str], &str); 6] = [
        ("keys", "where is my card key", &[ORDER], "pass9999"),
        (
            "status",
            "my order still hasn't been delivered",
            &[PAID],
            "pass9999",
        ),
        ("tickets", "ticket status", &[ORDER], "pass9999"),
        ("refund", "refund me", &[PAID], "pass9999"),
        ("refund-confirm", "refund me", &[PAID, "pass1234"], "yes"),
        (
            "cancel-confirm",
            "我要取消订单",
            &[UNPAID, "pass1234"],
            "确认",
        ),
    ];
    for (name, question, steps, last) in cases {
        let store: Arc<dyn ConversationStore> = Arc::new(MemoryStore::new());
        let config = EngineConfig {
            refund_auto_approve_cents: 5_000,
            link_identity_on_proof: false,
            ..EngineConfig::default()
        };
        let before = Bot::over(
            store.clone(),
            Some(Watched::new(Duration::ZERO)),
            config.clone(),
        );
        before.say(name, question).await;
        for step in steps {
            before.say(name, step).await;
        }
        let state = before
            .engine
            .conversation(&ConversationKey::new("telegram", name))
            .await
            .unwrap()
            .unwrap();
        let flow = state.flow.expect(name);
        assert!(flow.awaiting_proof || flow.awaiting_confirmation, "{name}");

        let after = Bot::over(store, None, config);
        after.next.store(100, Ordering::SeqCst);
        let reply = after.say(name, last).await;
        assert!(
            reply.contains("self-service isn't available") || reply.contains("自助查单暂时不可用"),
            "{name}: {reply}"
        );
        let state = after
            .engine
            .conversation(&ConversationKey::new("telegram", name))
            .await
            .unwrap()
            .unwrap();
        assert!(state.flow.is_none(), "{name}");
        assert_eq!(state.holder, Holder::Queue, "{name}");
        assert!(!after.transcript(name).await.contains("pass9999"), "{name}");
    }
}

/// Stored states of every shape — flows this engine does not know, entries gone, slots
/// missing, flags set together — meet an engine with and without an order system and every
/// kind of message: each turn ends with replies, never a panic or an error.
#[tokio::test]
async fn no_stored_state_makes_a_turn_fail() {
    let names = [
        "card_key_lookup",
        "delivery_status",
        "ticket_progress",
        "refund_request",
        "cancel_order",
        "no_such_flow",
    ];
    let entries = ["order.card_key_lookup", "no.such.entry", ""];
    let slot_sets: [BTreeMap<String, String>; 4] = [
        BTreeMap::new(),
        BTreeMap::from([("order_no".to_string(), ORDER.to_string())]),
        BTreeMap::from([
            ("order_no".to_string(), "..".to_string()),
            ("change".to_string(), "explode".to_string()),
        ]),
        BTreeMap::from([
            ("order_no".to_string(), PAID.to_string()),
            ("change".to_string(), "refund".to_string()),
            ("request".to_string(), "x".to_string()),
        ]),
    ];
    let messages = [
        "pass1234",
        "yes",
        "确认",
        ORDER,
        "/ticket",
        "where is my card key",
        "",
    ];
    let mut n = 0;
    for with_orders in [true, false] {
        let store = Arc::new(MemoryStore::new());
        let orders = with_orders.then(|| Watched::new(Duration::ZERO));
        let bot = Bot::over(store.clone(), orders, EngineConfig::default());
        for name in names {
            for entry in entries {
                for slots in &slot_sets {
                    for (proof, confirm) in
                        [(true, false), (false, true), (true, true), (false, false)]
                    {
                        for message in messages {
                            n += 1;
                            let key = ConversationKey::new("telegram", format!("s{n}"));
                            let mut state =
                                Conversation::new(key.clone(), "u", kefu_core::Locale::En);
                            state.flow = Some(FlowState {
                                name: name.to_string(),
                                entry: entry.to_string(),
                                slots: slots.clone(),
                                reprompts: 7,
                                awaiting_proof: proof,
                                awaiting_confirmation: confirm,
                            });
                            state.offered = vec!["no.such.entry".to_string()];
                            state.verified = BTreeMap::from([(format!("u\u{1f}{PAID}"), u64::MAX)]);
                            store
                                .commit(TurnCommit::new(state, None, Vec::new()))
                                .await
                                .unwrap();
                            let replies = bot
                                .engine
                                .handle(Inbound::new(key, "u", format!("m{n}"), message))
                                .await;
                            assert!(
                                replies.is_ok(),
                                "{name}/{entry}/{slots:?}/{proof}/{confirm}/{message:?}: {replies:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// A store that reports a conflict the first time each message's turn commits (as when a
/// lock was lost and another process wrote the conversation), so every turn runs twice.
struct ConflictOnce {
    inner: MemoryStore,
    seen: Mutex<std::collections::HashSet<String>>,
}

#[async_trait]
impl ConversationStore for ConflictOnce {
    async fn lock(&self, key: &ConversationKey) -> Result<TurnLock, StoreError> {
        ConversationStore::lock(&self.inner, key).await
    }
    async fn start_turn(&self, key: &ConversationKey, id: &str) -> Result<TurnStart, StoreError> {
        self.inner.start_turn(key, id).await
    }
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        self.inner.load(key).await
    }
    async fn is_processed(&self, key: &ConversationKey, id: &str) -> Result<bool, StoreError> {
        self.inner.is_processed(key, id).await
    }
    async fn commit(&self, turn: TurnCommit) -> Result<Committed, StoreError> {
        if let Some(id) = &turn.message_id {
            if self.seen.lock().unwrap().insert(id.clone()) {
                return Ok(Committed::Conflict);
            }
        }
        self.inner.commit(turn).await
    }
    async fn transcript(&self, key: &ConversationKey) -> Result<Vec<TranscriptLine>, StoreError> {
        self.inner.transcript(key).await
    }
    fn outbox(&self) -> Arc<dyn kefu_core::Outbox> {
        self.inner.outbox()
    }
}

#[tokio::test]
async fn a_turn_run_again_repeats_no_side_effect() {
    let store = Arc::new(ConflictOnce {
        inner: MemoryStore::new(),
        seen: Mutex::new(Default::default()),
    });
    let config = EngineConfig {
        refund_auto_approve_cents: 5_000,
        max_key_views_per_day: 2,
        ..EngineConfig::default()
    };
    let bot = Bot::over(store, Some(Watched::new(Duration::ZERO)), config);
    // An automatic refund, every turn of it run twice: refunded once, one ticket, one audit
    // entry, and the customer told it is done (not that it "changed meanwhile").
    bot.say("r", "refund me").await;
    bot.say("r", PAID).await;
    let offer = bot.say("r", "pass1234").await;
    assert!(offer.contains("Go ahead?"), "{offer}");
    let done = bot.say("r", "yes").await;
    assert!(done.contains("refunded in full"), "{done}");
    assert_eq!(bot.orders.inner.changes_made(), 1);
    let tickets = bot.tickets.for_order(PAID).await.unwrap();
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    assert_eq!(
        tickets[0].history.len(),
        2,
        "opened, resolved: {:?}",
        tickets[0].history
    );
    let audit = bot.audit.for_subject(PAID).await.unwrap();
    let refunds = audit
        .iter()
        .filter(|e| e.action == "order.refunded")
        .count();
    let verified = audit
        .iter()
        .filter(|e| e.action == "order.verified")
        .count();
    assert_eq!((refunds, verified), (1, 1), "{audit:?}");
    // Card keys, limited to 2 views a day: two views run twice each are still two views.
    bot.say("victim", "where is my card key").await;
    let keys = bot.say("victim", ORDER).await;
    assert!(keys.contains(KEY), "{keys}");
    // (The order number is remembered now.)
    let keys = bot.say("victim", "where is my card key").await;
    assert!(keys.contains(KEY), "{keys}");
    let limited = bot.say("victim", "where is my card key").await;
    assert!(!limited.contains(KEY), "{limited}");
    let shown = bot
        .audit
        .for_subject(ORDER)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.action == "card_key.shown")
        .count();
    assert_eq!(shown, 2);
    // A failed proof run twice is one failure.
    bot.say("f", "where is my card key").await;
    bot.say("f", PAID).await;
    bot.say("f", "wrong123").await;
    assert_eq!(bot.failures(PAID).await, 1);
}

#[tokio::test]
async fn a_message_longer_than_the_limit_gets_a_polite_reply_and_is_not_kept_whole() {
    let bot = Bot::with(
        Duration::ZERO,
        EngineConfig {
            max_message_chars: 100,
            ..EngineConfig::default()
        },
    );
    let long = "卡密无效怎么办".repeat(50);
    let reply = bot.say("l", &long).await;
    assert!(reply.contains("太长") && reply.contains("100"), "{reply}");
    let transcript = bot.transcript("l").await;
    assert!(transcript.chars().count() < 400, "{transcript}");
    // In a proof step, nothing of it is kept.
    bot.say("p", "where is my card key").await;
    bot.say("p", ORDER).await;
    let guesses = (1000..1100)
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let reply = bot.say("p", &guesses).await;
    assert!(reply.contains("too long"), "{reply}");
    assert!(!bot.transcript("p").await.contains("1000"));
    assert_eq!(bot.orders.secret_checks(), 0);
}

/// A store whose turn lock never comes free (a stuck conversation).
struct Stuck(MemoryStore, kefu_core::KeyedLocks);

#[async_trait]
impl ConversationStore for Stuck {
    async fn lock(&self, key: &ConversationKey) -> Result<TurnLock, StoreError> {
        Ok(self.1.lock(key).await)
    }
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        self.0.load(key).await
    }
    async fn is_processed(&self, key: &ConversationKey, id: &str) -> Result<bool, StoreError> {
        self.0.is_processed(key, id).await
    }
    async fn commit(&self, turn: TurnCommit) -> Result<Committed, StoreError> {
        self.0.commit(turn).await
    }
    async fn transcript(&self, key: &ConversationKey) -> Result<Vec<TranscriptLine>, StoreError> {
        self.0.transcript(key).await
    }
    fn outbox(&self) -> Arc<dyn kefu_core::Outbox> {
        self.0.outbox()
    }
}

#[tokio::test(start_paused = true)]
async fn a_turn_waits_for_a_stuck_conversation_a_bounded_time() {
    let locks = kefu_core::KeyedLocks::new();
    let key = ConversationKey::new("telegram", "stuck");
    let _held = locks.lock(&key).await;
    let store = Arc::new(Stuck(MemoryStore::new(), locks));
    let bot = Bot::over(
        store,
        None,
        EngineConfig {
            turn_lock_wait_ms: 5_000,
            ..EngineConfig::default()
        },
    );
    let result = bot
        .engine
        .handle(Inbound::new(key.clone(), "stuck", "m1", "hello"))
        .await;
    assert!(matches!(result, Err(EngineError::Busy(k)) if k == key));
}
