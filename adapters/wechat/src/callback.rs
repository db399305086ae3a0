//! What the Official Account and WeCom callbacks share: checking a request (signature,
//! replay window, size, decryption), deduplicating WeChat's retries, and the 5-second rule.
//!
//! # The 5-second rule and retries
//!
//! WeChat waits 5 seconds for the answer to a message, then drops the connection and sends
//! the message again (three tries in all). So every message runs in a *flight*, keyed by its
//! `MsgId` (events: sender, `CreateTime` and event):
//!
//! - the first delivery starts the flight: a spawned task runs the turn;
//! - every delivery (the first and any retry) waits for the turn at most the reply budget;
//! - a turn finished in time is answered passively, in the HTTP response, by exactly one
//!   delivery — the latest one waiting, since WeChat gave up on the earlier connections — and
//!   every other delivery gets `success` (nothing);
//! - a turn still running when the budget is up makes the flight *deferred*: the waiting
//!   deliveries answer `success`, and the turn's replies go to the outbox when it finishes,
//!   sent through the platform's message API;
//! - a turn that finished but whose passive answer nobody took by the deadline (the
//!   connection was gone) goes to the outbox too: replies are never lost, and never sent
//!   twice;
//! - a retry after all that answers `success` without another turn. Across restarts the
//!   engine itself drops a message id it has seen.

use crate::xml::{self, Kind, Message};
use crate::{crypto, Cause, Rejections};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use kefu_core::limit::Recent;
use kefu_core::limit::RefusalCause;
use kefu_core::outbox::Clock;
use kefu_core::{ConversationKey, Engine, Inbound, Outbound, OutboundKind, Outbox};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How far a request's timestamp may be from the server's clock, either way.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(300);

/// The longest passive reply kefu sends in one piece (bytes of text); longer answers go
/// first-passively, the rest through the outbox.
const PASSIVE_MAX_BYTES: usize = 2000;

/// Flights and nonces remembered; the oldest are forgotten first.
const REMEMBERED: usize = 20_000;

/// What customers are told when they send a picture, a voice message, a location...
pub(crate) const TYPE_PLEASE: &str = "抱歉，我暂时只能看懂文字消息，请直接输入您的问题；需要人工客服请发送“人工”。\nSorry, I can only read text messages for now. Please type your question, or send \"human\" to reach a person.";

/// One account's callback: the engine and outbox it feeds, its secrets, and its memory of
/// recent messages.
pub(crate) struct Endpoint {
    pub engine: Arc<Engine>,
    pub outbox: Arc<dyn Outbox>,
    pub wake: Arc<Notify>,
    /// The conversations' channel name.
    pub channel: &'static str,
    pub token: String,
    pub crypt: Option<crypto::MessageCrypt>,
    pub max_body_bytes: usize,
    pub reply_budget: Duration,
    pub clock: Clock,
    flights: Mutex<Recent<String, Arc<Flight>>>,
    /// `timestamp:nonce` of signed requests seen lately, with the message each carried.
    nonces: Mutex<Recent<String, String>>,
    pub rejections: Rejections,
}

/// How a request is answered.
#[derive(Debug)]
pub(crate) enum Answer {
    /// `success`: nothing to say (now).
    Success,
    /// A passive text reply.
    Passive(String),
    /// The turn failed in time: 503, so WeChat tries again.
    Unavailable,
}

/// What to do with a message.
enum Action {
    /// Run a turn.
    Turn(Inbound),
    /// Answer with fixed replies, without a turn.
    Fixed(Vec<Outbound>),
    /// Nothing.
    Nothing,
}

struct Flight {
    state: Mutex<FlightState>,
    changed: Notify,
    deadline: Instant,
}

#[derive(Default)]
struct FlightState {
    outcome: Outcome,
    /// The number of the latest delivery waiting (1 for the first).
    latest: u32,
    /// Deliveries waiting now, by number.
    waiting: Vec<u32>,
}

#[derive(Default)]
enum Outcome {
    /// The turn is running.
    #[default]
    Running,
    /// The turn finished in time; its replies wait to be taken by a delivery or, at the
    /// deadline, by the outbox.
    Ready(Vec<Outbound>),
    /// The replies went (or will go) out one way or another.
    Delivered,
    /// The budget ran out before the turn finished: its replies go to the outbox.
    Deferred,
    /// The turn failed before the deadline.
    Failed,
}

