//! `kefu orders import` end to end: a real file, the real binary, an SQLite database.

use std::path::Path;
use std::process::{Command, Output};

fn kefu(database: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KEFU_LOG")
        .env("KEFU_DATABASE_URL", database)
        .output()
        .expect("run kefu")
}

fn stored(database: &str, number: &str) -> (i64, Vec<String>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let db = kefu_sql::Database::connect(database, &Default::default())
                .await
                .unwrap();
            let orders = db.orders();
            (
                orders.count().await.unwrap(),
                orders.card_keys(number).await.unwrap(),
            )
        })
}

const GOOD: &str = "order_no,product,status,amount,buyer_email,query_password,card_keys\n\
DD1001,Steam 100元充值卡,已发货,100,a@example.com,8866,\"AAAA-1111;BBBB-2222\"\n\
DD1002,腾讯视频月卡,待付款,25.5,b@example.com,1234,\n\
DD1003,王者荣耀 60 点券,充值中,6,,,\n";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_good_file_is_imported_and_a_bad_one_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/kefu.db", dir.path().display());

    // Two bad rows among good ones: both reported by line, nothing imported.
    let bad = GOOD.replace("已发货", "shipped").replace("25.5", "25.555");
    let file = write(dir.path(), "bad.csv", &bad);
    let out = kefu(&db, &["orders", "import", &file]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bad.csv:2:") && stderr.contains("shipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.csv:3:") && stderr.contains("25.555"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert_eq!(stored(&db, "DD1001").0, 0, "a bad file imports nothing");

    let file = write(dir.path(), "orders.csv", GOOD);
    let out = kefu(&db, &["orders", "import", "--check", &file]);
    assert!(out.status.success());
    assert_eq!(stored(&db, "DD1001").0, 0, "--check imports nothing");

    let out = kefu(&db, &["orders", "import", &file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("imported 3 orders (3 new, 0 replaced) with 2 card keys"),
        "{stdout}"
    );
    assert_eq!(
        stored(&db, "DD1001"),
        (3, vec!["AAAA-1111".to_string(), "BBBB-2222".to_string()])
    );

    // Importing again replaces: a JSON file with a new key for one order.
    let json = r#"[{"order_no": "DD1001", "product": "Steam 100元充值卡", "status": "delivered", "card_keys": ["CCCC-3333"]}]"#;
    let file = write(dir.path(), "fix.json", json);
    let out = kefu(&db, &["orders", "import", &file]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("(0 new, 1 replaced)"));
    assert_eq!(stored(&db, "DD1001"), (3, vec!["CCCC-3333".to_string()]));
}

/// Runs `kefu chat` with `args` on `database`, with `lines` as the customer's messages.
fn run_chat(database: &str, args: &[&str], lines: &[&str]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("chat")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KEFU_LOG")
        .env("KEFU_DATABASE_URL", database)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kefu chat");
    let script: String = lines.iter().map(|l| format!("{l}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `kefu chat --json` on `database` with `lines` as the customer's messages; returns the
/// replies' texts, one string per line of output.
fn chat(database: &str, lines: &[&str]) -> Vec<String> {
    let out = run_chat(database, &["--json"], lines);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["text"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn imported_orders_answer_their_buyer_in_kefu_chat() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/kefu.db", dir.path().display());
    let file = write(
        dir.path(),
        "orders.csv",
        "order_no,product,status,amount,buyer_email,query_password,card_keys\n\
         DD20241123001,Steam 100元充值卡,已发货,100,a@example.com,8866,\"AAAA-BBBB-1111;CCCC-DDDD-2222\"\n",
    );
    assert!(kefu(&database, &["orders", "import", &file])
        .status
        .success());
    // A wrong password, then the right one.
    let replies = chat(
        &database,
        &["我的卡密在哪里查看", "DD20241123001", "1234", "8866"],
    )
    .join("\n");
    assert!(replies.contains("不匹配"), "{replies}");
    assert!(
        replies.contains("AAAA-BBBB-1111") && replies.contains("CCCC-DDDD-2222"),
        "{replies}"
    );
    // The database keeps the keys masked in the transcript; the audit log has the failure,
    // the showing, and the chat account being linked to the order (the imported order had
    // none, and the proof by password was given in a private chat).
    let (transcript, audit) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use kefu_core::{AuditLog, ConversationStore};
            let db = kefu_sql::Database::connect(&database, &Default::default())
                .await
                .unwrap();
            let key = kefu_core::ConversationKey::new("cli", "local");
            let transcript = db.conversations().transcript(&key).await.unwrap();
            let audit = db.audit().for_subject("DD20241123001").await.unwrap();
            (transcript, audit)
        });
    let text: String = transcript.iter().map(|l| l.text.clone() + "\n").collect();
    assert!(
        !text.contains("AAAA-BBBB-1111") && text.contains("****111"),
        "{text}"
    );
    assert!(!text.contains("8866"), "{text}");
    let actions: Vec<_> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "order.proof_failed",
            "order.verified",
            "card_key.shown",
            "order.linked"
        ]
    );
}

#[test]
fn a_lock_out_in_a_piped_chat_writes_no_log_lines_or_colours_into_it() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/kefu.db", dir.path().display());
    let file = write(
        dir.path(),
        "orders.csv",
        "order_no,product,status,amount,query_password,card_keys\n\
         DD20241123001,Steam 100元充值卡,已发货,100,8866,AAAA-1111\n",
    );
    assert!(kefu(&database, &["orders", "import", &file])
        .status
        .success());
    // Five wrong proofs lock the lookups (the engine warns about it in its log).
    let mut script = vec![
        "我的卡密在哪里查看".to_string(),
        "DD20241123001".to_string(),
    ];
    script.extend((0..6).map(|attempt| format!("wrong{attempt}x")));
    let lines: Vec<&str> = script.iter().map(String::as_str).collect();
    let out = run_chat(&database, &[], &lines);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("验证失败次数过多"), "{stdout}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains('\u{1b}'), "no colour codes: {text:?}");
        assert!(!text.contains("WARN"), "no log lines: {text}");
    }
}
