//! The webhook channel: messages that go out later (agents' replies, notices, surveys) are
//! posted to the shop's callback URL, signed like incoming messages.

use crate::server::ReplyOut;
use crate::signing::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::CHANNEL;
use async_trait::async_trait;
use kefu_core::{Channel, Outbound, SendError};
use serde::Serialize;
use std::time::Duration;

/// The header naming one outgoing message, the same on every retry: the shop drops repeats.
pub const DELIVERY_HEADER: &str = "idempotency-key";

/// How long a callback may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Posts messages to the shop's callback URL.
pub struct WebhookChannel {
    client: reqwest::Client,
    url: url::Url,
    secret: Vec<u8>,
}

impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// A callback URL that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CallbackUrlError(String);

impl WebhookChannel {
    /// A channel posting to `url` (https; http only to this machine), signing with `secret`.
    pub fn new(url: &str, secret: Vec<u8>) -> Result<Self, CallbackUrlError> {
        let url = url::Url::parse(url)
            .map_err(|e| CallbackUrlError(format!("the callback URL {url:?} is not a URL: {e}")))?;
        let local = matches!(url.host(), Some(url::Host::Domain("localhost")))
            || match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                _ => false,
            };
        match url.scheme() {
            "https" => {}
            "http" if local => {}
            "http" => {
                return Err(CallbackUrlError(format!(
                    "the callback URL {url} is plain http: messages and signatures would cross the network unencrypted — use https (http is allowed only to this machine)"
                )))
            }
            other => {
                return Err(CallbackUrlError(format!(
                    "the callback URL {url} has scheme {other:?}; use https"
                )))
            }
        }
        let client = reqwest::Client::builder()
            // rustls whatever other TLS backends the build links.
            .use_rustls_tls()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CallbackUrlError(format!("cannot set up the HTTP client: {e}")))?;
        Ok(WebhookChannel {
            client,
            url,
            secret,
        })
    }

    async fn post(&self, message: &Outbound, delivery: Option<&str>) -> Result<(), SendError> {
        let body = serde_json::to_vec(&Callback {
            conversation: &message.conversation.id,
            delivery,
            message: ReplyOut::from(message),
        })
        .map_err(|e| SendError::Rejected(format!("cannot encode the message: {e}")))?;
        let now = signing::unix_now();
        let mut request = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, now.to_string())
            .header(SIGNATURE_HEADER, signing::sign(&self.secret, now, &body));
        if let Some(delivery) = delivery {
            request = request.header(DELIVERY_HEADER, delivery);
        }
        let response = request.body(body).send().await.map_err(|e| {
            SendError::Unavailable(format!(
                "the callback URL did not answer: {}",
                without_url(&e)
            ))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(match status.as_u16() {
            429 => SendError::RateLimited {
                retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
            },
            408 | 500..=599 => SendError::Unavailable(format!("the callback URL answered {status}")),
            404 | 410 => SendError::Unreachable(format!(
                "the callback URL answered {status}: the shop no longer takes messages for this conversation"
            )),
            _ => SendError::Rejected(format!("the callback URL answered {status}")),
        })
    }
}

/// What the callback receives.
#[derive(Serialize)]
struct Callback<'a> {
    conversation: &'a str,
    /// The outgoing message's id (also in [`DELIVERY_HEADER`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<&'a str>,
    message: ReplyOut,
}

/// A request error without the URL (it may carry credentials in its query).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    kind.to_string()
}

#[async_trait]
impl Channel for WebhookChannel {
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
