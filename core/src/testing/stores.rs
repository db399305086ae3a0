//! The storage conformance suite: what every implementation of kefu-core's storage ports
//! must do — conversations (turns, duplicates, versions, the turn lock), tickets, the audit
//! log and limited attempts. kefu runs it on the in-memory stores, SQLite and PostgreSQL.
//!
//! Each function takes the stores of one "process" and of another on the same data (two
//! connection pools on a database; the same stores again for in-memory ones), and `n`, the
//! name put into failure messages.

use crate::attempts::Attempts;
use crate::audit::{AuditEvent, AuditLog};
use crate::conversation::{now_millis, Conversation, Holder, Speaker, TranscriptLine};
use crate::conversation::{HandoffReason, HandoffRequest};
use crate::handoff::HandoffQueue;
use crate::knowledge::Decision;
use crate::knowledge::Priority;
use crate::locale::Locale;
use crate::message::{ConversationKey, Inbound, OutboundKind};
use crate::store::{Committed, ConversationStore, TurnCommit, TurnStart};
use crate::tickets::{NewTicket, TicketStatus, TicketUpdate, Tickets};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The storage ports of one process.
#[derive(Clone)]
pub struct Stores {
    /// Conversations, transcripts, processed message ids, turn locks (and the outbox).
    pub conversations: Arc<dyn ConversationStore>,
    /// The hand-off queue.
    pub queue: Arc<dyn HandoffQueue>,
    /// Tickets.
    pub tickets: Arc<dyn Tickets>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
    /// Limited attempts.
    pub attempts: Arc<dyn Attempts>,
}

impl Stores {
    /// Fresh in-memory stores.
    pub fn memory() -> Stores {
        Stores {
            conversations: Arc::new(crate::MemoryStore::new()),
            queue: Arc::new(crate::MemoryQueue::new()),
            tickets: Arc::new(crate::MemoryTickets::new()),
            audit: Arc::new(crate::MemoryAudit::new()),
            attempts: Arc::new(crate::MemoryAttempts::new()),
        }
    }
}

/// Conversation `id` on the `telegram` channel.
pub fn key(id: &str) -> ConversationKey {
    ConversationKey::new("telegram", id)
}

fn key_of(id: &str) -> ConversationKey {
    key(id)
}

/// A transcript line as the engine writes them.
pub fn line(speaker: Speaker, text: &str) -> TranscriptLine {
    TranscriptLine {
        at: 1_795_400_000_000 + text.len() as u64,
        speaker,
        message_id: (speaker == Speaker::Customer).then(|| format!("id-{text}")),
        text: text.to_string(),
        decision: (speaker == Speaker::Customer).then_some(Decision::Suggest),
        confidence: (speaker == Speaker::Customer).then_some(0.375),
        entry: (speaker == Speaker::Customer).then(|| "order.card_key_lookup".to_string()),
        kind: (speaker == Speaker::Bot).then_some(OutboundKind::Question),
        quick_replies: if speaker == Speaker::Bot {
            vec![crate::QuickReply::new("是 Yes", "yes")]
        } else {
            Vec::new()
        },
    }
}

/// A turn of `conversation` for `message_id` with `texts` as customer and bot lines in turn.
pub fn turn(conversation: &Conversation, message_id: Option<&str>, texts: &[&str]) -> TurnCommit {
    let lines = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            line(
                if i % 2 == 0 {
                    Speaker::Customer
                } else {
                    Speaker::Bot
                },
                t,
            )
        })
        .collect();
    TurnCommit::new(conversation.clone(), message_id.map(str::to_string), lines)
}

/// The behaviour the name says.
pub async fn a_turn_round_trips_with_its_state_and_transcript(
    s: &Stores,
    _other: &Stores,
    n: &str,
) {
    let store = s.conversations.clone();
    let k = key("rt");
    assert_eq!(store.load(&k).await.unwrap(), None, "{}", n);
    let mut c = Conversation::new(k.clone(), "alice", Locale::En);
    c.holder = Holder::Agent("agent-7".into());
    c.entities = BTreeMap::from([("order_no".to_string(), "DD2024112300017".to_string())]);
    c.offered = vec!["a".into(), "b".into()];
    c.flow = Some(crate::conversation::FlowState {
        name: "card_key_lookup".into(),
        entry: "order.card_key_lookup".into(),
        slots: BTreeMap::from([("order_no".into(), "DD1".into())]),
        reprompts: 1,
        awaiting_proof: true,
        awaiting_confirmation: false,
    });
    c.verified = BTreeMap::from([("DD1".to_string(), 1_795_400_000_000)]);
    let first = turn(&c, Some("m1"), &["where is my key", "your order number?"]);
    assert_eq!(
        store.commit(first.clone()).await.unwrap(),
        Committed::Stored
    );

    let loaded = store.load(&k).await.unwrap().expect("stored");
    assert_eq!(loaded.version, 1, "{}", n);
    assert_eq!(
        Conversation {
            version: 0,
            ..loaded.clone()
        },
        c,
        "{}",
        n
    );
    assert_eq!(store.transcript(&k).await.unwrap(), first.lines, "{}", n);
    assert!(store.is_processed(&k, "m1").await.unwrap());
    assert!(!store.is_processed(&k, "m2").await.unwrap());
    assert!(!store.is_processed(&key("other"), "m1").await.unwrap());

    // The next turn starts from the loaded version and appends.
    let second = turn(&loaded, Some("m2"), &["DD2024112300017", "found it"]);
    assert_eq!(
        store.commit(second.clone()).await.unwrap(),
        Committed::Stored
    );
    assert_eq!(store.load(&k).await.unwrap().unwrap().version, 2);
    let all: Vec<_> = first.lines.iter().chain(&second.lines).cloned().collect();
    assert_eq!(store.transcript(&k).await.unwrap(), all, "{}", n);
}

