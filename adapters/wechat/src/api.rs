//! The platform's message API, for everything that is not a passive reply: the Official
//! Account's customer-service message (`message/custom/send`) and WeCom's application
//! message (`message/send`), with the access token they need, cached until it expires.
//!
//! The AppSecret / CorpSecret and the access token never appear in logs or errors: reqwest's
//! errors are stripped of their URL and every text is scrubbed of both.

use crate::callback::render;
use async_trait::async_trait;
use kefu_core::{Channel, Outbound, SendError};
use serde::Deserialize;
use std::time::Duration;
use tokio::time::Instant;

/// How long before its announced expiry a token is replaced.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// How long the platform is given to answer one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a rate-limited message waits (WeChat does not say).
const RATE_LIMIT_PAUSE: Duration = Duration::from_secs(60);

/// Whose API it is.
#[derive(Clone)]
pub(crate) enum Account {
    /// An Official Account: `cgi-bin/token`, `cgi-bin/message/custom/send`.
    Official { app_id: String, secret: String },
    /// A WeCom application: `cgi-bin/gettoken`, `cgi-bin/message/send`.
    Work {
        corp_id: String,
        secret: String,
        agent_id: i64,
    },
}

impl Account {
    fn secret(&self) -> &str {
        match self {
            Account::Official { secret, .. } | Account::Work { secret, .. } => secret,
        }
    }
}

/// The API client of one account; a [`Channel`] named after the account's conversations.
pub(crate) struct Api {
    name: &'static str,
    http: reqwest::Client,
    base: String,
    account: Account,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    /// The token last handed out, for scrubbing (a clone outside the async lock).
    last_token: std::sync::Mutex<String>,
}

