//! [`SqlQueue`]: the `HandoffQueue` port on SQLite and PostgreSQL.

use crate::db::{enum_from, enum_text, millis, on_pool, on_writer, BeginWrite, Database};
use async_trait::async_trait;
use kefu_core::conversation::now_millis;
use kefu_core::handoff::{median, Held, QueuePosition, Relayed, Take, RECENT_PICKUPS};
use kefu_core::{ConversationKey, HandoffQueue, HandoffRequest, Inbound, Priority, QueueError};
use sqlx::Row;

/// The hand-off queue in the database: claims are atomic across processes.
#[derive(Clone)]
pub struct SqlQueue {
    db: Database,
}

const REQUEST_COLUMNS: &str = "channel, conversation_id, customer, skill_group, priority, reason, \
     entry, locale, entities, transcript, enqueued_at, vip, escalated_at, note";

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
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
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
        vip: row.try_get("vip").map_err(&bad)?,
        escalated_at: row
            .try_get::<Option<i64>, _>("escalated_at")
            .map_err(&bad)?
            .map(|t| t.max(0) as u64),
        note: row.try_get("note").map_err(&bad)?,
    })
}

/// One hand-off of a conversation, as the queue's history keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffRecord {
    /// What was handed off, with its reason, group, priority and note.
    pub request: HandoffRequest,
    /// The agent who took it.
    pub claimed_by: Option<String>,
    /// When it was taken (ms since the epoch).
    pub claimed_at: Option<u64>,
    /// When the first agent's reply went out.
    pub first_reply_at: Option<u64>,
    /// When it ended (closed, handed back, transferred); `None` while open.
    pub closed_at: Option<u64>,
}

impl SqlQueue {
    pub(crate) fn new(db: Database) -> Self {
        SqlQueue { db }
    }

