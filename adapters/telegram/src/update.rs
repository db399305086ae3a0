//! From a Telegram update to what the engine reads: whether the bot is addressed at all, the
//! conversation it belongs to, and the text with mentions and bot names taken out.

use crate::CHANNEL;
use kefu_core::{ConversationKey, Inbound, Locale};
use teloxide::types::{
    CallbackQuery, ChatId, MaybeInaccessibleMessage, Message, MessageEntityKind, MessageId, Update,
    UpdateKind, User, UserId,
};

/// Who the bot is, from `getMe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The bot's user id.
    pub id: UserId,
    /// Its username, without the `@`.
    pub username: String,
}

/// What an update asks of the bot.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A message (or a button press) for the engine.
    Turn {
        /// The message as the engine reads it.
        inbound: Inbound,
        /// The chat the answers go to.
        chat: ChatId,
        /// The customer's message the answers reply to, in a group.
        reply_to: Option<MessageId>,
        /// A button press: its id (answered with `answerCallbackQuery`) and the text of the
        /// message whose button it was.
        callback: Option<(String, Option<String>)>,
    },
    /// In a group, a member pressed a button on the bot's answer to someone else: only the
    /// press is answered (a short notice), nothing is posted to the group.
    NotYourButton {
        /// The press's id.
        callback: String,
        /// The presser's language, if Telegram tells it.
        locale: Option<Locale>,
    },
    /// A private message the bot cannot read (a photo without a caption, a sticker, a voice
    /// message): the customer is asked to type.
    Unreadable {
        /// The conversation.
        conversation: ConversationKey,
        /// The customer's language, if Telegram tells it.
        locale: Option<Locale>,
    },
    /// Nothing for the bot: a group message not addressed to it, another bot, an edit, an
    /// update kind the bot does not ask for. The reason is for the debug log.
    Ignored(&'static str),
}

/// The conversation of `user` in `chat`: a private chat is one conversation; in a group each
/// member has their own, so one customer's order flow is not another's.
pub fn conversation_id(chat: ChatId, user: UserId, private: bool) -> String {
    if private {
        chat.0.to_string()
    } else {
        format!("{}:{}", chat.0, user.0)
    }
}

/// Where a conversation's messages go: its chat, and whether that is a group.
pub fn target(conversation_id: &str) -> Option<(ChatId, bool)> {
    match conversation_id.split_once(':') {
        Some((chat, _user)) => chat.parse().ok().map(|c| (ChatId(c), true)),
        None => conversation_id.parse().ok().map(|c| (ChatId(c), false)),
    }
}

/// The customer's language from Telegram's `language_code` ([`Locale::from_platform_tag`]).
pub fn locale(user: &User) -> Option<Locale> {
    Locale::from_platform_tag(user.language_code.as_deref()?)
}

/// Reads one update.
pub fn read(update: &Update, me: &Identity) -> Incoming {
    match &update.kind {
        UpdateKind::Message(message) => read_message(message, me),
        // A customer who corrects a typo by editing gets an answer to what they meant; the
        // edit is a message of its own (its id names the edit), so it is answered once.
        UpdateKind::EditedMessage(message) => read_message(message, me),
        UpdateKind::CallbackQuery(query) => read_callback(query),
        _ => Incoming::Ignored("an update kind the bot does not handle"),
    }
}

