//! [`SqlConversations`]: the `ConversationStore` port on SQLite and PostgreSQL.

use crate::db::{enum_from, enum_text, millis, on_pool, unavailable, Armed, Database, Pool};
use async_trait::async_trait;
use kefu_core::store::RemoteLock;
use kefu_core::{
    Committed, Conversation, ConversationKey, ConversationStore, Holder, StoreError,
    TranscriptLine, TurnCommit, TurnLock, TurnStart,
};
use sqlx::{PgPool, Postgres, Row, Sqlite, SqlitePool};

/// Conversations, transcripts and processed message ids in the database.
#[derive(Clone)]
pub struct SqlConversations {
    db: Database,
}

const LINE_COLUMNS: &str =
    "channel, conversation_id, at, speaker, message_id, text, decision, confidence, entry, kind, quick_replies";

/// The columns each transcript line binds after channel and conversation id.
const LINE_PARAMS: usize = 9;

impl SqlConversations {
    pub(crate) fn new(db: Database) -> Self {
        SqlConversations { db }
    }

    /// Conversations updated since `since` (ms), newest first (for consoles and reports).
    pub async fn recent(&self, since: u64, limit: u32) -> Result<Vec<Conversation>, StoreError> {
        let rows = on_pool!(self.db, |pool| {
            sqlx::query(
                "SELECT state, version FROM conversations WHERE updated_at >= $1 \
                 ORDER BY updated_at DESC LIMIT $2",
            )
            .bind(millis(since))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(|e| unavailable("cannot list conversations", e))?
            .into_iter()
            .map(|row| conversation_from(row.try_get("state"), row.try_get("version")))
            .collect::<Result<Vec<_>, _>>()
        });
        rows
    }
}

fn conversation_from(
    state: Result<String, sqlx::Error>,
    version: Result<i64, sqlx::Error>,
) -> Result<Conversation, StoreError> {
    let state = state.map_err(|e| unavailable("cannot read a conversation", e))?;
    let version = version.map_err(|e| unavailable("cannot read a conversation", e))?;
    let mut conversation: Conversation = serde_json::from_str(&state).map_err(|e| {
        StoreError::Unavailable(format!("a stored conversation is not readable: {e}"))
    })?;
    conversation.version = version.max(0) as u64;
    Ok(conversation)
}

fn holder_columns(holder: &Holder) -> (&'static str, Option<&str>) {
    match holder {
        Holder::Bot => ("bot", None),
        Holder::Queue => ("queue", None),
        Holder::Agent(agent) => ("agent", Some(agent.as_str())),
    }
}

/// A 64-bit key for `pg_advisory_lock` over the namespace and the conversation.
fn advisory_key(namespace: &str, key: &ConversationKey) -> i64 {
    crate::db::advisory_key(&[namespace, &key.channel, &key.id])
}

/// A PostgreSQL session advisory lock on a conversation.
struct PgTurnLock {
    conn: Armed<Postgres>,
    key: i64,
}

#[async_trait]
impl RemoteLock for PgTurnLock {
    async fn release(mut self: Box<Self>) -> Result<(), StoreError> {
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .fetch_one(self.conn.conn())
            .await
            .map_err(|e| unavailable("cannot release a conversation lock", e))?
            .try_get::<bool, _>(0)
            .map_err(|e| unavailable("cannot release a conversation lock", e))?;
        if unlocked {
            // Back to the pool, lock-free.
            drop(self.conn.disarm());
            Ok(())
        } else {
            // The connection is closed on drop, which frees whatever it holds.
            Err(StoreError::Unavailable(
                "a conversation lock was not held when released".to_string(),
            ))
        }
    }
}

/// A conversation in a customer's history (the agents' context panel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    /// The conversation.
    pub key: ConversationKey,
    /// `bot`, `queue` or `agent`.
    pub holder: String,
    /// The agent holding it, if one does.
    pub agent: Option<String>,
    /// When it started (ms since the epoch).
    pub started_at: u64,
    /// When it last changed.
    pub updated_at: u64,
}

