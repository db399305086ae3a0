//! Changes a flow offered, confirmed (then [`Flow::confirmed`]), the `/ticket` and `/refund`
//! commands, and tickets: the ones flows open and the customer's view of them.
//!
//! A change to an order is offered first and made only when the customer confirms it, and only
//! while their proof of owning the order still holds. What the bot may not decide alone (a
//! delivered order's refund, an amount above the shop's limit, an order system that cannot do
//! it) becomes a ticket for the right team, never a dead end.

use super::order_step::CONFIRMING;
use super::ownership::order_values;
use super::{Engine, EngineError, OrderStep, Turn, REQUEST};
use crate::conversation::FlowState;
use crate::entities::{ORDER_NO, TICKET_NO};
use crate::flows::refund_request;
use crate::flows::{self, ticket_progress, Flow};
use crate::locale::Locale;
use crate::message::{OutboundKind, QuickReply};
use crate::orders::Order;
use crate::replies::Reply;
use crate::store::StoreError;
use crate::tickets::{local_time, NewTicket, Ticket};
use crate::{Action, FaqEntry};
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Audit action of card keys an agent revealed.
pub const KEYS_REVEALED: &str = "card_key.revealed";

/// How many tickets a list shows.
const TICKETS_SHOWN: usize = 3;

fn yes_words() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?ix)^\s*(?:
                是 | 是的 | 对 | 对的 | 确认 | 确定 | 确认取消 | 确认退款 | 好 | 好的 | 可以 | 行 | 嗯 | 恩 | 要 | 退吧 | 取消吧
              | y | yes | yep | yeah | yup | ok | okay | sure | confirm | confirmed | go\ ahead | do\ it
              | yes\ please | please\ do
            )\s*[!！.。~]*\s*$",
        )
        .expect("valid regex")
    })
}

fn no_words() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?ix)^\s*(?:
                不 | 不是 | 不用 | 否 | 不要 | 先不 | 不退了 | 保留 | 再想想
              | n | no | nope | nah | keep\ it | no\ thanks | don'?t
            )\s*[!！.。~]*\s*$",
        )
        .expect("valid regex")
    })
}

impl Engine {
    /// `/ticket <order>` (the button under a failed or late delivery) and `/refund <order>`.
    pub(super) async fn order_command(
        &self,
        turn: &mut Turn,
        name: &str,
        number: Option<String>,
    ) -> Result<(), EngineError> {
        turn.conversation.flow = None;
        let number = match number {
            // Only an order number goes on: anything else is refused before it is counted,
            // remembered or sent to the order system.
            Some(token) => match self.entities.extract(&token).remove(ORDER_NO) {
                Some(number) => number,
                None => {
                    self.say(turn, Reply::NotAnOrderNumber, OutboundKind::Question, &[]);
                    return Ok(());
                }
            },
            None => match turn.conversation.entities.get(ORDER_NO) {
                Some(number) => number.clone(),
                None => {
                    self.say(turn, Reply::CommandNeedsOrder, OutboundKind::Question, &[]);
                    return Ok(());
                }
            },
        };
        turn.conversation
            .entities
            .insert(ORDER_NO.to_string(), number.clone());
        let action = if name == "refund" {
            Action::RefundRequest
        } else {
            Action::DeliveryStatus
        };
        let (Some(entry), Some(flow)) = (
            self.knowledge.with_action(action).cloned(),
            flows::for_action(action),
        ) else {
            self.say(turn, Reply::CommandUnavailable, OutboundKind::Answer, &[]);
            return Ok(());
        };
        if self.orders.is_none() {
            return self
                .finish_flow(turn, flow, ORDER_NO, &number, &entry)
                .await;
        }
        let request = turn.lines[0].text.clone();
        if name == "ticket" && self.is_verified(turn, &number) {
            let Some(order) = self.find_or_down(turn, &number, &entry).await? else {
                return Ok(());
            };
            let description = format!(
                "The customer asked for help with the delivery of order {number} ({}, {}, {}).",
                order.product,
                order.status.as_str(),
                refund_request::money(order.amount_cents, &order.currency)
            );
            let group = self.group_of(&entry);
            return self
                .ticket_once(
                    turn,
                    "delivery",
                    &order,
                    description,
                    group,
                    Reply::TicketOpened,
                )
                .await;
        }
        // Unproven: the order flow checks ownership first (for `/ticket`, the status comes
        // back with the button, now for a proven buyer).
        self.order_flow(turn, flow, &number, &entry, Some(request))
            .await
    }

    pub(super) fn confirm_buttons(&self, locale: Locale) -> Vec<QuickReply> {
        let yes = Reply::ConfirmButton.text(locale);
        let no = Reply::KeepButton.text(locale);
        vec![QuickReply::new(yes, yes), QuickReply::new(no, no)]
    }