fn read_message(message: &Message, me: &Identity) -> Incoming {
    let Some(from) = message.from.as_ref() else {
        return Incoming::Ignored("a message without a sender (a channel post)");
    };
    if from.is_bot {
        return Incoming::Ignored("a message from a bot");
    }
    let private = message.chat.is_private();
    let key = ConversationKey::new(CHANNEL, conversation_id(message.chat.id, from.id, private));
    let Some(text) = message.text().or_else(|| message.caption()) else {
        return if private {
            Incoming::Unreadable {
                conversation: key,
                locale: locale(from),
            }
        } else {
            Incoming::Ignored("a group message without text")
        };
    };
    let entities = message
        .parse_entities()
        .or_else(|| message.parse_caption_entities())
        .unwrap_or_default();
    let mut addressed = private;
    // Byte ranges of the text to leave out: mentions of the bot, its name after a command.
    let mut cut: Vec<std::ops::Range<usize>> = Vec::new();
    let mut command_for_other_bot = false;
    for entity in &entities {
        match entity.kind() {
            MessageEntityKind::Mention
                if entity
                    .text()
                    .trim_start_matches('@')
                    .eq_ignore_ascii_case(&me.username) =>
            {
                addressed = true;
                cut.push(entity.range());
            }
            MessageEntityKind::TextMention { user } if user.id == me.id => {
                addressed = true;
                cut.push(entity.range());
            }
            MessageEntityKind::BotCommand if entity.start() == 0 => {
                let command = entity.text();
                match command.split_once('@') {
                    Some((_, bot)) if bot.eq_ignore_ascii_case(&me.username) => {
                        addressed = true;
                        let at = command.find('@').unwrap_or(command.len());
                        cut.push(entity.start() + at..entity.end());
                    }
                    Some(_) => command_for_other_bot = true,
                    None => addressed = true,
                }
            }
            _ => {}
        }
    }
    if command_for_other_bot {
        return Incoming::Ignored("a command for another bot");
    }
    let replied_to_bot = message
        .reply_to_message()
        .and_then(|m| m.from.as_ref())
        .is_some_and(|u| u.id == me.id);
    if !(addressed || replied_to_bot) {
        return Incoming::Ignored("a group message not addressed to the bot");
    }
    let mut kept = String::with_capacity(text.len());
    let mut at = 0;
    cut.sort_by_key(|r| r.start);
    for range in cut {
        if range.start >= at && range.end <= text.len() {
            kept.push_str(&text[at..range.start]);
            at = range.end;
        }
    }
    kept.push_str(&text[at..]);
    // A bare mention ("@ShopHelpBot") is a greeting.
    let text = match kept.trim() {
        "" => "/start".to_string(),
        kept => command(kept),
    };
    let id = match message.edit_date() {
        Some(edited) => format!("{}e{}", message.id.0, edited.timestamp()),
        None => message.id.0.to_string(),
    };
    let mut inbound = Inbound::new(key, from.id.0.to_string(), id, text);
    inbound.private = private;
    inbound.locale = locale(from);
    Incoming::Turn {
        inbound,
        chat: message.chat.id,
        reply_to: (!private).then_some(message.id),
        callback: None,
    }
}

/// A command as the engine knows it: `/start` without its deep-link payload (the greeting is
/// the same wherever the customer came from).
fn command(text: &str) -> String {
    match text.split_once(char::is_whitespace) {
        Some((first, _)) if first.eq_ignore_ascii_case("/start") => "/start".to_string(),
        _ => text.to_string(),
    }
}

