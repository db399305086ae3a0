//! `kefu loadtest`: many customers at once against a running `kefu serve` on this machine,
//! through the web chat as browsers use it — a page for the cookie and token, then messages
//! one after another — and what it measured: messages a second, turn latency percentiles and
//! errors. Bounded in conversations, messages and time, and refusing any address that is not
//! loopback, so it cannot be turned on somebody else's server.

use anyhow::Context;
use clap::Args;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most conversations at once.
const MAX_CONVERSATIONS: usize = 10_000;
/// The most messages per conversation.
const MAX_MESSAGES: usize = 1_000;
/// The longest run, in seconds.
const MAX_SECONDS: u64 = 600;

/// What customers write, in both languages: questions the FAQ answers, order numbers, a
/// person, thanks and chatter, typos and mixed language.
const MESSAGES: &[&str] = &[
    "退款要多久到账",
    "我的卡密在哪里看",
    "卡密显示无效怎么办",
    "充值了还没到账",
    "where is my card key",
    "how long does a refund take",
    "the code says invalid",
    "top up not credited yet",
    "20231201123456",
    "怎么联系人工",
    "谢谢",
    "thanks!",
    "今天天气怎么样",
    "steam 礼品卡 能用在美区吗",
    "can i pay with alipay",
    "会员会自动续费吗",
    "kami 在哪",
    "my order is stuck processing",
    "取消",
    "优惠券怎么用",
];

/// Arguments of `kefu loadtest`.
#[derive(Debug, Args)]
pub struct LoadtestArgs {
    /// The server, as `kefu serve` printed it (loopback only): http://127.0.0.1:8080
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Conversations at once (customers), each with its own cookie.
    #[arg(long, default_value_t = 50)]
    conversations: usize,
    /// Messages each conversation sends, one after another.
    #[arg(long, default_value_t = 20)]
    messages: usize,
    /// Stop after this many seconds even if messages remain.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// Afterwards, open this many more conversations with a page's event stream each and hold
    /// them for --hold-seconds (to measure the server with many customers connected).
    #[arg(long, default_value_t = 0)]
    open: usize,
    /// How long to hold the --open conversations.
    #[arg(long, default_value_t = 30)]
    hold_seconds: u64,
}

/// Refuses anything but an `http://` URL on a loopback address.
fn loopback_base(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        anyhow::anyhow!(
            "--url {url:?}: give the http:// address kefu serve printed (loopback only)"
        )
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        anyhow::bail!(
            "--url {url:?}: kefu loadtest only runs against a server on this machine \
             (127.0.0.1, ::1 or localhost)"
        );
    }
    Ok(format!("http://{authority}"))
}

/// What one conversation saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

/// A customer: opens the page, then sends `messages` messages, timing each.
async fn customer(base: &str, number: usize, messages: usize, stop: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    let http = match reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tally.errors.push(format!("client: {e}"));
            return tally;
        }
    };
    let token = match open_page(&http, base).await {
        Ok(token) => token,
        Err(e) => {
            tally.errors.push(e);
            return tally;
        }
    };
    for m in 0..messages {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let text = MESSAGES[(number * 7 + m) % MESSAGES.len()];
        let started = Instant::now();
        let sent = http
            .post(format!("{base}/chat/messages"))
            .header("x-kefu-csrf", &token)
            .json(&serde_json::json!({ "id": format!("load-{number}-{m}"), "text": text }))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(_) => tally.latencies.push(started.elapsed()),
                Err(e) => tally.errors.push(format!("reading an answer: {e}")),
            },
            Ok(r) => tally.errors.push(format!("HTTP {}", r.status())),
            Err(e) => tally.errors.push(format!("sending: {e}")),
        }
    }
    tally
}

/// Opens the chat page; its CSRF token.
async fn open_page(http: &reqwest::Client, base: &str) -> Result<String, String> {
    let page = http
        .get(format!("{base}/chat"))
        .send()
        .await
        .map_err(|e| format!("opening the page: {e}"))?;
    if !page.status().is_success() {
        return Err(format!("opening the page: HTTP {}", page.status()));
    }
    let html = page
        .text()
        .await
        .map_err(|e| format!("reading the page: {e}"))?;
    let start = html
        .find("data-csrf=\"")
        .ok_or("the page has no token: is this a kefu web chat?")?
        + "data-csrf=\"".len();
    let end = html[start..].find('"').ok_or("a cut-off page")? + start;
    Ok(html[start..end].to_string())
}

