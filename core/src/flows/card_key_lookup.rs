//! Card-key lookup: the customer's card keys for an order.
//!
//! Needs the order number, then proof that the asker bought the order (the engine's ownership
//! check). The keys are sent only in a private chat — in a group the bot says so and shows
//! nothing — with how to redeem them. Transcripts, logs and everything an agent sees keep only
//! masked keys ([`mask`]); the audit log records who was shown which order's keys.

use super::{Flow, OrderStep, ORDER_SLOT};
use crate::engine::EngineError;
use crate::orders::Order;
use crate::replies::Reply;
use crate::Action;
use async_trait::async_trait;

/// Audit action of card keys shown to their buyer.
pub const KEYS_SHOWN: &str = "card_key.shown";

/// The card-key lookup.
pub struct CardKeyLookup;

#[async_trait]
impl Flow for CardKeyLookup {
    fn name(&self) -> &'static str {
        "card_key_lookup"
    }

    fn action(&self) -> Option<Action> {
        Some(Action::CardKeyLookup)
    }

    fn slot(&self) -> &'static [&'static str] {
        ORDER_SLOT
    }

    fn private_only(&self) -> bool {
        true
    }

    async fn proven(&self, cx: &mut OrderStep<'_>, order: &Order) -> Result<(), EngineError> {
        let number = order.number.as_str();
        // One view taken (atomically) before the keys are fetched; given back when there turn
        // out to be none to show.
        let Some(view) = cx.take_key_view(number).await? else {
            tracing::warn!(conversation = %cx.key(), "card keys viewed too often today; a person checks");
            cx.say_about_order(Reply::KeyViewLimit, number);
            return cx.hand_off().await;
        };
        let keys = match cx.orders().card_keys(number).await {
            Ok(keys) => keys,
            Err(e) => {
                cx.give_back(&view).await?;
                return cx.orders_down(number, e).await;
            }
        };
        if keys.is_empty() {
            // None (yet): where the order stands says why.
            cx.give_back(&view).await?;
            cx.show_status(order);
            return Ok(());
        }
        let redeem = order
            .redeem
            .clone()
            .unwrap_or_else(|| Reply::RedeemDefault.text(cx.locale()).to_string());
        let shown = cx.order_text(
            Reply::CardKeys,
            order,
            [("redeem", redeem.clone()), ("keys", list(&keys, false))],
        );
        let recorded = cx.order_text(
            Reply::CardKeys,
            order,
            [("redeem", redeem), ("keys", list(&keys, true))],
        );
        // The transcript, and so every agent, sees the keys masked.
        cx.say_secret(shown, recorded);
        let masked: Vec<String> = keys.iter().map(|k| mask(k)).collect();
        cx.audit(
            KEYS_SHOWN,
            number,
            format!("{} key(s): {}", keys.len(), masked.join(", ")),
            view,
        )
        .await?;
        tracing::info!(conversation = %cx.key(), keys = keys.len(), "card keys shown to their buyer");
        Ok(())
    }
}

/// A card key as agents, transcripts and the audit log see it: `****` and at most the last
/// 4 characters of its last part, never more than a quarter of that part or of the whole key,
/// and nothing at all of a key of 8 or fewer letters and digits. Separators and the key's
/// length are not shown either, so `卡号 1234567890 密码 123456` shows only `****6`, not the
/// PIN's shape.
pub fn mask(key: &str) -> String {
    let secret_chars = key.chars().filter(|c| c.is_alphanumeric()).count();
    // The last part: the last run of ASCII letters and digits, `-`, `_` and `.` joining it.
    let last_part: Vec<char> = key
        .trim_end()
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .find(|part| part.chars().any(|c| c.is_ascii_alphanumeric()))
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let shown = if secret_chars <= 8 {
        0
    } else {
        4.min(last_part.len() / 4).min(secret_chars / 4)
    };
    let tail: String = last_part[last_part.len() - shown..].iter().collect();
    format!("****{tail}")
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
    fn masks_show_at_most_a_quarter_of_a_key_and_nothing_of_a_short_one() {
        assert_eq!(mask("ABCD-EFGH-IJKL-7F3K"), "****7F3K");
        assert_eq!(mask("1234567890123456"), "****3456");
        assert_eq!(mask("1234567890"), "****90");
        assert_eq!(mask("12345678"), "****");
        assert_eq!(mask("ab-cd-ef-gh"), "****");
        assert_eq!(mask("abc"), "****");
        assert_eq!(mask(""), "****");
        // A card number and its PIN: the PIN's digits and shape stay hidden.
        assert_eq!(mask("卡号 1234567890 密码 123456"), "****6");
        assert_eq!(mask("card 1234567890123 pin 1234"), "****4");
        assert_eq!(
            list(
                &["AAAA1111BBBB".to_string(), "CCCC2222DDDD".to_string()],
                true
            ),
            "1. ****BBB\n2. ****DDD"
        );
        for key in [
            "STEAM-AAAA-BBBB-7F3K",
            "卡号 1234567890 密码 123456",
            "X1Y2Z3W4Q5",
        ] {
            let masked = mask(key);
            let shown = masked.trim_start_matches('*').chars().count();
            let total = key.chars().filter(|c| c.is_alphanumeric()).count();
            assert!(shown * 4 <= total && shown <= 4, "{key} -> {masked}");
        }
    }
}
