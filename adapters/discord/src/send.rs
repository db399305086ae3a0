//! Sending a message to a Discord conversation (the outbox's [`Channel`]), and what Discord's
//! HTTP answers mean for a retry.
//!
//! The request is serenity's (route, authorization, the proxy for tests); it is executed here
//! rather than by `Http::send_message` because serenity's error drops the response headers,
//! and a 429's `retry-after` is what the outbox needs to reschedule.

use crate::render::{self, MAX_CONTENT_CHARS};
use crate::{Discord, Place, CHANNEL};
use async_trait::async_trait;
use kefu_core::{Channel, Outbound, SendError};
use serenity::builder::{CreateAllowedMentions, CreateMessage};
use serenity::http::{LightMethod, Request, Route};
use serenity::model::channel::Nonce;
use serenity::model::id::{ChannelId, UserId};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Discord's JSON error codes that mean the customer cannot be reached.
const UNREACHABLE_CODES: &[i64] = &[
    10003, // Unknown Channel
    10013, // Unknown User
    50007, // Cannot send messages to this user
    50001, // Missing Access
    50013, // Missing Permissions
];

/// How long to wait after a 429 that says nothing about it.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

#[async_trait]
impl Channel for Discord {
    fn name(&self) -> &str {
        CHANNEL
    }

    async fn send(&self, message: &Outbound) -> Result<(), SendError> {
        self.post(message, None).await
    }

    async fn deliver(&self, message: &Outbound, delivery: &str) -> Result<(), SendError> {
        self.post(message, Some(delivery)).await
    }
}

impl Discord {
    /// Posts `message` to its conversation's channel: in a server's channel after a mention of
    /// the customer, in pieces when it is longer than Discord takes (the buttons on the
    /// last). With a `delivery` id each piece carries a nonce Discord enforces, so a retried
    /// delivery does not post a piece twice.
    async fn post(&self, message: &Outbound, delivery: Option<&str>) -> Result<(), SendError> {
        let Some(place) = Place::parse(&message.conversation.id) else {
            return Err(SendError::Rejected(format!(
                "{:?} is not a Discord conversation id",
                message.conversation.id
            )));
        };
        let (text, mentions) = match place {
            Place::Direct { .. } => (
                message.text.clone(),
                CreateAllowedMentions::new()
                    .empty_users()
                    .empty_roles()
                    .everyone(false),
            ),
            Place::Guild { user, .. } => (
                format!("<@{user}> {}", message.text),
                CreateAllowedMentions::new()
                    .users([UserId::new(user)])
                    .empty_roles()
                    .everyone(false),
            ),
        };
        let pieces = render::split(&text, MAX_CONTENT_CHARS);
        let last = pieces.len() - 1;
        for (i, piece) in pieces.into_iter().enumerate() {
            let mut create = CreateMessage::new()
                .content(piece.as_str())
                .allowed_mentions(mentions.clone());
            if i == last && !message.quick_replies.is_empty() {
                create =
                    create.components(render::buttons(&message.quick_replies, self.bot_user_id()));
            }
            if let Some(delivery) = delivery {
                create = create
                    .nonce(Nonce::String(nonce(delivery, i, place, &piece)))
                    .enforce_nonce(true);
            }
            self.create_message(place.channel(), &create).await?;
        }
        Ok(())
    }

    async fn create_message(&self, channel: u64, create: &CreateMessage) -> Result<(), SendError> {
        let body = serde_json::to_vec(create)
            .map_err(|e| SendError::Rejected(format!("the message could not be encoded: {e}")))?;
        let route = Route::ChannelMessages {
            channel_id: ChannelId::new(channel),
        };
        let request = Request::new(route, LightMethod::Post)
            .body(Some(body))
            .build(&self.client, self.http.token(), self.http.proxy.as_deref())
            .map_err(|e| SendError::Rejected(format!("the request could not be built: {e}")))?;
        let response = request.send().await.map_err(|e| {
            // reqwest's error names the URL (a channel id), never the token.
            SendError::Unavailable(format!("Discord could not be reached: {e}"))
        })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let header_retry = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(seconds);
        let body = response.bytes().await.unwrap_or_default();
        let error = classify(status, header_retry, &body);
        if status == 401 {
            tracing::error!("Discord refused the bot token (401); check the discord token setting");
        }
        Err(error)
    }
}

