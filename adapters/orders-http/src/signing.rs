//! Request and response signatures: HMAC-SHA256 with the secret kefu and the shop share.
//!
//! Both sides use these functions, so a shop written in Rust can reuse them and a shop in
//! another language can check its implementation against them (the recipe and a worked example
//! are in `docs/orders-api.md`).
//!
//! A request is signed over
//!
//! ```text
//! kefu-request-v2\n{timestamp}\n{nonce}\n{METHOD}\n{path and query}\n{idempotency key}\n{body}
//! ```
//!
//! and a response over
//!
//! ```text
//! kefu-response-v2\n{timestamp}\n{status}\n{request signature}\n{body}
//! ```
//!
//! where `timestamp` is unix seconds in decimal, `nonce` a fresh random value per request
//! ([`NONCE_HEADER`]), the path is exactly as sent in the request line (percent-escapes
//! included), the idempotency key is the [`IDEMPOTENCY_HEADER`] value (empty when there is
//! none), and the body is the raw bytes (empty for `GET`). A shop that remembers the nonces it
//! saw within the clock-skew window ([`NonceCache`]) refuses a captured request sent again;
//! the idempotency key is signed, so it cannot be swapped to make a change happen twice.
//! Including the request's signature in the response's ties each answer to the one request it
//! answers, so a recorded answer cannot be replayed for another request. Signatures travel as
//! lower-case hex in [`SIGNATURE_HEADER`], timestamps in [`TIMESTAMP_HEADER`].

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

/// The header with the signer's clock in unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-kefu-timestamp";
/// The header with the hex HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-kefu-signature";
/// The header that names one cancel or refund call, the same on each of its retries.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The header with the request's nonce: random, never sent twice.
pub const NONCE_HEADER: &str = "x-kefu-nonce";
/// How far, in seconds, a signed timestamp may be from the checker's clock.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The timestamp, nonce or signature header is absent.
    #[error("the timestamp, nonce or signature header is missing")]
    Missing,
    /// The timestamp is not unix seconds, the nonce not 16 to 128 letters, digits, `-` or
    /// `_`, or the signature not 64 hex digits.
    #[error("the timestamp, nonce or signature header is malformed")]
    Malformed,
    /// The timestamp is further than [`MAX_CLOCK_SKEW_SECS`] from the checker's clock.
    #[error("the timestamp is more than {MAX_CLOCK_SKEW_SECS} s away from this clock")]
    Stale,
    /// The signature does not match (wrong secret, or the message was changed).
    #[error("the signature does not match")]
    Mismatch,
    /// The nonce was seen before: the request is a replay.
    #[error("the request was sent before (its nonce was seen already)")]
    Replayed,
}

/// The signed headers of a request, as received (`None` when absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestHeaders<'a> {
    /// [`TIMESTAMP_HEADER`].
    pub timestamp: Option<&'a str>,
    /// [`NONCE_HEADER`].
    pub nonce: Option<&'a str>,
    /// [`SIGNATURE_HEADER`].
    pub signature: Option<&'a str>,
    /// [`IDEMPOTENCY_HEADER`].
    pub idempotency_key: Option<&'a str>,
}

/// A fresh nonce: 128 random bits in hex.
pub fn new_nonce() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn valid_nonce(nonce: &str) -> bool {
    (16..=128).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The current unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn mac(secret: &[u8], parts: &[&[u8]], body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
        mac.update(b"\n");
    }
    mac.update(body);
    mac
}

fn request_mac(secret: &[u8], request: &Signed<'_>, body: &[u8]) -> HmacSha256 {
    let ts = request.timestamp.to_string();
    mac(
        secret,
        &[
            b"kefu-request-v2",
            ts.as_bytes(),
            request.nonce.as_bytes(),
            request.method.to_ascii_uppercase().as_bytes(),
            request.path_and_query.as_bytes(),
            request.idempotency_key.unwrap_or("").as_bytes(),
        ],
        body,
    )
}

/// What a request's signature covers besides its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed<'a> {
    /// Unix seconds.
    pub timestamp: u64,
    /// The request's nonce ([`new_nonce`]).
    pub nonce: &'a str,
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The path and query exactly as in the request line.
    pub path_and_query: &'a str,
    /// The idempotency key, if the request carries one.
    pub idempotency_key: Option<&'a str>,
}

fn response_mac(
    secret: &[u8],
    timestamp: u64,
    status: u16,
    request_signature: &str,
    body: &[u8],
) -> HmacSha256 {
    let ts = timestamp.to_string();
    let status = status.to_string();
    mac(
        secret,
        &[
            b"kefu-response-v2",
            ts.as_bytes(),
            status.as_bytes(),
            request_signature.trim().to_ascii_lowercase().as_bytes(),
        ],
        body,
    )
}

/// The hex signature of a request.
pub fn sign_request(secret: &[u8], request: &Signed<'_>, body: &[u8]) -> String {
    hex::encode(request_mac(secret, request, body).finalize().into_bytes())
}

