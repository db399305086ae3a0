//! [`SqlOutbox`]: the `Outbox` port on SQLite and PostgreSQL. Messages are written by
//! [`SqlConversations`](crate::SqlConversations)' commits (see [`insert_sql`]); claims take
//! only each conversation's oldest pending message, and on PostgreSQL skip rows another
//! process is claiming (`FOR UPDATE SKIP LOCKED`), so two workers never hold one message.

use crate::db::{millis, on_pool, on_writer, unavailable, Database};
use async_trait::async_trait;
use kefu_core::outbox::{Claimed, Outbox, OutboxCounts, OutboxItem, OutboxState};
use kefu_core::{Outbound, StoreError};
use sqlx::Row;
use std::sync::atomic::{AtomicU64, Ordering};

/// The outbox in the database.
#[derive(Clone)]
pub struct SqlOutbox {
    db: Database,
}

impl SqlOutbox {
    pub(crate) fn new(db: Database) -> Self {
        SqlOutbox { db }
    }
}

/// The JSON a message is stored as.
pub(crate) fn encode(message: &Outbound) -> Result<String, StoreError> {
    serde_json::to_string(message)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode an outbox message: {e}")))
}

fn decode(id: i64, body: &str) -> Result<Outbound, StoreError> {
    serde_json::from_str(body).map_err(|e| {
        StoreError::Unavailable(format!(
            "outbox message {id} is not a message this kefu can read ({e})"
        ))
    })
}

/// `INSERT INTO outbox` for `count` messages; each message's four columns (channel,
/// conversation id, kind, body) follow from `$first` on, and `$created` is their time.
pub(crate) fn insert_sql(count: usize, first: usize, created: usize) -> String {
    let rows: Vec<String> = (0..count)
        .map(|i| {
            let p = first + i * 4;
            format!("(${p}, ${}, ${}, ${}, ${created})", p + 1, p + 2, p + 3)
        })
        .collect();
    format!(
        "INSERT INTO outbox (channel, conversation_id, kind, body, created_at) VALUES {}",
        rows.join(", ")
    )
}

/// Binds the four per-message columns of [`insert_sql`] (channel, conversation id, kind,
/// body), message after message; `encoded` holds each message's kind and body.
pub(crate) fn bind_messages<'q, DB: sqlx::Database>(
    mut query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    messages: &'q [Outbound],
    encoded: &'q [(String, String)],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    &'q String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for (message, (kind, body)) in messages.iter().zip(encoded) {
        query = query
            .bind(&message.conversation.channel)
            .bind(&message.conversation.id)
            .bind(kind)
            .bind(body);
    }
    query
}

/// Each message's kind and body as stored.
pub(crate) fn encode_all(messages: &[Outbound]) -> Result<Vec<(String, String)>, StoreError> {
    messages
        .iter()
        .map(|m| Ok((crate::db::enum_text(&m.kind), encode(m)?)))
        .collect()
}

/// A claim token unique across processes and claims.
fn token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

const ITEM_COLUMNS: &str = "id, body, state, attempts, not_before, created_at, last_error";

fn item_from<R: Row>(row: &R) -> Result<OutboxItem, StoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let bad = |e| unavailable("cannot read the outbox", e);
    let id: i64 = row.try_get("id").map_err(bad)?;
    let body: String = row.try_get("body").map_err(bad)?;
    let state: String = row.try_get("state").map_err(bad)?;
    Ok(OutboxItem {
        id,
        message: decode(id, &body)?,
        state: OutboxState::parse(&state).ok_or_else(|| {
            StoreError::Unavailable(format!(
                "outbox message {id} has the unknown state {state:?}"
            ))
        })?,
        attempts: row.try_get::<i32, _>("attempts").map_err(bad)?.max(0) as u32,
        not_before: row.try_get::<i64, _>("not_before").map_err(bad)?.max(0) as u64,
        created_at: row.try_get::<i64, _>("created_at").map_err(bad)?.max(0) as u64,
        last_error: row.try_get("last_error").map_err(bad)?,
    })
}

