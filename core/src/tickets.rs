//! The `Tickets` port: after-sales tickets (a refund to approve, a delivery to chase) with
//! their status history, owner and SLA due time, and an in-memory implementation.

use crate::conversation::now_millis;
use crate::message::ConversationKey;
use crate::store::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Opened, nobody working on it yet.
    Open,
    /// Somebody is working on it.
    InProgress,
    /// Waiting for the customer to answer.
    WaitingForCustomer,
    /// Solved.
    Resolved,
    /// Closed without (further) action.
    Closed,
}

impl TicketStatus {
    /// Every status, in the order a ticket usually goes through them.
    pub const ALL: [TicketStatus; 5] = [
        TicketStatus::Open,
        TicketStatus::InProgress,
        TicketStatus::WaitingForCustomer,
        TicketStatus::Resolved,
        TicketStatus::Closed,
    ];

    /// The status's name in storage and APIs (`open`, `in_progress`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::InProgress => "in_progress",
            TicketStatus::WaitingForCustomer => "waiting_for_customer",
            TicketStatus::Resolved => "resolved",
            TicketStatus::Closed => "closed",
        }
    }

    /// Whether the ticket is finished.
    pub fn is_final(self) -> bool {
        matches!(self, TicketStatus::Resolved | TicketStatus::Closed)
    }
}

impl std::str::FromStr for TicketStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TicketStatus::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown ticket status `{s}`"))
    }
}

/// One change of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketEvent {
    /// When (ms since the epoch).
    pub at: u64,
    /// The status after the change.
    pub status: TicketStatus,
    /// Who made it (`bot`, an agent id, `customer`).
    pub by: String,
    /// What happened, in words.
    pub note: String,
}

/// An after-sales ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// The ticket number customers quote (`T` and digits).
    pub number: String,
    /// What it is about (`refund`, `delivery`, `card_key`, ...).
    pub kind: String,
    /// The order it concerns, if any.
    pub order: Option<String>,
    /// The conversation it came from, if any (where status changes are announced).
    pub conversation: Option<ConversationKey>,
    /// The customer's id on the conversation's channel.
    pub customer: String,
    /// The customer's problem, in their words or the flow's.
    pub description: String,
    /// The team that handles it.
    pub skill_group: String,
    /// The agent who owns it, once somebody does.
    pub owner: Option<String>,
    /// Where it stands.
    pub status: TicketStatus,
    /// When it was opened (ms since the epoch).
    pub created_at: u64,
    /// When it last changed.
    pub updated_at: u64,
    /// When it is due under the shop's SLA.
    pub due_at: u64,
    /// Every change, oldest first; the first is its opening.
    pub history: Vec<TicketEvent>,
    /// The [`NewTicket::idempotency_key`] it was opened with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// What is needed to open a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    /// What it is about.
    pub kind: String,
    /// The order it concerns.
    pub order: Option<String>,
    /// The conversation it came from.
    pub conversation: Option<ConversationKey>,
    /// The customer's id.
    pub customer: String,
    /// The problem.
    pub description: String,
    /// The team that handles it.
    pub skill_group: String,
    /// How long the team has (ms); `due_at` is the opening time plus this.
    pub sla_millis: u64,
    /// Who opens it (`bot`, an agent id).
    pub by: String,
    /// Names this opening: a second [`Tickets::open`] with the same key opens nothing and
    /// returns the ticket the first one opened (a turn run again opens one ticket).
    pub idempotency_key: Option<String>,
}

/// A change to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketUpdate {
    /// The new status (unchanged when `None`).
    pub status: Option<TicketStatus>,
    /// The new owner (unchanged when `None`).
    pub owner: Option<String>,
    /// Who makes the change.
    pub by: String,
    /// What happened, in words.
    pub note: String,
}

/// Where tickets live.
#[async_trait]
pub trait Tickets: Send + Sync {
    /// Opens a ticket and gives it a new number; with the
    /// [`idempotency_key`](NewTicket::idempotency_key) of a ticket already opened, returns
    /// that ticket instead.
    async fn open(&self, ticket: NewTicket) -> Result<Ticket, StoreError>;
    /// The ticket with this number.
    async fn get(&self, number: &str) -> Result<Option<Ticket>, StoreError>;
    /// The tickets of an order, newest first.
    async fn for_order(&self, order: &str) -> Result<Vec<Ticket>, StoreError>;
    /// The tickets a customer opened on a channel, newest first.
    async fn for_customer(&self, channel: &str, customer: &str) -> Result<Vec<Ticket>, StoreError>;
    /// Changes a ticket, adding an event to its history; `None` when there is no such ticket.
    async fn update(
        &self,
        number: &str,
        update: TicketUpdate,
    ) -> Result<Option<Ticket>, StoreError>;
    /// Unfinished tickets past their due time at `now`, most overdue first (SLA alerts).
    async fn overdue(&self, now: u64) -> Result<Vec<Ticket>, StoreError>;
}

/// A ticket number: `T`, the day (UTC) as `YYYYMMDD`, and a sequence number of at least six
/// digits, e.g. `T20261123000042`.
pub fn ticket_number(at_millis: u64, sequence: u64) -> String {
    let days = (at_millis / 86_400_000) as i64;
    let (y, m, d) = civil_from_days(days);
    format!("T{y:04}{m:02}{d:02}{sequence:06}")
}

