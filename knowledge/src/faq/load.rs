//! Reading FAQ files into validated entries.
//!
//! [`yaml::parse`](super::yaml::parse) turns each file into a located tree; a [`Walker`] walks
//! that tree into entry drafts, reporting every problem it meets; [`Checker::finish`] then runs
//! the checks that need all entries at once (duplicate ids and questions, follow-ups) and either
//! returns the [`FaqSet`] or every diagnostic, sorted by file, line and column.

use super::yaml::{self, Kind, Node, ScalarType};
use super::{
    Diagnostic, FaqSet, LocatedEntry, Location, OutOfScope, ValidationOptions, VocabularyRule,
};
use crate::text::edit_distance;
use crate::Error;
use kefu_core::knowledge::{Action, Answers, FaqEntry, Priority};
use kefu_core::template::placeholders;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

/// Loads and validates every `*.yaml` / `*.yml` file under `dir` (recursively, sorted by path).
///
/// Names starting with `.` (hidden files and directories) are skipped, and symbolic links to
/// directories are not followed. `dir` may also name a single FAQ file. A directory without FAQ
/// files gives an empty set; whether that is acceptable is the caller's decision.
///
/// # Errors
///
/// [`Error::Io`] (with the path) when the directory or a file cannot be read, and
/// [`Error::Invalid`] with every problem of every file when any file has one.
pub fn load_dir(dir: &Path, options: &ValidationOptions) -> Result<FaqSet, Error> {
    let (set, problems) = check_dir(dir, options)?;
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(Error::Invalid(problems))
    }
}

/// Like [`load_dir`], for an editor's check: every problem of every file, and the entries
/// that could be read in spite of them (complete, with a well-formed id), so their examples
/// can be tried at the same time.
///
/// # Errors
///
/// [`Error::Io`] (with the path) when the directory or a file cannot be read.
pub fn check_dir(
    dir: &Path,
    options: &ValidationOptions,
) -> Result<(FaqSet, Vec<Diagnostic>), Error> {
    let files = faq_files(dir)?;
    let mut checker = Checker::new(options);
    for path in files {
        let bytes = fs::read(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => checker.add_file(&path, &text),
            Err(e) => checker.add_unreadable(&path, e.as_bytes(), e.utf8_error().valid_up_to()),
        }
    }
    Ok(checker.check())
}

/// Validates FAQ files given as (path, text) pairs, such as files built into the binary; the
/// paths are only used in diagnostics.
///
/// # Errors
///
/// [`Error::Invalid`] with every problem of every file when any file has one.
pub fn load_sources(
    sources: impl IntoIterator<Item = (PathBuf, String)>,
    options: &ValidationOptions,
) -> Result<FaqSet, Error> {
    let mut checker = Checker::new(options);
    for (path, text) in sources {
        checker.add_file(&path, &text);
    }
    checker.finish().map_err(Error::Invalid)
}

/// Parses and validates one file's text as if it were the only file (used by tests and tools).
///
/// # Errors
///
/// Every problem found, sorted by line and column.
pub fn parse_file_text(
    path: &Path,
    text: &str,
    options: &ValidationOptions,
) -> Result<FaqSet, Vec<Diagnostic>> {
    let mut checker = Checker::new(options);
    checker.add_file(path, text);
    checker.finish()
}

/// The FAQ files under `dir`, sorted; `dir` itself when it is a file.
fn faq_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    if fs::metadata(dir).map_err(io)?.is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut files = Vec::new();
    collect_faq_files(dir, &mut files)?;
    files.sort();
    Ok(files)
}

fn collect_faq_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        if file_type.is_dir() {
            collect_faq_files(&path, files)?;
        } else if is_faq_file(&path) && path.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

fn is_faq_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// The keys a mapping may have, and how to talk about them.
struct Keys {
    /// The known keys, in the order documentation lists them.
    names: &'static [&'static str],
    /// Common wrong spellings that edit distance would not catch, and what they mean.
    aliases: &'static [(&'static str, &'static str)],
    /// What the mapping is, for messages ("an entry").
    what: &'static str,
    /// What its keys are called ("key", "locale").
    key_noun: &'static str,
    /// How to write the mapping when something else was written.
    shape: &'static str,
}

const TOP_KEYS: Keys = Keys {
    names: &["entries", "out_of_scope", "near_misses", "vocabulary"],
    aliases: &[
        ("synonyms", "vocabulary"),
        ("slang", "vocabulary"),
        ("abbreviations", "vocabulary"),
        ("faq", "entries"),
        ("faqs", "entries"),
        ("items", "entries"),
        ("questions", "entries"),
        ("oos", "out_of_scope"),
        ("out-of-scope", "out_of_scope"),
        ("near-misses", "near_misses"),
        ("near_miss", "near_misses"),
    ],
    what: "the file",
    key_noun: "top-level key",
    shape: "start the file with `entries:` and indent the list of entries under it",
};

const ENTRY_KEYS: Keys = Keys {
    names: &[
        "id",
        "questions",
        "answer",
        "title",
        "skill_group",
        "action",
        "priority",
        "follow_ups",
        "tags",
        "examples",
    ],
    aliases: &[
        ("group", "skill_group"),
        ("skill", "skill_group"),
        ("followups", "follow_ups"),
        ("follow-ups", "follow_ups"),
        ("related", "follow_ups"),
        ("question", "questions"),
        ("answers", "answer"),
        ("titles", "title"),
        ("label", "title"),
        ("name", "title"),
    ],
    what: "an entry",
    key_noun: "key",
    shape: "write each entry as `- id: topic.name` followed by its other keys, indented alike",
};

const ANSWER_KEYS: Keys = Keys {
    names: &["zh", "en"],
    aliases: &[
        ("cn", "zh"),
        ("zh-cn", "zh"),
        ("zh_cn", "zh"),
        ("zh-hans", "zh"),
        ("chinese", "zh"),
        ("中文", "zh"),
        ("en-us", "en"),
        ("en_us", "en"),
        ("en-gb", "en"),
        ("english", "en"),
        ("英文", "en"),
    ],
    what: "`answer`",
    key_noun: "locale",
    shape: "write `answer:` with `zh: 中文回答` and `en: English answer` indented under it",
};

const TITLE_KEYS: Keys = Keys {
    names: ANSWER_KEYS.names,
    aliases: ANSWER_KEYS.aliases,
    what: "`title`",
    key_noun: "locale",
    shape: "write `title:` with `zh: 短标题` and/or `en: Short title` indented under it",
};

/// An entry as read, possibly incomplete; becomes a [`LocatedEntry`] when the set is valid.
#[derive(Default)]
struct Draft {
    /// The id as written (even if badly formed), for the cross-entry checks.
    id: Option<(String, Location)>,
    questions: Vec<(String, Location)>,
    answer: Answers,
    title: kefu_core::Titles,
    skill_group: Option<String>,
    action: Option<Action>,
    priority: Option<Priority>,
    follow_ups: Vec<(String, Location)>,
    tags: Vec<String>,
    examples: Vec<(String, Location)>,
}

/// The ids a file seems to define (`id: …` lines), for a file the parser gave up on.
fn ids_in_text(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim_start().trim_start_matches('-').trim_start();
            let value = rest.strip_prefix("id:")?;
            let value = value.split('#').next()?.trim().trim_matches(['"', '\'']);
            (!value.is_empty()).then(|| value.to_string())
        })
        .collect()
}

impl Draft {
    /// Whether it has what an entry must have, so it can be matched.
    fn complete(&self) -> bool {
        self.id.is_some()
            && !self.questions.is_empty()
            && !self.answer.zh.is_empty()
            && !self.answer.en.is_empty()
    }

