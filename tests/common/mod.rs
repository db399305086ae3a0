//! What the end-to-end tests share: the built-in knowledge base, built once per test binary.

use kefu_knowledge::{defaults, KnowledgeBase, MatcherOptions, ValidationOptions};
use std::sync::{Arc, OnceLock};

/// The built-in card-shop knowledge base (lexical matching), built on first use.
pub fn knowledge() -> Arc<KnowledgeBase> {
    static KB: OnceLock<Arc<KnowledgeBase>> = OnceLock::new();
    KB.get_or_init(|| {
        let set = defaults::load(&ValidationOptions::default()).expect("default FAQ");
        Arc::new(KnowledgeBase::build(set, MatcherOptions::default()).expect("default KB"))
    })
    .clone()
}
