//! kefu talks to PostgreSQL over TLS: `sslmode=require` encrypts every connection of the
//! pools, and `sslmode=verify-full` with `sslrootcert=` accepts the server only with a
//! certificate from that authority.
//!
//! The server's certificate is made by `scripts/postgres-tls` (run by `.ci/run`), which
//! prints the authority's certificate as `KEFU_TEST_POSTGRES_CA`. Without that variable the
//! verify-full test fails in CI (where `CI` is set) and is reported as not run elsewhere.

mod common;

use common::TestDb;
use kefu_core::{Conversation, ConversationKey, ConversationStore, Locale, TurnCommit};
use kefu_sql::{Database, DbError};
use sqlx::{Connection, Row};

/// `url` with more query parameters.
fn with_params(url: &str, params: &str) -> String {
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}{params}")
}

/// Every server session named `app`, and whether each is encrypted.
async fn sessions(app: &str) -> Vec<bool> {
    let mut admin = sqlx::PgConnection::connect(&common::postgres_url())
        .await
        .expect("admin connection");
    sqlx::query(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid \
         WHERE a.application_name = $1",
    )
    .bind(app)
    .fetch_all(&mut admin)
    .await
    .expect("pg_stat_ssl")
    .iter()
    .map(|r| r.get::<bool, _>(0))
    .collect()
}

/// Opens kefu's database at `url` (in a fresh schema) and commits one turn through it; the
/// database stays open.
async fn use_it(url: &str) -> Result<(TestDb, Database), DbError> {
    let mut db = TestDb::postgres();
    db.url = url.to_string();
    let opened = Database::connect(&db.url, &db.options).await?;
    let store = opened.conversations();
    let key = ConversationKey::new("telegram", "tls");
    let lock = store.lock(&key).await.expect("lock");
    let conversation = Conversation::new(key.clone(), "u", Locale::Zh);
    store
        .commit(TurnCommit::new(conversation, Some("m1".into()), Vec::new()))
        .await
        .expect("commit");
    lock.release().await.expect("release");
    assert_eq!(store.load(&key).await.unwrap().unwrap().version, 1);
    Ok((db, opened))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_encrypts_every_connection() {
    let app = format!("kefu-tls-{}", rand::random::<u32>());
    let url = with_params(
        &common::postgres_url(),
        &format!("sslmode=require&application_name={app}"),
    );
    let (db, open) = use_it(&url)
        .await
        .unwrap_or_else(|e| panic!("kefu could not use PostgreSQL over TLS: {e}"));
    let seen = sessions(&app).await;
    open.close().await;
    assert!(!seen.is_empty(), "no session of kefu's pools was found");
    assert!(
        seen.iter().all(|ssl| *ssl),
        "a session without TLS: {seen:?}"
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_accepts_only_the_servers_own_authority() {
    let Ok(ca) = std::env::var("KEFU_TEST_POSTGRES_CA") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "KEFU_TEST_POSTGRES_CA is not set: .ci/run must run scripts/postgres-tls first"
        );
        eprintln!("not run: set KEFU_TEST_POSTGRES_CA with `eval \"$(scripts/postgres-tls)\"`");
        return;
    };
    let base = common::postgres_url();
    let right = with_params(&base, &format!("sslmode=verify-full&sslrootcert={ca}"));
    let (db, open) = use_it(&right)
        .await
        .unwrap_or_else(|e| panic!("verify-full with the server's CA failed: {e}"));
    open.close().await;
    db.cleanup().await;

    let unrelated = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/unrelated-ca.crt");
    let wrong = with_params(
        &base,
        &format!("sslmode=verify-full&sslrootcert={unrelated}"),
    );
    let err = use_it(&wrong)
        .await
        .err()
        .expect("a server certificate from another authority must be refused")
        .to_string();
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(
        err.contains("sslrootcert"),
        "the hint says what to check: {err}"
    );
}
