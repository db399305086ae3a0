//! The Official Account (公众号) callback at `/wechat/mp`.

use crate::api::{Account, Api, ApiChannel};
use crate::callback::Endpoint;
use crate::crypto::{self, MessageCrypt};
use crate::{xml, Cause, Rejections, WechatError, CHANNEL};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kefu_core::outbox::Clock;
use kefu_core::{Channel, Engine, Outbox};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Where the Official Account's callback is mounted (the URL entered in 服务器配置).
pub const MP_PATH: &str = "/wechat/mp";

/// How an Official Account is set up.
#[derive(Clone)]
pub struct WechatSettings {
    /// The Token entered in 服务器配置 (3–32 letters and digits).
    pub token: String,
    /// The account's AppID (开发者ID).
    pub app_id: String,
    /// The account's AppSecret, for the access token of the message API.
    pub app_secret: String,
    /// The EncodingAESKey (43 characters) for compatible and safe mode; `None` for
    /// plaintext mode.
    pub encoding_aes_key: Option<String>,
    /// The API's address (default `https://api.weixin.qq.com`); a fake in tests.
    pub api_url: Option<String>,
    /// The largest callback body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a turn may take and still be answered in the HTTP response.
    pub reply_budget: Duration,
    /// The clock requests' timestamps are checked against (default: the system's, moving
    /// with tokio's time).
    pub clock: Clock,
}

impl WechatSettings {
    /// Plaintext mode with the default limits.
    pub fn new(
        token: impl Into<String>,
        app_id: impl Into<String>,
        app_secret: impl Into<String>,
    ) -> Self {
        WechatSettings {
            token: token.into(),
            app_id: app_id.into(),
            app_secret: app_secret.into(),
            encoding_aes_key: None,
            api_url: None,
            max_body_bytes: crate::DEFAULT_MAX_BODY_BYTES,
            reply_budget: crate::DEFAULT_REPLY_BUDGET,
            clock: Clock::new(),
        }
    }
}

impl std::fmt::Debug for WechatSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatSettings")
            .field("token", &"<hidden>")
            .field("app_id", &self.app_id)
            .field("app_secret", &"<hidden>")
            .field(
                "encoding_aes_key",
                &self.encoding_aes_key.as_ref().map(|_| "<hidden>"),
            )
            .field("api_url", &self.api_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("reply_budget", &self.reply_budget)
            .finish()
    }
}

/// The Official Account channel: the callback in, the customer-service message API out.
pub struct Wechat {
    endpoint: Arc<Endpoint>,
    api: Arc<Api>,
}

/// Checks what both kinds of account need.
pub(crate) fn check_common(
    token: &str,
    id_name: &str,
    id: &str,
    secret_name: &str,
    secret: &str,
    reply_budget: Duration,
    max_body_bytes: usize,
) -> Result<(), WechatError> {
    let bad = |m: String| Err(WechatError::Settings(m));
    if token.trim().is_empty() {
        return bad("the WeChat callback Token is empty".into());
    }
    if id.trim().is_empty() {
        return bad(format!("the {id_name} is empty"));
    }
    if secret.trim().is_empty() {
        return bad(format!("the {secret_name} is empty"));
    }
    if reply_budget.is_zero() || reply_budget >= Duration::from_secs(5) {
        return bad(format!(
            "the reply budget must be under WeChat's 5 seconds (it is {} ms)",
            reply_budget.as_millis()
        ));
    }
    if max_body_bytes < 1024 {
        return bad("the callback body limit must be at least 1024 bytes".into());
    }
    Ok(())
}

