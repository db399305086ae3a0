//! The store conformance suite: the same tests against SQLite and PostgreSQL.

mod common;

use common::{on_both, TestDb};
use kefu_core::conversation::now_millis;
use kefu_core::{
    AuditEvent, AuditLog, Committed, Conversation, ConversationKey, ConversationStore, Decision,
    HandoffQueue, HandoffReason, HandoffRequest, Holder, Inbound, Locale, NewTicket, OutboundKind,
    Priority, Speaker, TicketStatus, TicketUpdate, Tickets, TranscriptLine, TurnCommit, TurnStart,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

fn key(id: &str) -> ConversationKey {
    ConversationKey::new("telegram", id)
}

fn line(speaker: Speaker, text: &str) -> TranscriptLine {
    TranscriptLine {
        at: 1_795_400_000_000 + text.len() as u64,
        speaker,
        message_id: (speaker == Speaker::Customer).then(|| format!("id-{text}")),
        text: text.to_string(),
        decision: (speaker == Speaker::Customer).then_some(Decision::Suggest),
        confidence: (speaker == Speaker::Customer).then_some(0.375),
        entry: (speaker == Speaker::Customer).then(|| "order.card_key_lookup".to_string()),
        kind: (speaker == Speaker::Bot).then_some(OutboundKind::Question),
    }
}

fn turn(conversation: &Conversation, message_id: Option<&str>, texts: &[&str]) -> TurnCommit {
    TurnCommit {
        conversation: conversation.clone(),
        message_id: message_id.map(str::to_string),
        lines: texts
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
            .collect(),
        outbox: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_round_trips_with_its_state_and_transcript() {
    on_both(async |t: &TestDb| {
        let store = t.open().await.conversations();
        let k = key("rt");
        assert_eq!(store.load(&k).await.unwrap(), None, "{}", t.name);
        let mut c = Conversation::new(k.clone(), "alice", Locale::En);
        c.holder = Holder::Agent("agent-7".into());
        c.entities = BTreeMap::from([("order_no".to_string(), "DD2024112300017".to_string())]);
        c.offered = vec!["a".into(), "b".into()];
        c.flow = Some(kefu_core::conversation::FlowState {
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
        assert_eq!(loaded.version, 1, "{}", t.name);
        assert_eq!(
            Conversation {
                version: 0,
                ..loaded.clone()
            },
            c,
            "{}",
            t.name
        );
        assert_eq!(
            store.transcript(&k).await.unwrap(),
            first.lines,
            "{}",
            t.name
        );
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
        assert_eq!(store.transcript(&k).await.unwrap(), all, "{}", t.name);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processed_message_id_commits_nothing_twice() {
    on_both(async |t: &TestDb| {
        let store = t.open().await.conversations();
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
            t.name
        );
        assert_eq!(store.transcript(&k).await.unwrap().len(), 2, "{}", t.name);
        assert_eq!(
            store.load(&k).await.unwrap().unwrap().version,
            1,
            "{}",
            t.name
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_deliveries_of_one_message_commit_once() {
    on_both(async |t: &TestDb| {
        // Two "processes" (pools), ten deliveries of the same message each, no lock taken:
        // the unique constraint alone must let exactly one through.
        let stores = [
            t.open().await.conversations(),
            t.open().await.conversations(),
        ];
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
        assert_eq!(stored, 1, "{}: {outcomes:?}", t.name);
        assert!(
            outcomes.iter().all(|o| *o != Committed::Conflict),
            "{}: a duplicate is not a conflict: {outcomes:?}",
            t.name
        );
        assert_eq!(
            stores[0].transcript(&k).await.unwrap().len(),
            2,
            "{}",
            t.name
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_version_conflicts_and_stores_nothing() {
    on_both(async |t: &TestDb| {
        let store = t.open().await.conversations();
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
            t.name
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
            t.name
        );
        // Nothing of the conflicting turns was kept, not even their message ids.
        assert!(!store.is_processed(&k, "m2").await.unwrap(), "{}", t.name);
        assert!(!store.is_processed(&k, "m4").await.unwrap(), "{}", t.name);
        let texts: Vec<_> = store
            .transcript(&k)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(texts, ["hi", "one"], "{}", t.name);
        // Retried on the current state, the turn goes through.
        let v2 = store.load(&k).await.unwrap().unwrap();
        assert_eq!(
            store.commit(turn(&v2, Some("m4"), &["two"])).await.unwrap(),
            Committed::Stored
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_starts_from_one_read_of_message_id_and_state() {
    on_both(async |t: &TestDb| {
        let store = t.open().await.conversations();
        let k = key("start");
        assert_eq!(
            store.start_turn(&k, "m1").await.unwrap(),
            TurnStart::Ready(None),
            "{}",
            t.name
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
            t.name
        );
        let TurnStart::Ready(Some(stored)) = store.start_turn(&k, "m2").await.unwrap() else {
            panic!("{}: a stored conversation and a new message", t.name);
        };
        assert_eq!(stored, store.load(&k).await.unwrap().unwrap(), "{}", t.name);
        assert_eq!(stored.version, 1, "{}", t.name);
        // Another conversation's message ids are not this one's.
        assert_eq!(
            store.start_turn(&key("other"), "m1").await.unwrap(),
            TurnStart::Ready(None),
            "{}",
            t.name
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_abandoned_half_way_stores_all_or_nothing() {
    on_both(async |t: &TestDb| {
        // A caller that gives up on a commit (a dropped webhook request, a shutdown) drops
        // its future at any point. The turn may or may not have been stored (a server can
        // finish a transaction whose client is gone), but never in part, and the store stays
        // usable: delivering the message again stores it exactly once.
        let store = t.open().await.conversations();
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
                t.name
            );
            // Exactly one of the two attempts is stored, whole.
            let want = i + 1;
            let mut reads = 0;
            c = loop {
                let state = store.load(&k).await.unwrap().unwrap();
                let lines = store.transcript(&k).await.unwrap().len() as u64;
                if state.version == want && lines == 2 * want {
                    assert!(store.is_processed(&k, &id).await.unwrap(), "{}", t.name);
                    break state;
                }
                reads += 1;
                assert!(
                    reads < 500 && state.version <= want && lines <= 2 * want,
                    "{}: turn {i}: version {}, {lines} lines",
                    t.name,
                    state.version
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_turn_lock_excludes_other_holders_until_released_or_dropped() {
    on_both(async |t: &TestDb| {
        // On PostgreSQL the two databases act as two processes; on SQLite the lock is per
        // store, so both lockers share one store.
        let a = t.open().await.conversations();
        let b = match t.name {
            "postgres" => t.open().await.conversations(),
            _ => a.clone(),
        };
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
        assert!(
            !waiter.is_finished(),
            "{}: a second holder got the lock",
            t.name
        );
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
    })
    .await;
}

fn request(id: &str, group: &str, priority: Priority, at: u64) -> HandoffRequest {
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
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_serves_the_most_urgent_longest_waiting_first() {
    on_both(async |t: &TestDb| {
        let queue = t.open().await.queue();
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
            t.name
        );
        // Queuing again keeps the place and takes the new details.
        let mut again = request("b", "orders", Priority::Normal, 999);
        again.reason = HandoffReason::NotUnderstood;
        assert_eq!(
            queue.enqueue(again).await.unwrap().position,
            3,
            "{}",
            t.name
        );
        assert_eq!(queue.position(&key("zzz")).await.unwrap(), None);

        let first = queue.claim("orders", "amy").await.unwrap().unwrap();
        assert_eq!(
            first,
            request("c", "orders", Priority::Urgent, 300),
            "{}",
            t.name
        );
        assert_eq!(
            queue.claimed_by(&key("c")).await.unwrap().as_deref(),
            Some("amy")
        );
        assert_eq!(
            queue.position(&key("c")).await.unwrap(),
            None,
            "{}: claimed, not waiting",
            t.name
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
            t.name
        );
        assert_eq!(queue.claim("orders", "amy").await.unwrap(), None);
        assert_eq!(queue.waiting(None).await.unwrap().len(), 1);

        queue.close(&key("c")).await.unwrap();
        assert_eq!(
            queue.claimed_by(&key("c")).await.unwrap(),
            None,
            "{}",
            t.name
        );
        // After closing, the conversation can be queued afresh.
        assert_eq!(
            queue
                .enqueue(request("c", "orders", Priority::Normal, 400))
                .await
                .unwrap()
                .position,
            1
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaying_a_message_twice_keeps_one_copy() {
    on_both(async |t: &TestDb| {
        let queue = t.open().await.queue();
        let m = Inbound::new(key("r"), "eve", "m9", "还在吗");
        queue.relay(&m).await.unwrap();
        queue.relay(&m).await.unwrap();
        queue
            .relay(&Inbound::new(key("r"), "eve", "m10", "？"))
            .await
            .unwrap();
        let texts: Vec<_> = queue
            .relayed(&key("r"))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.text)
            .collect();
        assert_eq!(texts, ["还在吗", "？"], "{}", t.name);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_claimers_share_500_requests_without_a_double_claim() {
    on_both(async |t: &TestDb| {
        let dbs = [t.open().await, t.open().await];
        let queue = dbs[0].queue();
        for i in 0..500u64 {
            let priority = Priority::ALL[(i % 4) as usize];
            queue
                .enqueue(request(&format!("q{i}"), "general", priority, 1_000 + i))
                .await
                .unwrap();
        }
        let mut claimers = Vec::new();
        for c in 0..20 {
            let queue = dbs[c % 2].queue();
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
        assert_eq!(all.len(), 500, "{}: claimed {} in all", t.name, all.len());
        assert_eq!(
            unique.len(),
            500,
            "{}: some request was claimed twice",
            t.name
        );
        assert!(queue.waiting(None).await.unwrap().is_empty(), "{}", t.name);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_get_numbers_history_and_owners() {
    on_both(async |t: &TestDb| {
        let tickets = t.open().await.tickets();
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
            t.name
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
            t.name
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
        assert_eq!(
            tickets.overdue(b.due_at + 1).await.unwrap().len(),
            1,
            "{}: only the unresolved one",
            t.name
        );

        // Numbers stay unique when many are opened at once from two processes.
        let other = t.open().await.tickets();
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
                t.name
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_keeps_events_by_subject_in_order() {
    on_both(async |t: &TestDb| {
        let audit = t.open().await.audit();
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
        assert_eq!(
            events,
            ["card_key.shown", "card_key.revealed"],
            "{}",
            t.name
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_newer_than_the_binary_refuses_to_open() {
    on_both(async |t: &TestDb| {
        let db = t.open().await;
        assert_eq!(db.schema_version().await.unwrap(), kefu_sql::SCHEMA_VERSION);
        let future = kefu_sql::SCHEMA_VERSION + 1;
        let sql = format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ({future}, 'from a newer kefu', true, {}, 0)",
            if t.name == "postgres" { "'\\x00'::bytea" } else { "X'00'" }
        );
        match t.name {
            "postgres" => {
                let url = format!("{}?options=-c%20search_path%3D{}", t.url, t.options.schema.as_deref().unwrap());
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query(&sql).execute(&mut conn).await.unwrap();
            }
            _ => {
                use sqlx::Connection;
                let mut conn = sqlx::SqliteConnection::connect(&t.url).await.unwrap();
                sqlx::query(&sql).execute(&mut conn).await.unwrap();
            }
        }
        db.close().await;
        let err = kefu_sql::Database::connect(&t.url, &t.options).await.err().expect("refused");
        let text = err.to_string();
        assert!(text.contains(&format!("schema version {future}")) && text.contains("upgrade kefu"), "{}: {text}", t.name);
    })
    .await;
}

#[tokio::test]
async fn the_sqlite_file_and_its_directory_are_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/data/kefu.db");
    let url = format!("sqlite://{}", path.display());
    let db = kefu_sql::Database::connect(&url, &kefu_sql::DbOptions::default())
        .await
        .unwrap();
    assert!(path.exists());
    let kefu_sql::Backend::Sqlite = db.backend() else {
        panic!("sqlite expected")
    };
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    // Opening again migrates nothing and keeps the data.
    db.conversations()
        .commit(turn(
            &Conversation::new(key("x"), "u", Locale::Zh),
            Some("m1"),
            &["hi"],
        ))
        .await
        .unwrap();
    db.close().await;
    let again = kefu_sql::Database::connect(&url, &kefu_sql::DbOptions::default())
        .await
        .unwrap();
    assert!(again
        .conversations()
        .load(&key("x"))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_version_1_sqlite_database_is_upgraded_with_its_data() {
    // A database as the first release left it: only migration 1, one conversation with two
    // lines and a processed message id.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/kefu.db", dir.path().display());
    {
        use sqlx::{ConnectOptions, Connection};
        let mut v1 = sqlx::migrate!("./migrations/sqlite");
        v1.migrations = v1.migrations.iter().take(1).cloned().collect();
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let mut conn = options.create_if_missing(true).connect().await.unwrap();
        v1.run(&mut conn).await.unwrap();
        let state =
            serde_json::to_string(&Conversation::new(key("old"), "gus", Locale::Zh)).unwrap();
        sqlx::raw_sql(&format!(
            "INSERT INTO conversations VALUES ('telegram', 'old', 'gus', 'zh', 'bot', NULL, \
             NULL, '{state}', 1, 1, 1); \
             INSERT INTO processed_messages VALUES ('telegram', 'old', 'm1', 1); \
             INSERT INTO transcript_lines (channel, conversation_id, at, speaker, message_id, \
             text) VALUES ('telegram', 'old', 1, 'customer', 'm1', '在吗'), \
             ('telegram', 'old', 2, 'bot', NULL, '在的');"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let db = kefu_sql::Database::connect(&url, &kefu_sql::DbOptions::default())
        .await
        .unwrap();
    assert_eq!(db.schema_version().await.unwrap(), kefu_sql::SCHEMA_VERSION);
    let store = db.conversations();
    let k = key("old");
    assert_eq!(
        store.start_turn(&k, "m1").await.unwrap(),
        TurnStart::Processed
    );
    let TurnStart::Ready(Some(c)) = store.start_turn(&k, "m2").await.unwrap() else {
        panic!("the conversation survives the upgrade");
    };
    assert_eq!(c.version, 1);
    assert_eq!(
        store
            .commit(turn(&c, Some("m1"), &["again"]))
            .await
            .unwrap(),
        Committed::Duplicate
    );
    let mut stale = c.clone();
    stale.version = 0;
    assert_eq!(
        store
            .commit(turn(&stale, Some("m2"), &["x"]))
            .await
            .unwrap(),
        Committed::Conflict
    );
    assert_eq!(
        store
            .commit(turn(&c, Some("m2"), &["卡密在哪", "在订单页"]))
            .await
            .unwrap(),
        Committed::Stored
    );
    let texts: Vec<_> = store
        .transcript(&k)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(texts, ["在吗", "在的", "卡密在哪", "在订单页"]);
}

#[tokio::test]
async fn unusable_urls_and_servers_get_clear_errors() {
    let bad = kefu_sql::Database::connect("mysql://localhost/x", &Default::default())
        .await
        .err()
        .unwrap();
    assert!(bad.to_string().contains("sqlite://data/kefu.db"), "{bad}");
    let options = kefu_sql::DbOptions {
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    // Nothing listens on port 1.
    let down = kefu_sql::Database::connect("postgres://postgres@127.0.0.1:1/test", &options)
        .await
        .err()
        .unwrap();
    assert!(
        down.to_string().contains("127.0.0.1:1") && down.to_string().contains("server runs"),
        "{down}"
    );
    let _ = Arc::new(());
}

fn order(number: &str, keys: &[&str]) -> kefu_orders_file::OrderRecord {
    kefu_orders_file::OrderRecord {
        line: 2,
        number: number.into(),
        product: "Steam 充值卡 100元".into(),
        status: kefu_core::OrderStatus::Delivered,
        amount_cents: 10_000,
        currency: "CNY".into(),
        quantity: keys.len().max(1) as i64,
        buyer_email: Some("buyer@example.com".into()),
        buyer_phone: Some("13800138000".into()),
        query_password: Some("8866".into()),
        buyer_channel: Some("telegram".into()),
        buyer_user: Some("42".into()),
        created_at: Some(1_795_400_000_000),
        paid_at: Some(1_795_400_060_000),
        delivered_at: Some(1_795_400_120_000),
        delivery_due_at: None,
        card_keys: keys.iter().map(|k| k.to_string()).collect(),
        redeem: Some("https://store.steampowered.com/account/redeemwalletcode".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_orders_keep_their_keys_and_replace_on_reimport() {
    on_both(async |t: &TestDb| {
        use kefu_core::Orders;
        let orders = t.open().await.orders();
        let first = [
            order("DD1001", &["AAAA-1111", "BBBB-2222"]),
            order("DD1002", &[]),
        ];
        let summary = orders.import(&first).await.unwrap();
        assert_eq!(
            (summary.inserted, summary.replaced, summary.card_keys),
            (2, 0, 2),
            "{}",
            t.name
        );
        assert_eq!(
            orders.card_keys("DD1001").await.unwrap(),
            ["AAAA-1111", "BBBB-2222"],
            "{}",
            t.name
        );
        let stored = orders.get("DD1001").await.unwrap().unwrap();
        assert_eq!(stored.buyer_user.as_deref(), Some("42"));
        assert_eq!(stored.delivered_at, Some(1_795_400_120_000));
        // The password is kept only as a slow, salted hash.
        let hash = stored.query_password_hash.clone().unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("8866"));
        assert!(kefu_sql::check_query_password("DD1001", "8866", Some(&hash)).matches);
        assert!(!kefu_sql::check_query_password("DD1002", "8866", Some(&hash)).matches);
        let found = orders.find("DD1001").await.unwrap().unwrap();
        assert_eq!(
            (found.number.as_str(), found.status),
            ("DD1001", kefu_core::OrderStatus::Delivered)
        );
        assert_eq!(orders.find("DD404").await.unwrap(), None);
        assert_eq!(orders.for_buyer("telegram", "42").await.unwrap().len(), 2);

        let mut again = order("DD1001", &["CCCC-3333"]);
        again.status = kefu_core::OrderStatus::Refunded;
        let summary = orders.import(&[again]).await.unwrap();
        assert_eq!((summary.inserted, summary.replaced), (0, 1), "{}", t.name);
        assert_eq!(
            orders.card_keys("DD1001").await.unwrap(),
            ["CCCC-3333"],
            "{}: old keys replaced",
            t.name
        );
        assert_eq!(orders.count().await.unwrap(), 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_buyer_proves_an_order_and_unknown_orders_prove_nothing() {
    on_both(async |t: &TestDb| {
        use kefu_core::{Orders, Proof};
        let db = t.open().await;
        let orders = db.orders();
        let mut unlinked = order("DD20241123002", &["KEY-2"]);
        unlinked.buyer_channel = None;
        unlinked.buyer_user = None;
        unlinked.query_password = None;
        orders
            .import(&[order("DD20241123001", &["KEY-1"]), unlinked])
            .await
            .unwrap();
        let secret = |s: &str| Proof::Secret(s.to_string());
        let identity = |c: &str, u: &str| Proof::Identity {
            channel: c.to_string(),
            user: u.to_string(),
        };
        let n = "DD20241123001";
        for (proof, expected) in [
            (identity("telegram", "42"), true),
            (identity("telegram", "43"), false),
            (identity("discord", "42"), false),
            (secret("8866"), true),
            (secret(" 8866 "), true),
            (secret("8867"), false),
            (secret("Buyer@Example.com"), true),
            (secret("+86 138 0013 8000"), true),
            (secret("13800138001"), false),
            (secret(""), false),
        ] {
            assert_eq!(
                orders.verify(n, &proof).await.unwrap(),
                expected,
                "{}: {proof:?}",
                t.name
            );
        }
        // No password and no linked user: neither an empty password nor an empty user proves it.
        let m = "DD20241123002";
        assert!(!orders.verify(m, &secret("")).await.unwrap());
        assert!(!orders.verify(m, &identity("telegram", "")).await.unwrap());
        assert!(orders
            .verify(m, &secret("buyer@example.com"))
            .await
            .unwrap());
        // An unknown order proves nothing, whatever the proof.
        for proof in [
            secret("8866"),
            secret("buyer@example.com"),
            identity("telegram", "42"),
        ] {
            assert!(
                !orders.verify("DD29999999999", &proof).await.unwrap(),
                "{}",
                t.name
            );
        }
        let found = Orders::find(&orders, n).await.unwrap().unwrap();
        assert_eq!(found.amount_cents, 10_000);
        assert!(found.redeem.unwrap().contains("redeem"));
        assert_eq!(Orders::card_keys(&orders, n).await.unwrap(), ["KEY-1"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_cancelled_and_refunded_only_from_the_states_that_allow_it() {
    on_both(async |t: &TestDb| {
        use kefu_core::{OrderChange, OrderStatus, Orders};
        let orders = t.open().await.orders();
        let with = |number: &str, status| {
            let mut record = order(number, &[]);
            record.status = status;
            record
        };
        orders
            .import(&[
                with("DD3001", OrderStatus::AwaitingPayment),
                with("DD3002", OrderStatus::Paid),
                with("DD3003", OrderStatus::Failed),
                with("DD3004", OrderStatus::Delivered),
            ])
            .await
            .unwrap();
        let status = |change: OrderChange| match change {
            OrderChange::Done(order) => Ok(order.status),
            OrderChange::NotAllowed(status) => Err(status),
        };
        let n = &t.name;
        assert_eq!(
            status(orders.cancel("DD3001", "key-1").await.unwrap()),
            Ok(OrderStatus::Cancelled),
            "{n}"
        );
        assert_eq!(
            status(orders.cancel("DD3001", "key-2").await.unwrap()),
            Err(OrderStatus::Cancelled),
            "{n}"
        );
        assert_eq!(
            status(orders.cancel("DD3002", "key-3").await.unwrap()),
            Err(OrderStatus::Paid),
            "{n}"
        );
        assert_eq!(
            status(orders.refund("DD3002", "r", "key-5").await.unwrap()),
            Ok(OrderStatus::Refunded),
            "{n}"
        );
        assert_eq!(
            status(orders.refund("DD3002", "r", "key-6").await.unwrap()),
            Err(OrderStatus::Refunded),
            "{n}"
        );
        assert_eq!(
            status(orders.refund("DD3003", "r", "key-7").await.unwrap()),
            Ok(OrderStatus::Refunded),
            "{n}"
        );
        assert_eq!(
            status(orders.refund("DD3004", "r", "key-8").await.unwrap()),
            Err(OrderStatus::Delivered),
            "{n}"
        );
        assert_eq!(
            orders.find("DD3004").await.unwrap().unwrap().status,
            OrderStatus::Delivered
        );
        assert!(
            orders.cancel("DD404", "key-4").await.is_err(),
            "{n}: an unknown order is an error"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_identity_is_linked_to_an_order_that_has_none() {
    on_both(async |t: &TestDb| {
        use kefu_core::{Orders, Proof};
        let orders = t.open().await.orders();
        let mut unlinked = order("DD4001", &[]);
        unlinked.buyer_channel = None;
        unlinked.buyer_user = None;
        orders
            .import(&[unlinked, order("DD4002", &[])])
            .await
            .unwrap();
        let n = &t.name;
        let me = Proof::Identity {
            channel: "discord".into(),
            user: "777".into(),
        };
        assert!(!orders.verify("DD4001", &me).await.unwrap(), "{n}");
        assert!(
            orders.link("DD4001", "discord", "777").await.unwrap(),
            "{n}"
        );
        assert!(orders.verify("DD4001", &me).await.unwrap(), "{n}");
        // Linked once: nobody else takes it over, and linking again is harmless.
        assert!(
            !orders.link("DD4001", "telegram", "1").await.unwrap(),
            "{n}"
        );
        assert!(
            orders.link("DD4001", "discord", "777").await.unwrap(),
            "{n}"
        );
        // An order the shop linked keeps its buyer; an unknown order links nothing.
        assert!(
            !orders.link("DD4002", "discord", "777").await.unwrap(),
            "{n}"
        );
        assert!(!orders.verify("DD4002", &me).await.unwrap(), "{n}");
        assert!(
            !orders.link("DD404", "discord", "777").await.unwrap(),
            "{n}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_cancel_or_refund_key_answers_as_the_first_call_and_changes_nothing() {
    on_both(async |t: &TestDb| {
        use kefu_core::{OrderChange, OrderStatus, Orders};
        let orders = t.open().await.orders();
        let mut paid = order("DD5001", &[]);
        paid.status = OrderStatus::Paid;
        orders.import(&[paid]).await.unwrap();
        let n = &t.name;
        let first = orders.refund("DD5001", "late", "turn-1").await.unwrap();
        assert!(
            matches!(&first, OrderChange::Done(o) if o.status == OrderStatus::Refunded),
            "{n}"
        );
        // The same key (a turn run again): the same answer, not "not allowed".
        let again = orders.refund("DD5001", "late", "turn-1").await.unwrap();
        assert_eq!(again, first, "{n}");
        // A new key is a new request, refused by the order's state.
        assert_eq!(
            orders.refund("DD5001", "late", "turn-2").await.unwrap(),
            OrderChange::NotAllowed(OrderStatus::Refunded),
            "{n}"
        );
        // And a refused change answers "refused" again under its key.
        assert_eq!(
            orders.cancel("DD5001", "turn-3").await.unwrap(),
            OrderChange::NotAllowed(OrderStatus::Refunded),
            "{n}"
        );
        assert_eq!(
            orders.cancel("DD5001", "turn-3").await.unwrap(),
            OrderChange::NotAllowed(OrderStatus::Refunded),
            "{n}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_sha256_password_hashes_still_prove_and_are_upgraded_to_argon2() {
    on_both(async |t: &TestDb| {
        use kefu_core::{Orders, Proof};
        let db = t.open().await;
        let orders = db.orders();
        orders.import(&[order("DD6001", &[])]).await.unwrap();
        // An order as an earlier kefu stored it: one round of SHA-256.
        let legacy = kefu_sql::legacy_hash("DD6001", "8866");
        let pg = kefu_sql::Backend::Postgres == db.backend();
        let sql = "UPDATE orders SET query_password_hash = $1 WHERE number = $2";
        if pg {
            let pool = sqlx::PgPool::connect(&t.url).await.unwrap();
            let schema = t.options.schema.clone().unwrap();
            sqlx::query(&sql.replace("orders", &format!("\"{schema}\".orders")))
                .bind(&legacy)
                .bind("DD6001")
                .execute(&pool)
                .await
                .unwrap();
        } else {
            let pool = sqlx::SqlitePool::connect(&t.url).await.unwrap();
            sqlx::query(sql)
                .bind(&legacy)
                .bind("DD6001")
                .execute(&pool)
                .await
                .unwrap();
        }
        let n = &t.name;
        let secret = |s: &str| Proof::Secret(s.to_string());
        assert!(
            !orders.verify("DD6001", &secret("8867")).await.unwrap(),
            "{n}"
        );
        let stored = orders.get("DD6001").await.unwrap().unwrap();
        assert_eq!(
            stored.query_password_hash.as_deref(),
            Some(legacy.as_str()),
            "{n}: a wrong password upgrades nothing"
        );
        assert!(
            orders.verify("DD6001", &secret("8866")).await.unwrap(),
            "{n}"
        );
        let stored = orders.get("DD6001").await.unwrap().unwrap();
        let upgraded = stored.query_password_hash.unwrap();
        assert!(upgraded.starts_with("$argon2id$"), "{n}: {upgraded}");
        assert!(
            orders.verify("DD6001", &secret("8866")).await.unwrap(),
            "{n}"
        );
        assert!(
            !orders.verify("DD6001", &secret("8867")).await.unwrap(),
            "{n}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_and_tickets_with_a_key_are_recorded_once() {
    on_both(async |t: &TestDb| {
        let db = t.open().await;
        let audit = db.audit();
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
        let n = &t.name;
        let events = audit.for_subject("DD7001").await.unwrap();
        assert_eq!(events.len(), 3, "{n}");
        assert_eq!(events[0].dedupe_key.as_deref(), Some("k1"), "{n}");

        let tickets = db.tickets();
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
    })
    .await;
}

fn key_of(id: &str) -> ConversationKey {
    key(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_checked_and_taken_atomically_across_processes() {
    on_both(async |t: &TestDb| {
        use kefu_core::{Attempts, Counter, Limit, Space, Taken};
        // Two "processes" (two pools on one database) race twenty attempts at one order.
        let (one, two) = (t.open().await.attempts(), t.open().await.attempts());
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
        let n = &t.name;
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
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_waits_a_bounded_time_for_a_conversation_locked_in_another_process() {
    // PostgreSQL: the lock is shared by processes; SQLite's is in-process (the engine bounds
    // that wait itself, see tests/ownership_attacks.rs).
    let mut t = TestDb::postgres();
    t.options.lock_wait = Duration::from_millis(300);
    let (one, two) = (
        t.open().await.conversations(),
        t.open().await.conversations(),
    );
    let k = key("stuck");
    let held = one.lock(&k).await.unwrap();
    // Gives up with an error rather than waiting for ever (the outer timeout only turns a
    // hang into a failure; it measures nothing).
    let err = tokio::time::timeout(Duration::from_secs(60), two.lock(&k))
        .await
        .expect("the wait for a held lock must end")
        .expect_err("the lock is held")
        .to_string();
    assert!(err.contains("busy"), "{err}");
    held.release().await.unwrap();
    two.lock(&k).await.unwrap().release().await.unwrap();
    t.cleanup().await;
}
