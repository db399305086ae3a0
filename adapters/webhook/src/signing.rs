//! Webhook signatures: HMAC-SHA256, with the secret kefu and the shop share, over
//!
//! ```text
//! {timestamp}.{body}
//! ```
//!
//! where `timestamp` is unix seconds in decimal ([`TIMESTAMP_HEADER`]) and `body` the raw bytes
//! of the request. The signature travels as 64 lower-case hex digits in [`SIGNATURE_HEADER`].
//! Messages kefu sends to the shop's callback URL are signed the same way with the same
//! secret. A request whose timestamp is more than [`MAX_CLOCK_SKEW_SECS`] from the receiver's
//! clock is refused, and within that window the message id is the idempotency key, so a
//! captured request sent again changes nothing.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{SystemTime, UNIX_EPOCH};

/// The header with the signer's clock in unix seconds.
pub const TIMESTAMP_HEADER: &str = "x-kefu-timestamp";
/// The header with the hex HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-kefu-signature";
/// How far, in seconds, a signed timestamp may be from the receiver's clock.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

type HmacSha256 = Hmac<Sha256>;

/// Why a request's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The timestamp or signature header is absent.
    #[error("the {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header is missing")]
    Missing,
    /// The timestamp is not unix seconds or the signature not 64 hex digits.
    #[error(
        "the {TIMESTAMP_HEADER} header must be unix seconds and {SIGNATURE_HEADER} 64 hex digits"
    )]
    Malformed,
    /// The timestamp is further than [`MAX_CLOCK_SKEW_SECS`] from this clock.
    #[error("the timestamp is more than {MAX_CLOCK_SKEW_SECS} s away from this server's clock (check both clocks, and sign each request when it is sent)")]
    Stale,
    /// The signature does not match (wrong secret, or the body was changed).
    #[error("the signature does not match the body (check the shared secret, and sign the exact bytes sent)")]
    Mismatch,
}

impl SignatureError {
    /// A short name for metrics and logs.
    pub fn cause(self) -> &'static str {
        match self {
            SignatureError::Missing => "signature_missing",
            SignatureError::Malformed => "signature_malformed",
            SignatureError::Stale => "signature_stale",
            SignatureError::Mismatch => "signature_mismatch",
        }
    }
}

/// The current unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature of `body` sent at `timestamp` (unix seconds), in hex.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

/// Checks a request's signature headers (as received; `None` when absent) against `body`
/// at `now` (unix seconds). The comparison takes the same time however much of the signature
/// matches.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: u64,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let timestamp: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed)?;
    let signature = signature.trim();
    if signature.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let signature = hex::decode(signature).map_err(|_| SignatureError::Malformed)?;
    if timestamp.abs_diff(now) > MAX_CLOCK_SKEW_SECS {
        return Err(SignatureError::Stale);
    }
    mac(secret, timestamp, body)
        .verify_slice(&signature)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed independently of this code, with OpenSSL:
    //   printf '%s' '1795413900.{"id":"m1","conversation":"c1","text":"hi"}' \
    //     | openssl dgst -sha256 -hmac 'shop-secret'
    const SECRET: &[u8] = b"shop-secret";
    const BODY: &[u8] = br#"{"id":"m1","conversation":"c1","text":"hi"}"#;
    const AT: u64 = 1_795_413_900;
    const EXPECTED: &str = "e0bc9102a0f7aaca6e9bdb5dcbd202d32006701c84b609197fb6db5b51e50b2a";

    #[test]
    fn signatures_match_an_independent_implementation() {
        assert_eq!(sign(SECRET, AT, BODY), EXPECTED.trim());
        assert_eq!(
            verify(
                SECRET,
                Some("1795413900"),
                Some(EXPECTED.trim()),
                BODY,
                AT + 299
            ),
            Ok(())
        );
    }

    #[test]
    fn forged_stale_missing_and_malformed_signatures_are_refused() {
        let good = sign(SECRET, AT, BODY);
        let at = Some("1795413900");
        assert_eq!(
            verify(b"other", at, Some(&good), BODY, AT),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, at, Some(&good), b"{}", AT),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some("1795413901"), Some(&good), BODY, AT),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, at, Some(&good), BODY, AT + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(SECRET, at, Some(&good), BODY, AT - 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(SECRET, None, Some(&good), BODY, AT),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(SECRET, at, None, BODY, AT),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(SECRET, Some("soon"), Some(&good), BODY, AT),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(SECRET, at, Some(&good[..63]), BODY, AT),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(SECRET, at, Some(&"zz".repeat(32)), BODY, AT),
            Err(SignatureError::Malformed)
        );
    }
}
