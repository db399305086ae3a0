//! Building an engine.

use super::*;

/// Builds an [`Engine`] from its ports.
pub struct EngineBuilder {
    knowledge: Arc<dyn Knowledge>,
    store: Option<Arc<dyn ConversationStore>>,
    queue: Option<Arc<dyn HandoffQueue>>,
    orders: Option<Arc<dyn Orders>>,
    tickets: Option<Arc<dyn Tickets>>,
    audit: Option<Arc<dyn AuditLog>>,
    attempts: Option<Arc<dyn Attempts>>,
    entities: EntityExtractor,
    config: EngineConfig,
    events: Vec<Arc<dyn EngineEvents>>,
}

impl EngineBuilder {
    /// Adds a subscriber to every turn and agent action (see [`crate::events`]).
    pub fn events(mut self, subscriber: Arc<dyn EngineEvents>) -> Self {
        self.events.push(subscriber);
        self
    }

    /// Where limited attempts (ownership proofs, card-key views) are counted (default: in
    /// memory). The counts are what stop guessing across conversations and processes, so
    /// processes sharing a database must share them.
    pub fn attempts(mut self, attempts: Arc<dyn Attempts>) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// Where tickets live (default: in memory).
    pub fn tickets(mut self, tickets: Arc<dyn Tickets>) -> Self {
        self.tickets = Some(tickets);
        self
    }

    /// Where card keys shown and ownership checks are recorded (default: in memory). The
    /// failed checks recorded here are what stops guessing across conversations, so processes
    /// sharing a database should share it.
    pub fn audit(mut self, audit: Arc<dyn AuditLog>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The conversation store (default: in memory).
    pub fn store(mut self, store: Arc<dyn ConversationStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The hand-off queue (default: in memory).
    pub fn queue(mut self, queue: Arc<dyn HandoffQueue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The shop's orders (default: none; flows then hand off with what they collected).
    pub fn orders(mut self, orders: Arc<dyn Orders>) -> Self {
        self.orders = Some(orders);
        self
    }

    /// The entity patterns (default: [`EntityExtractor::default`]).
    pub fn entities(mut self, entities: EntityExtractor) -> Self {
        self.entities = entities;
        self
    }

    /// The behaviour settings.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// The engine.
    pub fn build(self) -> Engine {
        Engine {
            knowledge: self.knowledge,
            store: self
                .store
                .unwrap_or_else(|| Arc::new(crate::store::MemoryStore::new())),
            queue: self
                .queue
                .unwrap_or_else(|| Arc::new(crate::handoff::MemoryQueue::new())),
            orders: self.orders,
            tickets: self
                .tickets
                .unwrap_or_else(|| Arc::new(crate::tickets::MemoryTickets::new())),
            audit: self
                .audit
                .unwrap_or_else(|| Arc::new(crate::audit::MemoryAudit::new())),
            attempts: self
                .attempts
                .unwrap_or_else(|| Arc::new(crate::attempts::MemoryAttempts::new())),
            entities: self.entities,
            config: self.config,
            events: self.events,
        }
    }
}

impl Engine {
    /// Starts building an engine that answers from `knowledge`.
    pub fn builder(knowledge: Arc<dyn Knowledge>) -> EngineBuilder {
        EngineBuilder {
            knowledge,
            store: None,
            queue: None,
            orders: None,
            tickets: None,
            audit: None,
            attempts: None,
            entities: EntityExtractor::default(),
            config: EngineConfig::default(),
            events: Vec::new(),
        }
    }
}
