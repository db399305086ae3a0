//! Refund request: a refund for an order its verified buyer paid for.
//!
//! Needs the order number and proof that the asker bought it (the engine's ownership check).
//! A paid order that was not delivered, up to the shop's auto-approval amount, is refunded
//! at once after the customer confirms; anything else — a delivered order (a person must
//! judge whether its key was used), a larger amount, an order system that cannot refund —
//! becomes a ticket for the refund team, and the customer gets its number.

use super::{FlowSpec, Goal, ORDER_SLOT};
use crate::orders::{Order, OrderStatus};
use crate::replies::Reply;

/// The flow's specification.
pub const SPEC: FlowSpec = FlowSpec {
    name: "refund_request",
    slot: ORDER_SLOT,
    ask: Reply::AskOrderNo,
    needs_owner: true,
    goal: Goal::Refund,
};

/// What a refund request for an order comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundPath {
    /// Refund at once once the customer confirms.
    AutoApprove,
    /// A ticket for the refund team; why (for its description).
    Review(&'static str),
    /// Nothing was paid (awaiting payment, cancelled): nothing to refund.
    NothingPaid,
    /// Refunded already.
    AlreadyRefunded,
}

/// The path of a refund of `order` with the shop's auto-approval limit (0: never automatic).
pub fn decide(order: &Order, auto_approve_cents: i64) -> RefundPath {
    match order.status {
        OrderStatus::AwaitingPayment | OrderStatus::Cancelled => RefundPath::NothingPaid,
        OrderStatus::Refunded => RefundPath::AlreadyRefunded,
        OrderStatus::Delivered => RefundPath::Review("the order was delivered"),
        status if status.is_undelivered() => {
            if auto_approve_cents > 0 && order.amount_cents <= auto_approve_cents {
                RefundPath::AutoApprove
            } else {
                RefundPath::Review("the amount is above the auto-approval limit")
            }
        }
        _ => RefundPath::Review("the order's state needs a person"),
    }
}

/// An amount for people: `¥50.00`, `$5.00`, `12.50 EUR`.
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    let number = format!("{}.{:02}", abs / 100, abs % 100);
    match currency.to_ascii_uppercase().as_str() {
        "CNY" | "RMB" => format!("{sign}¥{number}"),
        "USD" => format!("{sign}${number}"),
        other => format!("{sign}{number} {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_undelivered_refunds_are_automatic() {
        let mut order = Order::new("1", "Steam 100", OrderStatus::Paid);
        order.amount_cents = 5_000;
        assert_eq!(decide(&order, 5_000), RefundPath::AutoApprove);
        assert!(matches!(decide(&order, 4_999), RefundPath::Review(_)));
        assert!(matches!(decide(&order, 0), RefundPath::Review(_)));
        order.status = OrderStatus::Failed;
        assert_eq!(decide(&order, 10_000), RefundPath::AutoApprove);
        order.status = OrderStatus::Delivered;
        assert!(matches!(decide(&order, 10_000), RefundPath::Review(_)));
        order.status = OrderStatus::AwaitingPayment;
        assert_eq!(decide(&order, 10_000), RefundPath::NothingPaid);
        order.status = OrderStatus::Refunded;
        assert_eq!(decide(&order, 10_000), RefundPath::AlreadyRefunded);
    }

    #[test]
    fn amounts_read_as_money() {
        assert_eq!(money(5_000, "CNY"), "¥50.00");
        assert_eq!(money(505, "usd"), "$5.05");
        assert_eq!(money(1_250, "EUR"), "12.50 EUR");
        assert_eq!(money(-7, "CNY"), "-¥0.07");
    }
}