#[async_trait]
impl Outbox for SqlOutbox {
    async fn enqueue(&self, messages: Vec<Outbound>, now: u64) -> Result<Vec<i64>, StoreError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let fail = |e| unavailable("cannot write to the outbox", e);
        let encoded = encode_all(&messages)?;
        let sql = format!("{} RETURNING id", insert_sql(messages.len(), 2, 1));
        on_writer!(self.db, |pool| {
            let query = sqlx::query(&sql).bind(millis(now));
            let query = bind_messages(query, &messages, &encoded);
            let rows = query.fetch_all(pool).await.map_err(fail)?;
            let mut ids = rows
                .iter()
                .map(|r| r.try_get::<i64, _>(0).map_err(fail))
                .collect::<Result<Vec<_>, _>>()?;
            ids.sort_unstable();
            Ok(ids)
        })
    }

    async fn claim(
        &self,
        now: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let fail = |e| unavailable("cannot claim from the outbox", e);
        // SQLite runs the one statement under the database's write lock, so nobody claims in
        // between; PostgreSQL skips the rows another claimer has locked.
        let skip_locked = match self.db.backend() {
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET attempts = attempts + 1, lease_until = $2, claim = $3 \
             WHERE id IN ( \
               SELECT o.id FROM outbox o \
               WHERE o.state = 'pending' AND o.not_before <= $1 AND o.lease_until <= $1 \
               AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state = 'pending' \
                 AND p.channel = o.channel AND p.conversation_id = o.conversation_id \
                 AND p.id < o.id) \
               ORDER BY o.id LIMIT $4{skip_locked}) \
             RETURNING id, body, attempts"
        );
        let token = token();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut claimed = on_writer!(self.db, |pool| {
            let rows = sqlx::query(&sql)
                .bind(millis(now))
                .bind(millis(now.saturating_add(lease_ms)))
                .bind(&token)
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(fail)?;
            rows.iter()
                .map(|row| {
                    let id: i64 = row.try_get("id").map_err(fail)?;
                    let body: String = row.try_get("body").map_err(fail)?;
                    let attempts: i32 = row.try_get("attempts").map_err(fail)?;
                    Ok(Claimed {
                        id,
                        message: decode(id, &body)?,
                        attempts: attempts.max(0) as u32,
                        token: token.clone(),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    async fn delivered(&self, claim: &Claimed, now: u64) -> Result<bool, StoreError> {
        let fail = |e| unavailable("cannot mark an outbox message sent", e);
        on_writer!(self.db, |pool| {
            let done = sqlx::query(
                "UPDATE outbox SET state = 'sent', sent_at = $3, claim = NULL, lease_until = 0, \
                 last_error = NULL WHERE id = $1 AND claim = $2 AND state = 'pending'",
            )
            .bind(claim.id)
            .bind(&claim.token)
            .bind(millis(now))
            .execute(pool)
            .await
            .map_err(fail)?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn retry(&self, claim: &Claimed, at: u64, error: &str) -> Result<bool, StoreError> {
        let fail = |e| unavailable("cannot reschedule an outbox message", e);
        on_writer!(self.db, |pool| {
            let done = sqlx::query(
                "UPDATE outbox SET not_before = $3, claim = NULL, lease_until = 0, \
                 last_error = $4 WHERE id = $1 AND claim = $2 AND state = 'pending'",
            )
            .bind(claim.id)
            .bind(&claim.token)
            .bind(millis(at))
            .bind(error)
            .execute(pool)
            .await
            .map_err(fail)?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn dead(&self, claim: &Claimed, error: &str) -> Result<bool, StoreError> {
        let fail = |e| unavailable("cannot give up on an outbox message", e);
        on_writer!(self.db, |pool| {
            let done = sqlx::query(
                "UPDATE outbox SET state = 'dead', claim = NULL, lease_until = 0, \
                 last_error = $3 WHERE id = $1 AND claim = $2 AND state = 'pending'",
            )
            .bind(claim.id)
            .bind(&claim.token)
            .bind(error)
            .execute(pool)
            .await
            .map_err(fail)?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn list(&self, state: OutboxState, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let fail = |e| unavailable("cannot read the outbox", e);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_pool!(self.db, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {ITEM_COLUMNS} FROM outbox WHERE state = $1 ORDER BY id LIMIT $2"
            ))
            .bind(state.as_str())
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(fail)?;
            rows.iter().map(item_from).collect()
        })
    }

    async fn resend(&self, id: i64, now: u64) -> Result<bool, StoreError> {
        let fail = |e| unavailable("cannot resend an outbox message", e);
        on_writer!(self.db, |pool| {
            let done = sqlx::query(
                "UPDATE outbox SET state = 'pending', attempts = 0, not_before = $2, \
                 lease_until = 0, claim = NULL WHERE id = $1 AND state = 'dead'",
            )
            .bind(id)
            .bind(millis(now))
            .execute(pool)
            .await
            .map_err(fail)?;
            Ok(done.rows_affected() == 1)
        })
    }

    async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        let fail = |e| unavailable("cannot count the outbox", e);
        on_pool!(self.db, |pool| {
            let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM outbox GROUP BY state")
                .fetch_all(pool)
                .await
                .map_err(fail)?;
            let mut counts = OutboxCounts::default();
            for row in rows {
                let state: String = row.try_get("state").map_err(fail)?;
                let n = row.try_get::<i64, _>("n").map_err(fail)?.max(0) as u64;
                match OutboxState::parse(&state) {
                    Some(OutboxState::Pending) => counts.pending = n,
                    Some(OutboxState::Sent) => counts.sent = n,
                    Some(OutboxState::Dead) => counts.dead = n,
                    None => {}
                }
            }
            Ok(counts)
        })
    }

    async fn prune_sent(&self, before: u64) -> Result<u64, StoreError> {
        let fail = |e| unavailable("cannot prune the outbox", e);
        on_writer!(self.db, |pool| {
            let done = sqlx::query("DELETE FROM outbox WHERE state = 'sent' AND created_at < $1")
                .bind(millis(before))
                .execute(pool)
                .await
                .map_err(fail)?;
            Ok(done.rows_affected())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_parameters_follow_each_other() {
        assert_eq!(
            insert_sql(2, 5, 3),
            "INSERT INTO outbox (channel, conversation_id, kind, body, created_at) \
             VALUES ($5, $6, $7, $8, $3), ($9, $10, $11, $12, $3)"
        );
    }

    #[test]
    fn claim_tokens_differ() {
        assert_ne!(token(), token());
    }
}
