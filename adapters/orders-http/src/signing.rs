//! Request and response signatures: HMAC-SHA256 with the secret kefu and the shop share.
//!
//! Both sides use these functions, so a shop written in Rust can reuse them and a shop in
//! another language can check its implementation against them (the recipe and a worked example
//! are in `docs/orders-api.md`).
//!
//! A request is signed over
//!
//! ```text
//! kefu-request-v1\n{timestamp}\n{METHOD}\n{path and query}\n{body}
//! ```
//!
//! and a response over
//!
//! ```text
//! kefu-response-v1\n{timestamp}\n{status}\n{request signature}\n{body}
//! ```
//!
//! where `timestamp` is unix seconds in decimal, the path is exactly as sent in the request
//! line (percent-escapes included), and the body is the raw bytes (empty for `GET`). Including
//! the request's signature in the response's ties each answer to the one request it answers,
//! so a recorded answer cannot be replayed for another request. Signatures travel as lower-case
//! hex in [`SIGNATURE_HEADER`], timestamps in [`TIMESTAMP_HEADER`].

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

/// The header with the signer's clock in unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-kefu-timestamp";
/// The header with the hex HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-kefu-signature";
/// The header that names one cancel or refund call, the same on each of its retries.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// How far, in seconds, a signed timestamp may be from the checker's clock.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The timestamp or signature header is absent.
    #[error("the timestamp or signature header is missing")]
    Missing,
    /// The timestamp is not unix seconds, or the signature is not 64 hex digits.
    #[error("the timestamp or signature header is malformed")]
    Malformed,
    /// The timestamp is further than [`MAX_CLOCK_SKEW_SECS`] from the checker's clock.
    #[error("the timestamp is more than {MAX_CLOCK_SKEW_SECS} s away from this clock")]
    Stale,
    /// The signature does not match (wrong secret, or the message was changed).
    #[error("the signature does not match")]
    Mismatch,
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

fn request_mac(
    secret: &[u8],
    timestamp: u64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> HmacSha256 {
    let ts = timestamp.to_string();
    mac(
        secret,
        &[
            b"kefu-request-v1",
            ts.as_bytes(),
            method.to_ascii_uppercase().as_bytes(),
            path_and_query.as_bytes(),
        ],
        body,
    )
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
            b"kefu-response-v1",
            ts.as_bytes(),
            status.as_bytes(),
            request_signature.trim().to_ascii_lowercase().as_bytes(),
        ],
        body,
    )
}

/// The hex signature of a request.
pub fn sign_request(
    secret: &[u8],
    timestamp: u64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    hex::encode(
        request_mac(secret, timestamp, method, path_and_query, body)
            .finalize()
            .into_bytes(),
    )
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

/// Checks a request's headers (as received, `None` when absent) against its method, path with
/// query, and body, with `now` as this side's clock in unix seconds.
pub fn verify_request(
    secret: &[u8],
    now: u64,
    timestamp: Option<&str>,
    signature: Option<&str>,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<(), SignatureError> {
    let ts = fresh_timestamp(timestamp, now)?;
    check(
        request_mac(secret, ts, method, path_and_query, body),
        signature,
    )
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

    #[test]
    fn the_documented_example_signs_as_documented() {
        // The worked example in docs/orders-api.md.
        let body = br#"{"proof":{"type":"secret","value":"pass1234"}}"#;
        let req = sign_request(
            SECRET,
            1_700_000_000,
            "POST",
            "/orders/KM0000000001/verify",
            body,
        );
        assert_eq!(
            req,
            "3c77a9909475c8e32ecabcce6c40ba5f2eab2685cf9526a618c240f79fcb1df6"
        );
        let resp = sign_response(SECRET, 1_700_000_001, 200, &req, br#"{"verified":true}"#);
        assert_eq!(
            resp,
            "179a9fc2e2b093c5c1a736c0e71b1cf7397955c1b883cc92b7fa3635d3c81869"
        );
    }

    #[test]
    fn a_request_checks_out_only_as_it_was_signed() {
        let now = 1_700_000_000;
        let sig = sign_request(SECRET, now, "POST", "/orders/1/verify", b"{}");
        let ts = now.to_string();
        let ok = |secret: &[u8], now, method, path, body: &[u8]| {
            verify_request(secret, now, Some(&ts), Some(&sig), method, path, body)
        };
        assert_eq!(ok(SECRET, now, "POST", "/orders/1/verify", b"{}"), Ok(()));
        assert_eq!(
            ok(SECRET, now + 300, "post", "/orders/1/verify", b"{}"),
            Ok(())
        );
        assert_eq!(
            ok(SECRET, now + 301, "POST", "/orders/1/verify", b"{}"),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            ok(b"other", now, "POST", "/orders/1/verify", b"{}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            ok(SECRET, now, "POST", "/orders/2/verify", b"{}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            ok(SECRET, now, "POST", "/orders/1/verify", b"{ }"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_request(SECRET, now, None, Some(&sig), "POST", "/", b""),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_request(SECRET, now, Some("-1"), Some(&sig), "POST", "/", b""),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_request(SECRET, now, Some(&ts), Some("zz"), "POST", "/", b""),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn a_response_is_tied_to_its_request() {
        let now = 1_700_000_000;
        let ts = now.to_string();
        let req_a = sign_request(SECRET, now, "POST", "/orders/A/verify", b"{}");
        let req_b = sign_request(SECRET, now, "POST", "/orders/B/verify", b"{}");
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