impl Wechat {
    /// A channel answering through `engine`, writing deferred replies to `outbox` (the
    /// engine's store's) and waking the outbox worker with `wake`.
    pub fn new(
        engine: Arc<Engine>,
        outbox: Arc<dyn Outbox>,
        wake: Arc<Notify>,
        settings: WechatSettings,
    ) -> Result<Arc<Self>, WechatError> {
        check_common(
            &settings.token,
            "AppID",
            &settings.app_id,
            "AppSecret",
            &settings.app_secret,
            settings.reply_budget,
            settings.max_body_bytes,
        )?;
        let app_id = settings.app_id.trim().to_string();
        let crypt = match &settings.encoding_aes_key {
            Some(key) if !key.trim().is_empty() => Some(
                MessageCrypt::new(key, &app_id)
                    .map_err(|e| WechatError::Settings(format!("the Official Account's {e}")))?,
            ),
            _ => None,
        };
        let api = Api::new(
            CHANNEL,
            settings
                .api_url
                .as_deref()
                .unwrap_or("https://api.weixin.qq.com"),
            Account::Official {
                app_id,
                secret: settings.app_secret.trim().to_string(),
            },
        )
        .map_err(WechatError::Settings)?;
        let endpoint = Endpoint::new(
            engine,
            outbox,
            wake,
            CHANNEL,
            settings.token.trim().to_string(),
            crypt,
            settings.max_body_bytes,
            settings.reply_budget,
            settings.clock,
        );
        Ok(Arc::new(Wechat {
            endpoint: Arc::new(endpoint),
            api: Arc::new(api),
        }))
    }

    /// The callback routes: `GET /wechat/mp` (the server check) and `POST /wechat/mp` (the
    /// messages).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(MP_PATH, get(verify).post(receive))
            .layer(DefaultBodyLimit::max(self.endpoint.max_body_bytes))
            .with_state(self.clone())
    }

    /// The channel sending through the customer-service message API
    /// (`cgi-bin/message/custom/send`), named [`CHANNEL`].
    pub fn channel(self: &Arc<Self>) -> Arc<dyn Channel> {
        Arc::new(ApiChannel(self.api.clone()))
    }

    /// Callback requests refused so far, by cause (for `/metrics`).
    pub fn rejections(&self) -> &Rejections {
        &self.endpoint.rejections
    }
}

/// The callback's query parameters (all optional on the wire, checked here).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Params {
    pub signature: Option<String>,
    pub msg_signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    pub echostr: Option<String>,
    pub encrypt_type: Option<String>,
}

/// The body read and parsed, or the response refusing it.
// The error is the response, returned to the client at once: boxing it gains nothing.
#[allow(clippy::result_large_err)]
pub(crate) fn read_body(
    endpoint: &Endpoint,
    body: Result<Bytes, BytesRejection>,
) -> Result<xml::Body, Response> {
    let too_large = || {
        endpoint.refuse(
            Cause::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than the configured limit",
        )
    };
    let body = match body {
        Ok(body) if body.len() <= endpoint.max_body_bytes => body,
        Ok(_) => return Err(too_large()),
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(too_large())
        }
        Err(rejection) => {
            return Err(endpoint.refuse(
                Cause::Malformed,
                StatusCode::BAD_REQUEST,
                &format!("the body could not be read: {}", rejection.body_text()),
            ))
        }
    };
    xml::parse_body(&body)
        .map_err(|e| endpoint.refuse(Cause::Malformed, StatusCode::BAD_REQUEST, &e.to_string()))
}

/// A verified message answered, unless its signed timestamp and nonce came before with
/// another message (a replay).
pub(crate) async fn answer_once(
    endpoint: &Arc<Endpoint>,
    timestamp: &str,
    nonce: &str,
    message: &xml::Message,
    encrypted: bool,
) -> Response {
    if !endpoint.first_use(timestamp, nonce, &message.dedupe_key()) {
        return endpoint.refuse(
            Cause::Replayed,
            StatusCode::FORBIDDEN,
            "this signed timestamp and nonce came with another message before; nothing was processed",
        );
    }
    let answer = endpoint.deliver(message).await;
    endpoint.respond(answer, message, encrypted)
}

pub(crate) fn query_refused(endpoint: &Endpoint) -> Response {
    endpoint.refuse(
        Cause::Malformed,
        StatusCode::BAD_REQUEST,
        "the query string is malformed",
    )
}

pub(crate) fn signature_refused(endpoint: &Endpoint) -> Response {
    endpoint.refuse(
        Cause::Signature,
        StatusCode::FORBIDDEN,
        "the signature is missing or wrong; nothing was processed",
    )
}

pub(crate) fn stale_refused(endpoint: &Endpoint) -> Response {
    endpoint.refuse(
        Cause::Stale,
        StatusCode::FORBIDDEN,
        "the timestamp is more than 5 minutes from the server's clock; nothing was processed",
    )
}

