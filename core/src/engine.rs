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
//!    starting the entry's flow or handing off when the entry says so; two misses in a row
//!    hand off too;
//! 5. commit the new state and the turn's transcript lines in one store call. Should the
//!    conversation have changed since it was loaded (a lost lock), the turn is run again on
//!    the new state; replies are returned only once their turn is committed.

mod dialogue;
mod ownership;
mod self_service;

pub use ownership::MAX_PROOFS_PER_MESSAGE;
pub use self_service::{CANCELLED, KEYS_REVEALED, REFUNDED};

use crate::attempts::Attempts;
use crate::audit::AuditLog;
use crate::conversation::{
    now_millis, Conversation, FlowState, HandoffReason, HandoffRequest, Holder, Speaker,
    TranscriptLine,
};
use crate::entities::{EntityExtractor, ORDER_NO, TICKET_NO};
use crate::events::{EngineEvent, EngineEvents, TurnEvent};
use crate::flows::{self, Flow, FlowContext, FlowSpec, Step};
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
    /// The conversation kept changing under the turn although its lock was held (is the
    /// store's lock working?); nothing was done, so the message can be delivered again.
    #[error("conversation {0} kept changing during its turn (is its lock working?); deliver the message again")]
    Conflict(ConversationKey),
}

/// How the engine behaves; every field has a sensible default.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// The answer / suggest / decline bands.
    pub thresholds: Thresholds,
    /// Template variables filled into answers and the bot's own messages.
    pub variables: BTreeMap<String, String>,
    /// The language of a conversation whose first message tells none (digits only, say).
    pub default_locale: Locale,
    /// The skill group of hand-offs that no FAQ entry names.
    pub default_skill_group: String,
    /// Turns in a row without an answer before the conversation goes to a person.
    pub max_misses: u32,
    /// Times a flow asks again for its slot before a person takes over.
    pub max_reprompts: u32,
    /// How many candidates a "did you mean" offers.
    pub suggestions: usize,
    /// How many transcript lines a hand-off request carries.
    pub handoff_context: usize,
    /// How long a customer's proof of owning an order holds in the conversation (ms).
    pub verification_ttl_ms: u64,
    /// Failed proofs within [`EngineConfig::failed_proof_window_ms`], for one user or one
    /// order, after which lookups stop and the risk group takes over.
    pub max_failed_proofs: usize,
    /// The window failed proofs are counted in (ms). The SQL stores keep attempts for 7
    /// days, so longer windows count only the last 7 days.
    pub failed_proof_window_ms: u64,
    /// The skill group that handles suspicious lookups.
    pub risk_skill_group: String,
    /// Whether a buyer who proves an order with a secret in a private chat gets their chat
    /// identity linked to it (when it has none), so that account needs no proof again.
    pub link_identity_on_proof: bool,
    /// How many times in 24 hours an order's card keys are shown to its buyer (the first
    /// time and resends together) before a person must check; 0 for no limit.
    pub max_key_views_per_day: usize,
    /// Whether a verified buyer may cancel an unpaid order themselves (otherwise the request
    /// becomes a ticket).
    pub self_cancel: bool,
    /// Refunds of undelivered orders up to this amount (smallest currency unit) are made at
    /// once; larger ones, and every delivered order's, become tickets. 0: never automatic.
    pub refund_auto_approve_cents: i64,
    /// The skill group of refund tickets.
    pub refund_skill_group: String,
    /// How long a team has for a ticket the bot opens (ms).
    pub ticket_sla_ms: u64,
    /// The shop's time zone, as minutes from UTC (480 for China), for times shown to
    /// customers.
    pub utc_offset_minutes: i32,
    /// When people answer hand-offs, in the shop's time zone ([`Self::utc_offset_minutes`]);
    /// outside them a hand-off opens a ticket and says when people are back. `None`: always.
    pub support_hours: Option<SupportHours>,
    /// Whether a customer waiting for a person still gets the bot's answer to a clear FAQ
    /// question (their message goes to the person either way).
    pub answer_while_queued: bool,
    /// The longest message, in characters, the bot reads. A longer one gets a polite request
    /// to send it shorter, is not ranked, and only its beginning is kept in the transcript.
    pub max_message_chars: usize,
    /// Whether closing a conversation ([`crate::Agents::close`]) asks the customer to rate
    /// the help they got (the satisfaction survey flow).
    pub survey_on_close: bool,
    /// How long a turn waits for its conversation's lock (ms) before it gives up with
    /// [`EngineError::Busy`], so a stuck conversation cannot stall the messages queued
    /// behind it for ever.
    pub turn_lock_wait_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            thresholds: Thresholds::default(),
            variables: BTreeMap::new(),
            default_locale: Locale::Zh,
            default_skill_group: "general".to_string(),
            max_misses: 2,
            max_reprompts: 2,
            suggestions: 3,
            handoff_context: 50,
            verification_ttl_ms: 30 * 60 * 1000,
            max_failed_proofs: 5,
            failed_proof_window_ms: 60 * 60 * 1000,
            risk_skill_group: "risk".to_string(),
            link_identity_on_proof: true,
            max_key_views_per_day: 5,
            self_cancel: true,
            refund_auto_approve_cents: 0,
            refund_skill_group: "refunds".to_string(),
            ticket_sla_ms: 24 * 60 * 60 * 1000,
            utc_offset_minutes: 480,
            max_message_chars: 4000,
            turn_lock_wait_ms: 30_000,
            support_hours: None,
            answer_while_queued: true,
            survey_on_close: true,
        }
    }
}

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