    /// The entry's id for messages, or `(no id)`.
    fn name(&self) -> &str {
        self.id.as_ref().map_or("(no id)", |(id, _)| id)
    }

    fn into_located(self) -> Option<LocatedEntry> {
        let (id, location) = self.id?;
        let (examples, example_locations) = self.examples.into_iter().unzip();
        Some(LocatedEntry {
            entry: FaqEntry {
                id,
                questions: self.questions.into_iter().map(|(q, _)| q).collect(),
                answer: self.answer,
                title: self.title,
                skill_group: self.skill_group,
                action: self.action,
                priority: self.priority,
                follow_ups: self.follow_ups.into_iter().map(|(f, _)| f).collect(),
                tags: self.tags,
                examples,
            },
            location,
            example_locations,
        })
    }
}

/// Collects files, then runs the cross-entry checks.
struct Checker<'o> {
    options: &'o ValidationOptions,
    files: Vec<PathBuf>,
    drafts: Vec<Draft>,
    out_of_scope: Vec<OutOfScope>,
    vocabulary: Vec<VocabularyRule>,
    diagnostics: Vec<Diagnostic>,
    /// Ids found by a plain text search in files that could not be parsed, so follow-ups
    /// naming them are not reported as unknown while the rest is still checked.
    unparsed_ids: BTreeSet<String>,
}

impl<'o> Checker<'o> {
    fn new(options: &'o ValidationOptions) -> Self {
        Checker {
            options,
            files: Vec::new(),
            drafts: Vec::new(),
            out_of_scope: Vec::new(),
            vocabulary: Vec::new(),
            diagnostics: Vec::new(),
            unparsed_ids: BTreeSet::new(),
        }
    }

    fn add_file(&mut self, path: &Path, text: &str) {
        self.files.push(path.to_path_buf());
        let parsed = yaml::parse(text);
        if parsed.failed() {
            self.unparsed_ids.extend(ids_in_text(text));
        }
        let mut walker = Walker {
            path,
            options: self.options,
            diagnostics: &mut self.diagnostics,
        };
        for p in parsed.problems {
            walker.report(p.line, p.column, p.message, p.fix);
        }
        if let Some(root) = &parsed.root {
            walker.file(
                root,
                &mut self.drafts,
                &mut self.out_of_scope,
                &mut self.vocabulary,
            );
        }
    }

    /// A file whose bytes are not UTF-8 from `valid_up_to` on.
    fn add_unreadable(&mut self, path: &Path, bytes: &[u8], valid_up_to: usize) {
        self.files.push(path.to_path_buf());
        self.unparsed_ids
            .extend(ids_in_text(&String::from_utf8_lossy(bytes)));
        let valid = String::from_utf8_lossy(&bytes[..valid_up_to.min(bytes.len())]);
        let line = valid.matches('\n').count() + 1;
        let column = valid.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.diagnostics.push(Diagnostic {
            location: Location {
                path: path.to_path_buf(),
                line,
                column,
            },
            message: "the file is not UTF-8 text".to_string(),
            fix: "save it with the UTF-8 encoding (most editors offer it under “Save with \
                  encoding”)"
                .to_string(),
        });
    }

    fn finish(self) -> Result<FaqSet, Vec<Diagnostic>> {
        let (set, problems) = self.check();
        if problems.is_empty() {
            Ok(set)
        } else {
            Err(problems)
        }
    }

    /// Runs the cross-entry checks: every problem, sorted, and the entries that are usable
    /// in spite of them.
    fn check(mut self) -> (FaqSet, Vec<Diagnostic>) {
        self.check_ids();
        self.check_questions();
        self.check_follow_ups();
        self.check_out_of_scope();
        self.check_vocabulary();
        self.diagnostics.sort();
        self.diagnostics.dedup();
        // An entry the checks found nothing wrong with in its own lines is usable; ids that
        // are duplicated keep their first entry only.
        let bad_lines: BTreeSet<(PathBuf, usize)> = self
            .diagnostics
            .iter()
            .map(|d| (d.location.path.clone(), d.location.line))
            .collect();
        let mut seen = BTreeSet::new();
        let entries = self
            .drafts
            .into_iter()
            .filter(|d| d.complete())
            .filter_map(Draft::into_located)
            .filter(|e| {
                let own = (e.location.path.clone(), e.location.line);
                !bad_lines.contains(&own) && seen.insert(e.entry.id.clone())
            })
            .collect();
        let set = FaqSet {
            entries,
            out_of_scope: self.out_of_scope,
            vocabulary: self.vocabulary,
            files: self.files,
        };
        (set, self.diagnostics)
    }

    fn error(&mut self, location: &Location, message: String, fix: String) {
        self.diagnostics.push(Diagnostic {
            location: location.clone(),
            message,
            fix,
        });
    }

    /// Each id once across all files; reported at the later one.
    fn check_ids(&mut self) {
        let mut first: HashMap<String, Location> = HashMap::new();
        let mut problems = Vec::new();
        for (id, location) in self.drafts.iter().filter_map(|d| d.id.as_ref()) {
            match first.get(id) {
                Some(earlier) => problems.push((
                    location.clone(),
                    format!("duplicate id `{id}`: already used at {}", line_of(earlier)),
                    "give each entry its own id, or merge the two entries".to_string(),
                )),
                None => {
                    first.insert(id.clone(), location.clone());
                }
            }
        }
        for (location, message, fix) in problems {
            self.error(&location, message, fix);
        }
    }

    /// A question leads to one entry: no repeats within an entry or across entries.
    fn check_questions(&mut self) {
        let mut seen: HashMap<String, (usize, &Location)> = HashMap::new();
        let mut problems = Vec::new();
        for (index, draft) in self.drafts.iter().enumerate() {
            for (question, location) in &draft.questions {
                let key = question_key(question);
                let Some(&(owner, earlier)) = seen.get(&key) else {
                    seen.insert(key, (index, location));
                    continue;
                };
                problems.push(if owner == index {
                    (
                        location.clone(),
                        format!(
                            "question `{question}` appears twice in this entry (first on line {})",
                            earlier.line
                        ),
                        "remove one of them".to_string(),
                    )
                } else {
                    (
                        location.clone(),
                        format!(
                            "question `{question}` is also a question of `{}` ({})",
                            self.drafts[owner].name(),
                            line_of(earlier)
                        ),
                        "a question must lead to exactly one entry: keep it in the entry that \
                         answers it and remove it from the other"
                            .to_string(),
                    )
                });
            }
        }
        for (location, message, fix) in problems {
            self.error(&location, message, fix);
        }
    }

    /// Follow-ups name other entries that exist.
    fn check_follow_ups(&mut self) {
        let ids: BTreeSet<&str> = self
            .drafts
            .iter()
            .filter_map(|d| d.id.as_ref().map(|(id, _)| id.as_str()))
            .collect();
        let mut problems = Vec::new();
        for draft in &self.drafts {
            for (follow_up, location) in &draft.follow_ups {
                if draft.id.as_ref().is_some_and(|(id, _)| id == follow_up) {
                    problems.push((
                        location.clone(),
                        format!("entry `{follow_up}` lists itself as a follow-up"),
                        "remove it: follow-ups suggest other entries".to_string(),
                    ));
                } else if !ids.contains(follow_up.as_str())
                    && !self.unparsed_ids.contains(follow_up.as_str())
                {
                    let fix = match closest(follow_up, ids.iter().copied(), &[]) {
                        Some(id) => format!("did you mean `{id}`?"),
                        None => "use the id of an entry defined in one of the FAQ files, or \
                                 remove it"
                            .to_string(),
                    };
                    problems.push((
                        location.clone(),
                        format!("follow-up `{follow_up}` is not the id of any entry"),
                        fix,
                    ));
                }
            }
        }
        for (location, message, fix) in problems {
            self.error(&location, message, fix);
        }
    }

