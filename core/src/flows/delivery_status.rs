//! Delivery status: where an order stands, in plain words, with the next step.
//!
//! Needs the order number and proof that the asker bought it (the engine's ownership check).
//! A failed delivery, or one past its promised time, offers a person.

use super::{Flow, OrderStep, ORDER_SLOT};
use crate::engine::EngineError;
use crate::orders::{Order, OrderStatus};
use crate::replies::Reply;
use crate::Action;
use async_trait::async_trait;

/// The delivery status.
pub struct DeliveryStatus;

#[async_trait]
impl Flow for DeliveryStatus {
    fn name(&self) -> &'static str {
        "delivery_status"
    }

    fn action(&self) -> Option<Action> {
        Some(Action::DeliveryStatus)
    }

    fn slot(&self) -> &'static [&'static str] {
        ORDER_SLOT
    }

    async fn proven(&self, cx: &mut OrderStep<'_>, order: &Order) -> Result<(), EngineError> {
        cx.show_status(order);
        Ok(())
    }
}

/// What to tell the customer about an order at `now` (ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReply {
    /// The message.
    pub reply: Reply,
    /// Minutes until the promised delivery (for `{minutes}` of [`Reply::ExpectedWithin`]).
    pub minutes_left: Option<u64>,
    /// Minutes past the promised delivery (`{late}`).
    pub minutes_late: Option<u64>,
    /// Whether a person should be offered (failed or late delivery).
    pub offer_person: bool,
}

/// The status message for `order` at `now`.
pub fn explain(order: &Order, now: u64) -> StatusReply {
    let pending = matches!(order.status, OrderStatus::Paid | OrderStatus::Delivering);
    let due = order.delivery_due_at.filter(|_| pending);
    if let Some(due) = due.filter(|due| *due < now) {
        return StatusReply {
            reply: Reply::StatusOverdue,
            minutes_left: None,
            minutes_late: Some((now - due).div_ceil(60_000)),
            offer_person: true,
        };
    }
    let reply = match order.status {
        OrderStatus::AwaitingPayment => Reply::StatusAwaitingPayment,
        OrderStatus::Paid => Reply::StatusPaid,
        OrderStatus::Delivering => Reply::StatusDelivering,
        OrderStatus::Delivered => Reply::StatusDelivered,
        OrderStatus::Failed => Reply::StatusFailed,
        OrderStatus::Refunded => Reply::StatusRefunded,
        OrderStatus::Cancelled => Reply::StatusCancelled,
    };
    StatusReply {
        reply,
        minutes_left: due.map(|due| (due - now).div_ceil(60_000).max(1)),
        minutes_late: None,
        offer_person: order.status == OrderStatus::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_and_failed_deliveries_offer_a_person() {
        let now = 10 * 60_000;
        let mut order = Order::new("1", "Steam 100", OrderStatus::Paid);
        order.delivery_due_at = Some(now + 5 * 60_000);
        let on_time = explain(&order, now);
        assert_eq!(on_time.reply, Reply::StatusPaid);
        assert_eq!(on_time.minutes_left, Some(5));
        assert!(!on_time.offer_person);
        order.delivery_due_at = Some(now - 3 * 60_000);
        let late = explain(&order, now);
        assert_eq!(late.reply, Reply::StatusOverdue);
        assert_eq!(late.minutes_late, Some(3));
        assert!(late.offer_person);
        // A delivered order is never late.
        order.status = OrderStatus::Delivered;
        assert_eq!(explain(&order, now).reply, Reply::StatusDelivered);
        order.status = OrderStatus::Failed;
        assert!(explain(&order, now).offer_person);
    }
}
