//! The outbox across real processes:
//!
//! - two worker processes drain one PostgreSQL outbox at once: every message is sent exactly
//!   once, and each conversation's in order;
//! - a worker process killed (SIGKILL) while sending a message leaves it to be sent again by
//!   another worker once its claim's lease ends (SQLite and PostgreSQL).
//!
//! The test binary is also the worker: started with `KEFU_OUTBOX_WORKER` set, it delivers the
//! outbox through a channel that appends each message's text to a file, and exits when
//! nothing is pending. With `KEFU_OUTBOX_STALL` set it prints `stalled` and hangs when asked
//! to send that text.

mod common;

use async_trait::async_trait;
use common::TestDb;
use kefu_core::outbox::{Clock, OutboxWorker, RetryPolicy};
use kefu_core::{testing, Channel, Channels, ConversationStore, Outbound, OutboxState, SendError};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const WORKER: &str = "KEFU_OUTBOX_WORKER";

fn main() {
    if std::env::var_os(WORKER).is_some() {
        worker();
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = TestDb::postgres();
    run(
        "two_worker_processes_never_send_one_message_twice (postgres)",
        || two_processes(&db, &runtime),
    );
    runtime.block_on(db.cleanup());
    for db in [TestDb::sqlite(), TestDb::postgres()] {
        run(
            &format!(
                "a_worker_killed_mid_delivery_leaves_the_message_to_be_sent_again ({})",
                db.name
            ),
            || killed_mid_delivery(&db, &runtime),
        );
        runtime.block_on(db.cleanup());
    }
}

fn run(name: &str, test: impl FnOnce()) {
    print!("test {name} ... ");
    std::io::stdout().flush().ok();
    test();
    println!("ok");
}

/// Appends each message's text as a line to a file (one `write` per line, `O_APPEND`, so
/// lines of several processes never mix), and hangs on the text in `KEFU_OUTBOX_STALL`.
struct FileChannel {
    path: std::path::PathBuf,
    stall: Option<String>,
}

#[async_trait]
impl Channel for FileChannel {
    fn name(&self) -> &str {
        testing::CHANNEL
    }

    async fn send(&self, message: &Outbound) -> Result<(), SendError> {
        if self.stall.as_deref() == Some(message.text.as_str()) {
            println!("stalled");
            std::io::stdout().flush().ok();
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        // A little work per message, so two workers overlap.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| SendError::Unavailable(e.to_string()))?;
        let line = format!("{}\t{}\n", std::process::id(), message.text);
        file.write_all(line.as_bytes())
            .map_err(|e| SendError::Unavailable(e.to_string()))?;
        Ok(())
    }
}

fn policy(lease_ms: u64) -> RetryPolicy {
    RetryPolicy {
        lease: Duration::from_millis(lease_ms),
        send_timeout: Duration::from_millis(lease_ms / 2),
        batch: 4,
        idle_poll: Duration::from_millis(10),
        ..RetryPolicy::default()
    }
}

/// The process under test.
fn worker() {
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    let options = kefu_sql::DbOptions {
        schema: std::env::var("KEFU_OUTBOX_SCHEMA").ok(),
        ..Default::default()
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let db = kefu_sql::Database::connect(&env("KEFU_OUTBOX_URL"), &options)
            .await
            .expect("database");
        let channel = FileChannel {
            path: env("KEFU_OUTBOX_LOG").into(),
            stall: std::env::var("KEFU_OUTBOX_STALL").ok(),
        };
        let lease: u64 = env("KEFU_OUTBOX_LEASE_MS").parse().expect("lease");
        let outbox = db.conversations().outbox();
        let worker = OutboxWorker::new(
            outbox.clone(),
            Channels::new().with(Arc::new(channel)),
            policy(lease),
        );
        println!("ready");
        std::io::stdout().flush().ok();
        loop {
            let stats = worker.run_once().await.expect("run");
            if stats.claimed == 0 {
                let pending = outbox.list(OutboxState::Pending, 1).await.expect("list");
                if pending.is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
}

fn spawn(db: &TestDb, log: &std::path::Path, lease_ms: u64, stall: Option<&str>) -> Child {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .env(WORKER, "1")
        .env("KEFU_OUTBOX_URL", &db.url)
        .env("KEFU_OUTBOX_LOG", log)
        .env("KEFU_OUTBOX_LEASE_MS", lease_ms.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    if let Some(schema) = &db.options.schema {
        command.env("KEFU_OUTBOX_SCHEMA", schema);
    }
    if let Some(stall) = stall {
        command.env("KEFU_OUTBOX_STALL", stall);
    }
    command.spawn().expect("start a worker process")
}

/// Reads the child's lines until one equals `want`.
fn wait_for(child: &mut Child, want: &str) {
    let out = child.stdout.as_mut().expect("stdout");
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .expect("read the worker's output");
        assert!(n > 0, "the worker ended before saying {want:?}");
        if line.trim() == want {
            return;
        }
    }
}

/// (process id, text) per line of the log, in the order written.
fn sent(log: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (pid, text) = l.split_once('\t').expect("pid and text");
            (pid.to_string(), text.to_string())
        })
        .collect()
}

fn two_processes(db: &TestDb, runtime: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = dir.path().join("sent.log");
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    runtime.block_on(async {
        let store = db.open().await.conversations();
        for c in 0..20 {
            let id = format!("c{c}");
            let texts: Vec<String> = (0..10).map(|n| format!("{id}-{n}")).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            testing::write(&store, &id, &refs).await;
            expected.insert(id, texts);
        }
    });
    let mut children = [spawn(db, &log, 30_000, None), spawn(db, &log, 30_000, None)];
    for child in &mut children {
        let status = child.wait().expect("wait for a worker");
        assert!(status.success(), "a worker failed: {status}");
    }
    let lines = sent(&log);
    let mut by_conversation: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, text) in &lines {
        let id = text.split('-').next().unwrap().to_string();
        by_conversation.entry(id).or_default().push(text.clone());
    }
    assert_eq!(
        by_conversation, expected,
        "each message once, in order per conversation"
    );
    let processes: std::collections::BTreeSet<_> = lines.iter().map(|(pid, _)| pid).collect();
    assert_eq!(processes.len(), 2, "both processes sent messages");
}

fn killed_mid_delivery(db: &TestDb, runtime: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = dir.path().join("sent.log");
    let store = runtime.block_on(async {
        let store = db.open().await.conversations();
        testing::write(&store, "k", &["k1", "k2"]).await;
        store
    });
    let lease_ms = 1_500;
    let mut child = spawn(db, &log, lease_ms, Some("k1"));
    wait_for(&mut child, "stalled");
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert!(sent(&log).is_empty(), "nothing was sent before the kill");
    runtime.block_on(async {
        let channel = Arc::new(testing::ScriptedChannel::working());
        let worker = OutboxWorker::new(
            store.outbox(),
            Channels::new().with(channel.clone()),
            policy(lease_ms),
        )
        .with_clock(Clock::new());
        // The dead worker's claim holds k1 (and so k2) until its lease ends.
        assert_eq!(worker.run_once().await.unwrap().claimed, 0, "{}", db.name);
        for _ in 0..400 {
            worker.run_once().await.unwrap();
            if channel.sent().len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(channel.texts(), ["k1", "k2"], "{}", db.name);
        let sent = store.outbox().list(OutboxState::Sent, 10).await.unwrap();
        assert_eq!(sent[0].attempts, 2, "{}: the killed try counts", db.name);
    });
}