    /// An out-of-scope question must not also be an entry's question.
    fn check_out_of_scope(&mut self) {
        let mut questions: HashMap<String, (&str, &Location)> = HashMap::new();
        for draft in &self.drafts {
            for (question, location) in &draft.questions {
                questions
                    .entry(question_key(question))
                    .or_insert((draft.name(), location));
            }
        }
        let mut problems = Vec::new();
        for oos in &self.out_of_scope {
            if let Some((id, location)) = questions.get(&question_key(&oos.text)) {
                problems.push((
                    oos.location.clone(),
                    format!(
                        "{} `{}` is also a question of `{id}` ({})",
                        if oos.near_miss {
                            "near miss"
                        } else {
                            "out-of-scope question"
                        },
                        oos.text,
                        line_of(location)
                    ),
                    format!(
                        "remove it from `{}` or from the entry",
                        if oos.near_miss {
                            "near_misses"
                        } else {
                            "out_of_scope"
                        }
                    ),
                ));
            }
        }
        for (location, message, fix) in problems {
            self.error(&location, message, fix);
        }
    }
}

impl Checker<'_> {
    /// A form stands for one word; no word contains a form (it would be rewritten again).
    /// Rules with problems are dropped, so a table with errors is never applied.
    fn check_vocabulary(&mut self) {
        let mut problems = Vec::new();
        let mut first: HashMap<String, &VocabularyRule> = HashMap::new();
        let mut bad: BTreeSet<usize> = BTreeSet::new();
        for (i, rule) in self.vocabulary.iter().enumerate() {
            let form = crate::text::normalize(&rule.form);
            match first.get(&form) {
                Some(earlier) if earlier.word != rule.word => {
                    bad.insert(i);
                    problems.push((
                        rule.location.clone(),
                        format!(
                            "`{}` already stands for `{}` ({}), here for `{}`",
                            rule.form,
                            earlier.word,
                            line_of(&earlier.location),
                            rule.word
                        ),
                        "keep one meaning per form: remove one of the two lines".to_string(),
                    ));
                }
                Some(_) => {}
                None => {
                    first.insert(form, rule);
                }
            }
        }
        let table = crate::vocabulary::Vocabulary::new(
            self.vocabulary
                .iter()
                .map(|r| (r.form.as_str(), r.word.as_str())),
        );
        for (form, message) in table.conflicts() {
            for (i, rule) in self.vocabulary.iter().enumerate() {
                if crate::text::normalize(&rule.form).trim() == form && bad.insert(i) {
                    problems.push((
                        rule.location.clone(),
                        message.clone(),
                        "write the final form of the word, or drop the rule it contains"
                            .to_string(),
                    ));
                }
            }
        }
        for (location, message, fix) in problems {
            self.error(&location, message, fix);
        }
        let mut i = 0;
        self.vocabulary.retain(|_| {
            i += 1;
            !bad.contains(&(i - 1))
        });
    }
}

