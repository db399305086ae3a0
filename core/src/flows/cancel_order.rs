//! Cancel order: cancelling an order its verified buyer no longer wants.
//!
//! Needs the order number and proof that the asker bought it. An unpaid order is cancelled
//! once the customer confirms (if the shop allows it; otherwise a ticket asks a person to). A
//! paid order that was not delivered yet can only be stopped by refunding it, so the request
//! becomes a refund request; a delivered order cannot be cancelled.

use super::{FlowSpec, Goal, ORDER_SLOT};
use crate::orders::{Order, OrderStatus};
use crate::replies::Reply;

/// The flow's specification.
pub const SPEC: FlowSpec = FlowSpec {
    name: "cancel_order",
    slot: ORDER_SLOT,
    ask: Reply::AskOrderNo,
    needs_owner: true,
    goal: Goal::Cancel,
};

/// What a cancellation of an order comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelPath {
    /// Unpaid: cancel it once the customer confirms.
    Cancel,
    /// Paid, not delivered: a refund.
    Refund,
    /// Delivered: too late to cancel.
    Delivered,
    /// Cancelled or refunded already: say where it stands.
    Closed,
}

/// The path of a cancellation of `order`.
pub fn decide(order: &Order) -> CancelPath {
    match order.status {
        OrderStatus::AwaitingPayment => CancelPath::Cancel,
        OrderStatus::Delivered => CancelPath::Delivered,
        OrderStatus::Cancelled | OrderStatus::Refunded => CancelPath::Closed,
        _ => CancelPath::Refund,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unpaid_orders_are_cancelled_paid_ones_are_refunded() {
        let path = |status| decide(&Order::new("1", "x", status));
        assert_eq!(path(OrderStatus::AwaitingPayment), CancelPath::Cancel);
        assert_eq!(path(OrderStatus::Paid), CancelPath::Refund);
        assert_eq!(path(OrderStatus::Delivering), CancelPath::Refund);
        assert_eq!(path(OrderStatus::Failed), CancelPath::Refund);
        assert_eq!(path(OrderStatus::Delivered), CancelPath::Delivered);
        assert_eq!(path(OrderStatus::Cancelled), CancelPath::Closed);
        assert_eq!(path(OrderStatus::Refunded), CancelPath::Closed);
    }
}
