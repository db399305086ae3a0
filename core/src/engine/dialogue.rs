//! Keeping the customer company: what the bot does while they wait for a person, how it offers
//! choices ("did you mean", what to do with a bare order number), and what a hand-off does
//! outside support hours. None of these leaves a customer without a reply.

use super::{title, Engine, EngineError, Turn};
use crate::conversation::{now_millis, HandoffReason, Holder};
use crate::entities::{ORDER_NO, TICKET_NO};
use crate::flows::{self, Flow};
use crate::message::{Inbound, OutboundKind, QuickReply};
use crate::replies::Reply;
use crate::{Action, Decision, FaqEntry, Priority};
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The offered choice that asks for a person.
pub(super) const HUMAN_CHOICE: &str = "@human";
/// The offered choice that goes back to the flow in progress.
pub(super) const CONTINUE_CHOICE: &str = "@continue";

/// "取消排队", "不排了", "never mind" and the other words that leave the queue.
fn leave_queue_words() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?ix)^\s*(?:
                /cancel | 取消 | 取消排队 | 不排了 | 不排队了 | 退出排队 | 不用排了 | 算了 | 不用了
              | 不要了 | 不需要了 | 不用人工了 | 不需要人工了 | 问题解决了 | 已经解决了 | 好了不用了
              | cancel | never\s*mind | nvm | forget\ it | no\ longer\ needed | leave\ the\ queue
              | stop\ waiting | i'?m\ fine\ now | it'?s\ solved | solved\ it
            )\s*[!！.。~]*\s*$",
        )
        .expect("valid regex")
    })
}

/// Something shaped like a ticket number but too short to be one ("工单 T1234").
fn short_ticket_number() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)(?:^|[^a-z0-9])(T[-_]?\d{1,5})(?:$|[^0-9])").expect("valid regex")
    })
}

/// Words that show a message is about a ticket.
fn ticket_words() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?i)工单|售后单|ticket|case").expect("valid regex"))
}

/// Whether a message asks something: a question mark, or a question word of either language.
pub(super) fn asks_something(text: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?ix)[?？]
            | 吗 | 嘛 | 呢 | 怎么 | 怎样 | 如何 | 几 | 多少 | 多久 | 什么 | 啥 | 哪 | 为什么 | 为啥
            | 能不能 | 可不可以 | 可以.*吗 | 是否 | 有没有 | 咩 | 點解 | 幾
            | \b(?:how|what|when|where|why|which|who|can\ i|can\ you|could\ you|do\ you|does
                 |is\ it|is\ there|are\ you|should\ i|will\ i)\b",
        )
        .expect("valid regex")
    })
    .is_match(text)
}

/// Whether `text` is only `values` (numbers) and punctuation: no words.
fn only(text: &str, values: &[&String]) -> bool {
    let rest = values
        .iter()
        .fold(text.to_string(), |t, v| t.replace(v.as_str(), " "));
    !rest.chars().any(|c| c.is_alphanumeric())
}

impl Engine {
    /// A message from a customer waiting for a person: leave the queue, or pass it on and say
    /// so — answering it first when it is a clear FAQ question (not small talk, not one for a
    /// flow or a person) and the shop allows it.
    pub(super) async fn while_queued(
        &self,
        turn: &mut Turn,
        message: &Inbound,
        text: &str,
    ) -> Result<(), EngineError> {
        let key = turn.conversation.key.clone();
        if leave_queue_words().is_match(text) {
            self.queue.close(&key).await?;
            turn.conversation.holder = Holder::Bot;
            turn.conversation.flow = None;
            turn.conversation.misses = 0;
            tracing::info!(conversation = %key, "the customer left the queue");
            self.say(turn, Reply::QueueLeft, OutboundKind::Answer, &[]);
            return Ok(());
        }
        if let Some(command) = text.strip_prefix('/') {
            let name = command.split_whitespace().next().unwrap_or("");
            if ["start", "help", "lang"].contains(&name.to_ascii_lowercase().as_str()) {
                return self.command(turn, command).await.map(|_| ());
            }
        }
        self.queue.relay(message).await?;
        let position = self.queue.position(&key).await?.map(|p| p.position);
        // Questions get answers; statements ("订单 … 卡密用不了，三天没人回") describe the
        // problem the customer waits with, and are for the person alone.
        if self.config.answer_while_queued
            && asks_something(text)
            && !super::explicit_human().is_match(text)
        {
            let ranking = self.rank(text, 1).await;
            let decision = self.config.thresholds.decide(ranking.confidence());
            let plain = ranking
                .top()
                .and_then(|top| self.knowledge.entry(&top.id))
                // Small talk ("你好", "thanks") waits for the person like anything else.
                .filter(|e| {
                    e.action.is_none()
                        && !e.needs_person()
                        && !e.tags.iter().any(|t| t == "smalltalk")
                });
            if let (Decision::Answer, Some(entry)) = (decision, plain) {
                let entry = entry.clone();
                self.note_understanding(turn, decision, ranking.top());
                let answer = self.render(entry.answer.get(turn.locale()), &BTreeMap::new());
                self.push(turn, answer, OutboundKind::Answer, Vec::new());
                if let Some(position) = position {
                    let values = BTreeMap::from([("position".to_string(), position.to_string())]);
                    let note = self.render(Reply::StillQueued.text(turn.locale()), &values);
                    self.push(turn, note, OutboundKind::Handoff, Vec::new());
                }
                return Ok(());
            }
        }
        match position {
            Some(position) => {
                let values = BTreeMap::from([("position".to_string(), position.to_string())]);
                let text = self.render(Reply::QueuedAck.text(turn.locale()), &values);
                self.push(turn, text, OutboundKind::Handoff, Vec::new());
            }
            // Claimed by a person who has not written yet.
            None => self.say(turn, Reply::QueuedAckClaimed, OutboundKind::Handoff, &[]),
        }
        Ok(())
    }

