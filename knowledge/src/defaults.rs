//! The default knowledge base for a card shop, built into the library from `knowledge/faq/`.

use crate::faq::{self, FaqSet, ValidationOptions};
use crate::Error;
use std::path::PathBuf;

include!(concat!(env!("OUT_DIR"), "/default_faq.rs"));

/// The directory name the built-in files are reported under in diagnostics.
pub const SOURCE_DIR: &str = "knowledge/faq";

/// Loads and validates the built-in FAQ files.
pub fn load(options: &ValidationOptions) -> Result<FaqSet, Error> {
    let sources: Vec<(PathBuf, String)> = FILES
        .iter()
        .map(|(name, text)| (PathBuf::from(SOURCE_DIR).join(name), text.to_string()))
        .collect();
    faq::load_sources(sources, options)
}