impl Endpoint {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: Arc<Engine>,
        outbox: Arc<dyn Outbox>,
        wake: Arc<Notify>,
        channel: &'static str,
        token: String,
        crypt: Option<crypto::MessageCrypt>,
        max_body_bytes: usize,
        reply_budget: Duration,
        clock: Clock,
    ) -> Self {
        Endpoint {
            engine,
            outbox,
            wake,
            channel,
            token,
            crypt,
            max_body_bytes,
            reply_budget,
            clock,
            flights: Mutex::new(Recent::new(REMEMBERED)),
            nonces: Mutex::new(Recent::new(REMEMBERED)),
            rejections: Rejections::default(),
        }
    }

    /// Counts and logs a refusal, and answers it.
    pub fn refuse(&self, cause: Cause, status: StatusCode, message: &str) -> Response {
        self.rejections.count(cause);
        tracing::info!(
            channel = self.channel,
            cause = cause.as_str(),
            "WeChat callback refused: {message}"
        );
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{message}\n"),
        )
            .into_response()
    }

    /// Whether `timestamp` is within [`REPLAY_WINDOW`] of the clock.
    pub fn fresh(&self, timestamp: &str) -> bool {
        let Ok(ts) = timestamp.trim().parse::<u64>() else {
            return false;
        };
        let now = self.clock.now_ms() / 1000;
        now.abs_diff(ts) <= REPLAY_WINDOW.as_secs()
    }

    /// Records that the signed `timestamp`/`nonce` carried `message`; false when they
    /// carried another message before (a replay of a captured request with a new body).
    /// The same pair with the same message is a retry, handled by deduplication.
    pub fn first_use(&self, timestamp: &str, nonce: &str, message: &str) -> bool {
        let key = format!("{timestamp}:{nonce}");
        let mut nonces = lock(&self.nonces);
        match nonces.get(&key) {
            Some(seen) => seen == message,
            None => {
                nonces.insert(key, message.to_string());
                true
            }
        }
    }

    /// Handles a verified message: deduplicated, within the reply budget.
    pub async fn deliver(self: &Arc<Self>, message: &Message) -> Answer {
        let action = self.action(message);
        if matches!(action, Action::Nothing) {
            return Answer::Success;
        }
        let key = message.dedupe_key();
        let (flight, attempt, new) = {
            let mut flights = lock(&self.flights);
            let (flight, new) = match flights.get(&key) {
                Some(flight) => (flight.clone(), false),
                None => {
                    let flight = Arc::new(Flight {
                        state: Mutex::new(FlightState::default()),
                        changed: Notify::new(),
                        deadline: Instant::now() + self.reply_budget,
                    });
                    flights.insert(key.clone(), flight.clone());
                    (flight, true)
                }
            };
            let mut state = lock(&flight.state);
            state.latest += 1;
            let attempt = state.latest;
            state.waiting.push(attempt);
            drop(state);
            (flight, attempt, new)
        };
        if new {
            tokio::spawn(self.clone().fly(key.clone(), flight.clone(), action));
        } else {
            tracing::debug!(channel = self.channel, message = %key, attempt, "WeChat delivered a message again; waiting for the first delivery's outcome");
        }
        let deadline =
            (Instant::now() + self.reply_budget).min(flight.deadline.max(Instant::now()));
        let _leave = Leave {
            flight: &flight,
            attempt,
        };
        loop {
            let notified = flight.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(answer) = self.take(&flight, attempt, false) {
                return answer;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.take(&flight, attempt, true).unwrap_or(Answer::Success);
            }
        }
    }

    /// What delivery `attempt` answers now, if it can answer yet (`last`: it must).
    fn take(&self, flight: &Flight, attempt: u32, last: bool) -> Option<Answer> {
        let mut state = lock(&flight.state);
        let latest_waiting = state.waiting.iter().max() == Some(&attempt);
        match &state.outcome {
            Outcome::Running if last => Some(Answer::Success),
            Outcome::Running => None,
            Outcome::Ready(_) if !latest_waiting => Some(Answer::Success),
            Outcome::Ready(_) => {
                let Outcome::Ready(replies) =
                    std::mem::replace(&mut state.outcome, Outcome::Delivered)
                else {
                    return Some(Answer::Success);
                };
                drop(state);
                Some(self.answer_passively(replies))
            }
            Outcome::Delivered | Outcome::Deferred => Some(Answer::Success),
            Outcome::Failed => Some(Answer::Unavailable),
        }
    }

    /// The passive answer to a finished turn: all its replies in one message when they fit,
    /// otherwise the first, the rest through the outbox.
    fn answer_passively(self: &Endpoint, replies: Vec<Outbound>) -> Answer {
        if replies.is_empty() {
            return Answer::Success;
        }
        let rendered: Vec<String> = replies.iter().map(render).collect();
        let joined = rendered.join("\n\n");
        if joined.len() <= PASSIVE_MAX_BYTES {
            return Answer::Passive(joined);
        }
        let rest: Vec<Outbound> = replies.into_iter().skip(1).collect();
        if !rest.is_empty() {
            let endpoint_outbox = self.outbox.clone();
            let wake = self.wake.clone();
            let channel = self.channel;
            tokio::spawn(async move {
                enqueue(&*endpoint_outbox, &wake, channel, rest).await;
            });
        }
        Answer::Passive(rendered.into_iter().next().unwrap_or_default())
    }

    /// Runs a flight: the turn, then whatever its replies' way out is.
    async fn fly(self: Arc<Self>, key: String, flight: Arc<Flight>, action: Action) {
        let turn = async {
            match action {
                Action::Turn(mut inbound) => {
                    // A typed number picks a line of the list the bot sent last.
                    if inbound.text.trim().len() <= 2 {
                        let lines = self.engine.transcript(&inbound.conversation).await?;
                        if let Some(payload) = numbered_choice(&lines, &inbound.text) {
                            inbound.text = payload;
                        }
                    }
                    self.engine.handle(inbound).await
                }
                Action::Fixed(replies) => Ok(replies),
                Action::Nothing => Ok(Vec::new()),
            }
        };
        tokio::pin!(turn);
        let finished = tokio::time::timeout_at(flight.deadline, &mut turn).await;
        match finished {
            Ok(Ok(replies)) => {
                lock(&flight.state).outcome = Outcome::Ready(replies);
                flight.changed.notify_waiters();
                // Whoever comes first takes the replies: a waiting delivery now, or the
                // outbox at the deadline.
                tokio::time::sleep_until(flight.deadline).await;
                let leftover = {
                    let mut state = lock(&flight.state);
                    match std::mem::replace(&mut state.outcome, Outcome::Delivered) {
                        Outcome::Ready(replies) => replies,
                        other => {
                            state.outcome = other;
                            Vec::new()
                        }
                    }
                };
                flight.changed.notify_waiters();
                if !leftover.is_empty() {
                    tracing::info!(channel = self.channel, message = %key, "nobody took the passive reply in time; it goes through the message API");
                    enqueue(&*self.outbox, &self.wake, self.channel, leftover).await;
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(channel = self.channel, message = %key, error = %e, "a WeChat message's turn failed; WeChat will deliver it again");
                lock(&flight.state).outcome = Outcome::Failed;
                lock(&self.flights).remove(&key);
                flight.changed.notify_waiters();
            }
            Err(_) => {
                lock(&flight.state).outcome = Outcome::Deferred;
                flight.changed.notify_waiters();
                tracing::info!(channel = self.channel, message = %key, budget_ms = self.reply_budget.as_millis() as u64, "the turn is slower than the reply budget; its replies will go through the message API");
                match turn.await {
                    Ok(replies) => enqueue(&*self.outbox, &self.wake, self.channel, replies).await,
                    Err(e) => {
                        tracing::error!(channel = self.channel, message = %key, error = %e, "a WeChat message's turn failed after WeChat was answered; the customer gets no reply to it");
                    }
                }
            }
        }
    }

    /// What to do with a message.
    fn action(&self, message: &Message) -> Action {
        let conversation = ConversationKey::new(self.channel, message.from_user.clone());
        let id = message
            .msg_id
            .clone()
            .unwrap_or_else(|| message.dedupe_key());
        let turn = |text: &str| {
            Action::Turn(Inbound::new(
                conversation.clone(),
                message.from_user.clone(),
                id.clone(),
                text,
            ))
        };
        match &message.kind {
            Kind::Text(text) if text.trim().is_empty() => Action::Nothing,
            Kind::Text(text) => turn(text),
            Kind::Event { event, key } => match event.to_ascii_lowercase().as_str() {
                "subscribe" | "enter_agent" => turn("/start"),
                "click" => match key {
                    Some(key) => turn(key),
                    None => Action::Nothing,
                },
                _ => Action::Nothing,
            },
            Kind::Other(_) => Action::Fixed(vec![Outbound {
                conversation,
                text: TYPE_PLEASE.to_string(),
                quick_replies: Vec::new(),
                kind: OutboundKind::Answer,
            }]),
        }
    }

    /// The HTTP response for `answer` to `message`: plain XML, or encrypted when `encrypt`.
    pub fn respond(&self, answer: Answer, message: &Message, encrypt: bool) -> Response {
        match answer {
            Answer::Success => success(),
            Answer::Unavailable => self.refuse(
                Cause::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                "the message could not be handled right now; deliver it again",
            ),
            Answer::Passive(text) => {
                let now = self.clock.now_ms() / 1000;
                let reply = xml::text_reply(&message.from_user, &message.to_user, now, &text);
                let body = match (&self.crypt, encrypt) {
                    (Some(crypt), true) => {
                        let encrypted = crypt.encrypt(&reply);
                        let timestamp = now.to_string();
                        let nonce = random_nonce();
                        let signature =
                            crypto::signature(&[&self.token, &timestamp, &nonce, &encrypted]);
                        xml::encrypted_reply(&encrypted, &signature, &timestamp, &nonce)
                    }
                    _ => reply,
                };
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
                    body,
                )
                    .into_response()
            }
        }
    }
}

