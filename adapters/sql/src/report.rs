//! The service report: the figures a shop's admin needs over a period, read from the stored
//! history ([`Database::report`]).
//!
//! A report covers the period `[since, until)` (ms since the epoch) and is computed as things
//! stood at `until`: a claim, first reply, close or ticket stamped at or after `until` has not
//! happened yet for it, so a report of a past period does not change as time goes on (except
//! that tickets' statuses are their current ones). The rows of the period are read with a few
//! simple queries (the same SQL on SQLite and PostgreSQL) and the figures are computed here.
//!
//! # Definitions
//!
//! The queue keeps one row per hand-off and one per transfer (`handoff_queue`): a transfer
//! closes the conversation's row and opens one with the reason `transferred`. Rows of one
//! conversation form *chains*: a hand-off row (any reason but `transferred`) starts one, and a
//! `transferred` row continues the chain of the conversation's row before it when that row was
//! closed within a minute of the transfer row's enqueue time ([`TRANSFER_SLACK_MS`]; a
//! transfer stamps its new row just before it closes the old one). A `transferred` row that
//! follows nothing so (an agent's transfer of a conversation that was not in the queue) starts
//! a chain of its own, which is counted as a transfer and nowhere else.
//!
//! - **conversations**: conversations started in the period. **contained**: those with no
//!   queue row enqueued before `until` (the bot solved or ended them alone);
//!   [`Report::containment`] = contained / conversations.
//! - **handoffs**: hand-off rows (reason not `transferred`) enqueued in the period, also by
//!   reason (**handoff_reasons**, the stored snake_case names); **transfers**: the
//!   `transferred` rows enqueued in the period.
//! - **queue_wait**: `claimed_at − enqueued_at` of the rows (hand-offs and transfers)
//!   enqueued in the period and claimed.
//! - **first_reply**: `first_reply_at − enqueued_at` of the rows enqueued in the period that
//!   got a person's reply: how long the customer waited, from being handed off (or
//!   transferred), for the first human message.
//! - **resolution**: for each chain that started with a hand-off and *ended* in the period —
//!   its last row closed in the period while a person held it (claimed) — the last row's
//!   `closed_at` minus the first row's `enqueued_at`. A chain whose last row was closed
//!   without being claimed (the customer left the queue) is not resolved and counts in neither
//!   resolution nor FCR. Chains are rebuilt from rows as described above, so a transfer is
//!   joined to its hand-off by time: that is the approximation.
//! - **fcr** (first-contact resolution): of the chains ending in the period (as for
//!   resolution), the share after which the customer did not come back about the same matter
//!   within [`REPEAT_WINDOW_MS`] (7 days) of the end. Coming back: a hand-off row (not a
//!   transfer) of the same customer (channel and customer id, in any conversation) enqueued in
//!   that window with the same FAQ `entry` (both set) or the same `order_no` entity as any row
//!   of the chain; or a ticket of the same customer on one of those order numbers opened in
//!   that window. Only what happened before `until` is seen: a chain that ended less than 7
//!   days before `until` counts as resolved unless the customer already came back, so the
//!   latest days' FCR can only fall as later reports see more.
//! - **ratings**: survey ratings given in the period (`at` in the period, from the
//!   conversations' state, scores 1–5); **csat_average**: their mean score.
//! - **surveys**: survey questions the bot asked in the period: transcript lines of kind
//!   `survey` offering a score. The survey's second question (a comment, with only a "skip"
//!   button) is a `survey` line too and is not counted; lines stored without their buttons
//!   (before schema version 5) are all counted. **response_rate** = ratings / surveys.
//! - **tickets_opened**: tickets opened in the period; **tickets_overdue**: tickets opened
//!   before `until`, not resolved or closed, with `due_at` before `until`.
//! - **groups** and **agents**: the same figures by skill group and by agent. A slice's
//!   `handoffs` counts the rows of the period (hand-offs and transfers) the group received or
//!   the agent claimed; queue wait and first reply go to the row's group and claiming agent;
//!   resolution and FCR to the group and agent of the chain's last row (who closed it);
//!   ratings to the rating's agent, and to the group of the conversation's row closed last
//!   before the rating (rows that ended more than 7 days before the period are not read).
//!
//! Percentiles are nearest-rank ([`nearest_rank`]). A difference of two times that comes out
//! negative counts as 0. A stored row that cannot be read (odd JSON, a score out of range) is
//! skipped with a warning; nothing panics on what is stored.

use crate::db::{millis, on_pool, Database};
use serde::Serialize;
use sqlx::Row;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

/// How long after a hand-off ends a new contact of the customer about the same matter means
/// it was not resolved (7 days, ms).
pub const REPEAT_WINDOW_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// How far apart a transfer row's enqueue time and the close of the row before it may be for
/// the two to be one chain (ms).
pub const TRANSFER_SLACK_MS: u64 = 60 * 1000;

/// The reason of a row made by an agent's transfer.
const TRANSFERRED: &str = "transferred";

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The period ends before or when it starts.
    #[error("the report's period is empty: it must end ({until} ms) after it starts ({since} ms)")]
    EmptyPeriod {
        /// The start asked for (ms since the epoch).
        since: u64,
        /// The end asked for.
        until: u64,
    },
    /// A query failed.
    #[error("cannot read {what} for the service report: {source}")]
    Query {
        /// What was being read.
        what: &'static str,
        /// What the driver said.
        source: sqlx::Error,
    },
}