/// The hex signature of a response to the request signed `request_signature`.
pub fn sign_response(
    secret: &[u8],
    timestamp: u64,
    status: u16,
    request_signature: &str,
    body: &[u8],
) -> String {
    hex::encode(
        response_mac(secret, timestamp, status, request_signature, body)
            .finalize()
            .into_bytes(),
    )
}

/// Parses the timestamp header and checks it is within [`MAX_CLOCK_SKEW_SECS`] of `now`.
fn fresh_timestamp(timestamp: Option<&str>, now: u64) -> Result<u64, SignatureError> {
    let ts = timestamp.ok_or(SignatureError::Missing)?.trim();
    if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed);
    }
    let ts: u64 = ts.parse().map_err(|_| SignatureError::Malformed)?;
    if ts.abs_diff(now) > MAX_CLOCK_SKEW_SECS {
        return Err(SignatureError::Stale);
    }
    Ok(ts)
}

/// Checks `signature` against `mac` in constant time.
fn check(mac: HmacSha256, signature: Option<&str>) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::Missing)?.trim();
    let given = hex::decode(signature).map_err(|_| SignatureError::Malformed)?;
    if given.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// Checks a request's headers (as received) against its method, path with query, and body,
/// with `now` as this side's clock in unix seconds. A server refuses replays too by checking
/// with [`NonceCache::verify_request`] instead.
pub fn verify_request(
    secret: &[u8],
    now: u64,
    headers: &RequestHeaders<'_>,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<(), SignatureError> {
    verify_signed(secret, now, headers, method, path_and_query, body).map(|_| ())
}

/// [`verify_request`], answering the signed timestamp.
fn verify_signed(
    secret: &[u8],
    now: u64,
    headers: &RequestHeaders<'_>,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<u64, SignatureError> {
    let ts = fresh_timestamp(headers.timestamp, now)?;
    let nonce = headers.nonce.ok_or(SignatureError::Missing)?.trim();
    if !valid_nonce(nonce) {
        return Err(SignatureError::Malformed);
    }
    let signed = Signed {
        timestamp: ts,
        nonce,
        method,
        path_and_query,
        idempotency_key: headers.idempotency_key,
    };
    check(request_mac(secret, &signed, body), headers.signature)?;
    Ok(ts)
}