/// Leaves a flight's waiting list when a delivery is done or its connection is dropped.
struct Leave<'a> {
    flight: &'a Flight,
    attempt: u32,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.flight.state);
        state.waiting.retain(|a| *a != self.attempt);
        drop(state);
        // Another delivery may be the latest waiting one now.
        self.flight.changed.notify_waiters();
    }
}

/// `success`: WeChat's "nothing to say, do not retry".
pub(crate) fn success() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "success",
    )
        .into_response()
}

/// A message's text as WeChat shows it: quick replies, which WeChat text cannot carry as
/// buttons, become numbered lines, and the customer types the number. Where the replies'
/// payloads are numbers themselves (the engine's numbered choices, the survey's scores), the
/// lines show those numbers, so what the customer types means what the engine expects; a list
/// the text already spells out is not repeated.
pub(crate) fn render(message: &Outbound) -> String {
    if message.quick_replies.is_empty() {
        return message.text.clone();
    }
    // The engine's numbered choices are in the text already ("1. 查询发货进度").
    if message
        .quick_replies
        .iter()
        .all(|r| message.text.contains(&format!(". {}", r.label)))
    {
        return message.text.clone();
    }
    let numeric = numeric_payloads(&message.quick_replies);
    let mut text = message.text.trim_end().to_string();
    text.push('\n');
    for (i, reply) in message.quick_replies.iter().enumerate() {
        let line = if !numeric {
            format!("{}. {}", i + 1, reply.label)
        } else if reply.label.starts_with(reply.payload.as_str()) {
            reply.label.clone()
        } else {
            format!("{}. {}", reply.payload, reply.label)
        };
        text.push('\n');
        text.push_str(&line);
    }
    text
}