/// What Discord's answer `status` (with its `retry-after` header and body) means for the
/// outbox: 429 → rate-limited for as long as it says; 5xx → unavailable; 403 or an error
/// code saying the customer cannot be reached → unreachable; any other 4xx → rejected.
pub(crate) fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> SendError {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let code = json
        .as_ref()
        .and_then(|j| j.get("code"))
        .and_then(serde_json::Value::as_i64);
    let what = json
        .as_ref()
        .and_then(|j| j.get("message"))
        .and_then(serde_json::Value::as_str)
        .map(|m| render::truncate(m, 200))
        .unwrap_or_default();
    let described = match code {
        Some(code) => format!("Discord answered {status} (code {code}): {what}"),
        None => format!("Discord answered {status}: {what}"),
    };
    match status {
        429 => {
            let body_retry = json
                .as_ref()
                .and_then(|j| j.get("retry_after"))
                .and_then(serde_json::Value::as_f64)
                .and_then(|s| seconds(&s.to_string()));
            SendError::RateLimited {
                retry_after: retry_after.or(body_retry).unwrap_or(DEFAULT_RETRY_AFTER),
            }
        }
        500..=599 => SendError::Unavailable(described),
        403 => SendError::Unreachable(described),
        _ if code.is_some_and(|c| UNREACHABLE_CODES.contains(&c)) => {
            SendError::Unreachable(described)
        }
        _ => SendError::Rejected(described),
    }
}

/// A number of seconds (`"1.5"`), at most an hour; `None` when it is not one.
fn seconds(text: &str) -> Option<Duration> {
    let secs: f64 = text.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// The nonce of piece `index` of a delivery: at most 25 characters, the same on every retry
/// of it, different for other deliveries, places and texts.
fn nonce(delivery: &str, index: usize, place: Place, piece: &str) -> String {
    let mut hash = Sha256::new();
    for part in [delivery, &index.to_string(), &place.id(), piece] {
        hash.update(part.len().to_le_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(&hash.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_what_a_retry_can_do() {
        assert_eq!(
            classify(429, Some(Duration::from_millis(2500)), b"{}"),
            SendError::RateLimited {
                retry_after: Duration::from_millis(2500)
            }
        );
        assert_eq!(
            classify(
                429,
                None,
                br#"{"message":"You are being rate limited.","retry_after":0.75,"global":false}"#
            ),
            SendError::RateLimited {
                retry_after: Duration::from_millis(750)
            }
        );
        assert_eq!(
            classify(429, None, b"not json"),
            SendError::RateLimited {
                retry_after: DEFAULT_RETRY_AFTER
            }
        );
        assert!(matches!(
            classify(502, None, b""),
            SendError::Unavailable(_)
        ));
        assert!(matches!(
            classify(403, None, br#"{"code":50007,"message":"Cannot send messages to this user"}"#),
            SendError::Unreachable(m) if m.contains("50007")
        ));
        assert!(matches!(
            classify(
                400,
                None,
                br#"{"code":50007,"message":"Cannot send messages to this user"}"#
            ),
            SendError::Unreachable(_)
        ));
        assert!(matches!(
            classify(404, None, br#"{"code":10003,"message":"Unknown Channel"}"#),
            SendError::Unreachable(_)
        ));
        assert!(matches!(
            classify(400, None, br#"{"code":50035,"message":"Invalid Form Body"}"#),
            SendError::Rejected(m) if m.contains("Invalid Form Body")
        ));
        assert!(matches!(classify(401, None, b""), SendError::Rejected(_)));
    }

    #[test]
    fn retry_after_seconds_are_read_carefully() {
        assert_eq!(seconds("2"), Some(Duration::from_secs(2)));
        assert_eq!(seconds(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(seconds("99999"), Some(Duration::from_secs(3600)));
        for bad in ["", "-1", "NaN", "inf", "soon"] {
            assert_eq!(seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn nonces_are_short_stable_and_distinct() {
        let place = Place::Direct { channel: 5 };
        let a = nonce("outbox-1", 0, place, "hi");
        assert_eq!(a.len(), 24);
        assert_eq!(a, nonce("outbox-1", 0, place, "hi"));
        assert_ne!(a, nonce("outbox-1", 1, place, "hi"));
        assert_ne!(a, nonce("outbox-2", 0, place, "hi"));
        assert_ne!(a, nonce("outbox-1", 0, Place::Direct { channel: 6 }, "hi"));
        assert_ne!(a, nonce("outbox-1", 0, place, "ho"));
    }
}
