//! The `Channel` port: sending a message to a customer on one chat platform, and the
//! [`Channels`] registry that picks the platform by [`ConversationKey::channel`].
//!
//! Replies to a customer's message go back the way the message came (a webhook's response, the
//! terminal). Everything else — an agent's message, a ticket's notice, a survey — is written
//! to the [outbox](crate::outbox) with the change that causes it, and the outbox's worker
//! sends it through a [`Channel`], retrying what a retry can help.
//!
//! [`ConversationKey::channel`]: crate::ConversationKey::channel

use crate::message::Outbound;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Why a message could not be sent, and so whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The platform asks to wait before sending again (HTTP 429 and its `retry_after`).
    #[error("rate-limited by the platform; retry after {} ms", .retry_after.as_millis())]
    RateLimited {
        /// How long the platform asked to wait.
        retry_after: Duration,
    },
    /// The platform could not be reached or failed (a timeout, a 5xx): retry later.
    #[error("platform unavailable: {0}")]
    Unavailable(String),
    /// The customer cannot be reached on the platform any more (blocked the bot, left the
    /// chat, the platform's reply window closed): retrying will not help.
    #[error("customer unreachable: {0}")]
    Unreachable(String),
    /// The platform refused the message itself (too long, malformed, forbidden), or no
    /// channel is registered for it: retrying will not help.
    #[error("message rejected: {0}")]
    Rejected(String),
}

impl SendError {
    /// Whether sending the same message again later can succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            SendError::RateLimited { .. } | SendError::Unavailable(_)
        )
    }

    /// How long the platform asked to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SendError::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// One chat platform's way of sending a message to a conversation on it.
///
/// `send` should return once the platform accepted the message (or refused it); the outbox
/// worker gives it [`crate::outbox::RetryPolicy::send_timeout`] and treats a longer wait as
/// [`SendError::Unavailable`].
#[async_trait]
pub trait Channel: Send + Sync {
    /// The channel's name: [`crate::ConversationKey::channel`] of its conversations.
    fn name(&self) -> &str;

    /// Sends one message.
    async fn send(&self, message: &Outbound) -> Result<(), SendError>;

    /// Sends one message from the outbox; `delivery` names it and is the same on every retry,
    /// so a platform that takes an idempotency key (a webhook) can drop repeats of an
    /// at-least-once delivery. By default [`Channel::send`].
    async fn deliver(&self, message: &Outbound, delivery: &str) -> Result<(), SendError> {
        let _ = delivery;
        self.send(message).await
    }
}

/// The channels a deployment has, by name.
#[derive(Clone, Default)]
pub struct Channels {
    by_name: BTreeMap<String, Arc<dyn Channel>>,
}

impl Channels {
    /// No channels yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `channel` under its name (replacing one of the same name).
    pub fn register(&mut self, channel: Arc<dyn Channel>) -> &mut Self {
        self.by_name.insert(channel.name().to_string(), channel);
        self
    }

    /// Adds `channel`, builder-style.
    pub fn with(mut self, channel: Arc<dyn Channel>) -> Self {
        self.register(channel);
        self
    }

    /// The channel named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Channel>> {
        self.by_name.get(name)
    }

    /// The names of the registered channels, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Sends `message` through the channel of its conversation;
    /// [`SendError::Rejected`] when there is none.
    pub async fn send(&self, message: &Outbound) -> Result<(), SendError> {
        match self.get(&message.conversation.channel) {
            Some(channel) => channel.send(message).await,
            None => Err(self.missing(message)),
        }
    }

    /// [`Channel::deliver`] through the channel of the message's conversation.
    pub async fn deliver(&self, message: &Outbound, delivery: &str) -> Result<(), SendError> {
        match self.get(&message.conversation.channel) {
            Some(channel) => channel.deliver(message, delivery).await,
            None => Err(self.missing(message)),
        }
    }

    fn missing(&self, message: &Outbound) -> SendError {
        SendError::Rejected(format!(
            "no channel named {:?} is configured",
            message.conversation.channel
        ))
    }
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}
