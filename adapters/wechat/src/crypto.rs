//! The callback protocol's signatures and message encryption ("safe mode", 安全模式), shared
//! by the Official Account and WeCom.
//!
//! - `signature` = hex SHA-1 of the lexicographically sorted `[token, timestamp, nonce]`;
//!   `msg_signature` = the same over `[token, timestamp, nonce, Encrypt]` ([`signature`]
//!   takes any number of parts).
//! - The message is AES-256-CBC encrypted with key = base64-decode(EncodingAESKey + "=") and
//!   IV = the key's first 16 bytes. The plaintext is 16 random bytes ‖ the XML's length (4
//!   bytes, big-endian) ‖ the XML ‖ the receive id (the AppID, or the CorpID for WeCom),
//!   padded PKCS#7-style to a multiple of **32** bytes (not AES's 16), then base64-encoded.
//!
//! Nothing here panics, whatever the input: every length, padding and encoding is checked.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// The block size the padding rounds up to.
const PAD_BLOCK: usize = 32;

/// Base64 as WeChat writes it, read leniently: padding optional and non-zero trailing bits
/// allowed — an EncodingAESKey's 43rd character carries two bits beyond the 32 bytes, and
/// WeChat's own examples (and Python's decoder) ignore them.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a key could not be used or a message could not be decrypted. The messages never
/// include key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The EncodingAESKey is not 43 base64 characters.
    #[error("the EncodingAESKey must be 43 characters of base64 (letters and digits)")]
    BadKey,
    /// The `Encrypt` text is not base64.
    #[error("the encrypted message is not base64")]
    NotBase64,
    /// The ciphertext's length is not a whole number of AES blocks, or it is empty.
    #[error("the encrypted message has an impossible length")]
    BadLength,
    /// The decrypted padding is not PKCS#7 to 32 bytes (a wrong key, or a forgery).
    #[error("the decrypted message's padding is wrong (wrong key?)")]
    BadPadding,
    /// The 4-byte length does not fit in what was decrypted.
    #[error("the decrypted message's length field is wrong")]
    BadFrame,
    /// The message's XML is not UTF-8.
    #[error("the decrypted message is not UTF-8")]
    NotUtf8,
    /// The message was encrypted for another AppID / CorpID.
    #[error("the message was encrypted for another AppID/CorpID")]
    WrongReceiver,
}

/// The hex SHA-1 of `parts` sorted lexicographically and concatenated: `signature` with
/// `[token, timestamp, nonce]`, `msg_signature` with `[token, timestamp, nonce, encrypt]`.
pub fn signature(parts: &[&str]) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Whether the signature `given` (hex, any case) is `expected`, compared in constant time.
pub fn signature_matches(expected: &str, given: &str) -> bool {
    let given = given.trim().to_ascii_lowercase();
    bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// The AES key and the receive id (AppID or CorpID) of one account: encrypts replies and
/// decrypts messages.
#[derive(Clone)]
pub struct MessageCrypt {
    key: [u8; 32],
    receive_id: String,
}

impl std::fmt::Debug for MessageCrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCrypt")
            .field("key", &"<hidden>")
            .field("receive_id", &self.receive_id)
            .finish()
    }
}

impl MessageCrypt {
    /// The crypt for `encoding_aes_key` (the 43 characters from the admin page) and
    /// `receive_id` (the AppID, or the CorpID for WeCom).
    pub fn new(encoding_aes_key: &str, receive_id: &str) -> Result<Self, CryptoError> {
        let key_text = encoding_aes_key.trim();
        if key_text.len() != 43 {
            return Err(CryptoError::BadKey);
        }
        let bytes = LENIENT
            .decode(format!("{key_text}="))
            .map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(MessageCrypt {
            key,
            receive_id: receive_id.to_string(),
        })
    }

    /// The receive id messages must carry.
    pub fn receive_id(&self) -> &str {
        &self.receive_id
    }

    /// Encrypts `xml` with fresh random bytes in front: the `Encrypt` text of a reply.
    pub fn encrypt(&self, xml: &str) -> String {
        let mut random = [0u8; 16];
        if getrandom::fill(&mut random).is_err() {
            // The prefix only varies the ciphertext; WeChat does not check it. Without an OS
            // random source, the time's nanoseconds still vary it.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            random = nanos.to_le_bytes();
        }
        self.encrypt_with(&random, xml)
    }

