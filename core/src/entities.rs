//! Entities found in messages by configurable regular expressions: order numbers, ticket
//! numbers, e-mail addresses, phone numbers.

use regex::Regex;
use std::collections::BTreeMap;

/// The entity kind of order numbers.
pub const ORDER_NO: &str = "order_no";
/// The entity kind of ticket numbers.
pub const TICKET_NO: &str = "ticket_no";
/// The entity kind of e-mail addresses.
pub const EMAIL: &str = "email";
/// The entity kind of phone numbers.
pub const PHONE: &str = "phone";

/// A bad entity pattern.
#[derive(Debug, thiserror::Error)]
#[error("entity `{kind}`: invalid pattern: {source}")]
pub struct PatternError {
    /// The entity kind.
    pub kind: String,
    /// What the regex engine said.
    pub source: regex::Error,
}

/// Finds entities by regular expression. The first capture group, if there is one, is the
/// value; otherwise the whole match is.
#[derive(Debug, Clone)]
pub struct EntityExtractor {
    patterns: Vec<(String, Regex)>,
}

/// The default patterns, suited to a card shop. Ticket numbers are tried before order numbers
/// so `T20241123001` is not read as an order.
pub const DEFAULT_PATTERNS: &[(&str, &str)] = &[
    (TICKET_NO, r"(?i)\b(T[-_]?\d{6,20})\b"),
    (EMAIL, r"(?i)\b([a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,})\b"),
    (PHONE, r"(?:^|[^\d])(1[3-9]\d{9})(?:$|[^\d])"),
    (
        ORDER_NO,
        r"(?i)(?:^|[^a-z0-9])((?:[A-Z]{1,4}[-_]?)?\d{8,24})(?:$|[^a-z0-9])",
    ),
];

impl Default for EntityExtractor {
    fn default() -> Self {
        Self::new(
            DEFAULT_PATTERNS
                .iter()
                .map(|(k, p)| (k.to_string(), p.to_string())),
        )
        .expect("the default patterns compile")
    }
}

impl EntityExtractor {
    /// An extractor with these (kind, pattern) pairs, tried in order.
    pub fn new(patterns: impl IntoIterator<Item = (String, String)>) -> Result<Self, PatternError> {
        let patterns = patterns
            .into_iter()
            .map(|(kind, pattern)| match Regex::new(&pattern) {
                Ok(re) => Ok((kind, re)),
                Err(source) => Err(PatternError { kind, source }),
            })
            .collect::<Result<_, _>>()?;
        Ok(EntityExtractor { patterns })
    }

    /// The entities in `text`, one per kind (the first occurrence). A span taken by an
    /// earlier pattern is not matched again by a later one.
    pub fn extract(&self, text: &str) -> BTreeMap<String, String> {
        let mut found = BTreeMap::new();
        let mut taken: Vec<(usize, usize)> = Vec::new();
        for (kind, re) in &self.patterns {
            for caps in re.captures_iter(text) {
                let Some(m) = caps.get(1).or_else(|| caps.get(0)) else {
                    continue;
                };
                if taken.iter().any(|&(s, e)| m.start() < e && s < m.end()) {
                    continue;
                }
                taken.push((m.start(), m.end()));
                found
                    .entry(kind.clone())
                    .or_insert_with(|| m.as_str().to_string());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_default_entities() {
        let x = EntityExtractor::default();
        let found = x.extract("订单202411230001没到，邮箱 a.b@example.com 电话13812345678");
        assert_eq!(found[ORDER_NO], "202411230001");
        assert_eq!(found[EMAIL], "a.b@example.com");
        assert_eq!(found[PHONE], "13812345678");
        assert!(!found.contains_key(TICKET_NO));
    }

    #[test]
    fn ticket_numbers_are_not_orders() {
        let x = EntityExtractor::default();
        let found = x.extract("my ticket T20241123001 any news");
        assert_eq!(found[TICKET_NO], "T20241123001");
        assert!(!found.contains_key(ORDER_NO), "{found:?}");
    }

    #[test]
    fn short_numbers_and_prices_are_not_orders() {
        let x = EntityExtractor::default();
        assert!(x.extract("I paid 100 yuan for 3 cards").is_empty());
        assert_eq!(
            x.extract("order DD-2024112300017 pls")[ORDER_NO],
            "DD-2024112300017"
        );
    }

    #[test]
    fn patterns_are_configurable_and_errors_name_the_kind() {
        let x = EntityExtractor::new([("order_no".to_string(), r"KM(\d{5})".to_string())]).unwrap();
        assert_eq!(x.extract("单号KM12345")["order_no"], "12345");
        let err = EntityExtractor::new([("bad".to_string(), "(".to_string())]).unwrap_err();
        assert!(err.to_string().contains("entity `bad`"));
    }
}
