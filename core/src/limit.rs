//! What channels' endpoints share to keep one client from hurting everyone: per-key rate
//! limits (GCRA: `per_minute` requests a minute on average, `burst` at once), and counts of
//! the requests they refused, by cause.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A closed set of reasons an endpoint refuses requests, each with its name in metrics and
/// error bodies.
pub trait RefusalCause: Copy + Eq + 'static {
    /// Every cause, in the order they are reported.
    const ALL: &'static [Self];

    /// Its name in metrics and error bodies.
    fn as_str(self) -> &'static str;
}

/// Requests refused, counted by cause (for `/metrics`).
#[derive(Debug)]
pub struct RefusalCounts<C: RefusalCause> {
    counts: Vec<AtomicU64>,
    cause: std::marker::PhantomData<C>,
}

impl<C: RefusalCause> Default for RefusalCounts<C> {
    fn default() -> Self {
        RefusalCounts {
            counts: C::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            cause: std::marker::PhantomData,
        }
    }
}

impl<C: RefusalCause> RefusalCounts<C> {
    /// Counts one refusal.
    pub fn count(&self, cause: C) {
        if let Some(i) = C::ALL.iter().position(|c| *c == cause) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests refused so far, by cause (every cause, zeros included).
    pub fn snapshot(&self) -> Vec<(C, u64)> {
        C::ALL
            .iter()
            .zip(&self.counts)
            .map(|(c, n)| (*c, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// [`RefusalCounts::snapshot`] by the causes' names.
    pub fn by_name(&self) -> Vec<(&'static str, u64)> {
        self.snapshot()
            .into_iter()
            .map(|(c, n)| (c.as_str(), n))
            .collect()
    }
}

/// A bounded map of the latest entries, in memory: past `max`, the oldest inserted is
/// forgotten first (what a channel remembers of recent deliveries, replies and notices).
pub struct Recent<K, V> {
    map: HashMap<K, V>,
    order: std::collections::VecDeque<K>,
    max: usize,
}

impl<K: std::hash::Hash + Eq + Clone, V> Recent<K, V> {
    /// An empty map keeping at most `max` entries.
    pub fn new(max: usize) -> Self {
        Recent {
            map: HashMap::new(),
            order: std::collections::VecDeque::new(),
            max,
        }
    }

    /// Sets `key`'s value; a new key may push the oldest out.
    pub fn insert(&mut self, key: K, value: V) {
        if self.map.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.max {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    /// `key`'s value, if it is still remembered.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// Whether `key` is still remembered.
    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) {
        if self.map.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }
}

/// Keys remembered before idle ones are forgotten.
const PRUNE_AT: usize = 10_000;

/// A rate limit per key (a client address, a conversation), in memory.
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// `per_minute` requests a minute per key (0: no limit), up to `burst` at once.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let interval = if per_minute == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(60) / per_minute
        };
        RateLimiter {
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
            next: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request for `key` at `now`: `Err(wait)` when it is over the limit, with how
    /// long until one would be allowed.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.interval.is_zero() {
            return Ok(());
        }
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        if next.len() >= PRUNE_AT {
            next.retain(|_, at| *at > now);
        }
        let theoretical = next.get(key).copied().filter(|at| *at > now).unwrap_or(now);
        let ahead = theoretical - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        next.insert(key.to_string(), theoretical + self.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_forgets_the_oldest() {
        let mut r = Recent::new(2);
        r.insert(1, "a");
        r.insert(2, "b");
        r.insert(3, "c");
        assert!(r.get(&1).is_none());
        assert_eq!(r.get(&3), Some(&"c"));
        r.remove(&3);
        assert!(r.get(&3).is_none());
    }

    #[test]
    fn a_burst_passes_then_requests_pass_at_the_rate() {
        let limit = RateLimiter::new(60, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limit.check("a", t0), Ok(()));
        }
        let wait = limit.check("a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        // Other keys are not affected.
        assert_eq!(limit.check("b", t0), Ok(()));
        assert_eq!(limit.check("a", t0 + Duration::from_secs(1)), Ok(()));
        assert!(limit.check("a", t0 + Duration::from_secs(1)).is_err());
        assert_eq!(RateLimiter::new(0, 1).check("a", t0), Ok(()));
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Why {
        Big,
        Fast,
    }

    impl RefusalCause for Why {
        const ALL: &'static [Why] = &[Why::Big, Why::Fast];
        fn as_str(self) -> &'static str {
            match self {
                Why::Big => "big",
                Why::Fast => "fast",
            }
        }
    }

    #[test]
    fn refusals_are_counted_by_cause() {
        let counts = RefusalCounts::<Why>::default();
        counts.count(Why::Fast);
        counts.count(Why::Fast);
        assert_eq!(counts.snapshot(), [(Why::Big, 0), (Why::Fast, 2)]);
        assert_eq!(counts.by_name(), [("big", 0), ("fast", 2)]);
    }
}