fn failed(what: &'static str) -> impl Fn(sqlx::Error) -> ReportError {
    move |source| ReportError::Query { what, source }
}

/// How long something took, over the items of a period: how many, and the nearest-rank
/// median and 90th percentile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Spread {
    /// How many durations.
    pub count: u64,
    /// The median (ms); `None` without durations.
    pub p50_ms: Option<u64>,
    /// The 90th percentile (ms); `None` without durations.
    pub p90_ms: Option<u64>,
}

impl Spread {
    /// The spread of `values` (ms), in any order.
    pub fn of(values: impl IntoIterator<Item = u64>) -> Spread {
        let mut sorted: Vec<u64> = values.into_iter().collect();
        sorted.sort_unstable();
        Spread {
            count: sorted.len() as u64,
            p50_ms: nearest_rank(&sorted, 50),
            p90_ms: nearest_rank(&sorted, 90),
        }
    }
}

/// The nearest-rank `percent`th percentile of `sorted` (ascending): the smallest value with at
/// least `percent`% of the values at or below it; `None` for no values. Percentages above 100
/// count as 100; 0 gives the smallest value.
pub fn nearest_rank(sorted: &[u64], percent: u8) -> Option<u64> {
    let n = sorted.len();
    let rank = (usize::from(percent.min(100)) * n).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// The figures of one skill group or one agent (see the [module docs](self)).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Slice {
    /// Queue rows of the period (hand-offs and transfers) the group received or the agent
    /// claimed.
    pub handoffs: u64,
    /// From enqueue to claim.
    pub queue_wait: Spread,
    /// From enqueue to the first human reply.
    pub first_reply: Spread,
    /// From the hand-off to the end of its chain, of chains ending in the period.
    pub resolution: Spread,
    /// First-contact resolution of the chains ending in the period; `None` without any.
    pub fcr: Option<f64>,
    /// Survey ratings given in the period.
    pub ratings: u64,
    /// Their mean score (1–5); `None` without ratings.
    pub csat_average: Option<f64>,
}

/// The service report of a period (see the [module docs](self) for each figure).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The period's start (ms since the epoch, included).
    pub since: u64,
    /// The period's end (ms since the epoch, excluded); the report is as things stood then.
    pub until: u64,
    /// Conversations started in the period.
    pub conversations: u64,
    /// Of those, the ones never handed off to a person.
    pub contained: u64,
    /// Hand-offs (not transfers) enqueued in the period.
    pub handoffs: u64,
    /// Hand-offs by reason (`requested`, `needs_person`, ...).
    pub handoff_reasons: BTreeMap<String, u64>,
    /// Transfers enqueued in the period.
    pub transfers: u64,
    /// From enqueue to claim, of the period's rows.
    pub queue_wait: Spread,
    /// From enqueue to the first human reply, of the period's rows.
    pub first_reply: Spread,
    /// From the hand-off to the end of its chain, of chains ending in the period.
    pub resolution: Spread,
    /// First-contact resolution of the chains ending in the period; `None` without any.
    pub fcr: Option<f64>,
    /// Survey ratings given in the period.
    pub ratings: u64,
    /// Their mean score (1–5); `None` without ratings.
    pub csat_average: Option<f64>,
    /// Survey questions asked in the period.
    pub surveys: u64,
    /// Ratings per survey question; `None` without surveys.
    pub response_rate: Option<f64>,
    /// Tickets opened in the period.
    pub tickets_opened: u64,
    /// Unfinished tickets past due at `until`.
    pub tickets_overdue: u64,
    /// The figures by skill group.
    pub groups: BTreeMap<String, Slice>,
    /// The figures by agent.
    pub agents: BTreeMap<String, Slice>,
}

impl Report {
    /// The share of the period's conversations the bot handled alone; `None` without
    /// conversations.
    pub fn containment(&self) -> Option<f64> {
        ratio(self.contained, self.conversations)
    }

