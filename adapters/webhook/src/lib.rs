//! kefu-webhook: a generic signed JSON webhook, the channel for a shop's own site, app or any
//! platform kefu has no adapter for.
//!
//! - **In:** the shop posts each customer message to `POST /v1/webhook` ([`Webhook`]), signed
//!   with the shared secret ([`signing`]); the bot's replies come back in the response. The
//!   message id is the idempotency key: a retry is answered with the replies already given and
//!   changes nothing.
//! - **Out later:** agents' replies, notices and surveys go through kefu's outbox to the shop's
//!   callback URL ([`WebhookChannel`]), signed the same way, retried until the shop takes them,
//!   each with an id to drop repeats by.
//!
//! The recipe, with a worked example, curl commands and the JSON schema, is docs/webhook.md.

pub mod channel;
pub mod server;
pub mod signing;

pub use channel::{CallbackUrlError, WebhookChannel};
pub use server::{Cause, Rejections, Webhook, WebhookSettings};

/// The channel name of webhook conversations ([`kefu_core::ConversationKey::channel`]).
pub const CHANNEL: &str = "webhook";
