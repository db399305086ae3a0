//! `kefu serve` as a service: two processes on one PostgreSQL database serve one web chat (a
//! page connected to one sees a reply produced by the other, and an agent's message), and a
//! SIGTERM in the middle of many turns loses none that was answered.

mod running;

use kefu_core::conversation::Speaker;
use std::path::Path;
use std::time::Duration;

/// Reads server-sent events from `stream` until one named `lines`; its data.
async fn next_lines(stream: &mut reqwest::Response, buffer: &mut String) -> serde_json::Value {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.lines().any(|l| l == "event: lines") {
                let data = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .expect("data");
                return serde_json::from_str(data).unwrap();
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(15), stream.chunk())
            .await
            .expect("an event within 15 s")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

/// Texts of the lines of events read until one satisfies `wanted`.
async fn read_until(
    stream: &mut reqwest::Response,
    buffer: &mut String,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut seen = Vec::new();
    loop {
        let event = next_lines(stream, buffer).await;
        let lines = event["lines"].as_array().unwrap().clone();
        let found = lines.iter().any(&wanted);
        seen.extend(lines);
        if found {
            return seen;
        }
    }
}

/// The page's CSRF token.
fn csrf(page: &str) -> String {
    let start = page.find("data-csrf=\"").expect("a token") + "data-csrf=\"".len();
    page[start..start + 32].to_string()
}

/// A unique PostgreSQL schema for this run.
fn schema() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("kefu_serve_{}_{nanos}", std::process::id())
}

fn postgres_url() -> String {
    std::env::var("KEFU_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn write_config(dir: &Path, storage: &str) -> std::path::PathBuf {
    let path = dir.join("kefu.yaml");
    std::fs::write(
        &path,
        format!("storage:\n{storage}channels:\n  web:\n    per_ip_per_minute: 0\n    per_conversation_per_minute: 0\n"),
    )
    .unwrap();
    path
}

#[test]
fn two_processes_on_postgresql_serve_one_web_chat() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema();
    let config = write_config(
        dir.path(),
        &format!("  url: {}\n  schema: {schema}\n", postgres_url()),
    );
    let (_a, a) = running::serve(dir.path(), Some(&config));
    let (_b, b) = running::serve(dir.path(), Some(&config));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        // The page comes from A, and its event stream stays on A.
        let page = http.get(format!("http://{a}/chat")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let token = csrf(&page.text().await.unwrap());
        let mut stream = http
            .get(format!("http://{a}/chat/events?from=0"))
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        let mut buffer = String::new();

        // The message goes to B (a load balancer's choice): B's cookie key is A's.
        let answer = http
            .post(format!("http://{b}/chat/messages"))
            .header("x-kefu-csrf", &token)
            .json(&serde_json::json!({"id": "m1", "text": "退款要多久"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "B accepts A's cookie and token");
        let answer: serde_json::Value = answer.json().await.unwrap();
        let reply = answer["replies"][0]["text"].as_str().unwrap().to_string();
        assert!(reply.contains("退"), "{answer}");

        // A's page gets B's turn: the customer's line and B's reply.
        let seen = read_until(&mut stream, &mut buffer, |l| l["text"] == reply.as_str()).await;
        assert_eq!(seen[0]["text"], "退款要多久");
        assert_eq!(seen[0]["message_id"], "m1");

        // A person: asked through B, an agent (a third process) answers; whichever process's
        // outbox worker delivers it, A's page shows it.
        let human = http
            .post(format!("http://{b}/chat/messages"))
            .header("x-kefu-csrf", &token)
            .json(&serde_json::json!({"id": "m2", "text": "转人工"}))
            .send()
            .await
            .unwrap();
        assert_eq!(human.status(), 200);
        let agent_config = kefu_app::config::Config::load(Some(&config)).unwrap();
        let agent = kefu_app::App::from_config(&agent_config).await.unwrap();
        let waiting = kefu_core::HandoffQueue::waiting(&agent.db.queue(), None)
            .await
            .unwrap();
        let claimed = agent
            .agents
            .claim(&waiting[0].skill_group, "alice")
            .await
            .unwrap()
            .unwrap();
        agent
            .agents
            .message(&claimed.conversation, "alice", "您好，我是客服小王。")
            .await
            .unwrap();
        let seen = read_until(&mut stream, &mut buffer, |l| {
            l["text"].as_str().is_some_and(|t| t.contains("小王"))
        })
        .await;
        let last = seen.last().unwrap();
        assert_eq!(last["speaker"], "agent");
        agent.db.close().await;

        // Clean up the schema (the servers are stopped first, when dropped at the end).
        drop(stream);
    });
    drop((_a, _b));
    runtime.block_on(async {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&postgres_url()).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&mut db)
            .await
            .unwrap();
    });
}

#[cfg(unix)]
#[test]
fn a_sigterm_during_turns_loses_none_that_was_answered() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("  url: sqlite://{}/data/kefu.db\n", dir.path().display()),
    );
    let (mut server, addr) = running::serve(dir.path(), Some(&config));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // 20 customers, each sending messages one after another until the server stops taking them.
    let answered = runtime.block_on(async {
        let mut customers = Vec::new();
        for c in 0..20 {
            let addr = addr.clone();
            customers.push(tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .cookie_store(true)
                    .build()
                    .unwrap();
                let page = http
                    .get(format!("http://{addr}/chat"))
                    .send()
                    .await
                    .unwrap();
                let cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
                let id = cookie["kefu_chat=".len()..]
                    .split('.')
                    .next()
                    .unwrap()
                    .to_string();
                let token = csrf(&page.text().await.unwrap());
                let mut answered = Vec::new();
                for m in 0..10_000 {
                    let message_id = format!("c{c}m{m}");
                    let sent = http
                        .post(format!("http://{addr}/chat/messages"))
                        .header("x-kefu-csrf", &token)
                        .json(&serde_json::json!({"id": message_id, "text": "退款要多久"}))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 200 => {
                            let body: serde_json::Value = match r.json().await {
                                Ok(body) => body,
                                Err(_) => break, // cut off mid-answer: not acknowledged
                            };
                            assert!(!body["replies"].as_array().unwrap().is_empty());
                            answered.push(message_id);
                        }
                        _ => break,
                    }
                }
                (id, answered)
            }));
        }
        // Let turns run, then stop the server in the middle of them.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.terminate();
        let mut all = Vec::new();
        for customer in customers {
            all.push(customer.await.unwrap());
        }
        all
    });
    let status = server.wait_exit(30);
    assert!(status.success(), "{status:?}");
    let total: usize = answered.iter().map(|(_, a)| a.len()).sum();
    assert!(total >= 20, "turns were running when SIGTERM came: {total}");

    // Every answered message is stored, with the bot's reply after it.
    let url = format!("sqlite://{}/data/kefu.db", dir.path().display());
    runtime.block_on(async {
        use kefu_core::ConversationStore;
        let db = kefu_sql::Database::connect(&url, &Default::default())
            .await
            .unwrap();
        for (id, messages) in &answered {
            let lines = db
                .conversations()
                .transcript(&kefu_core::ConversationKey::new("web", id.as_str()))
                .await
                .unwrap();
            for message in messages {
                let at = lines
                    .iter()
                    .position(|l| l.message_id.as_deref() == Some(message.as_str()))
                    .unwrap_or_else(|| panic!("answered message {message} is not stored"));
                assert_eq!(
                    lines.get(at + 1).map(|l| l.speaker),
                    Some(Speaker::Bot),
                    "the answer to {message} is stored"
                );
            }
        }
    });
}
