//! A process handling a load of messages is killed with SIGKILL and started again: every
//! message it acknowledged is in the transcript, messages delivered again are answered only if
//! they were not already, and conversations resume mid-flow. Run on SQLite and PostgreSQL.
//!
//! The test binary is also the process under test: started with `KEFU_CRASH_WORKER` set, it
//! reads `conversation<TAB>message id<TAB>text` lines, hands each to an engine on the database
//! and prints `ack<TAB>message id<TAB>replies as JSON` once the turn is committed.

mod common;

use common::TestDb;
use kefu_core::{ConversationKey, Engine, Inbound, OutboundKind};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;

const WORKER: &str = "KEFU_CRASH_WORKER";

fn main() {
    if std::env::var_os(WORKER).is_some() {
        worker();
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for db in [TestDb::sqlite(), TestDb::postgres()] {
        print!(
            "test a_killed_process_loses_nothing_acknowledged ({}) ... ",
            db.name
        );
        std::io::stdout().flush().ok();
        killed_and_restarted(&db, &runtime);
        runtime.block_on(db.cleanup());
        println!("ok");
    }
}

/// The process under test.
fn worker() {
    let url = std::env::var("KEFU_CRASH_URL").expect("url");
    let options = kefu_sql::DbOptions {
        schema: std::env::var("KEFU_CRASH_SCHEMA").ok(),
        ..Default::default()
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let set = kefu_knowledge::defaults::load(&Default::default()).expect("default FAQ");
    let kb = kefu_knowledge::KnowledgeBase::build(set, Default::default()).expect("default KB");
    let db = runtime
        .block_on(kefu_sql::Database::connect(&url, &options))
        .expect("database");
    let engine = Engine::builder(Arc::new(kb))
        .store(Arc::new(db.conversations()))
        .queue(Arc::new(db.queue()))
        .build();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let mut parts = line.splitn(3, '\t');
        let (conversation, id, text) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let message = Inbound::new(
            ConversationKey::new("telegram", conversation),
            "buyer",
            id,
            text,
        );
        let replies = runtime.block_on(engine.handle(message)).expect("turn");
        let replies: Vec<_> = replies.iter().map(|r| (r.kind, r.text.clone())).collect();
        writeln!(
            out,
            "ack\t{id}\t{}",
            serde_json::to_string(&replies).unwrap()
        )
        .unwrap();
        out.flush().unwrap();
    }
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    acks: BufReader<ChildStdout>,
}

impl Worker {
    fn start(db: &TestDb) -> Worker {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .env(WORKER, "1")
            .env("KEFU_CRASH_URL", &db.url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(schema) = &db.options.schema {
            command.env("KEFU_CRASH_SCHEMA", schema);
        }
        let mut child = command.spawn().expect("start the worker");
        let stdin = child.stdin.take().unwrap();
        let mut acks = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        acks.read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready");
        Worker { child, stdin, acks }
    }

    fn send(&mut self, conversation: &str, id: &str, text: &str) {
        writeln!(self.stdin, "{conversation}\t{id}\t{text}").unwrap();
    }

    /// The next acknowledgement: (message id, replies).
    fn ack(&mut self) -> Option<(String, Vec<(OutboundKind, String)>)> {
        let mut line = String::new();
        if self.acks.read_line(&mut line).unwrap() == 0 {
            return None;
        }
        let mut parts = line.trim_end().splitn(3, '\t');
        assert_eq!(parts.next(), Some("ack"), "{line}");
        let id = parts.next().unwrap().to_string();
        Some((id, serde_json::from_str(parts.next().unwrap()).unwrap()))
    }
}

const LOAD: &[&str] = &[
    "你好",
    "充值了没到账",
    "how do i get a refund",
    "支持支付宝吗",
    "where is my card key",
    "/start",
    "thanks",
];

fn killed_and_restarted(db: &TestDb, runtime: &tokio::runtime::Runtime) {
    let mut worker = Worker::start(db);
    // A conversation left in the middle of a flow: the bot has asked for the order number.
    worker.send("flow", "f1", "我的卡密在哪里");
    let (_, replies) = worker.ack().unwrap();
    assert_eq!(
        replies.last().map(|r| r.0),
        Some(OutboundKind::Question),
        "{replies:?}"
    );

    // 300 messages for 10 conversations, written all at once; killed after 120 are acknowledged.
    let mut script = Vec::new();
    for m in 0..30 {
        for c in 0..10 {
            script.push((
                format!("load{c}"),
                format!("l{c}-{m}"),
                LOAD[(c + m) % LOAD.len()].to_string(),
            ));
        }
    }
    for (conversation, id, text) in &script {
        worker.send(conversation, id, text);
    }
    let mut acked: HashMap<String, Vec<(OutboundKind, String)>> = HashMap::new();
    while acked.len() < 120 {
        let (id, replies) = worker.ack().expect("an acknowledgement");
        acked.insert(id, replies);
    }
    worker.child.kill().expect("SIGKILL");
    worker.child.wait().unwrap();

    // What the database holds right after the crash: every acknowledged message, and maybe
    // a few the worker committed after the last acknowledgement that was read.
    let committed = runtime.block_on(async {
        use kefu_core::ConversationStore;
        let store = db.open().await.conversations();
        let mut ids = std::collections::HashSet::new();
        for c in 0..10 {
            let key = ConversationKey::new("telegram", format!("load{c}"));
            for line in store.transcript(&key).await.unwrap() {
                ids.extend(line.message_id);
            }
        }
        ids
    });
    for id in acked.keys() {
        assert!(
            committed.contains(id),
            "{}: acknowledged message {id} was lost",
            db.name
        );
    }

    // Restarted, it gets every unacknowledged message again, as a platform would redeliver.
    let mut worker = Worker::start(db);
    let mut redelivered = 0;
    for (conversation, id, text) in &script {
        if !acked.contains_key(id) {
            worker.send(conversation, id, text);
            redelivered += 1;
        }
    }
    let mut answered_again = BTreeMap::new();
    for _ in 0..redelivered {
        let (id, replies) = worker.ack().expect("an acknowledgement after the restart");
        answered_again.insert(id, replies);
    }
    // The flow goes on where it stopped.
    worker.send("flow", "f2", "DD2024112300017");
    let (_, replies) = worker.ack().unwrap();
    assert!(
        replies
            .iter()
            .any(|(_, text)| text.contains("DD2024112300017")),
        "{}: the flow did not resume: {replies:?}",
        db.name
    );
    drop(worker.stdin);
    assert!(worker.child.wait().unwrap().success());

    runtime.block_on(async {
        let store = db.open().await.conversations();
        use kefu_core::ConversationStore;
        for c in 0..10 {
            let key = ConversationKey::new("telegram", format!("load{c}"));
            let transcript = store.transcript(&key).await.unwrap();
            let ids: Vec<_> = transcript
                .iter()
                .filter_map(|l| l.message_id.clone())
                .collect();
            let expected: Vec<_> = (0..30).map(|m| format!("l{c}-{m}")).collect();
            assert_eq!(
                ids, expected,
                "{}: load{c}: every message exactly once, in order",
                db.name
            );
        }
        // Messages committed before the kill but never acknowledged are not answered twice:
        // their redelivery gets no reply, while the rest are answered.
        for (id, replies) in &answered_again {
            assert_eq!(
                replies.is_empty(),
                committed.contains(id),
                "{}: redelivered {id}: {replies:?}",
                db.name
            );
        }
    });
}