/// Percentile `p` (0–100) of sorted `values`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Runs the load and prints what it measured; fails when any message failed.
pub fn loadtest(args: LoadtestArgs) -> anyhow::Result<ExitCode> {
    let base = loopback_base(&args.url)?;
    for (value, max, name) in [
        (args.conversations, MAX_CONVERSATIONS, "--conversations"),
        (args.messages, MAX_MESSAGES, "--messages"),
        (args.open, MAX_CONVERSATIONS, "--open"),
    ] {
        if value > max {
            anyhow::bail!("{name} {value}: at most {max}");
        }
    }
    if args.seconds == 0 || args.seconds > MAX_SECONDS || args.hold_seconds > MAX_SECONDS {
        anyhow::bail!("--seconds and --hold-seconds: 1 to {MAX_SECONDS}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = stop.clone();
            let seconds = args.seconds;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(seconds)).await;
                stop.store(true, Ordering::Relaxed);
            });
        }
        if args.conversations > 0 {
            println!(
                "{} conversations × {} messages against {base} (web chat)…",
                args.conversations, args.messages
            );
        }
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(args.conversations);
        for number in 0..args.conversations {
            let (base, stop) = (base.clone(), stop.clone());
            let messages = args.messages;
            tasks.push(tokio::spawn(async move {
                customer(&base, number, messages, &stop).await
            }));
        }
        let mut latencies = Vec::new();
        let mut errors = Vec::new();
        for task in tasks {
            match task.await {
                Ok(tally) => {
                    latencies.extend(tally.latencies);
                    errors.extend(tally.errors);
                }
                Err(e) => errors.push(format!("a customer task failed: {e}")),
            }
        }
        let elapsed = started.elapsed();
        latencies.sort();
        if args.conversations > 0 {
            report(&latencies, &errors, elapsed);
        }
        if args.open > 0 {
            hold(&base, args.open, args.hold_seconds).await;
        }
        Ok(if errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

/// Prints what the load measured.
fn report(latencies: &[Duration], errors: &[String], elapsed: Duration) {
    println!(
        "messages: {} answered, {} errors in {:.1} s — {:.0} messages/s",
        latencies.len(),
        errors.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!(
        "turn latency: p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(latencies, 50.0)),
        ms(percentile(latencies, 90.0)),
        ms(percentile(latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    if !errors.is_empty() {
        let mut kinds = errors.to_vec();
        kinds.sort();
        kinds.dedup();
        println!("errors (kinds): {}", kinds.join("; "));
        if errors.iter().any(|e| e.contains("429")) {
            println!(
                "hint: the server's rate limits refused messages; run it with \
                 channels.web.per_ip_per_minute and per_conversation_per_minute set to 0"
            );
        }
    }
}

/// Opens `count` conversations, each with its page's event stream, and holds them.
async fn hold(base: &str, count: usize, seconds: u64) {
    println!("opening {count} conversations with a page each…");
    let mut streams = Vec::with_capacity(count);
    let mut failed = 0usize;
    // 200 at a time, so the server's accept queue is not flooded.
    for start in (0..count).step_by(200) {
        let mut opening = Vec::new();
        for _ in start..(start + 200).min(count) {
            let base = base.to_string();
            opening.push(tokio::spawn(async move {
                let http = reqwest::Client::builder().cookie_store(true).build().ok()?;
                open_page(&http, &base).await.ok()?;
                let stream = http
                    .get(format!("{base}/chat/events?from=0"))
                    .send()
                    .await
                    .ok()?;
                stream.status().is_success().then_some((http, stream))
            }));
        }
        for task in opening {
            match task.await {
                Ok(Some(open)) => streams.push(open),
                _ => failed += 1,
            }
        }
    }
    println!(
        "{} conversations open ({failed} failed); holding them {seconds} s — measure the server now",
        streams.len()
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    drop(streams);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/chat",
            "http://localhost:9000",
            "http://[::1]:8080",
            "http://127.1.2.3",
        ] {
            assert!(loopback_base(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://10.0.0.1:8080",
            "http://example.com",
            "https://127.0.0.1:8080",
            "http://127.0.0.1.example.com:80",
            "http://[2001:db8::1]:8080",
            "127.0.0.1:8080",
        ] {
            assert!(loopback_base(refused).is_err(), "{refused}");
        }
        assert_eq!(
            loopback_base("http://127.0.0.1:8080/chat").unwrap(),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn percentiles_of_sorted_latencies() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Duration::from_millis(51));
        assert_eq!(percentile(&values, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }
}
