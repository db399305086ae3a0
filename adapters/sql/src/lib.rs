//! kefu-sql: kefu's durable stores on SQLite (the embedded default) and PostgreSQL (many
//! processes sharing one database).
//!
//! [`Database::connect`] opens either from a URL, creates the SQLite file and its directory on
//! first start, runs the embedded migrations and refuses a database whose schema is newer
//! than this build. From a [`Database`] come the adapters of kefu-core's ports:
//!
//! | port | adapter | notes |
//! |---|---|---|
//! | [`ConversationStore`](kefu_core::ConversationStore) | [`SqlConversations`] | turn lock: an advisory lock on PostgreSQL; a version check on every commit |
//! | [`HandoffQueue`](kefu_core::HandoffQueue) | [`SqlQueue`] | claims are atomic across processes (`FOR UPDATE SKIP LOCKED`) |
//! | [`Tickets`](kefu_core::Tickets) | [`SqlTickets`] | numbers like `T20261123000042`, full history |
//! | [`Orders`](kefu_core::Orders) | [`SqlOrders`] | the shop's own orders and card keys, filled by [`SqlOrders::import`] |
//! | [`AuditLog`](kefu_core::AuditLog) | [`SqlAudit`] | append only; an event's dedupe key is recorded once |
//! | [`Outbox`](kefu_core::Outbox) | [`SqlOutbox`] | written in the commit of the change that causes a message; claims skip rows other processes hold (`FOR UPDATE SKIP LOCKED`) |
//! | [`Attempts`](kefu_core::Attempts) | [`SqlAttempts`] | a limit checked and an attempt recorded in one transaction (advisory transaction locks on PostgreSQL) |
//!
//! [`Database::report`] reads the [service report](report) of a period from the stored history.
//!
//! ```no_run
//! # async fn run() -> Result<(), kefu_sql::DbError> {
//! use kefu_sql::{Database, DbOptions};
//! use std::sync::Arc;
//!
//! let db = Database::connect("sqlite://data/kefu.db", &DbOptions::default()).await?;
//! let store = Arc::new(db.conversations());
//! let queue = Arc::new(db.queue());
//! // Engine::builder(knowledge).store(store).queue(queue).build()
//! # Ok(()) }
//! ```
//!
//! # Correctness across processes
//!
//! - A turn's state, transcript lines and message id commit in one transaction; the message
//!   id's primary key makes a second delivery a no-op even when two processes race.
//! - On PostgreSQL the turn lock is a session advisory lock held on a connection of a small
//!   pool of its own, so waiting for a lock never starves the queries of the turn holding it.
//!   Should the process die, the server drops the session and its lock.
//! - On SQLite the lock is in-process (one process per database file is the intended use);
//!   should a second process write the same conversation, the version check turns the race
//!   into a retry instead of a lost update.
//!
//! # Speed on SQLite
//!
//! Each call into SQLite goes to its connection's thread and back, which costs more than the
//! small queries of a turn. So a turn's commit is a single statement list, and a turn whose
//! conversation this process committed last starts from the state it kept
//! ([`DbOptions::conversation_cache`]) instead of reading it. Neither shortcut is trusted for
//! correctness: the database refuses a duplicate message id by its key and a stale version by
//! a trigger, and the engine then runs the turn again from the stored state.

mod accounts;
mod attempts;
mod audit;
mod cache;
mod conversations;
mod db;
mod orders;
mod outbox;
mod queue;
pub mod report;
mod signals;
mod tickets;

pub use accounts::{
    Account, AccountError, Role, SqlAccounts, Status, DEFAULT_CAPACITY, MIN_PASSWORD_CHARS,
};
pub use attempts::SqlAttempts;
pub use audit::SqlAudit;
pub use conversations::{ConversationSummary, SqlConversations};
pub use db::{check_url, redact, Backend, Database, DbError, DbOptions, SCHEMA_VERSION};
pub use orders::{
    check_query_password, legacy_hash, password_params, query_password_hash, ImportSummary,
    PasswordCheck, SqlOrders, StoredOrder,
};
pub use outbox::SqlOutbox;
pub use queue::{HandoffRecord, SqlQueue};
pub use report::{Report, Slice, Spread};
pub use signals::Signal;
pub use tickets::SqlTickets;
