//! The `HandoffQueue` port: conversations waiting for a person, by skill group and priority,
//! and an in-memory implementation.

use crate::conversation::HandoffRequest;
use crate::message::{ConversationKey, Inbound};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// A queue failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue could not be reached or failed.
    #[error("hand-off queue unavailable: {0}")]
    Unavailable(String),
}

/// A message relayed to the person holding (or about to hold) a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    /// The platform's message id.
    pub message_id: String,
    /// Who wrote it.
    pub customer: String,
    /// What they wrote.
    pub text: String,
    /// When it was relayed (ms since the epoch).
    pub at: u64,
}

/// Where the customer stands after being queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePosition {
    /// 1 = next to be served in the skill group.
    pub position: usize,
}

/// What came of [`HandoffQueue::take`].
#[derive(Debug, Clone, PartialEq)]
pub enum Take {
    /// The agent holds it now (or held it already): its request.
    Taken(HandoffRequest),
    /// Another agent holds it.
    HeldBy(String),
    /// The agent already holds as many open conversations as their capacity allows.
    AtCapacity,
    /// The conversation is not in the queue (never handed off, or closed).
    NotQueued,
}

/// A conversation an agent holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// Who holds it.
    pub agent: String,
    /// Since when (ms since the epoch).
    pub claimed_at: u64,
    /// When they first wrote to the customer, if they did.
    pub first_reply_at: Option<u64>,
    /// Its request.
    pub request: HandoffRequest,
}

/// How many recent pick-ups [`HandoffQueue::recent_wait`] looks at.
pub const RECENT_PICKUPS: usize = 20;

/// The queue of conversations waiting for, or held by, people.
#[async_trait]
pub trait HandoffQueue: Send + Sync {
    /// Queues a conversation (again queuing one already waiting updates its request).
    async fn enqueue(&self, request: HandoffRequest) -> Result<QueuePosition, QueueError>;

    /// The waiting position of a conversation, if it waits.
    async fn position(&self, key: &ConversationKey) -> Result<Option<QueuePosition>, QueueError>;

    /// Gives the most urgent, longest-waiting request of `skill_group` to `agent`; each
    /// request is claimed at most once.
    async fn claim(
        &self,
        skill_group: &str,
        agent: &str,
    ) -> Result<Option<HandoffRequest>, QueueError>;

    /// Passes a customer's message to the person who has, or will have, the conversation.
    /// Relaying the same message id again does nothing.
    async fn relay(&self, message: &Inbound) -> Result<(), QueueError>;

    /// The messages relayed for a conversation, oldest first.
    async fn relayed(&self, key: &ConversationKey) -> Result<Vec<Relayed>, QueueError>;

    /// Ends a hand-off: the conversation leaves the queue.
    async fn close(&self, key: &ConversationKey) -> Result<(), QueueError>;

    /// Requests waiting in `skill_group` (every group when `None`), most urgent and then
    /// longest-waiting first: what a console shows.
    async fn waiting(&self, skill_group: Option<&str>) -> Result<Vec<HandoffRequest>, QueueError>;

    /// Who holds a claimed conversation that is still open.
    async fn claimed_by(&self, key: &ConversationKey) -> Result<Option<String>, QueueError>;

