//! The subcommands: `ask`, `kb check`, `kb import`, `eval`.

use crate::config::Config;
use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kefu_app::knowledge::{build, embedder, load_kb, load_kb_keeping_faq};
use kefu_core::{Decision, Knowledge, Locale};
use kefu_knowledge::eval::{self, Report};
use kefu_knowledge::import::{read_labelled, write_faq_files, Labelled};
use kefu_knowledge::{faq, KnowledgeBase};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `kefu ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// A directory of FAQ files (default: the configured one, else the built-in knowledge base).
    #[arg(long, value_name = "DIR")]
    kb: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Answer in this language (zh or en) instead of the question's.
    #[arg(long, value_name = "LOCALE")]
    lang: Option<Locale>,
    /// How many candidates to show.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// The customer's question.
    #[arg(required = true, num_args = 1..)]
    text: Vec<String>,
}

/// Arguments of `kefu kb check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The directory of FAQ files (default: the configured one, else the built-in knowledge base).
    dir: Option<PathBuf>,
}

/// Arguments of `kefu kb import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// JSONL file of {"text": ..., "label": <id> or null} lines.
    #[arg(long, value_name = "FILE.jsonl", required = true, num_args = 1..)]
    labelled: Vec<PathBuf>,
    /// Directory to write FAQ files into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Arguments of `kefu eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The directory of FAQ files to evaluate (default: the configured one, else built-in).
    #[arg(long, value_name = "DIR")]
    kb: Option<PathBuf>,
    /// Labelled cases (JSONL) to measure.
    #[arg(long, value_name = "FILE.jsonl")]
    cases: PathBuf,
    /// Labelled cases (JSONL) to choose the answer threshold on.
    #[arg(long, value_name = "FILE.jsonl")]
    tune: Option<PathBuf>,
    /// What the threshold chosen with --tune maximises: `decisions` (correct decisions over
    /// all cases: right answers plus declined out-of-scope questions, so each case counts
    /// once) or `balanced` (in-scope accuracy + out-of-scope recall, each a rate).
    #[arg(long, value_name = "OBJECTIVE", default_value = "decisions")]
    objective: eval::Objective,
    /// Match by meaning too (as knowledge.semantic: true), and report the lexical-only
    /// figures of the same run beside.
    #[arg(long)]
    semantic: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Write every case the bot gets wrong at the threshold to this file (JSONL: text, label,
    /// outcome = wrong_answer / declined / answered_out_of_scope, best, confidence, rank), to
    /// see which questions or out-of-scope examples the FAQ files lack. With --semantic, the
    /// semantic run's.
    #[arg(long, value_name = "FILE.jsonl")]
    errors: Option<PathBuf>,
}