#[derive(Deserialize)]
struct ApiReply {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Api {
    pub fn new(name: &'static str, base: &str, account: Account) -> Result<Self, String> {
        let base = base.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "the WeChat API address {base:?} must start with http:// or https://"
            ));
        }
        let http = reqwest::Client::builder()
            // rustls whatever other TLS backends the build links.
            .use_rustls_tls()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("the HTTP client: {e}"))?;
        Ok(Api {
            name,
            http,
            base,
            account,
            token: tokio::sync::Mutex::new(None),
            last_token: std::sync::Mutex::new(String::new()),
        })
    }

    /// `text` without the secret or the access token.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        let secret = self.account.secret();
        if !secret.is_empty() {
            text = text.replace(secret, "<secret>");
        }
        let token = crate::callback::lock(&self.last_token).clone();
        if !token.is_empty() {
            text = text.replace(&token, "<token>");
        }
        text
    }

    fn network(&self, what: &str, e: reqwest::Error) -> SendError {
        SendError::Unavailable(self.scrub(&format!("{what}: {}", e.without_url())))
    }

    /// A valid access token: the cached one, or a new one (one request at a time). `stale`
    /// is a token the platform refused: it is dropped first, unless another caller already
    /// replaced it.
    async fn access_token(&self, stale: Option<&str>) -> Result<String, SendError> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref() {
            if Some(token.as_str()) != stale && Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        *cached = None;
        let request = match &self.account {
            Account::Official { app_id, secret } => self
                .http
                .get(format!("{}/cgi-bin/token", self.base))
                .query(&[
                    ("grant_type", "client_credential"),
                    ("appid", app_id.as_str()),
                    ("secret", secret.as_str()),
                ]),
            Account::Work {
                corp_id, secret, ..
            } => self
                .http
                .get(format!("{}/cgi-bin/gettoken", self.base))
                .query(&[
                    ("corpid", corp_id.as_str()),
                    ("corpsecret", secret.as_str()),
                ]),
        };
        let response = request
            .send()
            .await
            .map_err(|e| self.network("the access token request failed", e))?;
        let reply = self.read(response).await?;
        match (reply.errcode, reply.access_token) {
            (0, Some(token)) if !token.is_empty() => {
                let lifetime = Duration::from_secs(reply.expires_in.unwrap_or(7200));
                let usable = lifetime
                    .saturating_sub(TOKEN_MARGIN)
                    .max(lifetime / 2)
                    .max(Duration::from_secs(1));
                *crate::callback::lock(&self.last_token) = token.clone();
                *cached = Some((token.clone(), Instant::now() + usable));
                tracing::debug!(
                    channel = self.name,
                    expires_in_s = lifetime.as_secs(),
                    "WeChat access token fetched"
                );
                Ok(token)
            }
            (code, _) => {
                let message = self.scrub(&format!(
                    "no access token: errcode {code}: {}",
                    reply.errmsg
                ));
                tracing::warn!(channel = self.name, "{message}");
                Err(match code {
                    45009 | 45011 => SendError::RateLimited {
                        retry_after: RATE_LIMIT_PAUSE,
                    },
                    // A wrong secret or an address not on the IP allowlist can be fixed
                    // while the message waits.
                    _ => SendError::Unavailable(message),
                })
            }
        }
    }

    async fn read(&self, response: reqwest::Response) -> Result<ApiReply, SendError> {
        let status = response.status();
        if status.as_u16() == 429 {
            return Err(SendError::RateLimited {
                retry_after: RATE_LIMIT_PAUSE,
            });
        }
        if status.is_server_error() {
            return Err(SendError::Unavailable(format!(
                "the WeChat API answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(SendError::Rejected(format!(
                "the WeChat API answered {status}"
            )));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.network("the WeChat API's answer was cut off", e))?;
        serde_json::from_slice(&body).map_err(|e| {
            SendError::Unavailable(format!("the WeChat API's answer is not JSON: {e}"))
        })
    }

    /// Sends `content` to `user` with `token`; the platform's errcode and errmsg.
    async fn post(
        &self,
        token: &str,
        user: &str,
        content: &str,
    ) -> Result<(i64, String), SendError> {
        let (path, body) = match &self.account {
            Account::Official { .. } => (
                "cgi-bin/message/custom/send",
                serde_json::json!({
                    "touser": user,
                    "msgtype": "text",
                    "text": { "content": content },
                }),
            ),
            Account::Work { agent_id, .. } => (
                "cgi-bin/message/send",
                serde_json::json!({
                    "touser": user,
                    "msgtype": "text",
                    "agentid": agent_id,
                    "text": { "content": content },
                }),
            ),
        };
        let response = self
            .http
            .post(format!("{}/{path}", self.base))
            .query(&[("access_token", token)])
            .json(&body)
            .send()
            .await
            .map_err(|e| self.network("sending failed", e))?;
        let reply = self.read(response).await?;
        Ok((reply.errcode, reply.errmsg))
    }

    /// What an errcode means for the message.
    fn outcome(&self, code: i64, errmsg: &str) -> Result<(), SendError> {
        let message = || self.scrub(&format!("errcode {code}: {errmsg}"));
        match code {
            0 => Ok(()),
            // Outside the 48-hour window, the user unfollowed / is not the app's user, an
            // invalid OpenID / UserID.
            45015 | 43004 | 40003 | 81013 | 60111 | 43019 => Err(SendError::Unreachable(message())),
            // Reply-count and API-call limits.
            45047 | 45009 | 45011 | 45033 => Err(SendError::RateLimited {
                retry_after: RATE_LIMIT_PAUSE,
            }),
            -1 => Err(SendError::Unavailable(message())),
            _ => Err(SendError::Rejected(message())),
        }
    }

    pub async fn send(&self, message: &Outbound) -> Result<(), SendError> {
        let user = &message.conversation.id;
        let content = render(message);
        let token = self.access_token(None).await?;
        let (code, errmsg) = self.post(&token, user, &content).await?;
        if matches!(code, 40001 | 42001 | 40014 | 42007) {
            tracing::info!(
                channel = self.name,
                errcode = code,
                "the WeChat access token was refused; fetching a new one and sending again"
            );
            let token = self.access_token(Some(&token)).await?;
            let (code, errmsg) = self.post(&token, user, &content).await?;
            return self.outcome(code, &errmsg);
        }
        self.outcome(code, &errmsg)
    }
}

/// The channel over an [`Api`].
pub(crate) struct ApiChannel(pub std::sync::Arc<Api>);

#[async_trait]
impl Channel for ApiChannel {
    fn name(&self) -> &str {
        self.0.name
    }

    async fn send(&self, message: &Outbound) -> Result<(), SendError> {
        let sent = self.0.send(message).await;
        if let Err(e) = &sent {
            tracing::info!(channel = self.0.name, conversation = %message.conversation, error = %e, "a WeChat message was not sent");
        }
        sent
    }
}