    /// The answer to "confirm this change?".
    pub(super) async fn continue_confirmation(
        &self,
        turn: &mut Turn,
        change: &'static dyn Flow,
        mut flow: FlowState,
        text: &str,
        entry: &FaqEntry,
    ) -> Result<(), EngineError> {
        let Some(number) = flow.slots.get(CONFIRMING).cloned() else {
            turn.conversation.flow = None;
            return self.understand(turn, text).await;
        };
        if yes_words().is_match(text) {
            turn.conversation.flow = None;
            let request = flow.slots.get(REQUEST).cloned();
            if !self.is_verified(turn, &number) {
                // The proof expired while the customer thought it over: prove it again, and
                // the change is offered again.
                return self.order_flow(turn, change, &number, entry, request).await;
            }
            let mut cx = OrderStep::new(self, turn, entry, request);
            return change.confirmed(&mut cx, &number).await;
        }
        if no_words().is_match(text) {
            turn.conversation.flow = None;
            self.say_about_order(turn, Reply::ChangeKept, &number, OutboundKind::Answer);
            return Ok(());
        }
        if self.changed_topic(turn, &flow, text).await? {
            return Ok(());
        }
        flow.reprompts += 1;
        if flow.reprompts > self.config.max_reprompts {
            turn.conversation.flow = None;
            self.say_about_order(turn, Reply::ChangeKept, &number, OutboundKind::Answer);
            return Ok(());
        }
        turn.conversation.flow = Some(flow);
        let buttons = self.confirm_buttons(turn.locale());
        self.say(
            turn,
            Reply::ConfirmReprompt,
            OutboundKind::Question,
            &buttons,
        );
        Ok(())
    }

    /// The order, or `None` once the customer has been answered (system down, order gone).
    pub(super) async fn find_or_down(
        &self,
        turn: &mut Turn,
        number: &str,
        entry: &FaqEntry,
    ) -> Result<Option<Order>, EngineError> {
        let found = match self.order_system() {
            Ok(orders) => orders.find(number).await,
            Err(e) => Err(e),
        };
        match found {
            Ok(Some(order)) => Ok(Some(order)),
            Ok(None) => {
                self.say_about_order(turn, Reply::ProofFailed, number, OutboundKind::Answer);
                Ok(None)
            }
            Err(e) => {
                self.orders_down(turn, number, entry, e).await?;
                Ok(None)
            }
        }
    }

    /// Opens a ticket of `kind` for `order` and says `reply` — unless one is open already,
    /// which the customer is told about instead.
    pub(super) async fn ticket_once(
        &self,
        turn: &mut Turn,
        kind: &str,
        order: &Order,
        description: String,
        group: String,
        reply: Reply,
    ) -> Result<(), EngineError> {
        if self.open_ticket_of(turn, order, kind).await? {
            return Ok(());
        }
        let ticket = self
            .open_ticket(turn, kind, Some(&order.number), description, group)
            .await?;
        // (A ticket this very turn opened on an earlier run is not "already open": see
        // `open_ticket_of`.)
        let mut values = order_values(order);
        values.extend(self.ticket_values(turn.locale(), &ticket));
        let text = self.render(reply.text(turn.locale()), &values);
        self.push(turn, text, OutboundKind::Answer, Vec::new());
        Ok(())
    }

    /// If `order` has an unfinished ticket of `kind`, tells the customer about it (true).
    pub(super) async fn open_ticket_of(
        &self,
        turn: &mut Turn,
        order: &Order,
        kind: &str,
    ) -> Result<bool, EngineError> {
        let mine = turn.effect_key("ticket", &format!("{kind}\u{1f}{}", order.number));
        let open = self
            .tickets
            .for_order(&order.number)
            .await?
            .into_iter()
            .find(|t| {
                t.kind == kind
                    && !t.status.is_final()
                    && t.idempotency_key.as_deref() != Some(mine.as_str())
            });
        let Some(ticket) = open else {
            return Ok(false);
        };
        let mut values = order_values(order);
        values.extend(self.ticket_values(turn.locale(), &ticket));
        let text = self.render(Reply::TicketExists.text(turn.locale()), &values);
        self.push(turn, text, OutboundKind::Answer, Vec::new());
        Ok(true)
    }

    /// Opens a ticket from the conversation.
    pub(super) async fn open_ticket(
        &self,
        turn: &Turn,
        kind: &str,
        order: Option<&str>,
        description: String,
        skill_group: String,
    ) -> Result<Ticket, StoreError> {
        let ticket = self
            .tickets
            .open(NewTicket {
                kind: kind.to_string(),
                order: order.map(str::to_string),
                conversation: Some(turn.conversation.key.clone()),
                customer: turn.conversation.user.clone(),
                description,
                skill_group,
                sla_millis: self.config.ticket_sla(kind),
                by: "bot".to_string(),
                idempotency_key: Some(
                    turn.effect_key("ticket", &format!("{kind}\u{1f}{}", order.unwrap_or(""))),
                ),
            })
            .await?;
        tracing::info!(conversation = %turn.conversation.key, ticket = %ticket.number, kind, "ticket opened");
        Ok(ticket)
    }

