//! The conversation cookie: a random conversation id with an HMAC-SHA256 tag, so a browser
//! keeps its conversation across reloads and nobody can forge or guess another's.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cookie's name.
pub const NAME: &str = "kefu_chat";
/// Hex characters of a conversation id (128 random bits).
const ID_HEX: usize = 32;
/// Bytes of the tag kept (128 bits).
const TAG_BYTES: usize = 16;

/// Signs and checks conversation cookies with one key.
#[derive(Clone)]
pub struct CookieKey(Vec<u8>);

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(<hidden>)")
    }
}

impl CookieKey {
    /// A key from secret bytes (at least 32 recommended).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        CookieKey(secret.into())
    }

    fn mac(&self, purpose: &str, id: &str) -> Hmac<Sha256> {
        // new_from_slice takes keys of any length for HMAC.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(id.as_bytes());
        mac
    }

    /// The cookie value for conversation `id`.
    pub fn sign(&self, id: &str) -> String {
        let tag = self.mac("conversation", id).finalize().into_bytes();
        format!("{id}.{}", hex::encode(&tag[..TAG_BYTES]))
    }

    /// The conversation id of a cookie value, if its tag is right.
    pub fn verify<'a>(&self, value: &'a str) -> Option<&'a str> {
        let (id, tag) = value.split_once('.')?;
        if id.len() != ID_HEX || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let tag = hex::decode(tag).ok()?;
        if tag.len() != TAG_BYTES {
            return None;
        }
        self.mac("conversation", id)
            .verify_truncated_left(&tag)
            .ok()
            .map(|()| id)
    }

    /// The token a page of conversation `id` sends with its messages (against cross-site
    /// request forgery).
    pub fn csrf(&self, id: &str) -> String {
        hex::encode(&self.mac("csrf", id).finalize().into_bytes()[..TAG_BYTES])
    }

    /// Whether `token` is the token of conversation `id`.
    pub fn csrf_ok(&self, id: &str, token: &str) -> bool {
        match hex::decode(token) {
            Ok(tag) if tag.len() == TAG_BYTES => {
                self.mac("csrf", id).verify_truncated_left(&tag).is_ok()
            }
            _ => false,
        }
    }
}

/// A new random conversation id.
pub fn new_id() -> String {
    random_hex(ID_HEX / 2)
}

/// `bytes` random bytes from the operating system, as hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_id_verifies_and_a_changed_one_does_not() {
        let key = CookieKey::new(*b"0123456789abcdef0123456789abcdef");
        let id = new_id();
        let value = key.sign(&id);
        assert_eq!(key.verify(&value), Some(id.as_str()));
        let other = new_id();
        let (_, tag) = value.split_once('.').unwrap();
        assert_eq!(
            key.verify(&format!("{other}.{tag}")),
            None,
            "tag of another id"
        );
        assert_eq!(CookieKey::new(*b"another key").verify(&value), None);
        for bad in ["", ".", "abc", &id, &format!("{id}."), &format!("{id}.zz")] {
            assert_eq!(key.verify(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_tag_is_hmac_sha256_as_openssl_computes_it() {
        // printf 'conversation:00112233445566778899aabbccddeeff' \
        //   | openssl dgst -sha256 -hmac 'kefu-test-key' | cut -c1-32
        let key = CookieKey::new(*b"kefu-test-key");
        assert_eq!(
            key.sign("00112233445566778899aabbccddeeff"),
            "00112233445566778899aabbccddeeff.4111fcb2713708b44f42ee16e18e53cf"
        );
    }

    #[test]
    fn csrf_tokens_belong_to_their_conversation() {
        let key = CookieKey::new(*b"k");
        let (a, b) = (new_id(), new_id());
        assert!(key.csrf_ok(&a, &key.csrf(&a)));
        assert!(!key.csrf_ok(&b, &key.csrf(&a)));
        assert!(!key.csrf_ok(&a, "nonsense"));
    }
}
