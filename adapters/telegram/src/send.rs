//! Sending through the Bot API: texts split to Telegram's length, quick replies as inline
//! keyboards, paced to Telegram's limits, and Telegram's errors read as the outbox needs them.

use crate::update::target;
use crate::{Telegram, CHANNEL};
use async_trait::async_trait;
use kefu_core::message::PRIVATE_CHAT;
use kefu_core::{Channel, Outbound, QuickReply, SendError};
use std::sync::Arc;
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters};
use teloxide::{ApiError, RequestError};

/// The prefix of a button whose payload is longer than `callback_data` may be: `qr:N` is the
/// message's Nth quick reply.
pub(crate) const LONG_PAYLOAD: &str = "qr:";

/// Telegram's limit on `callback_data`, in bytes.
const MAX_CALLBACK_BYTES: usize = 64;

/// The longest part a text is sent in, in characters (Telegram allows 4096 UTF-16 units).
const MAX_PART_CHARS: usize = 4000;

/// The [`Channel`] sending to Telegram conversations.
pub(crate) struct TelegramChannel(pub(crate) Arc<Telegram>);

impl Telegram {
    /// The [`Channel`] the outbox worker sends Telegram conversations' messages through.
    pub fn channel(self: &Arc<Self>) -> Arc<dyn Channel> {
        Arc::new(TelegramChannel(self.clone()))
    }

    /// The inline keyboard for `replies`: a row per button, short ones (a survey's scores)
    /// side by side; the "message me privately" button as a deep link in groups, left out in
    /// private chats.
    pub(crate) fn keyboard(
        &self,
        replies: &[QuickReply],
        group: bool,
    ) -> Option<InlineKeyboardMarkup> {
        let mut buttons = Vec::new();
        for (n, reply) in replies.iter().enumerate() {
            if reply.payload == PRIVATE_CHAT {
                let link = self
                    .me
                    .get()
                    .filter(|me| group && !me.username.is_empty())
                    .and_then(|me| {
                        url::Url::parse(&format!("https://t.me/{}?start=private", me.username)).ok()
                    });
                if let Some(link) = link {
                    buttons.push(InlineKeyboardButton::url(reply.label.clone(), link));
                }
                continue;
            }
            let data = if reply.payload.len() <= MAX_CALLBACK_BYTES
                && !reply.payload.starts_with(LONG_PAYLOAD)
            {
                reply.payload.clone()
            } else {
                format!("{LONG_PAYLOAD}{n}")
            };
            buttons.push(InlineKeyboardButton::callback(reply.label.clone(), data));
        }
        if buttons.is_empty() {
            return None;
        }
        let short = replies.iter().all(|r| r.label.chars().count() <= 6);
        let rows: Vec<Vec<InlineKeyboardButton>> = if short {
            buttons.chunks(5).map(<[_]>::to_vec).collect()
        } else {
            buttons.into_iter().map(|b| vec![b]).collect()
        };
        Some(InlineKeyboardMarkup::new(rows))
    }

    /// Reads a failed call: a 429 pauses everything for `retry_after`; a chat that blocked
    /// the bot or that it left is marked unreachable.
    fn send_error(&self, chat: ChatId, error: RequestError) -> SendError {
        let text = self.scrub(&error.to_string());
        match error {
            RequestError::RetryAfter(after) => {
                self.pacer.pause(after.duration());
                SendError::RateLimited {
                    retry_after: after.duration(),
                }
            }
            RequestError::Network(_) | RequestError::Io(_) | RequestError::InvalidJson { .. } => {
                SendError::Unavailable(text)
            }
            RequestError::MigrateToChatId(_) => SendError::Unreachable(text),
            RequestError::Api(api) => {
                let text = format!(
                    "Telegram refused the message: {}",
                    self.scrub(&api.to_string())
                );
                if unreachable(&api) {
                    self.lock(&self.unreachable).insert(chat.0);
                    tracing::info!(chat = chat.0, "the Telegram chat is unreachable: {text}");
                    SendError::Unreachable(text)
                } else {
                    SendError::Rejected(text)
                }
            }
        }
    }
}

