//! Reading FAQ files into validated entries.

use super::{Diagnostic, FaqSet, ValidationOptions};
use crate::Error;
use std::path::Path;

/// Loads and validates every `*.yaml` / `*.yml` file under `dir` (recursively, sorted by path).
pub fn load_dir(dir: &Path, options: &ValidationOptions) -> Result<FaqSet, Error> {
    let _ = (dir, options);
    todo!("faq loader")
}

/// Parses and validates one file's text as if it were the only file (used by tests and tools).
pub fn parse_file_text(
    path: &Path,
    text: &str,
    options: &ValidationOptions,
) -> Result<FaqSet, Vec<Diagnostic>> {
    let _ = (path, text, options);
    todo!("faq parser")
}
