//! Running flows: those that talk for themselves, and those with a slot (the slot, then the
//! proof and the confirmation).

use super::*;

impl Engine {
    /// Starts the registered flow `name` in `conversation` outside a customer's turn (an
    /// agent closing it starts the survey): sets it running with `slots` and returns what it
    /// says first, for the caller to record and queue. False when no such flow is registered.
    pub(crate) fn start_flow(
        &self,
        conversation: &mut Conversation,
        name: &str,
        mut slots: BTreeMap<String, String>,
    ) -> Vec<(String, OutboundKind, Vec<QuickReply>)> {
        let Some(flow) = flows::registered(name) else {
            return Vec::new();
        };
        let said = {
            let mut cx = FlowContext::new(conversation, &mut slots, false, now_millis());
            flow.start(&mut cx);
            cx.said
        };
        conversation.flow = Some(FlowState {
            name: name.to_string(),
            entry: String::new(),
            slots,
            reprompts: 0,
            awaiting_proof: false,
            awaiting_confirmation: false,
        });
        said
    }

    /// A message for a registered [`Flow`] in progress.
    pub(super) async fn run_flow(
        &self,
        turn: &mut Turn,
        flow: &dyn Flow,
        mut state: FlowState,
        text: &str,
        found: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        turn.conversation.flow = None;
        if cancel_words().is_match(text) {
            self.say(turn, Reply::Cancelled, OutboundKind::Answer, &[]);
            return Ok(());
        }
        // A new matter rather than an answer to the flow: a confident match that is not small
        // talk, and either asks something or starts a task ("卡密还是没收到").
        let ranking = self.rank(text, 1).await;
        let confident = self.config.thresholds.decide(ranking.confidence()) == Decision::Answer;
        let clear = confident
            && ranking
                .top()
                .and_then(|top| self.knowledge.entry(&top.id))
                .is_some_and(|e| {
                    !e.tags.iter().any(|t| t == "smalltalk")
                        && (e.action.is_some() || super::dialogue::asks_something(text))
                });
        let mut slots = std::mem::take(&mut state.slots);
        let (step, said, rated) = {
            let mut cx = FlowContext::new(&mut turn.conversation, &mut slots, clear, now_millis());
            let step = flow.on_message(&mut cx, text);
            (step, cx.said, cx.rated)
        };
        for (text, kind, buttons) in said {
            self.push(turn, text, kind, buttons);
        }
        if let Some(rating) = rated {
            tracing::info!(conversation = %turn.conversation.key, score = rating.score, "rated");
            turn.events.push(EngineEvent::Rated {
                conversation: turn.conversation.key.clone(),
                score: rating.score,
                agent: rating.agent,
            });
        }
        match step {
            Step::Continue => {
                state.slots = slots;
                turn.conversation.flow = Some(state);
                Ok(())
            }
            Step::Done => Ok(()),
            Step::NotMine => self.outside_flows(turn, text, found).await,
        }
    }

    pub(super) async fn continue_flow(
        &self,
        turn: &mut Turn,
        mut flow: FlowState,
        text: &str,
        found: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        let Some(this) = flows::registered(&flow.name) else {
            turn.conversation.flow = None;
            return self.understand(turn, text).await;
        };
        if cancel_words().is_match(text) {
            turn.conversation.flow = None;
            match flow
                .slots
                .get(ORDER_NO)
                .filter(|_| flow.awaiting_confirmation)
            {
                Some(number) => {
                    let number = number.clone();
                    self.say_about_order(turn, Reply::ChangeKept, &number, OutboundKind::Answer);
                }
                None => self.say(turn, Reply::Cancelled, OutboundKind::Answer, &[]),
            }
            return Ok(());
        }
        let entry = self.knowledge.entry(&flow.entry).cloned();
        if flow.awaiting_confirmation || flow.awaiting_proof {
            let Some(number) = flow.slots.get(ORDER_NO).cloned() else {
                turn.conversation.flow = None;
                return self.understand(turn, text).await;
            };
            return match (entry.as_ref(), self.orders.is_some()) {
                (Some(entry), true) if flow.awaiting_confirmation => {
                    self.continue_confirmation(turn, this, flow, text, entry)
                        .await
                }
                (Some(entry), true) => {
                    self.continue_proof(turn, this, flow, text, found, entry)
                        .await
                }
                // Stored mid-flow, then the engine restarted without an order system (or
                // without the entry): end the flow politely instead of failing every time.
                (entry, _) => {
                    self.order_flow_gone(turn, &flow, &number, entry, text)
                        .await
                }
            };
        }
        if let (Some((kind, value)), Some(entry)) = (flows::filled(this, found), entry.as_ref()) {
            return self.finish_flow(turn, this, kind, value, entry).await;
        }
        // Not the slot: a new question changes the topic, one that may be offers choices
        // (going on with the flow among them); anything else is asked again.
        if self.changed_topic(turn, &flow, text).await? {
            return Ok(());
        }
        if self.offer_in_flow(turn, &flow.entry, text).await? {
            return Ok(());
        }
        flow.reprompts += 1;
        if flow.reprompts > self.config.max_reprompts {
            turn.conversation.flow = None;
            return self
                .hand_off(turn, HandoffReason::FlowNeedsPerson, entry.as_ref())
                .await;
        }
        turn.conversation.flow = Some(flow);
        self.say(turn, Reply::Reprompt, OutboundKind::Question, &[]);
        Ok(())
    }

    pub(super) async fn finish_flow(
        &self,
        turn: &mut Turn,
        flow: &'static dyn Flow,
        kind: &str,
        value: &str,
        entry: &FaqEntry,
    ) -> Result<(), EngineError> {
        let request = turn
            .conversation
            .flow
            .take()
            .and_then(|mut f| f.slots.remove(REQUEST));
        if kind == ORDER_NO && self.orders.is_some() {
            return self.order_flow(turn, flow, value, entry, request).await;
        }
        let mut cx = OrderStep::new(self, turn, entry, request);
        if kind == TICKET_NO {
            return flow.with_ticket(&mut cx, value).await;
        }
        tracing::info!(conversation = %cx.key(), flow = flow.name(), "flow collected its slot");
        cx.noted_for_person(kind, value).await
    }
}
