//! [`SqlTickets`]: the `Tickets` port on SQLite and PostgreSQL.

use crate::db::{millis, on_pool, on_writer, unavailable, BeginWrite, Database};
use async_trait::async_trait;
use kefu_core::conversation::now_millis;
use kefu_core::tickets::ticket_number;
use kefu_core::{
    ConversationKey, NewTicket, StoreError, Ticket, TicketEvent, TicketStatus, TicketUpdate,
    Tickets,
};
use sqlx::Row;

/// After-sales tickets in the database.
#[derive(Clone)]
pub struct SqlTickets {
    db: Database,
}

const TICKET_COLUMNS: &str = "id, number, kind, order_no, channel, conversation_id, customer, \
     description, skill_group, owner, status, created_at, updated_at, due_at, idempotency_key";

fn bad(e: sqlx::Error) -> StoreError {
    unavailable("cannot read tickets", e)
}

fn status_from(text: &str) -> Result<TicketStatus, StoreError> {
    text.parse()
        .map_err(|e: String| StoreError::Unavailable(format!("a stored ticket is unreadable: {e}")))
}

/// A ticket row (without history) and its row id.
fn ticket_from<R>(row: &R) -> Result<(i64, Ticket), StoreError>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let time = |c: &str| {
        row.try_get::<i64, _>(c)
            .map(|t| t.max(0) as u64)
            .map_err(bad)
    };
    let channel: Option<String> = row.try_get("channel").map_err(bad)?;
    let conversation_id: Option<String> = row.try_get("conversation_id").map_err(bad)?;
    let number: Option<String> = row.try_get("number").map_err(bad)?;
    Ok((
        row.try_get("id").map_err(bad)?,
        Ticket {
            number: number.unwrap_or_default(),
            kind: row.try_get("kind").map_err(bad)?,
            order: row.try_get("order_no").map_err(bad)?,
            conversation: channel
                .zip(conversation_id)
                .map(|(c, i)| ConversationKey::new(c, i)),
            customer: row.try_get("customer").map_err(bad)?,
            description: row.try_get("description").map_err(bad)?,
            skill_group: row.try_get("skill_group").map_err(bad)?,
            owner: row.try_get("owner").map_err(bad)?,
            status: status_from(&row.try_get::<String, _>("status").map_err(bad)?)?,
            created_at: time("created_at")?,
            updated_at: time("updated_at")?,
            due_at: time("due_at")?,
            history: Vec::new(),
            idempotency_key: row.try_get("idempotency_key").map_err(bad)?,
        },
    ))
}

impl SqlTickets {
    pub(crate) fn new(db: Database) -> Self {
        SqlTickets { db }
    }

    /// The ticket opened with idempotency key `key`, if any.
    async fn opened_with(&self, key: &str) -> Result<Option<Ticket>, StoreError> {
        Ok(self
            .select("idempotency_key = $1", &[key], None)
            .await?
            .into_iter()
            .next())
    }

