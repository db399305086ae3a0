//! The service-level supervisor `kefu serve` runs every few seconds: conversations waiting
//! past their group's pick-up target are escalated (raised one priority step and flagged in
//! the console), tickets past their due time are flagged once in their history, and, when
//! `handoff.auto_assign` is on, waiting conversations go to the least-loaded available agent
//! of their group.
//!
//! Each step is safe on several processes at once: escalation and flagging happen once
//! (the queue and the ticket history record them), and assignment takes conversations with
//! the queue's atomic, capacity-checked take.

use crate::config::Config;
use crate::App;
use kefu_core::tickets::TicketUpdate;
use kefu_core::{ConversationKey, HandoffQueue, HandoffRequest, Take};
use kefu_sql::Status;
use std::collections::BTreeMap;

/// Who flags overdue tickets in their history.
pub const SLA_ACTOR: &str = "sla";
/// An agent whose console showed no sign of life for this long is not given conversations.
pub const FRESH_MS: u64 = 2 * 60 * 1000;

/// What one [`tick`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tick {
    /// Conversations escalated now.
    pub escalated: Vec<HandoffRequest>,
    /// Tickets flagged overdue now.
    pub overdue: Vec<String>,
    /// Conversations given to agents now.
    pub assigned: Vec<(ConversationKey, String)>,
}

impl Tick {
    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        self.escalated.is_empty() && self.overdue.is_empty() && self.assigned.is_empty()
    }
}

/// One round of the supervisor at time `now` (ms since the epoch).
pub async fn tick(app: &App, config: &Config, now: u64) -> anyhow::Result<Tick> {
    let mut done = Tick::default();
    let queue = app.db.queue();
    for group in &config.skill_groups {
        let target = config.handoff.pickup_target_ms(group);
        let escalated = queue
            .escalate(group, now.saturating_sub(target), now)
            .await?;
        for request in &escalated {
            tracing::warn!(
                conversation = %request.conversation,
                skill_group = %group,
                priority = ?request.priority,
                "nobody took a waiting conversation within the target: escalated"
            );
        }
        done.escalated.extend(escalated);
    }

    let tickets = app.agents.tickets();
    for ticket in tickets.overdue(now).await? {
        if ticket.history.iter().any(|e| e.by == SLA_ACTOR) {
            continue;
        }
        let late = now.saturating_sub(ticket.due_at);
        tickets
            .update(
                &ticket.number,
                TicketUpdate {
                    status: None,
                    owner: None,
                    by: SLA_ACTOR.to_string(),
                    note: format!("overdue by {} min: escalated", late / 60_000),
                },
            )
            .await?;
        tracing::warn!(ticket = %ticket.number, skill_group = %ticket.skill_group, "ticket overdue: escalated");
        done.overdue.push(ticket.number);
    }

    if config.handoff.auto_assign {
        done.assigned = assign(app, now).await?;
    }
    Ok(done)
}

