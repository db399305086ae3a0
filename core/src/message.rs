//! What comes in from a chat platform and what goes back out.

use crate::locale::Locale;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies one conversation across channels: the channel's name and its own chat id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConversationKey {
    /// The channel (`telegram`, `discord`, `wechat`, `cli`, ...).
    pub channel: String,
    /// The chat's id on that channel.
    pub id: String,
}

impl ConversationKey {
    /// A key for chat `id` on `channel`.
    pub fn new(channel: impl Into<String>, id: impl Into<String>) -> Self {
        ConversationKey {
            channel: channel.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.channel, self.id)
    }
}

/// A customer's message, as a channel adapter hands it to the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    /// The conversation it belongs to.
    pub conversation: ConversationKey,
    /// The sender's id on the channel.
    pub user: String,
    /// The platform's message id; a message delivered twice carries the same id.
    pub message_id: String,
    /// What the customer wrote (or the payload of the quick reply they pressed).
    pub text: String,
    /// Whether the chat is private (one customer and the bot) rather than a group.
    pub private: bool,
    /// The customer's language if the platform tells it (e.g. Telegram's `language_code`).
    pub locale: Option<Locale>,
}

impl Inbound {
    /// A private-chat message, the common case (builder-style setters adjust the rest).
    pub fn new(
        conversation: ConversationKey,
        user: impl Into<String>,
        message_id: impl Into<String>,
        text: impl Into<String>,
    ) -> Self {
        Inbound {
            conversation,
            user: user.into(),
            message_id: message_id.into(),
            text: text.into(),
            private: true,
            locale: None,
        }
    }

    /// Marks the message as coming from a group chat.
    pub fn in_group(mut self) -> Self {
        self.private = false;
        self
    }

    /// Sets the platform's language hint.
    pub fn with_locale(mut self, locale: Locale) -> Self {
        self.locale = Some(locale);
        self
    }
}

/// What kind of reply an [`Outbound`] is, so channels can render it fittingly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundKind {
    /// An answer from the knowledge base or a flow's result.
    Answer,
    /// "Did you mean" with candidates as quick replies.
    Suggestion,
    /// The bot asks for something (an order number, a choice).
    Question,
    /// The conversation is passed to a person.
    Handoff,
    /// A human agent's message relayed to the customer.
    AgentMessage,
    /// A satisfaction survey.
    Survey,
    /// Something the customer did not ask for just now: a ticket's status changed.
    Notification,
}

/// The payload of the quick reply that asks a customer in a group to continue in a private
/// chat with the bot (card keys and proofs of ownership never go to a group). Channels that
/// can open a private chat render it as a link to one; pressed as an ordinary button, it
/// greets the customer.
pub const PRIVATE_CHAT: &str = "/private";

/// A button the customer can press instead of typing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuickReply {
    /// What the button shows.
    pub label: String,
    /// What comes back as the message text when it is pressed.
    pub payload: String,
}

impl QuickReply {
    /// A button showing `label` that sends `payload`.
    pub fn new(label: impl Into<String>, payload: impl Into<String>) -> Self {
        QuickReply {
            label: label.into(),
            payload: payload.into(),
        }
    }
}

/// A message to send to a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbound {
    /// Where it goes.
    pub conversation: ConversationKey,
    /// The text.
    pub text: String,
    /// Buttons offered with it, in order (customers may also type their number).
    pub quick_replies: Vec<QuickReply>,
    /// What kind of message it is.
    pub kind: OutboundKind,
}