/// The behaviour the name says.
pub async fn a_processed_message_id_commits_nothing_twice(s: &Stores, _other: &Stores, n: &str) {
    let store = s.conversations.clone();
    let k = key("dup");
    let c = Conversation::new(k.clone(), "bob", Locale::Zh);
    assert_eq!(
        store
            .commit(turn(&c, Some("m1"), &["你好", "您好"]))
            .await
            .unwrap(),
        Committed::Stored
    );
    let loaded = store.load(&k).await.unwrap().unwrap();
    let again = turn(&loaded, Some("m1"), &["你好", "您好"]);
    assert_eq!(
        store.commit(again).await.unwrap(),
        Committed::Duplicate,
        "{}",
        n
    );
    assert_eq!(store.transcript(&k).await.unwrap().len(), 2, "{}", n);
    assert_eq!(store.load(&k).await.unwrap().unwrap().version, 1, "{}", n);
}

/// The behaviour the name says.
pub async fn racing_deliveries_of_one_message_commit_once(s: &Stores, other: &Stores, n: &str) {
    // Two "processes" (pools), ten deliveries of the same message each, no lock taken:
    // the unique constraint alone must let exactly one through.
    let stores = [s.conversations.clone(), other.conversations.clone()];
    let k = key("race");
    let c = Conversation::new(k.clone(), "carol", Locale::Zh);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = stores[i % 2].clone();
        let commit = turn(&c, Some("same"), &["在吗", "在的"]);
        tasks.push(tokio::spawn(
            async move { store.commit(commit).await.unwrap() },
        ));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let stored = outcomes.iter().filter(|o| **o == Committed::Stored).count();
    assert_eq!(stored, 1, "{}: {outcomes:?}", n);
    assert!(
        outcomes.iter().all(|o| *o != Committed::Conflict),
        "{}: a duplicate is not a conflict: {outcomes:?}",
        n
    );
    assert_eq!(stores[0].transcript(&k).await.unwrap().len(), 2, "{}", n);
}

/// The behaviour the name says.
pub async fn a_stale_version_conflicts_and_stores_nothing(s: &Stores, _other: &Stores, n: &str) {
    let store = s.conversations.clone();
    let k = key("stale");
    let fresh = Conversation::new(k.clone(), "dan", Locale::En);
    assert_eq!(
        store
            .commit(turn(&fresh, Some("m1"), &["hi"]))
            .await
            .unwrap(),
        Committed::Stored
    );
    // A second writer that also started from "no conversation yet" has lost the race.
    assert_eq!(
        store
            .commit(turn(&fresh, Some("m2"), &["hello"]))
            .await
            .unwrap(),
        Committed::Conflict,
        "{}",
        n
    );
    let v1 = store.load(&k).await.unwrap().unwrap();
    assert_eq!(
        store.commit(turn(&v1, Some("m3"), &["one"])).await.unwrap(),
        Committed::Stored
    );
    assert_eq!(
        store.commit(turn(&v1, Some("m4"), &["two"])).await.unwrap(),
        Committed::Conflict,
        "{}",
        n
    );
    // Nothing of the conflicting turns was kept, not even their message ids.
    assert!(!store.is_processed(&k, "m2").await.unwrap(), "{}", n);
    assert!(!store.is_processed(&k, "m4").await.unwrap(), "{}", n);
    let texts: Vec<_> = store
        .transcript(&k)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(texts, ["hi", "one"], "{}", n);
    // Retried on the current state, the turn goes through.
    let v2 = store.load(&k).await.unwrap().unwrap();
    assert_eq!(
        store.commit(turn(&v2, Some("m4"), &["two"])).await.unwrap(),
        Committed::Stored
    );
}

