//! Flows: multi-turn tasks an FAQ entry's `action` (or a command) starts, one file each.
//!
//! Each flow is a [`Flow`]: a file in this module implementing it, plus its line in `FLOWS`.
//! Nothing in the engine names a flow.
//!
//! A flow **with a slot** (an order or ticket number) is driven by the engine: it asks for the
//! slot ([`Flow::ask`]) until the conversation has one; a ticket number goes to
//! [`Flow::with_ticket`]; an order number is checked first — the asker must prove they bought
//! the order — and then the flow does its job with the order ([`Flow::proven`]: the card keys,
//! the delivery status, an offer to cancel or refund, the order's tickets). A change it offers
//! is made once the customer confirms it ([`Flow::confirmed`]). The engine's tools for all that
//! (proofs, the order system, tickets, the audit log) are an [`OrderStep`]'s methods.
//!
//! A flow **without a slot** talks for itself ([`Flow::start`], [`Flow::on_message`] through a
//! [`FlowContext`]), like the satisfaction survey.
//!
//! Without an order system connected through the `Orders` port, an order flow hands the
//! conversation to the entry's skill group with the number it collected, so the person starts
//! with the number in hand.

pub mod cancel_order;
pub mod card_key_lookup;
pub mod delivery_status;
pub mod refund_request;
pub mod survey;
pub mod ticket_progress;

pub use crate::engine::OrderStep;

use crate::conversation::{Conversation, Rating};
use crate::engine::EngineError;
use crate::entities::{ORDER_NO, TICKET_NO};
use crate::locale::Locale;
use crate::message::{OutboundKind, QuickReply};
use crate::orders::Order;
use crate::replies::Reply;
use crate::Action;
use async_trait::async_trait;
use std::collections::BTreeMap;

/// Every flow: one line each.
static FLOWS: &[&dyn Flow] = &[
    &card_key_lookup::CardKeyLookup,
    &delivery_status::DeliveryStatus,
    &ticket_progress::TicketProgress,
    &refund_request::RefundRequest,
    &cancel_order::CancelOrder,
    &survey::Survey,
];

/// The flow named `name` (as a conversation stores it while the flow runs).
pub fn registered(name: &str) -> Option<&'static dyn Flow> {
    FLOWS.iter().copied().find(|f| f.name() == name)
}

/// The flow an FAQ action starts; `None` for actions that are not flows (`handoff`).
pub fn for_action(action: Action) -> Option<&'static dyn Flow> {
    FLOWS.iter().copied().find(|f| f.action() == Some(action))
}

/// The value filling `flow`'s slot among `entities`, with its kind.
pub fn filled<'a>(
    flow: &dyn Flow,
    entities: &'a BTreeMap<String, String>,
) -> Option<(&'static str, &'a str)> {
    flow.slot()
        .iter()
        .find_map(|kind| entities.get(*kind).map(|v| (*kind, v.as_str())))
}

/// What the bot says when a slot of `kind` is filled and a person takes over.
pub fn noted(kind: &str) -> Reply {
    if kind == TICKET_NO {
        Reply::TicketNoted
    } else {
        Reply::OrderNoted
    }
}

/// A multi-turn task. Add one as a file in this module implementing it, plus its line in
/// `FLOWS`. Only [`Flow::name`] is required; what else a flow implements depends on whether it
/// has a slot (see the module docs).
#[async_trait]
pub trait Flow: Send + Sync {
    /// Its name, as stored in the conversation while it runs.
    fn name(&self) -> &'static str;

    /// The FAQ action that starts it; `None` for a flow started otherwise (the survey, by an
    /// agent closing the conversation).
    fn action(&self) -> Option<Action> {
        None
    }

