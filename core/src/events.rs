//! What the engine did, as typed events for metrics, the agents' console and tests: one
//! [`TurnEvent`] per committed customer turn and one [`AgentEvent`] per agent action.
//!
//! Subscribers implement [`EngineEvents`] and are added with
//! [`EngineBuilder::events`](crate::EngineBuilder::events). They are called after the change
//! is stored, on the task that made it, so they must be quick and must not block: count,
//! or hand the event to a channel ([`Broadcast`] does that with a tokio broadcast channel).
//! [`RecordedEvents`] keeps them all, for tests.

use crate::conversation::{HandoffReason, Holder};
use crate::knowledge::Decision;
use crate::locale::Locale;
use crate::message::ConversationKey;
use std::sync::Mutex;
use std::time::Duration;

/// One customer message the engine handled and stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnEvent {
    /// The conversation.
    pub conversation: ConversationKey,
    /// The customer's id on the channel.
    pub user: String,
    /// The platform's message id.
    pub message_id: String,
    /// The conversation's language after the turn.
    pub locale: Locale,
    /// Answer, suggest or decline, when the message was ranked against the knowledge base.
    pub decision: Option<Decision>,
    /// The FAQ entry answered or suggested first.
    pub entry: Option<String>,
    /// The top candidate's confidence, when ranked.
    pub confidence: Option<f32>,
    /// From receiving the message to storing the turn.
    pub latency: Duration,
    /// How many replies the turn returned.
    pub replies: usize,
    /// Why the conversation went to a person in this turn, if it did.
    pub handoff: Option<HandoffReason>,
    /// The skill group it went to.
    pub handoff_group: Option<String>,
    /// The flow that started in this turn.
    pub flow_started: Option<String>,
    /// The flow that ended in this turn (finished, cancelled or left).
    pub flow_finished: Option<String>,
    /// Whether this turn locked the customer out of order lookups (too many failed proofs).
    pub locked_out: bool,
    /// Who holds the conversation after the turn.
    pub holder: Holder,
}

/// What an agent did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentAction {
    /// Took the next waiting conversation of a skill group.
    Claimed,
    /// Took a conversation directly.
    Joined,
    /// Sent the customer a message.
    Message,
    /// Passed the conversation to another skill group.
    Transferred {
        /// The group it went to.
        skill_group: String,
    },
    /// Gave the conversation back to the bot without closing it.
    ReleasedToBot,
    /// Closed the conversation (a survey follows when enabled).
    Closed,
    /// Changed a ticket.
    TicketUpdated {
        /// The ticket.
        number: String,
        /// Its status afterwards.
        status: String,
    },
    /// Was shown an order's card keys (audited).
    KeysRevealed {
        /// The order.
        order: String,
    },
}

/// One agent action, after it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEvent {
    /// Which agent.
    pub agent: String,
    /// The conversation it concerned, when one.
    pub conversation: Option<ConversationKey>,
    /// What they did.
    pub action: AgentAction,
}

/// An event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EngineEvent {
    /// A customer turn.
    Turn(TurnEvent),
    /// An agent action.
    Agent(AgentEvent),
    /// A customer rated the help they got.
    Rated {
        /// The conversation.
        conversation: ConversationKey,
        /// 1 to 5.
        score: u8,
        /// The agent who held the conversation, if one did.
        agent: Option<String>,
    },
}

/// Sees every event. Called after the change is stored, on the task that made it: keep it
/// quick.
pub trait EngineEvents: Send + Sync {
    /// One event.
    fn on_event(&self, event: &EngineEvent);
}

/// Keeps every event, for tests.
#[derive(Debug, Default)]
pub struct RecordedEvents {
    events: Mutex<Vec<EngineEvent>>,
}

impl RecordedEvents {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events so far, oldest first.
    pub fn all(&self) -> Vec<EngineEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The turn events so far, oldest first.
    pub fn turns(&self) -> Vec<TurnEvent> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                EngineEvent::Turn(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    /// The agent events so far, oldest first.
    pub fn agent_actions(&self) -> Vec<AgentEvent> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                EngineEvent::Agent(a) => Some(a),
                _ => None,
            })
            .collect()
    }
}

impl EngineEvents for RecordedEvents {
    fn on_event(&self, event: &EngineEvent) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.clone());
    }
}

/// Passes events to a tokio broadcast channel: subscribers that fall behind lose the oldest
/// events (and are told how many), and the engine never waits for them.
#[derive(Debug, Clone)]
pub struct Broadcast {
    sender: tokio::sync::broadcast::Sender<EngineEvent>,
}

impl Broadcast {
    /// A channel keeping up to `capacity` events for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = tokio::sync::broadcast::channel(capacity.max(1));
        Broadcast { sender }
    }

    /// A new subscriber, seeing events from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<EngineEvent> {
        self.sender.subscribe()
    }
}

impl EngineEvents for Broadcast {
    fn on_event(&self, event: &EngineEvent) {
        // No subscriber right now is fine.
        let _ = self.sender.send(event.clone());
    }
}