/// Whether every quick reply sends a number (then a typed number is already what it sends).
fn numeric_payloads(replies: &[kefu_core::QuickReply]) -> bool {
    replies
        .iter()
        .all(|r| !r.payload.is_empty() && r.payload.bytes().all(|b| b.is_ascii_digit()))
}

/// What a typed number means: the payload of that line of the numbered list the bot's latest
/// replies ended with ([`render`]), when its payloads are not numbers themselves; `None` when
/// `text` is not a number or no such list is there.
pub(crate) fn numbered_choice(lines: &[kefu_core::TranscriptLine], text: &str) -> Option<String> {
    let n: usize = text.trim().parse().ok().filter(|n| (1..=20).contains(n))?;
    let latest = lines
        .iter()
        .rev()
        .take_while(|l| l.speaker != kefu_core::Speaker::Customer)
        .find(|l| !l.quick_replies.is_empty())?;
    if numeric_payloads(&latest.quick_replies) {
        return None;
    }
    latest.quick_replies.get(n - 1).map(|r| r.payload.clone())
}

/// Writes replies to the outbox and wakes its worker.
pub(crate) async fn enqueue(
    outbox: &dyn Outbox,
    wake: &Notify,
    channel: &str,
    replies: Vec<Outbound>,
) {
    if replies.is_empty() {
        return;
    }
    let count = replies.len();
    match outbox
        .enqueue(replies, kefu_core::conversation::now_millis())
        .await
    {
        Ok(_) => wake.notify_one(),
        Err(e) => {
            tracing::error!(channel, count, error = %e, "the replies could not be written to the outbox; they are lost");
        }
    }
}

