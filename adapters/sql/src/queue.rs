//! [`SqlQueue`]: the `HandoffQueue` port on SQLite and PostgreSQL.

use crate::db::{enum_from, enum_text, millis, on_pool, on_writer, BeginWrite, Database};
use async_trait::async_trait;
use kefu_core::conversation::now_millis;
use kefu_core::handoff::{QueuePosition, Relayed};
use kefu_core::{ConversationKey, HandoffQueue, HandoffRequest, Inbound, Priority, QueueError};
use sqlx::Row;

/// The hand-off queue in the database: claims are atomic across processes.
#[derive(Clone)]
pub struct SqlQueue {
    db: Database,
}

const REQUEST_COLUMNS: &str = "channel, conversation_id, customer, skill_group, priority, reason, \
     entry, locale, entities, transcript, enqueued_at";

fn fail(what: &'static str) -> impl Fn(sqlx::Error) -> QueueError {
    move |e| QueueError::Unavailable(format!("{what}: {e}"))
}

fn priority_rank(priority: Priority) -> i64 {
    Priority::ALL
        .iter()
        .position(|p| *p == priority)
        .unwrap_or(1) as i64
}

fn priority_from(rank: i64) -> Priority {
    usize::try_from(rank)
        .ok()
        .and_then(|i| Priority::ALL.get(i).copied())
        .unwrap_or_default()
}

fn store_error(e: kefu_core::StoreError) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

/// Reads a hand-off request from a row of `REQUEST_COLUMNS`.
fn request_from<R>(row: &R) -> Result<HandoffRequest, QueueError>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let bad = fail("cannot read a queued request");
    let text = |column: &str| row.try_get::<String, _>(column).map_err(&bad);
    let json = |column: &str| -> Result<serde_json::Value, QueueError> {
        serde_json::from_str(&text(column)?)
            .map_err(|e| QueueError::Unavailable(format!("queued {column} unreadable: {e}")))
    };
    Ok(HandoffRequest {
        conversation: ConversationKey::new(text("channel")?, text("conversation_id")?),
        user: text("customer")?,
        skill_group: text("skill_group")?,
        priority: priority_from(row.try_get("priority").map_err(&bad)?),
        reason: enum_from(&text("reason")?, "reason").map_err(store_error)?,
        entry: row.try_get("entry").map_err(&bad)?,
        locale: text("locale")?
            .parse()
            .map_err(|_| QueueError::Unavailable("queued locale unreadable".to_string()))?,
        entities: serde_json::from_value(json("entities")?)
            .map_err(|e| QueueError::Unavailable(format!("queued entities unreadable: {e}")))?,
        transcript: serde_json::from_value(json("transcript")?)
            .map_err(|e| QueueError::Unavailable(format!("queued transcript unreadable: {e}")))?,
        enqueued_at: row.try_get::<i64, _>("enqueued_at").map_err(&bad)?.max(0) as u64,
    })
}

impl SqlQueue {
    pub(crate) fn new(db: Database) -> Self {
        SqlQueue { db }
    }
}

#[async_trait]
impl HandoffQueue for SqlQueue {
    async fn relayed(&self, key: &ConversationKey) -> Result<Vec<Relayed>, QueueError> {
        let bad = fail("cannot read relayed messages");
        on_pool!(self.db, |pool| {
            let rows = sqlx::query(
                "SELECT message_id, customer, text, at FROM relayed_messages \
                 WHERE channel = $1 AND conversation_id = $2 ORDER BY id",
            )
            .bind(&key.channel)
            .bind(&key.id)
            .fetch_all(pool)
            .await
            .map_err(&bad)?;
            rows.iter()
                .map(|row| {
                    Ok(Relayed {
                        message_id: row.try_get("message_id").map_err(&bad)?,
                        customer: row.try_get("customer").map_err(&bad)?,
                        text: row.try_get("text").map_err(&bad)?,
                        at: row.try_get::<i64, _>("at").map_err(&bad)?.max(0) as u64,
                    })
                })
                .collect()
        })
    }

