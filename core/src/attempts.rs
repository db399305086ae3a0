//! The `Attempts` port: limited tries — ownership proofs, card-key views — counted in the
//! store and checked and taken in one atomic step, and an in-memory implementation.
//!
//! A limit that is checked, then acted on, then recorded can be raced: twenty guesses sent at
//! once all pass a check of "fewer than five so far". Here an attempt is *taken* before the
//! thing it limits is done, in one step that checks the count and records the attempt, so
//! at most `limit` attempts ever pass within a window, however many processes race.
//!
//! Counters live in separate [`Space`]s, so a customer and an order never share a key: one
//! customer's failures cannot lock out another customer by naming them.
//!
//! Each attempt has an id. Taking an id that is already taken counts once: a turn that is run
//! again (after its conversation changed under it) takes the same attempts, not new ones. An
//! attempt that turned out well (the right proof) is [withdrawn](Attempts::withdraw), so only
//! failures, and attempts still in flight, count.

use crate::store::StoreError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// What a counter counts; each space has its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Space {
    /// Ownership proofs tried by one customer (`channel:user`).
    CustomerProofs,
    /// Ownership proofs tried for one order (its [normalised](normalize_order_number) number).
    OrderProofs,
    /// Times an order's card keys were shown to its buyer.
    KeyViews,
    /// Failed log-ins to the agents' console, by account name or by address.
    ConsoleLogIns,
}

impl Space {
    /// The space's name in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Space::CustomerProofs => "customer_proofs",
            Space::OrderProofs => "order_proofs",
            Space::KeyViews => "key_views",
            Space::ConsoleLogIns => "console_logins",
        }
    }
}

/// One counter: a space and a key in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Counter {
    /// What is counted.
    pub space: Space,
    /// Whose or what's attempts: a customer (`channel:user`) or an order number.
    pub key: String,
}

impl Counter {
    /// The counter of `key` in `space`.
    pub fn new(space: Space, key: impl Into<String>) -> Self {
        Counter {
            space,
            key: key.into(),
        }
    }
}

/// The outcome of [`Attempts::take`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// The attempt is recorded under every counter (or was already): go ahead.
    Yes,
    /// This counter had reached the limit; nothing was recorded.
    Refused(Counter),
}

/// A limit on attempts within a window of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Attempts allowed within the window.
    pub max: usize,
    /// Attempts at or after this time (ms since the epoch) count.
    pub since: u64,
}

/// Counters of limited attempts, shared by every process that shares the store.
#[async_trait]
pub trait Attempts: Send + Sync {
    /// Records attempt `id` at time `at` under every counter in `counters`, if none of them
    /// has `limit.max` or more attempts since `limit.since` — all in one atomic step, across
    /// processes. An `id` already recorded is [`Taken::Yes`] without counting again.
    async fn take(
        &self,
        id: &str,
        counters: &[Counter],
        limit: Limit,
        at: u64,
    ) -> Result<Taken, StoreError>;

    /// How many attempts `counter` has since `since`.
    async fn count(&self, counter: &Counter, since: u64) -> Result<usize, StoreError>;

    /// Removes attempt `id` from every counter (it succeeded, or could not be tried).
    async fn withdraw(&self, id: &str) -> Result<(), StoreError>;
}

/// An order number as lock-outs count it: letters upper-cased, and spaces, `-` and `_`
/// dropped, so `dd-2024…`, `Dd2024…` and `DD 2024…` are one order to the limit (order systems
/// often look numbers up that loosely).
pub fn normalize_order_number(number: &str) -> String {
    number
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-' && *c != '_')
        .flat_map(char::to_uppercase)
        .collect()
}

/// [`Attempts`] in memory (one process).
#[derive(Default)]
pub struct MemoryAttempts {
    counters: Mutex<HashMap<Counter, Vec<(String, u64)>>>,
}

impl MemoryAttempts {
    /// No attempts yet.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Attempts for MemoryAttempts {
    async fn take(
        &self,
        id: &str,
        counters: &[Counter],
        limit: Limit,
        at: u64,
    ) -> Result<Taken, StoreError> {
        let mut all = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let recorded = |c: &Counter, all: &HashMap<Counter, Vec<(String, u64)>>| {
            all.get(c).is_some_and(|v| v.iter().any(|(i, _)| i == id))
        };
        if !counters.is_empty() && counters.iter().all(|c| recorded(c, &all)) {
            return Ok(Taken::Yes);
        }
        for counter in counters {
            let entries = all.entry(counter.clone()).or_default();
            entries.retain(|(_, when)| *when >= limit.since);
            if entries.len() >= limit.max {
                return Ok(Taken::Refused(counter.clone()));
            }
        }
        for counter in counters {
            let entries = all.entry(counter.clone()).or_default();
            if !entries.iter().any(|(i, _)| i == id) {
                entries.push((id.to_string(), at));
            }
        }
        Ok(Taken::Yes)
    }

    async fn count(&self, counter: &Counter, since: u64) -> Result<usize, StoreError> {
        let all = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        Ok(all
            .get(counter)
            .map_or(0, |v| v.iter().filter(|(_, at)| *at >= since).count()))
    }

    async fn withdraw(&self, id: &str) -> Result<(), StoreError> {
        let mut all = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        for entries in all.values_mut() {
            entries.retain(|(i, _)| i != id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max: usize) -> Limit {
        Limit { max, since: 100 }
    }

    #[tokio::test]
    async fn attempts_stop_at_the_limit_of_any_counter() {
        let a = MemoryAttempts::new();
        let alice = Counter::new(Space::CustomerProofs, "telegram:alice");
        let order = Counter::new(Space::OrderProofs, "DD1");
        for i in 0..3 {
            let id = format!("a{i}");
            assert_eq!(
                a.take(&id, &[alice.clone(), order.clone()], limit(3), 200)
                    .await
                    .unwrap(),
                Taken::Yes
            );
        }
        let bob = Counter::new(Space::CustomerProofs, "telegram:bob");
        assert_eq!(
            a.take("b0", &[bob.clone(), order.clone()], limit(3), 200)
                .await
                .unwrap(),
            Taken::Refused(order.clone())
        );
        // Nothing was recorded for the refused attempt.
        assert_eq!(a.count(&bob, 0).await.unwrap(), 0);
        // Old attempts fall out of the window.
        assert_eq!(
            a.take(
                "b1",
                &[bob.clone(), order.clone()],
                Limit { max: 3, since: 300 },
                300
            )
            .await
            .unwrap(),
            Taken::Yes
        );
    }

    #[tokio::test]
    async fn an_attempt_taken_again_counts_once_and_can_be_withdrawn() {
        let a = MemoryAttempts::new();
        let c = Counter::new(Space::KeyViews, "DD1");
        for _ in 0..3 {
            assert_eq!(
                a.take("same", std::slice::from_ref(&c), limit(1), 200)
                    .await
                    .unwrap(),
                Taken::Yes
            );
        }
        assert_eq!(a.count(&c, 0).await.unwrap(), 1);
        a.withdraw("same").await.unwrap();
        assert_eq!(a.count(&c, 0).await.unwrap(), 0);
    }

    #[test]
    fn order_numbers_count_alike_however_they_are_written() {
        let n = normalize_order_number;
        assert_eq!(n("dd-2024112300017"), n("DD2024112300017"));
        assert_eq!(
            n(" Dd_2024 1123 00017 "),
            "DD202411230001 7".replace(' ', "")
        );
        assert_ne!(n("DD2024112300017"), n("DD2024112300018"));
    }
}