/// Whether the text has letters to tell a language by.
fn has_letters(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_alphabetic() && !c.is_ascii_digit())
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

    /// The behaviour settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Handles one customer message and returns the replies to send, in order. A message id
    /// seen before returns no replies.
    pub async fn handle(&self, message: Inbound) -> Result<Vec<Outbound>, EngineError> {
        let started = std::time::Instant::now();
        let inbound = &message;
        let (replies, events) = self
            .locked(&message.conversation, || {
                self.handle_locked(inbound, started)
            })
            .await?;
        for event in &events {
            self.emit(event);
        }
        Ok(replies)
    }

    /// Runs `attempt` under the conversation's turn lock until it commits: `Ok(None)` means
    /// the conversation changed since it was loaded, and the attempt runs again on the new
    /// state (a few times, with growing pauses), since the lock is what should prevent that.
    async fn locked<T, F>(
        &self,
        key: &ConversationKey,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, EngineError>
    where
        F: std::future::Future<Output = Result<Option<T>, EngineError>>,
    {
        let lock = self.lock(key).await?;
        let mut result = Ok(None);
        for round in 0..CONFLICT_RETRIES {
            if round > 0 {
                conflict_pause(round).await;
            }
            result = attempt().await;
            match &result {
                Ok(None) => {
                    tracing::debug!(conversation = %key, round, "conversation changed during the turn; running it again");
                }
                _ => break,
            }
        }
        release_lock(lock, key).await;
        result?.ok_or_else(|| EngineError::Conflict(key.clone()))
    }

    /// Tells every subscriber.
    pub(crate) fn emit(&self, event: &EngineEvent) {
        for subscriber in &self.events {
            subscriber.on_event(event);
        }
    }

    /// Waits for the conversation's turn lock, at most [`EngineConfig::turn_lock_wait_ms`].
    async fn lock(&self, key: &ConversationKey) -> Result<crate::store::TurnLock, EngineError> {
        let wait = std::time::Duration::from_millis(self.config.turn_lock_wait_ms.max(1));
        match tokio::time::timeout(wait, self.store.lock(key)).await {
            Ok(lock) => Ok(lock?),
            Err(_) => {
                tracing::warn!(conversation = %key, wait_ms = self.config.turn_lock_wait_ms, "gave up waiting for the conversation's lock");
                Err(EngineError::Busy(key.clone()))
            }
        }
    }

    /// The conversation's transcript, oldest first.
    pub async fn transcript(
        &self,
        key: &ConversationKey,
    ) -> Result<Vec<TranscriptLine>, EngineError> {
        Ok(self.store.transcript(key).await?)
    }

    /// The conversation's current state.
    pub async fn conversation(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<Conversation>, EngineError> {
        Ok(self.store.load(key).await?)
    }

    /// Changes who holds the conversation (`None`: nobody new), adds transcript lines and
    /// queues `outbox` messages for the customer, in one commit.
    pub(crate) async fn update_holder(
        &self,
        key: &ConversationKey,
        holder: Option<Holder>,
        lines: Vec<TranscriptLine>,
        outbox: Vec<Outbound>,
    ) -> Result<Conversation, EngineError> {
        self.change(key, |conversation| {
            if let Some(holder) = &holder {
                conversation.holder = holder.clone();
                conversation.misses = 0;
            }
            (lines.clone(), outbox.clone())
        })
        .await
    }

    /// Changes a conversation outside a customer's turn (agents, notices) in one commit under
    /// its lock: `mutate` changes the state and returns the transcript lines to add and the
    /// messages to queue for the customer. `mutate` runs again if the conversation changed
    /// meanwhile.
    pub(crate) async fn change(
        &self,
        key: &ConversationKey,
        mutate: impl Fn(&mut Conversation) -> (Vec<TranscriptLine>, Vec<Outbound>) + Sync,
    ) -> Result<Conversation, EngineError> {
        let mutate = &mutate;
        self.locked(key, || async move {
            let mut conversation = match self.store.load(key).await? {
                Some(c) => c,
                None => Conversation::new(key.clone(), "", self.config.default_locale),
            };
            let (lines, outbox) = mutate(&mut conversation);
            conversation.updated_at = now_millis();
            let committed = self
                .store
                .commit(TurnCommit {
                    conversation: conversation.clone(),
                    message_id: None,
                    lines,
                    outbox,
                })
                .await?;
            Ok(match committed {
                Committed::Conflict => None,
                Committed::Stored | Committed::Duplicate => Some(conversation),
            })
        })
        .await
    }

    /// Starts the registered flow `name` in `conversation` outside a customer's turn (an
    /// agent closing it starts the survey): sets it running with `slots` and returns what it
    /// says first, for the caller to record and queue. False when no such flow is registered.
    pub(crate) fn start_flow(
        &self,
        conversation: &mut Conversation,
        name: &str,
        mut slots: BTreeMap<String, String>,
    ) -> Vec<(String, OutboundKind, Vec<QuickReply>)> {
        let Some(flow) = flows::registered(name) else {
            return Vec::new();
        };
        let said = {
            let mut cx = FlowContext::new(conversation, &mut slots, false, now_millis());
            flow.start(&mut cx);
            cx.said
        };
        conversation.flow = Some(FlowState {
            name: name.to_string(),
            entry: String::new(),
            slots,
            reprompts: 0,
            awaiting_proof: false,
            awaiting_confirmation: false,
        });
        said
    }

    /// A message for a registered [`Flow`] in progress.
    async fn run_flow(
        &self,
        turn: &mut Turn,
        flow: &dyn Flow,
        mut state: FlowState,
        text: &str,
        found: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        turn.conversation.flow = None;
        if cancel_words().is_match(text) {
            self.say(turn, Reply::Cancelled, OutboundKind::Answer, &[]);
            return Ok(());
        }
        let ranking = self.rank(text, 1).await;
        let clear = self.config.thresholds.decide(ranking.confidence()) == Decision::Answer;
        let mut slots = std::mem::take(&mut state.slots);
        let (step, said, rated) = {
            let mut cx = FlowContext::new(&mut turn.conversation, &mut slots, clear, now_millis());
            let step = flow.on_message(&mut cx, text);
            (step, cx.said, cx.rated)
        };
        for (text, kind, buttons) in said {
            self.push(turn, text, kind, buttons);
        }
        if let Some(rating) = rated {
            tracing::info!(conversation = %turn.conversation.key, score = rating.score, "rated");
            turn.events.push(EngineEvent::Rated {
                conversation: turn.conversation.key.clone(),
                score: rating.score,
                agent: rating.agent,
            });
        }
        match step {
            Step::Continue => {
                state.slots = slots;
                turn.conversation.flow = Some(state);
                Ok(())
            }
            Step::Done => Ok(()),
            Step::NotMine => self.outside_flows(turn, text, found).await,
        }
    }

    /// One attempt at a turn under the lock; `None` when the conversation changed since it was
    /// loaded and the turn must run again.
    async fn handle_locked(
        &self,
        message: &Inbound,
        started: std::time::Instant,
    ) -> Result<Option<(Vec<Outbound>, Vec<EngineEvent>)>, EngineError> {
        let key = &message.conversation;
        let stored = match self.store.start_turn(key, &message.message_id).await? {
            TurnStart::Processed => {
                tracing::debug!(conversation = %key, message = %message.message_id, "duplicate delivery ignored");
                return Ok(Some((Vec::new(), Vec::new())));
            }
            TurnStart::Ready(stored) => stored,
        };
        let too_long = message.text.chars().count() > self.config.max_message_chars;
        // Nothing past the limit is read: not ranked, not searched for secrets or numbers.
        let text = if too_long { "" } else { message.text.trim() };
        let found = self.entities.extract(text);
        // Order numbers such as DD2024112300017 say nothing about the customer's language.
        let words = found
            .values()
            .fold(text.to_string(), |t, value| t.replace(value.as_str(), " "));
        // A command ("/cancel", "/human") says nothing about the customer's language either.
        let command = text.starts_with('/');
        let detected = (has_letters(&words) && !command).then(|| Locale::detect(&words));
        let conversation = match stored {
            Some(c) => c,
            None => {
                let locale = message
                    .locale
                    .or(detected)
                    .unwrap_or(self.config.default_locale);
                Conversation::new(key.clone(), &message.user, locale)
            }
        };
        let mut turn = Turn {
            conversation,
            out: Vec::new(),
            lines: vec![TranscriptLine {
                at: now_millis(),
                speaker: Speaker::Customer,
                message_id: Some(message.message_id.clone()),
                text: if too_long {
                    cut(&message.text, self.config.max_message_chars)
                } else {
                    message.text.clone()
                },
                decision: None,
                confidence: None,
                entry: None,
                kind: None,
            }],
            private: message.private,
            message_id: message.message_id.clone(),
            handoff: None,
            locked_out: false,
            events: Vec::new(),
        };
        let flow_before = turn.conversation.flow.as_ref().map(|f| f.name.clone());
        turn.conversation.user = message.user.clone();
        // A reply to "prove this order is yours" is a secret, not a sentence: it says nothing
        // about the language, and what looks like a number in it is not an order to remember.
        let proof_expected = turn
            .conversation
            .flow
            .as_ref()
            .is_some_and(|f| f.awaiting_proof);
        if !turn.conversation.locale_pinned && !proof_expected {
            if let Some(locale) = message.locale.or(detected) {
                turn.conversation.locale = locale;
            }
        }
        if !proof_expected {
            turn.conversation.entities.extend(found.clone());
        }

        if too_long {
            tracing::info!(conversation = %key, chars = message.text.chars().count(), "message too long; asked for a shorter one");
            if proof_expected {
                // It may hold a secret: keep none of it.
                turn.lines[0].text = Reply::ProofHidden.text(turn.locale()).to_string();
            }
            let values =
                BTreeMap::from([("max".to_string(), self.config.max_message_chars.to_string())]);
            let text = self.render(Reply::TooLong.text(turn.locale()), &values);
            self.push(&mut turn, text, OutboundKind::Answer, Vec::new());
        } else if turn.conversation.holder == Holder::Queue {
            self.while_queued(&mut turn, message, text).await?;
        } else if turn.conversation.holder != Holder::Bot {
            // A person is talking with the customer: the bot stays out of it.
            self.queue.relay(message).await?;
            tracing::debug!(conversation = %key, "relayed to the person holding it");
        } else {
            self.respond(&mut turn, text, &found).await?;
        }

        turn.conversation.updated_at = now_millis();
        let flow_after = turn.conversation.flow.as_ref().map(|f| f.name.clone());
        let first = &turn.lines[0];
        let mut event = TurnEvent {
            conversation: key.clone(),
            user: message.user.clone(),
            message_id: message.message_id.clone(),
            locale: turn.conversation.locale,
            decision: first.decision,
            entry: first.entry.clone(),
            confidence: first.confidence,
            latency: std::time::Duration::ZERO,
            replies: turn.out.len(),
            handoff: turn.handoff,
            flow_started: flow_after.clone().filter(|_| flow_after != flow_before),
            flow_finished: flow_before.clone().filter(|_| flow_after != flow_before),
            locked_out: turn.locked_out,
            holder: turn.conversation.holder.clone(),
        };
        let replies = turn.out;
        let extra = turn.events;
        let committed = self
            .store
            .commit(TurnCommit {
                conversation: turn.conversation,
                message_id: Some(message.message_id.clone()),
                lines: turn.lines,
                outbox: Vec::new(),
            })
            .await?;
        event.latency = started.elapsed();
        Ok(match committed {
            Committed::Stored => {
                let mut events = vec![EngineEvent::Turn(event)];
                events.extend(extra);
                Some((replies, events))
            }
            Committed::Duplicate => Some((Vec::new(), Vec::new())),
            Committed::Conflict => None,
        })
    }

    async fn respond(
        &self,
        turn: &mut Turn,
        text: &str,
        found: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        if let Some(command) = text.strip_prefix('/') {
            if self.command(turn, command).await? {
                return Ok(());
            }
        }
        if explicit_human().is_match(text) {
            return self.hand_off(turn, HandoffReason::Requested, None).await;
        }
        if let Some(id) = self.chosen_offer(turn, text) {
            return self.choose(turn, &id).await;
        }
        if !turn.conversation.offered.is_empty() && is_choice_number(text) {
            // "5" after three choices: the choices again, not a miss.
            self.reoffer(turn);
            return Ok(());
        }
        turn.conversation.offered.clear();
        if let Some(state) = turn.conversation.flow.clone() {
            if let Some(flow) = flows::registered(&state.name) {
                return self.run_flow(turn, flow, state, text, found).await;
            }
            return self.continue_flow(turn, state, text, found).await;
        }
        self.outside_flows(turn, text, found).await
    }

    /// A message no flow is waiting for.
    async fn outside_flows(
        &self,
        turn: &mut Turn,
        text: &str,
        found: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        if self.bare_number(turn, text, found).await? {
            return Ok(());
        }
        self.understand(turn, text).await
    }

    /// A slash command; false when it is not one of the bot's (then it is read as text).
    async fn command(&self, turn: &mut Turn, command: &str) -> Result<bool, EngineError> {
        let mut parts = command.split_whitespace();
        match parts.next().map(str::to_ascii_lowercase).as_deref() {
            Some("start") => {
                turn.conversation.flow = None;
                self.say(turn, Reply::Welcome, OutboundKind::Answer, &[]);
            }
            Some("help") => {
                turn.conversation.flow = None;
                self.say(turn, Reply::Help, OutboundKind::Answer, &[]);
            }
            Some("lang") => match parts.next().and_then(|l| l.parse::<Locale>().ok()) {
                Some(locale) => {
                    turn.conversation.locale = locale;
                    turn.conversation.locale_pinned = true;
                    self.say(turn, Reply::LanguageSet, OutboundKind::Answer, &[]);
                }
                None => self.say(turn, Reply::LanguageUnknown, OutboundKind::Question, &[]),
            },
            Some("cancel") => {
                turn.conversation.flow = None;
                turn.conversation.offered.clear();
                self.say(turn, Reply::Cancelled, OutboundKind::Answer, &[]);
            }
            Some(name @ ("ticket" | "refund")) => {
                let number = parts.next().map(str::to_string);
                self.order_command(turn, name, number).await?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The customer picked one of the offered choices.
    async fn choose(&self, turn: &mut Turn, id: &str) -> Result<(), EngineError> {
        turn.conversation.offered.clear();
        match id {
            dialogue::HUMAN_CHOICE => self.hand_off(turn, HandoffReason::Requested, None).await,
            dialogue::CONTINUE_CHOICE => {
                match turn
                    .conversation
                    .flow
                    .as_ref()
                    .and_then(|f| flows::by_name(&f.name))
                {
                    Some(spec) => self.ask_again(turn, &spec),
                    None => self.say(turn, Reply::Cancelled, OutboundKind::Answer, &[]),
                }
                Ok(())
            }
            id => {
                // Another question than the flow's: the flow gives way.
                turn.conversation.flow = None;
                self.answer_entry(turn, id, None).await
            }
        }
    }

    /// A numbered (or verbatim) choice among the suggestions of the previous reply.
    fn chosen_offer(&self, turn: &Turn, text: &str) -> Option<String> {
        let offered = &turn.conversation.offered;
        if offered.is_empty() {
            return None;
        }
        if let Ok(n) = text
            .trim_matches(|c: char| !c.is_ascii_digit())
            .parse::<usize>()
        {
            if text.chars().count() <= 3 && (1..=offered.len()).contains(&n) {
                return Some(offered[n - 1].clone());
            }
        }
        offered
            .iter()
            .find(|id| {
                self.knowledge
                    .entry(id)
                    .is_some_and(|e| title(e, turn.locale()) == text)
            })
            .cloned()
    }

    /// Ranks `text`; on a blocking thread when the knowledge port says it ranks slowly (and
    /// a tokio runtime is there to provide one), so other conversations go on meanwhile.
    async fn rank(&self, text: &str, limit: usize) -> Ranking {
        if !self.knowledge.ranks_slowly() || tokio::runtime::Handle::try_current().is_err() {
            return self.knowledge.rank(text, limit);
        }
        let knowledge = Arc::clone(&self.knowledge);
        let query = text.to_string();
        match tokio::task::spawn_blocking(move || knowledge.rank(&query, limit)).await {
            Ok(ranking) => ranking,
            Err(e) => match e.try_into_panic() {
                // As if it had panicked here.
                Ok(panic) => std::panic::resume_unwind(panic),
                // The runtime is shutting down: rank here instead.
                Err(_) => self.knowledge.rank(text, limit),
            },
        }
    }

    async fn understand(&self, turn: &mut Turn, text: &str) -> Result<(), EngineError> {
        let ranking = self.rank(text, self.config.suggestions.max(1)).await;
        let decision = self.config.thresholds.decide(ranking.confidence());
        self.note_understanding(turn, decision, ranking.top());
        match (decision, ranking.top()) {
            (Decision::Answer, Some(top)) => {
                let confidence = top.confidence;
                self.answer_entry(turn, &top.id.clone(), Some(confidence))
                    .await
            }
            (Decision::Suggest, Some(_)) => {
                // After repeated misses a person is one of the choices: offered, not forced.
                let mut ids: Vec<String> =
                    ranking.candidates.iter().map(|c| c.id.clone()).collect();
                if self.missed(turn) {
                    ids.push(dialogue::HUMAN_CHOICE.to_string());
                }
                let intro = Reply::SuggestIntro.text(turn.locale()).to_string();
                self.offer(turn, intro, ids);
                Ok(())
            }
            _ => {
                let reply = if self.missed(turn) {
                    Reply::OfferPerson
                } else {
                    Reply::Decline
                };
                let human = Reply::HumanButton.text(turn.locale());
                self.say(
                    turn,
                    reply,
                    OutboundKind::Answer,
                    &[QuickReply::new(human, human)],
                );
                Ok(())
            }
        }
    }

    /// Counts a turn without an answer; true when that makes [`EngineConfig::max_misses`] in a
    /// row (then a person is offered more plainly, and the count starts again).
    fn missed(&self, turn: &mut Turn) -> bool {
        turn.conversation.misses += 1;
        if turn.conversation.misses >= self.config.max_misses {
            turn.conversation.misses = 0;
            return true;
        }
        false
    }

    fn note_understanding(&self, turn: &mut Turn, decision: Decision, top: Option<&Candidate>) {
        let line = &mut turn.lines[0];
        line.decision = Some(decision);
        line.confidence = Some(top.map_or(0.0, |c| c.confidence));
        line.entry = top.map(|c| c.id.clone());
    }

    async fn answer_entry(
        &self,
        turn: &mut Turn,
        id: &str,
        confidence: Option<f32>,
    ) -> Result<(), EngineError> {
        let Some(entry) = self.knowledge.entry(id).cloned() else {
            return self
                .hand_off(turn, HandoffReason::NotUnderstood, None)
                .await;
        };
        if confidence.is_none() {
            // A chosen suggestion: the customer confirmed the entry.
            let line = &mut turn.lines[0];
            line.decision = Some(Decision::Answer);
            line.entry = Some(entry.id.clone());
        }
        turn.conversation.misses = 0;
        turn.conversation.offered.clear();
        let answer = self.render(entry.answer.get(turn.locale()), &BTreeMap::new());
        if entry.needs_person() {
            self.push(turn, answer, OutboundKind::Answer, Vec::new());
            return self
                .hand_off(turn, HandoffReason::NeedsPerson, Some(&entry))
                .await;
        }
        if let Some(spec) = entry.action.and_then(flows::spec) {
            self.push(turn, answer, OutboundKind::Answer, Vec::new());
            // What the customer asked, for the description of any ticket the flow opens.
            let request = turn.lines[0].text.clone();
            turn.conversation.flow = Some(FlowState {
                name: spec.name.to_string(),
                entry: entry.id.clone(),
                slots: BTreeMap::from([(REQUEST.to_string(), request)]),
                reprompts: 0,
                awaiting_proof: false,
                awaiting_confirmation: false,
            });
            let known = turn.conversation.entities.clone();
            return match spec.filled(&known) {
                Some((kind, value)) => self.finish_flow(turn, &spec, kind, value, &entry).await,
                None if spec.name == flows::ticket_progress::SPEC.name
                    && self.own_tickets(turn).await? =>
                {
                    turn.conversation.flow = None;
                    Ok(())
                }
                None => {
                    self.say(turn, spec.ask, OutboundKind::Question, &[]);
                    Ok(())
                }
            };
        }
        let buttons = entry
            .follow_ups
            .iter()
            .filter_map(|f| self.knowledge.entry(f))
            .map(|f| {
                // The button shows the title and sends a question that finds the entry.
                let question = f
                    .questions
                    .iter()
                    .find(|q| Locale::detect(q) == turn.locale())
                    .or_else(|| f.questions.first())
                    .cloned()
                    .unwrap_or_default();
                QuickReply::new(title(f, turn.locale()), question)
            })
            .collect();
        self.push(turn, answer, OutboundKind::Answer, buttons);
        Ok(())
    }

    async fn continue_flow(
        &self,
        turn: &mut Turn,
        mut flow: FlowState,
        text: &str,
        found: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let Some(spec) = flows::by_name(&flow.name) else {
            turn.conversation.flow = None;
            return self.understand(turn, text).await;
        };
        if cancel_words().is_match(text) {
            turn.conversation.flow = None;
            match flow
                .slots
                .get(ORDER_NO)
                .filter(|_| flow.awaiting_confirmation)
            {
                Some(number) => {
                    let number = number.clone();
                    self.say_about_order(turn, Reply::ChangeKept, &number, OutboundKind::Answer);
                }
                None => self.say(turn, Reply::Cancelled, OutboundKind::Answer, &[]),
            }
            return Ok(());
        }
        let entry = self.knowledge.entry(&flow.entry).cloned();
        if flow.awaiting_confirmation || flow.awaiting_proof {
            let Some(number) = flow.slots.get(ORDER_NO).cloned() else {
                turn.conversation.flow = None;
                return self.understand(turn, text).await;
            };
            return match (entry.as_ref(), self.orders.is_some()) {
                (Some(entry), true) if flow.awaiting_confirmation => {
                    self.continue_confirmation(turn, &spec, flow, text, entry)
                        .await
                }
                (Some(entry), true) => {
                    self.continue_proof(turn, &spec, flow, text, found, entry)
                        .await
                }
                // Stored mid-flow, then the engine restarted without an order system (or
                // without the entry): end the flow politely instead of failing every time.
                (entry, _) => {
                    self.order_flow_gone(turn, &flow, &number, entry, text)
                        .await
                }
            };
        }
        if let (Some((kind, value)), Some(entry)) = (spec.filled(found), entry.as_ref()) {
            return self.finish_flow(turn, &spec, kind, value, entry).await;
        }
        // Not the slot: a new question changes the topic, one that may be offers choices
        // (going on with the flow among them); anything else is asked again.
        if self.changed_topic(turn, &flow, text).await? {
            return Ok(());
        }
        if self.offer_in_flow(turn, &flow.entry, text).await? {
            return Ok(());
        }
        flow.reprompts += 1;
        if flow.reprompts > self.config.max_reprompts {
            turn.conversation.flow = None;
            return self
                .hand_off(turn, HandoffReason::FlowNeedsPerson, entry.as_ref())
                .await;
        }
        turn.conversation.flow = Some(flow);
        self.say(turn, Reply::Reprompt, OutboundKind::Question, &[]);
        Ok(())
    }

    /// If `text` is answered by an entry other than the one that started `flow`, leaves the
    /// flow and answers it (true); otherwise does nothing (false).
    async fn changed_topic(
        &self,
        turn: &mut Turn,
        flow: &FlowState,
        text: &str,
    ) -> Result<bool, EngineError> {
        let ranking = self.rank(text, 1).await;
        let decision = self.config.thresholds.decide(ranking.confidence());
        let Some(top) = ranking.top().filter(|top| top.id != flow.entry) else {
            return Ok(false);
        };
        if decision != Decision::Answer {
            return Ok(false);
        }
        tracing::debug!(conversation = %turn.conversation.key, from = %flow.name, to = %top.id, "topic changed mid-flow");
        turn.conversation.flow = None;
        self.note_understanding(turn, decision, Some(top));
        let confidence = top.confidence;
        self.answer_entry(turn, &top.id.clone(), Some(confidence))
            .await?;
        Ok(true)
    }

    async fn finish_flow(
        &self,
        turn: &mut Turn,
        spec: &FlowSpec,
        kind: &str,
        value: &str,
        entry: &FaqEntry,
    ) -> Result<(), EngineError> {
        let request = turn
            .conversation
            .flow
            .take()
            .and_then(|mut f| f.slots.remove(REQUEST));
        if kind == TICKET_NO && spec.name == flows::ticket_progress::SPEC.name {
            return self.ticket_by_number(turn, value).await;
        }
        if kind == ORDER_NO && self.orders.is_some() && spec.needs_owner {
            return self.order_flow(turn, spec, value, entry, request).await;
        }
        let values = BTreeMap::from([(kind.to_string(), value.to_string())]);
        let text = self.render(FlowSpec::noted(kind).text(turn.locale()), &values);
        self.push(turn, text, OutboundKind::Answer, Vec::new());
        tracing::info!(conversation = %turn.conversation.key, flow = spec.name, "flow collected its slot");
        self.hand_off(turn, HandoffReason::FlowNeedsPerson, Some(entry))
            .await
    }

    async fn hand_off(
        &self,
        turn: &mut Turn,
        reason: HandoffReason,
        entry: Option<&FaqEntry>,
    ) -> Result<(), EngineError> {
        let skill_group = entry.map_or_else(
            || self.config.default_skill_group.clone(),
            |e| self.group_of(e),
        );
        let priority = entry.and_then(|e| e.priority).unwrap_or(Priority::Normal);
        self.hand_off_to(turn, reason, entry, skill_group, priority)
            .await
    }

    async fn hand_off_to(
        &self,
        turn: &mut Turn,
        reason: HandoffReason,
        entry: Option<&FaqEntry>,
        skill_group: String,
        priority: Priority,
    ) -> Result<(), EngineError> {
        turn.handoff = Some(reason);
        if self.off_hours() {
            return self
                .hand_off_to_ticket(turn, reason, entry, skill_group, priority)
                .await;
        }
        let key = turn.conversation.key.clone();
        let mut transcript = self.store.transcript(&key).await?;
        transcript.extend(turn.lines.iter().cloned());
        let skip = transcript.len().saturating_sub(self.config.handoff_context);
        let request = HandoffRequest {
            conversation: key.clone(),
            user: turn.conversation.user.clone(),
            skill_group: skill_group.clone(),
            priority,
            reason,
            entry: entry.map(|e| e.id.clone()),
            locale: turn.locale(),
            entities: turn.conversation.entities.clone(),
            transcript: transcript.into_iter().skip(skip).collect(),
            enqueued_at: now_millis(),
        };
        let position = self.queue.enqueue(request).await?;
        tracing::info!(conversation = %key, ?reason, skill_group, ?priority, "handed off");
        turn.conversation.holder = Holder::Queue;
        turn.conversation.flow = None;
        turn.conversation.offered.clear();
        turn.conversation.misses = 0;
        let values = BTreeMap::from([("position".to_string(), position.position.to_string())]);
        let text = self.render(Reply::HandedOff.text(turn.locale()), &values);
        self.push(turn, text, OutboundKind::Handoff, Vec::new());
        Ok(())
    }

    pub(crate) fn render(&self, text: &str, extra: &BTreeMap<String, String>) -> String {
        if extra.is_empty() {
            return template::render(text, &self.config.variables);
        }
        let mut vars = self.config.variables.clone();
        vars.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        template::render(text, &vars)
    }

    fn say(&self, turn: &mut Turn, reply: Reply, kind: OutboundKind, buttons: &[QuickReply]) {
        let text = self.render(reply.text(turn.locale()), &BTreeMap::new());
        self.push(turn, text, kind, buttons.to_vec());
    }

    fn push(&self, turn: &mut Turn, text: String, kind: OutboundKind, buttons: Vec<QuickReply>) {
        self.push_masked(turn, text.clone(), text, kind, buttons);
    }

    /// Sends `text` but keeps `recorded` in the transcript (which agents see): for replies
    /// carrying card keys.
    fn push_masked(
        &self,
        turn: &mut Turn,
        text: String,
        recorded: String,
        kind: OutboundKind,
        buttons: Vec<QuickReply>,
    ) {
        turn.lines.push(TranscriptLine {
            at: now_millis(),
            speaker: Speaker::Bot,
            message_id: None,
            text: recorded,
            decision: None,
            confidence: None,
            entry: None,
            kind: Some(kind),
        });
        turn.out.push(Outbound {
            conversation: turn.conversation.key.clone(),
            text,
            quick_replies: buttons,
            kind,
        });
    }
}

/// What buttons and lists call `entry` in `locale` (see [`FaqEntry::title`]).
pub fn title(entry: &FaqEntry, locale: Locale) -> String {
    entry.title(locale)
}