    /// Inserts a new ticket with its first history event, and numbers it.
    async fn insert(&self, request: NewTicket) -> Result<Ticket, StoreError> {
        let at = now_millis();
        let mut ticket = kefu_core::tickets::new_ticket(String::new(), request, at);
        let fail = |e| unavailable("cannot open the ticket", e);
        let (channel, conversation_id) = match &ticket.conversation {
            Some(k) => (Some(k.channel.as_str()), Some(k.id.as_str())),
            None => (None, None),
        };
        on_writer!(self.db, |pool| {
            let mut tx = pool.begin_write().await.map_err(fail)?;
            let id: i64 = sqlx::query(
                "INSERT INTO tickets (kind, order_no, channel, conversation_id, customer, \
                 description, skill_group, owner, status, created_at, updated_at, due_at, \
                 idempotency_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $9, $10, $11) RETURNING id",
            )
            .bind(&ticket.kind)
            .bind(ticket.order.as_deref())
            .bind(channel)
            .bind(conversation_id)
            .bind(&ticket.customer)
            .bind(&ticket.description)
            .bind(&ticket.skill_group)
            .bind(ticket.status.as_str())
            .bind(millis(at))
            .bind(millis(ticket.due_at))
            .bind(ticket.idempotency_key.as_deref())
            .fetch_one(&mut *tx)
            .await
            .map_err(fail)?
            .try_get(0)
            .map_err(fail)?;
            ticket.number = ticket_number(at, id.max(0) as u64);
            sqlx::query("UPDATE tickets SET number = $1 WHERE id = $2")
                .bind(&ticket.number)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
            let opened = &ticket.history[0];
            sqlx::query(
                "INSERT INTO ticket_events (ticket_id, at, status, by_whom, note) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(millis(opened.at))
            .bind(opened.status.as_str())
            .bind(&opened.by)
            .bind(&opened.note)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            Ok(ticket)
        })
    }

    /// Tickets matching a WHERE clause with text binds `$1..` (or one integer bind), with
    /// their histories.
    async fn select(
        &self,
        clause: &str,
        texts: &[&str],
        integer: Option<i64>,
    ) -> Result<Vec<Ticket>, StoreError> {
        let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE {clause}");
        on_pool!(self.db, |pool| {
            let mut query = sqlx::query(&sql);
            for text in texts {
                query = query.bind(*text);
            }
            if let Some(i) = integer {
                query = query.bind(i);
            }
            let rows = query.fetch_all(pool).await.map_err(bad)?;
            let mut tickets = Vec::with_capacity(rows.len());
            for row in &rows {
                let (id, mut ticket) = ticket_from(row)?;
                let events = sqlx::query(
                    "SELECT at, status, by_whom, note FROM ticket_events WHERE ticket_id = $1 ORDER BY id",
                )
                .bind(id)
                .fetch_all(pool)
                .await
                .map_err(bad)?;
                for event in &events {
                    ticket.history.push(TicketEvent {
                        at: event.try_get::<i64, _>("at").map_err(bad)?.max(0) as u64,
                        status: status_from(&event.try_get::<String, _>("status").map_err(bad)?)?,
                        by: event.try_get("by_whom").map_err(bad)?,
                        note: event.try_get("note").map_err(bad)?,
                    });
                }
                tickets.push(ticket);
            }
            Ok(tickets)
        })
    }
}

#[async_trait]
impl Tickets for SqlTickets {
    async fn overdue(&self, now: u64) -> Result<Vec<Ticket>, StoreError> {
        self.select(
            "status NOT IN ('resolved', 'closed') AND due_at < $1 ORDER BY due_at, id",
            &[],
            Some(millis(now)),
        )
        .await
    }

    async fn open(&self, request: NewTicket) -> Result<Ticket, StoreError> {
        if let Some(key) = request.idempotency_key.as_deref() {
            if let Some(opened) = self.opened_with(key).await? {
                return Ok(opened);
            }
        }
        let key = request.idempotency_key.clone();
        match self.insert(request).await {
            Ok(ticket) => Ok(ticket),
            // Opened by a racing call with the same key between the look and the insert.
            Err(e) => match key {
                Some(key) => self.opened_with(&key).await?.ok_or(e),
                None => Err(e),
            },
        }
    }

    async fn get(&self, number: &str) -> Result<Option<Ticket>, StoreError> {
        Ok(self
            .select("number = $1", &[number], None)
            .await?
            .into_iter()
            .next())
    }

    async fn for_order(&self, order: &str) -> Result<Vec<Ticket>, StoreError> {
        self.select("order_no = $1 ORDER BY id DESC", &[order], None)
            .await
    }

    async fn for_customer(&self, channel: &str, customer: &str) -> Result<Vec<Ticket>, StoreError> {
        self.select(
            "channel = $1 AND customer = $2 ORDER BY id DESC",
            &[channel, customer],
            None,
        )
        .await
    }

    async fn update(
        &self,
        number: &str,
        update: TicketUpdate,
    ) -> Result<Option<Ticket>, StoreError> {
        let at = millis(now_millis());
        let fail = |e| unavailable("cannot update the ticket", e);
        let found = on_writer!(self.db, |pool| {
            let mut tx = pool.begin_write().await.map_err(fail)?;
            // One statement changes the row, so concurrent updates each see the other's.
            let row = sqlx::query(
                "UPDATE tickets SET status = COALESCE($2, status), owner = COALESCE($3, owner), \
                 updated_at = $4 WHERE number = $1 RETURNING id, status",
            )
            .bind(number)
            .bind(update.status.map(TicketStatus::as_str))
            .bind(update.owner.as_deref())
            .bind(at)
            .fetch_optional(&mut *tx)
            .await
            .map_err(fail)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let id: i64 = row.try_get("id").map_err(fail)?;
            let status: String = row.try_get("status").map_err(fail)?;
            sqlx::query(
                "INSERT INTO ticket_events (ticket_id, at, status, by_whom, note) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(at)
            .bind(&status)
            .bind(&update.by)
            .bind(&update.note)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            Ok::<_, StoreError>(Some(()))
        })?;
        match found {
            Some(()) => self.get(number).await,
            None => Ok(None),
        }
    }
}
