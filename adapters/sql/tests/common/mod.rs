//! Test databases: every test gets a fresh SQLite file and a fresh PostgreSQL schema, so
//! tests run in parallel. PostgreSQL is at `KEFU_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`; the tests fail (they are not skipped) when it
//! cannot be reached.

#![allow(dead_code)]

use kefu_sql::{Database, DbOptions};
use std::sync::atomic::{AtomicU32, Ordering};

/// The PostgreSQL server the tests use.
pub fn postgres_url() -> String {
    std::env::var("KEFU_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A database for one test; open more [`Database`]s on it with [`TestDb::open`] to act as
/// further processes.
pub struct TestDb {
    pub url: String,
    pub options: DbOptions,
    pub name: &'static str,
    _dir: Option<tempfile::TempDir>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}/data/kefu.db", dir.path().display());
        TestDb {
            url,
            options: DbOptions::default(),
            name: "sqlite",
            _dir: Some(dir),
        }
    }

    pub fn postgres() -> TestDb {
        let schema = format!(
            "kefu_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        TestDb {
            url: postgres_url(),
            options: DbOptions {
                schema: Some(schema),
                max_connections: 6,
                lock_connections: 6,
                ..DbOptions::default()
            },
            name: "postgres",
            _dir: None,
        }
    }

    /// Opens (another connection pool on) the database.
    pub async fn open(&self) -> Database {
        Database::connect(&self.url, &self.options)
            .await
            .unwrap_or_else(|e| panic!("{}: cannot open the test database: {e}", self.name))
    }

    /// Drops the PostgreSQL schema (SQLite files go with their temporary directory).
    pub async fn cleanup(&self) {
        if let Some(schema) = &self.options.schema {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&self.url)
                .await
                .expect("cleanup connection");
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&mut conn)
                .await
                .expect("drop the test schema");
        }
    }
}

/// Runs `test` on a fresh SQLite database, then on a fresh PostgreSQL schema.
pub async fn on_both(test: impl AsyncFn(&TestDb)) {
    for db in [TestDb::sqlite(), TestDb::postgres()] {
        test(&db).await;
        db.cleanup().await;
    }
}
