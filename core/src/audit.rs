//! The `AuditLog` port: who saw what when — every card key shown to a customer or revealed to
//! an agent — and an in-memory implementation.

use crate::store::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When (ms since the epoch).
    pub at: u64,
    /// Who: `customer:<channel>:<user>`, `agent:<id>`, `system`.
    pub actor: String,
    /// What, as a dotted name: `card_key.shown`, `card_key.revealed`, `order.verified`, ...
    pub action: String,
    /// What it was done to: an order number, a card key's id.
    pub subject: String,
    /// Anything else worth keeping (never a full card key).
    pub detail: String,
    /// Identifies the event so that recording it again keeps one copy: the engine derives it
    /// from the message that caused the event, so a turn run again records nothing twice.
    /// `None`: every recording is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<String>,
}

/// An append-only record of sensitive events.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends an event, unless an event with the same [`AuditEvent::dedupe_key`] is
    /// recorded already.
    async fn record(&self, event: AuditEvent) -> Result<(), StoreError>;
    /// The events about a subject, oldest first.
    async fn for_subject(&self, subject: &str) -> Result<Vec<AuditEvent>, StoreError>;
}

/// [`AuditLog`] in memory.
#[derive(Default)]
pub struct MemoryAudit {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemoryAudit {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl AuditLog for MemoryAudit {
    async fn record(&self, event: AuditEvent) -> Result<(), StoreError> {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let seen =
            event.dedupe_key.is_some() && events.iter().any(|e| e.dedupe_key == event.dedupe_key);
        if !seen {
            events.push(event);
        }
        Ok(())
    }

    async fn for_subject(&self, subject: &str) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(self
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| e.subject == subject)
            .cloned()
            .collect())
    }
}
