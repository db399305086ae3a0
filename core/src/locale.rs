//! The languages kefu answers in, and how the language of a message is told.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A language the bot answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    /// Simplified Chinese.
    Zh,
    /// English.
    En,
}

impl Locale {
    /// Every supported locale, in the order answers are written in FAQ files.
    pub const ALL: [Locale; 2] = [Locale::Zh, Locale::En];

    /// The locale's code as written in FAQ files and configuration (`zh`, `en`).
    pub fn code(self) -> &'static str {
        match self {
            Locale::Zh => "zh",
            Locale::En => "en",
        }
    }

    /// The locale to answer in for a platform's language tag (Telegram's `language_code`,
    /// Discord's `locale`: `zh-hans`, `zh-CN`, `en-US`, `ru`, …): Chinese for `zh*`, English for
    /// every other language (a Russian or Thai customer reads English sooner than Chinese);
    /// none for an empty tag. A hint only: the customer's own words decide over it.
    pub fn from_platform_tag(tag: &str) -> Option<Locale> {
        let tag = tag.trim().to_ascii_lowercase();
        if tag.is_empty() {
            None
        } else if tag.starts_with("zh") {
            Some(Locale::Zh)
        } else {
            Some(Locale::En)
        }
    }

    /// Tells the language of a customer's message: Chinese when Han characters make up at
    /// least as much of the message's letters as Latin ones do, English otherwise (including a
    /// message with no letters at all, such as an order number).
    pub fn detect(text: &str) -> Locale {
        let mut han = 0usize;
        let mut latin = 0usize;
        let mut in_word = false;
        for c in text.chars() {
            if is_han(c) {
                han += 1;
                in_word = false;
            } else if c.is_ascii_alphabetic() {
                // Count Latin words, not letters: "我的order没到" is a Chinese sentence.
                if !in_word {
                    latin += 1;
                }
                in_word = true;
            } else {
                in_word = false;
            }
        }
        if han > 0 && han >= latin {
            Locale::Zh
        } else {
            Locale::En
        }
    }
}

/// Whether `c` is a CJK unified ideograph (a Han character).
pub fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The error of parsing a locale code that kefu does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown locale `{0}`: use `zh` or `en`")]
pub struct UnknownLocale(pub String);

impl FromStr for Locale {
    type Err = UnknownLocale;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zh" | "zh-cn" | "zh_cn" | "cn" | "chinese" | "中文" => Ok(Locale::Zh),
            "en" | "en-us" | "en_us" | "english" | "英文" => Ok(Locale::En),
            other => Err(UnknownLocale(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_tags_map_to_chinese_or_english() {
        assert_eq!(Locale::from_platform_tag("zh-hans"), Some(Locale::Zh));
        assert_eq!(Locale::from_platform_tag("zh-TW"), Some(Locale::Zh));
        assert_eq!(Locale::from_platform_tag("en-US"), Some(Locale::En));
        assert_eq!(Locale::from_platform_tag("ru"), Some(Locale::En));
        assert_eq!(Locale::from_platform_tag(" "), None);
    }

    #[test]
    fn detects_chinese_english_and_mixed_messages() {
        assert_eq!(Locale::detect("卡密无效怎么办"), Locale::Zh);
        assert_eq!(Locale::detect("my card key is invalid"), Locale::En);
        assert_eq!(Locale::detect("我的order没到"), Locale::Zh);
        assert_eq!(Locale::detect("steam 充值 not arrived yet"), Locale::En);
        assert_eq!(Locale::detect("202411230001"), Locale::En);
        assert_eq!(Locale::detect(""), Locale::En);
    }

    #[test]
    fn parses_locale_codes() {
        assert_eq!("ZH".parse::<Locale>(), Ok(Locale::Zh));
        assert_eq!("en-US".parse::<Locale>(), Ok(Locale::En));
        assert!("fr".parse::<Locale>().is_err());
    }
}