/// Walks one file's tree, reporting problems into `diagnostics`.
struct Walker<'a> {
    path: &'a Path,
    options: &'a ValidationOptions,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl Walker<'_> {
    fn location(&self, node: &Node) -> Location {
        Location {
            path: self.path.to_path_buf(),
            line: node.line,
            column: node.column,
        }
    }

    fn report(&mut self, line: usize, column: usize, message: String, fix: String) {
        self.diagnostics.push(Diagnostic {
            location: Location {
                path: self.path.to_path_buf(),
                line,
                column,
            },
            message,
            fix,
        });
    }

    fn error(&mut self, node: &Node, message: String, fix: impl Into<String>) {
        self.report(node.line, node.column, message, fix.into());
    }

    /// The top level: `entries`, `out_of_scope`, `near_misses` and `vocabulary`.
    fn file(
        &mut self,
        root: &Node,
        drafts: &mut Vec<Draft>,
        out_of_scope: &mut Vec<OutOfScope>,
        vocabulary: &mut Vec<VocabularyRule>,
    ) {
        if root.kind == Kind::Null {
            return;
        }
        let Some(fields) = self.fields(root, &TOP_KEYS) else {
            return;
        };
        for (key, _, value) in fields {
            match key {
                "entries" => {
                    for item in self.list(value, "entries") {
                        drafts.extend(self.entry(item));
                    }
                }
                "out_of_scope" => {
                    let texts = self.texts(value, "out_of_scope", "out-of-scope question");
                    out_of_scope.extend(texts.into_iter().map(|(text, location)| OutOfScope {
                        text,
                        location,
                        near_miss: false,
                    }));
                }
                "near_misses" => {
                    let texts = self.texts(value, "near_misses", "near miss");
                    out_of_scope.extend(texts.into_iter().map(|(text, location)| OutOfScope {
                        text,
                        location,
                        near_miss: true,
                    }));
                }
                "vocabulary" => self.vocabulary(value, vocabulary),
                _ => {} // `fields` returns known keys only
            }
        }
    }

    /// `vocabulary:`: a mapping from the word the FAQ uses to the ways customers write it
    /// (one text or a list).
    fn vocabulary(&mut self, node: &Node, rules: &mut Vec<VocabularyRule>) {
        const SHAPE: &str = "write `vocabulary:` as lines of `word: [form, form]`, e.g. \
                             `卡密: [km, 卡蜜]`";
        let pairs = match &node.kind {
            Kind::Map(pairs) => pairs,
            Kind::Null => return,
            other => {
                self.error(
                    node,
                    format!("`vocabulary` must be a mapping, found {}", other.describe()),
                    SHAPE,
                );
                return;
            }
        };
        for (key, value) in pairs {
            let Some(word) = self.text(key, "vocabulary word") else {
                continue;
            };
            let forms = match &value.kind {
                Kind::Seq(items) if !items.is_empty() => self.texts(value, &word, "form"),
                Kind::Seq(_) | Kind::Null => {
                    self.error(
                        value,
                        format!("no forms for `{word}`"),
                        format!("list how customers write `{word}`: `{word}: [form, form]`"),
                    );
                    continue;
                }
                _ => self
                    .text(value, "form")
                    .map(|t| vec![(t, self.location(value))])
                    .unwrap_or_default(),
            };
            for (form, location) in forms {
                if crate::text::normalize(&form) == crate::text::normalize(&word) {
                    self.error(
                        value,
                        format!("`{form}` is the word `{word}` itself"),
                        "remove it: list only other ways of writing the word".to_string(),
                    );
                    continue;
                }
                rules.push(VocabularyRule {
                    form,
                    word: word.clone(),
                    location,
                });
            }
        }
    }

    /// One entry mapping.
    fn entry(&mut self, node: &Node) -> Option<Draft> {
        let fields = self.fields(node, &ENTRY_KEYS)?;
        let mut draft = Draft::default();
        for &(key, _, value) in &fields {
            match key {
                "id" => draft.id = self.id(value),
                "questions" => draft.questions = self.questions(value),
                "answer" => draft.answer = self.answer(value),
                "title" => draft.title = self.title(value),
                "skill_group" => draft.skill_group = self.skill_group(value),
                "action" => draft.action = self.named(value, "action", &Action::ALL, Action::name),
                "priority" => {
                    draft.priority = self.named(value, "priority", &Priority::ALL, Priority::name)
                }
                "follow_ups" => draft.follow_ups = self.texts(value, "follow_ups", "follow-up"),
                "tags" => {
                    draft.tags = self
                        .texts(value, "tags", "tag")
                        .into_iter()
                        .map(|(t, _)| t)
                        .collect()
                }
                "examples" => draft.examples = self.texts(value, "examples", "example"),
                _ => {} // `fields` returns known keys only
            }
        }
        for required in ["id", "questions", "answer"] {
            if !fields.iter().any(|(key, _, _)| *key == required) {
                self.missing(node, &draft, required);
            }
        }
        Some(draft)
    }

    fn missing(&mut self, node: &Node, draft: &Draft, key: &str) {
        let fix = match key {
            "id" => "add `id: topic.name` as the entry's first line",
            "questions" => {
                "add `questions:` with at least one question, each on a line starting with `- `"
            }
            _ => "add `answer:` with `zh: 中文回答` and `en: English answer` indented under it",
        };
        let whose = match &draft.id {
            Some((id, _)) => format!("entry `{id}`"),
            None => "this entry".to_string(),
        };
        self.error(node, format!("{whose} has no `{key}`"), fix);
    }

    /// The id: text, non-empty, one word (see [`id_problem`]).
    fn id(&mut self, node: &Node) -> Option<(String, Location)> {
        let (text, ty) = self.scalar(node, "`id`")?;
        let id = text.trim().to_string();
        if ty != ScalarType::Str {
            self.error(
                node,
                format!("`id` must be text, found {} `{id}`", ty.describe()),
                "use a name like `topic.name`, for example `orders.late_delivery`",
            );
            return None;
        }
        if id.is_empty() {
            self.empty(node, "`id`");
            return None;
        }
        if let Some((message, fix)) = id_problem(&id) {
            self.error(node, message, fix);
        }
        Some((id, self.location(node)))
    }

    /// `questions`: a non-empty list of non-empty texts.
    fn questions(&mut self, node: &Node) -> Vec<(String, Location)> {
        let questions = self.texts(node, "questions", "question");
        let empty = match &node.kind {
            Kind::Null => true,
            Kind::Seq(items) => items.is_empty(),
            _ => false, // already reported as not a list
        };
        if empty {
            self.error(
                node,
                "`questions` is empty".to_string(),
                "list at least one question, each on a line starting with `- `; the first is \
                 the canonical one",
            );
        }
        questions
    }

    /// `answer`: a mapping with exactly `zh` and `en`, each non-empty, using known variables.
    fn answer(&mut self, node: &Node) -> Answers {
        let mut answers = Answers::default();
        let Some(fields) = self.fields(node, &ANSWER_KEYS) else {
            return answers;
        };
        for &(locale, _, value) in &fields {
            let Some(text) = self.text(value, &format!("`{locale}` answer")) else {
                continue;
            };
            self.check_variables(value, locale, &text);
            match locale {
                "zh" => answers.zh = text,
                "en" => answers.en = text,
                _ => {} // `fields` returns known locales only
            }
        }
        for locale in ANSWER_KEYS.names {
            if !fields.iter().any(|(key, _, _)| key == locale) {
                let language = if *locale == "zh" {
                    "Chinese"
                } else {
                    "English"
                };
                self.error(
                    node,
                    format!("`answer` has no `{locale}` text"),
                    format!(
                        "add `{locale}:` with the {language} answer under `answer`; every \
                         entry answers in both zh and en"
                    ),
                );
            }
        }
        answers
    }

    /// `title`: a mapping with `zh` and/or `en`, each short, non-empty text.
    fn title(&mut self, node: &Node) -> kefu_core::Titles {
        let mut titles = kefu_core::Titles::default();
        let Some(fields) = self.fields(node, &TITLE_KEYS) else {
            return titles;
        };
        for &(locale, _, value) in &fields {
            let Some(text) = self.text(value, &format!("`{locale}` title")) else {
                continue;
            };
            let text = text.trim().to_string();
            if text.chars().count() > 40 || text.contains('\n') {
                self.error(
                    value,
                    format!("the `{locale}` title is longer than a button can show"),
                    "keep a title to one line of at most 40 characters, e.g. `查看卡密` or \
                     `Find my card key`",
                );
            }
            match locale {
                "zh" => titles.zh = Some(text),
                "en" => titles.en = Some(text),
                _ => {} // `fields` returns known locales only
            }
        }
        titles
    }

    /// Every `{variable}` in an answer must be configured.
    fn check_variables(&mut self, node: &Node, locale: &str, text: &str) {
        let known = &self.options.variables;
        let unknown: BTreeSet<String> = placeholders(text)
            .into_iter()
            .filter(|name| !known.contains(name))
            .collect();
        for name in unknown {
            let listed = known
                .iter()
                .map(|v| format!("{{{v}}}"))
                .collect::<Vec<_>>()
                .join(", ");
            let rest = if known.is_empty() {
                format!("define `{name}` under `variables` in the config")
            } else {
                format!("use one of {listed} or define `{name}` under `variables` in the config")
            };
            let candidates = known.iter().map(String::as_str);
            let fix = suggest_or(&name, candidates, |v| format!("{{{v}}}"), &rest);
            self.error(
                node,
                format!("unknown template variable `{{{name}}}` in the `{locale}` answer"),
                fix,
            );
        }
    }

    /// `skill_group`: one of the configured groups.
    fn skill_group(&mut self, node: &Node) -> Option<String> {
        let group = self.text(node, "`skill_group`")?;
        let groups = &self.options.skill_groups;
        if groups.contains(&group) {
            return Some(group);
        }
        let listed = groups
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let rest = format!(
            "use one of {listed} (skill groups are configured in kefu's config under \
             `skill_groups`)"
        );
        let fix = suggest_or(&group, groups.iter().map(String::as_str), quoted, &rest);
        self.error(node, format!("unknown skill group `{group}`"), fix);
        None
    }

    /// A value that must be one of a fixed set of names (`action`, `priority`).
    fn named<T: Copy>(
        &mut self,
        node: &Node,
        key: &str,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> Option<T> {
        let text = self.text(node, &format!("`{key}`"))?;
        if let Some(found) = all.iter().copied().find(|v| name(*v) == text) {
            return Some(found);
        }
        let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
        let rest = format!("use one of {}", names.join(", "));
        let fix = suggest_or(&text, names.iter().copied(), quoted, &rest);
        self.error(node, format!("unknown {key} `{text}`"), fix);
        None
    }

    /// The known keys of a mapping with their nodes, reporting non-mappings, keys that are not
    /// names, unknown keys and repeated keys. `None` when `node` is not a mapping.
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        keys: &Keys,
    ) -> Option<Vec<(&'static str, &'n Node, &'n Node)>> {
        let Kind::Map(pairs) = &node.kind else {
            self.error(
                node,
                format!(
                    "{} must be a mapping, found {}",
                    capitalize(keys.what),
                    node.kind.describe()
                ),
                keys.shape,
            );
            return None;
        };
        let mut fields = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (key, value) in pairs {
            let Kind::Scalar(name, _) = &key.kind else {
                self.error(
                    key,
                    format!(
                        "a {} must be a plain name, found {}",
                        keys.key_noun,
                        key.kind.describe()
                    ),
                    keys.shape,
                );
                continue;
            };
            if let Some(line) = seen.insert(name, key.line) {
                self.error(
                    key,
                    format!(
                        "`{name}` appears twice in {} (first on line {line})",
                        keys.what
                    ),
                    format!("keep one `{name}` and remove the other"),
                );
                continue;
            }
            match keys.names.iter().find(|known| *known == name) {
                Some(known) => fields.push((*known, key, value)),
                None => self.unknown_key(key, name, keys),
            }
        }
        Some(fields)
    }

    fn unknown_key(&mut self, key: &Node, name: &str, keys: &Keys) {
        let fix = match closest(name, keys.names.iter().copied(), keys.aliases) {
            Some(known) => format!("did you mean `{known}`?"),
            None => format!(
                "{} has only {}; remove `{name}`",
                capitalize(keys.what),
                keys.names
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let message = if keys.key_noun == "locale" {
            format!("unknown locale `{name}` in {}", keys.what)
        } else {
            format!("unknown {} `{name}`", keys.key_noun)
        };
        self.error(key, message, fix);
    }

    /// The items of a list; nothing (`key:` alone) is an empty list.
    fn list<'n>(&mut self, node: &'n Node, key: &str) -> &'n [Node] {
        match &node.kind {
            Kind::Seq(items) => items,
            Kind::Null => &[],
            other => {
                self.error(
                    node,
                    format!("`{key}` must be a list, found {}", other.describe()),
                    format!("put each item of `{key}` on its own line, starting with `- `"),
                );
                &[]
            }
        }
    }

    /// A list of non-empty texts with their locations; `item` names one for messages.
    fn texts(&mut self, node: &Node, key: &str, item: &str) -> Vec<(String, Location)> {
        let mut texts = Vec::new();
        for element in self.list(node, key) {
            if let Some(text) = self.text(element, item) {
                texts.push((text, self.location(element)));
            }
        }
        texts
    }

    /// Non-empty text (numbers and booleans count as their text), trimmed.
    fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        let (text, _) = self.scalar(node, what)?;
        let text = text.trim();
        if text.is_empty() {
            self.empty(node, what);
            return None;
        }
        Some(text.to_string())
    }

    /// A scalar's text and type; reports anything else.
    fn scalar<'n>(&mut self, node: &'n Node, what: &str) -> Option<(&'n str, ScalarType)> {
        match &node.kind {
            Kind::Scalar(text, ty) => Some((text, *ty)),
            Kind::Null => {
                self.empty(node, what);
                None
            }
            other => {
                self.error(
                    node,
                    format!("expected text for {what}, found {}", other.describe()),
                    "write it as text on the key's line (quote it if it contains `: `, `#`, `[` \
                     or `{`)",
                );
                None
            }
        }
    }

    fn empty(&mut self, node: &Node, what: &str) {
        self.error(
            node,
            format!("empty {what}"),
            format!("write the {what}, or remove the line"),
        );
    }
}

