//! [`SqlOrders`]: the shop's own order tables (orders, card keys, delivery state) and the
//! `Orders` port on them.

use crate::db::{
    enum_from, enum_text, millis, on_pool, on_writer, unavailable, BeginWrite, Database,
};
use async_trait::async_trait;
use kefu_core::conversation::now_millis;
use kefu_core::orders::{constant_time_eq, normalize_secret};
use kefu_core::{Buyer, Order, OrderChange, OrderStatus, Orders, OrdersError, Proof, StoreError};
use kefu_orders_file::OrderRecord;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// The shop's orders in kefu's own tables.
#[derive(Clone)]
pub struct SqlOrders {
    db: Database,
}

/// Everything kefu keeps about an imported order except its card keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    /// The order.
    pub order: Order,
    /// Who bought it.
    pub buyer: Buyer,
    /// [`query_password_hash`] of the order's query password (查询密码) (or, for orders
    /// imported by earlier versions, [`legacy_hash`] until the password is next given).
    pub query_password_hash: Option<String>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    /// Orders new to the database.
    pub inserted: usize,
    /// Orders that replaced an order with the same number.
    pub replaced: usize,
    /// Card keys stored.
    pub card_keys: usize,
}

/// The stored form of an order's query password: an Argon2id hash (PHC string, random salt,
/// [`password_params`]) of the order number and the password. The password itself is never
/// stored, and the hash is slow on purpose, so a copy of the database does not give away
/// passwords (mostly short numbers) by trying them all.
pub fn query_password_hash(order: &str, password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&rand_salt()).expect("16 bytes make a valid salt");
    argon2()
        .hash_password(&password_input(order, password), &salt)
        .expect("Argon2 hashes any input with valid parameters")
        .to_string()
}

/// Whether `password` is order `order`'s query password, given the stored hash: an Argon2id
/// PHC string, or the SHA-256 hex of earlier kefu versions (still accepted; the caller then
/// stores a new hash). `None` or an unreadable hash costs an Argon2 check too, so an unknown
/// order or one without a password takes as long as a wrong password.
pub fn check_query_password(order: &str, password: &str, stored: Option<&str>) -> PasswordCheck {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let input = password_input(order, password);
    match stored {
        Some(hash) if hash.starts_with("$argon2") => match PasswordHash::new(hash) {
            Ok(parsed) => PasswordCheck {
                matches: argon2().verify_password(&input, &parsed).is_ok(),
                upgrade: false,
            },
            Err(_) => {
                dummy_check(&input);
                PasswordCheck::NO
            }
        },
        Some(hash) if hash.len() == 64 => {
            // The one-round SHA-256 of earlier versions: checked (in constant time), and to be
            // replaced by an Argon2 hash once the right password is seen.
            dummy_check(&input);
            let matches =
                constant_time_eq(legacy_hash(order, password).as_bytes(), hash.as_bytes());
            PasswordCheck {
                matches,
                upgrade: matches,
            }
        }
        _ => {
            dummy_check(&input);
            PasswordCheck::NO
        }
    }
}

/// What [`check_query_password`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCheck {
    /// The password is right.
    pub matches: bool,
    /// It was checked against an old-style hash, which should be replaced now.
    pub upgrade: bool,
}

impl PasswordCheck {
    const NO: PasswordCheck = PasswordCheck {
        matches: false,
        upgrade: false,
    };
}

/// The Argon2id cost of query-password hashes: 19 MiB, 2 passes, 1 lane (OWASP's minimum
/// recommendation; about 15–20 ms per check on one core).
pub fn password_params() -> argon2::Params {
    argon2::Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters")
}

pub(crate) fn argon2() -> argon2::Argon2<'static> {
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        password_params(),
    )
}

/// What is hashed: the order number and the password, so a hash copied to another order
/// does not match there.
fn password_input(order: &str, password: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(order.len() + password.len() + 1);
    input.extend_from_slice(order.as_bytes());
    input.push(0);
    input.extend_from_slice(password.as_bytes());
    input
}

/// Spends an Argon2 check's time on nothing.
pub(crate) fn dummy_check(input: &[u8]) {
    let mut out = [0u8; 32];
    let _ = argon2().hash_password_into(input, b"kefu-no-such-order", &mut out);
}

