//! Opening a database: connection pools, SQLite set-up, migrations and the schema check.

use crate::cache::TurnCache;
use kefu_core::KeyedLocks;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, PgPool, Row, SqlitePool};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The newest schema version this build knows (the number of its last migration).
pub const SCHEMA_VERSION: i64 = 7;

/// Why a database could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The URL is not a `sqlite:` or `postgres:` URL, or is malformed.
    #[error("storage url `{url}` is not usable: {reason} — use sqlite://data/kefu.db or postgres://user@host:5432/dbname")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot open the database {target}: {source} — {hint}")]
    Connect {
        /// The file or server.
        target: String,
        /// What the driver said.
        source: sqlx::Error,
        /// What to check.
        hint: &'static str,
    },
    /// The database was written by a newer kefu.
    #[error("the database {target} has schema version {found}, newer than this kefu understands (up to {known}); upgrade kefu, or point storage.url at another database")]
    TooNew {
        /// The file or server.
        target: String,
        /// The database's schema version.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A migration failed.
    #[error("cannot bring the database {target} to schema version {known}: {source}")]
    Migrate {
        /// The file or server.
        target: String,
        /// The newest version this build knows.
        known: i64,
        /// What failed.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

/// Which database a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// How to open a database.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// PostgreSQL: the schema kefu's tables live in (created if missing); `None` uses the
    /// server's default search path (usually `public`).
    pub schema: Option<String>,
    /// Connections for queries.
    pub max_connections: u32,
    /// PostgreSQL: connections that hold conversations' turn locks (bounds how many turns run
    /// at once in this process).
    pub lock_connections: u32,
    /// How long to wait for a connection or an SQLite write lock.
    pub timeout: Duration,
    /// PostgreSQL: how long a turn waits for its conversation's lock (held by a turn of the
    /// same conversation in any process) before it fails and the message is left to be
    /// delivered again; it bounds the wait for a lock connection too.
    pub lock_wait: Duration,
    /// SQLite: how many conversations keep their last committed state in memory, so their
    /// next turn starts without a read (0: none). The copy only saves time; the database
    /// still refuses a stale or duplicate turn. Not used on PostgreSQL, where another
    /// instance may well have handled the conversation's last message.
    pub conversation_cache: usize,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            schema: None,
            max_connections: 8,
            lock_connections: 16,
            timeout: Duration::from_secs(10),
            lock_wait: Duration::from_secs(30),
            conversation_cache: 10_000,
        }
    }
}

#[derive(Clone)]
pub(crate) enum Pool {
    /// Readers run side by side (WAL); writes go through `writer`, a single connection, so
    /// writers of this process queue in order instead of sleeping in SQLite's busy handler.
    Sqlite {
        pool: SqlitePool,
        writer: SqlitePool,
    },
    Postgres {
        pool: PgPool,
        locks: PgPool,
        /// Mixed into advisory-lock keys so databases in different schemas don't contend.
        namespace: String,
    },
}

/// An open database; cheap to clone (pools are shared).
#[derive(Clone)]
pub struct Database {
    pub(crate) pool: Pool,
    target: String,
    /// Shared by every conversation store of this database in this process.
    pub(crate) turns: Option<Arc<TurnCache>>,
    pub(crate) locks: KeyedLocks,
    /// When this process last dropped attempts older than any window (ms since the epoch).
    pub(crate) attempts_pruned: Arc<std::sync::atomic::AtomicU64>,
    /// SQLite's signals between this process's listeners, by topic (see [`crate::Signal`]).
    pub(crate) signals: Arc<
        std::sync::Mutex<std::collections::HashMap<String, tokio::sync::broadcast::Sender<String>>>,
    >,
}

/// Runs the same reading code on either pool: inside, `$pool` is a `&SqlitePool` or a
/// `&PgPool`.
macro_rules! on_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            $crate::db::Pool::Sqlite { pool: $pool, .. } => $body,
            $crate::db::Pool::Postgres { pool: $pool, .. } => $body,
        }
    };
}
pub(crate) use on_pool;