impl SqlConversations {
    /// The customer's conversations on every channel (the same customer id), newest first,
    /// at most `limit`.
    pub async fn of_customer(
        &self,
        customer: &str,
        limit: usize,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        let bad = |e: sqlx::Error| unavailable("cannot list the customer's conversations", e);
        on_pool!(self.db, |pool| {
            let rows = sqlx::query(
                "SELECT channel, conversation_id, holder, agent, started_at, updated_at \
                 FROM conversations WHERE customer = $1 ORDER BY updated_at DESC LIMIT $2",
            )
            .bind(customer)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await
            .map_err(bad)?;
            rows.iter()
                .map(|row| {
                    Ok(ConversationSummary {
                        key: ConversationKey::new(
                            row.try_get::<String, _>(0).map_err(bad)?,
                            row.try_get::<String, _>(1).map_err(bad)?,
                        ),
                        holder: row.try_get(2).map_err(bad)?,
                        agent: row.try_get(3).map_err(bad)?,
                        started_at: row.try_get::<i64, _>(4).map_err(bad)?.max(0) as u64,
                        updated_at: row.try_get::<i64, _>(5).map_err(bad)?.max(0) as u64,
                    })
                })
                .collect()
        })
    }
}

#[async_trait]
impl ConversationStore for SqlConversations {
    async fn lock(&self, key: &ConversationKey) -> Result<TurnLock, StoreError> {
        // Turns of one conversation in this process queue here, so each process waits on the
        // server with at most one connection per conversation.
        let local = self.db.locks.lock(key).await;
        let Pool::Postgres {
            locks, namespace, ..
        } = &self.db.pool
        else {
            return Ok(local);
        };
        let conn = locks
            .acquire()
            .await
            .map_err(|e| unavailable("cannot get a connection for a conversation lock", e))?;
        let mut armed = Armed::new(conn);
        let lock_key = advisory_key(namespace, key);
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(lock_key)
            .execute(armed.conn())
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03") => {
                    StoreError::Unavailable(format!(
                        "conversation {key} is busy: another turn held its lock longer than \
                         the lock wait; deliver the message again later"
                    ))
                }
                _ => unavailable("cannot lock the conversation", e),
            })?;
        Ok(local.with_remote(Box::new(PgTurnLock {
            conn: armed,
            key: lock_key,
        })))
    }

    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        on_pool!(self.db, |pool| {
            let row = sqlx::query(
                "SELECT state, version FROM conversations WHERE channel = $1 AND conversation_id = $2",
            )
            .bind(&key.channel)
            .bind(&key.id)
            .fetch_optional(pool)
            .await
            .map_err(|e| unavailable("cannot load the conversation", e))?;
            row.map(|row| conversation_from(row.try_get("state"), row.try_get("version")))
                .transpose()
        })
    }

    async fn is_processed(
        &self,
        key: &ConversationKey,
        message_id: &str,
    ) -> Result<bool, StoreError> {
        on_pool!(self.db, |pool| {
            let row = sqlx::query(
                "SELECT 1 FROM processed_messages \
                 WHERE channel = $1 AND conversation_id = $2 AND message_id = $3",
            )
            .bind(&key.channel)
            .bind(&key.id)
            .bind(message_id)
            .fetch_optional(pool)
            .await
            .map_err(|e| unavailable("cannot check the message id", e))?;
            Ok(row.is_some())
        })
    }

    async fn start_turn(
        &self,
        key: &ConversationKey,
        message_id: &str,
    ) -> Result<TurnStart, StoreError> {
        if let Some(cache) = &self.db.turns {
            if let Some(start) = cache.get(key, message_id) {
                return Ok(start);
            }
        }
        on_pool!(self.db, |pool| {
            let row = sqlx::query(
                "SELECT EXISTS (SELECT 1 FROM processed_messages \
                 WHERE channel = $1 AND conversation_id = $2 AND message_id = $3) AS seen, \
                 c.state, c.version FROM (SELECT 1 AS one) AS one \
                 LEFT JOIN conversations c ON c.channel = $1 AND c.conversation_id = $2",
            )
            .bind(&key.channel)
            .bind(&key.id)
            .bind(message_id)
            .fetch_one(pool)
            .await
            .map_err(|e| unavailable("cannot load the conversation", e))?;
            let seen: bool = row
                .try_get("seen")
                .map_err(|e| unavailable("cannot check the message id", e))?;
            if seen {
                return Ok(TurnStart::Processed);
            }
            let state: Option<String> = row
                .try_get("state")
                .map_err(|e| unavailable("cannot load the conversation", e))?;
            match state {
                None => Ok(TurnStart::Ready(None)),
                Some(state) => Ok(TurnStart::Ready(Some(conversation_from(
                    Ok(state),
                    row.try_get("version"),
                )?))),
            }
        })
    }

    async fn commit(&self, turn: TurnCommit) -> Result<Committed, StoreError> {
        let row = ConversationRow::new(&turn)?;
        let committed = match &self.db.pool {
            Pool::Sqlite { writer, .. } => commit_sqlite(writer, &turn, &row).await,
            Pool::Postgres { pool, .. } => commit_postgres(pool, &turn, &row).await,
        };
        if let Some(cache) = &self.db.turns {
            let key = &turn.conversation.key;
            match committed {
                Ok(Committed::Stored) => {
                    let message_id = turn.message_id.as_deref();
                    let mut stored = turn.conversation;
                    stored.version += 1;
                    cache.stored(&stored.key.clone(), stored, message_id);
                }
                // Somebody else wrote the conversation, or the outcome is unknown.
                _ => cache.forget(key),
            }
        }
        committed
    }

    async fn transcript(&self, key: &ConversationKey) -> Result<Vec<TranscriptLine>, StoreError> {
        let fail = |e| unavailable("cannot read the transcript", e);
        on_pool!(self.db, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {LINE_COLUMNS} FROM transcript_lines \
                 WHERE channel = $1 AND conversation_id = $2 ORDER BY id"
            ))
            .bind(&key.channel)
            .bind(&key.id)
            .fetch_all(pool)
            .await
            .map_err(fail)?;
            rows.into_iter()
                .map(|row| {
                    let speaker: String = row.try_get("speaker").map_err(fail)?;
                    let decision: Option<String> = row.try_get("decision").map_err(fail)?;
                    let kind: Option<String> = row.try_get("kind").map_err(fail)?;
                    let at: i64 = row.try_get("at").map_err(fail)?;
                    let confidence: Option<f64> = row.try_get("confidence").map_err(fail)?;
                    let buttons: Option<String> = row.try_get("quick_replies").map_err(fail)?;
                    Ok(TranscriptLine {
                        at: at.max(0) as u64,
                        speaker: enum_from(&speaker, "speaker")?,
                        message_id: row.try_get("message_id").map_err(fail)?,
                        text: row.try_get("text").map_err(fail)?,
                        decision: decision.map(|d| enum_from(&d, "decision")).transpose()?,
                        confidence: confidence.map(|c| c as f32),
                        entry: row.try_get("entry").map_err(fail)?,
                        kind: kind.map(|k| enum_from(&k, "kind")).transpose()?,
                        // Unreadable buttons (a row written by hand) are left out, not fatal:
                        // the line itself is what matters.
                        quick_replies: buttons
                            .and_then(|b| serde_json::from_str(&b).ok())
                            .unwrap_or_default(),
                    })
                })
                .collect()
        })
    }

    fn outbox(&self) -> std::sync::Arc<dyn kefu_core::Outbox> {
        std::sync::Arc::new(crate::SqlOutbox::new(self.db.clone()))
    }
}

