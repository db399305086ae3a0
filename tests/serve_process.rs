//! `kefu serve` as an operator runs it: it prints where it listens, answers health checks
//! and signed webhook messages, and stops cleanly on SIGTERM with what it answered stored.

mod running;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP/1.1 request over a plain socket: the status code and the body.
fn http(addr: &str, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[cfg(unix)]
#[test]
fn kefu_serve_answers_then_stops_on_sigterm_keeping_what_it_answered() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kefu.yaml");
    std::fs::write(
        &config,
        format!(
            "storage:\n  url: sqlite://{}/kefu.db\nchannels:\n  webhook:\n    secret_env: TEST_WEBHOOK_SECRET\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let (mut server, addr) = running::serve_with_env(
        dir.path(),
        Some(&config),
        &[("TEST_WEBHOOK_SECRET", "s3cret")],
    );

    let (status, body) = http(
        &addr,
        "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    );
    assert_eq!((status, body.trim()), (200, "ok"));

    // Signed as docs/webhook.md says (the signing code is checked against OpenSSL in kefu-webhook).
    let body = r#"{"id":"m1","conversation":"c1","text":"退款要多久"}"#;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signature = kefu_webhook::signing::sign(b"s3cret", ts, body.as_bytes());
    let request = format!(
        "POST /v1/webhook HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\nx-kefu-timestamp: {ts}\r\nx-kefu-signature: {signature}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, answer) = http(&addr, &request);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("退款"), "{answer}");

    server.terminate();
    let status = server.wait_exit(20);
    assert!(status.success(), "{status:?}");
    assert!(TcpStream::connect(&addr).is_err(), "still listening");

    // What it answered is stored: the turn's two lines are in the database.
    let url = format!("sqlite://{}/kefu.db", dir.path().display());
    let lines = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use kefu_core::ConversationStore;
        let db = kefu_sql::Database::connect(&url, &Default::default())
            .await
            .unwrap();
        db.conversations()
            .transcript(&kefu_core::ConversationKey::new("webhook", "c1"))
            .await
            .unwrap()
    });
    assert_eq!(lines[0].text, "退款要多久", "{lines:?}");
    assert!(lines.len() >= 2, "the answer is stored too: {lines:?}");
}