/// The behaviour the name says.
pub async fn a_turn_starts_from_one_read_of_message_id_and_state(
    s: &Stores,
    _other: &Stores,
    n: &str,
) {
    let store = s.conversations.clone();
    let k = key("start");
    assert_eq!(
        store.start_turn(&k, "m1").await.unwrap(),
        TurnStart::Ready(None),
        "{}",
        n
    );
    let c = Conversation::new(k.clone(), "erin", Locale::Zh);
    store
        .commit(turn(&c, Some("m1"), &["卡密在哪"]))
        .await
        .unwrap();
    assert_eq!(
        store.start_turn(&k, "m1").await.unwrap(),
        TurnStart::Processed,
        "{}",
        n
    );
    let TurnStart::Ready(Some(stored)) = store.start_turn(&k, "m2").await.unwrap() else {
        panic!("{}: a stored conversation and a new message", n);
    };
    assert_eq!(stored, store.load(&k).await.unwrap().unwrap(), "{}", n);
    assert_eq!(stored.version, 1, "{}", n);
    // Another conversation's message ids are not this one's.
    assert_eq!(
        store.start_turn(&key("other"), "m1").await.unwrap(),
        TurnStart::Ready(None),
        "{}",
        n
    );
}

/// The behaviour the name says.
pub async fn a_commit_abandoned_half_way_stores_all_or_nothing(
    s: &Stores,
    _other: &Stores,
    n: &str,
) {
    // A caller that gives up on a commit (a dropped webhook request, a shutdown) drops
    // its future at any point. The turn may or may not have been stored (a server can
    // finish a transaction whose client is gone), but never in part, and the store stays
    // usable: delivering the message again stores it exactly once.
    let store = s.conversations.clone();
    let k = key("abandoned");
    let mut c = Conversation::new(k.clone(), "fay", Locale::En);
    for i in 0..40u64 {
        let id = format!("m{i}");
        let commit = turn(&c, Some(&id), &["where is my key", "here it is"]);
        // Give up after the commit has been polled a few times: at i = 0 before it
        // starts, later at points inside it (tokio timers are too coarse for this).
        tokio::select! {
            biased;
            _ = store.commit(commit) => {}
            _ = async {
                for _ in 0..i * i * 8 {
                    tokio::task::yield_now().await;
                }
            } => {}
        };
        let again = turn(&c, Some(&id), &["where is my key", "here it is"]);
        let outcome = store.commit(again).await.unwrap();
        assert!(
            matches!(outcome, Committed::Stored | Committed::Duplicate),
            "{}: turn {i}: {outcome:?}",
            n
        );
        // Exactly one of the two attempts is stored, whole.
        let want = i + 1;
        let mut reads = 0;
        c = loop {
            let state = store.load(&k).await.unwrap().unwrap();
            let lines = store.transcript(&k).await.unwrap().len() as u64;
            if state.version == want && lines == 2 * want {
                assert!(store.is_processed(&k, &id).await.unwrap(), "{}", n);
                break state;
            }
            reads += 1;
            assert!(
                reads < 500 && state.version <= want && lines <= 2 * want,
                "{}: turn {i}: version {}, {lines} lines",
                n,
                state.version
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
    }
}

/// The behaviour the name says.
pub async fn the_turn_lock_excludes_other_holders_until_released_or_dropped(
    s: &Stores,
    other: &Stores,
    n: &str,
) {
    // `other` must share the lock with `s`: another process on a database whose lock spans
    // processes (PostgreSQL), the same stores where the lock is in-process (SQLite, memory).
    let a = s.conversations.clone();
    let b = other.conversations.clone();
    let k = key("locked");
    let held = a.lock(&k).await.unwrap();
    let waiter = {
        let b = b.clone();
        let k = k.clone();
        tokio::spawn(async move { b.lock(&k).await.unwrap() })
    };
    // Another conversation is not held up.
    let other = b.lock(&key("free")).await.unwrap();
    other.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "{}: a second holder got the lock", n);
    held.release().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter gets the lock once it is released")
        .unwrap();
    // Dropped without release (a crashed turn): the lock must still come free.
    drop(second);
    let third = tokio::time::timeout(Duration::from_secs(30), a.lock(&k))
        .await
        .expect("a dropped lock comes free")
        .unwrap();
    third.release().await.unwrap();
}

/// The behaviour the name says.
pub async fn tickets_get_numbers_history_and_owners(s: &Stores, other: &Stores, n: &str) {
    let tickets = s.tickets.clone();
    let new = |order: &str, customer: &str| NewTicket {
        kind: "refund".into(),
        order: Some(order.into()),
        conversation: Some(key(customer)),
        customer: customer.into(),
        description: "充值未到账".into(),
        skill_group: "refunds".into(),
        sla_millis: 3_600_000,
        by: "bot".into(),
        idempotency_key: None,
    };
    let a = tickets.open(new("DD1", "u1")).await.unwrap();
    let b = tickets.open(new("DD1", "u2")).await.unwrap();
    assert_ne!(a.number, b.number);
    assert!(
        a.number.starts_with('T') && a.number.len() >= 15,
        "{}",
        a.number
    );
    assert_eq!(a.due_at, a.created_at + 3_600_000);
    assert_eq!(
        tickets.get(&a.number).await.unwrap().as_ref(),
        Some(&a),
        "{}",
        n
    );
    assert_eq!(tickets.get("T000").await.unwrap(), None);

    let updated = tickets
        .update(
            &a.number,
            TicketUpdate {
                status: Some(TicketStatus::InProgress),
                owner: Some("amy".into()),
                by: "amy".into(),
                note: "checking with the supplier".into(),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.status, updated.owner.as_deref()),
        (TicketStatus::InProgress, Some("amy"))
    );
    let resolved = tickets
        .update(
            &a.number,
            TicketUpdate {
                status: Some(TicketStatus::Resolved),
                owner: None,
                by: "amy".into(),
                note: "refunded".into(),
            },
        )
        .await
        .unwrap()
        .unwrap();
    let history: Vec<_> = resolved
        .history
        .iter()
        .map(|e| (e.status, e.note.as_str()))
        .collect();
    assert_eq!(
        history,
        [
            (TicketStatus::Open, "opened"),
            (TicketStatus::InProgress, "checking with the supplier"),
            (TicketStatus::Resolved, "refunded")
        ],
        "{}",
        n
    );
    assert_eq!(
        resolved.owner.as_deref(),
        Some("amy"),
        "an update without owner keeps it"
    );
    assert_eq!(
        tickets
            .update(
                "T404",
                TicketUpdate {
                    status: None,
                    owner: None,
                    by: "x".into(),
                    note: String::new()
                }
            )
            .await
            .unwrap(),
        None
    );

    let for_order: Vec<_> = tickets
        .for_order("DD1")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.number)
        .collect();
    assert_eq!(
        for_order,
        [b.number.clone(), a.number.clone()],
        "newest first"
    );
    let mine: Vec<_> = tickets
        .for_customer("telegram", "u2")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.number)
        .collect();
    assert_eq!(mine, std::slice::from_ref(&b.number));
    assert!(tickets
        .for_customer("discord", "u2")
        .await
        .unwrap()
        .is_empty());
    // Numbers stay unique when many are opened at once from two processes.
    let other = other.tickets.clone();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 {
            tickets.clone()
        } else {
            other.clone()
        };
        let request = new("DD2", "u3");
        tasks.push(tokio::spawn(async move {
            store.open(request).await.unwrap().number
        }));
    }
    let mut numbers = HashSet::new();
    for task in tasks {
        assert!(
            numbers.insert(task.await.unwrap()),
            "{}: a ticket number was given twice",
            n
        );
    }
}

