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
        if self.off_hours(&skill_group) {
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
            vip: false,
            escalated_at: None,
            note: None,
        };
        let request = self.vip_lane(request).await;
        let priority = request.priority;
        let position = self.queue.enqueue(request).await?;
        tracing::info!(conversation = %key, ?reason, skill_group, ?priority, "handed off");
        turn.conversation.holder = Holder::Queue;
        turn.conversation.flow = None;
        turn.conversation.offered.clear();
        turn.conversation.misses = 0;
        let mut values = BTreeMap::from([("position".to_string(), position.position.to_string())]);
        if let Some(hours) = self.config.group_hours.get(&skill_group) {
            values.insert("support_hours".to_string(), hours.to_string());
        }
        let mut text = self.render(Reply::HandedOff.text(turn.locale()), &values);
        if let Some(wait) = self.wait_estimate(&skill_group, turn.locale()).await {
            text.push_str(if turn.locale() == Locale::Zh { "" } else { " " });
            text.push_str(&wait);
        }
        self.push(turn, text, OutboundKind::Handoff, Vec::new());
        Ok(())
    }

    /// `request` in the VIP lane when its customer is on the shop's list or has bought
    /// enough: marked, and at least high priority. An order system that cannot list a
    /// customer's orders, or fails, leaves the request as it is.
    pub(crate) async fn vip_lane(&self, mut request: HandoffRequest) -> HandoffRequest {
        let key = &request.conversation;
        let listed = self.config.vip_customers.contains(&request.user)
            || self
                .config
                .vip_customers
                .contains(&format!("{}:{}", key.channel, request.user));
        let by_orders = match (self.config.vip_min_paid_orders, &self.orders) {
            (Some(min), Some(orders)) if !listed => {
                match orders.for_customer(&key.channel, &request.user).await {
                    Ok(bought) => bought.iter().filter(|o| o.paid_at.is_some()).count() >= min,
                    Err(e) => {
                        tracing::debug!(error = %e, "VIP lane: cannot count the customer's orders");
                        false
                    }
                }
            }
            _ => false,
        };
        if listed || by_orders {
            request.vip = true;
            request.priority = request.priority.max(Priority::High);
        }
        request
    }

    /// "About N minutes" from the group's recent pick-ups (last 24 hours); `None` without
    /// any, or when the queue cannot tell.
    pub(crate) async fn wait_estimate(&self, skill_group: &str, locale: Locale) -> Option<String> {
        let since = now_millis().saturating_sub(24 * 60 * 60 * 1000);
        let wait = match self.queue.recent_wait(skill_group, since).await {
            Ok(wait) => wait?,
            Err(e) => {
                tracing::debug!(error = %e, "no wait estimate");
                return None;
            }
        };
        let minutes = wait.div_ceil(60_000).max(1);
        let values = BTreeMap::from([("minutes".to_string(), minutes.to_string())]);
        Some(self.render(Reply::EstimatedWait.text(locale), &values))
    }
}
