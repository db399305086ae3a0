//! The `Orders` port: the shop's orders, as the flows need them.
//!
//! Only the port is defined here; adapters implement it for the shop's own order system or
//! for kefu's embedded order tables. Without one, flows that need an order hand the
//! conversation to a person with the order number they collected.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created, not paid.
    AwaitingPayment,
    /// Paid, delivery not started.
    Paid,
    /// Being delivered (top-up in progress, key being issued).
    Delivering,
    /// Delivered.
    Delivered,
    /// Delivery failed.
    Failed,
    /// Refunded.
    Refunded,
}

/// An order, as much as the bot may know of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order number.
    pub number: String,
    /// What was bought.
    pub product: String,
    /// Where it stands.
    pub status: OrderStatus,
}

/// An order-system failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrdersError {
    /// The order system could not be reached or failed.
    #[error("order system unavailable: {0}")]
    Unavailable(String),
}

/// The shop's orders.
#[async_trait]
pub trait Orders: Send + Sync {
    /// The order with this number, if it exists.
    async fn find(&self, number: &str) -> Result<Option<Order>, OrdersError>;
}
