//! Pacing messages to Telegram's limits: about one message a second in a chat (bursts of a
//! few allowed), twenty a minute in a group, thirty a second in all — and a pause for the
//! whole bot when Telegram answers 429 with `retry_after`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A token bucket that lends tokens ahead: taking from an empty bucket reserves the next
/// token and says how long to wait for it, so waiters are served in order.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens now (negative: reserved ahead).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }

    /// How long until a token taken now is there (zero: at once).
    fn wait(&self, rate: f64) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / rate)
        }
    }
}

/// How fast messages may go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// Messages a second in one private chat, and the burst allowed.
    pub private_per_second: f64,
    /// Messages a second in one group, and the burst allowed.
    pub group_per_second: f64,
    /// Messages one chat may send at once before pacing starts.
    pub burst: f64,
    /// Messages a second in all chats together.
    pub global_per_second: f64,
    /// The longest a send waits for its turn; a longer wait is handed back to the outbox
    /// (which tries again then) instead of holding a sender.
    pub max_wait: Duration,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            private_per_second: 1.0,
            group_per_second: 20.0 / 60.0,
            burst: 3.0,
            global_per_second: 30.0,
            max_wait: Duration::from_secs(5),
        }
    }
}

/// The buckets of every chat and of the bot.
#[derive(Debug)]
pub struct Pacer {
    rates: Rates,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    chats: HashMap<i64, Bucket>,
    global: Bucket,
    /// Telegram asked the bot to wait until then.
    paused_until: Option<Instant>,
}

/// Chats remembered before idle ones are forgotten.
const MAX_CHATS: usize = 50_000;

impl Pacer {
    /// A pacer at `rates`.
    pub fn new(rates: Rates) -> Self {
        let now = Instant::now();
        Pacer {
            inner: Mutex::new(Inner {
                chats: HashMap::new(),
                global: Bucket::full(rates.global_per_second.max(1.0), now),
                paused_until: None,
            }),
            rates,
        }
    }

    /// Reserves the next slot for a message to `chat` and waits for it; `Err(wait)` when the
    /// slot is further away than [`Rates::max_wait`] (nothing is reserved then).
    pub async fn ready(&self, chat: i64, group: bool) -> Result<(), Duration> {
        let wait = self.reserve(chat, group, Instant::now())?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    fn reserve(&self, chat: i64, group: bool, now: Instant) -> Result<Duration, Duration> {
        let rates = self.rates;
        let chat_rate = if group {
            rates.group_per_second
        } else {
            rates.private_per_second
        }
        .max(0.001);
        let global_rate = rates.global_per_second.max(0.001);
        let global_burst = global_rate.max(1.0);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.chats.len() > MAX_CHATS {
            // Forget chats whose buckets are full again: they would start full anyway.
            let burst = rates.burst;
            inner.chats.retain(|_, b| {
                let mut b = *b;
                b.refill(chat_rate, burst, now);
                b.tokens < burst
            });
        }
        let mut bucket = *inner
            .chats
            .entry(chat)
            .or_insert_with(|| Bucket::full(rates.burst, now));
        bucket.refill(chat_rate, rates.burst, now);
        let mut global = inner.global;
        global.refill(global_rate, global_burst, now);
        let paused = inner
            .paused_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        let wait = bucket
            .wait(chat_rate)
            .max(global.wait(global_rate))
            .max(paused);
        if wait > rates.max_wait {
            return Err(wait);
        }
        bucket.tokens -= 1.0;
        global.tokens -= 1.0;
        inner.chats.insert(chat, bucket);
        inner.global = global;
        Ok(wait)
    }

    /// Telegram answered 429: nothing goes out before `retry_after` has passed.
    pub fn pause(&self, retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.paused_until = Some(inner.paused_until.map_or(until, |u| u.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates() -> Rates {
        Rates {
            private_per_second: 1.0,
            group_per_second: 0.5,
            burst: 2.0,
            global_per_second: 4.0,
            max_wait: Duration::from_secs(3),
        }
    }

    #[test]
    fn a_chat_gets_its_burst_then_one_a_second_and_too_long_a_wait_is_handed_back() {
        let pacer = Pacer::new(rates());
        let now = Instant::now();
        assert_eq!(pacer.reserve(1, false, now), Ok(Duration::ZERO));
        assert_eq!(pacer.reserve(1, false, now), Ok(Duration::ZERO));
        let third = pacer.reserve(1, false, now).unwrap();
        assert!((third.as_secs_f64() - 1.0).abs() < 0.01, "{third:?}");
        let fourth = pacer.reserve(1, false, now).unwrap();
        assert!((fourth.as_secs_f64() - 2.0).abs() < 0.01, "{fourth:?}");
        // A group is slower.
        pacer.reserve(2, true, now).unwrap();
        pacer.reserve(2, true, now).unwrap();
        let third = pacer.reserve(2, true, now).unwrap();
        assert!((third.as_secs_f64() - 2.0).abs() < 0.01, "{third:?}");
        let group = pacer.reserve(2, true, now).unwrap_err();
        assert!(
            group > Duration::from_secs(3),
            "a wait over max_wait is refused: {group:?}"
        );
        // The global bucket (4 a second, all used) holds back a new chat too.
        let other = pacer.reserve(3, false, now).unwrap();
        assert!(other > Duration::ZERO, "{other:?}");
        // Time refills.
        let later = now + Duration::from_secs(10);
        assert_eq!(pacer.reserve(1, false, later), Ok(Duration::ZERO));
    }

    #[test]
    fn a_429_pauses_every_chat() {
        let pacer = Pacer::new(rates());
        pacer.pause(Duration::from_secs(2));
        let wait = pacer.reserve(9, false, Instant::now()).unwrap();
        assert!(wait > Duration::from_millis(1900), "{wait:?}");
        pacer.pause(Duration::from_secs(30));
        assert!(pacer.reserve(10, false, Instant::now()).is_err());
    }
}