    /// Every hand-off of a conversation, oldest first (the last `limit`): transfers, notes
    /// and who took each, for the agents' context panel.
    pub async fn history(
        &self,
        key: &ConversationKey,
        limit: usize,
    ) -> Result<Vec<HandoffRecord>, QueueError> {
        let bad = fail("cannot read the conversation's hand-offs");
        let time = |t: Option<i64>| t.map(|t| t.max(0) as u64);
        let mut records: Vec<HandoffRecord> = on_pool!(self.db, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT claimed_by, claimed_at, first_reply_at, closed_at, {REQUEST_COLUMNS} \
                 FROM handoff_queue WHERE channel = $1 AND conversation_id = $2 \
                 ORDER BY id DESC LIMIT $3"
            ))
            .bind(&key.channel)
            .bind(&key.id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await
            .map_err(&bad)?;
            rows.iter()
                .map(|row| {
                    Ok(HandoffRecord {
                        claimed_by: row.try_get("claimed_by").map_err(&bad)?,
                        claimed_at: time(row.try_get("claimed_at").map_err(&bad)?),
                        first_reply_at: time(row.try_get("first_reply_at").map_err(&bad)?),
                        closed_at: time(row.try_get("closed_at").map_err(&bad)?),
                        request: request_from(row)?,
                    })
                })
                .collect::<Result<Vec<_>, QueueError>>()?
        });
        records.reverse();
        Ok(records)
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

    async fn open_request(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<HandoffRequest>, QueueError> {
        on_pool!(self.db, |pool| {
            sqlx::query(&format!(
                "SELECT {REQUEST_COLUMNS} FROM handoff_queue \
                 WHERE channel = $1 AND conversation_id = $2 AND closed_at IS NULL"
            ))
            .bind(&key.channel)
            .bind(&key.id)
            .fetch_optional(pool)
            .await
            .map_err(fail("cannot read the queue"))?
            .as_ref()
            .map(request_from)
            .transpose()
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
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 ON CONFLICT (channel, conversation_id) WHERE closed_at IS NULL DO UPDATE SET \
                 customer = excluded.customer, skill_group = excluded.skill_group, \
                 priority = excluded.priority, reason = excluded.reason, entry = excluded.entry, \
                 locale = excluded.locale, entities = excluded.entities, \
                 transcript = excluded.transcript, claimed_by = NULL, claimed_at = NULL, \
                 vip = excluded.vip, note = excluded.note, \
                 escalated_at = COALESCE(handoff_queue.escalated_at, excluded.escalated_at)"
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
            .bind(request.vip)
            .bind(request.escalated_at.map(millis))
            .bind(request.note.as_deref())
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

    async fn take(
        &self,
        key: &ConversationKey,
        agent: &str,
        capacity: usize,
    ) -> Result<Take, QueueError> {
        let bad = fail("cannot take the conversation");
        let capacity = i64::try_from(capacity).unwrap_or(i64::MAX);
        let now = millis(now_millis());
        let postgres = self.db.backend() == crate::Backend::Postgres;
        let take = format!(
            "UPDATE handoff_queue SET claimed_by = $3, claimed_at = $4 \
             WHERE channel = $1 AND conversation_id = $2 AND closed_at IS NULL \
               AND claimed_by IS NULL \
               AND (SELECT COUNT(*) FROM handoff_queue h \
                    WHERE h.claimed_by = $3 AND h.closed_at IS NULL) < $5 \
             RETURNING {REQUEST_COLUMNS}"
        );
        let holder = format!(
            "SELECT claimed_by, {REQUEST_COLUMNS} FROM handoff_queue \
             WHERE channel = $1 AND conversation_id = $2 AND closed_at IS NULL"
        );
        on_writer!(self.db, |pool| {
            let mut tx = pool.begin_write().await.map_err(&bad)?;
            if postgres {
                // One agent's takes on every process, one at a time: the capacity check and
                // the take are then one step (SQLite has one writer anyway).
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext('kefu.agent.' || $1))")
                    .bind(agent)
                    .execute(&mut *tx)
                    .await
                    .map_err(&bad)?;
            }
            let taken = sqlx::query(&take)
                .bind(&key.channel)
                .bind(&key.id)
                .bind(agent)
                .bind(now)
                .bind(capacity)
                .fetch_optional(&mut *tx)
                .await
                .map_err(&bad)?;
            let outcome = match taken {
                Some(row) => Take::Taken(request_from(&row)?),
                None => {
                    let row = sqlx::query(&holder)
                        .bind(&key.channel)
                        .bind(&key.id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(&bad)?;
                    match row {
                        None => Take::NotQueued,
                        Some(row) => match row
                            .try_get::<Option<String>, _>("claimed_by")
                            .map_err(&bad)?
                        {
                            Some(by) if by == agent => Take::Taken(request_from(&row)?),
                            Some(by) => Take::HeldBy(by),
                            None => Take::AtCapacity,
                        },
                    }
                }
            };
            tx.commit().await.map_err(&bad)?;
            Ok(outcome)
        })
    }

    async fn held(&self, agent: Option<&str>) -> Result<Vec<Held>, QueueError> {
        let bad = fail("cannot list the held conversations");
        on_pool!(self.db, |pool| {
            let rows = sqlx::query(&format!(
                "SELECT claimed_by, claimed_at, first_reply_at, {REQUEST_COLUMNS} FROM handoff_queue \
                 WHERE claimed_by IS NOT NULL AND closed_at IS NULL AND ($1 IS NULL OR claimed_by = $1) \
                 ORDER BY claimed_at, id"
            ))
            .bind(agent)
            .fetch_all(pool)
            .await
            .map_err(&bad)?;
            rows.iter()
                .map(|row| {
                    Ok(Held {
                        agent: row.try_get("claimed_by").map_err(&bad)?,
                        claimed_at: row
                            .try_get::<Option<i64>, _>("claimed_at")
                            .map_err(&bad)?
                            .unwrap_or(0)
                            .max(0) as u64,
                        first_reply_at: row
                            .try_get::<Option<i64>, _>("first_reply_at")
                            .map_err(&bad)?
                            .map(|t| t.max(0) as u64),
                        request: request_from(row)?,
                    })
                })
                .collect()
        })
    }

    async fn replied(&self, key: &ConversationKey, at: u64) -> Result<(), QueueError> {
        on_writer!(self.db, |pool| {
            sqlx::query(
                "UPDATE handoff_queue SET first_reply_at = $3 \
                 WHERE channel = $1 AND conversation_id = $2 AND closed_at IS NULL \
                   AND claimed_by IS NOT NULL AND first_reply_at IS NULL",
            )
            .bind(&key.channel)
            .bind(&key.id)
            .bind(millis(at))
            .execute(pool)
            .await
            .map_err(fail("cannot record the reply"))?;
            Ok(())
        })
    }

    async fn escalate(
        &self,
        skill_group: &str,
        queued_before: u64,
        now: u64,
    ) -> Result<Vec<HandoffRequest>, QueueError> {
        let top = Priority::ALL.len() as i64 - 1;
        on_writer!(self.db, |pool| {
            let rows = sqlx::query(&format!(
                "UPDATE handoff_queue SET escalated_at = $3, \
                   priority = CASE WHEN priority < $4 THEN priority + 1 ELSE priority END \
                 WHERE skill_group = $1 AND enqueued_at <= $2 AND claimed_by IS NULL \
                   AND closed_at IS NULL AND escalated_at IS NULL \
                 RETURNING {REQUEST_COLUMNS}"
            ))
            .bind(skill_group)
            .bind(millis(queued_before))
            .bind(millis(now))
            .bind(top)
            .fetch_all(pool)
            .await
            .map_err(fail("cannot escalate waiting conversations"))?;
            rows.iter().map(request_from).collect()
        })
    }

    async fn recent_wait(&self, skill_group: &str, since: u64) -> Result<Option<u64>, QueueError> {
        on_pool!(self.db, |pool| {
            let waits: Vec<i64> = sqlx::query_scalar(
                "SELECT claimed_at - enqueued_at FROM handoff_queue \
                 WHERE skill_group = $1 AND claimed_at IS NOT NULL AND enqueued_at >= $2 \
                 ORDER BY claimed_at DESC LIMIT $3",
            )
            .bind(skill_group)
            .bind(millis(since))
            .bind(RECENT_PICKUPS as i64)
            .fetch_all(pool)
            .await
            .map_err(fail("cannot read recent waits"))?;
            Ok(median(waits.into_iter().map(|w| w.max(0) as u64).collect()))
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
