//! Test support for store and channel implementers (the `testing` feature): channels that
//! record, fail or stall on purpose, and the outbox conformance suite every
//! [`ConversationStore`] must pass — kefu runs it against the in-memory store, SQLite and
//! PostgreSQL.
//!
//! Each suite function takes a fresh, empty store and panics, naming `label`, on the first
//! thing it finds wrong.

pub mod stores;

use crate::channel::{Channel, Channels, SendError};
use crate::conversation::{Conversation, Speaker, TranscriptLine};
use crate::locale::Locale;
use crate::message::{ConversationKey, Outbound, OutboundKind};
use crate::outbox::{Clock, OutboxState, OutboxWorker, RetryPolicy};
use crate::store::{Committed, ConversationStore, TurnCommit};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A knowledge base of one entry for tests of what surrounds the engine (channels, wiring):
/// a question containing `keyword` matches it with confidence 0.9, anything else with 0.
pub struct OneEntry {
    entry: crate::FaqEntry,
    keyword: String,
}

impl OneEntry {
    /// The entry `id` answering `zh` / `en`, matched by `keyword`.
    pub fn new(id: &str, keyword: &str, zh: &str, en: &str) -> Self {
        let answer = crate::Answers {
            zh: zh.to_string(),
            en: en.to_string(),
        };
        OneEntry {
            entry: crate::FaqEntry::new(id, [keyword], answer),
            keyword: keyword.to_string(),
        }
    }
}

impl crate::Knowledge for OneEntry {
    fn rank(&self, query: &str, _limit: usize) -> crate::Ranking {
        let confidence = if query.contains(&self.keyword) {
            0.9
        } else {
            0.0
        };
        crate::Ranking {
            candidates: vec![crate::Candidate {
                id: self.entry.id.clone(),
                score: confidence,
                confidence,
                matched_question: self.keyword.clone(),
            }],
        }
    }

    fn entry(&self, id: &str) -> Option<&crate::FaqEntry> {
        (id == self.entry.id).then_some(&self.entry)
    }
}

/// The channel name the suite's messages use.
pub const CHANNEL: &str = "suite";

/// A channel that records what it sends and fails on purpose: the first
/// [`ScriptedChannel::fail_first`] tries with a given error, or every try.
pub struct ScriptedChannel {
    name: String,
    failures_left: AtomicU32,
    always: bool,
    error: SendError,
    tries: AtomicU32,
    sent: Mutex<Vec<Outbound>>,
    delay: Duration,
}

impl ScriptedChannel {
    /// Sends everything.
    pub fn working() -> Self {
        Self::new(0, false, SendError::Unavailable("unused".into()))
    }

    /// Fails the first `n` tries with `error`, then sends.
    pub fn fail_first(n: u32, error: SendError) -> Self {
        Self::new(n, false, error)
    }

    /// Fails every try with `error`.
    pub fn always_failing(error: SendError) -> Self {
        Self::new(0, true, error)
    }

    fn new(n: u32, always: bool, error: SendError) -> Self {
        ScriptedChannel {
            name: CHANNEL.to_string(),
            failures_left: AtomicU32::new(n),
            always,
            error,
            tries: AtomicU32::new(0),
            sent: Mutex::new(Vec::new()),
            delay: Duration::ZERO,
        }
    }

    /// Takes `delay` (tokio time) over each send.
    pub fn slow(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Tries so far.
    pub fn tries(&self) -> u32 {
        self.tries.load(Ordering::SeqCst)
    }

    /// What was sent, in order.
    pub fn sent(&self) -> Vec<Outbound> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The texts sent, in order.
    pub fn texts(&self) -> Vec<String> {
        self.sent().into_iter().map(|m| m.text).collect()
    }
}

#[async_trait]
impl Channel for ScriptedChannel {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, message: &Outbound) -> Result<(), SendError> {
        self.tries.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.always {
            return Err(self.error.clone());
        }
        let failing = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(self.error.clone());
        }
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message.clone());
        Ok(())
    }
}

/// The conversation `id` on the suite's channel.
pub fn key(id: &str) -> ConversationKey {
    ConversationKey::new(CHANNEL, id)
}

