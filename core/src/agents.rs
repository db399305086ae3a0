//! The agents' side of a conversation: the one API a console (and tests) uses to work the
//! hand-off queue.
//!
//! [`Agents`] shares the [`Engine`]'s ports. Everything it says to a customer — an agent's
//! message, "a person has joined", a ticket's new status — is committed to the
//! [outbox](crate::outbox) together with its transcript line and delivered by the outbox
//! worker, so it reaches the customer's platform even when that platform is down for a while,
//! and never for a change that was not stored. Every action is an
//! [`AgentEvent`].

use crate::audit::AuditEvent;
use crate::conversation::{now_millis, Conversation, HandoffReason, HandoffRequest, Holder};
use crate::conversation::{Speaker, TranscriptLine};
use crate::engine::{Engine, EngineError, KEYS_REVEALED};
use crate::events::{AgentAction, AgentEvent, EngineEvent};
use crate::flows;
use crate::handoff::{QueuePosition, Take};
use crate::locale::Locale;
use crate::message::{ConversationKey, Outbound, OutboundKind, QuickReply};
use crate::orders::OrdersError;
use crate::outbox::Outbox;
use crate::replies::Reply;
use crate::tickets::{Ticket, TicketUpdate, Tickets};
use crate::Priority;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How many waiting customers are told their new place when the queue moves.
pub const MOVED_NOTICES: usize = 10;

/// A ticket after [`Agents::update_ticket`], with the notice queued for the customer when
/// there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketChange {
    /// The ticket as it is now.
    pub ticket: Ticket,
    /// The message telling the customer the new status (only when the status changed and the
    /// ticket came from a conversation). Already in the transcript and the outbox.
    pub notice: Option<Outbound>,
}

impl Engine {
    /// The agents' API over this engine's ports.
    pub fn agents(self: &Arc<Self>) -> Agents {
        Agents::new(Arc::clone(self))
    }
}

/// Where [`Agents::transfer_to`] passes a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTo {
    /// The queue of a skill group.
    Group(String),
    /// One agent, who owns it at once.
    Agent(String),
}

/// What human agents do with conversations and tickets.
#[derive(Clone)]
pub struct Agents {
    engine: Arc<Engine>,
}

