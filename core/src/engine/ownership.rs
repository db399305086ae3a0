//! The ownership check before a flow sees an order; then the flow's [`Flow::proven`].
//!
//! Nothing about an order is shown until the asker is proven its buyer, by the chat identity
//! the shop linked to the order or by a secret only the buyer knows (the query password, or the
//! e-mail or phone given at purchase). The proof holds for the conversation for
//! [`EngineConfig::verification_ttl_ms`](super::EngineConfig). A wrong proof and an unknown order
//! get the same answer.
//!
//! Guessing is limited in the store, not in memory ([`crate::attempts`]): each secret tried
//! is one attempt, taken — checked against the limit and recorded in one atomic step — before
//! the order system is asked, under the customer and under the order (separate key spaces, the
//! order by its normalised number). A message offers at most [`MAX_PROOFS_PER_MESSAGE`]
//! secrets. After [`EngineConfig::max_failed_proofs`](super::EngineConfig) failures of either
//! within the window, lookups stop and the conversation goes to the risk group; a chat identity
//! linked to the order still proves it, so nobody can lock a buyer out of their own order.
//!
//! The reply to "prove this order is yours" is a secret: it is hidden from the transcript,
//! never remembered as an entity, never read for the language, and never taken for another
//! order number unless the customer clearly starts over ("换个订单 …", "another order …").

use super::{Engine, EngineError, OrderStep, Turn, REQUEST};
use crate::attempts::{normalize_order_number, Counter, Limit, Space, Taken};
use crate::audit::AuditEvent;
use crate::conversation::{now_millis, FlowState, HandoffReason};
use crate::entities::{EMAIL, ORDER_NO, PHONE};
use crate::flows::{delivery_status, refund_request, Flow};
use crate::locale::Locale;
use crate::message::{OutboundKind, QuickReply};
use crate::orders::{Order, Orders, OrdersError, Proof};
use crate::replies::Reply;
use crate::{FaqEntry, Priority};
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// The most secrets one message may offer as proofs; each is one attempt against the limit.
pub const MAX_PROOFS_PER_MESSAGE: usize = 3;

/// Audit action of a failed proof (recorded under the order and under the customer).
pub const PROOF_FAILED: &str = "order.proof_failed";
/// Audit action of a successful proof.
pub const VERIFIED: &str = "order.verified";
/// Audit action of a chat identity linked to an order.
pub const LINKED: &str = "order.linked";

/// Where a proof is kept in the conversation: per customer, since a group chat is one
/// conversation of many customers.
fn proof_key(turn: &Turn, number: &str) -> String {
    format!("{}\u{1f}{number}", turn.conversation.user)
}

/// What in a reply to "prove this order is yours" may be the proof, best first and at most
/// [`MAX_PROOFS_PER_MESSAGE`]: the e-mail address and phone number found; the token named as
/// a password ("密码是 pass1234", "my password is ab12cd"); else the message itself when it
/// is one token; else its ASCII words of 4 or more characters — only those with digits, if
/// any has.
/// Nothing when the message has no ASCII letters or digits at all ("确认", "我找不到").
fn secrets_in(text: &str, found: &BTreeMap<String, String>) -> Vec<String> {
    let mut secrets: Vec<String> = [EMAIL, PHONE]
        .iter()
        .filter_map(|kind| found.get(*kind).cloned())
        .collect();
    let text = text.trim();
    let add = |candidate: &str, secrets: &mut Vec<String>| {
        if !candidate.is_empty() && !secrets.iter().any(|s| s == candidate) {
            secrets.push(candidate.to_string());
        }
    };
    if let Some(named) = named_password().captures(text).and_then(|c| c.get(1)) {
        add(named.as_str(), &mut secrets);
    } else if !text.is_empty() && !text.contains(char::is_whitespace) {
        if text.chars().any(|c| c.is_ascii_alphanumeric()) {
            add(text, &mut secrets);
        }
    } else {
        let words: Vec<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || "@._+-".contains(c)))
            .filter(|w| w.chars().filter(char::is_ascii_alphanumeric).count() >= 4)
            .collect();
        // "hello, it's 4417abc": a word with digits is the password, not the words around it.
        let with_digits: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| w.chars().any(|c| c.is_ascii_digit()))
            .collect();
        let words = if with_digits.is_empty() {
            words
        } else {
            with_digits
        };
        for word in words {
            add(word, &mut secrets);
        }
    }
    secrets.truncate(MAX_PROOFS_PER_MESSAGE);
    secrets
}