    /// Offers numbered choices: FAQ entries by id, and [`HUMAN_CHOICE`] / [`CONTINUE_CHOICE`].
    pub(super) fn offer(&self, turn: &mut Turn, intro: String, ids: Vec<String>) {
        let mut text = intro;
        let mut buttons = Vec::new();
        let mut offered = Vec::new();
        for id in ids {
            let Some(label) = self.choice_label(turn, &id) else {
                continue;
            };
            text.push_str(&format!("\n{}. {label}", offered.len() + 1));
            buttons.push(QuickReply::new(label, (offered.len() + 1).to_string()));
            offered.push(id);
        }
        turn.conversation.offered = offered;
        self.push(turn, text, OutboundKind::Suggestion, buttons);
    }

    /// How an offered choice is called in the conversation's language.
    fn choice_label(&self, turn: &Turn, id: &str) -> Option<String> {
        let locale = turn.locale();
        match id {
            HUMAN_CHOICE => Some(Reply::HumanButton.text(locale).to_string()),
            CONTINUE_CHOICE => {
                let flow = turn.conversation.flow.as_ref()?;
                let about_ticket = flows::registered(&flow.name)
                    .is_some_and(|f| f.slot().first() == Some(&TICKET_NO));
                let reply = if about_ticket {
                    Reply::ContinueTicket
                } else {
                    Reply::ContinueOrder
                };
                Some(reply.text(locale).to_string())
            }
            id => self
                .knowledge
                .entry(id)
                .map(|e| title(e, locale).to_string()),
        }
    }

    /// A number that is none of the offered choices: the same choices again.
    pub(super) fn reoffer(&self, turn: &mut Turn) {
        let ids = std::mem::take(&mut turn.conversation.offered);
        let values = BTreeMap::from([("max".to_string(), ids.len().to_string())]);
        let intro = self.render(Reply::ChooseByNumber.text(turn.locale()), &values);
        self.offer(turn, intro, ids);
    }

