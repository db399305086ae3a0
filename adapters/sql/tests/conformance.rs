//! The store conformance suite on SQLite and PostgreSQL: the port-level suite every store
//! runs (`kefu_core::testing::stores`, also run on the in-memory stores), and what is the SQL
//! adapter's own — the queue's claims across processes, migrations, the SQLite file, URLs,
//! the shop's order tables.

mod common;

use common::{on_both, TestDb};
use kefu_core::testing::stores::{self as suite, key, turn};
use kefu_core::{Committed, Conversation, ConversationStore, Locale, TurnStart};
use std::sync::Arc;
use std::time::Duration;

/// The stores of one "process" on the test database.
async fn stores(t: &TestDb) -> suite::Stores {
    let db = t.open().await;
    suite::Stores {
        conversations: Arc::new(db.conversations()),
        queue: Arc::new(db.queue()),
        tickets: Arc::new(db.tickets()),
        audit: Arc::new(db.audit()),
        attempts: Arc::new(db.attempts()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_round_trips_with_its_state_and_transcript() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::a_turn_round_trips_with_its_state_and_transcript(&one, &two, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processed_message_id_commits_nothing_twice() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::a_processed_message_id_commits_nothing_twice(&one, &two, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_deliveries_of_one_message_commit_once() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::racing_deliveries_of_one_message_commit_once(&one, &two, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_version_conflicts_and_stores_nothing() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::a_stale_version_conflicts_and_stores_nothing(&one, &two, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_starts_from_one_read_of_message_id_and_state() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::a_turn_starts_from_one_read_of_message_id_and_state(&one, &two, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_abandoned_half_way_stores_all_or_nothing() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::a_commit_abandoned_half_way_stores_all_or_nothing(&one, &two, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_turn_lock_excludes_other_holders_until_released_or_dropped() {
    on_both(async |t: &TestDb| {
        // SQLite's turn lock is in-process: the second locker shares the first's stores.
        let one = stores(t).await;
        let two = match t.name {
            "postgres" => stores(t).await,
            _ => one.clone(),
        };
        suite::the_turn_lock_excludes_other_holders_until_released_or_dropped(&one, &two, t.name)
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_serves_the_most_urgent_longest_waiting_first() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::the_queue_serves_the_most_urgent_longest_waiting_first(&one, &two, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_taking_one_conversation_on_two_processes_one_wins() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::two_agents_taking_one_conversation_on_two_processes_one_wins(&one, &two, t.name)
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_at_capacity_gets_no_more_even_racing_on_two_processes() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::an_agent_at_capacity_gets_no_more_even_racing_on_two_processes(&one, &two, t.name)
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_past_the_target_escalates_once_and_moves_up() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::waiting_past_the_target_escalates_once_and_moves_up(&one, &two, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pick_up_times_and_first_replies_are_recorded() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::pick_up_times_and_first_replies_are_recorded(&one, &two, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaying_a_message_twice_keeps_one_copy() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::relaying_a_message_twice_keeps_one_copy(&one, &two, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_tickets_are_the_unresolved_ones_past_their_due_time() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::overdue_tickets_are_the_unresolved_ones_past_their_due_time(&one, &two, t.name)
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_claimers_share_500_requests_without_a_double_claim() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::twenty_concurrent_claimers_share_500_requests_without_a_double_claim(
            &one, &two, t.name,
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_get_numbers_history_and_owners() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::tickets_get_numbers_history_and_owners(&one, &two, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_keeps_events_by_subject_in_order() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::the_audit_log_keeps_events_by_subject_in_order(&one, &two, t.name).await;
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
        order: kefu_core::Order {
            number: number.into(),
            product: "Steam 充值卡 100元".into(),
            status: kefu_core::OrderStatus::Delivered,
            amount_cents: 10_000,
            currency: "CNY".into(),
            quantity: keys.len().max(1) as i64,
            created_at: Some(1_795_400_000_000),
            paid_at: Some(1_795_400_060_000),
            delivered_at: Some(1_795_400_120_000),
            delivery_due_at: None,
            redeem: Some("https://store.steampowered.com/account/redeemwalletcode".into()),
        },
        buyer: kefu_core::Buyer {
            email: Some("buyer@example.com".into()),
            phone: Some("13800138000".into()),
            channel: Some("telegram".into()),
            user: Some("42".into()),
        },
        query_password: Some("8866".into()),
        card_keys: keys.iter().map(|k| k.to_string()).collect(),
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
        assert_eq!(stored.buyer.user.as_deref(), Some("42"));
        assert_eq!(stored.order.delivered_at, Some(1_795_400_120_000));
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
        again.order.status = kefu_core::OrderStatus::Refunded;
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
        unlinked.buyer.channel = None;
        unlinked.buyer.user = None;
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
            record.order.status = status;
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
        unlinked.buyer.channel = None;
        unlinked.buyer.user = None;
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
        paid.order.status = OrderStatus::Paid;
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
        let (one, two) = (stores(t).await, stores(t).await);
        suite::audit_events_and_tickets_with_a_key_are_recorded_once(&one, &two, t.name).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_checked_and_taken_atomically_across_processes() {
    on_both(async |t: &TestDb| {
        let (one, two) = (stores(t).await, stores(t).await);
        suite::attempts_are_checked_and_taken_atomically_across_processes(&one, &two, t.name).await;
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
