//! How the engine's replies look on Discord: message text within Discord's length limit,
//! quick replies as buttons, and what a pressed button's `custom_id` stands for.

use kefu_core::message::PRIVATE_CHAT;
use kefu_core::{Locale, Outbound, QuickReply};
use serenity::builder::{CreateActionRow, CreateButton};
use serenity::model::application::ButtonStyle;

/// The longest message content Discord takes, in characters.
pub(crate) const MAX_CONTENT_CHARS: usize = 2000;
/// Buttons per action row, and action rows per message.
const BUTTONS_PER_ROW: usize = 5;
const MAX_ROWS: usize = 5;
/// The longest button label, in characters.
const MAX_LABEL_CHARS: usize = 80;
/// The longest `custom_id`, in bytes (Discord counts 100 characters; bytes are stricter).
const MAX_CUSTOM_ID: usize = 100;
/// A button whose `custom_id` carries its payload.
const PAYLOAD_PREFIX: &str = "p:";
/// A button whose payload is too long for a `custom_id`: its place among the message's
/// quick replies, looked up in the transcript when pressed.
const INDEX_PREFIX: &str = "qr:";

/// What a pressed button's `custom_id` stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pressed {
    /// The payload itself.
    Payload(String),
    /// The `n`th quick reply (from 0) of the message the button was on.
    Index(usize),
}

/// The `custom_id` of quick reply number `index` (from 0).
pub(crate) fn custom_id(index: usize, reply: &QuickReply) -> String {
    if PAYLOAD_PREFIX.len() + reply.payload.len() <= MAX_CUSTOM_ID {
        format!("{PAYLOAD_PREFIX}{}", reply.payload)
    } else {
        format!("{INDEX_PREFIX}{index}")
    }
}

/// What `custom_id` stands for; `None` for ids that are not the adapter's.
pub(crate) fn parse_custom_id(custom_id: &str) -> Option<Pressed> {
    if let Some(payload) = custom_id.strip_prefix(PAYLOAD_PREFIX) {
        return Some(Pressed::Payload(payload.to_string()));
    }
    let index = custom_id.strip_prefix(INDEX_PREFIX)?;
    if index.is_empty() || index.len() > 3 || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    index.parse().ok().map(Pressed::Index)
}

/// Quick replies as rows of buttons (at most 25; the rest are left out — the text numbers
/// the choices, so customers can still type them). The private-chat button becomes a link
/// to the bot's profile, where "Message" opens the private chat.
pub(crate) fn buttons(replies: &[QuickReply], bot_user: u64) -> Vec<CreateActionRow> {
    let buttons: Vec<CreateButton> = replies
        .iter()
        .enumerate()
        .take(BUTTONS_PER_ROW * MAX_ROWS)
        .map(|(i, reply)| {
            let label = label(&reply.label, i);
            if reply.payload == PRIVATE_CHAT {
                CreateButton::new_link(format!("https://discord.com/users/{bot_user}")).label(label)
            } else {
                CreateButton::new(custom_id(i, reply))
                    .label(label)
                    .style(ButtonStyle::Secondary)
            }
        })
        .collect();
    buttons
        .chunks(BUTTONS_PER_ROW)
        .map(|row| CreateActionRow::Buttons(row.to_vec()))
        .collect()
}

fn label(label: &str, index: usize) -> String {
    let label = label.trim();
    if label.is_empty() {
        return (index + 1).to_string();
    }
    truncate(label, MAX_LABEL_CHARS)
}

/// `text` cut to `max` characters, with "…" at the cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` in pieces of at most `max` characters, cut at line breaks (else spaces) where it
/// can; never an empty piece.
pub(crate) fn split(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest: &str = text;
    while rest.chars().count() > max {
        // The byte offset just after `max` characters.
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..limit];
        let cut = window
            .rfind('\n')
            .or_else(|| window.rfind(' '))
            .filter(|&i| i > 0)
            .unwrap_or(limit);
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece.to_string());
        rest = tail.trim_start_matches(['\n', ' ']);
    }
    if !rest.is_empty() || pieces.is_empty() {
        pieces.push(rest.to_string());
    }
    pieces
}

/// Several replies as one interaction answer: their texts joined by a blank line (cut to
/// Discord's limit) and all their buttons.
pub(crate) fn joined(replies: &[Outbound]) -> (String, Vec<QuickReply>) {
    let text = replies
        .iter()
        .map(|r| r.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    let buttons = replies
        .iter()
        .flat_map(|r| r.quick_replies.iter().cloned())
        .collect();
    (truncate(&text, MAX_CONTENT_CHARS), buttons)
}

/// The adapter's own short texts (everything else the customer reads comes from the engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Say {
    /// The message was taken but the bot has nothing to add (a person holds the chat).
    Received,
    /// The question option was empty.
    AskSomething,
    /// A button the adapter cannot place any more.
    ButtonExpired,
    /// The bot could not handle it just now.
    TryAgain,
}