    /// A message that is only an order or ticket number, or names a ticket number that cannot
    /// be one: handled here (true), or left to the FAQ (false).
    pub(super) async fn bare_number(
        &self,
        turn: &mut Turn,
        text: &str,
        found: &BTreeMap<String, String>,
    ) -> Result<bool, EngineError> {
        if let Some(ticket) = found.get(TICKET_NO).filter(|t| only(text, &[t])) {
            let ticket = ticket.clone();
            let entry = self.knowledge.with_action(Action::TicketProgress);
            let top = entry.map(|e| crate::Candidate {
                id: e.id.clone(),
                score: 1.0,
                confidence: 1.0,
                matched_question: e.questions.first().cloned().unwrap_or_default(),
            });
            self.note_understanding(turn, Decision::Answer, top.as_ref());
            self.ticket_by_number(turn, &ticket).await?;
            return Ok(true);
        }
        if let Some(order) = found.get(ORDER_NO).filter(|o| only(text, &[o])) {
            let ids: Vec<String> = [
                Action::DeliveryStatus,
                Action::CardKeyLookup,
                Action::RefundRequest,
            ]
            .into_iter()
            .filter_map(|a| self.knowledge.with_action(a).map(|e| e.id.clone()))
            .collect();
            if ids.is_empty() {
                return Ok(false);
            }
            let values = BTreeMap::from([(ORDER_NO.to_string(), order.clone())]);
            let intro = self.render(Reply::OrderNumberWhat.text(turn.locale()), &values);
            self.offer(turn, intro, ids);
            return Ok(true);
        }
        if !found.contains_key(TICKET_NO) {
            if let Some(short) = short_ticket_number().captures(text).and_then(|c| c.get(1)) {
                let bare = only(text, &[&short.as_str().to_string()]);
                if bare || ticket_words().is_match(text) {
                    let values =
                        BTreeMap::from([(TICKET_NO.to_string(), short.as_str().to_string())]);
                    let reply =
                        self.render(Reply::TicketNumberInvalid.text(turn.locale()), &values);
                    self.push(turn, reply, OutboundKind::Question, Vec::new());
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Whether hand-offs to `skill_group` now go to a ticket because nobody is in.
    pub(super) fn off_hours(&self, skill_group: &str) -> bool {
        self.config
            .hours_of(skill_group)
            .is_some_and(|h| !h.is_open(now_millis(), self.config.utc_offset_minutes))
    }

    /// A hand-off outside support hours: a ticket for the group (one per conversation while
    /// it is open), and the customer told when people are back. The bot keeps answering.
    pub(super) async fn hand_off_to_ticket(
        &self,
        turn: &mut Turn,
        reason: HandoffReason,
        entry: Option<&FaqEntry>,
        skill_group: String,
        priority: Priority,
    ) -> Result<(), EngineError> {
        let key = turn.conversation.key.clone();
        let open = self
            .tickets
            .for_customer(&key.channel, &turn.conversation.user)
            .await?
            .into_iter()
            .find(|t| {
                t.kind == "callback"
                    && !t.status.is_final()
                    && t.conversation.as_ref() == Some(&key)
            });
        let ticket = match open {
            Some(ticket) => ticket,
            None => {
                let asked: Vec<String> = turn
                    .lines
                    .iter()
                    .filter(|l| l.speaker == crate::Speaker::Customer)
                    .map(|l| l.text.clone())
                    .collect();
                let description =
                    format!(
                    "Hand-off outside support hours ({reason:?}{}, priority {priority:?}); answer \
                     the customer in the conversation. They wrote: {}",
                    entry.map(|e| format!(", about {}", e.id)).unwrap_or_default(),
                    asked.join(" / ")
                );
                self.open_ticket(turn, "callback", None, description, skill_group)
                    .await?
            }
        };
        let hours = self.config.hours_of(&ticket.skill_group);
        let back = hours.map_or_else(now_millis, |h| {
            h.next_open(now_millis(), self.config.utc_offset_minutes)
        });
        let mut values = self.ticket_values(turn.locale(), &ticket);
        values.insert("back".to_string(), self.when(back, turn.locale()));
        if let Some(hours) = self.config.group_hours.get(&ticket.skill_group) {
            values.insert("support_hours".to_string(), hours.to_string());
        }
        tracing::info!(conversation = %key, ?reason, ticket = %ticket.number, "hand-off outside support hours became a ticket");
        turn.conversation.flow = None;
        turn.conversation.offered.clear();
        turn.conversation.misses = 0;
        let text = self.render(Reply::OffHours.text(turn.locale()), &values);
        self.push(turn, text, OutboundKind::Handoff, Vec::new());
        Ok(())
    }

    /// In a flow, a question that may be about something else: "did you mean", with going
    /// back to the flow as one of the choices (true); nothing to offer (false).
    pub(super) async fn offer_in_flow(
        &self,
        turn: &mut Turn,
        flow_entry: &str,
        text: &str,
    ) -> Result<bool, EngineError> {
        let ranking = self.rank(text, self.config.suggestions.max(1)).await;
        let decision = self.config.thresholds.decide(ranking.confidence());
        let Some(top) = ranking.top().filter(|t| t.id != flow_entry) else {
            return Ok(false);
        };
        if decision != Decision::Suggest {
            return Ok(false);
        }
        self.note_understanding(turn, decision, Some(top));
        let mut ids: Vec<String> = ranking
            .candidates
            .iter()
            .filter(|c| c.id != flow_entry)
            .map(|c| c.id.clone())
            .collect();
        ids.push(CONTINUE_CHOICE.to_string());
        let intro = Reply::SuggestIntro.text(turn.locale()).to_string();
        self.offer(turn, intro, ids);
        Ok(true)
    }

    /// The flow's question for its slot, again (the customer chose to go on with it).
    pub(super) fn ask_again(&self, turn: &mut Turn, flow: &dyn Flow) {
        self.say(turn, flow.ask(), OutboundKind::Question, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaving_the_queue_is_said_plainly() {
        for yes in [
            "取消排队",
            "/cancel",
            "never mind",
            "不用了",
            "Cancel!",
            "问题解决了",
        ] {
            assert!(leave_queue_words().is_match(yes), "{yes}");
        }
        for no in ["取消订单", "cancel my order", "我不想等了 快点"] {
            assert!(!leave_queue_words().is_match(no), "{no}");
        }
    }

    #[test]
    fn questions_are_told_from_statements() {
        for q in [
            "客服几点上班",
            "卡密无效怎么办",
            "how do I redeem",
            "refund policy?",
            "可以开发票吗",
        ] {
            assert!(asks_something(q), "{q}");
        }
        for s in [
            "订单 2024112300017 卡密用不了，三天没人回",
            "the key never worked",
            "还在等",
        ] {
            assert!(!asks_something(s), "{s}");
        }
    }

    #[test]
    fn short_ticket_numbers_are_caught_long_ones_are_not() {
        let short = |t: &str| short_ticket_number().captures(t).map(|c| c[1].to_string());
        assert_eq!(short("我的工单 T1234 进度").as_deref(), Some("T1234"));
        assert_eq!(short("T-99").as_deref(), Some("T-99"));
        assert_eq!(short("T20261202000001"), None);
        assert_eq!(short("IT1234"), None);
    }
}