    /// The conversation's open hand-off, waiting or held, if it has one. The default looks
    /// through [`HandoffQueue::held`] and [`HandoffQueue::waiting`]; stores can ask directly.
    async fn open_request(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<HandoffRequest>, QueueError> {
        Ok(self
            .held(None)
            .await?
            .into_iter()
            .map(|h| h.request)
            .chain(self.waiting(None).await?)
            .find(|r| &r.conversation == key))
    }

    /// Gives one queued conversation to `agent`, in one atomic step: it is taken only when
    /// nobody holds it and `agent` holds fewer than `capacity` open conversations, so two
    /// agents (on two processes) taking the same conversation get one [`Take::Taken`] and
    /// one [`Take::HeldBy`].
    async fn take(
        &self,
        key: &ConversationKey,
        agent: &str,
        capacity: usize,
    ) -> Result<Take, QueueError>;

    /// The open conversations people hold (`agent`'s only, when given), longest held first.
    async fn held(&self, agent: Option<&str>) -> Result<Vec<Held>, QueueError>;

    /// Records that `agent` wrote to the customer at `at`; the first such time of the
    /// hand-off is kept (time to first human reply).
    async fn replied(&self, key: &ConversationKey, at: u64) -> Result<(), QueueError>;

    /// Escalates the conversations of `skill_group` waiting, unclaimed and not yet escalated,
    /// since `queued_before` or earlier: each is raised one priority step (up to urgent) and
    /// marked escalated at `now`. Returns them.
    async fn escalate(
        &self,
        skill_group: &str,
        queued_before: u64,
        now: u64,
    ) -> Result<Vec<HandoffRequest>, QueueError>;

    /// The median time (ms) the group's last [`RECENT_PICKUPS`] picked-up conversations, queued
    /// since `since`, waited for a person; `None` without any.
    async fn recent_wait(&self, skill_group: &str, since: u64) -> Result<Option<u64>, QueueError>;
}

/// The median of `waits` (the upper one of an even count); `None` when empty.
pub fn median(mut waits: Vec<u64>) -> Option<u64> {
    waits.sort_unstable();
    waits.get(waits.len() / 2).copied()
}

#[derive(Default)]
struct QueueInner {
    waiting: Vec<HandoffRequest>,
    claimed: HashMap<ConversationKey, Claimed>,
    relayed: HashMap<ConversationKey, Vec<Relayed>>,
    /// Every pick-up: group, queued at, claimed at.
    pickups: Vec<(String, u64, u64)>,
}

struct Claimed {
    agent: String,
    at: u64,
    first_reply_at: Option<u64>,
    request: HandoffRequest,
}

impl QueueInner {
    fn claim_at(&mut self, i: usize, agent: &str) -> HandoffRequest {
        let request = self.waiting.remove(i);
        let at = crate::conversation::now_millis();
        self.pickups
            .push((request.skill_group.clone(), request.enqueued_at, at));
        self.claimed.insert(
            request.conversation.clone(),
            Claimed {
                agent: agent.to_string(),
                at,
                first_reply_at: None,
                request: request.clone(),
            },
        );
        request
    }
}

/// A [`HandoffQueue`] in memory.
#[derive(Default)]
pub struct MemoryQueue {
    inner: Mutex<QueueInner>,
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests waiting, most urgent first (for consoles and tests).
    pub fn waiting(&self) -> Vec<HandoffRequest> {
        self.lock().waiting.clone()
    }

    /// Who holds a claimed conversation.
    pub fn claimed_by(&self, key: &ConversationKey) -> Option<String> {
        self.lock().claimed.get(key).map(|c| c.agent.clone())
    }
}

fn sort_waiting(waiting: &mut [HandoffRequest]) {
    waiting.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.enqueued_at.cmp(&b.enqueued_at))
    });
}

#[async_trait]
impl HandoffQueue for MemoryQueue {
    async fn enqueue(&self, request: HandoffRequest) -> Result<QueuePosition, QueueError> {
        let mut inner = self.lock();
        let key = request.conversation.clone();
        let group = request.skill_group.clone();
        inner.claimed.remove(&key);
        match inner.waiting.iter_mut().find(|r| r.conversation == key) {
            Some(existing) => {
                let (enqueued_at, escalated_at) = (existing.enqueued_at, existing.escalated_at);
                *existing = request;
                existing.enqueued_at = enqueued_at;
                existing.escalated_at = existing.escalated_at.or(escalated_at);
            }
            None => inner.waiting.push(request),
        }
        sort_waiting(&mut inner.waiting);
        let position = inner
            .waiting
            .iter()
            .filter(|r| r.skill_group == group)
            .position(|r| r.conversation == key)
            .map_or(1, |p| p + 1);
        Ok(QueuePosition { position })
    }

    async fn position(&self, key: &ConversationKey) -> Result<Option<QueuePosition>, QueueError> {
        let inner = self.lock();
        let Some(request) = inner.waiting.iter().find(|r| &r.conversation == key) else {
            return Ok(None);
        };
        let position = inner
            .waiting
            .iter()
            .filter(|r| r.skill_group == request.skill_group)
            .position(|r| &r.conversation == key)
            .map_or(1, |p| p + 1);
        Ok(Some(QueuePosition { position }))
    }

