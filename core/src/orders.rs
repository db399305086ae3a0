//! The `Orders` port: the shop's orders, as the flows need them, and an in-memory
//! implementation for tests, examples and demos.
//!
//! Adapters implement it for kefu's embedded order tables (kefu-sql) or for the shop's own
//! order system. Without one, flows that need an order hand the conversation to a person with
//! the order number they collected.
//!
//! Nothing here decides who may see an order: that is [`Orders::verify`], which the engine asks
//! before it shows anything (see the `verify` module of the flows).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

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
    /// Cancelled before it was paid.
    Cancelled,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::AwaitingPayment,
        OrderStatus::Paid,
        OrderStatus::Delivering,
        OrderStatus::Delivered,
        OrderStatus::Failed,
        OrderStatus::Refunded,
        OrderStatus::Cancelled,
    ];

    /// The status's name in storage and APIs (`awaiting_payment`, `paid`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::AwaitingPayment => "awaiting_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Delivering => "delivering",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Failed => "failed",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the buyer paid and has not (yet) received what they paid for: the states a
    /// refund can be requested in without a person judging the goods.
    pub fn is_undelivered(self) -> bool {
        matches!(
            self,
            OrderStatus::Paid | OrderStatus::Delivering | OrderStatus::Failed
        )
    }
}

/// An order, as much as the bot may tell its verified buyer. The one order record: the
/// embedded order tables store it with its [`Buyer`], an order file's rows read into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order number.
    pub number: String,
    /// What was bought.
    pub product: String,
    /// Where it stands.
    pub status: OrderStatus,
    /// The price in the currency's smallest unit (fen, cents).
    pub amount_cents: i64,
    /// ISO 4217 code (`CNY`, `USD`).
    pub currency: String,
    /// How many items were bought.
    #[serde(default = "one")]
    pub quantity: i64,
    /// When it was created (ms since the epoch).
    #[serde(default)]
    pub created_at: Option<u64>,
    /// When it was paid (ms since the epoch).
    pub paid_at: Option<u64>,
    /// When it was delivered (ms since the epoch).
    pub delivered_at: Option<u64>,
    /// When delivery is promised by (ms since the epoch).
    pub delivery_due_at: Option<u64>,
    /// How to redeem what was bought (shown with the card keys).
    pub redeem: Option<String>,
}

impl Order {
    /// An order with only the required fields set (for tests and examples).
    pub fn new(number: impl Into<String>, product: impl Into<String>, status: OrderStatus) -> Self {
        Order {
            number: number.into(),
            product: product.into(),
            status,
            amount_cents: 0,
            currency: "CNY".to_string(),
            quantity: 1,
            created_at: None,
            paid_at: None,
            delivered_at: None,
            delivery_due_at: None,
            redeem: None,
        }
    }
}

fn one() -> i64 {
    1
}

/// Who bought an order, as the shop recorded it at purchase: what proves a buyer, never shown
/// to anyone (not part of [`Order`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Buyer {
    /// Their e-mail address, lower-cased.
    pub email: Option<String>,
    /// Their phone number, digits only.
    pub phone: Option<String>,
    /// The chat channel they bought through (`telegram`, `discord`, `wechat`, ...).
    pub channel: Option<String>,
    /// Their user id on [`Buyer::channel`].
    pub user: Option<String>,
}

/// What an asker offers to show they bought an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The chat identity they write from, which the shop may have recorded with the order.
    Identity {
        /// The channel (`telegram`, `discord`, `wechat`).
        channel: String,
        /// The user's id on it.
        user: String,
    },
    /// Something only the buyer knows: the order's query password (查询密码), or the e-mail
    /// address or phone number given at purchase.
    Secret(String),
}

/// An order-system failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrdersError {
    /// The order system could not be reached or failed.
    #[error("order system unavailable: {0}")]
    Unavailable(String),
    /// The order system does not offer this operation; the engine opens a ticket instead.
    #[error("the order system does not support {0}")]
    Unsupported(&'static str),
}

/// What became of a change the customer asked for (a cancellation, a refund).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderChange {
    /// Done; the order as it is now.
    Done(Order),
    /// Not done: the order's state does not allow it (it was paid or delivered meanwhile).
    NotAllowed(OrderStatus),
}

/// The shop's orders.
///
/// Implementations must answer [`Orders::verify`] the same way, and in about the same time,
/// for an order that does not exist as for a wrong proof, so an asker learns nothing about
/// order numbers they cannot prove.
#[async_trait]
pub trait Orders: Send + Sync {
    /// The order with this number, if it exists. Call only for a verified buyer.
    async fn find(&self, number: &str) -> Result<Option<Order>, OrdersError>;