/// An agent's message to `id`.
pub fn message(id: &str, text: &str) -> Outbound {
    Outbound {
        conversation: key(id),
        text: text.to_string(),
        quick_replies: Vec::new(),
        kind: OutboundKind::AgentMessage,
    }
}

/// Commits `texts` as agents' messages to conversation `id` — one commit each, each with its
/// transcript line and its outbox message, as [`crate::Agents::message`] does.
pub async fn write(store: &dyn ConversationStore, id: &str, texts: &[&str]) {
    for text in texts {
        let k = key(id);
        let lock = store.lock(&k).await.expect("lock");
        let conversation = store
            .load(&k)
            .await
            .expect("load")
            .unwrap_or_else(|| Conversation::new(k.clone(), "customer", Locale::En));
        let line = TranscriptLine {
            at: crate::conversation::now_millis(),
            speaker: Speaker::Agent,
            message_id: None,
            text: text.to_string(),
            decision: None,
            confidence: None,
            entry: None,
            kind: Some(OutboundKind::AgentMessage),
            quick_replies: Vec::new(),
        };
        let mut commit = TurnCommit::new(conversation, None, vec![line]);
        commit.outbox = vec![message(id, text)];
        assert_eq!(
            store.commit(commit).await.expect("commit"),
            Committed::Stored
        );
        lock.release().await.expect("release");
    }
}

/// A policy whose delays are easy to step over with a manual clock.
pub fn quick_policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(10),
        send_timeout: Duration::from_secs(5),
        lease: Duration::from_secs(30),
        batch: 16,
        idle_poll: Duration::from_millis(5),
    }
}

fn worker(
    store: &dyn ConversationStore,
    channel: Arc<ScriptedChannel>,
    policy: RetryPolicy,
    clock: &Clock,
) -> OutboxWorker {
    OutboxWorker::new(store.outbox(), Channels::new().with(channel), policy)
        .with_clock(clock.clone())
}

/// Runs `worker` until the outbox has nothing due, stepping the clock past every delay.
async fn drain(worker: &OutboxWorker, clock: &Clock, label: &str) {
    for _ in 0..200 {
        let stats = worker.run_once().await.expect("run");
        if stats.claimed == 0 {
            let pending = worker_pending(worker).await;
            if pending == 0 {
                return;
            }
            clock.advance(Duration::from_secs(11));
        }
    }
    panic!("{label}: the outbox did not drain");
}

async fn worker_pending(worker: &OutboxWorker) -> usize {
    worker
        .outbox()
        .list(OutboxState::Pending, 10_000)
        .await
        .expect("list")
        .len()
}

/// A channel that fails three times, then works: every message is delivered exactly once,
/// each conversation's in the order written, and nothing stays pending.
pub async fn flaky_channel_delivers_once_in_order(store: Arc<dyn ConversationStore>, label: &str) {
    write(&*store, "a", &["a1", "a2", "a3", "a4", "a5"]).await;
    write(&*store, "b", &["b1", "b2"]).await;
    let channel = Arc::new(ScriptedChannel::fail_first(
        3,
        SendError::Unavailable("platform down".into()),
    ));
    let clock = Clock::manual(1_000_000);
    let w = worker(&*store, channel.clone(), quick_policy(8), &clock);
    drain(&w, &clock, label).await;
    let texts = channel.texts();
    let of = |prefix: char| -> Vec<String> {
        texts
            .iter()
            .filter(|t| t.starts_with(prefix))
            .cloned()
            .collect()
    };
    assert_eq!(
        of('a'),
        ["a1", "a2", "a3", "a4", "a5"],
        "{label}: {texts:?}"
    );
    assert_eq!(of('b'), ["b1", "b2"], "{label}: {texts:?}");
    assert_eq!(
        channel.tries(),
        7 + 3,
        "{label}: three failed tries and seven sends"
    );
    let sent = store.outbox().list(OutboxState::Sent, 100).await.unwrap();
    assert_eq!(sent.len(), 7, "{label}");
    assert!(store
        .outbox()
        .list(OutboxState::Dead, 100)
        .await
        .unwrap()
        .is_empty());
}