impl Say {
    /// The text in `locale` (English when unknown).
    pub(crate) fn text(self, locale: Option<Locale>) -> &'static str {
        let zh = locale == Some(Locale::Zh);
        match (self, zh) {
            (Say::Received, true) => "已收到，我们会在这里回复您。",
            (Say::Received, false) => "Received — we'll answer you here.",
            (Say::AskSomething, true) => "请输入您的问题。",
            (Say::AskSomething, false) => "Please type your question.",
            (Say::ButtonExpired, true) => "这个按钮已失效，请直接输入您的问题。",
            (Say::ButtonExpired, false) => {
                "This button has expired; please type your question instead."
            }
            (Say::TryAgain, true) => "抱歉，暂时无法处理，请稍后再试。",
            (Say::TryAgain, false) => {
                "Sorry, I can't handle that right now; please try again in a moment."
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_carry_short_payloads_and_index_long_ones() {
        let short = QuickReply::new("Yes", "refund.request");
        assert_eq!(custom_id(0, &short), "p:refund.request");
        assert_eq!(
            parse_custom_id("p:refund.request"),
            Some(Pressed::Payload("refund.request".into()))
        );
        let long = QuickReply::new("Long", "x".repeat(99));
        assert_eq!(custom_id(3, &long), "qr:3");
        assert_eq!(parse_custom_id("qr:3"), Some(Pressed::Index(3)));
        let fits = QuickReply::new("Fits", "y".repeat(98));
        assert_eq!(custom_id(0, &fits).len(), 100);
        let multibyte = QuickReply::new("卡密", "卡".repeat(40));
        assert_eq!(custom_id(1, &multibyte), "qr:1", "120 bytes do not fit");
        for bad in ["", "qr:", "qr:x", "qr:1234", "other", "qr:-1"] {
            assert_eq!(parse_custom_id(bad), None, "{bad:?}");
        }
        assert_eq!(parse_custom_id("p:"), Some(Pressed::Payload(String::new())));
    }

    #[test]
    fn buttons_fill_rows_of_five_up_to_25() {
        let replies: Vec<_> = (0..30)
            .map(|i| QuickReply::new(format!("{i}"), format!("{i}")))
            .collect();
        let rows = buttons(&replies, 1);
        assert_eq!(rows.len(), 5);
        let json = serde_json::to_value(&rows).unwrap();
        assert!(json
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["components"].as_array().unwrap().len() == 5));
        assert_eq!(json[4]["components"][4]["custom_id"], "p:24");
        assert_eq!(buttons(&replies[..7], 1).len(), 2);
        assert!(buttons(&[], 1).is_empty());
    }

    #[test]
    fn the_private_chat_button_links_to_the_bot() {
        let rows = buttons(&[QuickReply::new("Message me privately", PRIVATE_CHAT)], 77);
        let json = serde_json::to_value(&rows).unwrap();
        let button = &json[0]["components"][0];
        assert_eq!(button["style"], 5, "a link button");
        assert_eq!(button["url"], "https://discord.com/users/77");
        assert_eq!(button["label"], "Message me privately");
    }

    #[test]
    fn labels_are_cut_and_never_empty() {
        let rows = buttons(
            &[
                QuickReply::new("", "a"),
                QuickReply::new("長".repeat(100), "b"),
            ],
            1,
        );
        let json = serde_json::to_value(&rows).unwrap();
        assert_eq!(json[0]["components"][0]["label"], "1");
        let long = json[0]["components"][1]["label"].as_str().unwrap();
        assert_eq!(long.chars().count(), 80);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn long_texts_split_at_line_breaks_within_the_limit() {
        assert_eq!(split("short", 10), ["short"]);
        assert_eq!(split("", 10), [""]);
        let text = format!("{}\n{}", "a".repeat(8), "b".repeat(8));
        assert_eq!(split(&text, 10), ["a".repeat(8), "b".repeat(8)]);
        let words = "one two three four five";
        for piece in split(words, 9) {
            assert!(piece.chars().count() <= 9 && !piece.is_empty(), "{piece:?}");
        }
        let cjk = "卡".repeat(4500);
        let pieces = split(&cjk, MAX_CONTENT_CHARS);
        assert_eq!(pieces.len(), 3);
        assert!(pieces
            .iter()
            .all(|p| p.chars().count() <= MAX_CONTENT_CHARS));
        assert_eq!(pieces.concat(), cjk);
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate("卡密卡密", 3), "卡密…");
    }
}
