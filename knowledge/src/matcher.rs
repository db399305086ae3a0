//! matcher
/// stub
pub struct KnowledgeBase;
/// stub
pub struct MatcherOptions;
