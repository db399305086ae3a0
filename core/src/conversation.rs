//! A conversation's state and transcript.

use crate::locale::Locale;
use crate::message::{ConversationKey, OutboundKind, QuickReply};
use crate::{Decision, Priority};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Who is answering the conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "holder", content = "by")]
pub enum Holder {
    /// The bot answers.
    #[default]
    Bot,
    /// Waiting in the hand-off queue for a person.
    Queue,
    /// A human agent (by id) holds it.
    Agent(String),
}

/// A flow in progress and the slots it has collected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowState {
    /// The flow's name (the FAQ action that started it).
    pub name: String,
    /// The FAQ entry that started it.
    pub entry: String,
    /// Collected slot values by slot name.
    pub slots: BTreeMap<String, String>,
    /// How many times in a row the flow asked for its slot without getting it.
    pub reprompts: u32,
    /// The flow has its order number and waits for proof that the customer bought it.
    #[serde(default)]
    pub awaiting_proof: bool,
    /// The flow has proven its order and waits for the customer to confirm a change to it
    /// (a cancellation, a refund).
    #[serde(default)]
    pub awaiting_confirmation: bool,
}

/// What the engine keeps about one conversation between messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// Which conversation.
    pub key: ConversationKey,
    /// The customer's id on the channel (the last one who wrote, in groups).
    pub user: String,
    /// The language the bot answers in.
    pub locale: Locale,
    /// Whether the customer chose the language with `/lang` (then detection stops).
    pub locale_pinned: bool,
    /// Who answers.
    pub holder: Holder,
    /// The flow in progress, if any.
    pub flow: Option<FlowState>,
    /// Entities seen in this conversation by kind (`order_no`, `ticket_no`, `email`, `phone`).
    pub entities: BTreeMap<String, String>,
    /// Turns in a row the bot could not answer.
    pub misses: u32,
    /// FAQ ids offered as numbered choices in the last reply.
    pub offered: Vec<String>,
    /// Proofs of owning orders, by customer and order (`user` U+001F `order number`: in a
    /// group chat each customer proves their own), with when each expires (ms since the
    /// epoch).
    #[serde(default)]
    pub verified: BTreeMap<String, u64>,
    /// What the customer said of the help they got (satisfaction surveys), oldest first.
    #[serde(default)]
    pub ratings: Vec<Rating>,
    /// When it started (ms since the epoch).
    pub started_at: u64,
    /// When it last changed (ms since the epoch).
    pub updated_at: u64,
    /// How many turns have been committed (0 before the first); stores use it to detect a
    /// conversation changed by somebody else since it was loaded.
    #[serde(default)]
    pub version: u64,
}

impl Conversation {
    /// A new conversation with the bot.
    pub fn new(key: ConversationKey, user: impl Into<String>, locale: Locale) -> Self {
        let now = now_millis();
        Conversation {
            key,
            user: user.into(),
            locale,
            locale_pinned: false,
            holder: Holder::Bot,
            flow: None,
            entities: BTreeMap::new(),
            misses: 0,
            offered: Vec::new(),
            verified: BTreeMap::new(),
            ratings: Vec::new(),
            started_at: now,
            updated_at: now,
            version: 0,
        }
    }
}

/// A customer's rating of the help they got, from a satisfaction survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    /// 1 (very poor) to 5 (excellent).
    pub score: u8,
    /// What they added, if anything.
    #[serde(default)]
    pub comment: Option<String>,
    /// The agent who held the conversation, when a person helped.
    #[serde(default)]
    pub agent: Option<String>,
    /// When it was given (ms since the epoch).
    pub at: u64,
}

/// Who wrote a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    /// The customer.
    Customer,
    /// The bot.
    Bot,
    /// A human agent.
    Agent,
}

/// One message of a conversation's transcript, with what the bot decided about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptLine {
    /// When (ms since the epoch).
    pub at: u64,
    /// Who wrote it.
    pub speaker: Speaker,
    /// The platform's message id (customer lines).
    pub message_id: Option<String>,
    /// The text.
    pub text: String,
    /// For customer lines: what the bot decided.
    pub decision: Option<Decision>,
    /// For customer lines: the best candidate's confidence.
    pub confidence: Option<f32>,
    /// For customer lines: the best FAQ candidate.
    pub entry: Option<String>,
    /// For bot lines: what kind of reply it was.
    pub kind: Option<OutboundKind>,
    /// For bot lines: the buttons offered with it (so a page reloaded shows them again).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quick_replies: Vec<QuickReply>,
}

/// Why a conversation went to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoffReason {
    /// The customer asked for a person.
    Requested,
    /// The bot could not answer twice in a row.
    NotUnderstood,
    /// The FAQ entry says a person must handle it.
    NeedsPerson,
    /// A flow could not finish on its own (e.g. no order system is connected).
    FlowNeedsPerson,
    /// Too many failed attempts to prove an order's ownership: for the risk team.
    VerificationFailed,
    /// The order system could not be reached.
    OrdersUnavailable,
    /// An agent passed the conversation to another skill group.
    Transferred,
}

/// A request for a person, with everything they need so the customer repeats nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffRequest {
    /// The conversation.
    pub conversation: ConversationKey,
    /// The customer.
    pub user: String,
    /// Which team takes it.
    pub skill_group: String,
    /// How urgent it is.
    pub priority: Priority,
    /// Why.
    pub reason: HandoffReason,
    /// The FAQ entry that led here, if any.
    pub entry: Option<String>,
    /// The customer's language.
    pub locale: Locale,
    /// Entities known in the conversation (order number, e-mail, ...).
    pub entities: BTreeMap<String, String>,
    /// The conversation so far.
    pub transcript: Vec<TranscriptLine>,
    /// When it was queued (ms since the epoch).
    pub enqueued_at: u64,
    /// A VIP customer (repeat buyer or on the shop's list): served first, shown as such.
    #[serde(default)]
    pub vip: bool,
    /// When nobody had picked it up within the group's target and it was escalated.
    #[serde(default)]
    pub escalated_at: Option<u64>,
    /// The note an agent left with a transfer, for whoever takes it next (never shown to
    /// the customer).
    #[serde(default)]
    pub note: Option<String>,
}