/// The behaviour the name says.
pub async fn the_audit_log_keeps_events_by_subject_in_order(s: &Stores, _other: &Stores, n: &str) {
    let audit = s.audit.clone();
    for (actor, action) in [
        ("customer:telegram:1", "card_key.shown"),
        ("agent:amy", "card_key.revealed"),
    ] {
        audit
            .record(AuditEvent {
                at: now_millis(),
                actor: actor.into(),
                action: action.into(),
                subject: "DD1".into(),
                detail: "key ****9F2A".into(),
                dedupe_key: None,
            })
            .await
            .unwrap();
    }
    audit
        .record(AuditEvent {
            at: 1,
            actor: "system".into(),
            action: "order.imported".into(),
            subject: "DD2".into(),
            detail: String::new(),
            dedupe_key: None,
        })
        .await
        .unwrap();
    let events: Vec<_> = audit
        .for_subject("DD1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(events, ["card_key.shown", "card_key.revealed"], "{}", n);
}

/// The behaviour the name says.
pub async fn audit_events_and_tickets_with_a_key_are_recorded_once(
    s: &Stores,
    _other: &Stores,
    n: &str,
) {
    let db = s;
    let audit = db.audit.clone();
    let event = |key: Option<&str>| AuditEvent {
        at: now_millis(),
        actor: "customer:telegram:1".into(),
        action: "card_key.shown".into(),
        subject: "DD7001".into(),
        detail: "1 key(s): ****9F2A".into(),
        dedupe_key: key.map(str::to_string),
    };
    for e in [
        event(Some("k1")),
        event(Some("k1")),
        event(None),
        event(None),
    ] {
        audit.record(e).await.unwrap();
    }

    let events = audit.for_subject("DD7001").await.unwrap();
    assert_eq!(events.len(), 3, "{n}");
    assert_eq!(events[0].dedupe_key.as_deref(), Some("k1"), "{n}");

    let tickets = db.tickets.clone();
    let new = |key: Option<&str>| NewTicket {
        kind: "refund".into(),
        order: Some("DD7001".into()),
        conversation: Some(key_of("once")),
        customer: "u1".into(),
        description: "refund".into(),
        skill_group: "refunds".into(),
        sla_millis: 60_000,
        by: "bot".into(),
        idempotency_key: key.map(str::to_string),
    };
    let a = tickets.open(new(Some("turn-9"))).await.unwrap();
    let b = tickets.open(new(Some("turn-9"))).await.unwrap();
    assert_eq!(a, b, "{n}");
    assert_eq!(a.idempotency_key.as_deref(), Some("turn-9"), "{n}");
    let c = tickets.open(new(None)).await.unwrap();
    assert_ne!(a.number, c.number, "{n}");
    assert_eq!(tickets.for_order("DD7001").await.unwrap().len(), 2, "{n}");
}

/// The behaviour the name says.
pub async fn attempts_are_checked_and_taken_atomically_across_processes(
    s: &Stores,
    other: &Stores,
    n: &str,
) {
    use crate::{Counter, Limit, Space, Taken};
    // Two "processes" (two pools on one database) race twenty attempts at one order.
    let (one, two) = (s.attempts.clone(), other.attempts.clone());
    let order = Counter::new(Space::OrderProofs, "DD8001");
    let limit = Limit { max: 5, since: 0 };
    let mut racing = tokio::task::JoinSet::new();
    for i in 0..20 {
        let attempts = if i % 2 == 0 { one.clone() } else { two.clone() };
        let counters = vec![
            Counter::new(Space::CustomerProofs, format!("telegram:attacker{i}")),
            order.clone(),
        ];
        racing.spawn(async move {
            attempts
                .take(&format!("a{i}"), &counters, limit, 1_000)
                .await
                .unwrap()
        });
    }
    let taken = racing
        .join_all()
        .await
        .into_iter()
        .filter(|t| *t == Taken::Yes)
        .count();

    assert_eq!(taken, 5, "{n}: exactly the limit passes");
    assert_eq!(one.count(&order, 0).await.unwrap(), 5, "{n}");
    // A customer's count is their own: attacker 0 has one, a bystander none.
    let bystander = Counter::new(Space::CustomerProofs, "telegram:victim");
    assert_eq!(one.count(&bystander, 0).await.unwrap(), 0, "{n}");
    // The same attempt id again counts once (a turn run again) ...
    let ids: Vec<String> = (0..20).map(|i| format!("a{i}")).collect();
    let mut recorded = None;
    for id in &ids {
        let c = vec![Counter::new(Space::KeyViews, "DD8001")];
        if two
            .take(id, &c, Limit { max: 1, since: 0 }, 1_000)
            .await
            .unwrap()
            == Taken::Yes
        {
            recorded.get_or_insert(id.clone());
        }
    }
    let first = recorded.unwrap();
    let views = vec![Counter::new(Space::KeyViews, "DD8001")];
    assert_eq!(
        one.take(&first, &views, Limit { max: 1, since: 0 }, 1_000)
            .await
            .unwrap(),
        Taken::Yes,
        "{n}"
    );
    assert_eq!(
        one.take("other", &views, Limit { max: 1, since: 0 }, 1_000)
            .await
            .unwrap(),
        Taken::Refused(views[0].clone()),
        "{n}"
    );
    // ... and a withdrawn attempt frees its place; old ones fall out of the window.
    one.withdraw(&first).await.unwrap();
    assert_eq!(one.count(&views[0], 0).await.unwrap(), 0, "{n}");
    assert_eq!(one.count(&order, 1_001).await.unwrap(), 0, "{n}");
    assert_eq!(
        one.take(
            "late",
            std::slice::from_ref(&order),
            Limit {
                max: 5,
                since: 2_000
            },
            2_000
        )
        .await
        .unwrap(),
        Taken::Yes,
        "{n}"
    );
}

/// A hand-off request of conversation `id` to `group`.
pub fn request(id: &str, group: &str, priority: Priority, at: u64) -> HandoffRequest {
    HandoffRequest {
        conversation: key(id),
        user: format!("user-{id}"),
        skill_group: group.to_string(),
        priority,
        reason: HandoffReason::Requested,
        entry: Some("refund.request".into()),
        locale: Locale::Zh,
        entities: BTreeMap::from([("order_no".to_string(), "DD1".to_string())]),
        transcript: vec![line(Speaker::Customer, "转人工")],
        enqueued_at: at,
        vip: false,
        escalated_at: None,
        note: None,
    }
}

/// The behaviour the name says.
pub async fn the_queue_serves_the_most_urgent_longest_waiting_first(
    s: &Stores,
    _other: &Stores,
    n: &str,
) {
    let queue = s.queue.clone();
    assert_eq!(
        queue
            .enqueue(request("a", "orders", Priority::Normal, 100))
            .await
            .unwrap()
            .position,
        1
    );
    assert_eq!(
        queue
            .enqueue(request("b", "orders", Priority::Normal, 200))
            .await
            .unwrap()
            .position,
        2
    );
    assert_eq!(
        queue
            .enqueue(request("c", "orders", Priority::Urgent, 300))
            .await
            .unwrap()
            .position,
        1
    );
    assert_eq!(
        queue
            .enqueue(request("d", "payments", Priority::Low, 50))
            .await
            .unwrap()
            .position,
        1
    );
    assert_eq!(
        queue.position(&key("a")).await.unwrap().unwrap().position,
        2,
        "{}",
        n
    );
    // Queuing again keeps the place and takes the new details.
    let mut again = request("b", "orders", Priority::Normal, 999);
    again.reason = HandoffReason::NotUnderstood;
    assert_eq!(queue.enqueue(again).await.unwrap().position, 3, "{}", n);
    assert_eq!(queue.position(&key("zzz")).await.unwrap(), None);

    let first = queue.claim("orders", "amy").await.unwrap().unwrap();
    assert_eq!(
        first,
        request("c", "orders", Priority::Urgent, 300),
        "{}",
        n
    );
    assert_eq!(
        queue.claimed_by(&key("c")).await.unwrap().as_deref(),
        Some("amy")
    );
    assert_eq!(
        queue.position(&key("c")).await.unwrap(),
        None,
        "{}: claimed, not waiting",
        n
    );
    assert_eq!(
        queue
            .claim("orders", "ben")
            .await
            .unwrap()
            .unwrap()
            .conversation,
        key("a")
    );
    let b = queue.claim("orders", "amy").await.unwrap().unwrap();
    assert_eq!(
        (b.conversation.id.as_str(), b.reason, b.enqueued_at),
        ("b", HandoffReason::NotUnderstood, 200),
        "{}",
        n
    );
    assert_eq!(queue.claim("orders", "amy").await.unwrap(), None);
    assert_eq!(queue.waiting(None).await.unwrap().len(), 1);

    queue.close(&key("c")).await.unwrap();
    assert_eq!(queue.claimed_by(&key("c")).await.unwrap(), None, "{}", n);
    // After closing, the conversation can be queued afresh.
    assert_eq!(
        queue
            .enqueue(request("c", "orders", Priority::Normal, 400))
            .await
            .unwrap()
            .position,
        1
    );
}

/// The behaviour the name says.
pub async fn twenty_concurrent_claimers_share_500_requests_without_a_double_claim(
    s: &Stores,
    other: &Stores,
    n: &str,
) {
    let queues = [s.queue.clone(), other.queue.clone()];
    let queue = queues[0].clone();
    for i in 0..500u64 {
        let priority = Priority::ALL[(i % 4) as usize];
        queue
            .enqueue(request(&format!("q{i}"), "general", priority, 1_000 + i))
            .await
            .unwrap();
    }
    let mut claimers = Vec::new();
    for c in 0..20 {
        let queue = queues[c % 2].clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(r) = queue.claim("general", &format!("agent-{c}")).await.unwrap() {
                mine.push(r.conversation.id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 500, "{}: claimed {} in all", n, all.len());
    assert_eq!(unique.len(), 500, "{}: some request was claimed twice", n);
    assert!(queue.waiting(None).await.unwrap().is_empty(), "{}", n);
}

/// A message relayed to the person holding a conversation, delivered twice, is kept once.
/// The behaviour the name says: two agents on two processes take the same conversation at
/// once, over and over; each time exactly one gets it and the other hears who did.
pub async fn two_agents_taking_one_conversation_on_two_processes_one_wins(
    s: &Stores,
    other: &Stores,
    n: &str,
) {
    use crate::handoff::Take;
    for i in 0..20 {
        let id = format!("race{i}");
        s.queue
            .enqueue(request(&id, "general", Priority::Normal, 1_000 + i))
            .await
            .unwrap();
        let conversation = key(&id);
        let (a, b) = tokio::join!(
            s.queue.take(&conversation, "amy", 100),
            other.queue.take(&conversation, "bob", 100)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let won: Vec<&str> = [(&a, "amy"), (&b, "bob")]
            .iter()
            .filter(|(t, _)| matches!(t, Take::Taken(_)))
            .map(|(_, who)| *who)
            .collect();
        assert_eq!(won.len(), 1, "{n}: {a:?} / {b:?}");
        let loser = if won[0] == "amy" { &b } else { &a };
        assert_eq!(loser, &Take::HeldBy(won[0].to_string()), "{n}");
        assert_eq!(
            s.queue.claimed_by(&key(&id)).await.unwrap().as_deref(),
            Some(won[0]),
            "{n}"
        );
        // Taking it again is harmless for its holder.
        assert!(matches!(
            other.queue.take(&key(&id), won[0], 100).await.unwrap(),
            Take::Taken(_)
        ));
    }
    assert_eq!(
        s.queue.take(&key("nobody"), "amy", 100).await.unwrap(),
        Take::NotQueued,
        "{n}"
    );
}

/// The behaviour the name says.
pub async fn an_agent_at_capacity_gets_no_more_even_racing_on_two_processes(
    s: &Stores,
    other: &Stores,
    n: &str,
) {
    use crate::handoff::Take;
    for i in 0..6 {
        s.queue
            .enqueue(request(
                &format!("cap{i}"),
                "general",
                Priority::Normal,
                1_000 + i,
            ))
            .await
            .unwrap();
    }
    // Six takes at once for one agent with room for two: two succeed.
    let queues = [s.queue.clone(), other.queue.clone()];
    let takes: Vec<_> = (0..6)
        .map(|i| {
            let queue = queues[i % 2].clone();
            tokio::spawn(async move { queue.take(&key(&format!("cap{i}")), "amy", 2).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for take in takes {
        outcomes.push(take.await.unwrap().unwrap());
    }
    let taken = outcomes
        .iter()
        .filter(|t| matches!(t, Take::Taken(_)))
        .count();
    assert_eq!(taken, 2, "{n}: {outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|t| matches!(t, Take::Taken(_) | Take::AtCapacity)));
    let held = s.queue.held(Some("amy")).await.unwrap();
    assert_eq!(held.len(), 2, "{n}");
    assert_eq!(s.queue.waiting(None).await.unwrap().len(), 4, "{n}");
    // Closing one makes room for one more.
    s.queue.close(&held[0].request.conversation).await.unwrap();
    let waiting = s.queue.waiting(None).await.unwrap();
    let next = &waiting[0].conversation;
    assert!(matches!(
        other.queue.take(next, "amy", 2).await.unwrap(),
        Take::Taken(_)
    ));
    assert_eq!(
        other
            .queue
            .take(&waiting[1].conversation, "amy", 2)
            .await
            .unwrap(),
        Take::AtCapacity,
        "{n}"
    );
    // Another agent is not limited by amy's load.
    assert!(matches!(
        s.queue
            .take(&waiting[1].conversation, "bob", 2)
            .await
            .unwrap(),
        Take::Taken(_)
    ));
}

/// The behaviour the name says: the escalation is driven by the time the caller gives, so
/// 30 seconds pass without waiting for them.
pub async fn waiting_past_the_target_escalates_once_and_moves_up(
    s: &Stores,
    other: &Stores,
    n: &str,
) {
    let t0 = 1_000_000;
    s.queue
        .enqueue(request("old", "general", Priority::Normal, t0))
        .await
        .unwrap();
    s.queue
        .enqueue(request("high", "general", Priority::High, t0 + 1_000))
        .await
        .unwrap();
    s.queue
        .enqueue(request("new", "general", Priority::Normal, t0 + 20_000))
        .await
        .unwrap();
    s.queue
        .enqueue(request("elsewhere", "refunds", Priority::Normal, t0))
        .await
        .unwrap();
    assert_eq!(
        s.queue
            .position(&key("old"))
            .await
            .unwrap()
            .unwrap()
            .position,
        2
    );
    // 29 s in: nothing is due.
    let target = 30_000;
    let now = t0 + 29_000;
    assert!(s
        .queue
        .escalate("general", now - target, now)
        .await
        .unwrap()
        .is_empty());
    // 31 s in: the two oldest of the group are escalated, once.
    let now = t0 + 31_000;
    let escalated = other
        .queue
        .escalate("general", now - target, now)
        .await
        .unwrap();
    let mut ids: Vec<&str> = escalated
        .iter()
        .map(|r| r.conversation.id.as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["high", "old"], "{n}");
    assert!(escalated.iter().all(|r| r.escalated_at == Some(now)));
    let old = escalated
        .iter()
        .find(|r| r.conversation.id == "old")
        .unwrap();
    assert_eq!(old.priority, Priority::High, "{n}");
    let high = escalated
        .iter()
        .find(|r| r.conversation.id == "high")
        .unwrap();
    assert_eq!(high.priority, Priority::Urgent, "{n}");
    assert!(
        s.queue
            .escalate("general", now - target, now + 60_000)
            .await
            .unwrap()
            .is_empty(),
        "{n}: escalated once"
    );
    let waiting = s.queue.waiting(Some("general")).await.unwrap();
    assert_eq!(waiting[0].conversation.id, "high");
    assert_eq!(waiting[1].conversation.id, "old");
    assert_eq!(waiting[1].escalated_at, Some(now));
    assert_eq!(waiting[2].escalated_at, None);
    // Queued again (the customer asks again), it stays escalated.
    s.queue
        .enqueue(request("old", "general", Priority::Normal, t0 + 40_000))
        .await
        .unwrap();
    let again = s.queue.waiting(Some("general")).await.unwrap();
    let old = again.iter().find(|r| r.conversation.id == "old").unwrap();
    assert_eq!(old.escalated_at, Some(now), "{n}");
}

/// The behaviour the name says.
pub async fn pick_up_times_and_first_replies_are_recorded(s: &Stores, other: &Stores, n: &str) {
    let now = crate::conversation::now_millis();
    assert_eq!(
        s.queue.recent_wait("general", 0).await.unwrap(),
        None,
        "{n}"
    );
    for (i, waited) in [10_000u64, 20_000, 90_000].iter().enumerate() {
        let id = format!("w{i}");
        s.queue
            .enqueue(request(&id, "general", Priority::Normal, now - waited))
            .await
            .unwrap();
        let waiting = other.queue.open_request(&key(&id)).await.unwrap();
        assert_eq!(
            waiting.map(|r| r.conversation),
            Some(key(&id)),
            "{n}: waiting"
        );
        other.queue.take(&key(&id), "amy", 10).await.unwrap();
        let held = s.queue.open_request(&key(&id)).await.unwrap().unwrap();
        assert_eq!(held.enqueued_at, now - waited, "{n}: held");
    }
    assert_eq!(s.queue.open_request(&key("nobody")).await.unwrap(), None);
    let median = s.queue.recent_wait("general", 0).await.unwrap().unwrap();
    assert!((20_000..25_000).contains(&median), "{n}: {median}");
    assert_eq!(s.queue.recent_wait("refunds", 0).await.unwrap(), None);
    assert_eq!(
        s.queue.recent_wait("general", now).await.unwrap(),
        None,
        "only since"
    );

    let held = s.queue.held(Some("amy")).await.unwrap();
    assert_eq!(held.len(), 3, "{n}");
    assert!(held
        .iter()
        .all(|h| h.first_reply_at.is_none() && h.agent == "amy"));
    s.queue.replied(&key("w0"), now + 5).await.unwrap();
    other.queue.replied(&key("w0"), now + 9).await.unwrap();
    let held = other.queue.held(None).await.unwrap();
    let w0 = held
        .iter()
        .find(|h| h.request.conversation.id == "w0")
        .unwrap();
    assert_eq!(
        w0.first_reply_at,
        Some(now + 5),
        "{n}: the first reply is kept"
    );
    assert!(s.queue.held(Some("bob")).await.unwrap().is_empty());
}

/// The behaviour the name says.
pub async fn relaying_a_message_twice_keeps_one_copy(s: &Stores, other: &Stores, n: &str) {
    let queue = &s.queue;
    let m = Inbound::new(key("r"), "eve", "m9", "还在吗");
    queue.relay(&m).await.unwrap();
    queue.relay(&m).await.unwrap();
    queue
        .relay(&Inbound::new(key("r"), "eve", "m10", "？"))
        .await
        .unwrap();
    let texts: Vec<_> = other
        .queue
        .relayed(&key("r"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.text)
        .collect();
    assert_eq!(texts, ["还在吗", "？"], "{n}");
}

/// Overdue tickets are the unresolved ones past their due time.
pub async fn overdue_tickets_are_the_unresolved_ones_past_their_due_time(
    s: &Stores,
    _other: &Stores,
    n: &str,
) {
    let tickets = &s.tickets;
    let new = || NewTicket {
        kind: "delivery".into(),
        order: Some("DD9".into()),
        conversation: Some(key("late")),
        customer: "u9".into(),
        description: "卡密没到".into(),
        skill_group: "orders".into(),
        sla_millis: 1_000,
        by: "bot".into(),
        idempotency_key: None,
    };
    let (late, done) = (
        tickets.open(new()).await.unwrap(),
        tickets.open(new()).await.unwrap(),
    );
    tickets
        .update(
            &done.number,
            TicketUpdate {
                status: Some(TicketStatus::Resolved),
                owner: None,
                by: "amy".into(),
                note: "sent".into(),
            },
        )
        .await
        .unwrap();
    let overdue: Vec<_> = tickets
        .overdue(late.due_at + 1)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.number)
        .collect();
    assert_eq!(overdue, std::slice::from_ref(&late.number), "{n}");
    assert!(tickets.overdue(late.due_at - 1).await.unwrap().is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! on_memory {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let stores = Stores::memory();
                super::$name(&stores, &stores, "memory").await;
            }
        )*};
    }

    on_memory!(
        a_turn_round_trips_with_its_state_and_transcript,
        a_processed_message_id_commits_nothing_twice,
        racing_deliveries_of_one_message_commit_once,
        a_stale_version_conflicts_and_stores_nothing,
        a_turn_starts_from_one_read_of_message_id_and_state,
        a_commit_abandoned_half_way_stores_all_or_nothing,
        the_turn_lock_excludes_other_holders_until_released_or_dropped,
        tickets_get_numbers_history_and_owners,
        the_audit_log_keeps_events_by_subject_in_order,
        audit_events_and_tickets_with_a_key_are_recorded_once,
        attempts_are_checked_and_taken_atomically_across_processes,
        the_queue_serves_the_most_urgent_longest_waiting_first,
        twenty_concurrent_claimers_share_500_requests_without_a_double_claim,
        relaying_a_message_twice_keeps_one_copy,
        two_agents_taking_one_conversation_on_two_processes_one_wins,
        an_agent_at_capacity_gets_no_more_even_racing_on_two_processes,
        waiting_past_the_target_escalates_once_and_moves_up,
        pick_up_times_and_first_replies_are_recorded,
        overdue_tickets_are_the_unresolved_ones_past_their_due_time,
    );
}
