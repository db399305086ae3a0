//! Webhook mode: Telegram posts each update to `POST /telegram/webhook`; the secret header is
//! checked in constant time, and 200 is answered only once the turn is stored (anything else
//! makes Telegram deliver the update again).

use crate::{HandleError, Mode, Telegram};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use kefu_core::limit::{RefusalCause, RefusalCounts};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use teloxide::types::Update;

/// Where Telegram posts updates.
pub const WEBHOOK_PATH: &str = "/telegram/webhook";

/// The header Telegram sends the webhook's secret in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Why updates were refused, counted (for `/metrics`).
pub type Rejections = RefusalCounts<Cause>;

/// Why a webhook request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// No secret header, or the wrong secret.
    Secret,
    /// The body was over the size limit.
    TooLarge,
    /// The body was not an update.
    Malformed,
    /// The turn could not be stored (Telegram delivers the update again).
    Unavailable,
    /// A conversation sent more messages than its rate allows (dropped, polling or webhook).
    RateLimited,
}

impl RefusalCause for Cause {
    const ALL: &'static [Cause] = &[
        Cause::Secret,
        Cause::TooLarge,
        Cause::Malformed,
        Cause::Unavailable,
        Cause::RateLimited,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Cause::Secret => "secret_mismatch",
            Cause::TooLarge => "too_large",
            Cause::Malformed => "malformed",
            Cause::Unavailable => "unavailable",
            Cause::RateLimited => "rate_limited_conversation",
        }
    }
}

impl Telegram {
    /// The webhook route (`POST /telegram/webhook`) in webhook mode; no routes when polling.
    pub fn router(self: &Arc<Self>) -> Router {
        if !matches!(self.settings.mode, Mode::Webhook { .. }) {
            return Router::new();
        }
        Router::new()
            .route(crate::WEBHOOK_PATH, post(receive))
            .layer(DefaultBodyLimit::max(self.settings.max_body_bytes))
            .with_state(self.clone())
    }

    fn refuse(&self, cause: Cause, status: StatusCode, message: &str) -> Response {
        self.rejections.count(cause);
        tracing::info!(
            cause = cause.as_str(),
            "Telegram webhook request refused: {message}"
        );
        (status, format!("{message}\n")).into_response()
    }
}

/// Whether `given` is the webhook's secret, in time that does not depend on where they differ.
fn secret_matches(expected: &str, given: Option<&[u8]>) -> bool {
    match given {
        Some(given) => bool::from(expected.as_bytes().ct_eq(given)),
        None => false,
    }
}

async fn receive(
    State(telegram): State<Arc<Telegram>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Mode::Webhook { secret, .. } = &telegram.settings.mode else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given = headers.get(SECRET_HEADER).map(|v| v.as_bytes());
    if !secret_matches(secret, given) {
        return telegram.refuse(
            Cause::Secret,
            StatusCode::UNAUTHORIZED,
            "the secret token is missing or wrong; nothing was processed",
        );
    }
    let body = match body {
        Ok(body) if body.len() <= telegram.settings.max_body_bytes => body,
        Ok(_) => {
            return telegram.refuse(
                Cause::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                "the update is larger than the configured limit",
            )
        }
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return telegram.refuse(
                Cause::TooLarge,
                StatusCode::PAYLOAD_TOO_LARGE,
                "the update is larger than the configured limit",
            )
        }
        Err(rejection) => {
            return telegram.refuse(
                Cause::Malformed,
                StatusCode::BAD_REQUEST,
                &format!("the body could not be read: {}", rejection.body_text()),
            )
        }
    };
    let update: Update = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(e) => {
            return telegram.refuse(
                Cause::Malformed,
                StatusCode::BAD_REQUEST,
                &format!("the body is not a Telegram update: {e}"),
            )
        }
    };
    let id = update.id.0;
    if telegram.lock(&telegram.handled).contains(&id) {
        tracing::debug!(
            update = id,
            "a Telegram update delivered again; already handled"
        );
        return StatusCode::OK.into_response();
    }
    match telegram.handle(&update).await {
        Ok(()) => {
            telegram.lock(&telegram.handled).insert(id, ());
            StatusCode::OK.into_response()
        }
        Err(e) => {
            tracing::warn!(update = id, error = %e, "a Telegram update could not be handled; Telegram will deliver it again");
            let message = match e {
                HandleError::NotReady => "the bot is still starting; deliver the update again",
                HandleError::Engine(_) => {
                    "the bot cannot store the message right now; deliver the update again"
                }
            };
            telegram.refuse(Cause::Unavailable, StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_must_match_exactly() {
        assert!(secret_matches("s3cret", Some(b"s3cret")));
        assert!(!secret_matches("s3cret", Some(b"s3cres")));
        assert!(!secret_matches("s3cret", Some(b"s3cret-longer")));
        assert!(!secret_matches("s3cret", Some(b"")));
        assert!(!secret_matches("s3cret", None));
    }
}