    async fn claim(
        &self,
        skill_group: &str,
        agent: &str,
    ) -> Result<Option<HandoffRequest>, QueueError> {
        let mut inner = self.lock();
        let Some(i) = inner
            .waiting
            .iter()
            .position(|r| r.skill_group == skill_group)
        else {
            return Ok(None);
        };
        Ok(Some(inner.claim_at(i, agent)))
    }

    async fn relay(&self, message: &Inbound) -> Result<(), QueueError> {
        let mut inner = self.lock();
        let relayed = inner
            .relayed
            .entry(message.conversation.clone())
            .or_default();
        if !relayed.iter().any(|m| m.message_id == message.message_id) {
            relayed.push(Relayed {
                message_id: message.message_id.clone(),
                customer: message.user.clone(),
                text: message.text.clone(),
                at: crate::conversation::now_millis(),
            });
        }
        Ok(())
    }

    async fn relayed(&self, key: &ConversationKey) -> Result<Vec<Relayed>, QueueError> {
        Ok(self.lock().relayed.get(key).cloned().unwrap_or_default())
    }

    async fn close(&self, key: &ConversationKey) -> Result<(), QueueError> {
        let mut inner = self.lock();
        inner.waiting.retain(|r| &r.conversation != key);
        inner.claimed.remove(key);
        Ok(())
    }

    async fn waiting(&self, skill_group: Option<&str>) -> Result<Vec<HandoffRequest>, QueueError> {
        Ok(self
            .lock()
            .waiting
            .iter()
            .filter(|r| skill_group.is_none_or(|g| r.skill_group == g))
            .cloned()
            .collect())
    }

    async fn claimed_by(&self, key: &ConversationKey) -> Result<Option<String>, QueueError> {
        Ok(MemoryQueue::claimed_by(self, key))
    }

    async fn take(
        &self,
        key: &ConversationKey,
        agent: &str,
        capacity: usize,
    ) -> Result<Take, QueueError> {
        let mut inner = self.lock();
        if let Some(claimed) = inner.claimed.get(key) {
            return Ok(if claimed.agent == agent {
                Take::Taken(claimed.request.clone())
            } else {
                Take::HeldBy(claimed.agent.clone())
            });
        }
        let Some(i) = inner.waiting.iter().position(|r| &r.conversation == key) else {
            return Ok(Take::NotQueued);
        };
        let load = inner.claimed.values().filter(|c| c.agent == agent).count();
        if load >= capacity {
            return Ok(Take::AtCapacity);
        }
        Ok(Take::Taken(inner.claim_at(i, agent)))
    }

    async fn held(&self, agent: Option<&str>) -> Result<Vec<Held>, QueueError> {
        let inner = self.lock();
        let mut held: Vec<Held> = inner
            .claimed
            .values()
            .filter(|c| agent.is_none_or(|a| c.agent == a))
            .map(|c| Held {
                agent: c.agent.clone(),
                claimed_at: c.at,
                first_reply_at: c.first_reply_at,
                request: c.request.clone(),
            })
            .collect();
        held.sort_by_key(|h| h.claimed_at);
        Ok(held)
    }

    async fn replied(&self, key: &ConversationKey, at: u64) -> Result<(), QueueError> {
        if let Some(claimed) = self.lock().claimed.get_mut(key) {
            claimed.first_reply_at.get_or_insert(at);
        }
        Ok(())
    }

    async fn escalate(
        &self,
        skill_group: &str,
        queued_before: u64,
        now: u64,
    ) -> Result<Vec<HandoffRequest>, QueueError> {
        let mut inner = self.lock();
        let mut escalated = Vec::new();
        for request in inner.waiting.iter_mut().filter(|r| {
            r.skill_group == skill_group
                && r.escalated_at.is_none()
                && r.enqueued_at <= queued_before
        }) {
            request.priority = request.priority.raised();
            request.escalated_at = Some(now);
            escalated.push(request.clone());
        }
        sort_waiting(&mut inner.waiting);
        Ok(escalated)
    }

    async fn recent_wait(&self, skill_group: &str, since: u64) -> Result<Option<u64>, QueueError> {
        let inner = self.lock();
        let waits: Vec<u64> = inner
            .pickups
            .iter()
            .rev()
            .filter(|(group, queued, _)| group == skill_group && *queued >= since)
            .take(RECENT_PICKUPS)
            .map(|(_, queued, claimed)| claimed.saturating_sub(*queued))
            .collect();
        Ok(median(waits))
    }
}
