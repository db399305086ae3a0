//! From a customer's hand-off to the agents' console showing it.
//!
//! # What is measured
//!
//! `kefu serve`'s router runs in this process on loopback (SQLite in a temporary directory by
//! default; PostgreSQL with `KEFU_BENCH_DATABASE_URL=postgres://...`, in a schema of its own
//! (dropped afterwards), where changes travel through LISTEN/NOTIFY as
//! between several instances). An agent is
//! logged in with the console's live stream (`/console/events`) open, as a queue page keeps it.
//! Then 200 customers each ask for a person through the signed webhook, one after another.
//! For each, the time from sending the customer's message to
//!
//! - `event`: the console's stream announcing that conversation, and
//! - `shown`: the queue's HTML (what the page fetches on that event) containing it,
//!
//! is recorded; the medians and 99th percentiles are printed. The queue grows to 200 waiting
//! conversations, so the last ones are measured on a full queue.
//!
//! ```sh
//! cargo bench --bench console
//! ```

use kefu_app::config::Config;
use kefu_app::App;
use kefu_webhook::signing;
use std::path::Path;
use std::time::{Duration, Instant};

const HANDOFFS: usize = 200;
const PASSWORD: &str = "correct horse battery";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("KEFU_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/kefu.db", dir.path().display()));
    // PostgreSQL: a schema of this run's own.
    let schema = if url.starts_with("postgres") {
        format!("  schema: kefu_bench_console_{}\n", std::process::id())
    } else {
        String::new()
    };
    let yaml = format!(
        "storage:\n  url: {url}\n{schema}channels:\n  webhook:\n    secret: bench-secret\n    per_ip_per_minute: 0\n    per_conversation_per_minute: 0\n"
    );
    let config = Config::parse(Path::new("kefu.yaml"), &yaml).unwrap();
    let app = App::from_config(&config).await.unwrap();
    let accounts = app.db.accounts();
    let agent = format!("bench{}", std::process::id());
    let _ = accounts
        .add(
            &agent,
            kefu_sql::Role::Agent,
            PASSWORD,
            kefu_core::conversation::now_millis(),
        )
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = {
        let config = config.clone();
        tokio::spawn(async move {
            kefu_app::serve::run(app, &config, listener, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("{base}/console/login"))
        .form(&[("name", agent.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let mut stream = http
        .get(format!("{base}/console/events"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let (seen, mut heard) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    tokio::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find('\n') {
                let line: String = buffer.drain(..=end).collect();
                if let Some(data) = line.trim_end().strip_prefix("data: ") {
                    let _ = seen.send((data.to_string(), Instant::now()));
                }
            }
        }
    });

    let run_id = std::process::id();
    let mut events = Vec::with_capacity(HANDOFFS);
    let mut shown = Vec::with_capacity(HANDOFFS);
    for i in 0..HANDOFFS {
        let conversation = format!("h{run_id}-{i}");
        let body = format!(r#"{{"id":"m{i}","conversation":"{conversation}","text":"转人工"}}"#);
        let now = signing::unix_now();
        let start = Instant::now();
        let response = http
            .post(format!("{base}/v1/webhook"))
            .header(signing::TIMESTAMP_HEADER, now.to_string())
            .header(
                signing::SIGNATURE_HEADER,
                signing::sign(b"bench-secret", now, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        let wanted = format!("webhook:{conversation}");
        loop {
            let (id, at) = tokio::time::timeout(Duration::from_secs(10), heard.recv())
                .await
                .expect("the console heard of the hand-off within 10 s")
                .unwrap();
            if id == wanted || id == "*" {
                events.push(at - start);
                break;
            }
        }
        let queue = http
            .get(format!("{base}/console/queue"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(queue.contains(&conversation), "the queue shows it");
        shown.push(start.elapsed());
    }
    events.sort();
    shown.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let backend = if url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    println!(
        "console/handoff_to_event/{backend}: {HANDOFFS} hand-offs, p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&events, 0.5)),
        ms(percentile(&events, 0.99))
    );
    println!(
        "console/handoff_to_queue_shown/{backend}: {HANDOFFS} hand-offs, p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&shown, 0.5)),
        ms(percentile(&shown, 0.99))
    );
    let _ = stop.send(());
    let _ = served.await;
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(&format!(
            "DROP SCHEMA IF EXISTS kefu_bench_console_{} CASCADE",
            std::process::id()
        ))
        .execute(&pool)
        .await
        .unwrap();
    }
}