/// The columns a commit writes besides the transcript.
struct ConversationRow<'a> {
    state: String,
    holder: &'static str,
    agent: Option<&'a str>,
    flow: Option<&'a str>,
    /// The version the turn started from.
    expected: i64,
    /// The outbox messages' kinds and bodies.
    outbox: Vec<(String, String)>,
}

impl<'a> ConversationRow<'a> {
    fn new(turn: &'a TurnCommit) -> Result<Self, StoreError> {
        let c = &turn.conversation;
        let state = serde_json::to_string(c)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode the conversation: {e}")))?;
        let (holder, agent) = holder_columns(&c.holder);
        Ok(ConversationRow {
            state,
            holder,
            agent,
            flow: c.flow.as_ref().map(|f| f.name.as_str()),
            expected: millis(c.version),
            outbox: crate::outbox::encode_all(&turn.outbox)?,
        })
    }
}

/// `INSERT INTO transcript_lines` for `count` lines: channel and conversation id are `$1` and
/// `$2`, each line's other [`LINE_PARAMS`] columns follow from `$first` on, as [`bind_lines`] binds them.
fn insert_lines_sql(count: usize, first: usize) -> String {
    let rows: Vec<String> = (0..count)
        .map(|i| {
            let params: Vec<String> = (0..LINE_PARAMS)
                .map(|k| format!("${}", first + i * LINE_PARAMS + k))
                .collect();
            format!("($1, $2, {})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO transcript_lines ({LINE_COLUMNS}) VALUES {}",
        rows.join(", ")
    )
}

/// The buttons of a line as stored: a JSON array, or NULL for none.
fn quick_replies_json(buttons: &[kefu_core::QuickReply]) -> Option<String> {
    if buttons.is_empty() {
        None
    } else {
        serde_json::to_string(buttons).ok()
    }
}

/// Binds the [`LINE_PARAMS`] per-line columns of [`insert_lines_sql`], line after line.
fn bind_lines<'q, DB: sqlx::Database>(
    mut query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    lines: &'q [TranscriptLine],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<f64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for line in lines {
        query = query
            .bind(millis(line.at))
            .bind(enum_text(&line.speaker))
            .bind(line.message_id.as_deref())
            .bind(&line.text)
            .bind(line.decision.as_ref().map(enum_text))
            .bind(line.confidence.map(f64::from))
            .bind(line.entry.as_deref())
            .bind(line.kind.as_ref().map(enum_text))
            .bind(quick_replies_json(&line.quick_replies));
    }
    query
}