/// Like [`on_pool`], for code that writes: on SQLite it runs on the writer connection.
macro_rules! on_writer {
    ($db:expr, |$pool:ident| $body:expr) => {
        match &$db.pool {
            $crate::db::Pool::Sqlite { writer: $pool, .. } => $body,
            $crate::db::Pool::Postgres { pool: $pool, .. } => $body,
        }
    };
}
pub(crate) use on_writer;

/// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite, so the write lock is taken (or
/// waited for) up front instead of failing half-way; a plain `BEGIN` on PostgreSQL.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
           + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// A pooled connection that is closed, not returned to the pool, if dropped while armed: a
/// session that may hold a lock or an unfinished transaction must never be reused.
pub(crate) struct Armed<DB: sqlx::Database>(Option<PoolConnection<DB>>);

impl<DB: sqlx::Database> Armed<DB> {
    pub(crate) fn new(conn: PoolConnection<DB>) -> Self {
        Armed(Some(conn))
    }

    pub(crate) fn conn(&mut self) -> &mut DB::Connection {
        self.0
            .as_mut()
            .expect("armed connection present until disarmed")
    }

    /// The connection, safe to return to the pool again.
    pub(crate) fn disarm(mut self) -> PoolConnection<DB> {
        self.0
            .take()
            .expect("armed connection present until disarmed")
    }
}

impl<DB: sqlx::Database> Drop for Armed<DB> {
    fn drop(&mut self) {
        if let Some(mut conn) = self.0.take() {
            conn.close_on_drop();
        }
    }
}

/// A 64-bit key for PostgreSQL's advisory locks: FNV-1a over the parts, each ended by a
/// unit separator.
pub(crate) fn advisory_key(parts: &[&str]) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0x1f]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash as i64
}

/// The store error of a failed query.
pub(crate) fn unavailable(what: &str, e: sqlx::Error) -> kefu_core::StoreError {
    kefu_core::StoreError::Unavailable(format!("{what}: {e}"))
}

/// Checks that `url` is one [`Database::connect`] can open, without opening it: the scheme,
/// and the options in it (so a typo in `sslmode` is found when kefu starts, not at the first
/// message).
///
/// # Errors
///
/// [`DbError::BadUrl`] saying what is wrong.
pub fn check_url(url: &str) -> Result<(), DbError> {
    let bad = |reason: String| DbError::BadUrl {
        url: redact(url),
        reason,
    };
    if url.starts_with("sqlite:") {
        SqliteConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
        Ok(())
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        PgConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
        Ok(())
    } else {
        Err(bad("it must start with sqlite: or postgres://".to_string()))
    }
}

/// `url` without a password (`postgres://kefu:secret@db/kefu` -> `postgres://kefu:***@db/kefu`),
/// for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

