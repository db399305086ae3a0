//! `kefu agents` as a shop owner uses it to set up the team: passwords from standard input,
//! clear refusals, and accounts that log in (or not) afterwards.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn kefu(config: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("KEFU_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kefu");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_shop_owner_adds_agents_and_they_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/kefu.db", dir.path().display());
    let config = dir.path().join("kefu.yaml");
    std::fs::write(&config, format!("storage:\n  url: {url}\n")).unwrap();

    let added = kefu(
        &config,
        &["agents", "add", "alice", "--role", "admin"],
        "correct horse battery\n",
    );
    assert!(added.status.success(), "{}", text(&added));
    assert!(text(&added).contains("added alice (admin)"));
    assert!(
        !text(&added).contains("correct horse"),
        "the password is never echoed"
    );
    let added = kefu(
        &config,
        &["agents", "add", "bob"],
        "another long password\n",
    );
    assert!(added.status.success(), "{}", text(&added));

    for (args, stdin, says) in [
        (
            &["agents", "add", "alice"][..],
            "yet another password\n",
            "already an account named \"alice\"",
        ),
        (
            &["agents", "add", "carol"][..],
            "short\n",
            "at least 10 characters",
        ),
        (
            &["agents", "add", "carol"][..],
            "",
            "no password on standard input",
        ),
        (
            &["agents", "add", "bad name"][..],
            "long enough password\n",
            "is not usable",
        ),
        (
            &["agents", "disable", "nobody"][..],
            "",
            "no account named \"nobody\"",
        ),
        (
            &["agents", "set", "bob", "--groups", "refunds,nope"][..],
            "",
            "`nope` is not one of the skill_groups",
        ),
        (
            &["agents", "set", "bob", "--capacity", "0"][..],
            "",
            "at least 1",
        ),
        (&["agents", "set", "bob"][..], "", "nothing to set"),
    ] {
        let refused = kefu(&config, args, stdin);
        assert!(!refused.status.success(), "{args:?}");
        assert!(
            text(&refused).contains(says),
            "{args:?}: {}",
            text(&refused)
        );
    }

    let set = kefu(
        &config,
        &[
            "agents",
            "set",
            "bob",
            "--capacity",
            "5",
            "--groups",
            "refunds, orders",
        ],
        "",
    );
    assert!(set.status.success(), "{}", text(&set));
    let disabled = kefu(&config, &["agents", "disable", "bob"], "");
    assert!(disabled.status.success(), "{}", text(&disabled));
    let list = kefu(&config, &["agents", "list"], "");
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "alice\tadmin\tcapacity 3\tall groups\nbob\tagent\tcapacity 5\trefunds,orders\tdisabled\n"
    );

    // The accounts as the console will check them.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = kefu_sql::Database::connect(&url, &Default::default())
            .await
            .unwrap();
        let accounts = db.accounts();
        let now = kefu_core::conversation::now_millis();
        assert!(accounts
            .log_in("alice", "correct horse battery", now, 60_000)
            .await
            .unwrap()
            .is_some());
        assert!(
            accounts
                .log_in("bob", "another long password", now, 60_000)
                .await
                .unwrap()
                .is_none(),
            "disabled"
        );
    });
}
