//! Per-key rate limits for channels' endpoints (GCRA): `per_minute` requests a minute on average, `burst` at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
}