/// A time for people: `MM-DD HH:MM` at `utc_offset_minutes` from UTC (480 for China).
pub fn local_time(at_millis: u64, utc_offset_minutes: i32) -> String {
    let minutes = (at_millis / 60_000) as i64 + i64::from(utc_offset_minutes);
    let (_, m, d) = civil_from_days(minutes.div_euclid(1440));
    let of_day = minutes.rem_euclid(1440);
    format!("{m:02}-{d:02} {:02}:{:02}", of_day / 60, of_day % 60)
}

/// The proleptic Gregorian date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Builds a new ticket from its request (for stores: they choose the number).
pub fn new_ticket(number: String, request: NewTicket, at: u64) -> Ticket {
    Ticket {
        idempotency_key: request.idempotency_key,
        number,
        kind: request.kind,
        order: request.order,
        conversation: request.conversation,
        customer: request.customer,
        description: request.description,
        skill_group: request.skill_group,
        owner: None,
        status: TicketStatus::Open,
        created_at: at,
        updated_at: at,
        due_at: at + request.sla_millis,
        history: vec![TicketEvent {
            at,
            status: TicketStatus::Open,
            by: request.by,
            note: "opened".to_string(),
        }],
    }
}

/// Applies an update to a ticket (for stores).
pub fn apply_update(ticket: &mut Ticket, update: TicketUpdate, at: u64) {
    if let Some(status) = update.status {
        ticket.status = status;
    }
    if update.owner.is_some() {
        ticket.owner = update.owner;
    }
    ticket.updated_at = at;
    ticket.history.push(TicketEvent {
        at,
        status: ticket.status,
        by: update.by,
        note: update.note,
    });
}

/// [`Tickets`] in memory.
#[derive(Default)]
pub struct MemoryTickets {
    tickets: Mutex<Vec<Ticket>>,
}

impl MemoryTickets {
    /// No tickets yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Ticket>> {
        self.tickets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn newest_first(mut tickets: Vec<Ticket>) -> Vec<Ticket> {
    tickets.reverse();
    tickets
}

#[async_trait]
impl Tickets for MemoryTickets {
    async fn open(&self, request: NewTicket) -> Result<Ticket, StoreError> {
        let mut tickets = self.lock();
        if let Some(opened) = request.idempotency_key.as_ref().and_then(|key| {
            tickets
                .iter()
                .find(|t| t.idempotency_key.as_ref() == Some(key))
        }) {
            return Ok(opened.clone());
        }
        let at = now_millis();
        let ticket = new_ticket(ticket_number(at, tickets.len() as u64 + 1), request, at);
        tickets.push(ticket.clone());
        Ok(ticket)
    }

    async fn get(&self, number: &str) -> Result<Option<Ticket>, StoreError> {
        Ok(self.lock().iter().find(|t| t.number == number).cloned())
    }

    async fn overdue(&self, now: u64) -> Result<Vec<Ticket>, StoreError> {
        let mut late: Vec<Ticket> = self
            .lock()
            .iter()
            .filter(|t| !t.status.is_final() && t.due_at < now)
            .cloned()
            .collect();
        late.sort_by_key(|t| t.due_at);
        Ok(late)
    }

    async fn for_order(&self, order: &str) -> Result<Vec<Ticket>, StoreError> {
        let found = self
            .lock()
            .iter()
            .filter(|t| t.order.as_deref() == Some(order))
            .cloned()
            .collect();
        Ok(newest_first(found))
    }

    async fn for_customer(&self, channel: &str, customer: &str) -> Result<Vec<Ticket>, StoreError> {
        let found = self
            .lock()
            .iter()
            .filter(|t| {
                t.customer == customer
                    && t.conversation
                        .as_ref()
                        .is_some_and(|c| c.channel == channel)
            })
            .cloned()
            .collect();
        Ok(newest_first(found))
    }

    async fn update(
        &self,
        number: &str,
        update: TicketUpdate,
    ) -> Result<Option<Ticket>, StoreError> {
        let mut tickets = self.lock();
        let Some(ticket) = tickets.iter_mut().find(|t| t.number == number) else {
            return Ok(None);
        };
        apply_update(ticket, update, now_millis());
        Ok(Some(ticket.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_numbers_carry_the_utc_day() {
        // 2026-11-23T10:00:00Z
        assert_eq!(ticket_number(1_795_428_000_000, 42), "T20261123000042");
        assert_eq!(ticket_number(0, 1), "T19700101000001");
        // 2024-02-29 (a leap day)
        assert_eq!(ticket_number(1_709_164_800_000, 7), "T20240229000007");
    }

    #[test]
    fn ticket_numbers_are_read_back_as_ticket_entities() {
        let found = crate::entities::EntityExtractor::default().extract(&format!(
            "工单 {} 进度",
            ticket_number(1_795_428_000_000, 3)
        ));
        assert_eq!(found["ticket_no"], "T20261123000003");
    }

    #[test]
    fn local_times_shift_by_the_offset() {
        // 2026-11-23T20:30:00Z is the next morning in China.
        let at = 1_795_428_000_000 + 10 * 3_600_000 + 30 * 60_000;
        assert_eq!(local_time(at, 0), "11-23 20:30");
        assert_eq!(local_time(at, 480), "11-24 04:30");
        assert_eq!(local_time(at, -300), "11-23 15:30");
    }

    #[test]
    fn statuses_round_trip_by_name() {
        for status in TicketStatus::ALL {
            assert_eq!(status.as_str().parse::<TicketStatus>(), Ok(status));
        }
        assert!("done".parse::<TicketStatus>().is_err());
    }
}
