//! Turning labelled utterances into FAQ files, so editors can seed a knowledge base from
//! existing chat logs.
//!
//! The input is JSONL, one `{"text": "...", "label": "<id>"}` per line, where `"label": null`
//! marks an out-of-scope utterance. Entries are grouped into one file per topic (the part of
//! the id before the first dot: `refund.policy` goes to `refund.yaml`); ids without a dot go
//! to one file named after the input file; out-of-scope utterances go to `out_of_scope.yaml`.
//! Answers become placeholders naming the id for the editor to write.

use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One labelled utterance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labelled {
    /// What the customer wrote.
    pub text: String,
    /// The FAQ id it should match, or `None` when the bot must not answer it.
    pub label: Option<String>,
}

/// Reads a labelled JSONL file; a bad line is an error naming the file and the line.
pub fn read_labelled(path: &Path) -> Result<Vec<Labelled>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| Error::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let item: Labelled = serde_json::from_str(line).map_err(|e| bad(line_problem(&e)))?;
        if item.text.trim().is_empty() {
            return Err(bad("empty \"text\" — remove the line or fill it in".into()));
        }
        if item.label.as_deref().is_some_and(|l| l.trim().is_empty()) {
            return Err(bad(
                "empty \"label\" — use null for out-of-scope utterances".into(),
            ));
        }
        out.push(item);
    }
    Ok(out)
}

/// What is wrong with a line that is not a labelled utterance, in words, and what one is.
fn line_problem(e: &serde_json::Error) -> String {
    const SHAPE: &str = "each line must be one JSON object like \
                         {\"text\": \"卡密无效怎么办\", \"label\": \"card_key.invalid\"}, with \
                         \"label\": null for a message the bot must not answer";
    // The line is one line of JSON, so its line number says nothing; the column does.
    let what = e.to_string();
    let what = what
        .rsplit_once(" at line ")
        .map_or(what.as_str(), |(what, _)| what);
    match e.classify() {
        serde_json::error::Category::Data => format!("{what} — {SHAPE}"),
        serde_json::error::Category::Eof => format!("not JSON: the line ends too early — {SHAPE}"),
        _ => format!("not JSON ({what}, at column {}) — {SHAPE}", e.column()),
    }
}

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Files written, sorted.
    pub files: Vec<PathBuf>,
    /// Entries created.
    pub entries: usize,
    /// Questions written into entries.
    pub questions: usize,
    /// Out-of-scope utterances written.
    pub out_of_scope: usize,
    /// Repeated utterances dropped (the same text twice with the same label).
    pub duplicates: usize,
    /// Utterances dropped because the same text was already given another label.
    pub conflicts: usize,
}

#[derive(Serialize)]
struct FileOut {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entries: Vec<EntryOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    out_of_scope: Vec<String>,
}

#[derive(Serialize)]
struct EntryOut {
    id: String,
    questions: Vec<String>,
    answer: BTreeMap<&'static str, String>,
}

/// Writes FAQ files for `items` into `out` (created if missing). Files already there with the
/// same names are replaced; nothing else in `out` is touched. `fallback_topic` names the file
/// for ids without a dot.
pub fn write_faq_files(
    items: &[Labelled],
    out: &Path,
    fallback_topic: &str,
) -> Result<ImportSummary, Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut summary = ImportSummary::default();
    // The first label a text was seen with wins; later conflicting uses are dropped so the
    // knowledge base never teaches one question two answers.
    let mut owner: HashMap<String, Option<String>> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut questions: HashMap<String, Vec<String>> = HashMap::new();
    let mut out_of_scope = Vec::new();
    for item in items {
        let text = item.text.trim().to_string();
        let key = text.to_lowercase();
        match owner.get(&key) {
            Some(label) if *label == item.label => {
                summary.duplicates += 1;
                continue;
            }
            Some(_) => {
                summary.conflicts += 1;
                continue;
            }
            None => {
                owner.insert(key, item.label.clone());
            }
        }
        match &item.label {
            Some(label) => {
                let label = label.trim().to_string();
                if !questions.contains_key(&label) {
                    order.push(label.clone());
                }
                questions.entry(label).or_default().push(text);
            }
            None => out_of_scope.push(text),
        }
    }
    let mut files: BTreeMap<String, FileOut> = BTreeMap::new();
    for id in order {
        let topic = match id.split_once('.') {
            Some((topic, _)) => topic.to_string(),
            None => fallback_topic.to_string(),
        };
        let qs = questions.remove(&id).unwrap_or_default();
        summary.entries += 1;
        summary.questions += qs.len();
        let answer = BTreeMap::from([
            ("zh", format!("（待填写：{id} 的答案）")),
            ("en", format!("(to be written: the answer for {id})")),
        ]);
        files
            .entry(topic)
            .or_insert_with(|| FileOut {
                entries: Vec::new(),
                out_of_scope: Vec::new(),
            })
            .entries
            .push(EntryOut {
                id,
                questions: qs,
                answer,
            });
    }
    if !out_of_scope.is_empty() {
        summary.out_of_scope = out_of_scope.len();
        files
            .entry("out_of_scope".to_string())
            .or_insert_with(|| FileOut {
                entries: Vec::new(),
                out_of_scope: Vec::new(),
            })
            .out_of_scope
            .extend(out_of_scope);
    }
    for (topic, content) in files {
        let path = out.join(format!("{}.yaml", file_stem(&topic)));
        let yaml = serde_yaml::to_string(&content).map_err(|e| Error::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let header = "# Imported from labelled utterances by `kefu kb import`.\n\
                      # Write the answers, then run `kefu kb check` on this directory.\n";
        std::fs::write(&path, format!("{header}{yaml}")).map_err(io(&path))?;
        summary.files.push(path);
    }
    summary.files.sort();
    Ok(summary)
}

/// A file name for a topic: letters, digits, `_` and `-` kept, anything else replaced.
fn file_stem(topic: &str) -> String {
    let stem: String = topic
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.is_empty() {
        "imported".to_string()
    } else {
        stem
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(text: &str, label: Option<&str>) -> Labelled {
        Labelled {
            text: text.into(),
            label: label.map(Into::into),
        }
    }

    #[test]
    fn reports_bad_lines_with_their_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cases.jsonl");
        std::fs::write(
            &path,
            "{\"text\": \"hi\", \"label\": null}\n\n{\"text\": 3}\n",
        )
        .unwrap();
        match read_labelled(&path) {
            Err(Error::BadLine { line, .. }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn groups_by_topic_and_drops_duplicates_and_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let items = [
            item("where is my key", Some("order.card_key_lookup")),
            item("Where is my key ", Some("order.card_key_lookup")),
            item("where is my key", Some("refund.request")),
            item("refund me", Some("refund.request")),
            item("nice weather", None),
            item("translate this", Some("translate")),
        ];
        let s = write_faq_files(&items, dir.path(), "clinc").unwrap();
        assert_eq!(s.entries, 3);
        assert_eq!(s.questions, 3);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.conflicts, 1);
        assert_eq!(s.out_of_scope, 1);
        let names: Vec<_> = s
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "clinc.yaml",
                "order.yaml",
                "out_of_scope.yaml",
                "refund.yaml"
            ]
        );
        let order = std::fs::read_to_string(dir.path().join("order.yaml")).unwrap();
        assert!(order.contains("id: order.card_key_lookup"), "{order}");
        assert!(
            order.contains("the answer for order.card_key_lookup"),
            "{order}"
        );
    }
}
