//! The durable outbox: every message that goes to a customer other than as the direct answer
//! to their message — an agent's reply, a ticket's status notice, a survey, a queue update —
//! and the worker that delivers it.
//!
//! # How a message travels
//!
//! 1. It is written with the change that causes it, in the same store transaction: a
//!    [`TurnCommit::outbox`](crate::TurnCommit::outbox) is committed with the transcript line
//!    that records it, so a message is never sent for a change that was rolled back, nor lost
//!    for one that was stored.
//! 2. An [`OutboxWorker`] [claims](Outbox::claim) due messages — at most the oldest pending
//!    one per conversation, so a conversation's messages arrive in order — for a lease. A
//!    claimed message is invisible to other workers (and, on PostgreSQL, other processes:
//!    claims take rows with `FOR UPDATE SKIP LOCKED`) until its lease ends.
//! 3. The worker sends it through the conversation's [`Channel`](crate::channel::Channel):
//!    - sent: [`Outbox::delivered`];
//!    - a failure a retry can help: [`Outbox::retry`] at a jittered, capped, growing delay,
//!      or exactly when the platform said (`retry_after`);
//!    - a failure it cannot help, or [`RetryPolicy::max_attempts`] used up: [`Outbox::dead`],
//!      where it stays visible ([`Outbox::list`]) until someone [resends](Outbox::resend) it.
//! 4. A worker that dies mid-delivery leaves its claim to expire; the message is then
//!    claimed again (it may have reached the platform: delivery is at least once, and the
//!    lease is longer than [`RetryPolicy::send_timeout`] so a live worker's claim never
//!    lapses under it).
//!
//! A dead message no longer holds back the conversation's later messages.

use crate::channel::{Channels, SendError};
use crate::message::Outbound;
use crate::store::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting to be sent (or being sent, under a claim).
    Pending,
    /// Accepted by the platform.
    Sent,
    /// Given up on: visible, and sent again only when someone asks.
    Dead,
}

impl OutboxState {
    /// The state's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Dead => "dead",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<OutboxState> {
        match name {
            "pending" => Some(OutboxState::Pending),
            "sent" => Some(OutboxState::Sent),
            "dead" => Some(OutboxState::Dead),
            _ => None,
        }
    }
}

/// A message in the outbox, as [`Outbox::list`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// Its id: ids grow in the order messages were written.
    pub id: i64,
    /// The message.
    pub message: Outbound,
    /// Where it stands.
    pub state: OutboxState,
    /// How many times it was claimed for sending.
    pub attempts: u32,
    /// When it is due (ms since the epoch; 0: at once).
    pub not_before: u64,
    /// When it was written (ms since the epoch).
    pub created_at: u64,
    /// Why the last try failed.
    pub last_error: Option<String>,
}

/// A message a worker holds for sending, from [`Outbox::claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The message's id.
    pub id: i64,
    /// The message.
    pub message: Outbound,
    /// Tries so far, this one included.
    pub attempts: u32,
    /// The claim's token: reporting the outcome with a token whose lease ended and that
    /// another worker claimed since does nothing.
    pub token: String,
}

/// Where messages wait to be sent. Implemented by every
/// [`ConversationStore`](crate::ConversationStore) (see
/// [`ConversationStore::outbox`](crate::ConversationStore::outbox)), since messages are
/// written in the store's transactions.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Writes messages that no conversation change goes with, due now.
    async fn enqueue(&self, messages: Vec<Outbound>, now: u64) -> Result<Vec<i64>, StoreError>;

    /// Claims up to `limit` due messages for `lease_ms`: only the oldest pending message of
    /// each conversation, only if no claim on it is live, each counted as one more attempt.
    /// Two callers never get the same message while its claim is live.
    async fn claim(
        &self,
        now: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// The claimed message was sent. False when the claim was no longer held.
    async fn delivered(&self, claim: &Claimed, now: u64) -> Result<bool, StoreError>;

    /// The claimed message is to be tried again at `at`. False when the claim was no longer
    /// held.
    async fn retry(&self, claim: &Claimed, at: u64, error: &str) -> Result<bool, StoreError>;

    /// The claimed message is given up on. False when the claim was no longer held.
    async fn dead(&self, claim: &Claimed, error: &str) -> Result<bool, StoreError>;

    /// Messages in `state`, oldest first, at most `limit`.
    async fn list(&self, state: OutboxState, limit: usize) -> Result<Vec<OutboxItem>, StoreError>;

    /// Makes a dead message pending again, due now, with its attempts reset. False when there
    /// is no dead message `id`.
    async fn resend(&self, id: i64, now: u64) -> Result<bool, StoreError>;

    /// Deletes sent messages written before `before`; returns how many.
    async fn prune_sent(&self, before: u64) -> Result<u64, StoreError>;

    /// How many messages are in each state.
    async fn counts(&self) -> Result<OutboxCounts, StoreError>;
}

