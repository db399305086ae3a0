//! FAQ files: the YAML format editors write, loading a directory of them, and validation.
//!
//! See `docs/faq-format.md` for the format. Loading never panics and never stops at the first
//! problem: every problem in every file comes back as a [`Diagnostic`] that names the file, the
//! line and the column, what is wrong and how to fix it.

mod load;
mod yaml;

pub use load::{check_dir, load_dir, load_sources, parse_file_text};

use kefu_core::FaqEntry;
use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

/// Where something stands in a FAQ file (lines and columns count from 1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The file, as it was given to the loader.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// One problem found in a FAQ file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    /// Where the problem is.
    pub location: Location,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Diagnostic {
    /// `path:line:column: what is wrong — how to fix it`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} — {}", self.location, self.message, self.fix)
    }
}

/// An entry together with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedEntry {
    /// The entry.
    pub entry: FaqEntry,
    /// Where its `id` stands.
    pub location: Location,
    /// Where each of `entry.examples` stands, in the same order.
    pub example_locations: Vec<Location>,
}

/// A question the bot must not answer, listed so the matcher learns what is out of scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfScope {
    /// The question.
    pub text: String,
    /// Where it stands.
    pub location: Location,
    /// Listed under `near_misses`: a question about another company or a forbidden request
    /// that shares the words of an entry. It declines the messages closest to it rather than
    /// being learned as part of "not ours" (see docs/faq-format.md).
    pub near_miss: bool,
}

/// One rule of the `vocabulary:` table: customers write `form` for `word` (see
/// [`crate::vocabulary`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VocabularyRule {
    /// How customers write it ("km", "點解").
    pub form: String,
    /// The word the FAQ uses ("卡密", "为什么").
    pub word: String,
    /// Where the form stands.
    pub location: Location,
}

/// Everything loaded from a directory of FAQ files, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaqSet {
    /// The entries, in file order (files sorted by path).
    pub entries: Vec<LocatedEntry>,
    /// Out-of-scope questions and near misses from every file.
    pub out_of_scope: Vec<OutOfScope>,
    /// The vocabulary rules from every file, in file order.
    pub vocabulary: Vec<VocabularyRule>,
    /// The files read, sorted.
    pub files: Vec<PathBuf>,
}

impl FaqSet {
    /// Every text a knowledge base learns from the set: each entry's questions, then the
    /// out-of-scope examples.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .flat_map(|e| e.entry.questions.iter().map(String::as_str))
            .chain(self.out_of_scope.iter().map(|o| o.text.as_str()))
    }

    /// The compiled vocabulary table.
    pub fn vocabulary(&self) -> crate::vocabulary::Vocabulary {
        crate::vocabulary::Vocabulary::new(
            self.vocabulary
                .iter()
                .map(|r| (r.form.as_str(), r.word.as_str())),
        )
    }
}

/// What validation checks names against; these come from the bot's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationOptions {
    /// The skill groups (human teams) a `skill_group` may name.
    pub skill_groups: BTreeSet<String>,
    /// The template variables an answer may use as `{name}`.
    pub variables: BTreeSet<String>,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        ValidationOptions {
            skill_groups: DEFAULT_SKILL_GROUPS.iter().map(|s| s.to_string()).collect(),
            variables: DEFAULT_VARIABLES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The skill groups a fresh installation has.
pub const DEFAULT_SKILL_GROUPS: &[&str] = &[
    "general",
    "orders",
    "payments",
    "refunds",
    "accounts",
    "risk",
    "complaints",
    "wholesale",
];

/// The template variables a fresh installation defines.
pub const DEFAULT_VARIABLES: &[&str] = &[
    "shop_name",
    "support_hours",
    "support_email",
    "website",
    "refund_days",
    "delivery_minutes",
    "wechat_id",
    "qq_contact",
    "telegram_contact",
];