/// A channel that always fails: the message is tried the configured number of times, then
/// is a dead letter with the last error, and the conversation's next message is not held
/// back by it. Resending the dead letter delivers it once the channel works.
pub async fn always_failing_channel_dead_letters(store: Arc<dyn ConversationStore>, label: &str) {
    write(&*store, "a", &["doomed"]).await;
    let failing = Arc::new(ScriptedChannel::always_failing(SendError::Unavailable(
        "HTTP 502".into(),
    )));
    let clock = Clock::manual(1_000_000);
    let w = worker(&*store, failing.clone(), quick_policy(4), &clock);
    drain(&w, &clock, label).await;
    assert_eq!(failing.tries(), 4, "{label}: max_attempts tries");
    let outbox = store.outbox();
    let dead = outbox.list(OutboxState::Dead, 10).await.unwrap();
    assert_eq!(dead.len(), 1, "{label}");
    assert_eq!(dead[0].message.text, "doomed");
    assert_eq!(dead[0].attempts, 4);
    assert!(
        dead[0].last_error.as_deref().unwrap_or("").contains("502"),
        "{label}: {dead:?}"
    );

    // A dead letter does not hold the conversation back.
    write(&*store, "a", &["next"]).await;
    let working = Arc::new(ScriptedChannel::working());
    let w = worker(&*store, working.clone(), quick_policy(4), &clock);
    drain(&w, &clock, label).await;
    assert_eq!(working.texts(), ["next"], "{label}");

    // Resent, it goes.
    assert!(outbox.resend(dead[0].id, clock.now_ms()).await.unwrap());
    assert!(
        !outbox.resend(dead[0].id, clock.now_ms()).await.unwrap(),
        "{label}: not dead any more"
    );
    drain(&w, &clock, label).await;
    assert_eq!(working.texts(), ["next", "doomed"], "{label}");
    assert!(outbox.list(OutboxState::Dead, 10).await.unwrap().is_empty());
}

/// A failure no retry can help (the customer blocked the bot) dead-letters at the first try.
pub async fn unreachable_customer_dead_letters_at_once(
    store: Arc<dyn ConversationStore>,
    label: &str,
) {
    write(&*store, "a", &["hello"]).await;
    let channel = Arc::new(ScriptedChannel::always_failing(SendError::Unreachable(
        "bot was blocked by the user".into(),
    )));
    let clock = Clock::manual(1_000_000);
    let w = worker(&*store, channel.clone(), quick_policy(8), &clock);
    drain(&w, &clock, label).await;
    assert_eq!(channel.tries(), 1, "{label}");
    let dead = store.outbox().list(OutboxState::Dead, 10).await.unwrap();
    assert_eq!(dead.len(), 1, "{label}");
}

/// A rate limit's `retry_after` is honoured: nothing is sent before it ends, the message goes
/// right after.
pub async fn retry_after_is_honoured(store: Arc<dyn ConversationStore>, label: &str) {
    write(&*store, "a", &["later"]).await;
    let channel = Arc::new(ScriptedChannel::fail_first(
        1,
        SendError::RateLimited {
            retry_after: Duration::from_secs(37),
        },
    ));
    let clock = Clock::manual(1_000_000);
    let w = worker(&*store, channel.clone(), quick_policy(8), &clock);
    let first = w.run_once().await.unwrap();
    assert_eq!((first.claimed, first.retried), (1, 1), "{label}");
    clock.advance(Duration::from_secs(36));
    assert_eq!(w.run_once().await.unwrap().claimed, 0, "{label}: too early");
    clock.advance(Duration::from_secs(1));
    let second = w.run_once().await.unwrap();
    assert_eq!((second.claimed, second.sent), (1, 1), "{label}");
    assert_eq!(channel.texts(), ["later"]);
}

