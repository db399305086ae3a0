//! Handing a conversation to a person: the queue request with its context.

use super::*;

impl Engine {
    pub(super) async fn hand_off(
        &self,
        turn: &mut Turn,
        reason: HandoffReason,
        entry: Option<&FaqEntry>,
    ) -> Result<(), EngineError> {
        let skill_group = entry.map_or_else(
            || self.config.default_skill_group.clone(),
            |e| self.group_of(e),
        );
        let priority = entry.and_then(|e| e.priority).unwrap_or(Priority::Normal);
        self.hand_off_to(turn, reason, entry, skill_group, priority)
            .await
    }

    pub(super) async fn hand_off_to(
        &self,
        turn: &mut Turn,
        reason: HandoffReason,
        entry: Option<&FaqEntry>,
        skill_group: String,
        priority: Priority,
    ) -> Result<(), EngineError> {
        turn.handoff = Some(reason);
        turn.handoff_group = Some(skill_group.clone());
        if self.off_hours() {
            return self
                .hand_off_to_ticket(turn, reason, entry, skill_group, priority)
                .await;
        }
        let key = turn.conversation.key.clone();
        let mut transcript = self.store.transcript(&key).await?;
        transcript.extend(turn.lines.iter().cloned());
        let skip = transcript.len().saturating_sub(self.config.handoff_context);
        let request = HandoffRequest {
            conversation: key.clone(),
            user: turn.conversation.user.clone(),
            skill_group: skill_group.clone(),
            priority,
            reason,
            entry: entry.map(|e| e.id.clone()),
            locale: turn.locale(),
            entities: turn.conversation.entities.clone(),
            transcript: transcript.into_iter().skip(skip).collect(),
            enqueued_at: now_millis(),
        };
        let position = self.queue.enqueue(request).await?;
        tracing::info!(conversation = %key, ?reason, skill_group, ?priority, "handed off");
        turn.conversation.holder = Holder::Queue;
        turn.conversation.flow = None;
        turn.conversation.offered.clear();
        turn.conversation.misses = 0;
        let values = BTreeMap::from([("position".to_string(), position.position.to_string())]);
        let text = self.render(Reply::HandedOff.text(turn.locale()), &values);
        self.push(turn, text, OutboundKind::Handoff, Vec::new());
        Ok(())
    }
}