    /// `{ticket_no}`, `{kind}`, `{status}`, `{due}` of a ticket in `locale`.
    pub(crate) fn ticket_values(
        &self,
        locale: Locale,
        ticket: &Ticket,
    ) -> BTreeMap<String, String> {
        BTreeMap::from([
            (TICKET_NO.to_string(), ticket.number.clone()),
            (
                "kind".to_string(),
                ticket_progress::kind_word(&ticket.kind, locale).to_string(),
            ),
            (
                "status".to_string(),
                ticket_progress::status_word(ticket.status, locale).to_string(),
            ),
            ("due".to_string(), self.when(ticket.due_at, locale)),
        ])
    }

    /// A time for customers, in the shop's time zone.
    pub(super) fn when(&self, at: u64, locale: Locale) -> String {
        let offset = self.config.utc_offset_minutes;
        let time = local_time(at, offset);
        let zone = format!(
            "UTC{}{:02}:{:02}",
            if offset < 0 { '-' } else { '+' },
            offset.unsigned_abs() / 60,
            offset.unsigned_abs() % 60
        );
        match locale {
            Locale::Zh if offset == 480 => format!("{time}（北京时间）"),
            Locale::Zh => format!("{time}（{zone}）"),
            Locale::En => format!("{time} ({zone})"),
        }
    }

    /// The skill group an entry's tickets and hand-offs go to.
    pub(super) fn group_of(&self, entry: &FaqEntry) -> String {
        entry
            .skill_group
            .clone()
            .unwrap_or_else(|| self.config.default_skill_group.clone())
    }

    /// Ticket progress by ticket number: shown to the customer who opened it or the proven
    /// buyer of its order; anybody else hears that no such ticket of theirs exists.
    pub(super) async fn ticket_by_number(
        &self,
        turn: &mut Turn,
        number: &str,
    ) -> Result<(), EngineError> {
        let ticket = self.tickets.get(number).await?;
        let theirs = match &ticket {
            Some(t) => {
                let opened_by_them = t.customer == turn.conversation.user
                    && t.conversation
                        .as_ref()
                        .is_some_and(|c| c.channel == turn.conversation.key.channel);
                opened_by_them
                    || t.order
                        .as_deref()
                        .is_some_and(|order| self.is_verified(turn, order))
            }
            None => false,
        };
        match ticket.filter(|_| theirs) {
            Some(ticket) => {
                let text = ticket_progress::describe(
                    &ticket,
                    turn.locale(),
                    self.config.utc_offset_minutes,
                );
                self.push(turn, text, OutboundKind::Answer, Vec::new());
            }
            None => {
                let values = BTreeMap::from([(TICKET_NO.to_string(), number.to_string())]);
                let text = self.render(Reply::TicketNotFound.text(turn.locale()), &values);
                self.push(turn, text, OutboundKind::Answer, Vec::new());
            }
        }
        Ok(())
    }

    /// Ticket progress asked without a number: the customer's own tickets, if they have any
    /// (true); otherwise nothing is said (false) and the flow asks for a number.
    pub(super) async fn own_tickets(&self, turn: &mut Turn) -> Result<bool, EngineError> {
        let mut tickets = self
            .tickets
            .for_customer(&turn.conversation.key.channel, &turn.conversation.user)
            .await?;
        if tickets.is_empty() {
            return Ok(false);
        }
        // Unfinished first, then newest first (the order they came in).
        tickets.sort_by_key(|t| t.status.is_final());
        self.list_tickets(turn, Reply::YourTickets, &tickets);
        Ok(true)
    }

    /// Ticket progress for a verified buyer's order.
    pub(super) async fn order_tickets(
        &self,
        turn: &mut Turn,
        order: &Order,
    ) -> Result<(), EngineError> {
        let mut tickets = self.tickets.for_order(&order.number).await?;
        if tickets.is_empty() {
            self.say_about_order(turn, Reply::NoTickets, &order.number, OutboundKind::Answer);
            return Ok(());
        }
        tickets.sort_by_key(|t| t.status.is_final());
        self.list_tickets(turn, Reply::YourTickets, &tickets);
        Ok(())
    }

    fn list_tickets(&self, turn: &mut Turn, intro: Reply, tickets: &[Ticket]) {
        let mut text = intro.text(turn.locale()).to_string();
        for ticket in tickets.iter().take(TICKETS_SHOWN) {
            text += "\n\n";
            text +=
                &ticket_progress::describe(ticket, turn.locale(), self.config.utc_offset_minutes);
        }
        text += "\n\n";
        text += Reply::OtherTickets.text(turn.locale());
        self.push(turn, text, OutboundKind::Answer, Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_read_yes_and_no_in_both_languages() {
        for yes in ["确认", "好的", "是的！", "yes", "OK", "go ahead", "Confirm"] {
            assert!(yes_words().is_match(yes), "{yes}");
            assert!(!no_words().is_match(yes), "{yes}");
        }
        for no in ["不用", "不要", "no", "No thanks", "nope", "keep it"] {
            assert!(no_words().is_match(no), "{no}");
            assert!(!yes_words().is_match(no), "{no}");
        }
        for neither in ["yes but what about my other order", "确认一下发货时间"] {
            assert!(!yes_words().is_match(neither) && !no_words().is_match(neither));
        }
    }
}
