//! [`HttpOrders`]: the `Orders` port over the order API.

use crate::api::{
    escape_segment, CardKeysResponse, ChangeRequest, ChangeResponse, VerifyRequest, VerifyResponse,
};
use crate::signing::{
    new_nonce, sign_request, unix_now, verify_response, Signed, IDEMPOTENCY_HEADER, NONCE_HEADER,
    SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use async_trait::async_trait;
use kefu_core::{Order, OrderChange, Orders, OrdersError, Proof};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How to reach the shop's order system.
#[derive(Clone)]
pub struct HttpOrdersConfig {
    /// Where the API lives, e.g. `https://shop.example.com/kefu`; requests go to
    /// `{base_url}/orders/...`.
    pub base_url: String,
    /// The secret both sides sign with. Its `Debug` output is hidden.
    pub secret: String,
    /// How long one attempt may take, from connecting to the last byte of the answer.
    pub timeout: Duration,
    /// How long one call may take with all its retries: the customer's conversation waits
    /// meanwhile, so a slow order system costs a bounded wait.
    pub deadline: Duration,
    /// Accept an `http://` base URL on a loopback address (`127.0.0.1`, `::1`, `localhost`),
    /// for an order system on the same machine. Any other `http://` URL is refused: card keys
    /// and proofs must not cross a network in clear.
    pub allow_loopback_http: bool,
    /// Further attempts after a connection failure, a timeout or a 5xx answer.
    pub retries: u32,
    /// The pause before the first retry; it doubles with each further one.
    pub backoff: Duration,
    /// The longest pause between attempts.
    pub max_backoff: Duration,
    /// The largest answer accepted, in bytes.
    pub max_body_bytes: usize,
}

impl HttpOrdersConfig {
    /// A configuration with the defaults: 3 s per attempt, 2 retries, 5 s per call in all,
    /// pauses from 200 ms up to 2 s, answers up to 1 MiB, HTTPS only.
    pub fn new(base_url: impl Into<String>, secret: impl Into<String>) -> Self {
        HttpOrdersConfig {
            base_url: base_url.into(),
            secret: secret.into(),
            timeout: Duration::from_secs(3),
            deadline: Duration::from_secs(5),
            allow_loopback_http: false,
            retries: 2,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            max_body_bytes: 1024 * 1024,
        }
    }
}

impl std::fmt::Debug for HttpOrdersConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOrdersConfig")
            .field("base_url", &self.base_url)
            .field("secret", &"<hidden>")
            .field("timeout", &self.timeout)
            .field("deadline", &self.deadline)
            .field("allow_loopback_http", &self.allow_loopback_http)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("max_backoff", &self.max_backoff)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// Why an [`HttpOrders`] could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The base URL is not an `http` or `https` URL kefu can use.
    #[error("the order system's base URL is not usable: {0}")]
    BadBaseUrl(String),
    /// The shared secret is empty.
    #[error("the secret shared with the order system is empty")]
    EmptySecret,
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

/// The shop's order system, over HTTP: every request and every answer signed (see
/// [`crate::signing`]), attempts limited in time and retried with backoff.
pub struct HttpOrders {
    client: reqwest::Client,
    base: Url,
    secret: Vec<u8>,
    timeout: Duration,
    deadline: Duration,
    retries: u32,
    backoff: Duration,
    max_backoff: Duration,
    max_body_bytes: usize,
}

impl std::fmt::Debug for HttpOrders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpOrders")
            .field("base", &self.base.as_str())
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// Checks a base URL: `https` (or `http` to a loopback address when allowed), a host, no
/// credentials, query or fragment.
fn parse_base_url(raw: &str, allow_loopback_http: bool) -> Result<Url, ConfigError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(ConfigError::BadBaseUrl("it is empty".into()));
    }
    let url = Url::parse(raw).map_err(|e| ConfigError::BadBaseUrl(format!("{raw:?}: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        // Not echoed: it holds credentials.
        return Err(ConfigError::BadBaseUrl(
            "it contains a user name or password; requests are authenticated by the shared \
             secret instead"
                .into(),
        ));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::BadBaseUrl(format!(
            "{raw:?}: the scheme must be https (or http on a private network)"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::BadBaseUrl(format!("{raw:?}: it has no host")));
    }
    if url.scheme() == "http" {
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if !loopback {
            return Err(ConfigError::BadBaseUrl(format!(
                "{raw:?}: use https — card keys and customers' proofs must not cross a \
                 network in clear (plain http is accepted only for 127.0.0.1, ::1 or localhost, \
                 with allow_loopback_http)"
            )));
        }
        if !allow_loopback_http {
            return Err(ConfigError::BadBaseUrl(format!(
                "{raw:?}: plain http; use https, or for an order system on this machine set \
                 allow_loopback_http: true"
            )));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::BadBaseUrl(format!(
            "{raw:?}: it must not have a query (?...) or fragment (#...)"
        )));
    }
    Ok(url)
}

/// A signed, checked answer.
struct Reply {
    status: u16,
    body: Vec<u8>,
}

/// Why one attempt failed.
enum Failure {
    /// Worth another attempt: no connection, a timeout, a 5xx answer.
    Transient(String),
    /// Another attempt would fare the same.
    Final(String),
}

impl HttpOrders {
    /// A client for the order API at `config.base_url`.
    pub fn new(config: HttpOrdersConfig) -> Result<HttpOrders, ConfigError> {
        let base = parse_base_url(&config.base_url, config.allow_loopback_http)?;
        if config.secret.trim().is_empty() {
            return Err(ConfigError::EmptySecret);
        }
        let timeout = config.timeout.max(Duration::from_millis(1));
        let client = reqwest::Client::builder()
            // rustls whatever other TLS backends the build links.
            .use_rustls_tls()
            .connect_timeout(timeout)
            // A redirect would carry a signature made for another path; it is a failure.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kefu/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(HttpOrders {
            client,
            base,
            secret: config.secret.into_bytes(),
            timeout,
            deadline: config.deadline.max(timeout),
            retries: config.retries,
            backoff: config.backoff,
            max_backoff: config.max_backoff.max(config.backoff),
            max_body_bytes: config.max_body_bytes,
        })
    }

    /// The URL of `/orders/{number}{suffix}` under the base URL; `None` for a number that
    /// cannot be one path segment (empty, `.` or `..`, which URL normalisation would turn into
    /// another path).
    fn url(&self, number: &str, suffix: &str) -> Option<Url> {
        if number.trim().is_empty() || number.chars().all(|c| c == '.') {
            return None;
        }
        let mut url = self.base.clone();
        let path = format!(
            "{}/orders/{}{suffix}",
            self.base.path().trim_end_matches('/'),
            escape_segment(number)
        );
        url.set_path(&path);
        // Belt and braces: the path is exactly the one built, not a normalised other one.
        (url.path() == path).then_some(url)
    }

    /// The pause after failed attempt `attempt` (0-based): doubling from `backoff`, capped at
    /// `max_backoff`, the upper half of it random so that many clients do not retry in step.
    fn pause(&self, attempt: u32) -> Duration {
        let full = self
            .backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_backoff);
        let half = full / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    /// Sends one call, with retries; the answer's signature has been checked.
    async fn call(
        &self,
        method: Method,
        url: Url,
        body: Vec<u8>,
        idempotency_key: Option<String>,
    ) -> Result<Reply, OrdersError> {
        let what = format!("{method} {}", url.path());
        let started = tokio::time::Instant::now();
        let mut attempt = 0;
        loop {
            let left = self.deadline.saturating_sub(started.elapsed());
            match self
                .attempt(
                    &method,
                    &url,
                    &body,
                    idempotency_key.as_deref(),
                    &what,
                    self.timeout.min(left),
                )
                .await
            {
                Ok(reply) => return Ok(reply),
                Err(Failure::Final(message)) => return Err(OrdersError::Unavailable(message)),
                Err(Failure::Transient(message)) => {
                    let pause = self.pause(attempt);
                    // No retry that could not finish within the call's deadline.
                    let out_of_time =
                        started.elapsed() + pause + Duration::from_millis(50) >= self.deadline;
                    if attempt >= self.retries || out_of_time {
                        return Err(OrdersError::Unavailable(format!(
                            "{message} (gave up after {} attempts)",
                            attempt + 1
                        )));
                    }
                    tracing::warn!(
                        call = %what,
                        attempt = attempt + 1,
                        error = %message,
                        retry_in_ms = pause.as_millis() as u64,
                        "order system call failed; retrying"
                    );
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        body: &[u8],
        idempotency_key: Option<&str>,
        what: &str,
        timeout: Duration,
    ) -> Result<Reply, Failure> {
        let mut path = url.path().to_string();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        let timestamp = unix_now();
        // A new nonce for every attempt: a shop refuses any request it has seen before.
        let nonce = new_nonce();
        let signed = Signed {
            timestamp,
            nonce: &nonce,
            method: method.as_str(),
            path_and_query: &path,
            idempotency_key,
        };
        let signature = sign_request(&self.secret, &signed, body);
        let mut request = self
            .client
            .request(method.clone(), url.clone())
            .timeout(timeout.max(Duration::from_millis(1)))
            .header(reqwest::header::ACCEPT, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(NONCE_HEADER, &nonce)
            .header(SIGNATURE_HEADER, &signature);
        if *method == Method::POST {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        if let Some(key) = idempotency_key {
            request = request.header(IDEMPOTENCY_HEADER, key);
        }
        let mut response = request.send().await.map_err(|e| self.failed(&e, what))?;
        let status = response.status().as_u16();
        if status >= 500 && status != 501 {
            return Err(Failure::Transient(format!("{what} answered {status}")));
        }
        if status == 401 || status == 403 {
            return Err(Failure::Final(format!(
                "{what} was refused with {status}: kefu and the order system must share the \
                 same secret, and their clocks must agree within 5 minutes"
            )));
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (their_timestamp, their_signature) =
            (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER));
        if response
            .content_length()
            .is_some_and(|n| n > self.max_body_bytes as u64)
        {
            return Err(self.too_large(what));
        }
        let mut data = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.failed(&e, what))? {
            if data.len() + chunk.len() > self.max_body_bytes {
                return Err(self.too_large(what));
            }
            data.extend_from_slice(&chunk);
        }
        verify_response(
            &self.secret,
            unix_now(),
            their_timestamp.as_deref(),
            their_signature.as_deref(),
            status,
            &signature,
            &data,
        )
        .map_err(|e| {
            Failure::Final(format!(
                "{what} answered {status} without a valid signature ({e}); the answer was not \
                 trusted"
            ))
        })?;
        Ok(Reply { status, body: data })
    }

    fn too_large(&self, what: &str) -> Failure {
        Failure::Final(format!(
            "{what} answered with more than {} bytes",
            self.max_body_bytes
        ))
    }

    /// Describes a transport error without its URL or anything sent.
    fn failed(&self, error: &reqwest::Error, what: &str) -> Failure {
        if error.is_timeout() {
            return Failure::Transient(format!(
                "{what} timed out after {} ms",
                self.timeout.as_millis()
            ));
        }
        let mut cause: &dyn std::error::Error = error;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        if error.is_connect() {
            Failure::Transient(format!("{what}: could not connect ({cause})"))
        } else if error.is_redirect() || error.is_builder() {
            Failure::Final(format!("{what}: {cause}"))
        } else {
            Failure::Transient(format!("{what} failed ({cause})"))
        }
    }

    async fn get(&self, url: Url) -> Result<Reply, OrdersError> {
        self.call(Method::GET, url, Vec::new(), None).await
    }

    async fn post<B: serde::Serialize>(
        &self,
        url: Url,
        body: &B,
        idempotency_key: Option<String>,
    ) -> Result<Reply, OrdersError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| OrdersError::Unavailable(format!("cannot encode a request: {e}")))?;
        self.call(Method::POST, url, body, idempotency_key).await
    }

    /// Cancel or refund: the caller's idempotency key on every attempt of this call.
    async fn change(
        &self,
        number: &str,
        action: &str,
        body: ChangeRequest,
        key: &str,
        unsupported: &'static str,
    ) -> Result<OrderChange, OrdersError> {
        let url = self
            .url(number, action)
            .ok_or_else(|| not_a_number(number))?;
        let reply = self.post(url.clone(), &body, Some(key.to_string())).await?;
        match reply.status {
            200 => Ok(decode::<ChangeResponse>(&reply, &url)?.into()),
            404 | 501 => Err(OrdersError::Unsupported(unsupported)),
            status => Err(unexpected(status, "POST", &url)),
        }
    }
}

/// Parses a signed answer; the error names the place, never the content.
fn decode<T: DeserializeOwned>(reply: &Reply, url: &Url) -> Result<T, OrdersError> {
    serde_json::from_slice(&reply.body).map_err(|e| {
        OrdersError::Unavailable(format!(
            "{} answered {} with a body that is not the documented JSON (line {}, column {})",
            url.path(),
            reply.status,
            e.line(),
            e.column()
        ))
    })
}

fn not_a_number(number: &str) -> OrdersError {
    OrdersError::Unavailable(format!(
        "`{}` cannot be sent as an order number",
        number.escape_debug()
    ))
}

fn unexpected(status: u16, method: &str, url: &Url) -> OrdersError {
    OrdersError::Unavailable(format!("{method} {} answered {status}", url.path()))
}

#[async_trait]
impl Orders for HttpOrders {
    async fn find(&self, number: &str) -> Result<Option<Order>, OrdersError> {
        let Some(url) = self.url(number, "") else {
            return Ok(None);
        };
        let reply = self.get(url.clone()).await?;
        match reply.status {
            200 => {
                let order: Order = decode(&reply, &url)?;
                if order.number != number {
                    return Err(OrdersError::Unavailable(format!(
                        "GET {} answered with another order",
                        url.path()
                    )));
                }
                Ok(Some(order))
            }
            404 => Ok(None),
            status => Err(unexpected(status, "GET", &url)),
        }
    }

    async fn verify(&self, number: &str, proof: &Proof) -> Result<bool, OrdersError> {
        let Some(url) = self.url(number, "/verify") else {
            return Ok(false);
        };
        let body = VerifyRequest {
            proof: proof.into(),
        };
        let reply = self.post(url.clone(), &body, None).await?;
        match reply.status {
            200 => Ok(decode::<VerifyResponse>(&reply, &url)?.verified),
            404 => Ok(false),
            status => Err(unexpected(status, "POST", &url)),
        }
    }

    async fn card_keys(&self, number: &str) -> Result<Vec<String>, OrdersError> {
        let Some(url) = self.url(number, "/card_keys") else {
            return Ok(Vec::new());
        };
        let reply = self.get(url.clone()).await?;
        match reply.status {
            200 => Ok(decode::<CardKeysResponse>(&reply, &url)?.card_keys),
            404 => Ok(Vec::new()),
            status => Err(unexpected(status, "GET", &url)),
        }
    }

    async fn cancel(&self, number: &str, key: &str) -> Result<OrderChange, OrdersError> {
        self.change(
            number,
            "/cancel",
            ChangeRequest::default(),
            key,
            "cancelling orders",
        )
        .await
    }

    async fn refund(
        &self,
        number: &str,
        reason: &str,
        key: &str,
    ) -> Result<OrderChange, OrdersError> {
        let body = ChangeRequest {
            reason: Some(reason.to_string()),
        };
        self.change(number, "/refund", body, key, "refunds").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configurations_are_refused_clearly() {
        let new = |url: &str, secret: &str| HttpOrders::new(HttpOrdersConfig::new(url, secret));
        let err = |url: &str| new(url, "s").unwrap_err().to_string();
        assert!(err("").contains("empty"));
        assert!(err("shop.example.com/api").contains("shop.example.com/api"));
        assert!(err("ftp://shop.example.com").contains("scheme"));
        assert!(err("http://shop.example.com/api").contains("use https"));
        assert!(err("http://127.0.0.1:8080/api").contains("allow_loopback_http"));
        let loopback = |url: &str| {
            let mut config = HttpOrdersConfig::new(url, "s");
            config.allow_loopback_http = true;
            HttpOrders::new(config)
        };
        assert!(loopback("http://127.0.0.1:8080/api").is_ok());
        assert!(loopback("http://[::1]:8080").is_ok());
        assert!(loopback("http://localhost:8080").is_ok());
        assert!(loopback("http://10.0.0.5:8080").is_err());
        assert!(err("https://shop.example.com/api?x=1").contains("query"));
        let with_password = err("https://kefu:hunter2@shop.example.com");
        assert!(!with_password.contains("hunter2"), "{with_password}");
        assert!(matches!(
            new("https://shop.example.com", "  "),
            Err(ConfigError::EmptySecret)
        ));
        let ok = new("https://shop.example.com/api/kefu/", "s").unwrap();
        assert_eq!(
            ok.url("A/1 2", "/verify").unwrap().as_str(),
            "https://shop.example.com/api/kefu/orders/A%2F1%202/verify"
        );
        // Numbers that URL normalisation would turn into another path are never sent.
        for number in ["..", ".", "", " ", "...."] {
            assert_eq!(ok.url(number, "/verify"), None, "{number:?}");
        }
        assert!(
            !format!("{:?}", HttpOrdersConfig::new("https://x", "topsecret")).contains("topsecret")
        );
    }

    #[test]
    fn pauses_double_up_to_the_cap() {
        let mut config = HttpOrdersConfig::new("http://127.0.0.1:1", "s");
        config.allow_loopback_http = true;
        config.backoff = Duration::from_millis(100);
        config.max_backoff = Duration::from_millis(300);
        let orders = HttpOrders::new(config).unwrap();
        let within = |attempt, lo, hi| {
            let p = orders.pause(attempt).as_millis();
            assert!((lo..=hi).contains(&p), "attempt {attempt}: {p} ms");
        };
        within(0, 50, 100);
        within(1, 100, 200);
        within(2, 150, 300);
        within(30, 150, 300);
    }
}
