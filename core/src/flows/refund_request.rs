//! Refund request: a refund for an order its verified buyer paid for.
//!
//! Needs the order number and proof that the asker bought it (the engine's ownership check).
//! A paid order that was not delivered, up to the shop's auto-approval amount, is refunded
//! at once after the customer confirms; anything else — a delivered order (a person must
//! judge whether its key was used), a larger amount, an order system that cannot refund —
//! becomes a ticket for the refund team, and the customer gets its number.

use super::{Flow, OrderStep, ORDER_SLOT};
use crate::engine::EngineError;
use crate::orders::{Order, OrderChange, OrderStatus, OrdersError};
use crate::replies::Reply;
use crate::Action;
use async_trait::async_trait;

/// Audit action of an order refunded at its buyer's request.
pub const REFUNDED: &str = "order.refunded";

/// The refund request.
pub struct RefundRequest;

#[async_trait]
impl Flow for RefundRequest {
    fn name(&self) -> &'static str {
        "refund_request"
    }

    fn action(&self) -> Option<Action> {
        Some(Action::RefundRequest)
    }

    fn slot(&self) -> &'static [&'static str] {
        ORDER_SLOT
    }

    async fn proven(&self, cx: &mut OrderStep<'_>, order: &Order) -> Result<(), EngineError> {
        let path = decide(order, cx.config().refund_auto_approve_cents);
        match path {
            RefundPath::NothingPaid => {
                let text = cx.order_text(Reply::RefundNothingPaid, order, []);
                cx.push(text, crate::OutboundKind::Answer, Vec::new());
                return Ok(());
            }
            RefundPath::AlreadyRefunded => {
                cx.show_status(order);
                return Ok(());
            }
            RefundPath::AutoApprove | RefundPath::Review(_) => {}
        }
        if cx.open_ticket_of(order, "refund").await? {
            return Ok(());
        }
        match path {
            RefundPath::AutoApprove => {
                cx.ask_confirmation(self, order, Reply::RefundConfirm);
                Ok(())
            }
            RefundPath::Review(why) => {
                if order.status == OrderStatus::Delivered {
                    cx.say(Reply::RefundDeliveredNote);
                }
                cx.refund_ticket(order, why).await
            }
            RefundPath::NothingPaid | RefundPath::AlreadyRefunded => Ok(()),
        }
    }

    async fn confirmed(&self, cx: &mut OrderStep<'_>, number: &str) -> Result<(), EngineError> {
        // One key for this refund, whatever happens to the turn: run again, it refunds
        // nothing twice.
        let key = cx.effect_key("refund", number);
        let request = cx.request().to_string();
        let order = match cx.orders().refund(number, &request, &key).await {
            Ok(OrderChange::Done(order)) => order,
            Ok(OrderChange::NotAllowed(status)) => {
                tracing::info!(conversation = %cx.key(), status = status.as_str(), "the order changed before the confirmed refund");
                return cx.changed_meanwhile(number).await;
            }
            Err(OrdersError::Unsupported(what)) => {
                tracing::info!(conversation = %cx.key(), what, "the order system cannot refund; opening a ticket");
                let Some(order) = cx.find_or_down(number).await? else {
                    return Ok(());
                };
                return cx
                    .refund_ticket(&order, "the order system cannot refund")
                    .await;
            }
            Err(e) => return cx.orders_down(number, e).await,
        };
        let amount = money(order.amount_cents, &order.currency);
        cx.audit(
            REFUNDED,
            number,
            format!("{amount}, approved automatically"),
            key,
        )
        .await?;
        tracing::info!(conversation = %cx.key(), "order refunded automatically");
        // A resolved ticket is the refund's record, for the customer and the refund team.
        let description = format!(
            "Refunded {amount} for undelivered order {number} ({}) automatically, within the auto-approval limit. Customer wrote: {request}",
            order.product
        );
        let group = cx.config().refund_skill_group.clone();
        let ticket = cx.open_ticket("refund", number, description, group).await?;
        let ticket = cx
            .resolve_ticket(ticket, format!("refunded {amount} automatically"))
            .await?;
        cx.say_ticket(Reply::RefundDone, &order, &ticket);
        Ok(())
    }
}

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
