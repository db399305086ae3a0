//! Canned replies: a YAML file of ready answers agents insert and edit before sending.
//!
//! ```yaml
//! replies:
//!   - id: greet
//!     title: Greeting
//!     zh: 您好，我是{agent}，很高兴为您服务。
//!     en: Hi, I'm {agent}. Happy to help.
//! ```
//!
//! `{agent}`, `{customer}`, `{order_no}` (the order the customer mentioned) and the `variables`
//! of `kefu.yaml` are filled in for the conversation; the customer's language picks `zh` or
//! `en` (the other one when a reply has only one).

use crate::config::Config;
use kefu_core::{Conversation, Locale};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The canned replies kefu ships with.
pub const BUILT_IN: &str = include_str!("../../assets/canned.yaml");

/// One canned reply.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedReply {
    /// A short name, unique in the file.
    pub id: String,
    /// What agents see in the list.
    pub title: String,
    /// The Chinese text.
    #[serde(default)]
    pub zh: Option<String>,
    /// The English text.
    #[serde(default)]
    pub en: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    replies: Vec<CannedReply>,
}

/// Reads canned replies from YAML text; `name` is what errors call the file.
pub fn parse_canned(name: &str, text: &str) -> anyhow::Result<Vec<CannedReply>> {
    let file: File = serde_yaml::from_str(text).map_err(|e| match e.location() {
        Some(at) => {
            // The position leads the message; serde_yaml's own copy of it is dropped.
            let message = e.to_string();
            let tail = format!(" at line {} column {}", at.line(), at.column());
            let message = message.strip_suffix(&tail).unwrap_or(&message);
            anyhow::anyhow!("{name}:{}:{}: {message}", at.line(), at.column())
        }
        None => anyhow::anyhow!("{name}: {e}"),
    })?;
    let mut seen = std::collections::BTreeSet::new();
    for reply in &file.replies {
        if !seen.insert(reply.id.as_str()) {
            anyhow::bail!("{name}: the canned reply id `{}` is used twice", reply.id);
        }
        if reply.zh.is_none() && reply.en.is_none() {
            anyhow::bail!(
                "{name}: the canned reply `{}` has no text: give it `zh:` or `en:` (or both)",
                reply.id
            );
        }
    }
    Ok(file.replies)
}

/// The canned replies of `path`, or the built-in ones.
pub fn load_canned(path: Option<&Path>) -> anyhow::Result<Vec<CannedReply>> {
    match path {
        None => parse_canned("built-in canned replies", BUILT_IN),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read the canned replies {} (console.canned_replies): {e}",
                    path.display()
                )
            })?;
            parse_canned(&path.display().to_string(), &text)
        }
    }
}

/// The values a conversation's canned replies are filled with.
pub(crate) fn values(
    config: &Config,
    conversation: &Conversation,
    agent: &str,
) -> BTreeMap<String, String> {
    let mut values = config.variables.clone();
    values.insert("agent".to_string(), agent.to_string());
    values.insert("customer".to_string(), conversation.user.clone());
    if let Some(order) = conversation.entities.get("order_no") {
        values.insert("order_no".to_string(), order.clone());
    }
    values
}

/// `(title, text)` of each reply in `locale`, filled with `values` (unknown variables are
/// left for the agent to fill).
pub(crate) fn fill(
    replies: &[CannedReply],
    locale: Locale,
    values: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    replies
        .iter()
        .filter_map(|reply| {
            let text = match locale {
                Locale::Zh => reply.zh.as_ref().or(reply.en.as_ref()),
                Locale::En => reply.en.as_ref().or(reply.zh.as_ref()),
            }?;
            let mut filled = text.clone();
            for (name, value) in values {
                filled = filled.replace(&format!("{{{name}}}"), value);
            }
            Some((reply.title.clone(), filled))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_replies_load_and_fill_in_the_customers_language() {
        let replies = load_canned(None).unwrap();
        assert!(replies.len() >= 5);
        let values = BTreeMap::from([
            ("agent".to_string(), "小王".to_string()),
            ("order_no".to_string(), "DD123".to_string()),
        ]);
        let zh = fill(&replies, Locale::Zh, &values);
        assert!(zh.iter().any(|(_, t)| t.contains("小王")), "{zh:?}");
        let en = fill(&replies, Locale::En, &values);
        assert!(en.iter().all(|(_, t)| !t.contains("{agent}")), "{en:?}");
    }

    #[test]
    fn a_bad_file_is_an_error_with_its_line() {
        let err = parse_canned(
            "c.yaml",
            "replies:\n  - id: a\n    title: A\n    zh: x\n    typo: y\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("c.yaml:5:"), "{err}");
        assert!(
            err.contains("unknown field `typo`") && !err.contains("at line"),
            "{err}"
        );
        let err = parse_canned("c.yaml", "replies:\n  - id: a\n    title: A\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no text"), "{err}");
        let err = parse_canned(
            "c.yaml",
            "replies:\n  - {id: a, title: A, zh: x}\n  - {id: a, title: B, en: y}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("used twice"), "{err}");
        let err = load_canned(Some(Path::new("/nonexistent/canned.yaml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("console.canned_replies"), "{err}");
    }
}