/// What the `conversations_version_step` trigger (SQLite migration 2) aborts a write with
/// when the stored version is not the one the turn started from.
const VERSION_CONFLICT: &str = "kefu: conversation version conflict";

/// SQLite: the whole turn as one statement list, run in one call to the connection's thread
/// (each call costs tens of microseconds, far more than the writes). Nothing can be decided
/// between statements, so the database refuses what must not be stored: a processed message
/// id by its primary key, a stale version by the trigger. Either error leaves the
/// transaction open and the turn unstored, and it is rolled back.
async fn commit_sqlite(
    writer: &SqlitePool,
    turn: &TurnCommit,
    row: &ConversationRow<'_>,
) -> Result<Committed, StoreError> {
    let fail = |e| unavailable("cannot commit the turn", e);
    let c = &turn.conversation;
    let mut sql = String::from("BEGIN IMMEDIATE; ");
    if turn.message_id.is_some() {
        sql.push_str(
            "INSERT INTO processed_messages (channel, conversation_id, message_id, at) \
             VALUES ($1, $2, $12, $11); ",
        );
    }
    sql.push_str(
        "INSERT INTO conversations (channel, conversation_id, customer, locale, holder, agent, \
         flow, state, version, started_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (channel, conversation_id) DO UPDATE SET customer = excluded.customer, \
         locale = excluded.locale, holder = excluded.holder, agent = excluded.agent, \
         flow = excluded.flow, state = excluded.state, version = excluded.version, \
         updated_at = excluded.updated_at; ",
    );
    if !turn.lines.is_empty() {
        sql.push_str(&insert_lines_sql(turn.lines.len(), 13));
        sql.push_str("; ");
    }
    if !turn.outbox.is_empty() {
        sql.push_str(&crate::outbox::insert_sql(
            turn.outbox.len(),
            13 + LINE_PARAMS * turn.lines.len(),
            11,
        ));
        sql.push_str("; ");
    }
    sql.push_str("COMMIT");
    let mut query = sqlx::query::<Sqlite>(&sql)
        .bind(&c.key.channel)
        .bind(&c.key.id)
        .bind(&c.user)
        .bind(c.locale.code())
        .bind(row.holder)
        .bind(row.agent)
        .bind(row.flow)
        .bind(&row.state)
        .bind(row.expected.saturating_add(1))
        .bind(millis(c.started_at))
        .bind(millis(c.updated_at))
        .bind(turn.message_id.as_deref());
    query = bind_lines(query, &turn.lines);
    query = crate::outbox::bind_messages(query, &turn.outbox, &row.outbox);
    // If this future is dropped half-way the transaction may be open: the connection is
    // then closed, which rolls it back, instead of going back to the pool.
    let mut conn = Armed::new(writer.acquire().await.map_err(fail)?);
    let error = match query.execute(conn.conn()).await {
        Ok(_) => {
            drop(conn.disarm());
            return Ok(Committed::Stored);
        }
        Err(error) => error,
    };
    let refused = match &error {
        sqlx::Error::Database(e) if e.message().contains(VERSION_CONFLICT) => {
            Some(Committed::Conflict)
        }
        sqlx::Error::Database(e)
            if e.is_unique_violation() && e.message().contains("processed_messages") =>
        {
            Some(Committed::Duplicate)
        }
        _ => None,
    };
    if sqlx::query("ROLLBACK").execute(conn.conn()).await.is_ok() {
        drop(conn.disarm());
    }
    refused.ok_or_else(|| fail(error))
}