fn read_callback(query: &CallbackQuery) -> Incoming {
    let (chat, text) = match &query.message {
        Some(MaybeInaccessibleMessage::Regular(message)) => {
            // In a group the bot's answers reply to the customer they are for.
            let owner = message
                .reply_to_message()
                .and_then(|m| m.from.as_ref())
                .map(|u| u.id);
            if !message.chat.is_private() && owner.is_some_and(|o| o != query.from.id) {
                return Incoming::NotYourButton {
                    callback: query.id.0.clone(),
                    locale: locale(&query.from),
                };
            }
            (&message.chat, message.text().map(str::to_string))
        }
        Some(MaybeInaccessibleMessage::Inaccessible(message)) => (&message.chat, None),
        None => return Incoming::Ignored("a button on an inline message"),
    };
    let Some(data) = query.data.clone() else {
        return Incoming::Ignored("a game button");
    };
    let private = chat.is_private();
    let key = ConversationKey::new(CHANNEL, conversation_id(chat.id, query.from.id, private));
    let mut inbound = Inbound::new(
        key,
        query.from.id.0.to_string(),
        format!("cb{}", query.id.0),
        data,
    );
    inbound.private = private;
    inbound.locale = locale(&query.from);
    Incoming::Turn {
        inbound,
        chat: chat.id,
        reply_to: None,
        callback: Some((query.id.0.clone(), text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Identity {
        Identity {
            id: UserId(777),
            username: "ShopHelpBot".to_string(),
        }
    }

    /// Parsed from text, as updates arrive (teloxide's update parser borrows its keys, which
    /// `from_value` cannot lend).
    fn update(json: serde_json::Value) -> Update {
        serde_json::from_str(&json.to_string()).expect("a valid update")
    }

    fn group_message(text: &str, entities: serde_json::Value) -> Update {
        update(serde_json::json!({
            "update_id": 10,
            "message": {
                "message_id": 5, "date": 1_700_000_000,
                "chat": {"id": -100123, "type": "supergroup", "title": "Shop"},
                "from": {"id": 42, "is_bot": false, "first_name": "Li", "language_code": "zh-hans"},
                "text": text, "entities": entities
            }
        }))
    }

    #[test]
    fn a_private_message_is_its_own_conversation_with_the_users_language() {
        let u = update(serde_json::json!({
            "update_id": 1,
            "message": {
                "message_id": 9, "date": 1_700_000_000,
                "chat": {"id": 42, "type": "private", "first_name": "Li"},
                "from": {"id": 42, "is_bot": false, "first_name": "Li", "language_code": "en-US"},
                "text": "where is my card key"
            }
        }));
        match read(&u, &me()) {
            Incoming::Turn {
                inbound, reply_to, ..
            } => {
                assert_eq!(inbound.conversation, ConversationKey::new("telegram", "42"));
                assert_eq!(inbound.message_id, "9");
                assert_eq!(inbound.text, "where is my card key");
                assert!(inbound.private);
                assert_eq!(inbound.locale, Some(Locale::En));
                assert_eq!(reply_to, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn in_a_group_only_mentions_replies_and_commands_are_read_and_the_mention_is_cut() {
        let mention = group_message(
            "@ShopHelpBot 卡密在哪",
            serde_json::json!([{"type": "mention", "offset": 0, "length": 12}]),
        );
        match read(&mention, &me()) {
            Incoming::Turn {
                inbound,
                reply_to,
                chat,
                ..
            } => {
                assert_eq!(inbound.text, "卡密在哪");
                assert_eq!(inbound.conversation.id, "-100123:42");
                assert!(!inbound.private);
                assert_eq!(reply_to, Some(MessageId(5)));
                assert_eq!(chat, ChatId(-100123));
                assert_eq!(target(&inbound.conversation.id), Some((chat, true)));
            }
            other => panic!("{other:?}"),
        }
        let chatter = group_message("大家好，今天吃什么", serde_json::json!([]));
        assert!(matches!(read(&chatter, &me()), Incoming::Ignored(_)));
        let someone_else = group_message(
            "@OtherBot hi",
            serde_json::json!([{"type": "mention", "offset": 0, "length": 9}]),
        );
        assert!(matches!(read(&someone_else, &me()), Incoming::Ignored(_)));
        let command = group_message(
            "/order@ShopHelpBot 20231201123456",
            serde_json::json!([{"type": "bot_command", "offset": 0, "length": 18}]),
        );
        match read(&command, &me()) {
            Incoming::Turn { inbound, .. } => assert_eq!(inbound.text, "/order 20231201123456"),
            other => panic!("{other:?}"),
        }
        let other_bot = group_message(
            "/start@OtherBot",
            serde_json::json!([{"type": "bot_command", "offset": 0, "length": 15}]),
        );
        assert!(matches!(read(&other_bot, &me()), Incoming::Ignored(_)));
        let reply = update(serde_json::json!({
            "update_id": 11,
            "message": {
                "message_id": 6, "date": 1_700_000_000,
                "chat": {"id": -100123, "type": "supergroup", "title": "Shop"},
                "from": {"id": 42, "is_bot": false, "first_name": "Li"},
                "text": "还是没到账",
                "reply_to_message": {
                    "message_id": 4, "date": 1_700_000_000,
                    "chat": {"id": -100123, "type": "supergroup", "title": "Shop"},
                    "from": {"id": 777, "is_bot": true, "first_name": "Shop", "username": "ShopHelpBot"},
                    "text": "请问是哪笔订单？"
                }
            }
        }));
        match read(&reply, &me()) {
            Incoming::Turn { inbound, .. } => assert_eq!(inbound.text, "还是没到账"),
            other => panic!("a reply to the bot is read: {other:?}"),
        }
    }

    #[test]
    fn start_loses_its_deep_link_payload_and_other_bots_are_ignored() {
        assert_eq!(command("/start private"), "/start");
        assert_eq!(command("/START"), "/START");
        assert_eq!(command("/lang zh"), "/lang zh");
        let bare = group_message(
            "@ShopHelpBot",
            serde_json::json!([{"type": "mention", "offset": 0, "length": 12}]),
        );
        match read(&bare, &me()) {
            Incoming::Turn { inbound, .. } => assert_eq!(inbound.text, "/start"),
            other => panic!("{other:?}"),
        }
        let bot = update(serde_json::json!({
            "update_id": 2,
            "message": {
                "message_id": 1, "date": 1_700_000_000,
                "chat": {"id": 43, "type": "private", "first_name": "B"},
                "from": {"id": 43, "is_bot": true, "first_name": "B"},
                "text": "hi"
            }
        }));
        assert!(matches!(read(&bot, &me()), Incoming::Ignored(_)));
    }

    #[test]
    fn a_photo_in_private_is_unreadable_and_in_a_group_ignored() {
        let photo = |chat: serde_json::Value| {
            update(serde_json::json!({
                "update_id": 3,
                "message": {
                    "message_id": 2, "date": 1_700_000_000, "chat": chat,
                    "from": {"id": 44, "is_bot": false, "first_name": "C"},
                    "photo": [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]
                }
            }))
        };
        assert!(matches!(
            read(
                &photo(serde_json::json!({"id": 44, "type": "private", "first_name": "C"})),
                &me()
            ),
            Incoming::Unreadable { .. }
        ));
        assert!(matches!(
            read(
                &photo(serde_json::json!({"id": -5, "type": "group", "title": "G"})),
                &me()
            ),
            Incoming::Ignored(_)
        ));
    }

    #[test]
    fn a_button_press_is_a_turn_with_the_buttons_payload() {
        let press = update(serde_json::json!({
            "update_id": 4,
            "callback_query": {
                "id": "cq1", "chat_instance": "ci",
                "from": {"id": 42, "is_bot": false, "first_name": "Li", "language_code": "zh"},
                "data": "2",
                "message": {
                    "message_id": 11, "date": 1_700_000_000,
                    "chat": {"id": 42, "type": "private", "first_name": "Li"},
                    "from": {"id": 777, "is_bot": true, "first_name": "Shop"},
                    "text": "您是想问下面哪个问题？"
                }
            }
        }));
        match read(&press, &me()) {
            Incoming::Turn {
                inbound, callback, ..
            } => {
                assert_eq!(inbound.text, "2");
                assert_eq!(inbound.message_id, "cbcq1");
                assert_eq!(inbound.locale, Some(Locale::Zh));
                let (id, text) = callback.unwrap();
                assert_eq!(id, "cq1");
                assert_eq!(text.as_deref(), Some("您是想问下面哪个问题？"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn targets_are_read_back_and_nonsense_is_refused() {
        assert_eq!(target("42"), Some((ChatId(42), false)));
        assert_eq!(target("-100123:42"), Some((ChatId(-100123), true)));
        assert_eq!(target("alice"), None);
        assert_eq!(target("x:1"), None);
    }
}