/// Whether an API error means the chat cannot be written to any more.
fn unreachable(api: &ApiError) -> bool {
    match api {
        ApiError::BotBlocked
        | ApiError::UserDeactivated
        | ApiError::BotKicked
        | ApiError::BotKickedFromSupergroup
        | ApiError::BotKickedFromChannel
        | ApiError::CantInitiateConversation
        | ApiError::CantTalkWithBots
        | ApiError::ChatNotFound
        | ApiError::GroupDeactivated => true,
        ApiError::Unknown(text) => text.starts_with("Forbidden"),
        _ => false,
    }
}

/// `text` in parts of at most [`MAX_PART_CHARS`] characters, cut at a line break where one
/// is near.
fn parts(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= MAX_PART_CHARS {
        return vec![text.to_string()];
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + MAX_PART_CHARS).min(chars.len());
        if end < chars.len() {
            if let Some(nl) = chars[start..end].iter().rposition(|c| *c == '\n') {
                if nl > MAX_PART_CHARS / 2 {
                    end = start + nl + 1;
                }
            }
        }
        out.push(chars[start..end].iter().collect());
        start = end;
    }
    out
}

#[async_trait]
impl Channel for TelegramChannel {
    fn name(&self) -> &str {
        CHANNEL
    }

    async fn send(&self, message: &Outbound) -> Result<(), SendError> {
        let telegram = &self.0;
        let Some((chat, group)) = target(&message.conversation.id) else {
            return Err(SendError::Rejected(format!(
                "{:?} is not a Telegram conversation (a chat id, or chat:user in a group)",
                message.conversation.id
            )));
        };
        if telegram.lock(&telegram.unreachable).contains(&chat.0) {
            return Err(SendError::Unreachable(
                "the chat blocked the bot or removed it; it is reachable again once the customer writes".to_string(),
            ));
        }
        if message.text.trim().is_empty() {
            return Err(SendError::Rejected("the message is empty".to_string()));
        }
        let reply_to = group
            .then(|| {
                telegram
                    .lock(&telegram.reply_to)
                    .get(&message.conversation.id)
                    .copied()
            })
            .flatten();
        let keyboard = telegram.keyboard(&message.quick_replies, group);
        let parts = parts(&message.text);
        let last = parts.len() - 1;
        for (n, part) in parts.into_iter().enumerate() {
            telegram
                .pacer
                .ready(chat.0, group)
                .await
                .map_err(|retry_after| SendError::RateLimited { retry_after })?;
            let mut request = telegram.bot.send_message(chat, part);
            if n == last {
                request.reply_markup = keyboard.clone().map(Into::into);
            }
            if n == 0 {
                if let Some(to) = reply_to {
                    let mut parameters = ReplyParameters::new(to);
                    parameters.allow_sending_without_reply = Some(true);
                    request.reply_parameters = Some(parameters);
                }
            }
            request.await.map_err(|e| telegram.send_error(chat, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_split_at_line_breaks_and_short_ones_kept() {
        assert_eq!(parts("hello"), ["hello"]);
        let line = "x".repeat(3000);
        let text = format!("{line}\n{line}\n{line}");
        let split = parts(&text);
        assert_eq!(split.len(), 3);
        assert!(split.iter().all(|p| p.chars().count() <= MAX_PART_CHARS));
        assert_eq!(split.concat(), text);
        let one_line = "字".repeat(9000);
        let split = parts(&one_line);
        assert_eq!(split.len(), 3);
        assert_eq!(split.concat(), one_line);
    }

    #[test]
    fn blocked_and_kicked_are_unreachable_other_refusals_are_not() {
        assert!(unreachable(&ApiError::BotBlocked));
        assert!(unreachable(&ApiError::Unknown(
            "Forbidden: bot is not a member".to_string()
        )));
        assert!(!unreachable(&ApiError::MessageIsTooLong));
    }
}
