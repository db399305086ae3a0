//! The dialogue engine: one customer message in, the bot's replies out.
//!
//! [`Engine::handle`] runs one turn:
//!
//! 1. take the conversation's turn lock from the store (messages of one conversation are
//!    handled one at a time, in order, across every process sharing the store) and
//!    de-duplicate by message id;
//! 2. load the conversation; if a person holds it, relay the message through the queue and
//!    say nothing;
//! 3. understand: language, entities, commands (`/start`, `/help`, `/lang`, `/human`,
//!    `/cancel`, `/ticket ORDER`, `/refund ORDER`), a numbered choice, an explicit request for
//!    a person;
//! 4. decide: continue the flow in progress (its slot, the proof of owning the order, the
//!    confirmation of a change), or rank the FAQ and answer / suggest / decline,
//!    starting the entry's flow or handing off when the entry says so; repeated misses
//!    offer a person;
//! 5. commit the new state and the turn's transcript lines in one store call. Should the
//!    conversation have changed since it was loaded (a lost lock), the turn is run again on
//!    the new state; replies are returned only once their turn is committed, and then every
//!    [`crate::EngineEvents`] subscriber hears of it.
//!
//! # Files, by job
//!
//! - `config.rs` ([`EngineConfig`]), `builder.rs` ([`EngineBuilder`]);
//! - `turn.rs`: the one lock / run / commit loop, for customer turns and for changes agents
//!   make;
//! - `understand.rs`: commands, numbered choices, ranking and the answer / suggest / decline
//!   policy; `dialogue.rs`: waiting for a person, choices, bare numbers, off-hours;
//! - `flow_steps.rs`: running flows; `ownership.rs`: proofs of owning an order; `order_step.rs`: a
//!   flow's tools ([`OrderStep`]); `self_service.rs`: confirmations, order commands and
//!   tickets;
//! - `handoff.rs`: the queue request; `say.rs`: what the bot says and its transcript lines.

mod builder;
mod config;
mod dialogue;
mod flow_steps;
mod handoff;
mod order_step;
mod ownership;
mod say;
mod self_service;
mod turn;
mod understand;

pub use builder::EngineBuilder;
pub use config::EngineConfig;
pub use order_step::OrderStep;

pub use crate::flows::cancel_order::CANCELLED;
pub use crate::flows::refund_request::REFUNDED;
pub use ownership::MAX_PROOFS_PER_MESSAGE;
pub use self_service::KEYS_REVEALED;

use crate::attempts::Attempts;
use crate::audit::AuditLog;
use crate::conversation::{
    now_millis, Conversation, FlowState, HandoffReason, HandoffRequest, Holder, Speaker,
    TranscriptLine,
};
use crate::entities::{EntityExtractor, ORDER_NO, TICKET_NO};
use crate::events::{EngineEvent, EngineEvents, TurnEvent};
use crate::flows::{self, Flow, FlowContext, Step};
use crate::handoff::{HandoffQueue, QueueError};
use crate::hours::SupportHours;
use crate::locale::Locale;
use crate::message::{ConversationKey, Inbound, Outbound, OutboundKind, QuickReply};
use crate::orders::{Orders, OrdersError};
use crate::replies::Reply;
use crate::store::{Committed, ConversationStore, StoreError, TurnCommit, TurnStart};
use crate::template;
use crate::tickets::Tickets;
use crate::{Candidate, Decision, FaqEntry, Knowledge, Priority, Ranking, Thresholds};
use regex::Regex;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// The slot keeping the customer's words that started a flow (a ticket's description).
const REQUEST: &str = "request";

/// How many times a turn is tried when its conversation keeps changing underneath it (only
/// when processes share a store without a cross-process lock, such as SQLite). Each conflict
/// means another turn of the conversation committed, so a turn gives up only if that many
/// others overtook it.
const CONFLICT_RETRIES: u32 = 12;

/// A short, growing, jittered pause before a turn is tried again, so racing processes
/// spread out instead of colliding again.
async fn conflict_pause(attempt: u32) {
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            % 1000,
    );
    let micros = 500 * u64::from(attempt.min(8)) + jitter * u64::from(attempt.min(8));
    tokio::time::sleep(std::time::Duration::from_micros(micros)).await;
}

/// Why a turn failed; nothing of it was committed, so the message can be delivered again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The conversation store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The hand-off queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The order system failed (in calls made for agents; customers' turns answer an order
    /// system failure with an apology and a ticket instead).
    #[error(transparent)]
    Orders(#[from] OrdersError),
    /// Another turn of the conversation held its lock longer than
    /// [`EngineConfig::turn_lock_wait_ms`]; nothing was done, so the message can be
    /// delivered again later.
    #[error("conversation {0} is busy with another message; deliver this one again later")]
    Busy(ConversationKey),
    /// An agent's message had no text; nothing was sent.
    #[error("the message is empty; write something to send")]
    EmptyMessage,
    /// Another agent owns the conversation (they answered it first, or it was transferred
    /// to them); nothing was done.
    #[error("{0} is looking after this conversation; ask them, or an admin, to transfer it")]
    HeldBy(String),
    /// An agent's action named a conversation that does not exist; nothing was done.
    #[error("there is no conversation {0}; check its channel and id")]
    NoConversation(ConversationKey),
    /// The conversation kept changing under the turn although its lock was held (is the
    /// store's lock working?); nothing was done, so the message can be delivered again.
    #[error("conversation {0} kept changing during its turn (is its lock working?); deliver the message again")]
    Conflict(ConversationKey),
}

