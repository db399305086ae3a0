//! Test vectors for the WeChat protocol, made independently of kefu-wechat's code.
//!
//! Two kinds:
//!
//! 1. WeCom's published example (the `WXBizMsgCrypt` sample's URL verification): token
//!    `QDG6eK`, CorpID `wx5823bf96d3bd56c7`, EncodingAESKey
//!    `jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C`, `msg_signature`, `timestamp`, `nonce` and
//!    `echostr` below. Checked with Python before use: SHA-1 of the sorted four strings is the
//!    published `msg_signature`, and the echostr decrypts (AES-256-CBC, key and IV from the
//!    EncodingAESKey) to the published plaintext `1616140317555161061` followed by the CorpID.
//!    Note the key's last character `C` has non-zero trailing bits, which strict base64
//!    decoders refuse.
//! 2. Everything else was computed once with Python 3.11.7, `hashlib` and the `cryptography`
//!    package (version 48.0.0), by this script (`python3 make_vectors.py`), and pasted here:
//!
//! ```python
//! # Python 3 + hashlib + cryptography 48 (pip package `cryptography`): WeChat test vectors.
//! import base64, hashlib
//! from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
//!
//! def sig(*parts):
//!     return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()
//!
//! def encrypt(aes_key, random16, xml, receive_id, pad_override=None):
//!     key = base64.b64decode(aes_key + "=")
//!     body = random16 + len(xml.encode()).to_bytes(4, "big") + xml.encode() + receive_id.encode()
//!     n = 32 - len(body) % 32
//!     pad = bytes([n]) * n if pad_override is None else pad_override(n)
//!     e = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
//!     return base64.b64encode(e.update(body + pad) + e.finalize()).decode()
//!
//! TOKEN = "kefu-test-token"
//! AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
//! APP_ID = "wx1234567890abcdef"
//! TS, NONCE = "1700000000", "1234567890"
//! RANDOM = b"0123456789abcdef"
//! MSG = ("<xml><ToUserName><![CDATA[gh_kefu]]></ToUserName><FromUserName><![CDATA[oUser123]]></FromUserName>"
//!        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
//!        "<Content><![CDATA[请问怎么退款]]></Content><MsgId>24000000000000001</MsgId></xml>")
//! REPLY = ("<xml><ToUserName><![CDATA[oUser123]]></ToUserName><FromUserName><![CDATA[gh_kefu]]></FromUserName>"
//!          "<CreateTime>1700000001</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[您好]]></Content></xml>")
//! out = {}
//! out["SIGNATURE"] = sig(TOKEN, TS, NONCE)
//! out["ENCRYPTED_MSG"] = encrypt(AES_KEY, RANDOM, MSG, APP_ID)
//! out["MSG_SIGNATURE"] = sig(TOKEN, TS, NONCE, out["ENCRYPTED_MSG"])
//! out["ENCRYPTED_WRONG_APPID"] = encrypt(AES_KEY, RANDOM, MSG, "wx0000000000000000")
//! out["MSG_SIGNATURE_WRONG_APPID"] = sig(TOKEN, TS, NONCE, out["ENCRYPTED_WRONG_APPID"])
//! out["ENCRYPTED_REPLY"] = encrypt(AES_KEY, b"fedcba9876543210", REPLY, APP_ID)
//! out["REPLY_SIGNATURE"] = sig(TOKEN, "1700000001", "987654321", out["ENCRYPTED_REPLY"])
//! # Bad padding: a final pad byte of 0 and of 33, and inconsistent pad bytes.
//! out["ENCRYPTED_PAD_ZERO"] = encrypt(AES_KEY, RANDOM, MSG, APP_ID, lambda n: bytes(n))
//! out["ENCRYPTED_PAD_MIXED"] = encrypt(AES_KEY, RANDOM, MSG, APP_ID, lambda n: bytes([1]) * (n - 1) + bytes([n]))
//! # WeCom: receive id = CorpID.
//! CORP_ID = "ww1234567890abcdef"
//! WX_TS, WX_NONCE = "1700000100", "5555"
//! ECHO = encrypt(AES_KEY, RANDOM, "1616140317555161061", CORP_ID)
//! out["WECOM_ECHOSTR"] = ECHO
//! out["WECOM_ECHO_SIGNATURE"] = sig(TOKEN, WX_TS, WX_NONCE, ECHO)
//! WMSG = ("<xml><ToUserName><![CDATA[ww1234567890abcdef]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName>"
//!         "<CreateTime>1700000100</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[退款]]></Content>"
//!         "<MsgId>7000000000000000001</MsgId><AgentID>1000002</AgentID></xml>")
//! out["WECOM_ENCRYPTED_MSG"] = encrypt(AES_KEY, RANDOM, WMSG, CORP_ID)
//! out["WECOM_MSG_SIGNATURE"] = sig(TOKEN, WX_TS, WX_NONCE, out["WECOM_ENCRYPTED_MSG"])
//! for k, v in out.items():
//!     print(f'pub const {k}: &str = "{v}";')
//! ```
//!
//! Not every constant is used by every test crate that includes this module.
#![allow(dead_code)]

