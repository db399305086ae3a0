//! The `ConversationStore` port: conversation state, transcripts, message de-duplication and
//! the per-conversation turn lock, and an in-memory implementation for tests, examples and
//! single-process bots.
//!
//! # The turn protocol
//!
//! The engine handles one message like this:
//!
//! 1. [`ConversationStore::lock`] — wait for the conversation's turn lock. While it is held no
//!    other turn of the conversation starts, in this process or (for shared stores) in any
//!    other process using the same store.
//! 2. [`ConversationStore::start_turn`]: whether the message was processed already and, if
//!    not, the conversation as stored (by default [`ConversationStore::is_processed`] then
//!    [`ConversationStore::load`]; databases answer both in one query).
//! 3. [`ConversationStore::commit`] — the new state, the turn's transcript lines and the message
//!    id, all or nothing. The commit also checks that nobody changed the conversation since it
//!    was loaded ([`Conversation::version`]); if somebody did, nothing is stored and the engine
//!    runs the turn again. With a working lock that never happens; the check is what keeps a
//!    conversation consistent if a lock is lost (a store restarted, a lease expired).
//! 4. [`TurnLock::release`].

use crate::conversation::{Conversation, TranscriptLine};
use crate::message::{ConversationKey, Outbound};
use crate::outbox::{MemoryOutbox, Outbox};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// A storage failure; the turn is not committed and may be retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or failed.
    #[error("conversation store unavailable: {0}")]
    Unavailable(String),
}

/// What [`ConversationStore::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The turn is stored.
    Stored,
    /// The turn's message id was already processed; nothing was stored.
    Duplicate,
    /// The conversation changed since it was loaded (its version moved on); nothing was
    /// stored and the turn should be run again on the new state.
    Conflict,
}

/// Frees a lock held outside this process (a database session lock, a lease row). Dropping
/// it without [`RemoteLock::release`] must free the lock too, if later (for example by
/// closing the database session that holds it).
#[async_trait]
pub trait RemoteLock: Send + Sync {
    /// Frees the lock now.
    async fn release(self: Box<Self>) -> Result<(), StoreError>;
}

type LockMap = Arc<Mutex<HashMap<ConversationKey, Arc<tokio::sync::Mutex<()>>>>>;

/// In-process locks by conversation, for stores to build [`TurnLock`]s from. Entries are
/// dropped as soon as nobody holds or waits for them, so the map stays as small as the number
/// of conversations in a turn right now.
#[derive(Clone, Default)]
pub struct KeyedLocks {
    map: LockMap,
}

impl KeyedLocks {
    /// No locks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until no other holder of this process has `key`'s lock, then holds it until the
    /// returned lock is released or dropped.
    pub async fn lock(&self, key: &ConversationKey) -> TurnLock {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let guard = mutex.lock_owned().await;
        TurnLock {
            remote: None,
            local: Some(LocalGuard {
                guard: Some(guard),
                key: key.clone(),
                map: self.map.clone(),
            }),
        }
    }

    /// How many conversations have a lock held or awaited right now.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no lock is held or awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct LocalGuard {
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    key: ConversationKey,
    map: LockMap,
}

impl Drop for LocalGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map itself still refers to the mutex: nobody holds or waits for it.
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.key);
        }
    }
}

/// A conversation's turn lock, from [`ConversationStore::lock`]. Release it with
/// [`TurnLock::release`]; dropping it frees the in-process part at once and the remote part as
/// its [`RemoteLock`] documents.
#[must_use = "the lock is freed when dropped"]
pub struct TurnLock {
    // Declared first so it is dropped before the local guard.
    remote: Option<Box<dyn RemoteLock>>,
    local: Option<LocalGuard>,
}

impl TurnLock {
    /// A lock held by nothing (for stores that need none).
    pub fn none() -> Self {
        TurnLock {
            remote: None,
            local: None,
        }
    }

    /// Adds a lock held outside the process, freed before the in-process one.
    pub fn with_remote(mut self, remote: Box<dyn RemoteLock>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Frees the lock.
    pub async fn release(mut self) -> Result<(), StoreError> {
        let result = match self.remote.take() {
            Some(remote) => remote.release().await,
            None => Ok(()),
        };
        drop(self.local.take());
        result
    }
}

impl std::fmt::Debug for TurnLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnLock")
            .field("local", &self.local.as_ref().map(|l| &l.key))
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

/// What a turn starts from, from [`ConversationStore::start_turn`].
// Returned once per turn and taken apart at once, never stored: boxing would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum TurnStart {
    /// The message was processed before; the turn does nothing.
    Processed,
    /// The conversation as stored, or `None` for one not stored yet.
    Ready(Option<Conversation>),
}

