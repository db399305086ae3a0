//! Feeds arbitrary bytes to everything that reads what WeChat posts: the callback body (plain,
//! compatible or encrypted envelope), the decrypted message, the reply envelope, and the
//! decryption of `Encrypt`; and checks the round trips: whatever text is encrypted decrypts
//! back, whatever text goes in a passive reply reads back (control characters aside).
#![no_main]

use kefu_wechat::crypto::MessageCrypt;
use kefu_wechat::xml;
use libfuzzer_sys::fuzz_target;

const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_ID: &str = "wx1234567890abcdef";

fuzz_target!(|data: &[u8]| {
    let crypt = MessageCrypt::new(KEY, APP_ID).expect("a valid key");
    if let Ok(body) = xml::parse_body(data) {
        if let Some(encrypt) = body.encrypt {
            if let Ok(plain) = crypt.decrypt(&encrypt) {
                let _ = xml::parse_message(plain.as_bytes());
            }
        }
    }
    let _ = xml::parse_message(data);
    let _ = xml::parse_reply_envelope(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crypt.decrypt(text);
        let _ = MessageCrypt::new(text, APP_ID);
        let encrypted = crypt.encrypt_with(&[7; 16], text);
        assert_eq!(crypt.decrypt(&encrypted).as_deref(), Ok(text));
        let reply = xml::text_reply("oUser", "gh_kefu", 1, text);
        let parsed = xml::parse_text_reply(reply.as_bytes()).expect("a reply reads back");
        let expected: String = text
            .chars()
            .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
            .filter(|c| !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
            .collect();
        assert_eq!(parsed.content, expected.replace("\r\n", "\n").replace('\r', "\n"));
    }
});
