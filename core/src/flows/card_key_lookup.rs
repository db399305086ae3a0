//! Card-key lookup: the customer's card keys for an order.
//!
//! Needs the order number, then proof that the asker bought the order (the engine's ownership
//! check). The keys are sent only in a private chat — in a group the bot says so and shows
//! nothing — with how to redeem them. Transcripts, logs and everything an agent sees keep only
//! masked keys ([`mask`]); the audit log records who was shown which order's keys.

use super::{FlowSpec, ORDER_SLOT};
use crate::replies::Reply;

/// The flow's specification.
pub const SPEC: FlowSpec = FlowSpec {
    name: "card_key_lookup",
    slot: ORDER_SLOT,
    ask: Reply::AskOrderNo,
    needs_owner: true,
};

/// A card key with all but its last 4 characters hidden: `****-****-7F3K`-like, keeping
/// separators so the customer and agent can still tell keys apart.
pub fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let keep = chars.len().saturating_sub(4);
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i >= keep || !c.is_alphanumeric() {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// The keys as a numbered list, in full or masked.
pub fn list(keys: &[String], masked: bool) -> String {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let shown = if masked { mask(k) } else { k.clone() };
            format!("{}. {shown}", i + 1)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_the_last_four_characters() {
        assert_eq!(mask("ABCD-EFGH-IJKL-7F3K"), "****-****-****-7F3K");
        assert_eq!(mask("1234567890"), "******7890");
        assert_eq!(mask("abc"), "abc");
        assert_eq!(
            list(&["AAAA1111".to_string(), "BBBB2222".to_string()], true),
            "1. ****1111\n2. ****2222"
        );
    }
}