    /// The report as Prometheus text-format gauges named `kefu_report_…`, each with its
    /// `# HELP` and `# TYPE` lines; a figure without a value (no data) has no line.
    pub fn prometheus(&self) -> String {
        let mut out = Prometheus::default();
        let count = |n: u64| vec![(String::new(), Some(n as f64))];
        out.gauge(
            "conversations",
            "Conversations started in the period.",
            count(self.conversations),
        );
        out.gauge(
            "contained",
            "Conversations started in the period that were never handed off to a person.",
            count(self.contained),
        );
        out.gauge(
            "containment_ratio",
            "Share of the period's conversations the bot handled alone.",
            vec![(String::new(), self.containment())],
        );
        out.gauge(
            "handoffs",
            "Hand-offs to a person enqueued in the period, by reason.",
            self.handoff_reasons
                .iter()
                .map(|(reason, n)| (labels(&[("reason", reason)]), Some(*n as f64)))
                .collect(),
        );
        out.gauge(
            "transfers",
            "Transfers between skill groups or agents enqueued in the period.",
            count(self.transfers),
        );
        out.gauge(
            "queue_wait_seconds",
            "Time from enqueue to an agent's claim.",
            quantiles(&[], &self.queue_wait),
        );
        out.gauge(
            "first_reply_seconds",
            "Time from enqueue to the first human reply.",
            quantiles(&[], &self.first_reply),
        );
        out.gauge(
            "resolution_seconds",
            "Time from a hand-off to the end of its transfer chain, of chains ending in the period.",
            quantiles(&[], &self.resolution),
        );
        out.gauge(
            "fcr_ratio",
            "First-contact resolution: share of hand-offs ending in the period after which the customer did not come back about the same matter within 7 days.",
            vec![(String::new(), self.fcr)],
        );
        out.gauge(
            "ratings",
            "Satisfaction ratings given in the period.",
            count(self.ratings),
        );
        out.gauge(
            "csat_average",
            "Mean satisfaction score (1-5) of the period's ratings.",
            vec![(String::new(), self.csat_average)],
        );
        out.gauge(
            "surveys",
            "Satisfaction survey questions asked in the period.",
            count(self.surveys),
        );
        out.gauge(
            "csat_response_ratio",
            "Ratings per survey question asked in the period.",
            vec![(String::new(), self.response_rate)],
        );
        out.gauge(
            "tickets_opened",
            "Tickets opened in the period.",
            count(self.tickets_opened),
        );
        out.gauge(
            "tickets_overdue",
            "Unfinished tickets past their due time at the end of the period.",
            count(self.tickets_overdue),
        );
        out.gauge(
            "group_handoffs",
            "Queue rows (hand-offs and transfers) a skill group received in the period.",
            self.groups
                .iter()
                .map(|(group, s)| (labels(&[("skill_group", group)]), Some(s.handoffs as f64)))
                .collect(),
        );
        out.gauge(
            "group_queue_wait_seconds",
            "Time from enqueue to an agent's claim, by skill group.",
            self.groups
                .iter()
                .flat_map(|(group, s)| quantiles(&[("skill_group", group)], &s.queue_wait))
                .collect(),
        );
        out.gauge(
            "group_first_reply_seconds",
            "Time from enqueue to the first human reply, by skill group.",
            self.groups
                .iter()
                .flat_map(|(group, s)| quantiles(&[("skill_group", group)], &s.first_reply))
                .collect(),
        );
        out.text
    }
}

/// Gauges in the Prometheus text format.
#[derive(Default)]
struct Prometheus {
    text: String,
}

impl Prometheus {
    /// `kefu_report_{name}` with its samples (`{labels}` or empty, value); samples without a
    /// value are left out, and so is the whole gauge when none has one.
    fn gauge(&mut self, name: &str, help: &str, samples: Vec<(String, Option<f64>)>) {
        let samples: Vec<(String, f64)> = samples
            .into_iter()
            .filter_map(|(labels, value)| value.filter(|v| v.is_finite()).map(|v| (labels, v)))
            .collect();
        if samples.is_empty() {
            return;
        }
        let _ = writeln!(self.text, "# HELP kefu_report_{name} {help}");
        let _ = writeln!(self.text, "# TYPE kefu_report_{name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(self.text, "kefu_report_{name}{labels} {value}");
        }
    }
}

/// `{name="value",...}` with values escaped; empty for no labels.
fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            let value = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{name}=\"{value}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// The median and 90th percentile of `spread` in seconds, with `extra` labels first.
fn quantiles(extra: &[(&str, &str)], spread: &Spread) -> Vec<(String, Option<f64>)> {
    [("0.5", spread.p50_ms), ("0.9", spread.p90_ms)]
        .into_iter()
        .map(|(quantile, ms)| {
            let mut pairs = extra.to_vec();
            pairs.push(("quantile", quantile));
            (labels(&pairs), ms.map(|ms| ms as f64 / 1000.0))
        })
        .collect()
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn mean(scores: &[u8]) -> Option<f64> {
    (!scores.is_empty())
        .then(|| scores.iter().map(|s| f64::from(*s)).sum::<f64>() / scores.len() as f64)
}

/// A queue row as the report reads it, as things stood at `until`.
#[derive(Debug, Clone)]
struct QueueRow {
    channel: String,
    conversation: String,
    customer: String,
    group: String,
    reason: String,
    entry: Option<String>,
    order_no: Option<String>,
    enqueued_at: u64,
    claimed_by: Option<String>,
    claimed_at: Option<u64>,
    first_reply_at: Option<u64>,
    closed_at: Option<u64>,
}

impl QueueRow {
    fn is_transfer(&self) -> bool {
        self.reason == TRANSFERRED
    }
}

/// A survey rating from a conversation's state.
#[derive(Debug, Clone)]
struct RatingRow {
    channel: String,
    conversation: String,
    score: u8,
    agent: Option<String>,
    at: u64,
}

/// A ticket opened in the period.
#[derive(Debug, Clone)]
struct TicketRow {
    channel: Option<String>,
    customer: String,
    order_no: Option<String>,
    created_at: u64,
}

/// What the queries read, for [`compute`].
#[derive(Debug, Default)]
struct Inputs {
    conversations: u64,
    contained: u64,
    /// The rows of every conversation with a row in or near the period, ordered by id.
    rows: Vec<QueueRow>,
    ratings: Vec<RatingRow>,
    surveys: u64,
    tickets: Vec<TicketRow>,
    tickets_overdue: u64,
}

/// A stored time (ms), negative ones as 0.
fn time(t: i64) -> u64 {
    t.max(0) as u64
}

/// A stored time if it came before `until`.
fn time_before(t: Option<i64>, until: u64) -> Option<u64> {
    t.map(time).filter(|t| *t < until)
}

/// An order number as compared: trimmed, upper case; `None` when empty.
fn order_key(order: &str) -> Option<String> {
    let order = order.trim();
    (!order.is_empty()).then(|| order.to_ascii_uppercase())
}

/// The `order_no` of a row's entities (a JSON object).
fn order_of(entities: &str) -> Result<Option<String>, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_str(entities)?;
    Ok(value
        .get("order_no")
        .and_then(serde_json::Value::as_str)
        .and_then(order_key))
}

