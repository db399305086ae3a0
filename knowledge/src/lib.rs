//! kefu-knowledge: FAQ files in, confident answers out.
//!
//! # Layout
//!
//! - [`faq`]: the YAML format, loading a directory, validation with file/line/column diagnostics.
//! - [`text`]: normalisation and the mixed Chinese/English tokenizer (jieba + stemming).
//! - [`speller`]: English typos put right against the questions' own vocabulary.
//! - [`index`]: the tantivy index over questions and answers (BM25).
//! - [`classifier`]: a linear model trained on the entries' paraphrases when the base loads.
//! - [`matcher`]: [`KnowledgeBase`], which combines index and model into ranked candidates with
//!   a calibrated confidence, and implements `kefu_core::Knowledge`.
//! - [`semantic`]: sentence embeddings ([`semantic::Embedder`]) and their on-disk cache; the
//!   rust-bert encoders (multilingual-e5-small, and the English all-MiniLM-L6-v2) are behind the
//!   cargo feature `semantic`.
//! - [`defaults`]: the built-in card-shop knowledge base (`knowledge/faq/`).
//! - [`import`]: labelled utterances (JSONL) into FAQ files.
//! - [`eval`]: accuracy, out-of-scope and latency figures over labelled cases, and the cases
//!   a knowledge base gets wrong.

pub mod classifier;
pub mod defaults;
pub mod eval;
pub mod faq;
pub mod import;
pub mod index;
#[cfg(feature = "install")]
pub mod install;
pub mod matcher;
pub mod semantic;
pub mod speller;
pub mod text;
pub mod vocabulary;

pub use faq::{Diagnostic, FaqSet, ValidationOptions};
pub use matcher::{KnowledgeBase, MatcherOptions};

use std::path::PathBuf;

/// Everything that can go wrong in kefu-knowledge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// FAQ files have problems; each diagnostic says where and how to fix it.
    #[error("{} problem(s) in the FAQ files:\n{}", .0.len(), .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
    /// A labelled-utterance (JSONL) file has a bad line.
    #[error("{path}:{line}: {message}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The search index failed.
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The sentence encoder failed. (Not a `source`: the message already holds the cause,
    /// and error reports that print the chain would say it twice.)
    #[error("semantic model: {0}")]
    Semantic(semantic::EmbedError),
    /// The knowledge base has no entries to match against.
    #[error("the knowledge base has no entries: add at least one entry to a FAQ file")]
    Empty,
}

impl From<semantic::EmbedError> for Error {
    fn from(e: semantic::EmbedError) -> Self {
        Error::Semantic(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoder_error_is_told_once() {
        let e = Error::from(semantic::EmbedError(
            "no model in /m (run `kefu model install`)".into(),
        ));
        assert_eq!(
            e.to_string(),
            "semantic model: no model in /m (run `kefu model install`)"
        );
        // anyhow's `{:#}` prints the sources after the message: there are none to repeat it.
        assert!(std::error::Error::source(&e).is_none());
    }
}
