//! The service's metrics in the Prometheus text format, counted from the engine's events
//! (turns, hand-offs, agents' actions, ratings) and read from the stores when scraped (queue
//! depth, outbox backlog and dead letters).

use kefu_core::events::{AgentAction, EngineEvent, EngineEvents};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds of the turn-latency histogram's buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Counters fed by the engine's events.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Turns by (channel, decision).
    turns: BTreeMap<(String, String), u64>,
    /// Turns by latency bucket (the last: above every bound).
    latency: [u64; LATENCY_BUCKETS.len() + 1],
    latency_sum: f64,
    /// Hand-offs by (reason, skill group).
    handoffs: BTreeMap<(String, String), u64>,
    /// Agents' actions by kind.
    agent_actions: BTreeMap<String, u64>,
    /// Survey ratings by score.
    ratings: [u64; 5],
    /// Customers locked out of order look-ups.
    lockouts: u64,
    /// Waiting conversations escalated, by skill group.
    escalations: BTreeMap<String, u64>,
    /// Tickets flagged overdue.
    overdue_tickets: u64,
}

/// Values read when the metrics are scraped.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    /// Conversations waiting for a person, by skill group.
    pub waiting: BTreeMap<String, u64>,
    /// Outbox messages waiting to be sent.
    pub outbox_pending: u64,
    /// Outbox messages given up on.
    pub outbox_dead: u64,
    /// Webhook requests refused, by cause.
    pub webhook_rejections: Vec<(&'static str, u64)>,
    /// Web chat requests refused, by cause.
    pub web_rejections: Vec<(&'static str, u64)>,
    /// Conversations with a web chat page open on this process (none: no web chat).
    pub web_pages: Option<u64>,
    /// Platform endpoints' refused requests (Telegram's webhook, Discord's interactions, WeChat's callbacks), by
    /// channel and cause.
    pub channel_rejections: Vec<(&'static str, &'static str, u64)>,
}

/// A label value as a Prometheus string: quotes, backslashes and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A serde name (`snake_case`) of a unit enum value.
fn name_of(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "other".to_string(),
    }
}

/// An agent action's label: its kind only, never the ticket or order it names (one series
/// per kind, and no order numbers in metrics).
fn action_name(action: &AgentAction) -> &'static str {
    match action {
        AgentAction::Claimed => "claimed",
        AgentAction::Joined => "joined",
        AgentAction::Message => "message",
        AgentAction::Transferred { .. } => "transferred",
        AgentAction::ReleasedToBot => "released_to_bot",
        AgentAction::Closed => "closed",
        AgentAction::TicketUpdated { .. } => "ticket_updated",
        AgentAction::KeysRevealed { .. } => "keys_revealed",
        _ => "other",
    }
}

impl EngineEvents for Metrics {
    fn on_event(&self, event: &EngineEvent) {
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            EngineEvent::Turn(turn) => {
                let decision = turn
                    .decision
                    .map_or_else(|| "none".to_string(), |d| name_of(&d));
                *counts
                    .turns
                    .entry((turn.conversation.channel.clone(), decision))
                    .or_default() += 1;
                let seconds = turn.latency.as_secs_f64();
                let bucket = LATENCY_BUCKETS
                    .iter()
                    .position(|bound| seconds <= *bound)
                    .unwrap_or(LATENCY_BUCKETS.len());
                counts.latency[bucket] += 1;
                counts.latency_sum += seconds;
                if let Some(reason) = turn.handoff {
                    let group = turn.handoff_group.clone().unwrap_or_default();
                    *counts
                        .handoffs
                        .entry((name_of(&reason), group))
                        .or_default() += 1;
                }
                if turn.locked_out {
                    counts.lockouts += 1;
                }
            }
            EngineEvent::Agent(agent) => {
                *counts
                    .agent_actions
                    .entry(action_name(&agent.action).to_string())
                    .or_default() += 1;
            }
            EngineEvent::Rated { score, .. } => {
                let index = usize::from((*score).clamp(1, 5)) - 1;
                counts.ratings[index] += 1;
            }
            _ => {}
        }
    }
}