    /// Encrypts `xml` with the given 16 bytes in front (deterministic, for tests).
    pub fn encrypt_with(&self, random: &[u8; 16], xml: &str) -> String {
        let xml = xml.as_bytes();
        let mut plain = Vec::with_capacity(20 + xml.len() + self.receive_id.len() + PAD_BLOCK);
        plain.extend_from_slice(random);
        // A message over 4 GiB cannot be made (bodies are limited long before).
        plain.extend_from_slice(&(xml.len().min(u32::MAX as usize) as u32).to_be_bytes());
        plain.extend_from_slice(xml);
        plain.extend_from_slice(self.receive_id.as_bytes());
        let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let cipher = Encryptor::new(&self.key.into(), self.iv().into());
        let encrypted = cipher.encrypt_padded_vec_mut::<NoPadding>(&plain);
        base64::engine::general_purpose::STANDARD.encode(encrypted)
    }

    /// Decrypts an `Encrypt` text (or WeCom's encrypted `echostr`) into the XML (or text) it
    /// carries, checking the padding, the length and the receive id.
    pub fn decrypt(&self, encrypted: &str) -> Result<String, CryptoError> {
        let data = LENIENT
            .decode(encrypted.trim())
            .map_err(|_| CryptoError::NotBase64)?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err(CryptoError::BadLength);
        }
        let cipher = Decryptor::new(&self.key.into(), self.iv().into());
        let plain = cipher
            .decrypt_padded_vec_mut::<NoPadding>(&data)
            .map_err(|_| CryptoError::BadLength)?;
        let pad = usize::from(*plain.last().ok_or(CryptoError::BadLength)?);
        if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
            return Err(CryptoError::BadPadding);
        }
        let (content, padding) = plain.split_at(plain.len() - pad);
        if padding.iter().any(|b| usize::from(*b) != pad) {
            return Err(CryptoError::BadPadding);
        }
        let framed = content.get(16..).ok_or(CryptoError::BadFrame)?;
        let (length, rest) = framed
            .split_first_chunk::<4>()
            .ok_or(CryptoError::BadFrame)?;
        let length = u32::from_be_bytes(*length) as usize;
        if length > rest.len() {
            return Err(CryptoError::BadFrame);
        }
        let (xml, receive_id) = rest.split_at(length);
        if receive_id != self.receive_id.as_bytes() {
            return Err(CryptoError::WrongReceiver);
        }
        String::from_utf8(xml.to_vec()).map_err(|_| CryptoError::NotUtf8)
    }

    fn iv(&self) -> &[u8; 16] {
        // The key is 32 bytes: its first half is always there.
        self.key.first_chunk::<16>().unwrap_or(&[0; 16])
    }
}

#[cfg(test)]
#[path = "../tests/vectors/mod.rs"]
mod vectors;

#[cfg(test)]
mod tests {
    use super::*;
    use vectors as v;

    #[test]
    fn signatures_match_python_hashlib() {
        assert_eq!(signature(&[v::TOKEN, v::TIMESTAMP, v::NONCE]), v::SIGNATURE);
        // The order of the parts does not matter: they are sorted.
        assert_eq!(signature(&[v::NONCE, v::TOKEN, v::TIMESTAMP]), v::SIGNATURE);
        assert_eq!(
            signature(&[v::TOKEN, v::TIMESTAMP, v::NONCE, v::ENCRYPTED_MSG]),
            v::MSG_SIGNATURE
        );
        assert_eq!(
            signature(&[
                v::TOKEN,
                v::REPLY_TIMESTAMP,
                v::REPLY_NONCE,
                v::ENCRYPTED_REPLY
            ]),
            v::REPLY_SIGNATURE
        );
        assert!(signature_matches(
            v::SIGNATURE,
            &v::SIGNATURE.to_uppercase()
        ));
        assert!(!signature_matches(v::SIGNATURE, &v::SIGNATURE[1..]));
        assert!(!signature_matches(v::SIGNATURE, ""));
    }

    #[test]
    fn wecoms_published_example_verifies_and_decrypts() {
        use v::published as p;
        assert_eq!(
            signature(&[p::TOKEN, p::TIMESTAMP, p::NONCE, p::ECHOSTR]),
            p::MSG_SIGNATURE
        );
        let crypt = MessageCrypt::new(p::AES_KEY, p::CORP_ID).unwrap();
        assert_eq!(crypt.decrypt(p::ECHOSTR).unwrap(), p::ECHO_PLAINTEXT);
        let other = MessageCrypt::new(p::AES_KEY, "wx0000000000000000").unwrap();
        assert_eq!(other.decrypt(p::ECHOSTR), Err(CryptoError::WrongReceiver));
    }

