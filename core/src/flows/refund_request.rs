//! Refund request: opening a refund for an order.
//!
//! Needs the order number. Showing anything about the order requires verifying that the asker
//! owns it, which needs an order system; until one is connected the flow hands off with the number.

use super::{FlowSpec, ORDER_SLOT};
use crate::replies::Reply;

/// The flow's specification.
pub const SPEC: FlowSpec = FlowSpec {
    name: "refund_request",
    slot: ORDER_SLOT,
    ask: Reply::AskOrderNo,
    needs_owner: false,
};
