//! The shop's vocabulary: how customers write a word, mapped to how the FAQ writes it.
//!
//! Customers of card shops write `km` for 卡密, `cz` for 充值, `dd` for 订单, Cantonese
//! 唔 for 不 and 點解 for 为什么. A [`Vocabulary`] rewrites those forms before a message (and
//! every question of the knowledge base) is analysed, so "km呢" matches the questions about
//! 卡密 although no question says "km". The table comes from the `vocabulary:` key of the FAQ
//! files (the built-in knowledge base ships one in `vocabulary.yaml`); see
//! docs/faq-format.md.
//!
//! Rules apply to the [normalised](crate::text::normalize) text (lower case, simplified
//! Chinese), in one left-to-right pass, the longest form first:
//!
//! - a form with Latin letters or digits is replaced only as a whole word (`km` in "km呢" or
//!   "my km", never inside "kms");
//! - a form of Han characters is replaced wherever it stands (Chinese has no spaces).
//!
//! One pass means a replacement is never replaced again; validation makes sure no
//! replacement contains another rule's form, so applying the table twice changes nothing.

use crate::text::normalize;
use aho_corasick::{AhoCorasick, MatchKind};

/// One rule: customers write `form`, the FAQ writes `word`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// How customers write it (normalised).
    pub form: String,
    /// What it stands for (normalised); may be empty to drop the form.
    pub word: String,
}

/// A compiled set of [`Rule`]s.
#[derive(Clone, Default)]
pub struct Vocabulary {
    rules: Vec<Rule>,
    matcher: Option<AhoCorasick>,
}

impl std::fmt::Debug for Vocabulary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vocabulary")
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl Vocabulary {
    /// Compiles `(form, word)` pairs; both are normalised, empty forms and forms equal to
    /// their word are skipped, and a repeated form keeps its last word (a shop's own file
    /// overrides the one it copied).
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut rules: Vec<Rule> = Vec::new();
        for (form, word) in pairs {
            let form = normalize(form).trim().to_string();
            let word = normalize(word).trim().to_string();
            if form.is_empty() || form == word {
                continue;
            }
            match rules.iter_mut().find(|r| r.form == form) {
                Some(rule) => rule.word = word,
                None => rules.push(Rule { form, word }),
            }
        }
        let matcher = if rules.is_empty() {
            None
        } else {
            // Building only fails past the automaton's size limits (millions of forms); the
            // messages are then matched as written rather than the process stopping.
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(rules.iter().map(|r| r.form.as_str()))
                .map_err(|e| tracing::warn!(error = %e, "the vocabulary is too large to apply"))
                .ok()
        };
        Vocabulary { rules, matcher }
    }

    /// The rules, in the order they were first given.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// `text` (already normalised) with every form replaced by its word.
    pub fn apply(&self, text: &str) -> String {
        let Some(matcher) = &self.matcher else {
            return text.to_string();
        };
        let mut out = String::with_capacity(text.len() + 8);
        let mut last = 0;
        for m in matcher.find_iter(text) {
            let rule = &self.rules[m.pattern().as_usize()];
            if is_wordlike(&rule.form) && !stands_alone(text, m.start(), m.end()) {
                continue;
            }
            out.push_str(&text[last..m.start()]);
            // A Latin word between Han characters or other words keeps its spacing; a
            // replacement by Han characters needs none, a Latin one gets spaces around it.
            if is_wordlike(&rule.word) {
                pad(&mut out, text, m.start(), m.end(), &rule.word);
            } else {
                out.push_str(&rule.word);
            }
            last = m.end();
        }
        out.push_str(&text[last..]);
        out
    }

    /// Problems that make the table unsafe to apply, as (form, message) pairs: a word that
    /// contains a rule's form (its own included) would be rewritten again on a second pass.
    pub fn conflicts(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for rule in &self.rules {
            if let Some(other) = self
                .rules
                .iter()
                .find(|o| contains_form(&rule.word, &o.form))
            {
                let message = if other.form == rule.form {
                    format!(
                        "`{}` is rewritten to `{}`, which contains `{}` again (the rule would \
                         apply to its own result)",
                        rule.form, rule.word, rule.form
                    )
                } else {
                    format!(
                        "`{}` is rewritten to `{}`, which contains `{}`, itself rewritten to `{}`",
                        rule.form, rule.word, other.form, other.word
                    )
                };
                problems.push((rule.form.clone(), message));
            }
        }
        problems
    }
}

/// Whether a form is matched as a whole word (it has Latin letters or digits).
fn is_wordlike(form: &str) -> bool {
    form.chars().any(|c| c.is_ascii_alphanumeric())
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() && !kefu_core::locale::is_han(c)
}

/// Whether `text[start..end]` is not part of a longer Latin word or number.
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
}

fn pad(out: &mut String, text: &str, start: usize, end: usize, word: &str) {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    if before.is_some_and(|c| !c.is_whitespace()) {
        out.push(' ');
    }
    out.push_str(word);
    if after.is_some_and(|c| !c.is_whitespace()) {
        out.push(' ');
    }
}