    #[test]
    fn decrypts_what_python_encrypted_and_checks_the_appid() {
        let crypt = MessageCrypt::new(v::AES_KEY, v::APP_ID).unwrap();
        assert_eq!(crypt.decrypt(v::ENCRYPTED_MSG).unwrap(), v::MSG);
        assert_eq!(
            crypt.decrypt(v::ENCRYPTED_WRONG_APPID),
            Err(CryptoError::WrongReceiver)
        );
        assert_eq!(
            crypt.decrypt(v::ENCRYPTED_PAD_ZERO),
            Err(CryptoError::BadPadding)
        );
        assert_eq!(
            crypt.decrypt(v::ENCRYPTED_PAD_MIXED),
            Err(CryptoError::BadPadding)
        );
        let wecom = MessageCrypt::new(v::AES_KEY, v::CORP_ID).unwrap();
        assert_eq!(
            wecom.decrypt(v::WECOM_ECHOSTR).unwrap(),
            v::WECOM_ECHO_PLAINTEXT
        );
        assert_eq!(wecom.decrypt(v::WECOM_ENCRYPTED_MSG).unwrap(), v::WECOM_MSG);
    }

    #[test]
    fn encrypts_exactly_as_python_did() {
        let crypt = MessageCrypt::new(v::AES_KEY, v::APP_ID).unwrap();
        assert_eq!(crypt.encrypt_with(v::RANDOM, v::MSG), v::ENCRYPTED_MSG);
        assert_eq!(
            crypt.encrypt_with(v::REPLY_RANDOM, v::REPLY),
            v::ENCRYPTED_REPLY
        );
        // With a random prefix: different each time, same plaintext back.
        let a = crypt.encrypt("<xml>x</xml>");
        let b = crypt.encrypt("<xml>x</xml>");
        assert_ne!(a, b);
        assert_eq!(crypt.decrypt(&a).unwrap(), "<xml>x</xml>");
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            MessageCrypt::new("short", "x").unwrap_err(),
            CryptoError::BadKey
        );
        let not_base64 = "!".repeat(43);
        assert_eq!(
            MessageCrypt::new(&not_base64, "x").unwrap_err(),
            CryptoError::BadKey
        );
        let multibyte = "密".repeat(15); // 45 bytes
        assert!(MessageCrypt::new(&multibyte[..], "x").is_err());
    }

    #[test]
    fn hostile_ciphertexts_are_errors_not_panics() {
        let crypt = MessageCrypt::new(v::AES_KEY, v::APP_ID).unwrap();
        for bad in [
            "",
            "=",
            "AAAA",
            "not base64 at all!",
            "QUFBQUFBQUFBQUFBQUFBQQ==", // one block
            &"A".repeat(44),            // 33 bytes
            &base64::engine::general_purpose::STANDARD.encode([0u8; 32]),
            &base64::engine::general_purpose::STANDARD.encode([7u8; 4096]),
            &v::ENCRYPTED_MSG[..v::ENCRYPTED_MSG.len() - 24],
        ] {
            assert!(crypt.decrypt(bad).is_err(), "{bad:?} decrypted");
        }
        // Frames whose length field points past the end, or that are too short for it.
        for (random_and_len, tail) in [
            (&[0u8; 20][..], &b""[..]),
            (&[0xffu8; 20][..], &b"wx1234567890abcdef"[..]),
        ] {
            let mut plain = random_and_len.to_vec();
            plain.extend_from_slice(tail);
            let pad = 32 - plain.len() % 32;
            plain.extend(std::iter::repeat_n(pad as u8, pad));
            let cipher = Encryptor::new(&crypt.key.into(), crypt.iv().into());
            let enc = base64::engine::general_purpose::STANDARD
                .encode(cipher.encrypt_padded_vec_mut::<NoPadding>(&plain));
            assert!(crypt.decrypt(&enc).is_err());
        }
        // Non-UTF-8 XML with the right appid.
        let mut plain = vec![0u8; 16];
        plain.extend_from_slice(&2u32.to_be_bytes());
        plain.extend_from_slice(&[0xff, 0xfe]);
        plain.extend_from_slice(v::APP_ID.as_bytes());
        let pad = 32 - plain.len() % 32;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let cipher = Encryptor::new(&crypt.key.into(), crypt.iv().into());
        let enc = base64::engine::general_purpose::STANDARD
            .encode(cipher.encrypt_padded_vec_mut::<NoPadding>(&plain));
        assert_eq!(crypt.decrypt(&enc), Err(CryptoError::NotUtf8));
    }
}