fn random_nonce() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = (kefu_core::conversation::now_millis()).to_le_bytes();
    }
    (u64::from_le_bytes(bytes) % 10_000_000_000).to_string()
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each holds a map or a small state changed in one step: a panic cannot leave it torn.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_core::QuickReply;

    #[test]
    fn quick_replies_become_numbered_lines() {
        let message = Outbound {
            conversation: ConversationKey::new("wechat", "o1"),
            text: "您是想问：".into(),
            quick_replies: vec![
                QuickReply::new("退款", "refund"),
                QuickReply::new("发货", "x"),
            ],
            kind: OutboundKind::Suggestion,
        };
        assert_eq!(render(&message), "您是想问：\n\n1. 退款\n2. 发货");
        // Numbers as payloads (the survey's scores): the lines show them.
        let survey = Outbound {
            quick_replies: vec![
                QuickReply::new("5 非常满意", "5"),
                QuickReply::new("1 很不满意", "1"),
            ],
            ..message.clone()
        };
        assert_eq!(render(&survey), "您是想问：\n\n5 非常满意\n1 很不满意");
        // A list the text already spells out is not repeated.
        let spelled = Outbound {
            text: "回复序号即可：\n1. 退款\n2. 发货".into(),
            ..message.clone()
        };
        assert_eq!(render(&spelled), spelled.text);
    }

    #[test]
    fn a_typed_number_picks_the_line_of_the_latest_list() {
        use kefu_core::{Speaker, TranscriptLine};
        let line = |speaker: Speaker, replies: Vec<QuickReply>| TranscriptLine {
            at: 0,
            speaker,
            message_id: None,
            text: String::new(),
            decision: None,
            confidence: None,
            entry: None,
            kind: None,
            quick_replies: replies,
        };
        let lines = vec![
            line(Speaker::Customer, vec![]),
            line(
                Speaker::Bot,
                vec![
                    QuickReply::new("卡密怎么使用", "卡密怎么使用"),
                    QuickReply::new("申请退款", "我要申请退款"),
                ],
            ),
        ];
        assert_eq!(
            numbered_choice(&lines, "2").as_deref(),
            Some("我要申请退款")
        );
        assert_eq!(numbered_choice(&lines, "3"), None);
        assert_eq!(numbered_choice(&lines, "退款"), None);
        // Numeric payloads are the engine's own numbers: left alone.
        let scores = vec![
            line(Speaker::Customer, vec![]),
            line(Speaker::Bot, vec![QuickReply::new("5 非常满意", "5")]),
        ];
        assert_eq!(numbered_choice(&scores, "1"), None);
        // A list from before the customer's last message is not the latest.
        let mut old = lines.clone();
        old.push(line(Speaker::Customer, vec![]));
        old.push(line(Speaker::Bot, vec![]));
        assert_eq!(numbered_choice(&old, "1"), None);
    }
}