/// One turn's changes, committed atomically. `conversation.version` is the version that was
/// loaded (0 for a conversation not stored yet); the store saves it as the next version.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnCommit {
    /// The conversation's state after the turn.
    pub conversation: Conversation,
    /// The platform message id that started the turn (recorded as processed).
    pub message_id: Option<String>,
    /// Transcript lines the turn adds, in order.
    pub lines: Vec<TranscriptLine>,
    /// Messages for the [outbox](crate::outbox), written in the same transaction: what goes
    /// to the customer later rather than as the answer to their message (an agent's reply,
    /// a ticket's notice). Each should also be in `lines`, so the transcript shows it.
    pub outbox: Vec<Outbound>,
}

impl TurnCommit {
    /// A commit of `conversation` with `lines`, for `message_id`, sending nothing later.
    pub fn new(
        conversation: Conversation,
        message_id: Option<String>,
        lines: Vec<TranscriptLine>,
    ) -> Self {
        TurnCommit {
            conversation,
            message_id,
            lines,
            outbox: Vec::new(),
        }
    }
}

/// Where conversations live between messages. See the [module docs](self) for the protocol.
///
/// Implementations must make [`ConversationStore::commit`] atomic: the state, the transcript
/// lines, the outbox messages and the processed message id are all stored, or none is.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Waits for the conversation's turn lock and holds it until the lock is released.
    async fn lock(&self, key: &ConversationKey) -> Result<TurnLock, StoreError>;

    /// The conversation's state, if it exists.
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, StoreError>;

    /// Whether `message_id` was already processed in this conversation.
    async fn is_processed(
        &self,
        key: &ConversationKey,
        message_id: &str,
    ) -> Result<bool, StoreError>;

    /// Whether `message_id` was already processed and, if not, the conversation's state: all
    /// a turn reads before it runs. The default asks [`ConversationStore::is_processed`] and
    /// then [`ConversationStore::load`]; a store that can answer both at once should.
    async fn start_turn(
        &self,
        key: &ConversationKey,
        message_id: &str,
    ) -> Result<TurnStart, StoreError> {
        if self.is_processed(key, message_id).await? {
            return Ok(TurnStart::Processed);
        }
        Ok(TurnStart::Ready(self.load(key).await?))
    }

    /// Stores one turn atomically, unless its message id was already processed
    /// ([`Committed::Duplicate`]) or the stored version is not the one the turn started from
    /// ([`Committed::Conflict`]).
    async fn commit(&self, turn: TurnCommit) -> Result<Committed, StoreError>;

    /// The whole transcript of a conversation, oldest first.
    async fn transcript(&self, key: &ConversationKey) -> Result<Vec<TranscriptLine>, StoreError>;

    /// The outbox [`ConversationStore::commit`] writes [`TurnCommit::outbox`] to.
    fn outbox(&self) -> Arc<dyn Outbox>;
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
    locks: KeyedLocks,
    outbox: Arc<MemoryOutbox>,
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
    async fn lock(&self, key: &ConversationKey) -> Result<TurnLock, StoreError> {
        Ok(self.locks.lock(key).await)
    }

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

    async fn commit(&self, turn: TurnCommit) -> Result<Committed, StoreError> {
        let mut inner = self.lock();
        let key = turn.conversation.key.clone();
        if let Some(id) = &turn.message_id {
            if inner.processed.contains(&(key.clone(), id.clone())) {
                return Ok(Committed::Duplicate);
            }
        }
        let stored = inner.conversations.get(&key).map_or(0, |c| c.version);
        if stored != turn.conversation.version {
            return Ok(Committed::Conflict);
        }
        if let Some(id) = turn.message_id {
            inner.processed.insert((key.clone(), id));
        }
        // Under the store's lock, so the outbox gets the turn's messages with the turn.
        if !turn.outbox.is_empty() {
            self.outbox
                .push(turn.outbox, turn.conversation.updated_at.max(1));
        }
        inner
            .transcripts
            .entry(key.clone())
            .or_default()
            .extend(turn.lines);
        let mut conversation = turn.conversation;
        conversation.version += 1;
        inner.conversations.insert(key, conversation);
        Ok(Committed::Stored)
    }

    async fn transcript(&self, key: &ConversationKey) -> Result<Vec<TranscriptLine>, StoreError> {
        Ok(self
            .lock()
            .transcripts
            .get(key)
            .cloned()
            .unwrap_or_default())
    }

    fn outbox(&self) -> Arc<dyn Outbox> {
        self.outbox.clone()
    }
}