/// WeCom's published sample (see the module's documentation).
pub mod published {
    pub const TOKEN: &str = "QDG6eK";
    pub const CORP_ID: &str = "wx5823bf96d3bd56c7";
    pub const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    pub const MSG_SIGNATURE: &str = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3";
    pub const TIMESTAMP: &str = "1409659589";
    pub const NONCE: &str = "263014780";
    pub const ECHOSTR: &str =
        "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
    pub const ECHO_PLAINTEXT: &str = "1616140317555161061";
}

// The script's inputs.
pub const TOKEN: &str = "kefu-test-token";
pub const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub const APP_ID: &str = "wx1234567890abcdef";
pub const TIMESTAMP: &str = "1700000000";
pub const NONCE: &str = "1234567890";
pub const RANDOM: &[u8; 16] = b"0123456789abcdef";
pub const MSG: &str = "<xml><ToUserName><![CDATA[gh_kefu]]></ToUserName><FromUserName><![CDATA[oUser123]]></FromUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[请问怎么退款]]></Content><MsgId>24000000000000001</MsgId></xml>";
pub const REPLY: &str = "<xml><ToUserName><![CDATA[oUser123]]></ToUserName><FromUserName><![CDATA[gh_kefu]]></FromUserName><CreateTime>1700000001</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[您好]]></Content></xml>";
pub const REPLY_RANDOM: &[u8; 16] = b"fedcba9876543210";
pub const REPLY_TIMESTAMP: &str = "1700000001";
pub const REPLY_NONCE: &str = "987654321";
pub const CORP_ID: &str = "ww1234567890abcdef";
pub const WECOM_TIMESTAMP: &str = "1700000100";
pub const WECOM_NONCE: &str = "5555";
pub const WECOM_ECHO_PLAINTEXT: &str = "1616140317555161061";
pub const WECOM_MSG: &str = "<xml><ToUserName><![CDATA[ww1234567890abcdef]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1700000100</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[退款]]></Content><MsgId>7000000000000000001</MsgId><AgentID>1000002</AgentID></xml>";

