//! [`OrderStep`]: what a flow with a slot may do in a turn — the engine's order, ticket and
//! audit tools, bound to the turn and the FAQ entry that started the flow.

use super::ownership::{customer, order_values};
use super::{Engine, EngineConfig, EngineError, Turn};
use crate::attempts::{normalize_order_number, Counter, Limit, Space, Taken};
use crate::audit::AuditEvent;
use crate::conversation::{now_millis, FlowState, HandoffReason};
use crate::flows::{self, refund_request, Flow};
use crate::locale::Locale;
use crate::message::{ConversationKey, OutboundKind, QuickReply};
use crate::orders::{Order, OrderChange, Orders, OrdersError, Proof};
use crate::replies::Reply;
use crate::tickets::{Ticket, TicketStatus, TicketUpdate};
use crate::FaqEntry;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The slot keeping the order a confirmation is about.
pub(super) const CONFIRMING: &str = crate::entities::ORDER_NO;

/// One step of a flow with a slot: what it may say and do in this turn. The flow gets one
/// from the engine in [`Flow::proven`], [`Flow::confirmed`], [`Flow::with_ticket`] and
/// [`Flow::without_slot`].
pub struct OrderStep<'a> {
    engine: &'a Engine,
    turn: &'a mut Turn,
    entry: &'a FaqEntry,
    request: String,
}

impl<'a> OrderStep<'a> {
    pub(super) fn new(
        engine: &'a Engine,
        turn: &'a mut Turn,
        entry: &'a FaqEntry,
        request: Option<String>,
    ) -> Self {
        OrderStep {
            engine,
            turn,
            entry,
            request: request.unwrap_or_default(),
        }
    }

    /// The conversation (for logs).
    pub(crate) fn key(&self) -> &ConversationKey {
        &self.turn.conversation.key
    }

    /// The conversation's language.
    pub(crate) fn locale(&self) -> Locale {
        self.turn.locale()
    }

    /// The engine's settings.
    pub(crate) fn config(&self) -> &EngineConfig {
        &self.engine.config
    }

    /// What the customer wrote when the flow started (for tickets' descriptions).
    pub(crate) fn request(&self) -> &str {
        &self.request
    }

    /// The skill group of the flow's FAQ entry.
    pub(crate) fn group(&self) -> String {
        self.engine.group_of(self.entry)
    }

    /// The order system; without one, every call fails as an unavailable one does.
    pub(crate) fn orders(&self) -> Arc<dyn Orders> {
        self.engine
            .orders
            .clone()
            .unwrap_or_else(|| Arc::new(NoOrderSystem))
    }

    /// The key of one side effect of this turn (see the turn's effect keys): the same each
    /// time the turn runs, so a turn run again changes nothing twice.
    pub(crate) fn effect_key(&self, kind: &str, subject: &str) -> String {
        self.turn.effect_key(kind, subject)
    }

    /// Says `reply`.
    pub(crate) fn say(&mut self, reply: Reply) {
        self.engine.say(self.turn, reply, OutboundKind::Answer, &[]);
    }

    /// Says `text` with buttons.
    pub(crate) fn push(&mut self, text: String, kind: OutboundKind, buttons: Vec<QuickReply>) {
        self.engine.push(self.turn, text, kind, buttons);
    }

    /// Sends `shown` but records `recorded` in the transcript, which agents see: for card
    /// keys.
    pub(crate) fn say_secret(&mut self, shown: String, recorded: String) {
        self.engine
            .push_masked(self.turn, shown, recorded, OutboundKind::Answer, Vec::new());
    }

    /// Says `reply`, whose `{order_no}` is `number`.
    pub(crate) fn say_about_order(&mut self, reply: Reply, number: &str) {
        self.engine
            .say_about_order(self.turn, reply, number, OutboundKind::Answer);
    }

    /// `reply` filled in with the order's values and `extra`.
    pub(crate) fn order_text<'k>(
        &self,
        reply: Reply,
        order: &Order,
        extra: impl IntoIterator<Item = (&'k str, String)>,
    ) -> String {
        let mut values = order_values(order);
        values.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
        self.engine.render(reply.text(self.locale()), &values)
    }

    /// Says `reply` about `order` and `ticket` (`{order_no}`, `{ticket_no}`, `{status}`…).
    pub(crate) fn say_ticket(&mut self, reply: Reply, order: &Order, ticket: &Ticket) {
        let values = self.engine.ticket_values(self.locale(), ticket);
        let text = self.order_text(
            reply,
            order,
            values.iter().map(|(k, v)| (k.as_str(), v.clone())),
        );
        self.push(text, OutboundKind::Answer, Vec::new());
    }

