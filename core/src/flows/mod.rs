//! Flows: multi-turn tasks an FAQ entry's `action` (or a command) starts, one file each.
//!
//! A flow collects the slot it needs (an order or ticket number, asked for if the
//! conversation has none yet); a flow about an order then has the engine check that the asker
//! bought it, and finishes by showing or changing it: the card keys, the delivery status, a
//! cancellation or refund (confirmed first), the order's tickets. Each file holds the flow's
//! specification and its decisions; the engine does the talking.
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

use crate::conversation::{Conversation, Rating};
use crate::entities::{ORDER_NO, TICKET_NO};
use crate::locale::Locale;
use crate::message::{OutboundKind, QuickReply};
use crate::replies::Reply;
use crate::Action;
use std::collections::BTreeMap;

/// The flows that do their own talking, by name: one line per flow.
static FLOWS: &[&dyn Flow] = &[
    &survey::Survey, //
];

/// The registered [`Flow`] named `name`.
pub fn registered(name: &str) -> Option<&'static dyn Flow> {
    FLOWS.iter().copied().find(|f| f.name() == name)
}

/// A flow that does its own talking: it says what it says through a [`FlowContext`] and keeps
/// its progress in its slots. Add one as a file in this module implementing it, plus its line
/// in `FLOWS`.
pub trait Flow: Send + Sync {
    /// Its name, as stored in the conversation while it runs.
    fn name(&self) -> &'static str;

    /// Starts the flow: its first words.
    fn start(&self, cx: &mut FlowContext<'_>);

    /// One customer message while the flow runs (commands, "cancel" and requests for a
    /// person are handled before it).
    fn on_message(&self, cx: &mut FlowContext<'_>, text: &str) -> Step;
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

    /// Adds the customer's comment to their last rating.
    pub fn comment(&mut self, text: &str) {
        if let Some(last) = self.conversation.ratings.last_mut() {
            last.comment = Some(text.trim().to_string());
        }
    }
}

/// What a flow needs and says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSpec {
    /// The flow's name (its FAQ action).
    pub name: &'static str,
    /// Entity kinds that fill its slot, in order of preference.
    pub slot: &'static [&'static str],
    /// How it asks for the slot.
    pub ask: Reply,
    /// Whether it shows or changes an order, so the asker must prove they bought it (with an
    /// order system connected; without one the flow hands off with the number).
    pub needs_owner: bool,
    /// What it does once it has its slot (and, for an order, the proof).
    pub goal: Goal,
}

/// What an order flow does once the buyer is proven: the engine's step for each, chosen by
/// this rather than by the flow's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Shows the order's card keys (in private chats only).
    CardKeys,
    /// Says where the order's delivery stands.
    DeliveryStatus,
    /// Shows a ticket's progress, or the order's tickets.
    Tickets,
    /// Offers to cancel the order.
    Cancel,
    /// Offers to refund the order.
    Refund,
}

impl Goal {
    /// Whether what it shows may only go to a private chat.
    pub fn private_only(self) -> bool {
        self == Goal::CardKeys
    }
}

impl FlowSpec {
    /// The value filling the slot among `entities`, with its kind.
    pub fn filled<'a>(
        &self,
        entities: &'a std::collections::BTreeMap<String, String>,
    ) -> Option<(&'static str, &'a str)> {
        self.slot
            .iter()
            .find_map(|kind| entities.get(*kind).map(|v| (*kind, v.as_str())))
    }

    /// What the bot says when the slot is filled and a person takes over.
    pub fn noted(kind: &str) -> Reply {
        if kind == TICKET_NO {
            Reply::TicketNoted
        } else {
            Reply::OrderNoted
        }
    }
}

/// The flow an action starts; `None` for actions that are not flows (`handoff`).
pub fn spec(action: Action) -> Option<FlowSpec> {
    match action {
        Action::CardKeyLookup => Some(card_key_lookup::SPEC),
        Action::DeliveryStatus => Some(delivery_status::SPEC),
        Action::TicketProgress => Some(ticket_progress::SPEC),
        Action::RefundRequest => Some(refund_request::SPEC),
        Action::CancelOrder => Some(cancel_order::SPEC),
        Action::Handoff => None,
    }
}

/// The flow with this name.
pub fn by_name(name: &str) -> Option<FlowSpec> {
    Action::ALL
        .into_iter()
        .filter_map(spec)
        .find(|s| s.name == name)
}

const ORDER_SLOT: &[&str] = &[ORDER_NO];
