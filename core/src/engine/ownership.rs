//! Flows that show an order: the ownership check, then the card keys or the delivery status.
//!
//! Nothing about an order is shown until the asker is proven its buyer, by the chat identity
//! the shop linked to the order or by a secret only the buyer knows (the query password, or the
//! e-mail or phone given at purchase). The proof holds for the conversation for
//! [`EngineConfig::verification_ttl_ms`](super::EngineConfig). A wrong proof and an unknown order
//! get the same answer. Failed proofs are recorded in the audit log under both the order and the
//! customer; after [`EngineConfig::max_failed_proofs`](super::EngineConfig) of either within the
//! window, lookups stop and the conversation goes to the risk group.

use super::{Engine, EngineError, Turn, REQUEST};
use crate::audit::AuditEvent;
use crate::conversation::{now_millis, FlowState, HandoffReason};
use crate::entities::{EMAIL, ORDER_NO, PHONE};
use crate::flows::{
    cancel_order, card_key_lookup, delivery_status, refund_request, ticket_progress, FlowSpec,
};
use crate::message::{OutboundKind, QuickReply};
use crate::orders::{Order, Orders, OrdersError, Proof};
use crate::replies::Reply;
use crate::{FaqEntry, Priority};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Audit action of a failed proof (recorded under the order and under the customer).
pub const PROOF_FAILED: &str = "order.proof_failed";
/// Audit action of a successful proof.
pub const VERIFIED: &str = "order.verified";
/// Audit action of a chat identity linked to an order.
pub const LINKED: &str = "order.linked";
/// Audit action of card keys shown to their buyer.
pub const KEYS_SHOWN: &str = "card_key.shown";

/// Where a proof is kept in the conversation: per customer, since a group chat is one
/// conversation of many customers.
fn proof_key(turn: &Turn, number: &str) -> String {
    format!("{}\u{1f}{number}", turn.conversation.user)
}

/// What in a reply to "prove this order is yours" may be the proof: the e-mail address and
/// phone number found, the whole message, and each ASCII word of 4 or more characters in it
/// ("密码是 pass1234"); nothing when the message has no ASCII letters or digits at all.
fn secrets_in(text: &str, found: &BTreeMap<String, String>) -> Vec<String> {
    let mut secrets: Vec<String> = [EMAIL, PHONE]
        .iter()
        .filter_map(|kind| found.get(*kind).cloned())
        .collect();
    if secrets.is_empty() && !text.chars().any(|c| c.is_ascii_alphanumeric()) {
        return secrets;
    }
    let words = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || "@._+-".contains(c)))
        .filter(|w| w.chars().filter(char::is_ascii_alphanumeric).count() >= 4);
    for candidate in std::iter::once(text.trim()).chain(words) {
        if !candidate.is_empty() && !secrets.iter().any(|s| s == candidate) {
            secrets.push(candidate.to_string());
        }
    }
    secrets
}

/// The template values every order reply has: `{order_no}`, `{product}`, `{amount}`.
pub(super) fn order_values(order: &Order) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ORDER_NO.to_string(), order.number.clone()),
        ("product".to_string(), order.product.clone()),
        (
            "amount".to_string(),
            refund_request::money(order.amount_cents, &order.currency),
        ),
    ])
}

pub(super) fn customer(turn: &Turn) -> String {
    format!(
        "customer:{}:{}",
        turn.conversation.key.channel, turn.conversation.user
    )
}

impl Engine {
    pub(super) fn order_system(&self) -> Arc<dyn Orders> {
        self.orders
            .clone()
            .expect("order flows run only with an order system")
    }

    /// Says `reply`, whose `{order_no}` is `number`.
    pub(super) fn say_about_order(
        &self,
        turn: &mut Turn,
        reply: Reply,
        number: &str,
        kind: OutboundKind,
    ) {
        let values = BTreeMap::from([(ORDER_NO.to_string(), number.to_string())]);
        let text = self.render(reply.text(turn.locale()), &values);
        self.push(turn, text, kind, Vec::new());
    }