/// The ratings in a conversation's state (JSON) given in `[since, until)`; an unreadable
/// rating is skipped with a warning, an unreadable state is an error.
fn ratings_in(
    state: &str,
    channel: &str,
    conversation: &str,
    since: u64,
    until: u64,
) -> Result<Vec<RatingRow>, String> {
    let value: serde_json::Value = serde_json::from_str(state).map_err(|e| e.to_string())?;
    let ratings = match value.get("ratings") {
        None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
        Some(serde_json::Value::Array(ratings)) => ratings,
        Some(_) => return Err("`ratings` is not a list".to_string()),
    };
    let mut found = Vec::new();
    for rating in ratings {
        let rating: kefu_core::Rating = match serde_json::from_value(rating.clone()) {
            Ok(rating) => rating,
            Err(e) => {
                tracing::warn!(channel, conversation, error = %e, "report: a stored rating is unreadable; skipped");
                continue;
            }
        };
        if !(1..=5).contains(&rating.score) {
            tracing::warn!(
                channel,
                conversation,
                score = rating.score,
                "report: a stored rating's score is not 1 to 5; skipped"
            );
            continue;
        }
        if rating.at >= since && rating.at < until {
            found.push(RatingRow {
                channel: channel.to_string(),
                conversation: conversation.to_string(),
                score: rating.score,
                agent: rating.agent,
                at: rating.at,
            });
        }
    }
    Ok(found)
}

/// Whether a survey line's stored buttons (a JSON array of `{label, payload}`, or NULL) make
/// it a survey question: it offers a score, or its buttons were not stored. `None` when the
/// buttons are unreadable.
fn asks_for_score(buttons: Option<&str>) -> Option<bool> {
    let Some(buttons) = buttons else {
        return Some(true);
    };
    let buttons: Vec<serde_json::Value> = serde_json::from_str(buttons).ok()?;
    Some(buttons.iter().any(|b| {
        b.get("payload")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|p| matches!(p.trim(), "1" | "2" | "3" | "4" | "5"))
    }))
}

/// How many conversations started in the period (the same SQL on SQLite and PostgreSQL, as
/// every query here).
const CONVERSATIONS_SQL: &str =
    "SELECT COUNT(*) FROM conversations WHERE started_at >= $1 AND started_at < $2";

/// The period's conversations without a queue row before `until`.
const CONTAINED_SQL: &str = "SELECT COUNT(*) FROM conversations c \
     WHERE c.started_at >= $1 AND c.started_at < $2 AND NOT EXISTS ( \
       SELECT 1 FROM handoff_queue h \
       WHERE h.channel = c.channel AND h.conversation_id = c.conversation_id \
         AND h.enqueued_at < $2)";

/// Every row enqueued before `until` ($2) of the conversations with a row enqueued or closed
/// since $1 (the period's start less the repeat window), or still open.
const ROWS_SQL: &str = "SELECT h.channel, h.conversation_id, h.customer, h.skill_group, h.reason, \
       h.entry, h.entities, h.enqueued_at, h.claimed_by, h.claimed_at, h.first_reply_at, \
       h.closed_at \
     FROM handoff_queue h \
     WHERE h.enqueued_at < $2 AND EXISTS ( \
       SELECT 1 FROM handoff_queue o \
       WHERE o.channel = h.channel AND o.conversation_id = h.conversation_id \
         AND o.enqueued_at < $2 \
         AND (o.enqueued_at >= $1 OR o.closed_at IS NULL OR o.closed_at >= $1)) \
     ORDER BY h.id";

/// The states of conversations that may hold a rating of the period.
const STATES_SQL: &str = "SELECT channel, conversation_id, state FROM conversations \
     WHERE updated_at >= $1 AND started_at < $2";

/// The buttons of the period's survey lines.
const SURVEYS_SQL: &str = "SELECT quick_replies FROM transcript_lines \
     WHERE at >= $1 AND at < $2 AND kind = 'survey'";

/// The tickets opened in the period.
const TICKETS_SQL: &str = "SELECT channel, customer, order_no, created_at FROM tickets \
     WHERE created_at >= $1 AND created_at < $2";