    /// Whether `proof` shows the asker bought order `number`; `false` for an unknown order.
    async fn verify(&self, number: &str, proof: &Proof) -> Result<bool, OrdersError>;

    /// The order's card keys, in order. Call only for a verified buyer.
    async fn card_keys(&self, number: &str) -> Result<Vec<String>, OrdersError>;

    /// The orders bought from a chat identity (recorded with the order, or linked to it),
    /// newest first: for agents' context and the VIP lane, never shown to anyone else. The
    /// default answers [`OrdersError::Unsupported`].
    async fn for_customer(&self, channel: &str, user: &str) -> Result<Vec<Order>, OrdersError> {
        let _ = (channel, user);
        Err(OrdersError::Unsupported("listing a customer's orders"))
    }

    /// Links a chat identity to the order, so that writing from it proves the order from
    /// then on ("the customer links it once"): done only if no identity is linked yet. True
    /// when `(channel, user)` is now the order's linked identity. The engine calls it after
    /// a buyer proved the order with a secret in a private chat. The default answers
    /// [`OrdersError::Unsupported`].
    async fn link(&self, number: &str, channel: &str, user: &str) -> Result<bool, OrdersError> {
        let _ = (number, channel, user);
        Err(OrdersError::Unsupported("linking chat identities"))
    }

    /// Cancels an order that is still awaiting payment, atomically: an order paid meanwhile
    /// is left alone and answered with [`OrderChange::NotAllowed`]. Call only for a verified
    /// buyer. The default answers [`OrdersError::Unsupported`].
    ///
    /// `idempotency_key` names this one change: the engine derives it from the customer's
    /// message, so a call repeated with the same key (a turn run again, a retry) must change
    /// nothing more and answer as the first call did.
    async fn cancel(
        &self,
        number: &str,
        idempotency_key: &str,
    ) -> Result<OrderChange, OrdersError> {
        let _ = (number, idempotency_key);
        Err(OrdersError::Unsupported("cancelling orders"))
    }

    /// Refunds a paid, undelivered order (see [`OrderStatus::is_undelivered`]) in full,
    /// atomically; any other state is answered with [`OrderChange::NotAllowed`]. The engine
    /// calls it only for refunds within the shop's auto-approval limit. The default answers
    /// [`OrdersError::Unsupported`]. `idempotency_key` as for [`Orders::cancel`].
    async fn refund(
        &self,
        number: &str,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<OrderChange, OrdersError> {
        let _ = (number, reason, idempotency_key);
        Err(OrdersError::Unsupported("refunds"))
    }
}

/// Compares two secrets in constant time (`subtle`): both are hashed first, so not even
/// their lengths show in the time taken.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.as_slice().ct_eq(b.as_slice()).into()
}

/// An e-mail address or phone number as compared: e-mail lower-cased, phone numbers as their
/// last 11 digits (so `+86 138-0013-8000` matches `13800138000`), anything else trimmed.
pub fn normalize_secret(secret: &str) -> String {
    let trimmed = secret.trim();
    if trimmed.contains('@') {
        return trimmed.to_lowercase();
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let phone_like = digits.len() >= 7
        && trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || " +-()".contains(c));
    if phone_like {
        let skip = digits.len().saturating_sub(11);
        return digits[skip..].to_string();
    }
    trimmed.to_string()
}

/// One order of a [`MemoryOrders`], with what proves its buyer.
#[derive(Debug, Clone, Default)]
pub struct MemoryOrder {
    /// The order.
    pub order: Option<Order>,
    /// Card keys.
    pub keys: Vec<String>,
    /// The query password.
    pub password: Option<String>,
    /// The buyer's e-mail address or phone number.
    pub contacts: Vec<String>,
    /// Chat identities linked to the order, as `(channel, user)`.
    pub identities: Vec<(String, String)>,
}

/// [`Orders`] in memory; [`MemoryOrders::unavailable`] makes it fail like a system that is down.
#[derive(Default)]
pub struct MemoryOrders {
    orders: Mutex<HashMap<String, MemoryOrder>>,
    /// Changes made, by idempotency key, with what they answered.
    changes: Mutex<HashMap<String, OrderChange>>,
    down: std::sync::atomic::AtomicBool,
}

impl MemoryOrders {
    /// No orders.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an order.
    pub fn insert(&self, entry: MemoryOrder) {
        let number = entry
            .order
            .as_ref()
            .map(|o| o.number.clone())
            .unwrap_or_default();
        self.lock().insert(number, entry);
    }