/// A password named as one: "密码是 pass1234", "查询密码：8812", "my password is ab12cd".
fn named_password() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)(?:查询密码|查询码|密码|提取码|password|passcode|pwd|pin)\s*(?:是|为|:|：|=|is)?\s*([A-Za-z0-9@._+\-]{4,})",
        )
        .expect("valid regex")
    })
}

/// The customer clearly asks about another order while a proof is expected.
fn starts_over() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?ix)
              (?:换个|换一个|换|另一个|另外一个|另外的|另个|别的|其他|其它|查另一个|查别的|新的?)\s*订单
            | 订单号?\s*(?:错了|不对|填错了?|写错了?|发错了?|输错了?)
            | 不是这个订单
            | \b(?:another|different|other|new|wrong|second)\s+order
            | \bnot\s+(?:that|this)\s+order
            | \bswitch\s+orders?",
        )
        .expect("valid regex")
    })
}

/// The counters a proof of order `number` by this customer is limited by.
fn proof_counters(turn: &Turn, number: &str) -> [Counter; 2] {
    [
        Counter::new(
            Space::CustomerProofs,
            format!(
                "{}:{}",
                turn.conversation.key.channel, turn.conversation.user
            ),
        ),
        Counter::new(Space::OrderProofs, normalize_order_number(number)),
    ]
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
    /// The order system; an error (answered like any order-system failure) when none is
    /// connected, as when a conversation stored mid-flow meets an engine started without one.
    pub(super) fn order_system(&self) -> Result<Arc<dyn Orders>, OrdersError> {
        self.orders
            .clone()
            .ok_or_else(super::order_step::no_order_system)
    }

    /// The limit on proofs within the window, as of now.
    fn proof_limit(&self) -> Limit {
        Limit {
            max: self.config.max_failed_proofs.max(1),
            since: now_millis().saturating_sub(self.config.failed_proof_window_ms),
        }
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
        flow: &'static dyn Flow,
        number: &str,
        entry: &FaqEntry,
        request: Option<String>,
    ) -> Result<(), EngineError> {
        turn.conversation.flow = None;
        if flow.private_only() && !turn.private {
            // Not even the proof belongs in a group.
            let button = private_chat_button(turn.locale());
            self.say(
                turn,
                Reply::KeysPrivateOnly,
                OutboundKind::Answer,
                &[button],
            );
            return Ok(());
        }
        if self.is_verified(turn, number) {
            return self.show_order(turn, flow, number, entry, request).await;
        }
        // The chat identity the shop linked to the order proves it before any lock-out is
        // looked at: other accounts' failures must not lock the buyer out of their order.
        let identity = Proof::Identity {
            channel: turn.conversation.key.channel.clone(),
            user: turn.conversation.user.clone(),
        };
        let orders = match self.order_system() {
            Ok(orders) => orders,
            Err(e) => return self.orders_down(turn, number, entry, e).await,
        };
        match orders.verify(number, &identity).await {
            Err(e) => return self.orders_down(turn, number, entry, e).await,
            Ok(true) => {
                self.verified(turn, number, "chat identity").await?;
                return self.show_order(turn, flow, number, entry, request).await;
            }
            Ok(false) => {}
        }
        if !turn.private {
            // A password posted in a group is no longer a secret.
            let button = private_chat_button(turn.locale());
            self.say(
                turn,
                Reply::ProofPrivateOnly,
                OutboundKind::Answer,
                &[button],
            );
            return Ok(());
        }
        if self.locked_out(turn, number).await? {
            return self.lock_out(turn, entry).await;
        }
        let mut slots = BTreeMap::from([(ORDER_NO.to_string(), number.to_string())]);
        slots.extend(request.map(|r| (REQUEST.to_string(), r)));
        turn.conversation.flow = Some(FlowState {
            name: flow.name().to_string(),
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
        this: &'static dyn Flow,
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
        // "换个订单 2024…" / "another order 2024…": start over with that order. Anything
        // else shaped like an order number (pw20241123, a long numeric password) is a proof.
        if starts_over().is_match(text) {
            return self.start_over(turn, this, flow, text, found, entry).await;
        }
        // A question about something else changes the topic without counting as a failure.
        // What looks like a proof (one ASCII token such as a password, an e-mail address or
        // phone number, or "密码是 …" / "my password is …") is taken as one even if it
        // happens to match a question.
        let token = text.trim();
        let proof_like = found.contains_key(EMAIL)
            || found.contains_key(PHONE)
            || (token.is_ascii() && !token.contains(char::is_whitespace))
            || named_password().is_match(text);
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
        self.hide_message(turn);
        turn.conversation.flow = None;
        let orders = match self.order_system() {
            Ok(orders) => orders,
            Err(e) => return self.orders_down(turn, &number, entry, e).await,
        };
        let counters = proof_counters(turn, &number);
        for (i, secret) in secrets.into_iter().enumerate() {
            // Taken before the order system is asked, atomically with the check: however
            // many messages race, at most the limit of guesses is ever tried.
            let attempt = turn.effect_key("proof", &format!("{number}\u{1f}{i}"));
            if let Taken::Refused(counter) = self
                .attempts
                .take(&attempt, &counters, self.proof_limit(), now_millis())
                .await?
            {
                tracing::warn!(conversation = %turn.conversation.key, limit = counter.space.as_str(), "proof refused: too many failed proofs");
                return self.lock_out(turn, entry).await;
            }
            match orders.verify(&number, &Proof::Secret(secret)).await {
                Err(e) => {
                    // Not the customer's failure: the attempt does not count.
                    self.attempts.withdraw(&attempt).await?;
                    return self.orders_down(turn, &number, entry, e).await;
                }
                Ok(true) => {
                    self.attempts.withdraw(&attempt).await?;
                    self.verified(turn, &number, "secret").await?;
                    self.show_order(turn, this, &number, entry, request).await?;
                    return self.link_identity(turn, &number).await;
                }
                Ok(false) => self.proof_failed(turn, &number, &attempt).await?,
            }
        }
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

    /// "换个订单 …" during a proof: look up the order the customer names instead, or ask for
    /// it. The message is kept in the transcript only if nothing else in it looks like a
    /// password.
    async fn start_over(
        &self,
        turn: &mut Turn,
        this: &'static dyn Flow,
        flow: FlowState,
        text: &str,
        found: &BTreeMap<String, String>,
        entry: &FaqEntry,
    ) -> Result<(), EngineError> {
        let other = found.get(ORDER_NO).cloned();
        let mut rest = starts_over().replace_all(text, " ").into_owned();
        if let Some(other) = &other {
            rest = rest.replace(other.as_str(), " ");
        }
        // Words around "another order" ("sorry, wrong order, it's …") stay for the agents;
        // anything that could be a password (digits, an address, a named password) does not.
        let password_like = named_password().is_match(&rest)
            || rest.contains('@')
            || secrets_in(&rest, &BTreeMap::new())
                .iter()
                .any(|s| s.chars().any(|c| c.is_ascii_digit()));
        if password_like {
            self.hide_message(turn);
        }
        let request = flow.slots.get(REQUEST).cloned();
        match other {
            Some(other) => {
                tracing::debug!(conversation = %turn.conversation.key, "the customer asked about another order during a proof");
                turn.conversation
                    .entities
                    .insert(ORDER_NO.to_string(), other.clone());
                self.order_flow(turn, this, &other, entry, request).await
            }
            None => {
                turn.conversation.entities.remove(ORDER_NO);
                turn.conversation.flow = Some(FlowState {
                    slots: request
                        .map(|r| BTreeMap::from([(REQUEST.to_string(), r)]))
                        .unwrap_or_default(),
                    reprompts: 0,
                    awaiting_proof: false,
                    awaiting_confirmation: false,
                    ..flow
                });
                self.say(turn, this.ask(), OutboundKind::Question, &[]);
                Ok(())
            }
        }
    }

    /// Keeps the customer's message out of the transcript (it holds, or may hold, a secret).
    pub(super) fn hide_message(&self, turn: &mut Turn) {
        turn.lines[0].text = Reply::ProofHidden.text(turn.locale()).to_string();
    }

    /// A flow was waiting for a proof or a confirmation about order `number`, and order
    /// look-ups are gone (the engine now runs without an order system) or the FAQ entry that
    /// started it is: the flow ends, and a person takes over with the number.
    pub(super) async fn order_flow_gone(
        &self,
        turn: &mut Turn,
        flow: &FlowState,
        number: &str,
        entry: Option<&FaqEntry>,
        text: &str,
    ) -> Result<(), EngineError> {
        turn.conversation.flow = None;
        if flow.awaiting_proof && !secrets_in(text, &BTreeMap::new()).is_empty() {
            self.hide_message(turn);
        }
        tracing::warn!(conversation = %turn.conversation.key, flow = %flow.name, "a flow waiting on an order met an engine without order look-ups (or without its entry); handing off");
        self.say_about_order(turn, Reply::OrdersGone, number, OutboundKind::Answer);
        self.hand_off(turn, HandoffReason::FlowNeedsPerson, entry)
            .await
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
        let Ok(orders) = self.order_system() else {
            return Ok(());
        };
        match orders.link(number, &channel, &user).await {
            Ok(true) => {
                self.audit
                    .record(AuditEvent {
                        at: now_millis(),
                        actor: customer(turn),
                        action: LINKED.to_string(),
                        subject: number.to_string(),
                        detail: format!("{channel} user linked after a proof by secret"),
                        dedupe_key: Some(turn.effect_key(LINKED, number)),
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
        let limit = self.proof_limit();
        for counter in proof_counters(turn, number) {
            if self.attempts.count(&counter, limit.since).await? >= limit.max {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Records a failed proof (attempt `attempt`) in the audit log, under the order and
    /// under the customer, for the people who review them.
    async fn proof_failed(
        &self,
        turn: &Turn,
        number: &str,
        attempt: &str,
    ) -> Result<(), EngineError> {
        let at = now_millis();
        let actor = customer(turn);
        tracing::info!(conversation = %turn.conversation.key, "an order ownership proof failed");
        for (subject, detail, side) in [
            (number.to_string(), actor.clone(), "order"),
            (actor.clone(), format!("order {number}"), "customer"),
        ] {
            self.audit
                .record(AuditEvent {
                    at,
                    actor: actor.clone(),
                    action: PROOF_FAILED.to_string(),
                    subject,
                    detail,
                    dedupe_key: Some(format!("{attempt}:{side}")),
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
                dedupe_key: Some(turn.effect_key(VERIFIED, number)),
            })
            .await?;
        Ok(())
    }

    async fn lock_out(&self, turn: &mut Turn, entry: &FaqEntry) -> Result<(), EngineError> {
        turn.conversation.flow = None;
        turn.locked_out = true;
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
        flow: &'static dyn Flow,
        number: &str,
        entry: &FaqEntry,
        request: Option<String>,
    ) -> Result<(), EngineError> {
        turn.conversation.flow = None;
        let orders = match self.order_system() {
            Ok(orders) => orders,
            Err(e) => return self.orders_down(turn, number, entry, e).await,
        };
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
        let mut cx = OrderStep::new(self, turn, entry, request);
        flow.proven(&mut cx, &order).await
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
            crate::replies::span(status.minutes_late.unwrap_or_default(), turn.locale()),
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
}

/// The button that takes a customer from a group to a private chat with the bot: channels
/// that can open one render [`crate::message::PRIVATE_CHAT`] as a link to it (Telegram's deep
/// link); elsewhere pressing it greets the customer.
pub(super) fn private_chat_button(locale: Locale) -> QuickReply {
    QuickReply::new(
        Reply::PrivateChatButton.text(locale),
        crate::message::PRIVATE_CHAT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_are_the_ascii_in_a_reply() {
        let none = BTreeMap::new();
        assert_eq!(secrets_in("pass1234", &none), ["pass1234"]);
        assert_eq!(secrets_in("密码是 pass1234", &none), ["pass1234"]);
        assert_eq!(secrets_in("查询密码：8812", &none), ["8812"]);
        assert_eq!(secrets_in("my password is ab12cd", &none), ["ab12cd"]);
        assert_eq!(secrets_in("here it is: hello 4417abc", &none), ["4417abc"]);
        assert_eq!(secrets_in("it is hunter two", &none), ["hunter"]);
        assert!(secrets_in("确认", &none).is_empty());
        assert!(secrets_in("我找不到密码。", &none).is_empty());
        let phone = BTreeMap::from([(PHONE.to_string(), "13800138000".to_string())]);
        assert_eq!(secrets_in("手机13800138000", &phone)[0], "13800138000");
    }

    #[test]
    fn one_message_offers_a_few_proofs_at_most() {
        let guesses: Vec<String> = (1000..2000).map(|n| n.to_string()).collect();
        let secrets = secrets_in(&guesses.join(" "), &BTreeMap::new());
        assert_eq!(secrets.len(), MAX_PROOFS_PER_MESSAGE);
        assert_eq!(secrets, ["1000", "1001", "1002"]);
    }

    #[test]
    fn starting_over_must_be_said() {
        for yes in [
            "换个订单 DD2024112300018",
            "订单号错了，是 2024112300018",
            "another order: 2024112300018",
            "wrong order, it's DD2024112300018",
        ] {
            assert!(starts_over().is_match(yes), "{yes}");
        }
        for no in [
            "pw20241123",
            "202411230001234",
            "密码 20241123",
            "my order password",
        ] {
            assert!(!starts_over().is_match(no), "{no}");
        }
    }
}