// The script's output.
pub const SIGNATURE: &str = "ebfa0c5d4b26e7b912765f26aa4a52399aff7606";
pub const ENCRYPTED_MSG: &str = "Q3stYC6hdFzMh9T8HCvyDHG8Z+SzFdEtPOIXuCM9Vol7BBjnIy1CXVRqBlNIzBd1NP+/FoOQKFRS1tNWZGM1e593SdfwaBsNqxTuo2Wz8w/mXFp7/CwmiGfoDipPfIXhx7XXaJX0ExcoVc2P07sOZ8Hz3afZ7EJuQMK3cwJ2cc7USXzAyVJHMKVLDU1x3DRpqc9KzxhrRrO+v9bsK9YX5/1Y8ZvQd6ja6fdKhTvXVSI7loHy1pe/eOUM98Wh7ueTRXWjcd9eMhCNZN+Ebn8dDnsu+AHfU/qUhX8LBwY9dxRIPb8MNOGuumLZ+TxZhjjm6yiCGmsiCxMsvukmY+acCOsy+PH6h1QhFvF1jIlko6Xen03LrGHVwu9705zUMFKyUAnJEsfWQXmtcbZNpCPPOesvoveyqZtvmMVrMAzrtDI=";
pub const MSG_SIGNATURE: &str = "5ad6fe1e96147d7b998cb816d8ab94734bee2549";
pub const ENCRYPTED_WRONG_APPID: &str = "Q3stYC6hdFzMh9T8HCvyDHG8Z+SzFdEtPOIXuCM9Vol7BBjnIy1CXVRqBlNIzBd1NP+/FoOQKFRS1tNWZGM1e593SdfwaBsNqxTuo2Wz8w/mXFp7/CwmiGfoDipPfIXhx7XXaJX0ExcoVc2P07sOZ8Hz3afZ7EJuQMK3cwJ2cc7USXzAyVJHMKVLDU1x3DRpqc9KzxhrRrO+v9bsK9YX5/1Y8ZvQd6ja6fdKhTvXVSI7loHy1pe/eOUM98Wh7ueTRXWjcd9eMhCNZN+Ebn8dDnsu+AHfU/qUhX8LBwY9dxRIPb8MNOGuumLZ+TxZhjjm6yiCGmsiCxMsvukmY+acCOsy+PH6h1QhFvF1jIlko6XQaxJC6KsAa9QQW40sDrq7jB7rdRQbL2m+QYBlxBMXwmZpXCdxIXaNDt7ngmMyoR8=";
pub const MSG_SIGNATURE_WRONG_APPID: &str = "c80aa043e69581ae5db1a6ddac2377abcd9da5b8";
pub const ENCRYPTED_REPLY: &str = "DpQeJfnf/MGZ/+GTIspwVB8PXoBexUyic02p1fYWhbDdHjxo2WdMe8DIPqjRqPQ3aJrkxJAV7cXCQms9/Jg/zpUA5tuzYXiz0xmmKgU1TmRHt3XiCgaSSNaPCi/myKsQP5ZqPvZOxo6KZx9vd/M24U+ftRHEEU0H9j5pORJ6pUg8DJ0NJI3tnwsbFLhzeLPMvtUX0oLwf6kNuh+FbZNVu5uZpzoI+sZ/ZKS0gJrPXSMalIfBdq7kSgpetp0Fs0yllDxgTMa4I1+VI16fw3ts58e2cJvlLKG7gd9F42O5sU/0YTJ28rm8+RehqWVrDPZE48O1Uato5yQdrcE7FHr93g==";
pub const REPLY_SIGNATURE: &str = "76a45c32a4d8ddae44a31f9791e155e0c7a287d8";
pub const ENCRYPTED_PAD_ZERO: &str = "Q3stYC6hdFzMh9T8HCvyDHG8Z+SzFdEtPOIXuCM9Vol7BBjnIy1CXVRqBlNIzBd1NP+/FoOQKFRS1tNWZGM1e593SdfwaBsNqxTuo2Wz8w/mXFp7/CwmiGfoDipPfIXhx7XXaJX0ExcoVc2P07sOZ8Hz3afZ7EJuQMK3cwJ2cc7USXzAyVJHMKVLDU1x3DRpqc9KzxhrRrO+v9bsK9YX5/1Y8ZvQd6ja6fdKhTvXVSI7loHy1pe/eOUM98Wh7ueTRXWjcd9eMhCNZN+Ebn8dDnsu+AHfU/qUhX8LBwY9dxRIPb8MNOGuumLZ+TxZhjjm6yiCGmsiCxMsvukmY+acCOsy+PH6h1QhFvF1jIlko6Xen03LrGHVwu9705zUMFKyAH0xNxvxYMOImRJaoojVQFTCClDrvabW8PImorZgVnw=";
pub const ENCRYPTED_PAD_MIXED: &str = "Q3stYC6hdFzMh9T8HCvyDHG8Z+SzFdEtPOIXuCM9Vol7BBjnIy1CXVRqBlNIzBd1NP+/FoOQKFRS1tNWZGM1e593SdfwaBsNqxTuo2Wz8w/mXFp7/CwmiGfoDipPfIXhx7XXaJX0ExcoVc2P07sOZ8Hz3afZ7EJuQMK3cwJ2cc7USXzAyVJHMKVLDU1x3DRpqc9KzxhrRrO+v9bsK9YX5/1Y8ZvQd6ja6fdKhTvXVSI7loHy1pe/eOUM98Wh7ueTRXWjcd9eMhCNZN+Ebn8dDnsu+AHfU/qUhX8LBwY9dxRIPb8MNOGuumLZ+TxZhjjm6yiCGmsiCxMsvukmY+acCOsy+PH6h1QhFvF1jIlko6Xen03LrGHVwu9705zUMFKyvlSa0GUvnv0Gj6tdheNYbvWmLFmIZlAqQY+musszLQU=";
pub const WECOM_ECHOSTR: &str =
    "Q3stYC6hdFzMh9T8HCvyDH0IHJENRtL8kKsqSYgg4gClawqfEI4bjkd/sThBdy5abkkNPf3wQSpydibwulBNcw==";
pub const WECOM_ECHO_SIGNATURE: &str = "d0a3c470f516723de06bbbef2ebd00a358def18d";
pub const WECOM_ENCRYPTED_MSG: &str = "Q3stYC6hdFzMh9T8HCvyDC0JjB4HsbnTXiLzhn6WPaKf7A3QOocI58cUYaU5FE1PSKaXRY14UlPyGXs7dCo5hWzDO8I7C8rBXMmyjjLBjNRylfndv8NAkhq57d0X/MSBm8SBwYhw0o64RgVTPeJze7XwRHpTv+Bj5FrmTpln3+ehr9swq0so0/0y+Gwx0ocGcrOAPs44LtepZz/R/jk3ttDK2TrvrSPP/5DHCd9gT6cS237Ljy2IGGMLR9W7WVrakWwnqehuRbnyCi6rgK5dz4pEy/vl6+PDWfhcOppnGtfwNH7H5YSdjRsoLwSXDnlQCx/xwp5nDAn1uhxD4MO7maZsRvQ99zfjn0W+cPvQvDDxTRMH1r2m7rTOT/m4DV9IY7ZQSNGsg/Zs9rYQxVGFHfPrqZHmMa5KcZ1UnbMR+1gRuk/EZdx2qMXhccJXTNi47ucDcp3Wr+h2wa2xsWGzkg==";
pub const WECOM_MSG_SIGNATURE: &str = "2fb50cc585e155e80f434a9b0876ec3ee7a6183c";