/// How many messages are in each state, from [`Outbox::counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Waiting to be sent (or being sent).
    pub pending: u64,
    /// Sent (and not pruned yet).
    pub sent: u64,
    /// Given up on.
    pub dead: u64,
}

/// How the worker retries.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries before a message goes to the dead letters.
    pub max_attempts: u32,
    /// The delay after the first failure; each further failure doubles it.
    pub base_delay: Duration,
    /// The longest delay between tries.
    pub max_delay: Duration,
    /// How long one send may take before it counts as failed.
    pub send_timeout: Duration,
    /// How long a claim lasts; longer than `send_timeout`, so a working worker's claim never
    /// ends under it.
    pub lease: Duration,
    /// Messages claimed at once.
    pub batch: usize,
    /// How long an idle worker waits before looking again.
    pub idle_poll: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
            send_timeout: Duration::from_secs(20),
            lease: Duration::from_secs(60),
            batch: 32,
            idle_poll: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// The delay before try `attempts + 1`, after `attempts` failures: exponential from
    /// [`Self::base_delay`], capped at [`Self::max_delay`], then jittered down by up to half
    /// (from `seed`) so messages that failed together do not all come back together.
    pub fn backoff(&self, attempts: u32, seed: u64) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let full_ms = full.as_millis() as u64;
        let half = full_ms / 2;
        let jitter = if half == 0 { 0 } else { mix(seed) % (half + 1) };
        Duration::from_millis(full_ms - jitter)
    }
}

/// A 64-bit mix (splitmix64's finaliser): a spread-out number from any seed.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The worker's wall clock in milliseconds. [`Clock::new`] follows tokio's clock (the system
/// time when it was made plus tokio's elapsed time, so a test that pauses and advances tokio's
/// time moves it too); [`Clock::manual`] moves only when told, for tests against stores whose
/// I/O must not run under paused time.
#[derive(Debug, Clone)]
pub struct Clock(ClockKind);

#[derive(Debug, Clone)]
enum ClockKind {
    Tokio {
        start_ms: u64,
        start: tokio::time::Instant,
    },
    Manual(Arc<std::sync::atomic::AtomicU64>),
}

impl Clock {
    /// A clock starting at the system's time now, running with tokio's clock.
    pub fn new() -> Self {
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock(ClockKind::Tokio {
            start_ms,
            start: tokio::time::Instant::now(),
        })
    }

    /// A clock standing at `now_ms` until [`Clock::advance`]d (clones share it).
    pub fn manual(now_ms: u64) -> Self {
        Clock(ClockKind::Manual(Arc::new(now_ms.into())))
    }