/// A worker that claimed a message and died (never reported) holds it until its lease ends;
/// then another worker sends it, and the dead worker's late report changes nothing.
pub async fn a_dead_workers_claim_is_taken_over_after_its_lease(
    store: Arc<dyn ConversationStore>,
    label: &str,
) {
    write(&*store, "a", &["m1", "m2"]).await;
    let outbox = store.outbox();
    let clock = Clock::manual(1_000_000);
    let policy = quick_policy(8);
    let lease = policy.lease;
    let dead = outbox
        .claim(clock.now_ms(), lease.as_millis() as u64, 10)
        .await
        .unwrap();
    assert_eq!(
        dead.len(),
        1,
        "{label}: only the conversation's oldest message"
    );
    assert_eq!(dead[0].message.text, "m1");
    let channel = Arc::new(ScriptedChannel::working());
    let w = worker(&*store, channel.clone(), policy, &clock);
    assert_eq!(
        w.run_once().await.unwrap().claimed,
        0,
        "{label}: m1 is held, m2 waits for it"
    );
    clock.advance(lease + Duration::from_millis(1));
    drain(&w, &clock, label).await;
    assert_eq!(channel.texts(), ["m1", "m2"], "{label}");
    assert!(
        !outbox.delivered(&dead[0], clock.now_ms()).await.unwrap(),
        "{label}: a lapsed claim reports nothing"
    );
    let sent = outbox.list(OutboxState::Sent, 10).await.unwrap();
    assert_eq!(sent[0].attempts, 2, "{label}: the lost try counts");
}