/// Unfinished tickets opened before `until` and due before it (see `SqlTickets::overdue`).
const OVERDUE_SQL: &str = "SELECT COUNT(*) FROM tickets \
     WHERE status NOT IN ('resolved', 'closed') AND due_at < $1 AND created_at < $1";

impl Database {
    /// The service report of `[since, until)` (ms since the epoch), as things stood at
    /// `until`; see [`crate::report`] for what each figure means.
    ///
    /// # Errors
    ///
    /// [`ReportError::EmptyPeriod`] when `until` is not after `since`;
    /// [`ReportError::Query`] when the database fails.
    pub async fn report(&self, since: u64, until: u64) -> Result<Report, ReportError> {
        if until <= since {
            return Err(ReportError::EmptyPeriod { since, until });
        }
        let inputs = self.report_inputs(since, until).await?;
        Ok(compute(since, until, inputs))
    }

    async fn report_inputs(&self, since: u64, until: u64) -> Result<Inputs, ReportError> {
        let (from, to) = (millis(since), millis(until));
        let lookback = millis(since.saturating_sub(REPEAT_WINDOW_MS));
        let count = |n: i64| n.max(0) as u64;
        on_pool!(self, |pool| {
            let conversations: i64 = sqlx::query_scalar(CONVERSATIONS_SQL)
                .bind(from)
                .bind(to)
                .fetch_one(pool)
                .await
                .map_err(failed("the conversations"))?;
            let contained: i64 = sqlx::query_scalar(CONTAINED_SQL)
                .bind(from)
                .bind(to)
                .fetch_one(pool)
                .await
                .map_err(failed("the conversations"))?;

            let rows = sqlx::query(ROWS_SQL)
                .bind(lookback)
                .bind(to)
                .fetch_all(pool)
                .await
                .map_err(failed("the hand-offs"))?;
            let rows = rows
                .iter()
                .filter_map(|row| {
                    let read = || -> Result<QueueRow, sqlx::Error> {
                        let entities: String = row.try_get("entities")?;
                        let channel: String = row.try_get("channel")?;
                        let conversation: String = row.try_get("conversation_id")?;
                        let order_no = order_of(&entities).unwrap_or_else(|e| {
                            tracing::warn!(%channel, %conversation, error = %e, "report: a hand-off's entities are unreadable; read without an order number");
                            None
                        });
                        let claimed_at = time_before(row.try_get("claimed_at")?, until);
                        Ok(QueueRow {
                            customer: row.try_get("customer")?,
                            group: row.try_get("skill_group")?,
                            reason: row.try_get("reason")?,
                            entry: row
                                .try_get::<Option<String>, _>("entry")?
                                .filter(|e| !e.trim().is_empty()),
                            order_no,
                            enqueued_at: time(row.try_get("enqueued_at")?),
                            claimed_by: row
                                .try_get::<Option<String>, _>("claimed_by")?
                                .filter(|_| claimed_at.is_some()),
                            claimed_at,
                            first_reply_at: time_before(row.try_get("first_reply_at")?, until),
                            closed_at: time_before(row.try_get("closed_at")?, until),
                            channel,
                            conversation,
                        })
                    };
                    read()
                        .map_err(|e| tracing::warn!(error = %e, "report: a hand-off row is unreadable; skipped"))
                        .ok()
                })
                .collect();

            let states = sqlx::query(STATES_SQL)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await
                .map_err(failed("the ratings"))?;
            let mut ratings = Vec::new();
            for row in &states {
                let read = || -> Result<(String, String, String), sqlx::Error> {
                    Ok((
                        row.try_get("channel")?,
                        row.try_get("conversation_id")?,
                        row.try_get("state")?,
                    ))
                };
                let (channel, conversation, state) = match read() {
                    Ok(read) => read,
                    Err(e) => {
                        tracing::warn!(error = %e, "report: a conversation row is unreadable; skipped");
                        continue;
                    }
                };
                match ratings_in(&state, &channel, &conversation, since, until) {
                    Ok(found) => ratings.extend(found),
                    Err(e) => {
                        tracing::warn!(%channel, %conversation, error = %e, "report: a conversation's state is unreadable; its ratings are skipped");
                    }
                }
            }

            let buttons = sqlx::query(SURVEYS_SQL)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await
                .map_err(failed("the surveys"))?;
            let mut surveys = 0;
            for row in &buttons {
                let asks = row
                    .try_get::<Option<String>, _>("quick_replies")
                    .ok()
                    .and_then(|b| asks_for_score(b.as_deref()));
                match asks {
                    Some(asks) => surveys += u64::from(asks),
                    None => {
                        tracing::warn!("report: a survey line's buttons are unreadable; skipped")
                    }
                }
            }

            let tickets = sqlx::query(TICKETS_SQL)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await
                .map_err(failed("the tickets"))?;
            let tickets = tickets
                .iter()
                .filter_map(|row| {
                    let read = || -> Result<TicketRow, sqlx::Error> {
                        Ok(TicketRow {
                            channel: row.try_get("channel")?,
                            customer: row.try_get("customer")?,
                            order_no: row
                                .try_get::<Option<String>, _>("order_no")?
                                .and_then(|o| order_key(&o)),
                            created_at: time(row.try_get("created_at")?),
                        })
                    };
                    read()
                        .map_err(|e| tracing::warn!(error = %e, "report: a ticket row is unreadable; skipped"))
                        .ok()
                })
                .collect();
            let overdue: i64 = sqlx::query_scalar(OVERDUE_SQL)
                .bind(to)
                .fetch_one(pool)
                .await
                .map_err(failed("the overdue tickets"))?;

            Ok(Inputs {
                conversations: count(conversations),
                contained: count(contained),
                rows,
                ratings,
                surveys,
                tickets,
                tickets_overdue: count(overdue),
            })
        })
    }
}