    /// Where the order stands, in plain words; a failed or late delivery offers a ticket and
    /// a person.
    pub(crate) fn show_status(&mut self, order: &Order) {
        self.engine
            .show_status(self.turn, order, order_values(order));
    }

    /// The flow can go no further: a person of the entry's group takes over.
    pub(crate) async fn hand_off(&mut self) -> Result<(), EngineError> {
        self.engine
            .hand_off(self.turn, HandoffReason::FlowNeedsPerson, Some(self.entry))
            .await
    }

    /// Says the slot's value was noted, and a person takes over with it.
    pub(crate) async fn noted_for_person(
        &mut self,
        kind: &str,
        value: &str,
    ) -> Result<(), EngineError> {
        let values = BTreeMap::from([(kind.to_string(), value.to_string())]);
        let text = self
            .engine
            .render(flows::noted(kind).text(self.locale()), &values);
        self.push(text, OutboundKind::Answer, Vec::new());
        self.hand_off().await
    }

    /// The order system failed: an apology and a ticket (or a person).
    pub(crate) async fn orders_down(
        &mut self,
        number: &str,
        error: OrdersError,
    ) -> Result<(), EngineError> {
        self.engine
            .orders_down(self.turn, number, self.entry, error)
            .await
    }

    /// The order, or `None` once the customer has been answered (system down, order gone).
    pub(crate) async fn find_or_down(
        &mut self,
        number: &str,
    ) -> Result<Option<Order>, EngineError> {
        self.engine
            .find_or_down(self.turn, number, self.entry)
            .await
    }

    /// The order changed between the offer and the confirmation: says so, and where it
    /// stands.
    pub(crate) async fn changed_meanwhile(&mut self, number: &str) -> Result<(), EngineError> {
        let Some(order) = self.find_or_down(number).await? else {
            return Ok(());
        };
        self.say_about_order(Reply::ChangeRaced, number);
        self.show_status(&order);
        Ok(())
    }

    /// Records what the customer was shown or had done in the audit log, as the customer,
    /// once per `dedupe_key`.
    pub(crate) async fn audit(
        &mut self,
        action: &str,
        subject: &str,
        detail: String,
        dedupe_key: String,
    ) -> Result<(), EngineError> {
        self.engine
            .audit
            .record(AuditEvent {
                at: now_millis(),
                actor: customer(self.turn),
                action: action.to_string(),
                subject: subject.to_string(),
                detail,
                dedupe_key: Some(dedupe_key),
            })
            .await?;
        Ok(())
    }

    /// Takes one of the order's card-key views for the last 24 hours: the view's key to give
    /// it back with, or `None` when the keys were shown as often as allowed.
    pub(crate) async fn take_key_view(
        &mut self,
        number: &str,
    ) -> Result<Option<String>, EngineError> {
        let view = self
            .turn
            .effect_key(flows::card_key_lookup::KEYS_SHOWN, number);
        let limit = self.engine.config.max_key_views_per_day;
        if limit == 0 {
            return Ok(Some(view));
        }
        let limit = Limit {
            max: limit,
            since: now_millis().saturating_sub(24 * 60 * 60 * 1000),
        };
        let counter = Counter::new(Space::KeyViews, normalize_order_number(number));
        let taken = self
            .engine
            .attempts
            .take(&view, &[counter], limit, now_millis())
            .await?;
        Ok((taken == Taken::Yes).then_some(view))
    }

    /// Gives back a view taken with [`OrderStep::take_key_view`] (nothing was shown).
    pub(crate) async fn give_back(&mut self, view: &str) -> Result<(), EngineError> {
        self.engine.attempts.withdraw(view).await?;
        Ok(())
    }

    /// Offers a change to `order` (`reply`, with confirm / keep buttons); `flow`'s
    /// [`Flow::confirmed`] makes it once the customer confirms.
    pub(crate) fn ask_confirmation(&mut self, flow: &dyn Flow, order: &Order, reply: Reply) {
        self.turn.conversation.flow = Some(FlowState {
            name: flow.name().to_string(),
            entry: self.entry.id.clone(),
            slots: BTreeMap::from([
                (CONFIRMING.to_string(), order.number.clone()),
                (super::REQUEST.to_string(), self.request.clone()),
            ]),
            reprompts: 0,
            awaiting_proof: false,
            awaiting_confirmation: true,
        });
        let text = self.order_text(reply, order, []);
        let buttons = self.engine.confirm_buttons(self.locale());
        self.push(text, OutboundKind::Question, buttons);
    }