/// Two workers draining one outbox at once never send a message twice, and each
/// conversation's messages still arrive in order.
pub async fn two_workers_never_send_one_message_twice(
    store: Arc<dyn ConversationStore>,
    other: Arc<dyn ConversationStore>,
    label: &str,
) {
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in 0..12 {
        let id = format!("c{c}");
        let texts: Vec<String> = (0..6).map(|n| format!("{id}-{n}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        write(&*store, &id, &refs).await;
        expected.insert(id, texts);
    }
    let channel = Arc::new(ScriptedChannel::working().slow(Duration::from_millis(1)));
    let mut policy = quick_policy(8);
    policy.batch = 4;
    let clock = Clock::new();
    let one = worker(&*store, channel.clone(), policy.clone(), &clock);
    let two = worker(&*other, channel.clone(), policy, &clock);
    let run = async |w: &OutboxWorker| {
        for _ in 0..2000 {
            let stats = w.run_once().await.expect("run");
            if stats.claimed == 0 {
                if worker_pending(w).await == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        panic!("{label}: not drained");
    };
    tokio::join!(run(&one), run(&two));
    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    for m in channel.sent() {
        got.entry(m.conversation.id.clone())
            .or_default()
            .push(m.text);
    }
    for (id, texts) in &expected {
        assert_eq!(
            got.get(id),
            Some(texts),
            "{label}: {id} once each, in order"
        );
    }
    assert_eq!(channel.sent().len(), 72, "{label}");
}

/// Outbox messages are written with their commit or not at all: a commit refused as a
/// conflict or a duplicate leaves the outbox as it was.
pub async fn messages_commit_with_their_change_only(
    store: Arc<dyn ConversationStore>,
    label: &str,
) {
    let k = key("a");
    let conversation = Conversation::new(k.clone(), "customer", Locale::Zh);
    let mut first = TurnCommit::new(conversation.clone(), Some("m1".into()), Vec::new());
    first.outbox = vec![message("a", "kept")];
    assert_eq!(
        store.commit(first.clone()).await.unwrap(),
        Committed::Stored
    );
    // The same message id again: a duplicate.
    assert_eq!(store.commit(first).await.unwrap(), Committed::Duplicate);
    // A stale version: a conflict.
    let mut stale = TurnCommit::new(conversation, Some("m2".into()), Vec::new());
    stale.outbox = vec![message("a", "lost")];
    assert_eq!(store.commit(stale).await.unwrap(), Committed::Conflict);
    let pending = store.outbox().list(OutboxState::Pending, 10).await.unwrap();
    let texts: Vec<_> = pending.iter().map(|i| i.message.text.as_str()).collect();
    assert_eq!(texts, ["kept"], "{label}");
    assert_eq!(
        pending[0].message,
        message("a", "kept"),
        "{label}: stored whole"
    );
}

/// Messages written without a conversation change (`Outbox::enqueue`) get ids in order and
/// are delivered like the others.
pub async fn enqueued_messages_go_out_too(store: Arc<dyn ConversationStore>, label: &str) {
    let outbox = store.outbox();
    let ids = outbox
        .enqueue(vec![message("a", "first"), message("b", "second")], 5)
        .await
        .unwrap();
    assert_eq!(ids.len(), 2, "{label}");
    assert!(ids[0] < ids[1], "{label}: ids grow in the order written");
    assert!(outbox.enqueue(Vec::new(), 5).await.unwrap().is_empty());
    let pending = outbox.list(OutboxState::Pending, 10).await.unwrap();
    assert_eq!(pending[0].created_at, 5, "{label}");
    let channel = Arc::new(ScriptedChannel::working());
    let clock = Clock::manual(1_000_000);
    let w = worker(&*store, channel.clone(), quick_policy(8), &clock);
    drain(&w, &clock, label).await;
    assert_eq!(channel.texts(), ["first", "second"], "{label}");
}

/// Sent messages can be pruned; pending and dead ones stay.
pub async fn pruning_keeps_what_is_not_sent(store: Arc<dyn ConversationStore>, label: &str) {
    write(&*store, "a", &["one"]).await;
    write(&*store, "b", &["two"]).await;
    let outbox = store.outbox();
    let clock = Clock::manual(u64::MAX / 4);
    let claimed = outbox.claim(clock.now_ms(), 1000, 10).await.unwrap();
    assert_eq!(claimed.len(), 2, "{label}");
    assert!(outbox.delivered(&claimed[0], clock.now_ms()).await.unwrap());
    assert!(outbox.dead(&claimed[1], "rejected").await.unwrap());
    let counts = outbox.counts().await.unwrap();
    assert_eq!(
        (counts.pending, counts.sent, counts.dead),
        (0, 1, 1),
        "{label}"
    );
    assert_eq!(outbox.prune_sent(u64::MAX / 4).await.unwrap(), 1, "{label}");
    assert!(outbox.list(OutboxState::Sent, 10).await.unwrap().is_empty());
    assert_eq!(outbox.list(OutboxState::Dead, 10).await.unwrap().len(), 1);
    assert_eq!(outbox.counts().await.unwrap().sent, 0, "{label}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn store() -> Arc<dyn ConversationStore> {
        Arc::new(MemoryStore::new())
    }

    #[tokio::test]
    async fn memory_flaky_channel_delivers_once_in_order() {
        flaky_channel_delivers_once_in_order(store(), "memory").await;
    }

    #[tokio::test]
    async fn memory_always_failing_channel_dead_letters() {
        always_failing_channel_dead_letters(store(), "memory").await;
    }

    #[tokio::test]
    async fn memory_unreachable_customer_dead_letters_at_once() {
        unreachable_customer_dead_letters_at_once(store(), "memory").await;
    }

    #[tokio::test]
    async fn memory_retry_after_is_honoured() {
        retry_after_is_honoured(store(), "memory").await;
    }

    #[tokio::test]
    async fn memory_a_dead_workers_claim_is_taken_over_after_its_lease() {
        a_dead_workers_claim_is_taken_over_after_its_lease(store(), "memory").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_two_workers_never_send_one_message_twice() {
        let one = store();
        two_workers_never_send_one_message_twice(one.clone(), one, "memory").await;
    }

    #[tokio::test]
    async fn memory_messages_commit_with_their_change_only() {
        messages_commit_with_their_change_only(store(), "memory").await;
    }

    #[tokio::test]
    async fn memory_enqueued_messages_go_out_too() {
        enqueued_messages_go_out_too(store(), "memory").await;
    }

    #[tokio::test]
    async fn memory_pruning_keeps_what_is_not_sent() {
        pruning_keeps_what_is_not_sent(store(), "memory").await;
    }

    /// The worker's own loop, on tokio's paused clock: a rate-limited message waits out
    /// `retry_after` in (virtual) time and goes right after, without the test stepping it.
    #[tokio::test(start_paused = true)]
    async fn the_running_worker_waits_out_retry_after_on_tokios_clock() {
        let store = store();
        write(&*store, "a", &["paced"]).await;
        let channel = Arc::new(ScriptedChannel::fail_first(
            1,
            SendError::RateLimited {
                retry_after: Duration::from_secs(30),
            },
        ));
        let worker = OutboxWorker::new(
            store.outbox(),
            Channels::new().with(channel.clone()),
            quick_policy(8),
        );
        let started = tokio::time::Instant::now();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(async move {
            worker
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(channel.texts().is_empty(), "not before retry_after");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(channel.texts(), ["paced"]);
        assert!(started.elapsed() >= Duration::from_secs(30));
        stop.send(()).unwrap();
        running.await.unwrap();
    }
}
