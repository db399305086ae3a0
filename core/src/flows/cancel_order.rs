//! Cancel order: cancelling an order its verified buyer no longer wants.
//!
//! Needs the order number and proof that the asker bought it. An unpaid order is cancelled
//! once the customer confirms (if the shop allows it; otherwise a ticket asks a person to). A
//! paid order that was not delivered yet can only be stopped by refunding it, so the request
//! becomes a refund request; a delivered order cannot be cancelled.

use super::refund_request::RefundRequest;
use super::{Flow, OrderStep, ORDER_SLOT};
use crate::engine::EngineError;
use crate::message::{OutboundKind, QuickReply};
use crate::orders::{Order, OrderChange, OrderStatus, OrdersError};
use crate::replies::Reply;
use crate::Action;
use async_trait::async_trait;

/// Audit action of an order its buyer cancelled.
pub const CANCELLED: &str = "order.cancelled";

/// The cancellation.
pub struct CancelOrder;

#[async_trait]
impl Flow for CancelOrder {
    fn name(&self) -> &'static str {
        "cancel_order"
    }

    fn action(&self) -> Option<Action> {
        Some(Action::CancelOrder)
    }

    fn slot(&self) -> &'static [&'static str] {
        ORDER_SLOT
    }

    async fn proven(&self, cx: &mut OrderStep<'_>, order: &Order) -> Result<(), EngineError> {
        match decide(order) {
            CancelPath::Cancel => {
                cx.ask_confirmation(self, order, Reply::CancelConfirm);
                Ok(())
            }
            CancelPath::Refund => {
                cx.say_about_order(Reply::CancelBecomesRefund, &order.number);
                RefundRequest.proven(cx, order).await
            }
            CancelPath::Delivered => {
                let text = cx.order_text(Reply::CancelDelivered, order, []);
                let refund = Reply::RefundButton.text(cx.locale());
                let human = Reply::HumanButton.text(cx.locale());
                let buttons = vec![
                    QuickReply::new(refund, format!("/refund {}", order.number)),
                    QuickReply::new(human, human),
                ];
                cx.push(text, OutboundKind::Answer, buttons);
                Ok(())
            }
            CancelPath::Closed => {
                cx.show_status(order);
                Ok(())
            }
        }
    }

    async fn confirmed(&self, cx: &mut OrderStep<'_>, number: &str) -> Result<(), EngineError> {
        // One key for this change, whatever happens to the turn: run again, it changes
        // nothing twice.
        let key = cx.effect_key("cancel", number);
        let result = if cx.config().self_cancel {
            cx.orders().cancel(number, &key).await
        } else {
            Err(OrdersError::Unsupported("cancelling orders"))
        };
        match result {
            Ok(OrderChange::Done(_)) => {
                cx.audit(CANCELLED, number, "by its buyer".to_string(), key)
                    .await?;
                tracing::info!(conversation = %cx.key(), "order cancelled by its buyer");
                cx.say_about_order(Reply::CancelDone, number);
                Ok(())
            }
            Ok(OrderChange::NotAllowed(status)) => {
                tracing::info!(conversation = %cx.key(), status = status.as_str(), "the order changed before the confirmed cancellation");
                cx.changed_meanwhile(number).await
            }
            Err(OrdersError::Unsupported(what)) => {
                tracing::info!(conversation = %cx.key(), what, "the order system cannot cancel; opening a ticket");
                let Some(order) = cx.find_or_down(number).await? else {
                    return Ok(());
                };
                let description = format!(
                    "The customer asked to cancel unpaid order {number} ({}); cancel it in the order system. Customer wrote: {}",
                    order.product,
                    cx.request()
                );
                let group = cx.group();
                cx.ticket_once("cancel", &order, description, group, Reply::TicketOpened)
                    .await
            }
            Err(e) => cx.orders_down(number, e).await,
        }
    }
}

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