    /// The entity kinds that fill its slot, in order of preference; empty for a flow that
    /// talks for itself.
    fn slot(&self) -> &'static [&'static str] {
        &[]
    }

    /// How it asks for its slot.
    fn ask(&self) -> Reply {
        Reply::AskOrderNo
    }

    /// Whether what it shows may only go to a private chat (the proof is not asked for in a
    /// group either).
    fn private_only(&self) -> bool {
        false
    }

    /// Asked before the slot is asked for: true when the flow could do its job without it
    /// (it said what it had to say and ends).
    async fn without_slot(&self, _cx: &mut OrderStep<'_>) -> Result<bool, EngineError> {
        Ok(false)
    }

    /// Its slot holds a ticket number. By default a person takes over with the number.
    async fn with_ticket(&self, cx: &mut OrderStep<'_>, number: &str) -> Result<(), EngineError> {
        cx.noted_for_person(TICKET_NO, number).await
    }

    /// The asker proved they bought `order`: the flow's job. By default: where it stands.
    async fn proven(&self, cx: &mut OrderStep<'_>, order: &Order) -> Result<(), EngineError> {
        cx.show_status(order);
        Ok(())
    }

    /// The customer confirmed the change the flow offered (`OrderStep::ask_confirmation`) for order
    /// `number`, and their proof still holds.
    async fn confirmed(&self, cx: &mut OrderStep<'_>, number: &str) -> Result<(), EngineError> {
        cx.noted_for_person(ORDER_NO, number).await
    }

    /// Starts a flow without a slot: its first words.
    fn start(&self, _cx: &mut FlowContext<'_>) {}

    /// One customer message while a flow without a slot runs (commands, "cancel" and requests
    /// for a person are handled before it).
    fn on_message(&self, _cx: &mut FlowContext<'_>, _text: &str) -> Step {
        Step::NotMine
    }
}

/// What the flow did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It goes on; the next message comes to it too.
    Continue,
    /// It is over.
    Done,
    /// The message is not for the flow: the flow ends, and the bot reads the message as it
    /// would outside it.
    NotMine,
}

/// What a [`Flow`] sees and does in one turn.
pub struct FlowContext<'a> {
    pub(crate) conversation: &'a mut Conversation,
    pub(crate) slots: &'a mut BTreeMap<String, String>,
    pub(crate) said: Vec<(String, OutboundKind, Vec<QuickReply>)>,
    pub(crate) rated: Option<Rating>,
    pub(crate) clear_question: bool,
    pub(crate) now: u64,
}

impl<'a> FlowContext<'a> {
    pub(crate) fn new(
        conversation: &'a mut Conversation,
        slots: &'a mut BTreeMap<String, String>,
        clear_question: bool,
        now: u64,
    ) -> Self {
        FlowContext {
            conversation,
            slots,
            said: Vec::new(),
            rated: None,
            clear_question,
            now,
        }
    }

    /// The conversation's language.
    pub fn locale(&self) -> Locale {
        self.conversation.locale
    }

    /// The flow's own values, kept between messages.
    pub fn slots(&mut self) -> &mut BTreeMap<String, String> {
        self.slots
    }

    /// Whether the message is a new matter the knowledge base handles with confidence — a
    /// question, or a problem that starts a task, not small talk — so a flow waiting for free
    /// text can let it through instead of swallowing it.
    pub fn is_clear_question(&self) -> bool {
        self.clear_question
    }

    /// Says `text` to the customer, with buttons.
    pub fn say(&mut self, text: impl Into<String>, kind: OutboundKind, buttons: Vec<QuickReply>) {
        self.said.push((text.into(), kind, buttons));
    }

    /// Records the customer's rating with the conversation (and reports it as an event).
    pub fn rate(&mut self, score: u8, agent: Option<String>) {
        let rating = Rating {
            score: score.clamp(1, 5),
            comment: None,
            agent,
            at: self.now,
        };
        self.conversation.ratings.push(rating.clone());
        self.rated = Some(rating);
    }

    /// Changes the score of the customer's last rating (they pressed another score).
    pub fn rescore(&mut self, score: u8) {
        if let Some(last) = self.conversation.ratings.last_mut() {
            last.score = score.clamp(1, 5);
        }
    }

    /// Adds the customer's comment to their last rating.
    pub fn comment(&mut self, text: &str) {
        if let Some(last) = self.conversation.ratings.last_mut() {
            last.comment = Some(text.trim().to_string());
        }
    }
}

const ORDER_SLOT: &[&str] = &[ORDER_NO];
