//! End-to-end conversations through the `kefu chat` binary: a script on standard input, the
//! bot's replies as JSON lines on standard output, against the built-in knowledge base.

use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// One reply of the bot, as `kefu chat --json` prints it.
#[derive(Debug)]
struct Reply {
    kind: String,
    text: String,
    /// The quick replies' (label, payload) pairs.
    buttons: Vec<(String, String)>,
}

/// Runs `kefu chat --json [args]` with `lines` on standard input, on a database of its own;
/// checks that it exits 0 with nothing on standard error and returns the replies in order.
fn chat(args: &[&str], lines: &[&str]) -> Vec<Reply> {
    let data = tempfile::tempdir().expect("temporary directory");
    chat_on(&database_in(data.path()), args, lines)
}

/// The SQLite database URL of a file in `dir`.
fn database_in(dir: &Path) -> String {
    format!("sqlite://{}/kefu.db", dir.display())
}

/// Runs `kefu chat --json [args]` on the database at `database`; see [`chat`].
fn chat_on(database: &str, args: &[&str], lines: &[&str]) -> Vec<Reply> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("chat")
        .arg("--json")
        .args(args)
        // A kefu.yaml in the working directory would change the results.
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KEFU_LOG")
        .env("KEFU_DATABASE_URL", database)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kefu chat");
    let script = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes())
        .expect("write the script");
    let out = child.wait_with_output().expect("kefu chat ends");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.is_empty(), "unexpected standard error: {stderr}");
    stdout
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert_eq!(v["conversation"]["channel"], "cli", "{line}");
            Reply {
                kind: v["kind"].as_str().expect("kind").to_string(),
                text: v["text"].as_str().expect("text").to_string(),
                buttons: v["quick_replies"]
                    .as_array()
                    .expect("quick_replies")
                    .iter()
                    .map(|q| {
                        let s = |k: &str| q[k].as_str().expect("label and payload").to_string();
                        (s("label"), s("payload"))
                    })
                    .collect(),
            }
        })
        .collect()
}

fn kinds(replies: &[Reply]) -> Vec<&str> {
    replies.iter().map(|r| r.kind.as_str()).collect()
}

/// The answer of the built-in FAQ entry `id` in `locale`, read from `knowledge/faq/FILE`.
fn faq_answer(file: &str, id: &str, locale: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("knowledge/faq")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("read the FAQ file");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    let entries = doc["entries"].as_sequence().expect("entries");
    let entry = entries
        .iter()
        .find(|e| e["id"].as_str() == Some(id))
        .unwrap_or_else(|| panic!("no entry {id} in {file}"));
    // With the default variables the answers of these tests use filled in, as the bot does.
    entry["answer"][locale]
        .as_str()
        .expect("an answer in the locale")
        .replace("{support_email}", "support@example.com")
}

fn has_han(text: &str) -> bool {
    text.chars().any(kefu_core::locale::is_han)
}

#[test]
fn a_greeting_is_answered_in_its_language() {
    let zh = chat(&[], &["你好"]);
    assert_eq!(kinds(&zh), ["answer"], "{zh:?}");
    assert!(zh[0].text.contains("欢迎"), "{zh:?}");

    let en = chat(&[], &["hello"]);
    assert_eq!(kinds(&en), ["answer"], "{en:?}");
    assert!(en[0].text.starts_with("Hi, welcome"), "{en:?}");
}

#[test]
fn a_clear_question_gets_the_faq_answer_in_its_language() {
    let zh = chat(&[], &["卡密无效怎么办"]);
    assert_eq!(kinds(&zh), ["answer"], "{zh:?}");
    assert_eq!(
        zh[0].text,
        faq_answer("card_key.yaml", "card_key.invalid", "zh")
    );
    // The entry's follow-ups come as quick replies.
    assert!(!zh[0].buttons.is_empty(), "{zh:?}");

    let en = chat(&[], &["my card key says invalid"]);
    assert_eq!(kinds(&en), ["answer"], "{en:?}");
    assert_eq!(
        en[0].text,
        faq_answer("card_key.yaml", "card_key.invalid", "en")
    );
}

#[test]
fn a_vague_message_gets_suggestions_and_a_number_picks_one() {
    // Money-related words with no question: several entries fit about equally.
    let cases = [
        ("钱", "回复序号"),
        ("something about money", "Reply with its number"),
    ];
    for (vague, intro) in cases {
        let replies = chat(&[], &[vague, "1"]);
        // The chosen entry's answer (a flow's question may follow it).
        assert_eq!(
            kinds(&replies)[..2],
            ["suggestion", "answer"],
            "{vague}: {replies:?}"
        );
        let suggestion = &replies[0];
        assert!(suggestion.text.contains(intro), "{suggestion:?}");
        assert!(suggestion.buttons.len() >= 2, "{suggestion:?}");
        for (i, (label, payload)) in suggestion.buttons.iter().enumerate() {
            assert_eq!(payload, &(i + 1).to_string(), "{suggestion:?}");
            assert!(
                suggestion.text.contains(&format!("{}. {label}", i + 1)),
                "{suggestion:?}"
            );
        }
    }
}