impl Database {
    /// Opens the database at `url` (`sqlite://path/to/file.db`, `sqlite::memory:`,
    /// `postgres://user@host:port/db`), creating an SQLite file and its directory if needed,
    /// and migrates it to [`SCHEMA_VERSION`].
    pub async fn connect(url: &str, options: &DbOptions) -> Result<Database, DbError> {
        if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, options).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::connect_postgres(url, options).await
        } else {
            Err(DbError::BadUrl {
                url: redact(url),
                reason: "it must start with sqlite: or postgres://".to_string(),
            })
        }
    }

    async fn connect_sqlite(url: &str, options: &DbOptions) -> Result<Database, DbError> {
        let bad = |reason: String| DbError::BadUrl {
            url: redact(url),
            reason,
        };
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| bad(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.timeout)
            .foreign_keys(true)
            .disable_statement_logging();
        let file: PathBuf = connect.get_filename().to_path_buf();
        let in_memory = file.as_os_str().is_empty() || file == Path::new(":memory:");
        let target = if in_memory {
            "(in memory)".to_string()
        } else {
            file.display().to_string()
        };
        if let Some(dir) = file
            .parent()
            .filter(|d| !in_memory && !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| DbError::Connect {
                target: target.clone(),
                source: sqlx::Error::Io(e),
                hint: "check that the directory can be created and written",
            })?;
        }
        let pool_options = |max: u32| {
            SqlitePoolOptions::new()
                .max_connections(max)
                .min_connections(if in_memory { 1 } else { 0 })
                .idle_timeout((!in_memory).then_some(Duration::from_secs(600)))
                .max_lifetime((!in_memory).then_some(Duration::from_secs(1800)))
                .acquire_timeout(options.timeout)
                // A local file needs no ping before every query.
                .test_before_acquire(false)
        };
        let cannot_open = |source| DbError::Connect {
            target: target.clone(),
            source,
            hint: "check the path in storage.url and that its directory is writable",
        };
        let writer = pool_options(1)
            .connect_with(connect.clone())
            .await
            .map_err(cannot_open)?;
        // An in-memory database lives in its one connection.
        let pool = if in_memory {
            writer.clone()
        } else {
            pool_options(options.max_connections.max(1))
                .connect_with(connect)
                .await
                .map_err(cannot_open)?
        };
        let db = Database {
            pool: Pool::Sqlite { pool, writer },
            target,
            turns: (options.conversation_cache > 0)
                .then(|| Arc::new(TurnCache::new(options.conversation_cache))),
            locks: KeyedLocks::new(),
            attempts_pruned: Arc::default(),
            signals: Arc::default(),
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn connect_postgres(url: &str, options: &DbOptions) -> Result<Database, DbError> {
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(|e| DbError::BadUrl {
                url: redact(url),
                reason: e.to_string(),
            })?
            .disable_statement_logging();
        let target = format!(
            "postgres://{}:{}/{}",
            connect.get_host(),
            connect.get_port(),
            connect.get_database().unwrap_or("")
        );
        let unreachable = |source: sqlx::Error| {
            let text = source.to_string().to_lowercase();
            let hint = if text.contains("certificate")
                || text.contains("tls")
                || text.contains("ssl")
            {
                "the TLS connection failed: with sslmode=verify-full (or verify-ca) set \
                 sslrootcert= in storage.url to the file of the authority that signed the \
                 server's certificate; sslmode=require encrypts without checking the server; \
                 a server without TLS needs sslmode=prefer or disable"
            } else {
                "check storage.url in kefu.yaml and that the PostgreSQL server runs and accepts this user"
            };
            DbError::Connect {
                target: target.clone(),
                source,
                hint,
            }
        };
        if let Some(schema) = &options.schema {
            if schema.is_empty()
                || !schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(DbError::BadUrl {
                    url: redact(url),
                    reason: format!("schema `{schema}` must be letters, digits and underscores"),
                });
            }
            let mut conn = connect.connect().await.map_err(unreachable)?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&mut conn)
                .await?;
            sqlx::Connection::close(conn).await?;
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.timeout)
            // Broken connections surface as query errors (the turn is retried by redelivery);
            // a ping before every query would double the round trips.
            .test_before_acquire(false)
            .connect_with(connect.clone())
            .await
            .map_err(unreachable)?;
        // The server gives up waiting for an advisory lock after `lock_wait` (lock_timeout),
        // so a stuck conversation costs the turns behind it a bounded wait, not a hang.
        let lock_wait_ms = options.lock_wait.as_millis().max(1);
        let locks = PgPoolOptions::new()
            .max_connections(options.lock_connections.max(1))
            .test_before_acquire(false)
            .acquire_timeout(options.lock_wait.max(Duration::from_millis(1)))
            .connect_lazy_with(connect.options([("lock_timeout", format!("{lock_wait_ms}ms"))]));
        let db = Database {
            pool: Pool::Postgres {
                pool,
                locks,
                namespace: options.schema.clone().unwrap_or_default(),
            },
            target,
            turns: None,
            locks: KeyedLocks::new(),
            attempts_pruned: Arc::default(),
            signals: Arc::default(),
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite { .. } => Backend::Sqlite,
            Pool::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The file or server, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64, DbError> {
        Ok(self.applied_version().await?.unwrap_or(0))
    }

    /// The newest migration applied, or `None` for a database kefu never used.
    async fn applied_version(&self) -> Result<Option<i64>, sqlx::Error> {
        let exists = on_pool!(self, |pool| {
            let sql = match self.backend() {
                Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
                Backend::Postgres => "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
            };
            sqlx::query(sql)
                .fetch_one(pool)
                .await?
                .try_get::<i64, _>(0)?
        });
        if exists == 0 {
            return Ok(None);
        }
        on_pool!(self, |pool| {
            sqlx::query("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await?
                .try_get::<Option<i64>, _>(0)
        })
    }

    /// Checks the schema is not newer than this build, then applies missing migrations.
    async fn migrate(&self) -> Result<(), DbError> {
        if let Some(found) = self.applied_version().await? {
            if found > SCHEMA_VERSION {
                return Err(DbError::TooNew {
                    target: self.target.clone(),
                    found,
                    known: SCHEMA_VERSION,
                });
            }
        }
        let migrated = match &self.pool {
            Pool::Sqlite { writer, .. } => SQLITE_MIGRATIONS.run(writer).await,
            Pool::Postgres { pool, .. } => POSTGRES_MIGRATIONS.run(pool).await,
        };
        migrated.map_err(|source| DbError::Migrate {
            target: self.target.clone(),
            known: SCHEMA_VERSION,
            source,
        })?;
        tracing::debug!(target = %self.target, version = SCHEMA_VERSION, "database ready");
        Ok(())
    }

    /// Closes every connection (waiting for the ones in use).
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite { pool, writer } => {
                pool.close().await;
                writer.close().await;
            }
            Pool::Postgres { pool, locks, .. } => {
                locks.close().await;
                pool.close().await;
            }
        }
    }

    /// The conversation store.
    pub fn conversations(&self) -> crate::SqlConversations {
        crate::SqlConversations::new(self.clone())
    }

    /// The hand-off queue.
    pub fn queue(&self) -> crate::SqlQueue {
        crate::SqlQueue::new(self.clone())
    }

    /// The tickets.
    pub fn tickets(&self) -> crate::SqlTickets {
        crate::SqlTickets::new(self.clone())
    }

    /// The shop's order tables.
    pub fn orders(&self) -> crate::SqlOrders {
        crate::SqlOrders::new(self.clone())
    }

    /// The audit log.
    pub fn audit(&self) -> crate::SqlAudit {
        crate::SqlAudit::new(self.clone())
    }

    /// The outbox: messages to customers waiting to be delivered (the conversations' commits
    /// write it).
    pub fn outbox(&self) -> crate::SqlOutbox {
        crate::SqlOutbox::new(self.clone())
    }

    /// The people who answer customers: accounts and console sessions.
    pub fn accounts(&self) -> crate::SqlAccounts {
        crate::SqlAccounts::new(self.clone())
    }

    /// Limited attempts (ownership proofs, card-key views), counted in this database.
    pub fn attempts(&self) -> crate::SqlAttempts {
        crate::SqlAttempts::new(self.clone())
    }
}

/// A serde enum's name (`"snake_case"` variants) as text for a column.
pub(crate) fn enum_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => other.map(|v| v.to_string()).unwrap_or_default(),
    }
}

/// A serde enum from its column text.
pub(crate) fn enum_from<T: serde::de::DeserializeOwned>(
    text: &str,
    column: &str,
) -> Result<T, kefu_core::StoreError> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).map_err(|_| {
        kefu_core::StoreError::Unavailable(format!(
            "column {column} holds `{text}`, which this kefu does not know"
        ))
    })
}

/// Milliseconds as the signed integers databases store.
pub(crate) fn millis(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}