    /// If `order` has an unfinished ticket of `kind`, tells the customer about it (true).
    pub(crate) async fn open_ticket_of(
        &mut self,
        order: &Order,
        kind: &str,
    ) -> Result<bool, EngineError> {
        self.engine.open_ticket_of(self.turn, order, kind).await
    }

    /// Opens a ticket of `kind` for `order` and says `reply` — unless one is open already,
    /// which the customer is told about instead.
    pub(crate) async fn ticket_once(
        &mut self,
        kind: &str,
        order: &Order,
        description: String,
        group: String,
        reply: Reply,
    ) -> Result<(), EngineError> {
        self.engine
            .ticket_once(self.turn, kind, order, description, group, reply)
            .await
    }

    /// A refund the refund team must decide, because `why`: a ticket (or the one already
    /// open).
    pub(crate) async fn refund_ticket(
        &mut self,
        order: &Order,
        why: &str,
    ) -> Result<(), EngineError> {
        let description = format!(
            "Refund requested for order {} ({}, {}, {}); needs review because {why}. Customer wrote: {}",
            order.number,
            order.product,
            refund_request::money(order.amount_cents, &order.currency),
            order.status.as_str(),
            self.request,
        );
        let group = self.engine.config.refund_skill_group.clone();
        self.ticket_once(
            "refund",
            order,
            description,
            group,
            Reply::RefundTicketOpened,
        )
        .await
    }

    /// Opens a ticket of `kind` about order `number` (once per turn, however often it runs).
    pub(crate) async fn open_ticket(
        &mut self,
        kind: &str,
        number: &str,
        description: String,
        group: String,
    ) -> Result<Ticket, EngineError> {
        Ok(self
            .engine
            .open_ticket(self.turn, kind, Some(number), description, group)
            .await?)
    }

    /// Marks a ticket the bot settled itself resolved, with `note` in its history.
    pub(crate) async fn resolve_ticket(
        &mut self,
        ticket: Ticket,
        note: String,
    ) -> Result<Ticket, EngineError> {
        if ticket.status == TicketStatus::Resolved {
            // Resolved by an earlier run of this turn.
            return Ok(ticket);
        }
        let update = TicketUpdate {
            status: Some(TicketStatus::Resolved),
            owner: None,
            by: "bot".to_string(),
            note,
        };
        Ok(self
            .engine
            .tickets
            .update(&ticket.number, update)
            .await?
            .unwrap_or(ticket))
    }

    /// Ticket progress by ticket number, for the customer who opened it or the proven buyer
    /// of its order only.
    pub(crate) async fn ticket_by_number(&mut self, number: &str) -> Result<(), EngineError> {
        self.engine.ticket_by_number(self.turn, number).await
    }

    /// The customer's own tickets, if they have any (true).
    pub(crate) async fn own_tickets(&mut self) -> Result<bool, EngineError> {
        self.engine.own_tickets(self.turn).await
    }

    /// A verified buyer's order's tickets.
    pub(crate) async fn order_tickets(&mut self, order: &Order) -> Result<(), EngineError> {
        self.engine.order_tickets(self.turn, order).await
    }
}

/// The order system of an engine without one: every call fails as an unavailable system's
/// does, so a flow stored mid-way meets an apology and a person, never a panic.
struct NoOrderSystem;

#[async_trait]
impl Orders for NoOrderSystem {
    async fn find(&self, _: &str) -> Result<Option<Order>, OrdersError> {
        Err(no_order_system())
    }

    async fn verify(&self, _: &str, _: &Proof) -> Result<bool, OrdersError> {
        Err(no_order_system())
    }

    async fn card_keys(&self, _: &str) -> Result<Vec<String>, OrdersError> {
        Err(no_order_system())
    }

    async fn link(&self, _: &str, _: &str, _: &str) -> Result<bool, OrdersError> {
        Err(no_order_system())
    }

    async fn cancel(&self, _: &str, _: &str) -> Result<OrderChange, OrdersError> {
        Err(no_order_system())
    }

    async fn refund(&self, _: &str, _: &str, _: &str) -> Result<OrderChange, OrdersError> {
        Err(no_order_system())
    }
}

pub(super) fn no_order_system() -> OrdersError {
    OrdersError::Unavailable("no order system is connected".to_string())
}