    /// A flow that shows or changes an order has its number: check ownership, then go on.
    /// `request` is what the customer asked, for any ticket the flow opens.
    pub(super) async fn order_flow(
        &self,
        turn: &mut Turn,
        spec: &FlowSpec,
        number: &str,
        entry: &FaqEntry,
        request: Option<String>,
    ) -> Result<(), EngineError> {
        turn.conversation.flow = None;
        if spec.name == card_key_lookup::SPEC.name && !turn.private {
            // Not even the proof belongs in a group.
            self.say(turn, Reply::KeysPrivateOnly, OutboundKind::Answer, &[]);
            return Ok(());
        }
        if self.is_verified(turn, number) {
            return self.show_order(turn, spec, number, entry, request).await;
        }
        if self.locked_out(turn, number).await? {
            return self.lock_out(turn, entry).await;
        }
        let identity = Proof::Identity {
            channel: turn.conversation.key.channel.clone(),
            user: turn.conversation.user.clone(),
        };
        match self.order_system().verify(number, &identity).await {
            Err(e) => return self.orders_down(turn, number, entry, e).await,
            Ok(true) => {
                self.verified(turn, number, "chat identity").await?;
                return self.show_order(turn, spec, number, entry, request).await;
            }
            Ok(false) => {}
        }
        if !turn.private {
            // A password posted in a group is no longer a secret.
            self.say(turn, Reply::ProofPrivateOnly, OutboundKind::Answer, &[]);
            return Ok(());
        }
        let mut slots = BTreeMap::from([(ORDER_NO.to_string(), number.to_string())]);
        slots.extend(request.map(|r| (REQUEST.to_string(), r)));
        turn.conversation.flow = Some(FlowState {
            name: spec.name.to_string(),
            entry: entry.id.clone(),
            slots,
            reprompts: 0,
            awaiting_proof: true,
            awaiting_confirmation: false,
        });
        self.say_about_order(turn, Reply::AskProof, number, OutboundKind::Question);
        Ok(())
    }

    /// The reply to "prove this order is yours".
    pub(super) async fn continue_proof(
        &self,
        turn: &mut Turn,
        spec: &FlowSpec,
        flow: FlowState,
        text: &str,
        found: &BTreeMap<String, String>,
        entry: &FaqEntry,
    ) -> Result<(), EngineError> {
        let Some(number) = flow.slots.get(ORDER_NO).cloned() else {
            turn.conversation.flow = None;
            return self.understand(turn, text).await;
        };
        let request = flow.slots.get(REQUEST).cloned();
        // "What about order 2024…", or just another order number (a correction): start over
        // with that order. A short bare number is an attempt at the proof (a numeric
        // password), and so is a phone number.
        if let Some(other) = found.get(ORDER_NO).filter(|o| **o != number) {
            let rest = text.replace(other.as_str(), "");
            let sentence = rest.chars().any(char::is_alphabetic);
            let order_like = !found.contains_key(PHONE)
                && (other.chars().any(|c| c.is_ascii_alphabetic()) || other.len() >= 12);
            if sentence || order_like {
                turn.conversation
                    .entities
                    .insert(ORDER_NO.to_string(), other.clone());
                return self.order_flow(turn, spec, other, entry, request).await;
            }
        }
        // A question about something else changes the topic without counting as a failure.
        // What looks like a proof (one ASCII token such as a password, an e-mail address or
        // phone number, or "密码是 …" / "my password is …") is taken as one even if it
        // happens to match a question.
        let token = text.trim();
        let lower = token.to_lowercase();
        let names_a_password = ["密码", "查询码", "password", "passcode", "pwd"]
            .iter()
            .any(|w| lower.contains(w));
        let proof_like = found.contains_key(EMAIL)
            || found.contains_key(PHONE)
            || (token.is_ascii() && !token.contains(char::is_whitespace))
            || (names_a_password && secrets_in(text, found).len() > 1);
        if !proof_like && self.changed_topic(turn, &flow, text).await? {
            return Ok(());
        }
        // Passwords, e-mail addresses and phone numbers are written in ASCII: a message with
        // none of it ("确认", "我找不到") is not an attempt, so it is not counted as a failure.
        let secrets = secrets_in(text, found);
        if secrets.is_empty() {
            if flow.reprompts >= self.config.max_reprompts {
                turn.conversation.flow = None;
                return self
                    .hand_off(turn, HandoffReason::FlowNeedsPerson, Some(entry))
                    .await;
            }
            turn.conversation.flow = Some(FlowState {
                reprompts: flow.reprompts + 1,
                ..flow
            });
            self.say_about_order(turn, Reply::AskProof, &number, OutboundKind::Question);
            return Ok(());
        }
        // The message is a secret: the transcript, and so every agent, never sees it.
        turn.lines[0].text = Reply::ProofHidden.text(turn.locale()).to_string();
        turn.conversation.flow = None;
        if self.locked_out(turn, &number).await? {
            return self.lock_out(turn, entry).await;
        }
        for secret in secrets {
            match self
                .order_system()
                .verify(&number, &Proof::Secret(secret))
                .await
            {
                Err(e) => return self.orders_down(turn, &number, entry, e).await,
                Ok(true) => {
                    self.verified(turn, &number, "secret").await?;
                    self.show_order(turn, spec, &number, entry, request).await?;
                    return self.link_identity(turn, &number).await;
                }
                Ok(false) => {}
            }
        }
        self.proof_failed(turn, &number).await?;
        if self.locked_out(turn, &number).await? {
            return self.lock_out(turn, entry).await;
        }
        turn.conversation.flow = Some(FlowState {
            reprompts: flow.reprompts + 1,
            ..flow
        });
        self.say_about_order(turn, Reply::ProofFailed, &number, OutboundKind::Question);
        Ok(())
    }