pub(crate) fn rand_salt() -> [u8; 16] {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    salt
}

/// The query-password hash of kefu 0.1's first schema: SHA-256 over a fixed label, the order
/// number and the password, in hex. Only checked, never written any more.
pub fn legacy_hash(order: &str, password: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"kefu-order-query-password\0");
    hasher.update(order.as_bytes());
    hasher.update(b"\0");
    hasher.update(password.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hashes the query passwords of `records` on every core (Argon2 is slow on purpose), in
/// record order; `None` where a record has no password.
fn hash_passwords(records: &[OrderRecord]) -> Vec<Option<String>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .max(1);
    let chunk = records.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = records
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|r| {
                            r.query_password
                                .as_deref()
                                .map(|p| query_password_hash(&r.order.number, p))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("hashing does not panic"))
            .collect()
    })
}

const ORDER_COLUMNS: &str = "number, product, status, amount_cents, currency, quantity, \
     buyer_email, buyer_phone, query_password_hash, buyer_channel, buyer_user, created_at, \
     paid_at, delivered_at, delivery_due_at, redeem";

fn opt_time(t: Option<i64>) -> Option<u64> {
    t.map(|t| t.max(0) as u64)
}

impl SqlOrders {
    pub(crate) fn new(db: Database) -> Self {
        SqlOrders { db }
    }

