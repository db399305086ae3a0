//! kefu-orders-http: the [`kefu_core::Orders`] port as an HTTP client for a shop's own order
//! system.
//!
//! The shop runs a small API (documented in `docs/orders-api.md`): look an order up, check a
//! proof of buying it, hand out its card keys, cancel or refund it. Every request kefu sends
//! and every answer it accepts is signed with HMAC-SHA256 over a secret both sides share
//! ([`signing`]); an answer without a valid signature is never trusted.
//!
//! ```no_run
//! use kefu_orders_http::{HttpOrders, HttpOrdersConfig};
//! use std::time::Duration;
//!
//! let mut config = HttpOrdersConfig::new("https://shop.example.com/kefu", "the shared secret");
//! config.timeout = Duration::from_secs(2);
//! let orders = HttpOrders::new(config).expect("a valid base URL and secret");
//! # let _ = orders;
//! ```

pub mod api;
mod client;
pub mod signing;

pub use client::{ConfigError, HttpOrders, HttpOrdersConfig};