pub fn ask(config: &Config, args: AskArgs) -> anyhow::Result<ExitCode> {
    let kb = load_kb(config, args.kb.as_deref())?;
    let text = args.text.join(" ");
    let locale = args.lang.unwrap_or_else(|| Locale::detect(&text));
    let (decision, ranking) = kb.decide(&text, args.top.max(1));
    let answer = match (decision, ranking.top()) {
        (Decision::Answer, Some(top)) => kb.render_answer(&top.id, locale, &config.variables),
        _ => None,
    };
    let action = match (decision, ranking.top()) {
        (Decision::Answer, Some(top)) => kb.entry(&top.id).and_then(|e| e.action),
        _ => None,
    };
    if args.json {
        let out = json!({
            "query": text,
            "locale": locale,
            "decision": decision,
            "confidence": ranking.confidence(),
            "candidates": ranking.candidates,
            "answer": answer,
            "action": action,
        });
        out!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "decision: {decision} (confidence {:.3}; answer ≥ {}, suggest ≥ {})",
        ranking.confidence(),
        config.thresholds.answer,
        config.thresholds.suggest
    );
    out!("candidates:");
    if ranking.candidates.is_empty() {
        out!("  (none)");
    }
    for (i, c) in ranking.candidates.iter().enumerate() {
        out!(
            "  {}. {:<32} confidence {:.3}  score {:.3}  ~ {}",
            i + 1,
            c.id,
            c.confidence,
            c.score,
            c.matched_question
        );
    }
    match (decision, answer) {
        (Decision::Answer, Some(answer)) => {
            if let Some(action) = action {
                out!("action: {action}");
            }
            out!("answer ({locale}):\n{answer}");
        }
        (Decision::Suggest, _) => {
            out!("(the bot would ask \"did you mean\" with the candidates above)")
        }
        _ => out!("(the bot would say it does not know and offer a person)"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn check(config: &Config, args: CheckArgs) -> anyhow::Result<ExitCode> {
    // Every problem of every file, and the examples of the entries that could be read in
    // spite of them, in one run.
    let validation = config.validation();
    let (set, source, problems) = match args.dir.as_deref().or(config.knowledge.dir.as_deref()) {
        Some(dir) => {
            let (set, problems) = faq::check_dir(dir, &validation)?;
            (set, dir.display().to_string(), problems)
        }
        None => (
            kefu_knowledge::defaults::load(&validation)?,
            "the built-in knowledge base".to_string(),
            Vec::new(),
        ),
    };
    for d in &problems {
        eprintln!("{d}");
    }
    if set.entries.is_empty() {
        if problems.is_empty() {
            anyhow::bail!("{source} has no FAQ entries — see docs/faq-format.md for the format");
        }
        eprintln!(
            "\n{} problem(s) found; no entry could be read, so no example was tried. Fix \
             them and run `kefu kb check` again.",
            problems.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    let started = Instant::now();
    let examples: Vec<(String, String, String)> = set
        .entries
        .iter()
        .flat_map(|e| {
            e.entry
                .examples
                .iter()
                .zip(&e.example_locations)
                .map(|(x, loc)| (e.entry.id.clone(), x.clone(), loc.to_string()))
        })
        .collect();
    let files = set.files.clone();
    let file_of: std::collections::HashMap<String, PathBuf> = set
        .entries
        .iter()
        .map(|e| (e.entry.id.clone(), e.location.path.clone()))
        .collect();
    let out_of_scope = set.out_of_scope.len();
    let kb = build(config, set, embedder(config)?)?;
    let load_seconds = started.elapsed().as_secs_f64();

    // Per file: entries, questions, examples passed / only suggested / failed.
    let mut rows: std::collections::BTreeMap<PathBuf, [usize; 5]> =
        files.iter().map(|f| (f.clone(), [0; 5])).collect();
    for e in kb.entries() {
        let row = rows.entry(file_of[&e.id].clone()).or_default();
        row[0] += 1;
        row[1] += e.questions.len();
    }
    let mut failures = Vec::new();
    let mut weak = Vec::new();
    for (id, example, location) in &examples {
        let (decision, ranking) = kb.decide(example, 3);
        let row = rows.entry(file_of[id].clone()).or_default();
        let top = ranking.top().map(|c| c.id.as_str()).unwrap_or("(nothing)");
        if top == id && decision == Decision::Answer {
            row[2] += 1;
        } else if top == id {
            row[3] += 1;
            weak.push(format!(
                "{location}: example \"{example}\" matches `{id}` but only with confidence {:.2} (the bot would ask \"did you mean\") — add paraphrases like it to `{id}`",
                ranking.confidence()
            ));
        } else {
            row[4] += 1;
            failures.push(format!(
                "{location}: example \"{example}\" should match `{id}` but matched `{top}` (confidence {:.2}) — add paraphrases like it to `{id}`, or move it to `{top}` if that is right",
                ranking.confidence()
            ));
        }
    }
    out!("knowledge base: {source}");
    out!(
        "{:<40} {:>7} {:>9} {:>7} {:>9} {:>6}",
        "file",
        "entries",
        "questions",
        "passed",
        "suggested",
        "failed"
    );
    let mut total = [0usize; 5];
    for (file, row) in &rows {
        let name = file.display().to_string();
        out!(
            "{:<40} {:>7} {:>9} {:>7} {:>9} {:>6}",
            name,
            row[0],
            row[1],
            row[2],
            row[3],
            row[4]
        );
        for (t, v) in total.iter_mut().zip(row) {
            *t += v;
        }
    }
    out!(
        "{:<40} {:>7} {:>9} {:>7} {:>9} {:>6}",
        "total",
        total[0],
        total[1],
        total[2],
        total[3],
        total[4]
    );
    out!(
        "{} out-of-scope example(s); built in {:.2} s",
        out_of_scope,
        load_seconds
    );
    for w in &weak {
        out!("warning: {w}");
    }
    for f in &failures {
        eprintln!("{f}");
    }
    if failures.is_empty() && problems.is_empty() {
        out!("ok: every file is valid and every example matches its entry");
        return Ok(ExitCode::SUCCESS);
    }
    let mut summary = Vec::new();
    if !problems.is_empty() {
        summary.push(format!("{} problem(s) in the files", problems.len()));
    }
    if !failures.is_empty() {
        summary.push(format!("{} example(s) failed", failures.len()));
    }
    eprintln!(
        "\n{}; nothing was changed. Fix them and run `kefu kb check` again.",
        summary.join(", ")
    );
    if !problems.is_empty() {
        eprintln!("(examples were tried on the entries that could be read)");
    }
    Ok(ExitCode::FAILURE)
}

pub fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let mut items = Vec::new();
    for path in &args.labelled {
        items.extend(read_labelled(path)?);
    }
    let fallback = args.labelled[0]
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "imported".into());
    let summary = write_faq_files(&items, &args.out, &fallback)?;
    out!(
        "wrote {} file(s) to {}: {} entries, {} questions, {} out-of-scope utterances",
        summary.files.len(),
        args.out.display(),
        summary.entries,
        summary.questions,
        summary.out_of_scope
    );
    if summary.duplicates + summary.conflicts > 0 {
        out!(
            "dropped {} repeated utterance(s) and {} given a second, different label (the first label wins)",
            summary.duplicates, summary.conflicts
        );
    }
    out!(
        "next: write the answers, then run `kefu kb check {}`",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn progress(len: usize, what: &str) -> ProgressBar {
    if len < 500 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn score(kb: &KnowledgeBase, cases: &[Labelled], what: &str) -> Vec<eval::ScoredCase> {
    let bar = progress(cases.len(), what);
    let scored = eval::score_cases(kb, cases, |i| bar.set_position(i as u64));
    bar.finish_and_clear();
    scored
}

pub fn eval(config: &Config, args: EvalArgs) -> anyhow::Result<ExitCode> {
    let mut config = config.clone();
    config.knowledge.semantic |= args.semantic;
    let cases = read_labelled(&args.cases).context("cannot read the cases (--cases)")?;
    let tune = match &args.tune {
        Some(path) => Some(read_labelled(path).context("cannot read the tuning cases (--tune)")?),
        None => None,
    };
    // Opened before the (possibly long) load, so a path that cannot be written fails at once.
    let errors_file = match &args.errors {
        Some(path) => Some((
            path,
            std::fs::File::create(path)
                .with_context(|| format!("cannot write the errors to {}", path.display()))?,
        )),
        None => None,
    };
    let started = Instant::now();
    let (kb, faq) = load_kb_keeping_faq(&config, args.kb.as_deref(), config.knowledge.semantic)?;
    let load_seconds = started.elapsed().as_secs_f64();
    // The cases as ranked by `kb`, and the threshold to judge them at.
    let run = |kb: &KnowledgeBase, what: &str| -> (Vec<eval::ScoredCase>, f32) {
        let threshold = match &tune {
            Some(tune) => {
                eval::tune_threshold(&score(kb, tune, &format!("tuning{what}")), args.objective)
            }
            None => config.thresholds.answer,
        };
        (score(kb, &cases, &format!("evaluating{what}")), threshold)
    };
    let (scored, threshold) = run(&kb, "");
    let report = eval::report(&scored, threshold);
    // With the encoder, the same files without it, for comparison.
    let lexical = match faq {
        Some(set) => {
            let (scored, threshold) = run(&build(&config, set, Vec::new())?, " (lexical only)");
            Some(eval::report(&scored, threshold))
        }
        None => None,
    };
    if let Some((path, mut file)) = errors_file {
        let misses = eval::misses(&cases, &scored, threshold);
        let mut out = String::new();
        for miss in &misses {
            out.push_str(&serde_json::to_string(miss)?);
            out.push('\n');
        }
        std::io::Write::write_all(&mut file, out.as_bytes())
            .with_context(|| format!("cannot write the errors to {}", path.display()))?;
        eprintln!(
            "{} case(s) the bot gets wrong written to {}",
            misses.len(),
            path.display()
        );
    }
    if args.json {
        let mut out = serde_json::to_value(&report)?;
        if let Some(lexical) = &lexical {
            out["lexical"] = serde_json::to_value(lexical)?;
        }
        out!("{}", serde_json::to_string(&out)?);
    } else {
        print_report(&report, lexical.as_ref(), load_seconds, &kb);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &Report, lexical: Option<&Report>, load_seconds: f64, kb: &KnowledgeBase) {
    let stats = kb.stats();
    out!(
        "knowledge base: {} entries, {} questions, loaded in {load_seconds:.2} s (index {:.2} s, model {:.2} s{}, embeddings {:.2} s: {} cached, {} embedded)",
        kb.entries().len(),
        stats.questions,
        stats.index_seconds,
        stats.model_seconds,
        if stats.model_cached { " from the cache" } else { "" },
        stats.semantic_seconds,
        stats.embedded.cached,
        stats.embedded.embedded,
    );
    out!(
        "cases: {} ({} in scope, {} out of scope)",
        r.n,
        r.n_in_scope,
        r.n_oos
    );
    let rows: [Row; 10] = [
        ("threshold", |r| format!("{:.4}", r.threshold)),
        ("top1", |r| fmt4(r.top1)),
        ("in_scope_accuracy", |r| fmt4(r.in_scope_accuracy)),
        ("mrr", |r| fmt4(r.mrr)),
        ("recall_at_3", |r| fmt4(r.recall_at_3)),
        ("oos_recall", |r| fmt4(r.oos_recall)),
        ("oos_precision", |r| fmt4(r.oos_precision)),
        ("auroc", |r| fmt4(r.auroc)),
        ("p50_us", |r| fmt0(r.p50_us)),
        ("p99_us", |r| fmt0(r.p99_us)),
    ];
    match lexical {
        None => {
            for (name, get) in rows {
                out!("{name:<18} {}", get(r));
            }
        }
        Some(lex) => {
            out!("{:<18} {:>10} {:>12}", "", "semantic", "lexical only");
            for (name, get) in rows {
                out!("{name:<18} {:>10} {:>12}", get(r), get(lex));
            }
        }
    }
}

/// A line of the eval table: its name and how to print it from a report.
type Row = (&'static str, fn(&Report) -> String);

fn fmt4(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}"))
}

fn fmt0(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.0}"))
}