/// The channel-agnostic support bot. Share it behind an `Arc`; `handle` may be called
/// concurrently for any conversations.
pub struct Engine {
    knowledge: Arc<dyn Knowledge>,
    pub(crate) store: Arc<dyn ConversationStore>,
    pub(crate) queue: Arc<dyn HandoffQueue>,
    pub(crate) orders: Option<Arc<dyn Orders>>,
    pub(crate) tickets: Arc<dyn Tickets>,
    pub(crate) audit: Arc<dyn AuditLog>,
    attempts: Arc<dyn Attempts>,
    entities: EntityExtractor,
    pub(crate) config: EngineConfig,
    events: Vec<Arc<dyn EngineEvents>>,
}

/// One turn in the making.
struct Turn {
    conversation: Conversation,
    out: Vec<Outbound>,
    lines: Vec<TranscriptLine>,
    /// Whether the message came from a private chat.
    private: bool,
    /// The platform's id of the message being answered.
    message_id: String,
    /// Why the conversation went to a person in this turn.
    handoff: Option<HandoffReason>,
    /// The skill group it went to.
    handoff_group: Option<String>,
    /// Whether this turn locked the customer out of order lookups.
    locked_out: bool,
    /// Events besides the turn's own, told once the turn is stored.
    events: Vec<EngineEvent>,
}

impl Turn {
    fn locale(&self) -> Locale {
        self.conversation.locale
    }

    /// The key of one side effect of this turn (a ticket, a refund, an attempt, an audit
    /// entry): the same each time the turn is run, so a turn run again after its conversation
    /// changed under it repeats none of them.
    fn effect_key(&self, kind: &str, subject: &str) -> String {
        let key = &self.conversation.key;
        let mut hash = Sha256::new();
        for part in [
            "kefu-effect-v1",
            &key.channel,
            &key.id,
            &self.message_id,
            kind,
            subject,
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
        hash.finalize()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

pub(super) fn explicit_human() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?ix)^\s*(?:
                /human | 人工 | 转人工 | 人工客服 | 找人工 | 真人 | 客服 | 转客服
              | human | agent | a\ human | real\ person | live\ agent | human\ agent
              | operator | talk\ to\ (?:a\ )?(?:human|person|agent)
            )\s*[!！.。?？~]*\s*$",
        )
        .expect("valid regex")
    })
}

fn cancel_words() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?ix)^\s*(?:/cancel | 取消 | 算了 | 不用了 | 不要了 | 退出 | cancel | never\s*mind | nvm | stop | forget\ it)\s*[!！.。~]*\s*$",
        )
        .expect("valid regex")
    })
}

/// Frees a turn lock; a failure is logged, since the turn itself is already committed and the
/// store frees a lost lock on its own.
async fn release_lock(lock: crate::store::TurnLock, key: &ConversationKey) {
    if let Err(e) = lock.release().await {
        tracing::warn!(conversation = %key, error = %e, "could not release the turn lock");
    }
}

/// The first `max` characters of `text`, and an ellipsis.
fn cut(text: &str, max: usize) -> String {
    let mut kept: String = text.chars().take(max).collect();
    kept.push('…');
    kept
}

/// A short number, as a reply to numbered choices is.
fn is_choice_number(text: &str) -> bool {
    let digits = text.trim_matches(|c: char| c.is_whitespace() || ".。、)）".contains(c));
    !digits.is_empty() && digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Whether the text tells its language: a Han character, or a Latin word of three letters or
/// more ("km", "cz", "ok" are shorthand any customer types).
fn says_language(text: &str) -> bool {
    text.chars().any(crate::locale::is_han)
        || text
            .split(|c: char| !c.is_ascii_alphabetic())
            .any(|word| word.len() >= 3)
}

impl Engine {
    /// The behaviour settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Tells every subscriber.
    pub(crate) fn emit(&self, event: &EngineEvent) {
        for subscriber in &self.events {
            subscriber.on_event(event);
        }
    }

    /// The conversation's transcript, oldest first.
    pub async fn transcript(
        &self,
        key: &ConversationKey,
    ) -> Result<Vec<TranscriptLine>, EngineError> {
        Ok(self.store.transcript(key).await?)
    }

    /// What the bot answered to message `message_id` of the conversation, as the transcript
    /// recorded it (card keys masked), with its buttons: how a channel answers a retried
    /// message, which [`Engine::handle`] ignores as already handled. Empty when the message
    /// is unknown or had no answer from the bot.
    pub async fn replies_to(
        &self,
        key: &ConversationKey,
        message_id: &str,
    ) -> Result<Vec<Outbound>, EngineError> {
        let lines = self.store.transcript(key).await?;
        Ok(lines
            .into_iter()
            .skip_while(|l| l.message_id.as_deref() != Some(message_id))
            .skip(1)
            .take_while(|l| l.speaker == crate::conversation::Speaker::Bot)
            .map(|l| Outbound {
                conversation: key.clone(),
                text: l.text,
                quick_replies: l.quick_replies,
                kind: l.kind.unwrap_or(OutboundKind::Answer),
            })
            .collect())
    }

    /// The conversation's current state.
    pub async fn conversation(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<Conversation>, EngineError> {
        Ok(self.store.load(key).await?)
    }
}

/// What buttons and lists call `entry` in `locale` (see [`FaqEntry::title`]).
pub fn title(entry: &FaqEntry, locale: Locale) -> String {
    entry.title(locale)
}