/// What is wrong with an id, if anything, and how to fix it.
///
/// Ids are dotted lowercase names by convention (`refund.policy`), but ids imported from other
/// systems (`Refund_not_showing_up`, `q00042`) are accepted as they are: an id only has to be
/// one word without empty dotted parts, so it can be typed in commands and logs.
fn id_problem(id: &str) -> Option<(String, String)> {
    let message = if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        format!("id `{id}` contains whitespace")
    } else if id.split('.').any(str::is_empty) {
        format!("id `{id}` has an empty part between dots")
    } else {
        return None;
    };
    let suggestion = conventional_id(id);
    let example = if suggestion.is_empty() {
        "for example `refund.policy`".to_string()
    } else {
        format!("for example `{suggestion}`")
    };
    Some((
        message,
        format!("write ids as one word dotted by topic, as in `topic.name`: {example}"),
    ))
}

/// A best-effort conventional spelling of `id` (lowercase, whitespace and other characters to `_`).
fn conventional_id(id: &str) -> String {
    let mapped: String = id
        .trim()
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_' | '-' | '.') => c,
            _ => '_',
        })
        .collect();
    mapped
        .split('.')
        .map(|part| part.trim_matches('_'))
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

/// How questions are compared for duplicates: trimmed, lowercased, inner whitespace collapsed.
fn question_key(question: &str) -> String {
    question
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `path:line` of a location, for messages that point elsewhere.
fn line_of(location: &Location) -> String {
    format!("{}:{}", location.path.display(), location.line)
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// "did you mean X? Rest" when a candidate is close to `word` (shown by `show`), else `rest`.
fn suggest_or<'c>(
    word: &str,
    candidates: impl Iterator<Item = &'c str> + Clone,
    show: impl Fn(&str) -> String,
    rest: &str,
) -> String {
    match closest(word, candidates, &[]) {
        Some(c) => format!("did you mean {}? {}", show(c), capitalize(rest)),
        None => rest.to_string(),
    }
}

/// A name in backticks.
fn quoted(name: &str) -> String {
    format!("`{name}`")
}

/// The candidate closest to `word`: a known alias, a case-insensitive match, a small edit
/// distance (transpositions count once), or the only candidate containing `word`.
fn closest<'c>(
    word: &str,
    candidates: impl Iterator<Item = &'c str> + Clone,
    aliases: &[(&str, &'c str)],
) -> Option<&'c str> {
    let lower = word.to_lowercase();
    if let Some((_, target)) = aliases.iter().find(|(alias, _)| *alias == lower) {
        return Some(target);
    }
    let limit = (lower.chars().count() / 3).clamp(1, 3);
    let best = candidates
        .clone()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d);
    if let Some((_, c)) = best {
        return Some(c);
    }
    let containing: Vec<&str> = candidates
        .filter(|c| lower.chars().count() >= 3 && c.contains(lower.as_str()))
        .collect();
    match containing.as_slice() {
        [only] => Some(only),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn options() -> ValidationOptions {
        ValidationOptions::default()
    }

    fn problems(text: &str) -> Vec<Diagnostic> {
        match parse_file_text(Path::new("faq/t.yaml"), text, &options()) {
            Ok(set) => panic!("expected problems, got {set:#?}"),
            Err(diagnostics) => diagnostics,
        }
    }

    /// The only problem in `text`; asserts where it stands and what it says.
    fn only(text: &str, line: usize, column: usize, needle: &str) -> Diagnostic {
        let all = problems(text);
        assert_eq!(all.len(), 1, "{all:#?}");
        expect(&all, line, column, needle)
    }

    /// The problem whose message contains `needle`; asserts where it stands.
    fn expect(all: &[Diagnostic], line: usize, column: usize, needle: &str) -> Diagnostic {
        let found = all
            .iter()
            .find(|d| d.message.contains(needle))
            .unwrap_or_else(|| panic!("no problem mentions {needle:?}: {all:#?}"));
        assert_eq!(
            (found.location.line, found.location.column),
            (line, column),
            "{found}"
        );
        found.clone()
    }

    const VALID: &str = r#"# 退款 / refunds
entries:
  - id: refund.policy
    questions:
      - 怎么退款
      - how do I get a refund
      - 404
    answer:
      zh: "{shop_name} 支持 {refund_days} 天内退款。"
      en: |
        {shop_name} refunds within {refund_days} days.
    skill_group: refunds
    action: refund_request
    priority: high
    follow_ups: [refund.time]
    tags: [refund, money]
    examples:
      - 我想退钱
  - id: refund.time
    questions: [退款多久到账]
    answer:
      zh: 一般三个工作日。
      en: Usually three working days.
out_of_scope:
  - 今天天气怎么样
"#;

    #[test]
    fn a_valid_file_round_trips() {
        let set = parse_file_text(Path::new("faq/t.yaml"), VALID, &options()).expect("valid");
        assert_eq!(set.files, [PathBuf::from("faq/t.yaml")]);
        assert_eq!(set.entries.len(), 2);
        let first = &set.entries[0];
        let entry = &first.entry;
        assert_eq!(entry.id, "refund.policy");
        assert_eq!(
            entry.questions,
            ["怎么退款", "how do I get a refund", "404"]
        );
        assert_eq!(entry.answer.zh, "{shop_name} 支持 {refund_days} 天内退款。");
        assert_eq!(
            entry.answer.en,
            "{shop_name} refunds within {refund_days} days."
        );
        assert_eq!(entry.skill_group.as_deref(), Some("refunds"));
        assert_eq!(entry.action, Some(Action::RefundRequest));
        assert_eq!(entry.priority, Some(Priority::High));
        assert_eq!(entry.follow_ups, ["refund.time"]);
        assert_eq!(entry.tags, ["refund", "money"]);
        assert_eq!(entry.examples, ["我想退钱"]);
        assert_eq!((first.location.line, first.location.column), (3, 9));
        let example = &first.example_locations[0];
        assert_eq!((example.line, example.column), (18, 9));
        let second = &set.entries[1].entry;
        assert_eq!(
            (second.action, second.priority, second.skill_group.clone()),
            (None, None, None)
        );
        assert_eq!(set.out_of_scope.len(), 1);
        assert_eq!(set.out_of_scope[0].text, "今天天气怎么样");
        assert_eq!(set.out_of_scope[0].location.line, 25);
    }

    #[test]
    fn titles_are_read_per_language_and_checked() {
        let text = "entries:\n  - id: a.b\n    questions: [x]\n    answer: {zh: 甲, en: A}\n    \
                    title: {zh: 查看卡密, en: Find my key}\n";
        let set = parse_file_text(Path::new("faq/t.yaml"), text, &options()).expect("valid");
        let title = &set.entries[0].entry.title;
        assert_eq!(title.zh.as_deref(), Some("查看卡密"));
        assert_eq!(title.en.as_deref(), Some("Find my key"));
        let text = "entries:\n  - id: a.b\n    questions: [x]\n    answer: {zh: 甲, en: A}\n    \
                    title: {en: Find my key}\n";
        let set =
            parse_file_text(Path::new("faq/t.yaml"), text, &options()).expect("one is enough");
        assert_eq!(set.entries[0].entry.title.zh, None);
        let long = "x".repeat(41);
        let d = only(
            &format!(
                "entries:\n  - id: a.b\n    questions: [x]\n    answer: {{zh: 甲, en: A}}\n    \
                 title: {{en: {long}}}\n"
            ),
            5,
            17,
            "the `en` title is longer than a button can show",
        );
        assert!(d.fix.contains("40"), "{d}");
        let d = only(
            "entries:\n  - id: a.b\n    questions: [x]\n    answer: {zh: 甲, en: A}\n    \
             title: {fr: Trouver}\n",
            5,
            13,
            "unknown locale `fr` in `title`",
        );
        assert!(d.fix.contains("zh") || d.fix.contains("en"), "{d}");
    }

    #[test]
    fn empty_files_are_valid_and_empty() {
        for text in ["", "# nothing yet\n", "entries:\nout_of_scope:\n", "---\n"] {
            let set = parse_file_text(Path::new("t.yaml"), text, &options()).expect(text);
            assert!(
                set.entries.is_empty() && set.out_of_scope.is_empty(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn syntax_errors_point_at_the_parser_position() {
        let d = only(
            "entries:\n  - id: a.b\n    questions:\n      - x\n     - y\n",
            5,
            6,
            "invalid YAML: did not find expected key",
        );
        assert!(d.fix.contains("indentation"), "{d}");
        assert_eq!(d.location.path, PathBuf::from("faq/t.yaml"));
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        let d = only(
            "- id: a.b\n  questions: [x]\n",
            1,
            1,
            "must be a mapping, found a list",
        );
        assert!(d.fix.contains("entries:"), "{d}");
    }

    #[test]
    fn unknown_top_level_keys_are_reported_with_a_suggestion() {
        let d = only(
            "entries: []\nentrys: []\n",
            2,
            1,
            "unknown top-level key `entrys`",
        );
        assert_eq!(d.fix, "did you mean `entries`?");
    }

    #[test]
    fn unknown_entry_keys_suggest_the_closest_key() {
        let text = "entries:\n  - id: a.b\n    questons: [x]\n    answer: {zh: 好, en: ok}\n";
        let all = problems(text);
        assert_eq!(all.len(), 2, "{all:#?}");
        let d = expect(&all, 3, 5, "unknown key `questons`");
        assert_eq!(
            d.to_string(),
            "faq/t.yaml:3:5: unknown key `questons` — did you mean `questions`?"
        );
        expect(&all, 2, 5, "entry `a.b` has no `questions`");
    }

    #[test]
    fn unknown_keys_without_a_close_match_list_the_known_ones() {
        let text = "entries:\n  - id: a.b\n    questions: [x]\n    answer: {zh: 好, en: ok}\n    colour: red\n";
        let d = only(text, 5, 5, "unknown key `colour`");
        assert!(d.fix.contains("`skill_group`"), "{d}");
    }

    #[test]
    fn unknown_locales_are_reported() {
        let text = "entries:\n  - id: a.b\n    questions: [x]\n    answer:\n      zh: 好\n      en: ok\n      fr: bien\n";
        let d = only(text, 7, 7, "unknown locale `fr` in `answer`");
        assert!(d.fix.contains("`zh`") && d.fix.contains("`en`"), "{d}");
    }

    #[test]
    fn cn_is_taken_for_zh() {
        let text =
            "entries:\n  - id: a.b\n    questions: [x]\n    answer:\n      cn: 好\n      en: ok\n";
        let all = problems(text);
        assert_eq!(all.len(), 2, "{all:#?}");
        let d = expect(&all, 5, 7, "unknown locale `cn`");
        assert_eq!(d.fix, "did you mean `zh`?");
        expect(&all, 5, 7, "`answer` has no `zh` text");
    }

    #[test]
    fn wrong_node_types_are_reported_at_the_value() {
        let text = "entries:\n  - id: a.b\n    questions: {q: x}\n    answer: hello\n";
        let all = problems(text);
        assert_eq!(all.len(), 2, "{all:#?}");
        expect(&all, 3, 16, "`questions` must be a list, found a mapping");
        expect(&all, 4, 13, "`answer` must be a mapping, found text");
        let text =
            "entries:\n  - id: a.b\n    questions:\n      - [x, y]\n    answer: {zh: 好, en: ok}\n";
        only(text, 4, 9, "expected text for question, found a list");
        only(
            "entries: {a: b}\n",
            1,
            10,
            "`entries` must be a list, found a mapping",
        );
        only(
            "entries:\n  - just text\n",
            2,
            5,
            "An entry must be a mapping, found text",
        );
    }

    #[test]
    fn missing_required_keys_are_reported_at_the_entry() {
        let text = "entries:\n  - questions: [x]\n    answer: {zh: 好, en: ok}\n";
        let d = only(text, 2, 5, "this entry has no `id`");
        assert!(d.fix.contains("id: topic.name"), "{d}");
        let text = "entries:\n  - id: a.b\n    questions: [x]\n";
        only(text, 2, 5, "entry `a.b` has no `answer`");
    }

    #[test]
    fn empty_questions_are_reported() {
        let text = "entries:\n  - id: a.b\n    questions: []\n    answer: {zh: 好, en: ok}\n";
        only(text, 3, 16, "`questions` is empty");
        let text = "entries:\n  - id: a.b\n    questions:\n    answer: {zh: 好, en: ok}\n";
        only(text, 3, 5, "`questions` is empty");
    }

    #[test]
    fn empty_and_blank_questions_are_reported() {
        let text = "entries:\n  - id: a.b\n    questions:\n      - ok\n      - \"   \"\n      -\n    answer: {zh: 好, en: ok}\n";
        let all = problems(text);
        assert_eq!(all.len(), 2, "{all:#?}");
        assert_eq!(all[0].message, "empty question");
        assert_eq!((all[0].location.line, all[0].location.column), (5, 9));
        assert_eq!((all[1].location.line, all[1].location.column), (6, 7));
    }

    #[test]
    fn missing_and_empty_answers_are_reported() {
        let text = "entries:\n  - id: a.b\n    questions: [x]\n    answer:\n      zh: 好\n";
        let d = only(text, 5, 7, "`answer` has no `en` text");
        assert!(d.fix.contains("English"), "{d}");
        let text =
            "entries:\n  - id: a.b\n    questions: [x]\n    answer:\n      zh: \"\"\n      en:\n";
        let all = problems(text);
        assert_eq!(all.len(), 2, "{all:#?}");
        expect(&all, 5, 11, "empty `zh` answer");
        expect(&all, 6, 7, "empty `en` answer");
    }

    fn with_id(id: &str) -> String {
        format!("entries:\n  - id: {id}\n    questions: [x]\n    answer: {{zh: 好, en: ok}}\n")
    }

    #[test]
    fn ids_must_be_one_word_without_empty_parts() {
        let d = only(
            &with_id("Refund Policy"),
            2,
            9,
            "id `Refund Policy` contains whitespace",
        );
        assert!(d.fix.contains("`refund_policy`"), "{d}");
        only(
            &with_id("a..b"),
            2,
            9,
            "id `a..b` has an empty part between dots",
        );
        only(&with_id(".a"), 2, 9, "has an empty part");
        only(&with_id("\"\""), 2, 9, "empty `id`");
        only(
            &with_id("404"),
            2,
            9,
            "`id` must be text, found a number `404`",
        );
        only(
            &with_id("[a, b]"),
            2,
            9,
            "expected text for `id`, found a list",
        );
        // Dotted lowercase names are the convention; ids from other systems are kept as is.
        for id in [
            "orders.late-delivery_2",
            "translate",
            "q00001",
            "Refund_not_showing_up",
            "reverted_card_payment?",
            "退款.政策",
        ] {
            parse_file_text(Path::new("t.yaml"), &with_id(id), &options()).expect(id);
        }
    }

    #[test]
    fn duplicate_questions_are_reported() {
        let text = "entries:\n  - id: a.b\n    questions:\n      - 怎么退款\n      - \" 怎么退款 \"\n    answer: {zh: 好, en: ok}\n";
        only(
            text,
            5,
            9,
            "question `怎么退款` appears twice in this entry (first on line 4)",
        );
        let text = "entries:\n  - id: a.b\n    questions: [How to pay]\n    answer: {zh: 好, en: ok}\n  - id: a.c\n    questions: [how  to PAY]\n    answer: {zh: 好, en: ok}\n";
        let d = only(
            text,
            6,
            17,
            "question `how  to PAY` is also a question of `a.b` (faq/t.yaml:3)",
        );
        assert!(d.fix.contains("exactly one entry"), "{d}");
    }

    fn with_field(field: &str) -> String {
        format!("entries:\n  - id: a.b\n    questions: [x]\n    answer: {{zh: 好, en: ok}}\n    {field}\n")
    }

    #[test]
    fn unknown_actions_list_the_valid_ones() {
        let d = only(
            &with_field("action: refund"),
            5,
            13,
            "unknown action `refund`",
        );
        assert!(d.fix.starts_with("did you mean `refund_request`?"), "{d}");
        for action in Action::ALL {
            assert!(d.fix.contains(action.name()), "{d}");
        }
    }

    #[test]
    fn unknown_priorities_are_reported() {
        let d = only(
            &with_field("priority: urgnet"),
            5,
            15,
            "unknown priority `urgnet`",
        );
        assert!(d.fix.starts_with("did you mean `urgent`?"), "{d}");
        assert!(d.fix.contains("low, normal, high, urgent"), "{d}");
    }

    #[test]
    fn unknown_skill_groups_point_at_the_config() {
        let d = only(
            &with_field("skill_group: vip"),
            5,
            18,
            "unknown skill group `vip`",
        );
        assert!(
            d.fix.contains("refunds") && d.fix.contains("`skill_groups`"),
            "{d}"
        );
    }

    #[test]
    fn follow_ups_must_name_other_existing_entries() {
        let d = only(
            &with_field("follow_ups: [a.c]"),
            5,
            18,
            "follow-up `a.c` is not the id of any entry",
        );
        assert_eq!(d.fix, "did you mean `a.b`?");
        only(
            &with_field("follow_ups: [a.b]"),
            5,
            18,
            "entry `a.b` lists itself as a follow-up",
        );
    }

    #[test]
    fn unknown_template_variables_are_reported() {
        let text = "entries:\n  - id: a.b\n    questions: [x]\n    answer:\n      zh: 欢迎来到{shop}\n      en: Welcome to {shop_name}\n";
        let d = only(
            text,
            5,
            11,
            "unknown template variable `{shop}` in the `zh` answer",
        );
        assert!(d.fix.starts_with("did you mean {shop_name}?"), "{d}");
        assert!(
            d.fix.contains("{support_hours}") && d.fix.contains("`variables`"),
            "{d}"
        );
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let text = "entries:\n  - id: a.b\n    questions: [x]\n    id: a.c\n    answer: {zh: 好, en: ok, zh: 嗯}\n";
        let all = problems(text);
        assert_eq!(all.len(), 2, "{all:#?}");
        expect(
            &all,
            4,
            5,
            "`id` appears twice in an entry (first on line 2)",
        );
        expect(&all, 5, 29, "`zh` appears twice in `answer`");
    }

    const ENTRY: &str = "entries:\n  - id: a.b\n    questions: [x]\n    answer: {zh: 好, en: ok}\n";

    #[test]
    fn vocabulary_maps_words_to_the_forms_customers_write() {
        let text =
            format!("{ENTRY}vocabulary:\n  卡密: [km, 卡蜜]\n  充值: cz\n  为什么: [點解]\n");
        let set = parse_file_text(Path::new("faq/t.yaml"), &text, &options()).unwrap();
        let rules: Vec<(&str, &str, usize)> = set
            .vocabulary
            .iter()
            .map(|r| (r.form.as_str(), r.word.as_str(), r.location.line))
            .collect();
        assert_eq!(
            rules,
            [
                ("km", "卡密", 6),
                ("卡蜜", "卡密", 6),
                ("cz", "充值", 7),
                ("點解", "为什么", 8)
            ]
        );
        assert_eq!(set.vocabulary().apply("km呢 点解"), "卡密呢 为什么");
        // The usual other names of the key are understood as what they mean.
        let text = format!("{ENTRY}synonyms:\n  卡密: [km]\n");
        let all = problems(&text);
        assert_eq!(all.len(), 1, "{all:#?}");
        assert!(all[0].fix.contains("`vocabulary`"), "{all:#?}");
    }

    #[test]
    fn near_misses_are_out_of_scope_examples_of_their_own_kind() {
        let text = format!("{ENTRY}out_of_scope:\n  - 今天天气怎么样\nnear_misses:\n  - 怎么联系游戏官方客服\n  - x\n");
        let all = problems(&text);
        assert_eq!(all.len(), 1, "{all:#?}");
        expect(&all, 9, 5, "near miss `x` is also a question of `a.b`");
        assert!(all[0].fix.contains("`near_misses`"), "{all:#?}");
        let text = format!("{ENTRY}near-misses:\n  - x\n");
        only(&text, 5, 1, "unknown top-level key `near-misses`");
        let text = format!("{ENTRY}near_misses:\n  - 怎么联系游戏官方客服\n");
        let set = parse_file_text(Path::new("faq/t.yaml"), &text, &options()).unwrap();
        let kinds: Vec<(&str, bool)> = set
            .out_of_scope
            .iter()
            .map(|o| (o.text.as_str(), o.near_miss))
            .collect();
        assert_eq!(kinds, [("怎么联系游戏官方客服", true)]);
    }

    #[test]
    fn vocabulary_problems_are_reported_where_they_stand() {
        let text = format!(
            "{ENTRY}vocabulary:\n  卡密: [km, 卡密]\n  订单: [km]\n  客服: [kf]\n  顾客: [客]\n  会员:\n  7: [x, '']\n  售后: []\n"
        );
        let all = problems(&text);
        expect(&all, 6, 7, "`卡密` is the word `卡密` itself");
        expect(
            &all,
            7,
            8,
            "`km` already stands for `卡密` (faq/t.yaml:6), here for `订单`",
        );
        // 客服 contains the form 客, so 客服 would be rewritten again: both rules are at fault.
        expect(
            &all,
            8,
            8,
            "`kf` is rewritten to `客服`, which contains `客`",
        );
        expect(
            &all,
            9,
            8,
            "`客` is rewritten to `顾客`, which contains `客`",
        );
        expect(&all, 10, 3, "no forms for `会员`");
        expect(&all, 11, 10, "empty form");
        expect(&all, 12, 7, "no forms for `售后`");
        assert_eq!(all.len(), 7, "{all:#?}");
        let text = format!("{ENTRY}vocabulary: [km]\n");
        only(&text, 5, 13, "`vocabulary` must be a mapping, found a list");
    }

    #[test]
    fn out_of_scope_questions_must_not_be_entry_questions() {
        let text = "entries:\n  - id: a.b\n    questions: [x]\n    answer: {zh: 好, en: ok}\nout_of_scope:\n  - X\n  - \n";
        let all = problems(text);
        assert_eq!(all.len(), 2, "{all:#?}");
        expect(
            &all,
            6,
            5,
            "out-of-scope question `X` is also a question of `a.b`",
        );
        expect(&all, 7, 3, "empty out-of-scope question");
    }

    #[test]
    fn aliases_are_resolved() {
        let text = "entries:\n  - id: a.b\n    questions: [x]\n    answer: {zh: 好, en: ok}\n    tags: &money [refund, pay]\n  - id: a.c\n    questions: [y]\n    answer: {zh: 好, en: ok}\n    tags: *money\n";
        let set = parse_file_text(Path::new("t.yaml"), text, &options()).expect("valid");
        assert_eq!(set.entries[1].entry.tags, ["refund", "pay"]);
    }

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(path, text).expect("write");
    }

    #[test]
    fn every_problem_in_every_file_is_reported_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "a.yaml",
            "entries:\n  - id: shop.hours\n    questions: [几点上班]\n    answer: {zh: 九点, en: nine}\n    action: open\n  - id: Shop..x\n    questions: []\n    answer: {zh: 好}\n",
        );
        write(
            dir.path(),
            "sub/b.yml",
            "entries:\n  - id: shop.hours\n    questons: [x]\n    answer: {zh: '{shop}', en: ok}\n    follow_ups: [nowhere.at_all]\nout_of_scope: 5\nextra: 1\n",
        );
        let Err(Error::Invalid(all)) = load_dir(dir.path(), &options()) else {
            panic!("expected Invalid");
        };
        let a = dir.path().join("a.yaml");
        let b = dir.path().join("sub/b.yml");
        let summary: Vec<(PathBuf, usize, usize)> = all
            .iter()
            .map(|d| (d.location.path.clone(), d.location.line, d.location.column))
            .collect();
        assert_eq!(
            summary,
            [
                (a.clone(), 5, 13), // unknown action
                (a.clone(), 6, 9),  // id convention
                (a.clone(), 7, 16), // empty questions
                (a.clone(), 8, 13), // no en
                (b.clone(), 2, 5),  // no questions
                (b.clone(), 2, 9),  // duplicate id
                (b.clone(), 3, 5),  // unknown key
                (b.clone(), 4, 18), // unknown variable
                (b.clone(), 5, 18), // dangling follow-up
                (b.clone(), 6, 15), // out_of_scope not a list
                (b.clone(), 7, 1),  // unknown top-level key
            ],
            "{all:#?}"
        );
        let duplicate = &all[5];
        assert!(
            duplicate.message.contains(&format!("{}:2", a.display())),
            "{duplicate}"
        );
    }

    #[test]
    fn a_syntax_error_does_not_hide_other_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "a.yaml",
            "entries:\n  - id: a.b\n    questions: [x\n",
        );
        write(
            dir.path(),
            "b.yaml",
            "entries:\n  - id: b.c\n    questions: [y]\n    answer: {zh: 好}\n    follow_ups: [a.b]\n",
        );
        let Err(Error::Invalid(all)) = load_dir(dir.path(), &options()) else {
            panic!("expected Invalid");
        };
        assert_eq!(all.len(), 2, "{all:#?}");
        assert!(all[0].message.starts_with("invalid YAML"), "{}", all[0]);
        assert_eq!(all[0].location.path, dir.path().join("a.yaml"));
        // `a.b` may well exist in the unreadable file, so it is not called dangling.
        assert!(all[1].message.contains("has no `en`"), "{}", all[1]);
    }

    #[test]
    fn directories_are_walked_recursively_in_path_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entry = |id: &str, q: &str| {
            format!(
                "entries:\n  - id: {id}\n    questions: [{q}]\n    answer: {{zh: 好, en: ok}}\n"
            )
        };
        write(dir.path(), "b.yaml", &entry("b.one", "b"));
        write(dir.path(), "a/z.yml", &entry("a.z", "az"));
        write(dir.path(), "a/c.YAML", &entry("a.c", "ac"));
        write(dir.path(), "notes.txt", "not yaml");
        write(dir.path(), ".hidden/x.yaml", "broken: [");
        write(dir.path(), "empty.yaml", "");
        let set = load_dir(dir.path(), &options()).expect("valid");
        let ids: Vec<&str> = set.entries.iter().map(|e| e.entry.id.as_str()).collect();
        assert_eq!(ids, ["a.c", "a.z", "b.one"]);
        assert_eq!(set.files.len(), 4);
        assert_eq!(set.entries[0].location.path, dir.path().join("a/c.YAML"));
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        match load_dir(&missing, &options()) {
            Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("nope"), "{e}"),
            other => panic!("expected Io, got {other:?}"),
        }
    }

    #[test]
    fn a_directory_without_faq_files_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let set = load_dir(dir.path(), &options()).expect("valid");
        assert_eq!(set, FaqSet::default());
    }

    #[test]
    fn non_utf8_files_are_located() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join("gbk.yaml"),
            b"entries:\n  - id: \xcd\xcb\xbf\xee\n",
        )
        .expect("write");
        let Err(Error::Invalid(all)) = load_dir(dir.path(), &options()) else {
            panic!("expected Invalid");
        };
        assert_eq!(all.len(), 1, "{all:#?}");
        assert_eq!((all[0].location.line, all[0].location.column), (2, 9));
        assert!(all[0].message.contains("UTF-8"));
    }

    #[test]
    fn the_documented_example_is_valid() {
        let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/faq-format.md");
        let doc = fs::read_to_string(&doc).expect("docs/faq-format.md");
        let start = doc.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
        let end = start + doc[start..].find("```").expect("closed block");
        let set = parse_file_text(Path::new("faq/cards.yaml"), &doc[start..end], &options())
            .unwrap_or_else(|all| panic!("{all:#?}"));
        assert!(set.entries.len() >= 2);
        assert!(set.entries.iter().any(|e| e.entry.action.is_some()));
        assert!(!set.out_of_scope.is_empty());
    }

    #[test]
    fn suggestions_use_edit_distance_and_aliases() {
        let keys = ENTRY_KEYS.names.iter().copied();
        assert_eq!(closest("questons", keys.clone(), &[]), Some("questions"));
        assert_eq!(closest("anwser", keys.clone(), &[]), Some("answer"));
        assert_eq!(closest("ID", keys.clone(), &[]), Some("id"));
        assert_eq!(closest("colour", keys, &[]), None);
        assert_eq!(
            closest("fr", ["zh", "en"].into_iter(), ANSWER_KEYS.aliases),
            None
        );
        assert_eq!(edit_distance("abc", "acb"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