    /// Stores validated records (see [`kefu_orders_file`]) in one transaction: all of them or,
    /// on any failure, none. An order number already stored is replaced with its keys.
    pub async fn import(&self, records: &[OrderRecord]) -> Result<ImportSummary, StoreError> {
        let fail = |e| unavailable("cannot import the orders (nothing was imported)", e);
        let now = millis(now_millis());
        let hashes = {
            let records = records.to_vec();
            tokio::task::spawn_blocking(move || hash_passwords(&records))
                .await
                .map_err(|e| StoreError::Unavailable(format!("cannot hash query passwords: {e}")))?
        };
        on_writer!(self.db, |pool| {
            let mut tx = pool.begin_write().await.map_err(fail)?;
            let mut summary = ImportSummary::default();
            for (r, hash) in records.iter().zip(&hashes) {
                let existed = sqlx::query("DELETE FROM orders WHERE number = $1")
                    .bind(&r.order.number)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?
                    .rows_affected()
                    > 0;
                if existed {
                    summary.replaced += 1;
                    // Keys go with their order (ON DELETE CASCADE), but be explicit for
                    // databases opened without foreign keys.
                    sqlx::query("DELETE FROM card_keys WHERE order_no = $1")
                        .bind(&r.order.number)
                        .execute(&mut *tx)
                        .await
                        .map_err(fail)?;
                } else {
                    summary.inserted += 1;
                }
                sqlx::query(&format!(
                    "INSERT INTO orders ({ORDER_COLUMNS}, imported_at) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
                ))
                .bind(&r.order.number)
                .bind(&r.order.product)
                .bind(enum_text(&r.order.status))
                .bind(r.order.amount_cents)
                .bind(&r.order.currency)
                .bind(r.order.quantity)
                .bind(r.buyer.email.as_deref())
                .bind(r.buyer.phone.as_deref())
                .bind(hash.as_deref())
                .bind(r.buyer.channel.as_deref())
                .bind(r.buyer.user.as_deref())
                .bind(r.order.created_at.map(millis))
                .bind(r.order.paid_at.map(millis))
                .bind(r.order.delivered_at.map(millis))
                .bind(r.order.delivery_due_at.map(millis))
                .bind(r.order.redeem.as_deref())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
                for (position, code) in r.card_keys.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO card_keys (order_no, position, code) VALUES ($1, $2, $3)",
                    )
                    .bind(&r.order.number)
                    .bind(position as i64)
                    .bind(code)
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
                    summary.card_keys += 1;
                }
            }
            tx.commit().await.map_err(fail)?;
            Ok(summary)
        })
    }

    /// The stored order with this number.
    pub async fn get(&self, number: &str) -> Result<Option<StoredOrder>, StoreError> {
        let bad = |e| unavailable("cannot read the order", e);
        on_pool!(self.db, |pool| {
            let row = sqlx::query(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE number = $1"
            ))
            .bind(number)
            .fetch_optional(pool)
            .await
            .map_err(bad)?;
            let Some(row) = row else {
                return Ok(None);
            };
            let status: String = row.try_get("status").map_err(bad)?;
            Ok(Some(StoredOrder {
                order: Order {
                    number: row.try_get("number").map_err(bad)?,
                    product: row.try_get("product").map_err(bad)?,
                    status: enum_from(&status, "status")?,
                    amount_cents: row.try_get("amount_cents").map_err(bad)?,
                    currency: row.try_get("currency").map_err(bad)?,
                    quantity: row.try_get("quantity").map_err(bad)?,
                    created_at: opt_time(row.try_get("created_at").map_err(bad)?),
                    paid_at: opt_time(row.try_get("paid_at").map_err(bad)?),
                    delivered_at: opt_time(row.try_get("delivered_at").map_err(bad)?),
                    delivery_due_at: opt_time(row.try_get("delivery_due_at").map_err(bad)?),
                    redeem: row.try_get("redeem").map_err(bad)?,
                },
                buyer: Buyer {
                    email: row.try_get("buyer_email").map_err(bad)?,
                    phone: row.try_get("buyer_phone").map_err(bad)?,
                    channel: row.try_get("buyer_channel").map_err(bad)?,
                    user: row.try_get("buyer_user").map_err(bad)?,
                },
                query_password_hash: row.try_get("query_password_hash").map_err(bad)?,
            }))
        })
    }

    /// An order's card keys, in their original order.
    pub async fn card_keys(&self, number: &str) -> Result<Vec<String>, StoreError> {
        let bad = |e| unavailable("cannot read card keys", e);
        on_pool!(self.db, |pool| {
            let rows =
                sqlx::query("SELECT code FROM card_keys WHERE order_no = $1 ORDER BY position")
                    .bind(number)
                    .fetch_all(pool)
                    .await
                    .map_err(bad)?;
            rows.iter().map(|r| r.try_get(0).map_err(bad)).collect()
        })
    }

    /// Order numbers recorded for a chat identity, newest first.
    pub async fn for_buyer(&self, channel: &str, user: &str) -> Result<Vec<String>, StoreError> {
        let bad = |e| unavailable("cannot read orders", e);
        on_pool!(self.db, |pool| {
            let rows = sqlx::query(
                "SELECT number FROM orders WHERE buyer_channel = $1 AND buyer_user = $2 \
                 ORDER BY created_at DESC, number",
            )
            .bind(channel)
            .bind(user)
            .fetch_all(pool)
            .await
            .map_err(bad)?;
            rows.iter().map(|r| r.try_get(0).map_err(bad)).collect()
        })
    }

    /// Moves an order to `to` if it is in one of the `from` states, in one statement, so a
    /// concurrent payment or delivery cannot be overwritten; `Ok(None)` for an unknown order,
    /// `Ok(Some(Err(status)))` when its status does not allow the change.
    pub async fn change_status(
        &self,
        number: &str,
        from: &[OrderStatus],
        to: OrderStatus,
    ) -> Result<Option<Result<StoredOrder, OrderStatus>>, StoreError> {
        let fail = |e| unavailable("cannot change the order", e);
        let allowed: Vec<String> = from.iter().map(enum_text).collect();
        let list = (0..allowed.len())
            .map(|i| format!("${}", i + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("UPDATE orders SET status = $1 WHERE number = $2 AND status IN ({list})");
        let changed = on_writer!(self.db, |pool| {
            let mut query = sqlx::query(&sql).bind(enum_text(&to)).bind(number);
            for status in &allowed {
                query = query.bind(status);
            }
            query.execute(pool).await.map_err(fail)?.rows_affected() > 0
        });
        let order = self.get(number).await?;
        Ok(order.map(|o| if changed { Ok(o) } else { Err(o.order.status) }))
    }

    /// Records `(channel, user)` as the order's buyer identity if it has none; true when it
    /// is (now) the order's identity. A later import of the order replaces it with the file's.
    pub async fn link_identity(
        &self,
        number: &str,
        channel: &str,
        user: &str,
    ) -> Result<bool, StoreError> {
        let fail = |e| unavailable("cannot link the order to a chat identity", e);
        on_writer!(self.db, |pool| {
            sqlx::query(
                "UPDATE orders SET buyer_channel = $1, buyer_user = $2 \
                 WHERE number = $3 AND (buyer_user IS NULL OR buyer_user = '')",
            )
            .bind(channel)
            .bind(user)
            .bind(number)
            .execute(pool)
            .await
            .map_err(fail)?;
        });
        let order = self.get(number).await?;
        Ok(order.is_some_and(|o| {
            o.buyer.channel.as_deref() == Some(channel) && o.buyer.user.as_deref() == Some(user)
        }))
    }

    /// How many orders are stored.
    pub async fn count(&self) -> Result<i64, StoreError> {
        on_pool!(self.db, |pool| {
            sqlx::query("SELECT COUNT(*) FROM orders")
                .fetch_one(pool)
                .await
                .and_then(|r| r.try_get(0))
                .map_err(|e| unavailable("cannot count orders", e))
        })
    }
}

#[async_trait]
impl Orders for SqlOrders {
    async fn find(&self, number: &str) -> Result<Option<Order>, OrdersError> {
        let order = self.get(number).await.map_err(unavailable_orders)?;
        Ok(order.map(|stored| stored.order))
    }

    async fn verify(&self, number: &str, proof: &Proof) -> Result<bool, OrdersError> {
        let order = self.get(number).await.map_err(unavailable_orders)?;
        // An unknown order costs the same comparisons as a known one, and answers `false`.
        let field = |f: fn(&StoredOrder) -> &Option<String>| {
            order
                .as_ref()
                .and_then(|o| f(o).clone())
                .unwrap_or_default()
        };
        Ok(match proof {
            Proof::Identity { channel, user } => {
                let linked_user = field(|o| &o.buyer.user);
                let same_user = constant_time_eq(linked_user.as_bytes(), user.as_bytes());
                !linked_user.is_empty() && field(|o| &o.buyer.channel) == *channel && same_user
            }
            Proof::Secret(secret) => {
                let stored_hash = order.as_ref().and_then(|o| o.query_password_hash.clone());
                let (order_no, given_password) = (number.to_string(), secret.trim().to_string());
                let check = tokio::task::spawn_blocking(move || {
                    check_query_password(&order_no, &given_password, stored_hash.as_deref())
                })
                .await
                .map_err(|e| OrdersError::Unavailable(format!("cannot check a password: {e}")))?;
                if check.upgrade {
                    self.upgrade_password_hash(number, secret.trim()).await;
                }
                let password = check.matches;
                let given = normalize_secret(secret);
                let contact = [field(|o| &o.buyer.email), field(|o| &o.buyer.phone)]
                    .iter()
                    .filter(|c| !c.is_empty())
                    .fold(false, |found, c| {
                        found | constant_time_eq(normalize_secret(c).as_bytes(), given.as_bytes())
                    });
                order.is_some() && (password | (contact && !given.is_empty()))
            }
        })
    }

    async fn card_keys(&self, number: &str) -> Result<Vec<String>, OrdersError> {
        SqlOrders::card_keys(self, number)
            .await
            .map_err(unavailable_orders)
    }

    async fn for_customer(&self, channel: &str, user: &str) -> Result<Vec<Order>, OrdersError> {
        let numbers = self
            .for_buyer(channel, user)
            .await
            .map_err(unavailable_orders)?;
        let mut orders = Vec::with_capacity(numbers.len());
        // A customer with very many orders is shown (and counted) by their newest 100.
        for number in numbers.iter().take(100) {
            if let Some(stored) = self.get(number).await.map_err(unavailable_orders)? {
                orders.push(stored.order);
            }
        }
        Ok(orders)
    }

    async fn link(&self, number: &str, channel: &str, user: &str) -> Result<bool, OrdersError> {
        self.link_identity(number, channel, user)
            .await
            .map_err(unavailable_orders)
    }

    async fn cancel(&self, number: &str, key: &str) -> Result<OrderChange, OrdersError> {
        let from = [OrderStatus::AwaitingPayment];
        self.change(number, key, "cancel", &from, OrderStatus::Cancelled)
            .await
    }

    async fn refund(
        &self,
        number: &str,
        _reason: &str,
        key: &str,
    ) -> Result<OrderChange, OrdersError> {
        let from: Vec<OrderStatus> = OrderStatus::ALL
            .into_iter()
            .filter(|s| s.is_undelivered())
            .collect();
        self.change(number, key, "refund", &from, OrderStatus::Refunded)
            .await
    }
}

impl SqlOrders {
    /// Makes a change once per idempotency key: a key seen before answers as it did then
    /// (the order as it is now when the change was made; the status that refused it when
    /// not), and changes nothing.
    async fn change(
        &self,
        number: &str,
        key: &str,
        action: &str,
        from: &[OrderStatus],
        to: OrderStatus,
    ) -> Result<OrderChange, OrdersError> {
        if let Some((done, status)) = self.change_made(key).await.map_err(unavailable_orders)? {
            return if done {
                match self.find(number).await? {
                    Some(order) => Ok(OrderChange::Done(order)),
                    None => Err(OrdersError::Unavailable(format!(
                        "order {number} is not in the order tables"
                    ))),
                }
            } else {
                Ok(OrderChange::NotAllowed(status))
            };
        }
        let outcome = match self
            .change_status(number, from, to)
            .await
            .map_err(unavailable_orders)?
        {
            Some(Ok(stored)) => OrderChange::Done(stored.order),
            Some(Err(status)) => OrderChange::NotAllowed(status),
            None => {
                return Err(OrdersError::Unavailable(format!(
                    "order {number} is not in the order tables"
                )))
            }
        };
        let (done, status) = match &outcome {
            OrderChange::Done(order) => (true, order.status),
            OrderChange::NotAllowed(status) => (false, *status),
        };
        let fail = |e| unavailable("cannot record an order change", e);
        on_writer!(self.db, |pool| {
            sqlx::query(
                "INSERT INTO order_changes (idempotency_key, order_no, action, done, status, at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(key)
            .bind(number)
            .bind(action)
            .bind(done)
            .bind(enum_text(&status))
            .bind(millis(now_millis()))
            .execute(pool)
            .await
            .map_err(fail)
            .map_err(unavailable_orders)?;
        });
        Ok(outcome)
    }

    /// The change made with idempotency key `key`: whether it was done, and the status after.
    async fn change_made(&self, key: &str) -> Result<Option<(bool, OrderStatus)>, StoreError> {
        let bad = |e| unavailable("cannot read order changes", e);
        on_pool!(self.db, |pool| {
            let row =
                sqlx::query("SELECT done, status FROM order_changes WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_optional(pool)
                    .await
                    .map_err(bad)?;
            match row {
                Some(row) => {
                    let done: bool = row.try_get("done").map_err(bad)?;
                    let status: String = row.try_get("status").map_err(bad)?;
                    Ok(Some((done, enum_from(&status, "status")?)))
                }
                None => Ok(None),
            }
        })
    }

    /// Replaces an old-style query-password hash with an Argon2 one, once the right password
    /// was given (a failure only costs the upgrade; the next right password tries again).
    async fn upgrade_password_hash(&self, number: &str, password: &str) {
        let (order_no, given) = (number.to_string(), password.to_string());
        let Ok(hash) =
            tokio::task::spawn_blocking(move || query_password_hash(&order_no, &given)).await
        else {
            return;
        };
        let legacy = legacy_hash(number, password);
        let result = on_writer!(self.db, |pool| {
            sqlx::query(
                "UPDATE orders SET query_password_hash = $1 WHERE number = $2 AND query_password_hash = $3",
            )
            .bind(&hash)
            .bind(number)
            .bind(&legacy)
            .execute(pool)
            .await
            .map(|_| ())
        });
        match result {
            Ok(()) => tracing::info!("an order's query password hash was upgraded to Argon2id"),
            Err(e) => tracing::warn!(error = %e, "could not upgrade a query password hash"),
        }
    }
}

fn unavailable_orders(e: StoreError) -> OrdersError {
    OrdersError::Unavailable(e.to_string())
}
