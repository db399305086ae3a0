//! kefu's WeChat channels: an Official Account (公众号, [`Wechat`]) and a WeCom application
//! (企业微信, [`Wecom`]).
//!
//! # How a message travels
//!
//! 1. WeChat posts each customer message to kefu's callback — `POST /wechat/mp` for an
//!    Official Account, `POST /wechat/work` for WeCom — signed with the account's Token and,
//!    in safe mode (always for WeCom), AES-encrypted with its EncodingAESKey ([`crypto`],
//!    [`xml`]). A forged signature, a timestamp more than five minutes off, a signed
//!    timestamp/nonce reused for another message, an oversize or malformed body are refused
//!    and counted ([`Rejections`]); nothing of them is processed.
//! 2. The message runs a turn of the engine, at most once however often WeChat retries it
//!    (by `MsgId`; events by sender and `CreateTime`).
//! 3. WeChat waits five seconds for the answer: a turn that finishes within the reply
//!    budget (4 s by default) is answered in the HTTP response (a passive reply, encrypted
//!    in safe mode); a slower one is answered `success` at once and its replies go through
//!    the outbox and the platform's message API ([`Wechat::channel`], [`Wecom::channel`])
//!    when it finishes. Agents' messages, notices and surveys take that way too.
//!
//! Conversations: `ConversationKey::new("wechat", openid)` for the Official Account
//! ([`CHANNEL`]) and `ConversationKey::new("wecom", userid)` for WeCom ([`WECOM_CHANNEL`]):
//! two channels, so each has its own sender. WeChat messages are always one-to-one.

mod api;
mod callback;
pub mod crypto;
mod mp;
mod work;
pub mod xml;

pub use callback::REPLAY_WINDOW;
pub use mp::{Wechat, WechatSettings, MP_PATH};
pub use work::{Wecom, WecomSettings, WORK_PATH};

use kefu_core::limit::{RefusalCause, RefusalCounts};

/// The channel name of Official Account conversations.
pub const CHANNEL: &str = "wechat";

/// The channel name of WeCom conversations.
pub const WECOM_CHANNEL: &str = "wecom";

/// The largest callback body accepted by default (64 KiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a turn may take by default and still be answered in the HTTP response: WeChat
/// gives up after 5 s, and the answer still has to travel.
pub const DEFAULT_REPLY_BUDGET: std::time::Duration = std::time::Duration::from_secs(4);

/// Why a channel could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WechatError {
    /// The settings are wrong (an empty token, a malformed EncodingAESKey, an API address
    /// that is not a URL).
    #[error("{0}")]
    Settings(String),
}

/// Callback requests refused so far, by cause (for `/metrics`).
pub type Rejections = RefusalCounts<Cause>;

/// Why a callback request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A signature parameter missing or wrong (403).
    Signature,
    /// The timestamp is more than [`REPLAY_WINDOW`] from the server's clock (403).
    Stale,
    /// A signed timestamp and nonce seen before with another message (403).
    Replayed,
    /// The encrypted message did not decrypt, or was for another AppID / CorpID (403).
    Decrypt,
    /// The body was over the size limit (413).
    TooLarge,
    /// The body was not a WeChat message (400).
    Malformed,
    /// The turn failed in time; WeChat delivers the message again (503).
    Unavailable,
}

impl RefusalCause for Cause {
    const ALL: &'static [Cause] = &[
        Cause::Signature,
        Cause::Stale,
        Cause::Replayed,
        Cause::Decrypt,
        Cause::TooLarge,
        Cause::Malformed,
        Cause::Unavailable,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Cause::Signature => "signature_mismatch",
            Cause::Stale => "stale_timestamp",
            Cause::Replayed => "replayed",
            Cause::Decrypt => "decrypt_failed",
            Cause::TooLarge => "too_large",
            Cause::Malformed => "malformed",
            Cause::Unavailable => "unavailable",
        }
    }
}
