//! Text analysis for Chinese, English and mixed messages.
//!
//! One [`Analyzer`] serves both the tantivy index (through [`MixedTokenizer`]) and the learned
//! model (through [`Analyzer::features`]), so both see the same words:
//!
//! 1. [`normalize`]: full-width forms to ASCII, lower case, invisible characters dropped.
//! 2. [`Analyzer::words`]: runs of Han characters are segmented by jieba; runs of Latin letters
//!    are words, stemmed with the Snowball English stemmer; long digit runs (order numbers,
//!    phone numbers) become one placeholder word so they do not look like vocabulary.
//! 3. [`Analyzer::features`]: word unigrams and bigrams, character n-grams of Latin words (which
//!    survive typos: "recieve" shares most of its trigrams with "receive"), Han character
//!    unigrams and bigrams (which survive segmentation differences and slang), and the pinyin
//!    of Han character bigrams (which survives the homophone typos of pinyin input methods:
//!    卡蜜 and 卡密 are both "ka mi").
//!
//! Between 1 and 2, an analyzer built [`with_vocabulary`](Analyzer::with_vocabulary) rewrites
//! the shop's slang, abbreviations and Cantonese words ([`crate::vocabulary`]);
//! [`Analyzer::prepare`] does both.

use crate::vocabulary::Vocabulary;
use jieba_rs::Jieba;
use kefu_core::locale::is_han;
use pinyin::ToPinyin;
use rust_stemmers::{Algorithm, Stemmer};
use std::sync::{Arc, OnceLock};
use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Lower-cases `text`, maps full-width ASCII forms and the ideographic space to ASCII,
/// converts traditional Chinese characters to simplified ones (退款怎麼申請 → 退款怎么申请), and
/// drops zero-width and control characters.
pub fn normalize(text: &str) -> String {
    let converted;
    let text = if text.chars().any(is_han) {
        converted = fast2s::convert(text);
        converted.as_str()
    } else {
        text
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            0x3000 => ' ',
            0x200B..=0x200F | 0xFEFF => continue,
            _ if c.is_control() => ' ',
            _ => c,
        };
        out.extend(c.to_lowercase());
    }
    out
}

/// The kind of characters a word is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Han characters (segmented by jieba).
    Han,
    /// Latin letters, possibly with digits inside (`ps5`, `q币` is split at the Han part).
    Latin,
    /// Digits only.
    Digits,
}

/// A word of a message, after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The word as matched: stemmed for Latin words, `#num` for long digit runs.
    pub term: String,
    /// The word as written (normalised but not stemmed).
    pub surface: String,
    /// What it is made of.
    pub script: Script,
    /// Byte offsets in the normalised text.
    pub start: usize,
    /// End byte offset (exclusive) in the normalised text.
    pub end: usize,
}

/// Digit runs at least this long are order, ticket or phone numbers, not vocabulary.
const LONG_NUMBER: usize = 5;

/// The placeholder term for a long digit run.
pub const NUMBER_TERM: &str = "#num";

/// Segments and stems text; cheap to clone (the dictionary is shared).
#[derive(Clone)]
pub struct Analyzer {
    jieba: Arc<Jieba>,
    vocabulary: Arc<Vocabulary>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer").finish_non_exhaustive()
    }
}

impl Default for Analyzer {
    fn default() -> Self {
        Self::shared()
    }
}

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

impl Analyzer {
    /// The process-wide analyzer: jieba's dictionary is loaded once (about 0.3 s) and shared.
    /// It has no vocabulary.
    pub fn shared() -> Self {
        static JIEBA: OnceLock<Arc<Jieba>> = OnceLock::new();
        Analyzer {
            jieba: JIEBA.get_or_init(|| Arc::new(Jieba::new())).clone(),
            vocabulary: Arc::default(),
        }
    }

