//! What the bot says: templates filled, replies and their transcript lines.

use super::*;

impl Engine {
    pub(crate) fn render(&self, text: &str, extra: &BTreeMap<String, String>) -> String {
        if extra.is_empty() {
            return template::render(text, &self.config.variables);
        }
        let mut vars = self.config.variables.clone();
        vars.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        template::render(text, &vars)
    }

    pub(super) fn say(
        &self,
        turn: &mut Turn,
        reply: Reply,
        kind: OutboundKind,
        buttons: &[QuickReply],
    ) {
        let text = self.render(reply.text(turn.locale()), &BTreeMap::new());
        self.push(turn, text, kind, buttons.to_vec());
    }

    pub(super) fn push(
        &self,
        turn: &mut Turn,
        text: String,
        kind: OutboundKind,
        buttons: Vec<QuickReply>,
    ) {
        self.push_masked(turn, text.clone(), text, kind, buttons);
    }

    /// Sends `text` but keeps `recorded` in the transcript (which agents see): for replies
    /// carrying card keys.
    pub(super) fn push_masked(
        &self,
        turn: &mut Turn,
        text: String,
        recorded: String,
        kind: OutboundKind,
        buttons: Vec<QuickReply>,
    ) {
        turn.lines.push(TranscriptLine {
            at: now_millis(),
            speaker: Speaker::Bot,
            message_id: None,
            text: recorded,
            decision: None,
            confidence: None,
            entry: None,
            kind: Some(kind),
            quick_replies: buttons.clone(),
        });
        turn.out.push(Outbound {
            conversation: turn.conversation.key.clone(),
            text,
            quick_replies: buttons,
            kind,
        });
    }
}
