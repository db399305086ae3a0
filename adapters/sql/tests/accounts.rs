//! Agents' accounts and console sessions on SQLite and PostgreSQL, and the signals between
//! processes on PostgreSQL.

mod common;

use common::on_both;
use kefu_sql::{AccountError, Role, Signal};

const HOUR: u64 = 3_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_log_in_hold_sessions_and_are_disabled() {
    on_both(async |test| {
        let db = test.open().await;
        let accounts = db.accounts();
        let now = 1_800_000_000_000;
        accounts
            .add("alice", Role::Admin, "correct horse battery", now)
            .await
            .unwrap();
        accounts
            .add("bob", Role::Agent, "another long password", now)
            .await
            .unwrap();
        assert!(matches!(
            accounts
                .add("alice", Role::Agent, "some other password", now)
                .await,
            Err(AccountError::Exists(_))
        ));
        assert!(matches!(
            accounts.add("carol", Role::Agent, "short", now).await,
            Err(AccountError::WeakPassword)
        ));
        let names: Vec<_> = accounts
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|a| (a.name, a.role, a.disabled))
            .collect();
        assert_eq!(
            names,
            [
                ("alice".to_string(), Role::Admin, false),
                ("bob".to_string(), Role::Agent, false)
            ],
            "{}",
            test.name
        );

        // Wrong passwords and unknown names open nothing.
        assert!(accounts
            .log_in("alice", "wrong password!", now, HOUR)
            .await
            .unwrap()
            .is_none());
        assert!(accounts
            .log_in("nobody", "correct horse battery", now, HOUR)
            .await
            .unwrap()
            .is_none());
        let (token, who) = accounts
            .log_in("alice", "correct horse battery", now, HOUR)
            .await
            .unwrap()
            .expect("the right password logs in");
        assert_eq!((who.name.as_str(), who.role), ("alice", Role::Admin));
        let session = accounts.session(&token, now + 1).await.unwrap().unwrap();
        assert_eq!(session.name, "alice");
        // Expired, forged, or logged out: no session.
        assert!(accounts
            .session(&token, now + HOUR)
            .await
            .unwrap()
            .is_none());
        assert!(accounts
            .session(&"0".repeat(64), now)
            .await
            .unwrap()
            .is_none());
        assert!(accounts
            .session("not a token", now)
            .await
            .unwrap()
            .is_none());
        assert!(accounts.log_out(&token).await.unwrap());
        assert!(accounts.session(&token, now + 1).await.unwrap().is_none());

        // A new password replaces the old one; disabling ends the sessions and the log-ins.
        assert!(accounts
            .set_password("bob", "a brand new password")
            .await
            .unwrap());
        assert!(accounts
            .log_in("bob", "another long password", now, HOUR)
            .await
            .unwrap()
            .is_none());
        let (bobs, _) = accounts
            .log_in("bob", "a brand new password", now, HOUR)
            .await
            .unwrap()
            .unwrap();
        assert!(accounts.set_disabled("bob", true).await.unwrap());
        assert!(accounts.session(&bobs, now + 1).await.unwrap().is_none());
        assert!(accounts
            .log_in("bob", "a brand new password", now, HOUR)
            .await
            .unwrap()
            .is_none());
        assert!(accounts.get("bob").await.unwrap().unwrap().disabled);
        assert!(!accounts.set_disabled("nobody", true).await.unwrap());
        db.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_cross_processes_on_postgresql_and_settings_are_shared() {
    let test = common::TestDb::postgres();
    let (one, two) = (test.open().await, test.open().await);
    let mut heard = two.listen("web").await.unwrap();
    one.announce("web", "conversation-7").await.unwrap();
    let signal = tokio::time::timeout(std::time::Duration::from_secs(10), heard.recv())
        .await
        .expect("a signal within 10 s");
    assert_eq!(signal, Some(Signal::Payload("conversation-7".to_string())));
    let (a, b) = tokio::join!(
        one.setting_or_insert("key", "from one"),
        two.setting_or_insert("key", "from two")
    );
    assert_eq!(a.unwrap(), b.unwrap(), "one value for every process");
    one.close().await;
    two.close().await;
    test.cleanup().await;
}
