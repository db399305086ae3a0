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
pub mod ticket_progress;

use crate::entities::{ORDER_NO, TICKET_NO};
use crate::replies::Reply;
use crate::Action;

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