    /// After a proof by secret: links the chat identity to the order, if the shop allows it
    /// and the order has none yet, so the buyer need not prove it again from this account.
    async fn link_identity(&self, turn: &mut Turn, number: &str) -> Result<(), EngineError> {
        if !self.config.link_identity_on_proof || !turn.private {
            return Ok(());
        }
        let (channel, user) = (
            turn.conversation.key.channel.clone(),
            turn.conversation.user.clone(),
        );
        match self.order_system().link(number, &channel, &user).await {
            Ok(true) => {
                self.audit
                    .record(AuditEvent {
                        at: now_millis(),
                        actor: customer(turn),
                        action: LINKED.to_string(),
                        subject: number.to_string(),
                        detail: format!("{channel} user linked after a proof by secret"),
                    })
                    .await?;
                self.say_about_order(turn, Reply::OrderLinked, number, OutboundKind::Answer);
            }
            Ok(false) | Err(OrdersError::Unsupported(_)) => {}
            Err(e) => {
                tracing::warn!(conversation = %turn.conversation.key, error = %e, "could not link the chat identity to the order");
            }
        }
        Ok(())
    }

    /// Whether the customer or the order has had too many failed proofs lately.
    async fn locked_out(&self, turn: &Turn, number: &str) -> Result<bool, EngineError> {
        let since = now_millis().saturating_sub(self.config.failed_proof_window_ms);
        for subject in [number.to_string(), customer(turn)] {
            let failures = self
                .audit
                .for_subject(&subject)
                .await?
                .iter()
                .filter(|e| e.action == PROOF_FAILED && e.at >= since)
                .count();
            if failures >= self.config.max_failed_proofs {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn proof_failed(&self, turn: &Turn, number: &str) -> Result<(), EngineError> {
        let at = now_millis();
        let actor = customer(turn);
        tracing::info!(conversation = %turn.conversation.key, "an order ownership proof failed");
        for (subject, detail) in [
            (number.to_string(), actor.clone()),
            (actor.clone(), format!("order {number}")),
        ] {
            self.audit
                .record(AuditEvent {
                    at,
                    actor: actor.clone(),
                    action: PROOF_FAILED.to_string(),
                    subject,
                    detail,
                })
                .await?;
        }
        Ok(())
    }

    async fn verified(&self, turn: &mut Turn, number: &str, how: &str) -> Result<(), EngineError> {
        let now = now_millis();
        let key = proof_key(turn, number);
        turn.conversation
            .verified
            .insert(key, now.saturating_add(self.config.verification_ttl_ms));
        self.audit
            .record(AuditEvent {
                at: now,
                actor: customer(turn),
                action: VERIFIED.to_string(),
                subject: number.to_string(),
                detail: format!("by {how}"),
            })
            .await?;
        Ok(())
    }

    async fn lock_out(&self, turn: &mut Turn, entry: &FaqEntry) -> Result<(), EngineError> {
        turn.conversation.flow = None;
        tracing::warn!(conversation = %turn.conversation.key, "too many failed ownership proofs; handing to the risk group");
        self.say(turn, Reply::VerificationLocked, OutboundKind::Answer, &[]);
        self.hand_off_to(
            turn,
            HandoffReason::VerificationFailed,
            Some(entry),
            self.config.risk_skill_group.clone(),
            Priority::High,
        )
        .await
    }

    /// The order system failed: apologise and open a ticket so the team follows up (the
    /// customer is told its number and offered a person); should the ticket fail too, hand
    /// the conversation to a person.
    pub(super) async fn orders_down(
        &self,
        turn: &mut Turn,
        number: &str,
        entry: &FaqEntry,
        error: OrdersError,
    ) -> Result<(), EngineError> {
        turn.conversation.flow = None;
        tracing::warn!(conversation = %turn.conversation.key, %error, "the order system failed");
        let description = format!(
            "The order system failed while the bot handled `{}` for order {number}: {error}. \
             Look the order up and answer the customer.",
            entry.id
        );
        let group = self.group_of(entry);
        match self
            .open_ticket(turn, "order_lookup", Some(number), description, group)
            .await
        {
            Ok(ticket) => {
                let mut values = self.ticket_values(turn.locale(), &ticket);
                values.insert(ORDER_NO.to_string(), number.to_string());
                let text = self.render(Reply::OrdersDownTicket.text(turn.locale()), &values);
                let human = Reply::HumanButton.text(turn.locale());
                self.push(
                    turn,
                    text,
                    OutboundKind::Answer,
                    vec![QuickReply::new(human, human)],
                );
                Ok(())
            }
            Err(e) => {
                tracing::warn!(conversation = %turn.conversation.key, error = %e, "could not open a ticket either; handing off");
                self.say_about_order(turn, Reply::OrdersUnavailable, number, OutboundKind::Answer);
                self.hand_off(turn, HandoffReason::OrdersUnavailable, Some(entry))
                    .await
            }
        }
    }

    /// Whether the asker has proven they bought `number` and the proof still holds.
    pub(super) fn is_verified(&self, turn: &mut Turn, number: &str) -> bool {
        let now = now_millis();
        turn.conversation.verified.retain(|_, until| *until > now);
        turn.conversation
            .verified
            .contains_key(&proof_key(turn, number))
    }

    /// Goes on with a verified buyer's order: the card keys, where it stands, a cancellation
    /// or refund offer, its tickets.
    async fn show_order(
        &self,
        turn: &mut Turn,
        spec: &FlowSpec,
        number: &str,
        entry: &FaqEntry,
        request: Option<String>,
    ) -> Result<(), EngineError> {
        turn.conversation.flow = None;
        let orders = self.order_system();
        let order = match orders.find(number).await {
            Err(e) => return self.orders_down(turn, number, entry, e).await,
            Ok(Some(order)) => order,
            Ok(None) => {
                // Verified a moment ago, gone now (deleted by the shop): say no more than
                // for a wrong proof.
                self.say_about_order(turn, Reply::ProofFailed, number, OutboundKind::Answer);
                return Ok(());
            }
        };
        let request = request.unwrap_or_default();
        match spec.name {
            n if n == cancel_order::SPEC.name => {
                return self.offer_cancel(turn, &order, entry, &request).await
            }
            n if n == refund_request::SPEC.name => {
                return self.offer_refund(turn, &order, entry, &request).await
            }
            n if n == ticket_progress::SPEC.name => return self.order_tickets(turn, &order).await,
            _ => {}
        }
        let mut values = order_values(&order);
        if spec.name == card_key_lookup::SPEC.name {
            if self.key_views_exhausted(number).await? {
                tracing::warn!(conversation = %turn.conversation.key, "card keys viewed too often today; a person checks");
                self.say_about_order(turn, Reply::KeyViewLimit, number, OutboundKind::Answer);
                return self
                    .hand_off(turn, HandoffReason::FlowNeedsPerson, Some(entry))
                    .await;
            }
            let keys = match orders.card_keys(number).await {
                Err(e) => return self.orders_down(turn, number, entry, e).await,
                Ok(keys) => keys,
            };
            if !keys.is_empty() {
                let redeem = order
                    .redeem
                    .clone()
                    .unwrap_or_else(|| Reply::RedeemDefault.text(turn.locale()).to_string());
                values.insert("redeem".to_string(), redeem);
                let template = Reply::CardKeys.text(turn.locale());
                values.insert("keys".to_string(), card_key_lookup::list(&keys, false));
                let shown = self.render(template, &values);
                values.insert("keys".to_string(), card_key_lookup::list(&keys, true));
                let recorded = self.render(template, &values);
                self.push_masked(turn, shown, recorded, OutboundKind::Answer, Vec::new());
                self.audit
                    .record(AuditEvent {
                        at: now_millis(),
                        actor: customer(turn),
                        action: KEYS_SHOWN.to_string(),
                        subject: number.to_string(),
                        detail: format!(
                            "{} key(s): {}",
                            keys.len(),
                            keys.iter()
                                .map(|k| card_key_lookup::mask(k))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    })
                    .await?;
                tracing::info!(conversation = %turn.conversation.key, keys = keys.len(), "card keys shown to their buyer");
                return Ok(());
            }
            // No keys (yet): where the order stands says why.
        }
        self.show_status(turn, &order, values);
        Ok(())
    }

    /// Where the order stands, in plain words; a failed or late delivery offers a ticket and
    /// a person.
    pub(super) fn show_status(
        &self,
        turn: &mut Turn,
        order: &Order,
        mut values: BTreeMap<String, String>,
    ) {
        let status = delivery_status::explain(order, now_millis());
        let expected = match status.minutes_left {
            Some(minutes) => {
                let minutes = BTreeMap::from([("minutes".to_string(), minutes.to_string())]);
                self.render(Reply::ExpectedWithin.text(turn.locale()), &minutes)
            }
            None => Reply::ExpectedSoon.text(turn.locale()).to_string(),
        };
        values.insert("expected".to_string(), expected);
        values.insert(
            "late".to_string(),
            status.minutes_late.unwrap_or_default().to_string(),
        );
        let text = self.render(status.reply.text(turn.locale()), &values);
        let buttons = if status.offer_person {
            let ticket = Reply::TicketButton.text(turn.locale());
            let human = Reply::HumanButton.text(turn.locale());
            vec![
                QuickReply::new(ticket, format!("/ticket {}", order.number)),
                QuickReply::new(human, human),
            ]
        } else {
            Vec::new()
        };
        self.push(turn, text, OutboundKind::Answer, buttons);
    }

    /// Whether the order's keys were shown as often as allowed in the last 24 hours.
    async fn key_views_exhausted(&self, number: &str) -> Result<bool, EngineError> {
        let limit = self.config.max_key_views_per_day;
        if limit == 0 {
            return Ok(false);
        }
        let since = now_millis().saturating_sub(24 * 60 * 60 * 1000);
        let views = self
            .audit
            .for_subject(number)
            .await?
            .iter()
            .filter(|e| e.action == KEYS_SHOWN && e.at >= since)
            .count();
        Ok(views >= limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_are_the_ascii_in_a_reply() {
        let none = BTreeMap::new();
        assert_eq!(secrets_in("pass1234", &none), ["pass1234"]);
        assert_eq!(
            secrets_in("密码是 pass1234", &none),
            ["密码是 pass1234", "pass1234"]
        );
        assert_eq!(
            secrets_in("my password is ab12cd", &none),
            ["my password is ab12cd", "password", "ab12cd"]
        );
        assert!(secrets_in("确认", &none).is_empty());
        assert!(secrets_in("我找不到密码。", &none).is_empty());
        let phone = BTreeMap::from([(PHONE.to_string(), "13800138000".to_string())]);
        assert_eq!(secrets_in("手机13800138000", &phone)[0], "13800138000");
    }
}