    /// Makes every call fail (`true`) or work again (`false`).
    pub fn unavailable(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, MemoryOrder>> {
        self.orders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many changes (cancellations, refunds) were made, counting a repeated idempotency
    /// key once.
    pub fn changes_made(&self) -> usize {
        self.changes.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Moves an order to `to` if its status passes `allowed`; a key seen before answers as it
    /// did then.
    fn change(
        &self,
        number: &str,
        key: &str,
        to: OrderStatus,
        allowed: fn(OrderStatus) -> bool,
    ) -> Result<OrderChange, OrdersError> {
        let mut changes = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(done) = changes.get(key) {
            return Ok(done.clone());
        }
        let outcome = self.change_now(number, to, allowed)?;
        changes.insert(key.to_string(), outcome.clone());
        Ok(outcome)
    }

    fn change_now(
        &self,
        number: &str,
        to: OrderStatus,
        allowed: fn(OrderStatus) -> bool,
    ) -> Result<OrderChange, OrdersError> {
        let mut orders = self.lock();
        let Some(order) = orders.get_mut(number).and_then(|e| e.order.as_mut()) else {
            return Err(OrdersError::Unavailable(format!("order {number} vanished")));
        };
        if !allowed(order.status) {
            return Ok(OrderChange::NotAllowed(order.status));
        }
        order.status = to;
        Ok(OrderChange::Done(order.clone()))
    }

    fn check(&self) -> Result<(), OrdersError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(OrdersError::Unavailable(
                "the order system is down".to_string(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Orders for MemoryOrders {
    async fn find(&self, number: &str) -> Result<Option<Order>, OrdersError> {
        self.check()?;
        Ok(self.lock().get(number).and_then(|e| e.order.clone()))
    }

    async fn verify(&self, number: &str, proof: &Proof) -> Result<bool, OrdersError> {
        self.check()?;
        let orders = self.lock();
        let Some(entry) = orders.get(number) else {
            return Ok(false);
        };
        Ok(match proof {
            Proof::Identity { channel, user } => entry
                .identities
                .iter()
                .any(|(c, u)| c == channel && constant_time_eq(u.as_bytes(), user.as_bytes())),
            Proof::Secret(secret) => {
                let given = normalize_secret(secret);
                let password = entry
                    .password
                    .as_ref()
                    .is_some_and(|p| constant_time_eq(p.as_bytes(), secret.trim().as_bytes()));
                let contact = entry
                    .contacts
                    .iter()
                    .any(|c| constant_time_eq(normalize_secret(c).as_bytes(), given.as_bytes()));
                password | contact
            }
        })
    }

    async fn card_keys(&self, number: &str) -> Result<Vec<String>, OrdersError> {
        self.check()?;
        Ok(self
            .lock()
            .get(number)
            .map(|e| e.keys.clone())
            .unwrap_or_default())
    }

    async fn for_customer(&self, channel: &str, user: &str) -> Result<Vec<Order>, OrdersError> {
        self.check()?;
        let mut bought: Vec<Order> = self
            .lock()
            .values()
            .filter(|e| e.identities.iter().any(|(c, u)| c == channel && u == user))
            .filter_map(|e| e.order.clone())
            .collect();
        bought.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.number.cmp(&a.number))
        });
        Ok(bought)
    }

    async fn link(&self, number: &str, channel: &str, user: &str) -> Result<bool, OrdersError> {
        self.check()?;
        let mut orders = self.lock();
        let Some(entry) = orders.get_mut(number).filter(|e| e.order.is_some()) else {
            return Ok(false);
        };
        if entry.identities.is_empty() {
            entry
                .identities
                .push((channel.to_string(), user.to_string()));
        }
        Ok(entry
            .identities
            .iter()
            .any(|(c, u)| c == channel && u == user))
    }

    async fn cancel(&self, number: &str, key: &str) -> Result<OrderChange, OrdersError> {
        self.check()?;
        self.change(number, key, OrderStatus::Cancelled, |s| {
            s == OrderStatus::AwaitingPayment
        })
    }

    async fn refund(
        &self,
        number: &str,
        _reason: &str,
        key: &str,
    ) -> Result<OrderChange, OrdersError> {
        self.check()?;
        self.change(
            number,
            key,
            OrderStatus::Refunded,
            OrderStatus::is_undelivered,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_what_the_buyer_means() {
        assert_eq!(normalize_secret(" Buyer@Example.COM "), "buyer@example.com");
        assert_eq!(normalize_secret("+86 138-0013-8000"), "13800138000");
        assert_eq!(normalize_secret("13800138000"), "13800138000");
        assert_eq!(normalize_secret(" pass1234 "), "pass1234");
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
