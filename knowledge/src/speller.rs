//! Spelling correction of English words against the knowledge base's own vocabulary.
//!
//! Character n-grams carry long words through most typos ("recieve"), but a short word with
//! two letters swapped shares none of its n-grams with the right one ("kye" / "key", "wrok" /
//! "work"). So before a message is matched, each Latin word that is neither used by the
//! knowledge base's questions nor a real English word is replaced by the vocabulary word one
//! slip of the fingers away (see [`typing_slip`]), the most frequent if several are. Left
//! alone: real English words (a word list, `knowledge/data/english-words.txt`, from SCOWL),
//! so a message about something else is not bent into one about the shop ("ear" is not
//! "eat"); numbers, Chinese, words shorter than three letters; words with no vocabulary word
//! a slip away; and a word whose neighbours are equally frequent, since the choice would be
//! a guess.
//!
//! The vocabulary is indexed by every form with one letter deleted (SymSpell), so a word is
//! looked up by its own deletions without comparing it with the whole vocabulary.

use crate::text::{edit_distance as distance, normalize};
use std::collections::HashMap;

/// Words shorter than this are not corrected ("hi", "ok", "no" are too close to too much).
const MIN_LEN: usize = 3;

/// Real English words, one per line, lower case (SCOWL via Debian's wamerican-small).
const ENGLISH: &str = include_str!("../data/english-words.txt");

/// Whether `word` (lower case) is a real English word.
fn is_english(word: &str) -> bool {
    static WORDS: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    WORDS
        .get_or_init(|| ENGLISH.lines().collect())
        .contains(word)
}

/// A vocabulary of English words and how to find the one a typo meant.
#[derive(Debug, Default, Clone)]
pub struct Speller {
    /// Word -> how often the questions use it.
    counts: HashMap<String, u32>,
    /// The word, or any one-letter deletion of it -> the vocabulary words it comes from.
    deletes: HashMap<String, Vec<u32>>,
    /// Vocabulary words by number.
    words: Vec<String>,
}

impl Speller {
    /// The vocabulary of `texts` (the knowledge base's questions).
    pub fn new<'a>(texts: impl IntoIterator<Item = &'a str>) -> Speller {
        let mut counts: HashMap<String, u32> = HashMap::new();
        for text in texts {
            for word in latin_words(&normalize(text)) {
                *counts.entry(word.to_string()).or_default() += 1;
            }
        }
        let mut words: Vec<String> = counts.keys().cloned().collect();
        words.sort();
        let mut deletes: HashMap<String, Vec<u32>> = HashMap::new();
        for (i, word) in words.iter().enumerate() {
            for form in forms(word) {
                let list = deletes.entry(form).or_default();
                if list.last() != Some(&(i as u32)) {
                    list.push(i as u32);
                }
            }
        }
        Speller {
            counts,
            deletes,
            words,
        }
    }

    /// How many distinct words the vocabulary holds.
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The word `word` (lower-case) most likely meant, if it is not a vocabulary word and one
    /// vocabulary word one edit away is clearly the best.
    pub fn correct_word(&self, word: &str) -> Option<&str> {
        if word.len() < MIN_LEN || !word.bytes().all(|b| b.is_ascii_lowercase()) {
            return None;
        }
        if self.counts.contains_key(word) || is_english(word) {
            return None;
        }
        let mut best: Option<(&str, u32)> = None;
        let mut tied = false;
        let mut seen: Vec<u32> = Vec::new();
        for form in forms(word) {
            for &i in self.deletes.get(&form).into_iter().flatten() {
                if seen.contains(&i) {
                    continue;
                }
                seen.push(i);
                let candidate = &self.words[i as usize];
                if candidate.len() < MIN_LEN || !typing_slip(word, candidate) {
                    continue;
                }
                let count = self.counts[candidate.as_str()];
                match best {
                    Some((_, best_count)) if count < best_count => {}
                    Some((_, best_count)) if count == best_count => tied = true,
                    _ => {
                        best = Some((candidate, count));
                        tied = false;
                    }
                }
            }
        }
        if tied {
            return None;
        }
        best.map(|(w, _)| w)
    }

    /// `text` with its misspelled English words corrected (normalised, as matching sees
    /// it), or `None` when nothing needed correcting.
    pub fn correct(&self, text: &str) -> Option<String> {
        if self.is_empty() || !text.bytes().any(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let text = normalize(text);
        let mut out = String::with_capacity(text.len());
        let mut changed = false;
        let mut last = 0;
        for (start, word) in latin_word_spans(&text) {
            if let Some(right) = self.correct_word(word) {
                out.push_str(&text[last..start]);
                out.push_str(right);
                last = start + word.len();
                changed = true;
            }
        }
        if !changed {
            return None;
        }
        out.push_str(&text[last..]);
        Some(out)
    }
}

/// A word and each of its one-letter deletions.
fn forms(word: &str) -> Vec<String> {
    let bytes = word.as_bytes();
    let mut forms = Vec::with_capacity(bytes.len() + 1);
    forms.push(word.to_string());
    for i in 0..bytes.len() {
        let mut form = Vec::with_capacity(bytes.len() - 1);
        form.extend_from_slice(&bytes[..i]);
        form.extend_from_slice(&bytes[i + 1..]);
        // ASCII in, ASCII out.
        forms.push(String::from_utf8(form).unwrap_or_default());
    }
    forms
}

