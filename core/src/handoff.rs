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
}

#[derive(Default)]
struct QueueInner {
    waiting: Vec<HandoffRequest>,
    claimed: HashMap<ConversationKey, (String, HandoffRequest)>,
    relayed: HashMap<ConversationKey, Vec<Relayed>>,
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
        self.lock().claimed.get(key).map(|(agent, _)| agent.clone())
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
        match inner.waiting.iter_mut().find(|r| r.conversation == key) {
            Some(existing) => {
                let enqueued_at = existing.enqueued_at;
                *existing = request;
                existing.enqueued_at = enqueued_at;
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
        let request = inner.waiting.remove(i);
        inner.claimed.insert(
            request.conversation.clone(),
            (agent.to_string(), request.clone()),
        );
        Ok(Some(request))
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
}