/// The nonces a server has seen lately, to refuse a request sent twice. A nonce is kept as
/// long as its request's timestamp could still pass the clock check ([`MAX_CLOCK_SKEW_SECS`]
/// either side), so any replay of a request that verifies is caught; memory is bounded by
/// the requests of about ten minutes.
#[derive(Debug, Default)]
pub struct NonceCache {
    seen: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl NonceCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`verify_request`], then the nonce of the request, which checked out, is recorded:
    /// [`SignatureError::Replayed`] when it was recorded already.
    pub fn verify_request(
        &self,
        secret: &[u8],
        now: u64,
        headers: &RequestHeaders<'_>,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let ts = verify_signed(secret, now, headers, method, path_and_query, body)?;
        self.check_and_remember(headers.nonce.unwrap_or_default(), ts, now)
    }

    /// Records `nonce` of a request signed at `timestamp`; [`SignatureError::Replayed`] if
    /// it was recorded already. Call it only for requests whose signature checked out.
    pub fn check_and_remember(
        &self,
        nonce: &str,
        timestamp: u64,
        now: u64,
    ) -> Result<(), SignatureError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        // A timestamp older than this cannot pass the clock check any more.
        let oldest = now.saturating_sub(MAX_CLOCK_SKEW_SECS);
        if seen.len() > 1024 {
            seen.retain(|_, at| *at >= oldest);
        }
        match seen.entry(nonce.trim().to_string()) {
            std::collections::hash_map::Entry::Occupied(_) => Err(SignatureError::Replayed),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(timestamp);
                Ok(())
            }
        }
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks a response's headers (as received, `None` when absent) against its status and body
/// and the signature of the request it answers, with `now` as this side's clock.
pub fn verify_response(
    secret: &[u8],
    now: u64,
    timestamp: Option<&str>,
    signature: Option<&str>,
    status: u16,
    request_signature: &str,
    body: &[u8],
) -> Result<(), SignatureError> {
    let ts = fresh_timestamp(timestamp, now)?;
    check(
        response_mac(secret, ts, status, request_signature, body),
        signature,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"s3cret-shared-with-the-shop";
    const NONCE: &str = "9f1c2ab4e07d43c8b5a6f0e1d2c3b4a5";

    fn signed<'a>(ts: u64, path: &'a str, key: Option<&'a str>) -> Signed<'a> {
        Signed {
            timestamp: ts,
            nonce: NONCE,
            method: "POST",
            path_and_query: path,
            idempotency_key: key,
        }
    }

    #[test]
    fn the_documented_example_signs_as_documented() {
        // The worked example in docs/orders-api.md; the expected values were computed with
        // Python's hmac module (see the docs for the commands), not with this code.
        let body = br#"{"proof":{"type":"secret","value":"pass1234"}}"#;
        let req = sign_request(
            SECRET,
            &signed(1_700_000_000, "/orders/KM0000000001/verify", None),
            body,
        );
        assert_eq!(
            req,
            "bb902ea158db4ed96b0bb982aa758e7e3d167f8b8592b969a5a5bf6f80d3a766"
        );
        let resp = sign_response(SECRET, 1_700_000_001, 200, &req, br#"{"verified":true}"#);
        assert_eq!(
            resp,
            "c53d9c5014411737c5f19d253d015d862179a0ff9d2d040c9ef60966b1687f50"
        );
        let refund = sign_request(
            SECRET,
            &signed(
                1_700_000_000,
                "/orders/KM0000000002/refund",
                Some("5b0e2f7a9c1d4e3f8a6b0c2d4e6f8a1b"),
            ),
            br#"{"reason":"never arrived"}"#,
        );
        assert_eq!(
            refund,
            "b24b75c39818a124c957c4d0604059b8778a9eaa2fa1916f2b7b93ce9e2d2106"
        );
    }

    #[test]
    fn a_request_checks_out_only_as_it_was_signed() {
        let now = 1_700_000_000;
        let sig = sign_request(SECRET, &signed(now, "/orders/1/verify", Some("k1")), b"{}");
        let ts = now.to_string();
        let headers = RequestHeaders {
            timestamp: Some(&ts),
            nonce: Some(NONCE),
            signature: Some(&sig),
            idempotency_key: Some("k1"),
        };
        let ok = |secret: &[u8], now, headers: &RequestHeaders<'_>, method, path, body: &[u8]| {
            verify_request(secret, now, headers, method, path, body)
        };
        assert_eq!(
            ok(SECRET, now, &headers, "POST", "/orders/1/verify", b"{}"),
            Ok(())
        );
        assert_eq!(
            ok(
                SECRET,
                now + 300,
                &headers,
                "post",
                "/orders/1/verify",
                b"{}"
            ),
            Ok(())
        );
        assert_eq!(
            ok(
                SECRET,
                now + 301,
                &headers,
                "POST",
                "/orders/1/verify",
                b"{}"
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            ok(b"other", now, &headers, "POST", "/orders/1/verify", b"{}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            ok(SECRET, now, &headers, "POST", "/orders/2/verify", b"{}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            ok(SECRET, now, &headers, "POST", "/orders/1/verify", b"{ }"),
            Err(SignatureError::Mismatch)
        );
        // The idempotency key and the nonce are signed: neither can be swapped.
        let other_key = RequestHeaders {
            idempotency_key: Some("k2"),
            ..headers
        };
        assert_eq!(
            ok(SECRET, now, &other_key, "POST", "/orders/1/verify", b"{}"),
            Err(SignatureError::Mismatch)
        );
        let other_nonce = RequestHeaders {
            nonce: Some("00000000000000000000000000000000"),
            ..headers
        };
        assert_eq!(
            ok(SECRET, now, &other_nonce, "POST", "/orders/1/verify", b"{}"),
            Err(SignatureError::Mismatch)
        );
        let missing = |h: RequestHeaders<'_>| ok(SECRET, now, &h, "POST", "/", b"");
        assert_eq!(
            missing(RequestHeaders {
                timestamp: None,
                ..headers
            }),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            missing(RequestHeaders {
                nonce: None,
                ..headers
            }),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            missing(RequestHeaders {
                timestamp: Some("-1"),
                ..headers
            }),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            missing(RequestHeaders {
                nonce: Some("short"),
                ..headers
            }),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            missing(RequestHeaders {
                signature: Some("zz"),
                ..headers
            }),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn a_nonce_is_accepted_once() {
        let cache = NonceCache::new();
        let now = 1_700_000_000;
        assert_eq!(cache.check_and_remember(NONCE, now, now), Ok(()));
        assert_eq!(
            cache.check_and_remember(NONCE, now, now + 299),
            Err(SignatureError::Replayed)
        );
        assert_eq!(cache.check_and_remember(&new_nonce(), now, now), Ok(()));
        assert_eq!(cache.len(), 2);
        assert!(valid_nonce(&new_nonce()));
    }

    #[test]
    fn a_response_is_tied_to_its_request() {
        let now = 1_700_000_000;
        let ts = now.to_string();
        let req_a = sign_request(SECRET, &signed(now, "/orders/A/verify", None), b"{}");
        let req_b = sign_request(SECRET, &signed(now, "/orders/B/verify", None), b"{}");
        let body = br#"{"verified":true}"#;
        let sig = sign_response(SECRET, now, 200, &req_a, body);
        let check = |status, req: &str, body: &[u8]| {
            verify_response(SECRET, now, Some(&ts), Some(&sig), status, req, body)
        };
        assert_eq!(check(200, &req_a, body), Ok(()));
        assert_eq!(check(200, &req_b, body), Err(SignatureError::Mismatch));
        assert_eq!(check(404, &req_a, body), Err(SignatureError::Mismatch));
        assert_eq!(
            check(200, &req_a, br#"{"verified":false}"#),
            Err(SignatureError::Mismatch)
        );
    }
}