    /// Moves a manual clock on; a clock following tokio's is moved by tokio's time instead,
    /// so this does nothing to it.
    pub fn advance(&self, by: Duration) {
        if let ClockKind::Manual(now) = &self.0 {
            now.fetch_add(by.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Milliseconds since the epoch.
    pub fn now_ms(&self) -> u64 {
        match &self.0 {
            ClockKind::Tokio { start_ms, start } => start_ms + start.elapsed().as_millis() as u64,
            ClockKind::Manual(now) => now.load(std::sync::atomic::Ordering::SeqCst),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// What one [`OutboxWorker::run_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Messages claimed.
    pub claimed: usize,
    /// Sent.
    pub sent: usize,
    /// To be tried again.
    pub retried: usize,
    /// Given up on.
    pub dead: usize,
}

/// Delivers the outbox through the channels. Run one per process (several processes may
/// share a PostgreSQL outbox; claims keep them from sending a message twice).
pub struct OutboxWorker {
    outbox: Arc<dyn Outbox>,
    channels: Channels,
    policy: RetryPolicy,
    clock: Clock,
    wake: Arc<tokio::sync::Notify>,
}

impl OutboxWorker {
    /// A worker delivering `outbox` through `channels`.
    pub fn new(outbox: Arc<dyn Outbox>, channels: Channels, policy: RetryPolicy) -> Self {
        OutboxWorker {
            outbox,
            channels,
            policy,
            clock: Clock::new(),
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Looks again as soon as `wake` is notified, rather than after
    /// [`RetryPolicy::idle_poll`]: whoever writes to the outbox in this process notifies it,
    /// so a message goes out at once (default: a notifier nobody else holds).
    pub fn with_wake(mut self, wake: Arc<tokio::sync::Notify>) -> Self {
        self.wake = wake;
        self
    }

    /// Uses `clock` for due times and leases (default: [`Clock::new`]).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The outbox it delivers.
    pub fn outbox(&self) -> &Arc<dyn Outbox> {
        &self.outbox
    }

    /// The retry settings.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Claims one batch of due messages and tries each once. The batch's messages belong to
    /// different conversations and are sent concurrently, so one slow platform or a chat
    /// the platform paces does not hold up the others.
    pub async fn run_once(&self) -> Result<RunStats, StoreError> {
        let now = self.clock.now_ms();
        let lease = self.policy.lease.as_millis() as u64;
        let claimed = self
            .outbox
            .claim(now, lease, self.policy.batch.max(1))
            .await?;
        let mut stats = RunStats {
            claimed: claimed.len(),
            ..RunStats::default()
        };
        let outcomes =
            futures_util::future::join_all(claimed.iter().map(|claim| self.deliver(claim))).await;
        let mut failed = None;
        for outcome in outcomes {
            match outcome {
                Ok(Outcome::Sent) => stats.sent += 1,
                Ok(Outcome::Retry) => stats.retried += 1,
                Ok(Outcome::Dead) => stats.dead += 1,
                // The message's claim lapses and it is tried again.
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }

    async fn deliver(&self, claim: &Claimed) -> Result<Outcome, StoreError> {
        let conversation = &claim.message.conversation;
        if claim.attempts > self.policy.max_attempts {
            // Claimed that often without an outcome: workers died while sending it.
            let error = "no outcome after the allowed tries (workers stopped while sending)";
            self.outbox.dead(claim, error).await?;
            tracing::warn!(outbox = claim.id, %conversation, "message given up on: {error}");
            return Ok(Outcome::Dead);
        }
        let sent = tokio::time::timeout(
            self.policy.send_timeout,
            self.channels
                .deliver(&claim.message, &format!("outbox-{}", claim.id)),
        )
        .await
        .unwrap_or_else(|_| {
            Err(SendError::Unavailable(format!(
                "no answer within {} ms",
                self.policy.send_timeout.as_millis()
            )))
        });
        let error = match sent {
            Ok(()) => {
                if !self.outbox.delivered(claim, self.clock.now_ms()).await? {
                    tracing::warn!(outbox = claim.id, %conversation, "sent after its claim ended; it may be sent twice");
                }
                return Ok(Outcome::Sent);
            }
            Err(error) => error,
        };
        let text = error.to_string();
        if !error.retryable() || claim.attempts >= self.policy.max_attempts {
            self.outbox.dead(claim, &text).await?;
            tracing::warn!(outbox = claim.id, %conversation, attempts = claim.attempts, error = %text, "message given up on");
            return Ok(Outcome::Dead);
        }
        let wait = error.retry_after().unwrap_or_else(|| {
            self.policy
                .backoff(claim.attempts, claim.id as u64 ^ self.clock.now_ms())
        });
        let at = self.clock.now_ms() + wait.as_millis() as u64;
        self.outbox.retry(claim, at, &text).await?;
        tracing::info!(outbox = claim.id, %conversation, attempts = claim.attempts, wait_ms = wait.as_millis() as u64, error = %text, "message will be tried again");
        Ok(Outcome::Retry)
    }

    /// Delivers until `shutdown` completes: a batch at a time, waiting
    /// [`RetryPolicy::idle_poll`] (or until woken, see [`OutboxWorker::with_wake`]) when
    /// there was nothing to do. A store failure is logged
    /// and waited out the same way.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let busy = match self.run_once().await {
                Ok(stats) => stats.claimed > 0,
                Err(error) => {
                    tracing::warn!(%error, "outbox unavailable; trying again shortly");
                    false
                }
            };
            if busy {
                // Go on at once, but let shutdown in.
                tokio::select! {
                    biased;
                    () = &mut shutdown => return,
                    () = tokio::task::yield_now() => {}
                }
                continue;
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.policy.idle_poll) => {}
            }
        }
    }
}

enum Outcome {
    Sent,
    Retry,
    Dead,
}

#[derive(Debug, Clone)]
struct Row {
    item: OutboxItem,
    lease_until: u64,
    token: Option<String>,
}

#[derive(Default)]
struct MemoryOutboxInner {
    rows: Vec<Row>,
    next_id: i64,
    next_token: u64,
}

/// An [`Outbox`] in memory, the one [`MemoryStore`](crate::MemoryStore) commits to.
#[derive(Default)]
pub struct MemoryOutbox {
    inner: Mutex<MemoryOutboxInner>,
}

impl MemoryOutbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryOutboxInner> {
        // Every update is a handful of field writes on one row; a panic cannot leave it torn.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds messages (for [`MemoryStore`](crate::MemoryStore)'s commits).
    pub(crate) fn push(&self, messages: Vec<Outbound>, now: u64) -> Vec<i64> {
        let mut inner = self.lock();
        messages
            .into_iter()
            .map(|message| {
                inner.next_id += 1;
                let id = inner.next_id;
                inner.rows.push(Row {
                    item: OutboxItem {
                        id,
                        message,
                        state: OutboxState::Pending,
                        attempts: 0,
                        // Due at once, whatever the worker's clock says.
                        not_before: 0,
                        created_at: now,
                        last_error: None,
                    },
                    lease_until: 0,
                    token: None,
                });
                id
            })
            .collect()
    }

    fn settle(&self, claim: &Claimed, change: impl FnOnce(&mut Row)) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some(row) = inner.rows.iter_mut().find(|r| {
            r.item.id == claim.id
                && r.item.state == OutboxState::Pending
                && r.token.as_deref() == Some(claim.token.as_str())
        }) else {
            return Ok(false);
        };
        change(row);
        row.token = None;
        row.lease_until = 0;
        Ok(true)
    }
}

#[async_trait]
impl Outbox for MemoryOutbox {
    async fn enqueue(&self, messages: Vec<Outbound>, now: u64) -> Result<Vec<i64>, StoreError> {
        Ok(self.push(messages, now))
    }

    async fn claim(
        &self,
        now: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut inner = self.lock();
        let mut seen = std::collections::HashSet::new();
        let mut claimed = Vec::new();
        let mut tokens = inner.next_token;
        for row in inner.rows.iter_mut() {
            if claimed.len() >= limit {
                break;
            }
            if row.item.state != OutboxState::Pending {
                continue;
            }
            // Only each conversation's oldest pending message.
            if !seen.insert(row.item.message.conversation.clone()) {
                continue;
            }
            if row.item.not_before > now || row.lease_until > now {
                continue;
            }
            tokens += 1;
            let token = format!("m{tokens}");
            row.item.attempts += 1;
            row.lease_until = now + lease_ms;
            row.token = Some(token.clone());
            claimed.push(Claimed {
                id: row.item.id,
                message: row.item.message.clone(),
                attempts: row.item.attempts,
                token,
            });
        }
        inner.next_token = tokens;
        Ok(claimed)
    }

    async fn delivered(&self, claim: &Claimed, _now: u64) -> Result<bool, StoreError> {
        self.settle(claim, |row| {
            row.item.state = OutboxState::Sent;
            row.item.last_error = None;
        })
    }

    async fn retry(&self, claim: &Claimed, at: u64, error: &str) -> Result<bool, StoreError> {
        self.settle(claim, |row| {
            row.item.not_before = at;
            row.item.last_error = Some(error.to_string());
        })
    }

    async fn dead(&self, claim: &Claimed, error: &str) -> Result<bool, StoreError> {
        self.settle(claim, |row| {
            row.item.state = OutboxState::Dead;
            row.item.last_error = Some(error.to_string());
        })
    }

    async fn list(&self, state: OutboxState, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        Ok(self
            .lock()
            .rows
            .iter()
            .filter(|r| r.item.state == state)
            .take(limit)
            .map(|r| r.item.clone())
            .collect())
    }

    async fn resend(&self, id: i64, now: u64) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some(row) = inner
            .rows
            .iter_mut()
            .find(|r| r.item.id == id && r.item.state == OutboxState::Dead)
        else {
            return Ok(false);
        };
        row.item.state = OutboxState::Pending;
        row.item.attempts = 0;
        row.item.not_before = now;
        Ok(true)
    }

    async fn counts(&self) -> Result<OutboxCounts, StoreError> {
        let inner = self.lock();
        let mut counts = OutboxCounts::default();
        for row in &inner.rows {
            match row.item.state {
                OutboxState::Pending => counts.pending += 1,
                OutboxState::Sent => counts.sent += 1,
                OutboxState::Dead => counts.dead += 1,
            }
        }
        Ok(counts)
    }

    async fn prune_sent(&self, before: u64) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let was = inner.rows.len();
        inner
            .rows
            .retain(|r| !(r.item.state == OutboxState::Sent && r.item.created_at < before));
        Ok((was - inner.rows.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered_down_by_half_at_most() {
        let policy = RetryPolicy {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        for seed in 0..200 {
            let first = policy.backoff(1, seed);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let fourth = policy.backoff(4, seed);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
            let late = policy.backoff(40, seed);
            assert!(late >= Duration::from_secs(30) && late <= Duration::from_secs(60));
        }
        let spread: std::collections::HashSet<_> =
            (0..50).map(|seed| policy.backoff(3, seed)).collect();
        assert!(spread.len() > 10, "jitter spreads retries: {spread:?}");
    }

    #[test]
    fn states_round_trip_by_name() {
        for state in [OutboxState::Pending, OutboxState::Sent, OutboxState::Dead] {
            assert_eq!(OutboxState::parse(state.as_str()), Some(state));
        }
        assert_eq!(OutboxState::parse("sending"), None);
    }
}