impl Agents {
    /// The agents' API over `engine`'s ports.
    pub fn new(engine: Arc<Engine>) -> Self {
        Agents { engine }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The outbox agents' messages go through (to list dead letters and resend them).
    pub fn outbox(&self) -> Arc<dyn Outbox> {
        self.engine.store.outbox()
    }

    /// The tickets, to list and read (change them with [`Agents::update_ticket`], so the
    /// customer hears of it).
    pub fn tickets(&self) -> Arc<dyn Tickets> {
        self.engine.tickets.clone()
    }

    /// A conversation's transcript, oldest first.
    pub async fn transcript(
        &self,
        key: &ConversationKey,
    ) -> Result<Vec<TranscriptLine>, EngineError> {
        self.engine.transcript(key).await
    }

    /// A conversation's state.
    pub async fn conversation(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<Conversation>, EngineError> {
        self.engine.conversation(key).await
    }

    /// Gives `agent` the most urgent, longest-waiting conversation of `skill_group`, with
    /// everything the bot collected; the customer is told a person has joined. `None` when
    /// nobody waits.
    pub async fn claim(
        &self,
        skill_group: &str,
        agent: &str,
    ) -> Result<Option<HandoffRequest>, EngineError> {
        let Some(request) = self.engine.queue.claim(skill_group, agent).await? else {
            return Ok(None);
        };
        self.take_over(&request.conversation, agent, AgentAction::Claimed)
            .await?;
        self.tell_queue_moved(skill_group).await;
        Ok(Some(request))
    }

    /// `agent` takes one queued conversation, atomically: not when another agent holds it or
    /// `agent` already holds `capacity` open conversations. When it is newly theirs, the
    /// customer is told a person has joined, and the customers still waiting in its group
    /// where they stand now.
    pub async fn take(
        &self,
        key: &ConversationKey,
        agent: &str,
        capacity: usize,
    ) -> Result<Take, EngineError> {
        if self.engine.queue.claimed_by(key).await?.as_deref() == Some(agent) {
            if let Some(request) = self.engine.queue.open_request(key).await? {
                return Ok(Take::Taken(request));
            }
        }
        let taken = self.engine.queue.take(key, agent, capacity).await?;
        if let Take::Taken(request) = &taken {
            self.take_over(key, agent, AgentAction::Claimed).await?;
            self.tell_queue_moved(&request.skill_group).await;
        }
        Ok(taken)
    }

    /// Tells the customers waiting in `skill_group` where they stand now (the first
    /// [`MOVED_NOTICES`] of them), with the estimated wait. A failure is logged: the queue
    /// itself has moved either way.
    async fn tell_queue_moved(&self, skill_group: &str) {
        let waiting = match self.engine.queue.waiting(Some(skill_group)).await {
            Ok(waiting) => waiting,
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell waiting customers the queue moved");
                return;
            }
        };
        for (i, request) in waiting.iter().take(MOVED_NOTICES).enumerate() {
            let wait = self
                .engine
                .wait_estimate(skill_group, request.locale)
                .await
                .unwrap_or_default();
            let values = |_| {
                BTreeMap::from([
                    ("position".to_string(), (i + 1).to_string()),
                    ("wait".to_string(), wait.clone()),
                ])
            };
            if let Err(e) = self
                .notice(&request.conversation, None, Reply::QueueMoved, values)
                .await
            {
                tracing::warn!(error = %e, conversation = %request.conversation, "cannot tell a waiting customer the queue moved");
            }
        }
    }

    /// `agent` takes a conversation directly (one they claimed before, or one outside the
    /// queue); the customer is told a person has joined.
    pub async fn join(&self, key: &ConversationKey, agent: &str) -> Result<(), EngineError> {
        self.take_over(key, agent, AgentAction::Joined).await
    }

    async fn take_over(
        &self,
        key: &ConversationKey,
        agent: &str,
        action: AgentAction,
    ) -> Result<(), EngineError> {
        let holder = Holder::Agent(agent.to_string());
        self.notice(key, Some(holder), Reply::AgentJoined, |_| BTreeMap::new())
            .await?;
        tracing::info!(conversation = %key, agent, ?action, "an agent took the conversation");
        self.emit(agent, Some(key), action);
        Ok(())
    }

    /// `agent`'s message to the customer: recorded in the transcript and queued for the
    /// customer's channel in one commit (the outbox worker sends it). Returns the queued
    /// message. Whoever sends a message holds the conversation. A message without text is
    /// refused ([`EngineError::EmptyMessage`]): no platform would deliver it.
    ///
    /// The first agent who answers a handed-off conversation owns it until it is closed or
    /// transferred: a waiting conversation is taken by the agent who answers it, and another
    /// agent's message to one somebody owns is refused ([`EngineError::HeldBy`]).
    pub async fn message(
        &self,
        key: &ConversationKey,
        agent: &str,
        text: &str,
    ) -> Result<Outbound, EngineError> {
        if text.trim().is_empty() {
            return Err(EngineError::EmptyMessage);
        }
        match self.engine.queue.claimed_by(key).await? {
            Some(owner) if owner != agent => return Err(EngineError::HeldBy(owner)),
            Some(_) => {}
            None => {
                if self.engine.queue.position(key).await?.is_some() {
                    if let Take::HeldBy(owner) = self.take(key, agent, usize::MAX).await? {
                        return Err(EngineError::HeldBy(owner));
                    }
                }
            }
        }
        let holder = Holder::Agent(agent.to_string());
        let mut sent = self
            .say_later(key, |conversation| {
                take_over(conversation, &holder);
                vec![(text.to_string(), OutboundKind::AgentMessage, Vec::new())]
            })
            .await?;
        self.engine.queue.replied(key, now_millis()).await?;
        self.emit(agent, Some(key), AgentAction::Message);
        Ok(sent.remove(0))
    }

    /// Passes the conversation to `skill_group`'s queue, with its whole context; the customer
    /// is told where they stand.
    pub async fn transfer(
        &self,
        key: &ConversationKey,
        agent: &str,
        skill_group: &str,
    ) -> Result<QueuePosition, EngineError> {
        self.transfer_to(key, agent, &TransferTo::Group(skill_group.to_string()), "")
            .await
            .map(|position| position.unwrap_or(QueuePosition { position: 1 }))
    }

    /// Passes the conversation to a skill group's queue, or straight to another agent (who
    /// owns it then), with its whole context and `note` for whoever takes it (not shown to
    /// the customer). The hand-off so far stays in the queue's history. The customer is told
    /// (with their place in the queue, returned, for a group).
    pub async fn transfer_to(
        &self,
        key: &ConversationKey,
        agent: &str,
        to: &TransferTo,
        note: &str,
    ) -> Result<Option<QueuePosition>, EngineError> {
        let Some(conversation) = self.engine.conversation(key).await? else {
            return Err(EngineError::NoConversation(key.clone()));
        };
        let queue = &self.engine.queue;
        let before = queue.open_request(key).await?;
        let group = match (to, &before) {
            (TransferTo::Group(group), _) => group.clone(),
            (TransferTo::Agent(_), Some(before)) => before.skill_group.clone(),
            (TransferTo::Agent(_), None) => self.engine.config.default_skill_group.clone(),
        };
        let transcript = self.engine.transcript(key).await?;
        let skip = transcript
            .len()
            .saturating_sub(self.engine.config.handoff_context);
        let note = note.trim();
        let from = format!("from {agent}");
        let request = HandoffRequest {
            conversation: key.clone(),
            user: conversation.user.clone(),
            skill_group: group.clone(),
            priority: before.as_ref().map_or(Priority::Normal, |b| b.priority),
            reason: HandoffReason::Transferred,
            entry: before.as_ref().and_then(|b| b.entry.clone()),
            locale: conversation.locale,
            entities: conversation.entities.clone(),
            transcript: transcript.into_iter().skip(skip).collect(),
            enqueued_at: now_millis(),
            vip: before.as_ref().is_some_and(|b| b.vip),
            escalated_at: None,
            note: Some(if note.is_empty() {
                from
            } else {
                format!("{from}: {note}")
            }),
        };
        let request = self.engine.vip_lane(request).await;
        queue.close(key).await?;
        let position = queue.enqueue(request).await?;
        let told = match to {
            TransferTo::Group(_) => {
                let values =
                    |_| BTreeMap::from([("position".to_string(), position.position.to_string())]);
                self.notice(key, Some(Holder::Queue), Reply::Transferred, values)
                    .await?;
                Some(position)
            }
            TransferTo::Agent(colleague) => {
                if let Take::HeldBy(other) = queue.take(key, colleague, usize::MAX).await? {
                    return Err(EngineError::HeldBy(other));
                }
                self.notice(
                    key,
                    Some(Holder::Agent(colleague.clone())),
                    Reply::TransferredToAgent,
                    |_| BTreeMap::new(),
                )
                .await?;
                None
            }
        };
        tracing::info!(conversation = %key, agent, ?to, "transferred");
        self.emit(
            agent,
            Some(key),
            AgentAction::Transferred {
                skill_group: match to {
                    TransferTo::Group(group) => group.clone(),
                    TransferTo::Agent(colleague) => format!("{group}/{colleague}"),
                },
            },
        );
        Ok(told)
    }

    /// Gives the conversation back to the bot without closing the matter (the customer can
    /// ask for a person again); the customer is told.
    pub async fn release_to_bot(
        &self,
        key: &ConversationKey,
        agent: &str,
    ) -> Result<(), EngineError> {
        self.engine.queue.close(key).await?;
        self.notice(key, Some(Holder::Bot), Reply::ReleasedToBot, |_| {
            BTreeMap::new()
        })
        .await?;
        self.emit(agent, Some(key), AgentAction::ReleasedToBot);
        Ok(())
    }

    /// Ends the hand-off: the conversation leaves the queue, the bot answers again, the
    /// customer is thanked and (with [`EngineConfig::survey_on_close`]) asked to rate the
    /// help they got from `agent`.
    ///
    /// [`EngineConfig::survey_on_close`]: crate::EngineConfig::survey_on_close
    pub async fn close(&self, key: &ConversationKey, agent: &str) -> Result<(), EngineError> {
        self.engine.queue.close(key).await?;
        let engine = &self.engine;
        self.say_later(key, |conversation| {
            take_over(conversation, &Holder::Bot);
            conversation.flow = None;
            let closed = engine
                .render(Reply::Closed.text(conversation.locale), &BTreeMap::new())
                .trim_end()
                .to_string();
            let mut said = vec![(closed, OutboundKind::Notification, Vec::new())];
            if engine.config.survey_on_close {
                let slots = BTreeMap::from([(flows::survey::AGENT.to_string(), agent.to_string())]);
                said.extend(engine.start_flow(conversation, flows::survey::NAME, slots));
            }
            said
        })
        .await?;
        tracing::info!(conversation = %key, agent, "conversation closed");
        self.emit(agent, Some(key), AgentAction::Closed);
        Ok(())
    }

    /// Changes a ticket (an agent picks it up, resolves it, ...). When its status changes and
    /// it came from a conversation, the customer is told in the conversation's language
    /// (`update.note` is part of that message, so write it for the customer), through the
    /// outbox. `None` when there is no such ticket.
    pub async fn update_ticket(
        &self,
        number: &str,
        update: TicketUpdate,
    ) -> Result<Option<TicketChange>, EngineError> {
        let tickets = &self.engine.tickets;
        let Some(before) = tickets.get(number).await? else {
            return Ok(None);
        };
        let note = update.note.clone();
        let by = update.by.clone();
        let Some(ticket) = tickets.update(number, update).await? else {
            return Ok(None);
        };
        tracing::info!(ticket = %ticket.number, status = ticket.status.as_str(), "ticket updated");
        let notice = match &ticket.conversation {
            Some(key) if ticket.status != before.status => {
                let values = |locale| {
                    let mut values = self.engine.ticket_values(locale, &ticket);
                    values.insert("note".to_string(), note.trim().to_string());
                    values
                };
                match self
                    .notice(key, None, Reply::TicketStatusChanged, values)
                    .await
                {
                    Ok(notice) => Some(notice),
                    // A ticket whose conversation is gone (never stored, deleted) is still
                    // updated.
                    Err(EngineError::NoConversation(_)) => None,
                    Err(e) => return Err(e),
                }
            }
            _ => None,
        };
        self.emit(
            &by,
            ticket.conversation.as_ref(),
            AgentAction::TicketUpdated {
                number: ticket.number.clone(),
                status: ticket.status.as_str().to_string(),
            },
        );
        Ok(Some(TicketChange { ticket, notice }))
    }

    /// An order's card keys for an agent who needs them (a customer who lost the chat, say):
    /// recorded in the audit log under the order, with the agent and their reason. Everything
    /// else agents see keeps keys masked.
    pub async fn reveal_card_keys(
        &self,
        order: &str,
        agent: &str,
        reason: &str,
    ) -> Result<Vec<String>, EngineError> {
        let orders = self.engine.orders.clone().ok_or(OrdersError::Unsupported(
            "card keys without an order system",
        ))?;
        let keys = orders.card_keys(order).await?;
        let masked: Vec<String> = keys
            .iter()
            .map(|k| flows::card_key_lookup::mask(k))
            .collect();
        self.engine
            .audit
            .record(AuditEvent {
                at: now_millis(),
                actor: format!("agent:{agent}"),
                action: KEYS_REVEALED.to_string(),
                subject: order.to_string(),
                detail: format!(
                    "{} key(s): {}; reason: {reason}",
                    keys.len(),
                    masked.join(", ")
                ),
                dedupe_key: None,
            })
            .await?;
        tracing::info!(agent, keys = keys.len(), "card keys revealed to an agent");
        self.emit(
            agent,
            None,
            AgentAction::KeysRevealed {
                order: order.to_string(),
            },
        );
        Ok(keys)
    }

    /// The orders a customer bought from this chat identity, newest first (card keys are
    /// not part of them). Empty when the order system cannot list a customer's orders.
    pub async fn customer_orders(
        &self,
        channel: &str,
        user: &str,
    ) -> Result<Vec<crate::orders::Order>, EngineError> {
        let Some(orders) = &self.engine.orders else {
            return Ok(Vec::new());
        };
        match orders.for_customer(channel, user).await {
            Ok(found) => Ok(found),
            Err(OrdersError::Unsupported(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// An order's card keys, masked (`ABCD****WXYZ`): what an agent sees without revealing
    /// them ([`Agents::reveal_card_keys`]).
    pub async fn masked_card_keys(&self, order: &str) -> Result<Vec<String>, EngineError> {
        let Some(orders) = &self.engine.orders else {
            return Ok(Vec::new());
        };
        Ok(orders
            .card_keys(order)
            .await?
            .iter()
            .map(|k| flows::card_key_lookup::mask(k))
            .collect())
    }

    /// `agent` opens a ticket from the conversation (for the conversation's customer and its
    /// skill group, due by the kind's target); the customer is told its number and due time
    /// through the outbox. `idempotency_key` names the opening: a form sent twice opens one
    /// ticket and tells the customer once.
    pub async fn open_ticket(
        &self,
        key: &ConversationKey,
        agent: &str,
        kind: &str,
        order: Option<&str>,
        description: &str,
        idempotency_key: &str,
    ) -> Result<TicketChange, EngineError> {
        let Some(conversation) = self.engine.conversation(key).await? else {
            return Err(EngineError::NoConversation(key.clone()));
        };
        let group = self.engine.queue.open_request(key).await?.map_or_else(
            || self.engine.config.default_skill_group.clone(),
            |r| r.skill_group,
        );
        let kind = if kind.trim().is_empty() {
            "general"
        } else {
            kind.trim()
        };
        let idempotency_key = format!("agent\u{1f}{agent}\u{1f}{idempotency_key}");
        // The same form sent twice: the ticket it opened, and no second notice.
        if let Some(ticket) = self
            .engine
            .tickets
            .for_customer(&key.channel, &conversation.user)
            .await?
            .into_iter()
            .find(|t| t.idempotency_key.as_deref() == Some(idempotency_key.as_str()))
        {
            return Ok(TicketChange {
                ticket,
                notice: None,
            });
        }
        let ticket = self
            .engine
            .tickets
            .open(crate::tickets::NewTicket {
                kind: kind.to_string(),
                order: order
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(str::to_string),
                conversation: Some(key.clone()),
                customer: conversation.user.clone(),
                description: description.trim().to_string(),
                skill_group: group,
                sla_millis: self.engine.config.ticket_sla(kind),
                by: agent.to_string(),
                idempotency_key: Some(idempotency_key),
            })
            .await?;
        let values = |locale| self.engine.ticket_values(locale, &ticket);
        let notice = self.notice(key, None, Reply::TicketOpened, values).await?;
        tracing::info!(conversation = %key, agent, ticket = %ticket.number, "ticket opened by an agent");
        self.emit(
            agent,
            Some(key),
            AgentAction::TicketUpdated {
                number: ticket.number.clone(),
                status: ticket.status.as_str().to_string(),
            },
        );
        Ok(TicketChange {
            ticket,
            notice: Some(notice),
        })
    }

    /// Says `reply` to the customer in the conversation's language, filled with `values`
    /// for that language, and makes `holder` (when given) hold the conversation.
    async fn notice(
        &self,
        key: &ConversationKey,
        holder: Option<Holder>,
        reply: Reply,
        values: impl Fn(Locale) -> BTreeMap<String, String> + Sync,
    ) -> Result<Outbound, EngineError> {
        let mut sent = self
            .say_later(key, |conversation| {
                if let Some(holder) = &holder {
                    take_over(conversation, holder);
                }
                let locale = conversation.locale;
                let text = self.engine.render(reply.text(locale), &values(locale));
                vec![(
                    text.trim_end().to_string(),
                    OutboundKind::Notification,
                    Vec::new(),
                )]
            })
            .await?;
        Ok(sent.remove(0))
    }

    /// Changes the conversation with `change`, which returns what to say to the customer;
    /// each message goes to the outbox with its transcript line (an agent's message in the
    /// agent's name, the rest in the bot's), all in one commit. Returns the queued messages.
    async fn say_later(
        &self,
        key: &ConversationKey,
        change: impl Fn(&mut Conversation) -> Vec<(String, OutboundKind, Vec<QuickReply>)> + Sync,
    ) -> Result<Vec<Outbound>, EngineError> {
        self.engine
            .change(key, |conversation| {
                let said = change(conversation);
                let lines = said
                    .iter()
                    .map(|(text, kind, buttons)| {
                        let speaker = match kind {
                            OutboundKind::AgentMessage => Speaker::Agent,
                            _ => Speaker::Bot,
                        };
                        TranscriptLine {
                            quick_replies: buttons.clone(),
                            ..line(speaker, text, *kind)
                        }
                    })
                    .collect();
                let outbox = said
                    .into_iter()
                    .map(|(text, kind, quick_replies)| Outbound {
                        conversation: key.clone(),
                        text,
                        quick_replies,
                        kind,
                    })
                    .collect();
                (lines, outbox)
            })
            .await
    }

    fn emit(&self, agent: &str, key: Option<&ConversationKey>, action: AgentAction) {
        self.engine.emit(&EngineEvent::Agent(AgentEvent {
            agent: agent.to_string(),
            conversation: key.cloned(),
            action,
        }));
    }
}

/// `holder` takes the conversation over, with the count of misses starting again.
fn take_over(conversation: &mut Conversation, holder: &Holder) {
    conversation.holder = holder.clone();
    conversation.misses = 0;
}

fn line(speaker: Speaker, text: &str, kind: OutboundKind) -> TranscriptLine {
    TranscriptLine {
        at: now_millis(),
        speaker,
        message_id: None,
        text: text.to_string(),
        decision: None,
        confidence: None,
        entry: None,
        kind: Some(kind),
        quick_replies: Vec::new(),
    }
}