    async fn waiting(&self, skill_group: Option<&str>) -> Result<Vec<HandoffRequest>, QueueError> {
        on_pool!(self.db, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT {REQUEST_COLUMNS} FROM handoff_queue \
                 WHERE claimed_by IS NULL AND closed_at IS NULL AND ($1 IS NULL OR skill_group = $1) \
                 ORDER BY priority DESC, enqueued_at, id"
            ))
            .bind(skill_group)
            .fetch_all(pool)
            .await
            .map_err(fail("cannot list the queue"))?;
            rows.iter().map(request_from).collect()
        })
    }

    async fn claimed_by(&self, key: &ConversationKey) -> Result<Option<String>, QueueError> {
        on_pool!(self.db, |pool| {
            let row = sqlx::query(
                "SELECT claimed_by FROM handoff_queue \
                 WHERE channel = $1 AND conversation_id = $2 AND closed_at IS NULL",
            )
            .bind(&key.channel)
            .bind(&key.id)
            .fetch_optional(pool)
            .await
            .map_err(fail("cannot read the queue"))?;
            match row {
                Some(row) => row
                    .try_get::<Option<String>, _>(0)
                    .map_err(fail("cannot read the queue")),
                None => Ok(None),
            }
        })
    }

    async fn enqueue(&self, request: HandoffRequest) -> Result<QueuePosition, QueueError> {
        let entities = serde_json::to_string(&request.entities).unwrap_or_else(|_| "{}".into());
        let transcript = serde_json::to_string(&request.transcript).unwrap_or_else(|_| "[]".into());
        let bad = fail("cannot queue the conversation");
        let key = &request.conversation;
        on_writer!(self.db, |pool| {
            let mut tx = pool.begin_write().await.map_err(&bad)?;
            // A conversation already open in the queue keeps its place (and its enqueue time)
            // but gets the new request's details, and waits again if it was claimed.
            sqlx::query(&format!(
                "INSERT INTO handoff_queue ({REQUEST_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (channel, conversation_id) WHERE closed_at IS NULL DO UPDATE SET \
                 customer = excluded.customer, skill_group = excluded.skill_group, \
                 priority = excluded.priority, reason = excluded.reason, entry = excluded.entry, \
                 locale = excluded.locale, entities = excluded.entities, \
                 transcript = excluded.transcript, claimed_by = NULL, claimed_at = NULL"
            ))
            .bind(&key.channel)
            .bind(&key.id)
            .bind(&request.user)
            .bind(&request.skill_group)
            .bind(priority_rank(request.priority))
            .bind(enum_text(&request.reason))
            .bind(request.entry.as_deref())
            .bind(request.locale.code())
            .bind(&entities)
            .bind(&transcript)
            .bind(millis(request.enqueued_at))
            .execute(&mut *tx)
            .await
            .map_err(&bad)?;
            let ahead: Option<i64> = sqlx::query_scalar(AHEAD_SQL)
                .bind(&key.channel)
                .bind(&key.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(&bad)?;
            tx.commit().await.map_err(&bad)?;
            Ok(position_from(ahead).unwrap_or(QueuePosition { position: 1 }))
        })
    }

    async fn position(&self, key: &ConversationKey) -> Result<Option<QueuePosition>, QueueError> {
        on_pool!(self.db, |pool| {
            let ahead: Option<i64> = sqlx::query_scalar(AHEAD_SQL)
                .bind(&key.channel)
                .bind(&key.id)
                .fetch_optional(pool)
                .await
                .map_err(fail("cannot read the queue position"))?;
            Ok(position_from(ahead))
        })
    }

    async fn claim(
        &self,
        skill_group: &str,
        agent: &str,
    ) -> Result<Option<HandoffRequest>, QueueError> {
        let bad = fail("cannot claim from the queue");
        let now = millis(now_millis());
        // PostgreSQL: rows another claimer has locked are skipped, not waited for, so
        // concurrent claimers get different requests. SQLite: the one statement runs under the
        // database's write lock, so nobody can claim in between.
        let skip_locked = match self.db.backend() {
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE handoff_queue SET claimed_by = $2, claimed_at = $3 WHERE id = ( \
             SELECT id FROM handoff_queue \
             WHERE skill_group = $1 AND claimed_by IS NULL AND closed_at IS NULL \
             ORDER BY priority DESC, enqueued_at, id LIMIT 1{skip_locked}) \
             RETURNING {REQUEST_COLUMNS}"
        );
        on_writer!(self.db, |pool| {
            let row = sqlx::query(&sql)
                .bind(skill_group)
                .bind(agent)
                .bind(now)
                .fetch_optional(pool)
                .await
                .map_err(&bad)?;
            row.as_ref().map(request_from).transpose()
        })
    }

    async fn relay(&self, message: &Inbound) -> Result<(), QueueError> {
        let key = &message.conversation;
        on_writer!(self.db, |pool| {
            sqlx::query(
                "INSERT INTO relayed_messages (channel, conversation_id, message_id, customer, text, at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(&key.channel)
            .bind(&key.id)
            .bind(&message.message_id)
            .bind(&message.user)
            .bind(&message.text)
            .bind(millis(now_millis()))
            .execute(pool)
            .await
            .map_err(fail("cannot relay the message"))?;
            Ok(())
        })
    }

    async fn close(&self, key: &ConversationKey) -> Result<(), QueueError> {
        on_writer!(self.db, |pool| {
            sqlx::query(
                "UPDATE handoff_queue SET closed_at = $3 \
                 WHERE channel = $1 AND conversation_id = $2 AND closed_at IS NULL",
            )
            .bind(&key.channel)
            .bind(&key.id)
            .bind(millis(now_millis()))
            .execute(pool)
            .await
            .map_err(fail("cannot close the hand-off"))?;
            Ok(())
        })
    }
}

/// The number of waiting requests of the conversation's skill group ahead of it; no row when
/// it does not wait.
const AHEAD_SQL: &str = "SELECT (SELECT COUNT(*) FROM handoff_queue o \
       WHERE o.skill_group = q.skill_group AND o.claimed_by IS NULL AND o.closed_at IS NULL \
         AND (o.priority > q.priority OR (o.priority = q.priority \
           AND (o.enqueued_at < q.enqueued_at OR (o.enqueued_at = q.enqueued_at AND o.id < q.id))))) \
     FROM handoff_queue q \
     WHERE q.channel = $1 AND q.conversation_id = $2 AND q.claimed_by IS NULL AND q.closed_at IS NULL";

fn position_from(ahead: Option<i64>) -> Option<QueuePosition> {
    ahead.map(|a| QueuePosition {
        position: a.max(0) as usize + 1,
    })
}
