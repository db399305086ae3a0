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
}

/// An append-only record of sensitive events.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends an event.
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
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
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