impl Metrics {
    /// Counts what a supervisor round escalated and flagged.
    pub fn supervised(&self, tick: &crate::supervisor::Tick) {
        let mut counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for request in &tick.escalated {
            *counts
                .escalations
                .entry(request.skill_group.clone())
                .or_default() += 1;
        }
        counts.overdue_tickets += tick.overdue.len() as u64;
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self, gauges: &Gauges) -> String {
        let counts = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "kefu_turns_total",
            "counter",
            "Customer turns by channel and decision.",
        );
        for ((channel, decision), n) in &counts.turns {
            let _ = writeln!(
                out,
                "kefu_turns_total{{channel=\"{}\",decision=\"{}\"}} {n}",
                label(channel),
                label(decision)
            );
        }
        family(
            &mut out,
            "kefu_turn_seconds",
            "histogram",
            "Time to handle a customer turn.",
        );
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += counts.latency[i];
            let _ = writeln!(
                out,
                "kefu_turn_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += counts.latency[LATENCY_BUCKETS.len()];
        let _ = writeln!(out, "kefu_turn_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "kefu_turn_seconds_sum {}", counts.latency_sum);
        let _ = writeln!(out, "kefu_turn_seconds_count {cumulative}");
        family(
            &mut out,
            "kefu_handoffs_total",
            "counter",
            "Hand-offs to a person by reason and skill group.",
        );
        for ((reason, group), n) in &counts.handoffs {
            let _ = writeln!(
                out,
                "kefu_handoffs_total{{reason=\"{}\",skill_group=\"{}\"}} {n}",
                label(reason),
                label(group)
            );
        }
        family(
            &mut out,
            "kefu_lockouts_total",
            "counter",
            "Customers locked out of order look-ups after failed proofs.",
        );
        let _ = writeln!(out, "kefu_lockouts_total {}", counts.lockouts);
        family(
            &mut out,
            "kefu_queue_escalations_total",
            "counter",
            "Waiting conversations nobody took within their group's target, escalated.",
        );
        for (group, n) in &counts.escalations {
            let _ = writeln!(
                out,
                "kefu_queue_escalations_total{{skill_group=\"{}\"}} {n}",
                label(group)
            );
        }
        family(
            &mut out,
            "kefu_tickets_overdue_total",
            "counter",
            "Tickets flagged overdue (past their due time, unresolved).",
        );
        let _ = writeln!(out, "kefu_tickets_overdue_total {}", counts.overdue_tickets);
        family(
            &mut out,
            "kefu_agent_actions_total",
            "counter",
            "Agents' actions by kind.",
        );
        for (action, n) in &counts.agent_actions {
            let _ = writeln!(
                out,
                "kefu_agent_actions_total{{action=\"{}\"}} {n}",
                label(action)
            );
        }
        family(
            &mut out,
            "kefu_ratings_total",
            "counter",
            "Satisfaction survey scores.",
        );
        for (i, n) in counts.ratings.iter().enumerate() {
            let _ = writeln!(out, "kefu_ratings_total{{score=\"{}\"}} {n}", i + 1);
        }
        family(
            &mut out,
            "kefu_queue_waiting",
            "gauge",
            "Conversations waiting for a person, by skill group.",
        );
        for (group, n) in &gauges.waiting {
            let _ = writeln!(
                out,
                "kefu_queue_waiting{{skill_group=\"{}\"}} {n}",
                label(group)
            );
        }
        family(
            &mut out,
            "kefu_outbox_pending",
            "gauge",
            "Messages waiting in the outbox.",
        );
        let _ = writeln!(out, "kefu_outbox_pending {}", gauges.outbox_pending);
        family(
            &mut out,
            "kefu_outbox_dead",
            "gauge",
            "Outbox messages given up on (kefu outbox dead).",
        );
        let _ = writeln!(out, "kefu_outbox_dead {}", gauges.outbox_dead);
        family(
            &mut out,
            "kefu_webhook_rejections_total",
            "counter",
            "Webhook requests refused, by cause.",
        );
        for (cause, n) in &gauges.webhook_rejections {
            let _ = writeln!(
                out,
                "kefu_webhook_rejections_total{{cause=\"{cause}\"}} {n}"
            );
        }
        if !gauges.channel_rejections.is_empty() {
            family(
                &mut out,
                "kefu_channel_rejections_total",
                "counter",
                "Requests to a chat platform's endpoint (Telegram's webhook, Discord's interactions, WeChat's and WeCom's callbacks) refused, by channel and cause.",
            );
            for (channel, cause, n) in &gauges.channel_rejections {
                let _ = writeln!(
                    out,
                    "kefu_channel_rejections_total{{channel=\"{channel}\",cause=\"{cause}\"}} {n}"
                );
            }
        }
        if let Some(pages) = gauges.web_pages {
            family(
                &mut out,
                "kefu_web_pages_open",
                "gauge",
                "Conversations with a web chat page open on this process.",
            );
            let _ = writeln!(out, "kefu_web_pages_open {pages}");
            family(
                &mut out,
                "kefu_web_rejections_total",
                "counter",
                "Web chat requests refused, by cause.",
            );
            for (cause, n) in &gauges.web_rejections {
                let _ = writeln!(out, "kefu_web_rejections_total{{cause=\"{cause}\"}} {n}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_core::events::AgentEvent;

    #[test]
    fn agent_actions_are_counted_by_kind_without_the_order_or_ticket_they_name() {
        let metrics = Metrics::default();
        for action in [
            AgentAction::KeysRevealed {
                order: "20241123000017".into(),
            },
            AgentAction::TicketUpdated {
                number: "T20261123000001".into(),
                status: "resolved".into(),
            },
            AgentAction::KeysRevealed {
                order: "20241123000018".into(),
            },
        ] {
            metrics.on_event(&EngineEvent::Agent(AgentEvent {
                agent: "amy".into(),
                conversation: None,
                action,
            }));
        }
        let text = metrics.render(&Gauges::default());
        assert!(
            text.contains("kefu_agent_actions_total{action=\"keys_revealed\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("kefu_agent_actions_total{action=\"ticket_updated\"} 1"),
            "{text}"
        );
        assert!(!text.contains("2024112300001"), "{text}");
        assert!(!text.contains("T2026"), "{text}");
    }
}
