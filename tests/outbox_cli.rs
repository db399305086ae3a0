//! `kefu outbox` as an operator uses it: counts, the dead letters and why, sending them
//! again — on a database holding real outbox rows.

use kefu_core::testing;
use kefu_core::{ConversationStore, OutboxState};
use std::process::{Command, Output};

fn kefu(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("KEFU_LOG")
        .output()
        .expect("run kefu")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_dead_letters_with_their_reason_and_sends_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/kefu.db", dir.path().display());
    let config = dir.path().join("kefu.yaml");
    std::fs::write(&config, format!("storage:\n  url: {url}\n")).unwrap();
    let db = kefu_sql::Database::connect(&url, &Default::default())
        .await
        .unwrap();
    let store = db.conversations();
    testing::write(&store, "alice", &["your refund is on its way"]).await;
    testing::write(&store, "bob", &["the card key is 7F3K-SECRET"]).await;
    let outbox = store.outbox();
    let claimed = outbox.claim(u64::MAX / 4, 1000, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    outbox
        .dead(
            &claimed[0],
            "customer unreachable: bot was blocked by the user",
        )
        .await
        .unwrap();
    outbox.delivered(&claimed[1], 1).await.unwrap();

    let status = kefu(&config, &["outbox", "status"]);
    assert!(status.status.success());
    assert_eq!(
        stdout(&status).lines().take(3).collect::<Vec<_>>(),
        ["pending: 0", "sent: 1", "dead: 1"]
    );

    let dead = stdout(&kefu(&config, &["outbox", "dead"]));
    assert!(dead.contains("#1 to suite:alice"), "{dead}");
    assert!(dead.contains("blocked by the user"), "{dead}");
    assert!(
        !dead.contains("refund is on its way"),
        "no text unless asked: {dead}"
    );
    let with_text = stdout(&kefu(&config, &["outbox", "dead", "--text"]));
    assert!(
        with_text.contains("your refund is on its way"),
        "{with_text}"
    );
    let json = stdout(&kefu(&config, &["outbox", "dead", "--json"]));
    let row: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(row["id"], 1);
    assert_eq!(row["conversation"], "alice");

    // A sent message is not a dead letter: nothing happens to it, and the command says so.
    let wrong = kefu(&config, &["outbox", "resend", "2"]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("#2"));
    let again = kefu(&config, &["outbox", "resend", "1"]);
    assert!(again.status.success(), "{again:?}");
    assert!(stdout(&again).starts_with("1 message will be sent again"));
    let pending = outbox.list(OutboxState::Pending, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 0);
    assert_eq!(
        stdout(&kefu(&config, &["outbox", "dead"])).trim(),
        "no dead letters"
    );
}
