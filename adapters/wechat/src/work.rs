//! The WeCom (企业微信) application callback at `/wechat/work`: always encrypted, the
//! receive id is the CorpID.

use crate::api::{Account, Api, ApiChannel};
use crate::callback::Endpoint;
use crate::crypto::{self, MessageCrypt};
use crate::mp::{
    answer_once, check_common, decrypt, query_refused, read_body, signature_refused, stale_refused,
    Params,
};
use crate::{Cause, Rejections, WechatError, WECOM_CHANNEL};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kefu_core::outbox::Clock;
use kefu_core::{Channel, Engine, Outbox};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Where the WeCom callback is mounted (the URL entered under 接收消息 → 设置API接收).
pub const WORK_PATH: &str = "/wechat/work";

/// How a WeCom application is set up.
#[derive(Clone)]
pub struct WecomSettings {
    /// The Token entered under 接收消息.
    pub token: String,
    /// The company's CorpID (企业ID).
    pub corp_id: String,
    /// The application's Secret, for the access token of the message API.
    pub corp_secret: String,
    /// The application's AgentId.
    pub agent_id: i64,
    /// The EncodingAESKey entered under 接收消息 (43 characters; WeCom always encrypts).
    pub encoding_aes_key: String,
    /// The API's address (default `https://qyapi.weixin.qq.com`); a fake in tests.
    pub api_url: Option<String>,
    /// The largest callback body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a turn may take and still be answered in the HTTP response.
    pub reply_budget: Duration,
    /// The clock requests' timestamps are checked against (default: the system's, moving
    /// with tokio's time).
    pub clock: Clock,
}

impl WecomSettings {
    /// The settings with the default limits.
    pub fn new(
        token: impl Into<String>,
        corp_id: impl Into<String>,
        corp_secret: impl Into<String>,
        agent_id: i64,
        encoding_aes_key: impl Into<String>,
    ) -> Self {
        WecomSettings {
            token: token.into(),
            corp_id: corp_id.into(),
            corp_secret: corp_secret.into(),
            agent_id,
            encoding_aes_key: encoding_aes_key.into(),
            api_url: None,
            max_body_bytes: crate::DEFAULT_MAX_BODY_BYTES,
            reply_budget: crate::DEFAULT_REPLY_BUDGET,
            clock: Clock::new(),
        }
    }
}

impl std::fmt::Debug for WecomSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WecomSettings")
            .field("token", &"<hidden>")
            .field("corp_id", &self.corp_id)
            .field("corp_secret", &"<hidden>")
            .field("agent_id", &self.agent_id)
            .field("encoding_aes_key", &"<hidden>")
            .field("api_url", &self.api_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("reply_budget", &self.reply_budget)
            .finish()
    }
}

/// The WeCom channel: the application's callback in, the application message API out.
pub struct Wecom {
    endpoint: Arc<Endpoint>,
    api: Arc<Api>,
    crypt: MessageCrypt,
}

impl Wecom {
    /// A channel answering through `engine`, writing deferred replies to `outbox` (the
    /// engine's store's) and waking the outbox worker with `wake`.
    pub fn new(
        engine: Arc<Engine>,
        outbox: Arc<dyn Outbox>,
        wake: Arc<Notify>,
        settings: WecomSettings,
    ) -> Result<Arc<Self>, WechatError> {
        check_common(
            &settings.token,
            "CorpID",
            &settings.corp_id,
            "application Secret",
            &settings.corp_secret,
            settings.reply_budget,
            settings.max_body_bytes,
        )?;
        let corp_id = settings.corp_id.trim().to_string();
        let crypt = MessageCrypt::new(&settings.encoding_aes_key, &corp_id)
            .map_err(|e| WechatError::Settings(format!("the WeCom application's {e}")))?;
        let api = Api::new(
            WECOM_CHANNEL,
            settings
                .api_url
                .as_deref()
                .unwrap_or("https://qyapi.weixin.qq.com"),
            Account::Work {
                corp_id,
                secret: settings.corp_secret.trim().to_string(),
                agent_id: settings.agent_id,
            },
        )
        .map_err(WechatError::Settings)?;
        let endpoint = Endpoint::new(
            engine,
            outbox,
            wake,
            WECOM_CHANNEL,
            settings.token.trim().to_string(),
            Some(crypt.clone()),
            settings.max_body_bytes,
            settings.reply_budget,
            settings.clock,
        );
        Ok(Arc::new(Wecom {
            endpoint: Arc::new(endpoint),
            api: Arc::new(api),
            crypt,
        }))
    }

    /// The callback routes: `GET /wechat/work` (the URL check, an encrypted echostr) and
    /// `POST /wechat/work` (the messages).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(WORK_PATH, get(verify).post(receive))
            .layer(DefaultBodyLimit::max(self.endpoint.max_body_bytes))
            .with_state(self.clone())
    }

    /// The channel sending through the application message API (`cgi-bin/message/send`),
    /// named [`WECOM_CHANNEL`].
    pub fn channel(self: &Arc<Self>) -> Arc<dyn Channel> {
        Arc::new(ApiChannel(self.api.clone()))
    }

    /// Callback requests refused so far, by cause (for `/metrics`).
    pub fn rejections(&self) -> &Rejections {
        &self.endpoint.rejections
    }

    fn crypt(&self) -> &MessageCrypt {
        &self.crypt
    }
}

/// `GET /wechat/work`: the URL check; `echostr` is encrypted and answered decrypted.
async fn verify(
    State(wecom): State<Arc<Wecom>>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let endpoint = &wecom.endpoint;
    let Ok(Query(params)) = query else {
        return query_refused(endpoint);
    };
    let (Some(signature), Some(timestamp), Some(nonce), Some(echostr)) = (
        &params.msg_signature,
        &params.timestamp,
        &params.nonce,
        &params.echostr,
    ) else {
        return signature_refused(endpoint);
    };
    // A `+` sent unescaped arrives as a space; base64 has no spaces.
    let echostr = echostr.replace(' ', "+");
    let expected = crypto::signature(&[&endpoint.token, timestamp, nonce, &echostr]);
    if !crypto::signature_matches(&expected, signature) {
        return signature_refused(endpoint);
    }
    match wecom.crypt().decrypt(&echostr) {
        Ok(plain) => {
            tracing::info!("WeCom callback URL check passed");
            (StatusCode::OK, plain).into_response()
        }
        Err(e) => endpoint.refuse(
            Cause::Decrypt,
            StatusCode::FORBIDDEN,
            &format!("the echostr could not be decrypted: {e}"),
        ),
    }
}

/// `POST /wechat/work`: an encrypted message or event.
async fn receive(
    State(wecom): State<Arc<Wecom>>,
    query: Result<Query<Params>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let endpoint = &wecom.endpoint;
    let Ok(Query(params)) = query else {
        return query_refused(endpoint);
    };
    let (Some(_), Some(timestamp), Some(nonce)) =
        (&params.msg_signature, &params.timestamp, &params.nonce)
    else {
        return signature_refused(endpoint);
    };
    let parsed = match read_body(endpoint, body) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let Some(encrypt) = parsed.encrypt else {
        return endpoint.refuse(
            Cause::Malformed,
            StatusCode::BAD_REQUEST,
            "a WeCom message must be encrypted, but the body has no Encrypt",
        );
    };
    let message = match decrypt(endpoint, wecom.crypt(), &params, timestamp, nonce, &encrypt) {
        Ok(message) => message,
        Err(response) => return response,
    };
    if !endpoint.fresh(timestamp) {
        return stale_refused(endpoint);
    }
    answer_once(endpoint, timestamp, nonce, &message, true).await
}