    /// This analyzer, rewriting `vocabulary`'s forms before analysis.
    pub fn with_vocabulary(mut self, vocabulary: Vocabulary) -> Self {
        self.vocabulary = Arc::new(vocabulary);
        self
    }

    /// The vocabulary applied before analysis.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// `text` [`normalize`]d and with the vocabulary applied: what [`Analyzer::words`] reads.
    /// Preparing prepared text again changes nothing.
    pub fn prepare(&self, text: &str) -> String {
        self.vocabulary.apply(&normalize(text))
    }

    /// The words of `text` (which must already be [prepared](Analyzer::prepare)), in order.
    pub fn words(&self, text: &str) -> Vec<Word> {
        let mut words = Vec::new();
        let mut chars = text.char_indices().peekable();
        while let Some(&(start, c)) = chars.peek() {
            if is_han(c) {
                let mut end = start;
                while let Some(&(i, c)) = chars.peek() {
                    if !is_han(c) {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                }
                self.push_han(&text[start..end], start, &mut words);
            } else if c.is_alphanumeric() {
                let mut end = start;
                while let Some(&(i, c)) = chars.peek() {
                    if !c.is_alphanumeric() || is_han(c) {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                }
                words.push(latin_word(&text[start..end], start));
            } else {
                chars.next();
            }
        }
        words
    }

    fn push_han(&self, run: &str, offset: usize, words: &mut Vec<Word>) {
        for token in self.jieba.cut(run, true) {
            words.push(Word {
                term: token.word.to_string(),
                surface: token.word.to_string(),
                script: Script::Han,
                start: offset + token.byte_start,
                end: offset + token.byte_end,
            });
        }
    }

    /// Hashed sparse features of `text` (raw, not normalised yet), with repeats; see the module
    /// documentation for what they are.
    pub fn features(&self, text: &str) -> Vec<u64> {
        self.features_prepared(&self.prepare(text))
    }

    /// [`Analyzer::features`] of text already [prepared](Analyzer::prepare).
    pub fn features_prepared(&self, text: &str) -> Vec<u64> {
        let words = self.words(text);
        let mut out = Vec::with_capacity(words.len() * 8);
        let mut previous: Option<&str> = None;
        for (i, w) in words.iter().enumerate() {
            out.push(hash2(b'w', w.term.as_bytes()));
            if let Some(p) = previous {
                out.push(hash3(b'b', p.as_bytes(), w.term.as_bytes()));
            }
            previous = Some(&w.term);
            match w.script {
                Script::Latin => latin_char_ngrams(&w.surface, &mut out),
                Script::Han => {
                    // Character unigrams and bigrams across the whole Han run, so that a
                    // different segmentation of the same characters still matches.
                    let chars: Vec<char> = w.surface.chars().collect();
                    let next_han = words
                        .get(i + 1)
                        .filter(|n| n.script == Script::Han && n.start == w.end)
                        .and_then(|n| n.surface.chars().next());
                    for (j, c) in chars.iter().enumerate() {
                        let mut buf = [0u8; 8];
                        let a = c.encode_utf8(&mut buf[..4]).len();
                        if chars.len() > 1 {
                            out.push(hash2(b'c', &buf[..a]));
                        }
                        if let Some(n) = chars.get(j + 1).copied().or(next_han) {
                            let b = n.encode_utf8(&mut buf[a..]).len();
                            out.push(hash2(b'c', &buf[..a + b]));
                            if let (Some(p), Some(q)) = (c.to_pinyin(), n.to_pinyin()) {
                                out.push(hash3(b'p', p.plain().as_bytes(), q.plain().as_bytes()));
                            }
                        }
                    }
                }
                Script::Digits => {}
            }
        }
        out
    }
}

pub use kefu_core::similar::edit_distance;

/// Chinese words that start a new clause in an unpunctuated message ("…送我妈 结果她已经有了").
const HAN_CONNECTIVES: &[&str] = &[
    "结果",
    "但是",
    "可是",
    "不过",
    "然后",
    "所以",
    "因为",
    "麻烦",
    "请问",
    "能不能",
    "可不可以",
    "怎么办",
];
/// English words that start a new clause.
const LATIN_CONNECTIVES: &[&str] = &[
    "but", "so", "because", "however", "and then", "anyway", "also",
];

/// The clauses of a message, as slices of it: split at sentence and clause punctuation, at
/// line breaks, at spaces between Chinese characters (which Chinese writers use as commas),
/// and before common connectives ("结果", "但是", "but", "so"). Clauses without a letter or
/// Han character are dropped. Used to find the one clause of a long message that carries its
/// question (see [`crate::matcher`]).
pub fn clauses(text: &str) -> Vec<&str> {
    clause_spans(text).into_iter().map(|r| &text[r]).collect()
}

/// The byte ranges of [`clauses`] in `text`.
pub fn clause_spans(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut cuts: Vec<usize> = vec![0];
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    // The nearest character that is not whitespace after each position (one pass backwards,
    // so a run of spaces costs no more than its length).
    let mut next_visible: Vec<Option<char>> = vec![None; chars.len() + 1];
    for k in (0..chars.len()).rev() {
        let c = chars[k].1;
        next_visible[k] = if c.is_whitespace() {
            next_visible[k + 1]
        } else {
            Some(c)
        };
    }
    let mut last_visible: Option<char> = None;
    for (k, &(i, c)) in chars.iter().enumerate() {
        let cut_here = match c {
            '，' | '。' | '！' | '？' | '；' | '、' | '：' | '…' | '\n' | ',' | '!' | '?' | ';'
            | '~' | '～' => true,
            // A full stop, not a decimal point or an abbreviation's dot.
            '.' => chars.get(k + 1).is_none_or(|(_, n)| n.is_whitespace()),
            ' ' | '\u{3000}' => {
                last_visible.is_some_and(is_han) && next_visible[k + 1].is_some_and(is_han)
            }
            _ => false,
        };
        if cut_here {
            cuts.push(i);
            cuts.push(i + c.len_utf8());
        } else if k > 0 {
            let rest = &text[i..];
            let prev = chars[k - 1].1;
            if is_han(c) && HAN_CONNECTIVES.iter().any(|w| rest.starts_with(w)) {
                cuts.push(i);
            } else if prev.is_whitespace() && c.is_ascii_alphabetic() {
                let end = rest.char_indices().nth(16).map_or(rest.len(), |(i, _)| i);
                let lower = rest[..end].to_ascii_lowercase();
                if LATIN_CONNECTIVES.iter().any(|w| {
                    lower.starts_with(w)
                        && !lower[w.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
                }) {
                    cuts.push(i);
                }
            }
        }
        if !c.is_whitespace() {
            last_visible = Some(c);
        }
    }
    cuts.push(text.len());
    cuts.windows(2)
        .filter_map(|w| {
            let raw = text.get(w[0]..w[1])?;
            let trimmed = raw.trim_start();
            let start = w[0] + (raw.len() - trimmed.len());
            let end = start + trimmed.trim_end().len();
            text[start..end]
                .chars()
                .any(char::is_alphabetic)
                .then_some(start..end)
        })
        .collect()
}

fn latin_word(surface: &str, start: usize) -> Word {
    let all_digits = surface.chars().all(|c| c.is_ascii_digit());
    let (term, script) = if all_digits {
        let term = if surface.len() >= LONG_NUMBER {
            NUMBER_TERM.to_string()
        } else {
            surface.to_string()
        };
        (term, Script::Digits)
    } else {
        (stemmer().stem(surface).into_owned(), Script::Latin)
    };
    Word {
        term,
        surface: surface.to_string(),
        script,
        start,
        end: start + surface.len(),
    }
}

/// Character 3- to 5-grams of `<word>` (with boundary marks), fastText style.
fn latin_char_ngrams(word: &str, out: &mut Vec<u64>) {
    let mut bytes = Vec::with_capacity(word.len() + 2);
    bytes.push(b'<');
    bytes.extend_from_slice(word.as_bytes());
    bytes.push(b'>');
    if !word.is_ascii() {
        return;
    }
    for n in 3..=5 {
        if bytes.len() < n {
            break;
        }
        for window in bytes.windows(n) {
            out.push(hash2(b'n', window));
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

fn hash2(kind: u8, a: &[u8]) -> u64 {
    fnv(fnv(FNV_OFFSET, &[kind]), a)
}

fn hash3(kind: u8, a: &[u8], b: &[u8]) -> u64 {
    fnv(fnv(fnv(FNV_OFFSET, &[kind]), a), &[0xff]).wrapping_add(fnv(FNV_OFFSET, b))
}

/// The name under which [`MixedTokenizer`] is registered with tantivy.
pub const TOKENIZER_NAME: &str = "kefu_mixed";

/// A tantivy tokenizer emitting the [`Analyzer::words`] terms of a text.
#[derive(Clone, Default)]
pub struct MixedTokenizer {
    analyzer: Analyzer,
    tokens: Vec<Token>,
}

impl MixedTokenizer {
    /// A tokenizer using `analyzer`.
    pub fn new(analyzer: Analyzer) -> Self {
        MixedTokenizer {
            analyzer,
            tokens: Vec::new(),
        }
    }
}

/// The tokens of one text, produced by [`MixedTokenizer`].
pub struct MixedTokenStream<'a> {
    tokens: &'a mut Vec<Token>,
    next: usize,
}

impl Tokenizer for MixedTokenizer {
    type TokenStream<'a> = MixedTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> MixedTokenStream<'a> {
        self.tokens.clear();
        // Offsets refer to the normalised text; normalisation keeps ASCII lengths, and the
        // index stores no positions for highlighting, so this is only informative.
        let normalized = self.analyzer.prepare(text);
        for (position, word) in self.analyzer.words(&normalized).into_iter().enumerate() {
            self.tokens.push(Token {
                offset_from: word.start,
                offset_to: word.end,
                position,
                text: word.term,
                position_length: 1,
            });
        }
        MixedTokenStream {
            tokens: &mut self.tokens,
            next: 0,
        }
    }
}

impl TokenStream for MixedTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        let a = Analyzer::shared();
        a.words(&normalize(text))
            .into_iter()
            .map(|w| w.term)
            .collect()
    }

    #[test]
    fn sound_alike_characters_share_their_pinyin_features() {
        let a = Analyzer::shared();
        // 卡蜜 and 卡密 share the pinyin bigram "ka mi", 退宽 and 退款 "tui kuan"; 卡片 does not
        // sound like 卡密.
        let ka_mi = hash3(b'p', b"ka", b"mi");
        assert!(a.features("卡蜜无效").contains(&ka_mi));
        assert!(a.features("我的卡密").contains(&ka_mi));
        assert!(!a.features("卡片").contains(&ka_mi));
        let tui_kuan = hash3(b'p', b"tui", b"kuan");
        assert!(a.features("退宽").contains(&tui_kuan));
        assert!(a.features("申请退款").contains(&tui_kuan));
    }

    #[test]
    fn the_vocabulary_applies_before_analysis() {
        let plain = Analyzer::shared();
        let shop = Analyzer::shared().with_vocabulary(Vocabulary::new([("km", "卡密")]));
        assert_eq!(shop.prepare("KM呢"), "卡密呢");
        assert_eq!(plain.prepare("KM呢"), "km呢");
        assert_eq!(shop.features("km呢"), shop.features("卡密呢"));
        assert_ne!(plain.features("km呢"), plain.features("卡密呢"));
    }

    #[test]
    fn any_text_splits_into_clauses_without_panicking() {
        for text in crate::vocabulary::tests::random_texts(5_000) {
            for span in clause_spans(&text) {
                let clause = &text[span];
                assert!(!clause.is_empty() && clause.trim() == clause, "{text:?}");
            }
        }
    }

    #[test]
    fn long_messages_split_into_clauses() {
        assert_eq!(
            clauses("昨天买的腾讯视频年卡 本来想送我妈 结果她已经有会员了，能不能帮我退了？订单 2026113"),
            vec!["昨天买的腾讯视频年卡", "本来想送我妈", "结果她已经有会员了", "能不能帮我退了", "订单 2026113"]
        );
        assert_eq!(
            clauses("hey so i bought a steam code yesterday, he tried it but steam says its not valid?? what do i do"),
            vec!["hey", "so i bought a steam code yesterday", "he tried it", "but steam says its not valid", "what do i do"]
        );
        // Decimal points, words containing a connective and a single clause stay whole.
        assert_eq!(
            clauses("paid 9.99 for a subscription"),
            vec!["paid 9.99 for a subscription"]
        );
        assert_eq!(clauses("卡密无效"), vec!["卡密无效"]);
        assert!(clauses(" ,。 123 ").is_empty());
    }

    #[test]
    fn normalizes_full_width_and_case() {
        assert_eq!(normalize("ＳＴＥＡＭ　卡密！"), "steam 卡密!");
        assert_eq!(normalize("Refund\u{200B}Please"), "refundplease");
    }

    #[test]
    fn converts_traditional_to_simplified_chinese() {
        assert_eq!(normalize("退款怎麼申請"), "退款怎么申请");
        assert_eq!(normalize("訂單沒到帳"), "订单没到帐");
    }

    #[test]
    fn segments_chinese_with_jieba() {
        let t = terms("我的卡密在哪里");
        assert!(
            t.contains(&"卡密".to_string()) || t.contains(&"卡".to_string()),
            "{t:?}"
        );
        assert!(t.contains(&"哪里".to_string()), "{t:?}");
    }

    #[test]
    fn stems_english_and_lowercases() {
        assert_eq!(
            terms("Refunds REFUNDED refunding"),
            ["refund", "refund", "refund"]
        );
        assert_eq!(terms("Cards were delivered"), ["card", "were", "deliv"]);
    }

    #[test]
    fn splits_mixed_text_and_hides_order_numbers() {
        let t = terms("steam卡密invalid 订单202411230001 50元");
        assert_eq!(t[0], "steam");
        assert!(t.contains(&"invalid".to_string()), "{t:?}");
        assert!(t.contains(&NUMBER_TERM.to_string()), "{t:?}");
        assert!(t.contains(&"50".to_string()), "{t:?}");
        assert!(t.contains(&"元".to_string()), "{t:?}");
    }

    #[test]
    fn typos_share_character_ngrams() {
        let a = Analyzer::shared();
        let f = |s: &str| {
            a.features(s)
                .into_iter()
                .collect::<std::collections::HashSet<_>>()
        };
        let right = f("receive");
        let typo = f("recieve");
        let other = f("password");
        let shared = right.intersection(&typo).count();
        assert!(shared >= 4, "shared {shared}");
        assert_eq!(right.intersection(&other).count(), 0);
    }

    #[test]
    fn han_bigrams_survive_different_segmentation() {
        let a = Analyzer::shared();
        let f = |s: &str| {
            a.features(s)
                .into_iter()
                .collect::<std::collections::HashSet<_>>()
        };
        let shared = f("充值没到账").intersection(&f("充值还没有到账")).count();
        assert!(shared >= 4, "shared {shared}");
    }

    #[test]
    fn tantivy_tokenizer_emits_the_same_terms() {
        let mut tokenizer = MixedTokenizer::default();
        let mut stream = tokenizer.token_stream("Where is my 卡密");
        let mut seen = Vec::new();
        while stream.advance() {
            seen.push(stream.token().text.clone());
        }
        assert_eq!(seen, terms("Where is my 卡密"));
    }
}