/// Runs of ASCII letters in normalised text, with their byte offsets.
fn latin_word_spans(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() && !bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        // A run glued to digits ("ps5", "q币" is split off already) is a product name.
        let glued = bytes.get(i).is_some_and(u8::is_ascii_digit)
            || (start > 0 && bytes[start - 1].is_ascii_digit());
        if glued {
            return Some((start, ""));
        }
        Some((start, &text[start..i]))
    })
    .filter(|(_, w)| !w.is_empty())
}

fn latin_words(text: &str) -> impl Iterator<Item = &str> {
    latin_word_spans(text).map(|(_, w)| w)
}

/// Whether `typed` is `meant` with one slip of the fingers: a letter dropped or added, two
/// neighbours swapped, or a letter replaced by one next to it on the keyboard — but never at
/// the first letter, which people rarely get wrong and which tells many real words apart
/// ("ear" / "car", "drain" / "rain", "dream" / "cream").
fn typing_slip(typed: &str, meant: &str) -> bool {
    let (t, m) = (typed.as_bytes(), meant.as_bytes());
    if t.first() != m.first() || distance(typed, meant) != 1 {
        return false;
    }
    if t.len() != m.len() {
        return true;
    }
    let differ: Vec<usize> = (0..t.len()).filter(|&i| t[i] != m[i]).collect();
    match differ.as_slice() {
        // Substituted: only by a key next to the right one.
        [i] => NEIGHBOURS
            .iter()
            .any(|(key, near)| *key == m[*i] && near.as_bytes().contains(&t[*i])),
        // Swapped.
        _ => true,
    }
}

/// The keys around each letter on a QWERTY keyboard.
const NEIGHBOURS: [(u8, &str); 26] = [
    (b'q', "wa"),
    (b'w', "qeas"),
    (b'e', "wrsd"),
    (b'r', "etdf"),
    (b't', "ryfg"),
    (b'y', "tugh"),
    (b'u', "yihj"),
    (b'i', "uojk"),
    (b'o', "ipkl"),
    (b'p', "ol"),
    (b'a', "qwsz"),
    (b's', "qweadzx"),
    (b'd', "wersfxc"),
    (b'f', "ertdgcv"),
    (b'g', "rtyfhvb"),
    (b'h', "tyugjbn"),
    (b'j', "yuihknm"),
    (b'k', "uiojlm"),
    (b'l', "iopk"),
    (b'z', "asx"),
    (b'x', "zsdc"),
    (b'c', "xdfv"),
    (b'v', "cfgb"),
    (b'b', "vghn"),
    (b'n', "bhjm"),
    (b'm', "njk"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn speller() -> Speller {
        Speller::new([
            "my card key does not work",
            "the key doesn't work",
            "where is my key",
            "how do i redeem a gift card",
            "refund please",
            "my top up didn't arrive",
            "work work work",
        ])
    }

    #[test]
    fn swapped_and_dropped_letters_are_put_right() {
        let s = speller();
        assert_eq!(s.correct_word("kye"), Some("key"));
        assert_eq!(s.correct_word("wrok"), Some("work"));
        assert_eq!(s.correct_word("refnd"), Some("refund"));
        assert_eq!(s.correct_word("redeeem"), Some("redeem"));
        assert_eq!(s.correct_word("arive"), Some("arrive"));
        assert_eq!(
            s.correct("My kye doesnt WROK").as_deref(),
            // ("doesnt" becomes the "doesn" of "doesn't", as the questions are matched.)
            Some("my key doesn work")
        );
    }

    #[test]
    fn known_short_far_or_ambiguous_words_are_left_alone() {
        let s = speller();
        for word in ["key", "my", "xyzzy", "weather", "kk", "wok", "redeemer"] {
            assert_eq!(s.correct_word(word), None, "{word}");
        }
        // "cad" is one edit from "card" and from "car"... only "card" is in the vocabulary;
        // with two equally frequent neighbours nothing is guessed.
        let tie = Speller::new(["bat", "cat"]);
        assert_eq!(tie.correct_word("hat"), None);
        assert_eq!(s.correct("订单 2024112300017 卡密"), None);
        assert_eq!(s.correct("ps5 key"), None);
        assert_eq!(s.correct("where is my key"), None);
    }

    #[test]
    fn real_words_one_letter_apart_are_not_slips() {
        assert!(typing_slip("kye", "key"));
        assert!(typing_slip("wrok", "work"));
        assert!(typing_slip("refnd", "refund"));
        assert!(typing_slip("pqssword", "password"), "q is next to a");
        assert!(!typing_slip("ear", "car"), "the first letter");
        assert!(!typing_slip("drain", "rain"), "the first letter");
        assert!(!typing_slip("breed", "bread"), "e is not next to a");
        assert!(!typing_slip("hole", "home"), "l is not next to m");
    }

    #[test]
    fn distances_count_a_swap_as_one_edit() {
        assert_eq!(distance("kye", "key"), 1);
        assert_eq!(distance("wrok", "work"), 1);
        assert_eq!(distance("abc", "abc"), 0);
        assert_eq!(distance("abc", "xyz"), 3);
        assert_eq!(distance("a", "abc"), 2);
    }
}