/// Durations and counts gathered for the report, a group or an agent.
#[derive(Debug, Default)]
struct Tally {
    handoffs: u64,
    queue_wait: Vec<u64>,
    first_reply: Vec<u64>,
    resolution: Vec<u64>,
    /// Chains ending in the period, and of those resolved at first contact.
    ended: u64,
    first_contact: u64,
    scores: Vec<u8>,
}

impl Tally {
    fn slice(&self) -> Slice {
        Slice {
            handoffs: self.handoffs,
            queue_wait: Spread::of(self.queue_wait.iter().copied()),
            first_reply: Spread::of(self.first_reply.iter().copied()),
            resolution: Spread::of(self.resolution.iter().copied()),
            fcr: ratio(self.first_contact, self.ended),
            ratings: self.scores.len() as u64,
            csat_average: mean(&self.scores),
        }
    }
}

/// The tallies of the whole report, by group and by agent.
#[derive(Default)]
struct Tallies {
    all: Tally,
    groups: BTreeMap<String, Tally>,
    agents: BTreeMap<String, Tally>,
}

impl Tallies {
    /// Applies `add` to the report's tally, the group's, and the agent's if there is one.
    fn add(&mut self, group: Option<&str>, agent: Option<&str>, add: impl Fn(&mut Tally)) {
        add(&mut self.all);
        if let Some(group) = group {
            add(self.groups.entry(group.to_string()).or_default());
        }
        if let Some(agent) = agent {
            add(self.agents.entry(agent.to_string()).or_default());
        }
    }
}

/// Splits each conversation's rows (ordered by id) into chains of row indices.
fn chains(rows: &[QueueRow]) -> Vec<Vec<usize>> {
    let mut by_conversation: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        by_conversation
            .entry((row.channel.as_str(), row.conversation.as_str()))
            .or_default()
            .push(i);
    }
    let mut keys: Vec<_> = by_conversation.keys().copied().collect();
    keys.sort_unstable();
    let mut chains: Vec<Vec<usize>> = Vec::new();
    for key in keys {
        let mut current: Option<usize> = None;
        for &i in &by_conversation[&key] {
            let row = &rows[i];
            let continues = row.is_transfer()
                && current.is_some_and(|c| {
                    let before = &rows[*chains[c].last().unwrap_or(&i)];
                    before
                        .closed_at
                        .is_some_and(|closed| closed.abs_diff(row.enqueued_at) <= TRANSFER_SLACK_MS)
                });
            match current {
                Some(c) if continues => chains[c].push(i),
                _ => {
                    chains.push(vec![i]);
                    current = Some(chains.len() - 1);
                }
            }
        }
    }
    chains
}

