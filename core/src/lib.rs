//! kefu-core: the channel-agnostic heart of the kefu support bot.
//!
//! # Layout
//!
//! - [`engine`]: [`Engine`] — one customer message in, the bot's replies out — and its
//!   builder and settings; nobody is left without a reply (waiting for a person, numbered
//!   choices, hand-offs outside support hours).
//! - [`agents`]: [`Agents`] — what people working the queue do: claim, message, transfer,
//!   close (with a satisfaction survey), tickets, revealing card keys (audited).
//! - [`outbox`] and [`channel`]: what goes to a customer later (agents' messages, notices) is
//!   committed to the [`Outbox`] with its change and delivered through a [`Channel`] by an
//!   [`OutboxWorker`] — in order, retried, dead-lettered, never twice at once.
//! - [`events`]: [`EngineEvents`] sees every committed turn and agent action (metrics,
//!   consoles).
//! - [`message`]: [`Inbound`] and [`Outbound`] messages, [`ConversationKey`], quick replies.
//! - [`conversation`]: a conversation's state, transcript lines, hand-off requests.
//! - Ports (traits the engine talks through, with in-memory implementations):
//!   [`knowledge`] (FAQ ranking: [`Knowledge`], [`FaqEntry`], [`Thresholds`]),
//!   [`store`] ([`ConversationStore`], [`MemoryStore`]),
//!   [`handoff`] ([`HandoffQueue`], [`MemoryQueue`]),
//!   [`orders`] ([`Orders`], [`MemoryOrders`]),
//!   [`tickets`] ([`Tickets`], [`MemoryTickets`]), [`audit`] ([`AuditLog`], [`MemoryAudit`]),
//!   [`attempts`] (limited tries counted atomically in the store: [`Attempts`],
//!   [`MemoryAttempts`]), [`outbox`] ([`Outbox`], [`MemoryOutbox`]), [`channel`]
//!   ([`Channel`], [`Channels`]).
//! - `testing` (feature `testing`): scripted channels and the outbox conformance suite for
//!   store implementers.
//!   The `kefu-sql` crate implements the storage ports on SQLite and PostgreSQL.
//! - [`flows`]: multi-turn tasks, one file each: card keys, delivery status, ticket progress,
//!   refunds, cancellations — for the proven buyer only — and the satisfaction survey (a
//!   [`flows::Flow`], registered in one line).
//! - [`entities`]: order numbers, ticket numbers, e-mail and phone by configurable regexes.
//! - [`replies`]: what the bot itself says, in Chinese and English.
//! - [`locale`]: [`Locale`] and telling a message's language; [`template`]: `{variable}`s;
//!   [`hours`]: support hours (outside them a hand-off becomes a ticket); [`similar`]: the edit
//!   distance behind every "did you mean".
//!
//! kefu-core depends on no search engine, database or chat platform; adapters implement its
//! ports, and the `kefu-knowledge` crate implements [`Knowledge`].
//!
//! # Example
//!
//! ```
//! use kefu_core::{Answers, ConversationKey, Engine, FaqEntry, Inbound, Knowledge, Ranking};
//! use kefu_core::{Candidate, OutboundKind};
//! use std::sync::Arc;
//!
//! /// A one-entry "knowledge base" that recognises one word.
//! struct Hours(FaqEntry);
//!
//! impl Knowledge for Hours {
//!     fn rank(&self, query: &str, _limit: usize) -> Ranking {
//!         let confidence = if query.contains("hours") { 0.9 } else { 0.0 };
//!         let candidates = vec![Candidate {
//!             id: self.0.id.clone(),
//!             score: confidence,
//!             confidence,
//!             matched_question: self.0.questions[0].clone(),
//!         }];
//!         Ranking { candidates }
//!     }
//!     fn entry(&self, id: &str) -> Option<&FaqEntry> {
//!         (id == self.0.id).then_some(&self.0)
//!     }
//! }
//!
//! # tokio_test_runtime(async {
//! let answer = Answers { zh: "9点到24点".into(), en: "9:00 to 24:00".into() };
//! let entry = FaqEntry::new("service.hours", ["what are your hours"], answer);
//! let engine = Engine::builder(Arc::new(Hours(entry))).build();
//! let chat = ConversationKey::new("cli", "alice");
//! let replies = engine
//!     .handle(Inbound::new(chat.clone(), "alice", "m1", "what are your hours?"))
//!     .await
//!     .unwrap();
//! assert_eq!(replies[0].text, "9:00 to 24:00");
//! assert_eq!(replies[0].kind, OutboundKind::Answer);
//!
//! // The same message delivered again gets no second reply.
//! let again = engine
//!     .handle(Inbound::new(chat, "alice", "m1", "what are your hours?"))
//!     .await
//!     .unwrap();
//! assert!(again.is_empty());
//! # });
//! # fn tokio_test_runtime(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

pub mod agents;
pub mod attempts;
pub mod audit;
pub mod channel;
pub mod conversation;
pub mod engine;
pub mod entities;
pub mod events;
pub mod flows;
pub mod handoff;
pub mod hours;
pub mod knowledge;
pub mod limit;
pub mod locale;
pub mod message;
pub mod orders;
pub mod outbox;
pub mod replies;
pub mod similar;
pub mod store;
pub mod template;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tickets;

pub use agents::{Agents, TicketChange, TransferTo};
pub use attempts::{Attempts, Counter, Limit, MemoryAttempts, Space, Taken};
pub use audit::{AuditEvent, AuditLog, MemoryAudit};
pub use channel::{Channel, Channels, SendError};
pub use conversation::{
    Conversation, HandoffReason, HandoffRequest, Holder, Rating, Speaker, TranscriptLine,
};
pub use engine::{Engine, EngineBuilder, EngineConfig, EngineError};
pub use events::{AgentAction, AgentEvent, EngineEvent, EngineEvents, RecordedEvents, TurnEvent};
pub use handoff::{HandoffQueue, Held, MemoryQueue, QueueError, Take};
pub use knowledge::{
    Action, Answers, Candidate, Decision, FaqEntry, Knowledge, Priority, Ranking, Thresholds,
    Titles,
};
pub use locale::Locale;
pub use message::{ConversationKey, Inbound, Outbound, OutboundKind, QuickReply};
pub use orders::{
    Buyer, MemoryOrder, MemoryOrders, Order, OrderChange, OrderStatus, Orders, OrdersError, Proof,
};
pub use outbox::{
    MemoryOutbox, Outbox, OutboxCounts, OutboxItem, OutboxState, OutboxWorker, RetryPolicy,
};
pub use store::{
    Committed, ConversationStore, KeyedLocks, MemoryStore, StoreError, TurnCommit, TurnLock,
    TurnStart,
};
pub use tickets::{
    MemoryTickets, NewTicket, Ticket, TicketEvent, TicketStatus, TicketUpdate, Tickets,
};