/// PostgreSQL: one transaction, deciding between statements.
async fn commit_postgres(
    pool: &PgPool,
    turn: &TurnCommit,
    row: &ConversationRow<'_>,
) -> Result<Committed, StoreError> {
    let fail = |e| unavailable("cannot commit the turn", e);
    let c = &turn.conversation;
    let key = &c.key;
    let mut tx = pool.begin().await.map_err(fail)?;
    if let Some(id) = &turn.message_id {
        let inserted = sqlx::query(
            "INSERT INTO processed_messages (channel, conversation_id, message_id, at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&key.channel)
        .bind(&key.id)
        .bind(id)
        .bind(millis(c.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(fail)?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await.map_err(fail)?;
            return Ok(Committed::Duplicate);
        }
    }
    let written = if row.expected == 0 {
        sqlx::query(
            "INSERT INTO conversations (channel, conversation_id, customer, locale, holder, \
             agent, flow, state, version, started_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(&key.channel)
        .bind(&key.id)
        .bind(&c.user)
        .bind(c.locale.code())
        .bind(row.holder)
        .bind(row.agent)
        .bind(row.flow)
        .bind(&row.state)
        .bind(millis(c.started_at))
        .bind(millis(c.updated_at))
        .execute(&mut *tx)
        .await
    } else {
        sqlx::query(
            "UPDATE conversations SET customer = $3, locale = $4, holder = $5, agent = $6, \
             flow = $7, state = $8, version = version + 1, updated_at = $9 \
             WHERE channel = $1 AND conversation_id = $2 AND version = $10",
        )
        .bind(&key.channel)
        .bind(&key.id)
        .bind(&c.user)
        .bind(c.locale.code())
        .bind(row.holder)
        .bind(row.agent)
        .bind(row.flow)
        .bind(&row.state)
        .bind(millis(c.updated_at))
        .bind(row.expected)
        .execute(&mut *tx)
        .await
    }
    .map_err(fail)?
    .rows_affected();
    if written == 0 {
        tx.rollback().await.map_err(fail)?;
        return Ok(Committed::Conflict);
    }
    if !turn.lines.is_empty() {
        let sql = insert_lines_sql(turn.lines.len(), 3);
        let query = sqlx::query(&sql).bind(&key.channel).bind(&key.id);
        let query = bind_lines(query, &turn.lines);
        query.execute(&mut *tx).await.map_err(fail)?;
    }
    if !turn.outbox.is_empty() {
        let sql = crate::outbox::insert_sql(turn.outbox.len(), 2, 1);
        let query = sqlx::query(&sql).bind(millis(c.updated_at));
        let query = crate::outbox::bind_messages(query, &turn.outbox, &row.outbox);
        query.execute(&mut *tx).await.map_err(fail)?;
    }
    tx.commit().await.map_err(fail)?;
    Ok(Committed::Stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_line_parameters_follow_each_other() {
        assert_eq!(
            insert_lines_sql(2, 3),
            format!(
                "INSERT INTO transcript_lines ({LINE_COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11), \
                 ($1, $2, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
            )
        );
    }

    #[test]
    fn advisory_keys_depend_on_namespace_and_conversation() {
        let a = ConversationKey::new("telegram", "1");
        let b = ConversationKey::new("telegram", "2");
        assert_ne!(advisory_key("", &a), advisory_key("", &b));
        assert_ne!(advisory_key("s1", &a), advisory_key("s2", &a));
        assert_eq!(advisory_key("s1", &a), advisory_key("s1", &a));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            advisory_key("", &ConversationKey::new("ab", "c")),
            advisory_key("", &ConversationKey::new("a", "bc"))
        );
    }
}
