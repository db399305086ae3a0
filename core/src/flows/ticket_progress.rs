//! Ticket progress: where an after-sales ticket (or a refund) stands.
//!
//! Needs a ticket number, or an order number to find the customer's tickets by.

use super::FlowSpec;
use crate::entities::{ORDER_NO, TICKET_NO};
use crate::replies::Reply;

/// The flow's specification.
pub const SPEC: FlowSpec = FlowSpec {
    name: "ticket_progress",
    slot: &[TICKET_NO, ORDER_NO],
    ask: Reply::AskTicketNo,
    needs_owner: false,
};