/// Gives waiting conversations, most urgent first, to the least-loaded available agent who
/// answers their group and has room.
async fn assign(app: &App, now: u64) -> anyhow::Result<Vec<(ConversationKey, String)>> {
    let queue = app.db.queue();
    let waiting = queue.waiting(None).await?;
    if waiting.is_empty() {
        return Ok(Vec::new());
    }
    let agents: Vec<_> = app
        .db
        .accounts()
        .list()
        .await?
        .into_iter()
        .filter(|a| {
            !a.disabled
                && a.status == Status::Available
                && a.seen_at
                    .is_some_and(|seen| now.saturating_sub(seen) <= FRESH_MS)
        })
        .collect();
    let mut load: BTreeMap<String, usize> = BTreeMap::new();
    for held in queue.held(None).await? {
        *load.entry(held.agent).or_default() += 1;
    }
    let mut assigned = Vec::new();
    for request in waiting {
        let least = agents
            .iter()
            .filter(|a| a.answers(&request.skill_group))
            .map(|a| (load.get(&a.name).copied().unwrap_or(0), a))
            .filter(|(held, a)| *held < a.capacity as usize)
            .min_by_key(|(held, a)| (*held, a.name.clone()));
        let Some((_, agent)) = least else {
            continue;
        };
        match app
            .agents
            .take(&request.conversation, &agent.name, agent.capacity as usize)
            .await?
        {
            Take::Taken(_) => {
                *load.entry(agent.name.clone()).or_default() += 1;
                tracing::info!(conversation = %request.conversation, agent = %agent.name, "assigned");
                assigned.push((request.conversation, agent.name.clone()));
            }
            // Another process was faster, or the agent filled up meanwhile.
            Take::HeldBy(_) | Take::NotQueued => {}
            Take::AtCapacity => {
                load.insert(agent.name.clone(), agent.capacity as usize);
            }
        }
    }
    Ok(assigned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kefu_core::conversation::now_millis;
    use kefu_core::tickets::NewTicket;
    use kefu_core::{Inbound, Priority};
    use kefu_sql::Role;

    async fn app(dir: &std::path::Path, extra: &str) -> (App, Config) {
        let yaml = format!(
            "storage:\n  url: sqlite://{}/kefu.db\n{extra}",
            dir.display()
        );
        let config = Config::parse(std::path::Path::new("kefu.yaml"), &yaml).unwrap();
        let kb = Arc::new(kefu_core::testing::OneEntry::new(
            "service.hours",
            "hours",
            "9点到24点",
            "9:00 to 24:00",
        ));
        (App::with_knowledge(&config, kb).await.unwrap(), config)
    }

    use std::sync::Arc;

    async fn hand_off(app: &App, chat: &str) -> ConversationKey {
        let key = ConversationKey::new("test", chat);
        app.engine
            .handle(Inbound::new(key.clone(), chat, "m1", "转人工"))
            .await
            .unwrap();
        key
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nobody_taking_a_conversation_within_the_target_escalates_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let (app, config) = app(dir.path(), "handoff:\n  pickup_target_seconds: 30\n").await;
        let key = hand_off(&app, "c1").await;
        let queued = app.db.queue().waiting(None).await.unwrap()[0].clone();
        assert_eq!(queued.priority, Priority::Normal);
        // The clock is given: 29 seconds after the hand-off nothing happens, 31 seconds after
        // the conversation is escalated, and only once.
        let at = queued.enqueued_at;
        assert!(tick(&app, &config, at + 29_000).await.unwrap().is_empty());
        let done = tick(&app, &config, at + 31_000).await.unwrap();
        assert_eq!(done.escalated.len(), 1);
        assert_eq!(done.escalated[0].conversation, key);
        let waiting = app.db.queue().waiting(None).await.unwrap();
        assert_eq!(waiting[0].priority, Priority::High);
        assert_eq!(waiting[0].escalated_at, Some(at + 31_000));
        assert!(tick(&app, &config, at + 90_000).await.unwrap().is_empty());
        app.metrics.supervised(&done);
        let text = app.metrics.render(&crate::metrics::Gauges::default());
        assert!(
            text.contains("kefu_queue_escalations_total{skill_group=\"general\"} 1"),
            "{text}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_ticket_past_its_due_time_is_flagged_once() {
        let dir = tempfile::tempdir().unwrap();
        let (app, config) = app(dir.path(), "").await;
        let tickets = app.agents.tickets();
        let opened = tickets
            .open(NewTicket {
                kind: "card_key".into(),
                order: Some("DD1".into()),
                conversation: None,
                customer: "u1".into(),
                description: "卡密无效".into(),
                skill_group: "orders".into(),
                sla_millis: config.engine_config().ticket_sla("card_key"),
                by: "bot".into(),
                idempotency_key: None,
            })
            .await
            .unwrap();
        assert_eq!(
            opened.due_at - opened.created_at,
            2 * 3_600_000,
            "card keys: 2 h"
        );
        let due = opened.due_at;
        assert!(tick(&app, &config, due - 1)
            .await
            .unwrap()
            .overdue
            .is_empty());
        let done = tick(&app, &config, due + 60_000).await.unwrap();
        assert_eq!(done.overdue, std::slice::from_ref(&opened.number));
        assert!(tick(&app, &config, due + 120_000)
            .await
            .unwrap()
            .overdue
            .is_empty());
        let ticket = tickets.get(&opened.number).await.unwrap().unwrap();
        assert_eq!(ticket.status, opened.status, "the status is unchanged");
        assert!(ticket.history.iter().any(|e| e.by == SLA_ACTOR));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn auto_assignment_goes_to_the_least_loaded_available_agent_within_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let (app, config) = app(dir.path(), "handoff:\n  auto_assign: true\n").await;
        let accounts = app.db.accounts();
        let now = now_millis();
        for name in ["amy", "bob", "cat"] {
            accounts
                .add(name, Role::Agent, "correct horse battery", now)
                .await
                .unwrap();
            accounts.set_capacity(name, 1).await.unwrap();
            accounts.seen(name, now).await.unwrap();
        }
        accounts.set_status("amy", Status::Available).await.unwrap();
        accounts.set_status("bob", Status::Available).await.unwrap();
        // cat is away: she gets nothing.
        for chat in ["c1", "c2", "c3"] {
            hand_off(&app, chat).await;
        }
        let done = tick(&app, &config, now).await.unwrap();
        let mut given: Vec<_> = done.assigned.iter().map(|(_, a)| a.as_str()).collect();
        given.sort();
        assert_eq!(given, ["amy", "bob"], "one each: their capacity is 1");
        assert_eq!(app.db.queue().waiting(None).await.unwrap().len(), 1);
        // An agent whose console went quiet gets nothing either.
        accounts.set_capacity("amy", 2).await.unwrap();
        let later = now + FRESH_MS + 1;
        assert!(tick(&app, &config, later)
            .await
            .unwrap()
            .assigned
            .is_empty());
        accounts.seen("amy", later).await.unwrap();
        let done = tick(&app, &config, later).await.unwrap();
        assert_eq!(done.assigned.len(), 1);
        assert_eq!(done.assigned[0].1, "amy");
    }
}