#[test]
fn a_hand_off_is_not_a_dead_end() {
    // (The customer's own words decide the language over the --lang hint: the greeting is in
    // the conversation's language.)
    for (locale, after, greeting, cancel) in [
        ("zh", "卡密无效怎么办", "你好", "取消排队"),
        (
            "en",
            "what do i do if my card key says invalid?",
            "hello there",
            "never mind",
        ),
    ] {
        let replies = chat(
            &["--lang", locale],
            &["/human", after, greeting, cancel, "/help"],
        );
        assert_eq!(
            kinds(&replies),
            ["handoff", "answer", "handoff", "handoff", "answer", "answer"],
            "{locale}: {replies:?}"
        );
        // (The help names the shop, 星辰卡铺 StarCard, in both languages.)
        assert!(
            replies[..5]
                .iter()
                .all(|r| has_han(&r.text) == (locale == "zh")),
            "{replies:?}"
        );
        // The clear question is answered while waiting; the greeting waits for the person.
        assert_eq!(
            replies[1].text,
            faq_answer("card_key.yaml", "card_key.invalid", locale)
        );
        assert!(replies[3]
            .text
            .contains(["已转达", "Got it"][usize::from(locale == "en")]));
        // Leaving the queue brings the bot back.
        assert!(replies[5].text.contains("/human"), "{replies:?}");
    }
    // The position is counted from one, in both languages.
    let zh = chat(&["--lang", "zh"], &["转人工"]);
    assert!(zh[0].text.contains("排在第 1 位"), "{zh:?}");
}

#[test]
fn the_number_of_the_decline_button_asks_for_a_person() {
    let replies = chat(&[], &["asdf qwerty zxcv", "1"]);
    assert_eq!(kinds(&replies), ["answer", "handoff"], "{replies:?}");
    assert_eq!(replies[0].buttons.len(), 1, "{replies:?}");
}

#[test]
fn lang_switches_the_language_of_the_answers() {
    let replies = chat(&[], &["/lang en", "卡密无效怎么办"]);
    assert_eq!(kinds(&replies), ["answer", "answer"], "{replies:?}");
    assert!(replies[0].text.contains("English"), "{replies:?}");
    assert_eq!(
        replies[1].text,
        faq_answer("card_key.yaml", "card_key.invalid", "en")
    );

    let replies = chat(&[], &["/lang zh", "my card key says invalid"]);
    assert_eq!(kinds(&replies), ["answer", "answer"], "{replies:?}");
    assert_eq!(
        replies[1].text,
        faq_answer("card_key.yaml", "card_key.invalid", "zh")
    );
}

#[test]
fn a_flow_asks_for_the_order_number_and_hands_off_with_it() {
    let cases = [
        ("我的卡密在哪里", "订单号"),
        ("where is my card key", "order number"),
    ];
    for (question, asks) in cases {
        let replies = chat(&[], &[question, "202411230001"]);
        assert_eq!(
            kinds(&replies),
            ["answer", "question", "answer", "handoff"],
            "{question}: {replies:?}"
        );
        assert!(replies[1].text.contains(asks), "{replies:?}");
        assert!(replies[2].text.contains("202411230001"), "{replies:?}");
    }
}

#[test]
fn a_flow_can_be_cancelled() {
    for (question, cancel, done) in [
        ("我的卡密在哪里", "取消", "已取消"),
        ("where is my card key", "cancel", "cancelled"),
    ] {
        let replies = chat(&[], &[question, cancel, "202411230001"]);
        assert_eq!(
            kinds(&replies)[..3],
            ["answer", "question", "answer"],
            "{question}: {replies:?}"
        );
        assert!(replies[2].text.contains(done), "{replies:?}");
        // The flow is over: the order number alone no longer hands off.
        assert!(
            !kinds(&replies).contains(&"handoff"),
            "{question}: {replies:?}"
        );
    }
}

#[test]
fn empty_input_and_blank_lines_end_cleanly_without_output() {
    assert!(chat(&[], &[]).is_empty());
    assert!(chat(&[], &["", "   ", "\t"]).is_empty());
}

#[test]
fn the_number_of_a_follow_up_button_asks_its_question() {
    let replies = chat(&[], &["你好", "2"]);
    let greeting = &replies[0];
    assert!(greeting.buttons.len() >= 2, "{replies:?}");
    // The button shows the entry's title and sends its question.
    assert_eq!(greeting.buttons[1].0, "查看我的卡密", "{replies:?}");
    assert_eq!(greeting.buttons[1].1, "我的卡密在哪里查看", "{replies:?}");
    // "2" was sent as the button's question, which the bot answers (not declines).
    assert!(replies.len() >= 2, "{replies:?}");
    assert_eq!(replies[1].kind, "answer", "{replies:?}");
    assert!(!replies[1].text.contains("回答不了"), "{replies:?}");
    assert_ne!(replies[1].text, greeting.text, "{replies:?}");
}

#[test]
fn a_conversation_goes_on_after_a_restart_mid_flow() {
    let data = tempfile::tempdir().unwrap();
    let db = database_in(data.path());
    let first = chat_on(&db, &[], &["我的卡密在哪里"]);
    assert_eq!(first.last().unwrap().kind, "question", "{first:?}");
    // A new process: the flow is still waiting for the order number.
    let second = chat_on(&db, &[], &["DD2024112300017"]);
    assert!(second[0].text.contains("DD2024112300017"), "{second:?}");
    assert_eq!(kinds(&second).last(), Some(&"handoff"), "{second:?}");
    // Another conversation on the same database starts afresh.
    let other = chat_on(&db, &["--conversation", "other"], &["DD2024112300017"]);
    assert!(!other.iter().any(|r| r.kind == "handoff"), "{other:?}");
}

#[test]
fn a_database_that_cannot_be_opened_is_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    // A directory where the database file should be.
    std::fs::create_dir(data.path().join("kefu.db")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["chat", "--json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KEFU_DATABASE_URL", database_in(data.path()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot open the database") && stderr.contains("kefu.db"),
        "{stderr}"
    );
}