/// `GET /wechat/mp`: the server check when the URL is saved in 服务器配置.
async fn verify(
    State(wechat): State<Arc<Wechat>>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let endpoint = &wechat.endpoint;
    let Ok(Query(params)) = query else {
        return query_refused(endpoint);
    };
    let (Some(signature), Some(timestamp), Some(nonce), Some(echostr)) = (
        &params.signature,
        &params.timestamp,
        &params.nonce,
        &params.echostr,
    ) else {
        return signature_refused(endpoint);
    };
    let expected = crypto::signature(&[&endpoint.token, timestamp, nonce]);
    if !crypto::signature_matches(&expected, signature) {
        return signature_refused(endpoint);
    }
    tracing::info!("WeChat Official Account server check passed");
    (StatusCode::OK, echostr.clone()).into_response()
}

/// `POST /wechat/mp`: a message or an event, in plaintext, compatible or safe mode.
async fn receive(
    State(wechat): State<Arc<Wechat>>,
    query: Result<Query<Params>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let endpoint = &wechat.endpoint;
    let Ok(Query(params)) = query else {
        return query_refused(endpoint);
    };
    let (Some(signature), Some(timestamp), Some(nonce)) =
        (&params.signature, &params.timestamp, &params.nonce)
    else {
        return signature_refused(endpoint);
    };
    let expected = crypto::signature(&[&endpoint.token, timestamp, nonce]);
    if !crypto::signature_matches(&expected, signature) {
        return signature_refused(endpoint);
    }
    if !endpoint.fresh(timestamp) {
        return stale_refused(endpoint);
    }
    let parsed = match read_body(endpoint, body) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let wants_aes = params.encrypt_type.as_deref() == Some("aes") || parsed.message.is_none();
    let (message, encrypted) = match (wants_aes, &endpoint.crypt, parsed.encrypt) {
        (true, Some(crypt), Some(encrypt)) => {
            match decrypt(endpoint, crypt, &params, timestamp, nonce, &encrypt) {
                Ok(message) => (message, true),
                Err(response) => return response,
            }
        }
        (true, None, _) if parsed.message.is_none() => {
            tracing::error!("a safe-mode WeChat message arrived, but no EncodingAESKey is configured: set it, or switch the account to plaintext or compatible mode");
            return endpoint.refuse(
                Cause::Malformed,
                StatusCode::BAD_REQUEST,
                "an encrypted message, but no EncodingAESKey is configured",
            );
        }
        (true, Some(_), None) => {
            return endpoint.refuse(
                Cause::Malformed,
                StatusCode::BAD_REQUEST,
                "encrypt_type=aes, but the body has no Encrypt",
            )
        }
        // Plaintext mode, or compatible mode without a key configured.
        _ => match parsed.message {
            Some(message) => (message, false),
            None => {
                return endpoint.refuse(
                    Cause::Malformed,
                    StatusCode::BAD_REQUEST,
                    "the body has no message",
                )
            }
        },
    };
    answer_once(endpoint, timestamp, nonce, &message, encrypted).await
}

/// Checks `msg_signature` and decrypts the message, or refuses the request.
#[allow(clippy::result_large_err)]
pub(crate) fn decrypt(
    endpoint: &Endpoint,
    crypt: &MessageCrypt,
    params: &Params,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
) -> Result<xml::Message, Response> {
    let Some(given) = &params.msg_signature else {
        return Err(signature_refused(endpoint));
    };
    let expected = crypto::signature(&[&endpoint.token, timestamp, nonce, encrypt]);
    if !crypto::signature_matches(&expected, given) {
        return Err(signature_refused(endpoint));
    }
    let plain = crypt.decrypt(encrypt).map_err(|e| {
        endpoint.refuse(
            Cause::Decrypt,
            StatusCode::FORBIDDEN,
            &format!("the message could not be decrypted: {e}; nothing was processed"),
        )
    })?;
    xml::parse_message(plain.as_bytes()).map_err(|e| {
        endpoint.refuse(
            Cause::Malformed,
            StatusCode::BAD_REQUEST,
            &format!("after decryption, {e}"),
        )
    })
}
