//! The `ConversationStore` port: conversation state, transcripts and message de-duplication,
//! and an in-memory implementation for tests, examples and single-process bots.

use crate::conversation::{Conversation, TranscriptLine};
use crate::message::ConversationKey;
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// A storage failure; the turn is not committed and may be retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or failed.
    #[error("conversation store unavailable: {0}")]
    Unavailable(String),
}

/// One turn's changes, committed atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnCommit {
    /// The conversation's state after the turn.
    pub conversation: Conversation,
    /// The platform message id that started the turn (recorded as processed).
    pub message_id: Option<String>,
    /// Transcript lines the turn adds, in order.
    pub lines: Vec<TranscriptLine>,
}

/// Where conversations live between messages.
///
/// Implementations must make [`ConversationStore::commit`] atomic: the state, the transcript
/// lines and the processed message id are all stored, or none is.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// The conversation's state, if it exists.
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError>;

    /// Whether `message_id` was already processed in this conversation.
    async fn is_processed(
        &self,
        key: &ConversationKey,
        message_id: &str,
    ) -> Result<bool, StoreError>;

    /// Stores one turn atomically. Returns `false` (and stores nothing) when the turn's
    /// message id was already processed.
    async fn commit(&self, turn: TurnCommit) -> Result<bool, StoreError>;

    /// The whole transcript of a conversation, oldest first.
    async fn transcript(&self, key: &ConversationKey) -> Result<Vec<TranscriptLine>, StoreError>;
}

#[derive(Default)]
struct MemoryInner {
    conversations: HashMap<ConversationKey, Conversation>,
    transcripts: HashMap<ConversationKey, Vec<TranscriptLine>>,
    processed: HashSet<(ConversationKey, String)>,
}

/// A [`ConversationStore`] in memory: lost when the process ends.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A panic while holding the lock cannot leave the maps half-updated (every update is
        // a single insert or push), so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError> {
        Ok(self.lock().conversations.get(key).cloned())
    }

    async fn is_processed(
        &self,
        key: &ConversationKey,
        message_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .processed
            .contains(&(key.clone(), message_id.to_string())))
    }

    async fn commit(&self, turn: TurnCommit) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let key = turn.conversation.key.clone();
        if let Some(id) = turn.message_id {
            if !inner.processed.insert((key.clone(), id)) {
                return Ok(false);
            }
        }
        inner
            .transcripts
            .entry(key.clone())
            .or_default()
            .extend(turn.lines);
        inner.conversations.insert(key, turn.conversation);
        Ok(true)
    }

    async fn transcript(&self, key: &ConversationKey) -> Result<Vec<TranscriptLine>, StoreError> {
        Ok(self
            .lock()
            .transcripts
            .get(key)
            .cloned()
            .unwrap_or_default())
    }
}