/// Whether `form` would match inside `text` under the rules of [`Vocabulary::apply`].
fn contains_form(text: &str, form: &str) -> bool {
    text.match_indices(form)
        .any(|(i, _)| !is_wordlike(form) || stands_alone(text, i, i + form.len()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn table() -> Vocabulary {
        Vocabulary::new([
            ("km", "卡密"),
            ("卡蜜", "卡密"),
            ("cz", "充值"),
            ("冲值", "充值"),
            ("dd", "订单"),
            ("唔", "不"),
            ("點解", "为什么"),
            ("几时", "什么时候"),
            ("ty", "thank you"),
            ("吃鸡", "pubg"),
        ])
    }

    #[test]
    fn latin_forms_replace_whole_words_only() {
        let v = table();
        assert_eq!(v.apply("km呢"), "卡密呢");
        assert_eq!(v.apply("我的km在哪"), "我的卡密在哪");
        assert_eq!(v.apply("where is my km"), "where is my 卡密");
        assert_eq!(v.apply("5 kms away"), "5 kms away");
        assert_eq!(v.apply("cz没到账 dd 123456"), "充值没到账 订单 123456");
        assert_eq!(v.apply("addon"), "addon");
    }

    #[test]
    fn han_forms_replace_anywhere_longest_first() {
        let v = table();
        assert_eq!(v.apply("点解张卡用唔到"), "为什么张卡用不到");
        assert_eq!(v.apply("卡蜜无效"), "卡密无效");
        assert_eq!(v.apply("冲值几时到"), "充值什么时候到");
    }

    #[test]
    fn forms_are_normalised_so_traditional_and_upper_case_match() {
        let v = table();
        // 點解 was given in traditional characters; messages are normalised to simplified.
        assert_eq!(v.apply(&normalize("點解")), "为什么");
        assert_eq!(v.apply(&normalize("KM呢")), "卡密呢");
    }

    #[test]
    fn latin_words_get_spaces_between_han_characters() {
        let v = table();
        assert_eq!(v.apply("我想玩吃鸡"), "我想玩 pubg");
        assert_eq!(v.apply("ty兄弟"), "thank you 兄弟");
    }

    #[test]
    fn applying_twice_changes_nothing() {
        let v = table();
        for text in ["km呢", "點解唔得", "冲值dd", "ty"] {
            let once = v.apply(&normalize(text));
            assert_eq!(v.apply(&once), once, "{text}");
        }
        assert!(v.conflicts().is_empty());
    }

    #[test]
    fn a_word_containing_another_form_is_a_conflict() {
        let v = Vocabulary::new([("kf", "客服"), ("客", "顾客"), ("x", "km"), ("km", "卡密")]);
        let conflicts = v.conflicts();
        // kf → 客服 contains 客; 客 → 顾客 contains itself; x → km contains km.
        assert_eq!(conflicts.len(), 3, "{conflicts:?}");
        assert!(conflicts[0].1.contains("`客`"), "{conflicts:?}");
    }

    /// Random text of ASCII, Han, Cantonese, full-width, punctuation, combining marks and
    /// emoji, from a fixed seed.
    pub(crate) fn random_texts(count: usize) -> Vec<String> {
        const PIECES: &[&str] = &[
            "km",
            "KM",
            "kms",
            "cz",
            "dd",
            "ty",
            " ",
            "  ",
            "，",
            "。",
            ",",
            ".",
            "?",
            "!",
            "~",
            "\n",
            "\t",
            "唔",
            "點解",
            "点解",
            "卡蜜",
            "卡密",
            "吃鸡",
            "ｋｍ",
            "e\u{301}",
            "😭",
            "\u{200b}",
            "\u{3000}",
            "9.99",
            "2026113",
            "but",
            "so",
            "结果",
            "但是",
            "a",
            "ß",
            "İ",
            "\u{10ffff}",
            "\r",
            "\"",
            "'",
            "#",
            "-",
        ];
        let mut state: u64 = 0x6b65_6675_2027;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        (0..count)
            .map(|_| {
                let len = next() % 24;
                (0..len).map(|_| PIECES[next() % PIECES.len()]).collect()
            })
            .collect()
    }

    #[test]
    fn any_text_is_rewritten_without_panicking_and_idempotently() {
        let v = table();
        for text in random_texts(5_000) {
            let normalized = normalize(&text);
            let once = v.apply(&normalized);
            assert_eq!(v.apply(&once), once, "{text:?}");
        }
    }

    #[test]
    fn later_rules_override_and_empty_ones_are_skipped() {
        let v = Vocabulary::new([("dd", "订单"), ("dd", "等等"), ("", "x"), ("a", "a")]);
        assert_eq!(v.rules().len(), 1);
        assert_eq!(v.apply("dd"), "等等");
        assert!(Vocabulary::default().is_empty());
        assert_eq!(Vocabulary::default().apply("km"), "km");
    }
}