/// The report's figures from what the queries read.
fn compute(since: u64, until: u64, inputs: Inputs) -> Report {
    let rows = &inputs.rows;
    let mut tallies = Tallies::default();
    let mut handoffs = 0;
    let mut transfers = 0;
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();

    for row in rows.iter().filter(|r| r.enqueued_at >= since) {
        if row.is_transfer() {
            transfers += 1;
        } else {
            handoffs += 1;
            *reasons.entry(row.reason.clone()).or_default() += 1;
        }
        let (group, agent) = (Some(row.group.as_str()), row.claimed_by.as_deref());
        tallies.add(group, agent, |t| t.handoffs += 1);
        if let Some(claimed) = row.claimed_at {
            let wait = claimed.saturating_sub(row.enqueued_at);
            tallies.add(group, agent, |t| t.queue_wait.push(wait));
        }
        if let Some(replied) = row.first_reply_at {
            let wait = replied.saturating_sub(row.enqueued_at);
            tallies.add(group, agent, |t| t.first_reply.push(wait));
        }
    }

    // Hand-off rows and tickets by customer, for "came back about the same matter".
    let mut contacts: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
    for (i, row) in rows.iter().enumerate().filter(|(_, r)| !r.is_transfer()) {
        contacts
            .entry((row.channel.as_str(), row.customer.as_str()))
            .or_default()
            .push(i);
    }
    let mut tickets: HashMap<&str, Vec<&TicketRow>> = HashMap::new();
    for ticket in &inputs.tickets {
        tickets
            .entry(ticket.customer.as_str())
            .or_default()
            .push(ticket);
    }

    for chain in chains(rows) {
        let (Some(&first), Some(&last)) = (chain.first(), chain.last()) else {
            continue;
        };
        let (head, end) = (&rows[first], &rows[last]);
        let Some(closed) = end.closed_at else {
            continue;
        };
        if head.is_transfer() || closed < since || end.claimed_by.is_none() {
            continue;
        }
        let resolution = closed.saturating_sub(head.enqueued_at);
        let entries: HashSet<&str> = chain
            .iter()
            .filter_map(|&i| rows[i].entry.as_deref())
            .collect();
        let orders: HashSet<&str> = chain
            .iter()
            .filter_map(|&i| rows[i].order_no.as_deref())
            .collect();
        let window = closed..=closed.saturating_add(REPEAT_WINDOW_MS);
        let same_matter = |row: &QueueRow| {
            row.entry.as_deref().is_some_and(|e| entries.contains(e))
                || row.order_no.as_deref().is_some_and(|o| orders.contains(o))
        };
        let came_back = contacts
            .get(&(head.channel.as_str(), head.customer.as_str()))
            .is_some_and(|later| {
                later.iter().any(|&i| {
                    !chain.contains(&i)
                        && window.contains(&rows[i].enqueued_at)
                        && same_matter(&rows[i])
                })
            })
            || tickets.get(head.customer.as_str()).is_some_and(|opened| {
                opened.iter().any(|t| {
                    t.channel.as_deref().is_none_or(|c| c == head.channel)
                        && window.contains(&t.created_at)
                        && t.order_no.as_deref().is_some_and(|o| orders.contains(o))
                })
            });
        tallies.add(Some(&end.group), end.claimed_by.as_deref(), |t| {
            t.resolution.push(resolution);
            t.ended += 1;
            t.first_contact += u64::from(!came_back);
        });
    }

    // A rating counts for the group of its conversation's row closed last before it.
    let mut closes: HashMap<(&str, &str), Vec<&QueueRow>> = HashMap::new();
    for row in rows.iter().filter(|r| r.closed_at.is_some()) {
        closes
            .entry((row.channel.as_str(), row.conversation.as_str()))
            .or_default()
            .push(row);
    }
    for rating in &inputs.ratings {
        let group = closes
            .get(&(rating.channel.as_str(), rating.conversation.as_str()))
            .and_then(|rows| {
                rows.iter()
                    .filter(|r| r.closed_at.is_some_and(|c| c <= rating.at))
                    .max_by_key(|r| r.closed_at)
            })
            .map(|r| r.group.as_str());
        tallies.add(group, rating.agent.as_deref(), |t| {
            t.scores.push(rating.score)
        });
    }

    let all = tallies.all.slice();
    Report {
        since,
        until,
        conversations: inputs.conversations,
        contained: inputs.contained.min(inputs.conversations),
        handoffs,
        handoff_reasons: reasons,
        transfers,
        queue_wait: all.queue_wait,
        first_reply: all.first_reply,
        resolution: all.resolution,
        fcr: all.fcr,
        ratings: all.ratings,
        csat_average: all.csat_average,
        surveys: inputs.surveys,
        response_rate: ratio(all.ratings, inputs.surveys),
        tickets_opened: inputs.tickets.len() as u64,
        tickets_overdue: inputs.tickets_overdue,
        groups: tallies
            .groups
            .iter()
            .map(|(g, t)| (g.clone(), t.slice()))
            .collect(),
        agents: tallies
            .agents
            .iter()
            .map(|(a, t)| (a.clone(), t.slice()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_the_smallest_value_covering_the_share() {
        assert_eq!(nearest_rank(&[], 50), None);
        assert_eq!(nearest_rank(&[7], 0), Some(7));
        assert_eq!(nearest_rank(&[7], 50), Some(7));
        assert_eq!(nearest_rank(&[7], 100), Some(7));
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(nearest_rank(&ten, 50), Some(5));
        assert_eq!(nearest_rank(&ten, 90), Some(9));
        assert_eq!(nearest_rank(&ten, 91), Some(10));
        assert_eq!(nearest_rank(&ten, 100), Some(10));
        assert_eq!(nearest_rank(&ten, 255), Some(10));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 90), Some(4));
        assert_eq!(nearest_rank(&[1, 2, 3], 50), Some(2));
        assert_eq!(nearest_rank(&[1, 2, 3], 90), Some(3));
        assert_eq!(nearest_rank(&[10, 20], 50), Some(10));
    }

    #[test]
    fn a_spread_sorts_and_counts() {
        assert_eq!(Spread::of([]), Spread::default());
        assert_eq!(
            Spread::of([600, 120, 240, 360]),
            Spread {
                count: 4,
                p50_ms: Some(240),
                p90_ms: Some(600)
            }
        );
    }

    fn row(conversation: &str, reason: &str, enqueued_at: u64) -> QueueRow {
        QueueRow {
            channel: "web".to_string(),
            conversation: conversation.to_string(),
            customer: format!("customer-{conversation}"),
            group: "general".to_string(),
            reason: reason.to_string(),
            entry: None,
            order_no: None,
            enqueued_at,
            claimed_by: None,
            claimed_at: None,
            first_reply_at: None,
            closed_at: None,
        }
    }

    #[test]
    fn a_transfer_joins_the_row_closed_when_it_was_made() {
        let mut first = row("a", "requested", 1_000);
        first.closed_at = Some(100_000);
        let joined = row("a", "transferred", 99_990);
        let mut late = row("a", "transferred", 100_000 + TRANSFER_SLACK_MS + 1);
        late.closed_at = Some(500_000);
        let other = row("b", "transferred", 1_000);
        let rows = vec![first, joined, late, other];
        assert_eq!(chains(&rows), vec![vec![0, 1], vec![2], vec![3]]);
    }

    #[test]
    fn odd_times_clamp_and_unreadable_ratings_are_skipped() {
        let mut backwards = row("a", "requested", 10_000);
        backwards.claimed_by = Some("ann".to_string());
        backwards.claimed_at = Some(5_000);
        backwards.first_reply_at = Some(1_000);
        backwards.closed_at = Some(2_000);
        let inputs = Inputs {
            conversations: 1,
            contained: 3,
            rows: vec![backwards],
            ..Inputs::default()
        };
        let report = compute(0, 100_000, inputs);
        assert_eq!(report.contained, 1);
        assert_eq!(report.queue_wait.p50_ms, Some(0));
        assert_eq!(report.first_reply.p50_ms, Some(0));
        assert_eq!(report.resolution.p50_ms, Some(0));
        assert_eq!(report.fcr, Some(1.0));

        let state = r#"{"ratings": [{"score": "five"}, {"score": 9, "at": 5}, {"score": 4, "at": 5, "agent": "ann"}, {"score": 2, "at": 500}]}"#;
        let found = ratings_in(state, "web", "a", 0, 100).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].score, found[0].agent.as_deref()),
            (4, Some("ann"))
        );
        assert!(ratings_in("not json", "web", "a", 0, 100).is_err());
        assert!(ratings_in(r#"{"ratings": 3}"#, "web", "a", 0, 100).is_err());
        assert!(ratings_in("{}", "web", "a", 0, 100).unwrap().is_empty());
        assert!(ratings_in("[]", "web", "a", 0, 100).unwrap().is_empty());
    }

    #[test]
    fn only_survey_lines_offering_a_score_are_questions() {
        let score =
            r#"[{"label":"5 Excellent","payload":"5"},{"label":"1 Very poor","payload":"1"}]"#;
        assert_eq!(asks_for_score(Some(score)), Some(true));
        assert_eq!(
            asks_for_score(Some(r#"[{"label":"Skip","payload":"Skip"}]"#)),
            Some(false)
        );
        assert_eq!(asks_for_score(None), Some(true));
        assert_eq!(asks_for_score(Some("{broken")), None);
    }

    fn sample() -> Report {
        let slice = Slice {
            handoffs: 2,
            first_reply: Spread::of([60_000, 90_000]),
            ..Slice::default()
        };
        Report {
            since: 0,
            until: 1,
            conversations: 4,
            contained: 1,
            handoffs: 3,
            handoff_reasons: BTreeMap::from([
                ("needs_person".to_string(), 1),
                ("requested".to_string(), 2),
            ]),
            transfers: 1,
            queue_wait: Spread::of([1_500]),
            first_reply: Spread::of([180_000, 480_000, 720_000]),
            resolution: Spread::default(),
            fcr: Some(0.5),
            ratings: 2,
            csat_average: Some(4.0),
            surveys: 0,
            response_rate: None,
            tickets_opened: 2,
            tickets_overdue: 1,
            groups: BTreeMap::from([("pre\"sales".to_string(), slice)]),
            agents: BTreeMap::new(),
        }
    }

    #[test]
    fn prometheus_prints_gauges_and_leaves_out_what_has_no_value() {
        let text = sample().prometheus();
        for line in [
            "# HELP kefu_report_containment_ratio Share of the period's conversations the bot handled alone.",
            "# TYPE kefu_report_containment_ratio gauge",
            "kefu_report_containment_ratio 0.25",
            "kefu_report_conversations 4",
            "kefu_report_handoffs{reason=\"needs_person\"} 1",
            "kefu_report_handoffs{reason=\"requested\"} 2",
            "kefu_report_transfers 1",
            "kefu_report_queue_wait_seconds{quantile=\"0.5\"} 1.5",
            "kefu_report_first_reply_seconds{quantile=\"0.5\"} 480",
            "kefu_report_first_reply_seconds{quantile=\"0.9\"} 720",
            "kefu_report_fcr_ratio 0.5",
            "kefu_report_csat_average 4",
            "kefu_report_ratings 2",
            "kefu_report_surveys 0",
            "kefu_report_tickets_opened 2",
            "kefu_report_tickets_overdue 1",
            "kefu_report_group_handoffs{skill_group=\"pre\\\"sales\"} 2",
            "kefu_report_group_first_reply_seconds{skill_group=\"pre\\\"sales\",quantile=\"0.5\"} 60",
            "kefu_report_group_first_reply_seconds{skill_group=\"pre\\\"sales\",quantile=\"0.9\"} 90",
        ] {
            assert!(text.lines().any(|l| l == line), "no line `{line}` in:\n{text}");
        }
        // No value, no line (and no lonely HELP/TYPE either).
        for absent in [
            "kefu_report_resolution_seconds",
            "kefu_report_csat_response_ratio",
            "kefu_report_group_queue_wait_seconds",
        ] {
            assert!(!text.contains(absent), "`{absent}` in:\n{text}");
        }
        // Every sample line belongs to a gauge declared just before it.
        let mut declared = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared = rest.trim_end_matches(" gauge").to_string();
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(name, declared, "{text}");
            }
        }
    }
}
