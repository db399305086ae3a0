//! Understanding a message: commands, requests for a person, numbered choices, ranking
//! against the knowledge base and the answer / suggest / decline policy, answering an entry.

use super::*;

impl Engine {
    pub(super) async fn respond(
        &self,
        turn: &mut Turn,
        text: &str,
        found: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        if let Some(command) = text.strip_prefix('/') {
            if self.command(turn, command).await? {
                return Ok(());
            }
        }
        if explicit_human().is_match(text) {
            return self.hand_off(turn, HandoffReason::Requested, None).await;
        }
        if let Some(id) = self.chosen_offer(turn, text) {
            return self.choose(turn, &id).await;
        }
        if !turn.conversation.offered.is_empty() && is_choice_number(text) {
            // "5" after three choices: the choices again, not a miss.
            self.reoffer(turn);
            return Ok(());
        }
        turn.conversation.offered.clear();
        if let Some(state) = turn.conversation.flow.clone() {
            if let Some(flow) = flows::registered(&state.name).filter(|f| f.slot().is_empty()) {
                return self.run_flow(turn, flow, state, text, found).await;
            }
            return self.continue_flow(turn, state, text, found).await;
        }
        self.outside_flows(turn, text, found).await
    }

    /// A message no flow is waiting for.
    pub(super) async fn outside_flows(
        &self,
        turn: &mut Turn,
        text: &str,
        found: &BTreeMap<String, String>,
    ) -> Result<(), EngineError> {
        if self.bare_number(turn, text, found).await? {
            return Ok(());
        }
        self.understand(turn, text).await
    }

    /// A slash command; false when it is not one of the bot's (then it is read as text).
    pub(super) async fn command(
        &self,
        turn: &mut Turn,
        command: &str,
    ) -> Result<bool, EngineError> {
        let mut parts = command.split_whitespace();
        match parts.next().map(str::to_ascii_lowercase).as_deref() {
            Some("start") => {
                turn.conversation.flow = None;
                self.say(turn, Reply::Welcome, OutboundKind::Answer, &[]);
            }
            Some("help") => {
                turn.conversation.flow = None;
                self.say(turn, Reply::Help, OutboundKind::Answer, &[]);
            }
            Some("lang") => match parts.next().and_then(|l| l.parse::<Locale>().ok()) {
                Some(locale) => {
                    turn.conversation.locale = locale;
                    turn.conversation.locale_pinned = true;
                    self.say(turn, Reply::LanguageSet, OutboundKind::Answer, &[]);
                }
                None => self.say(turn, Reply::LanguageUnknown, OutboundKind::Question, &[]),
            },
            Some("cancel") => {
                turn.conversation.flow = None;
                turn.conversation.offered.clear();
                self.say(turn, Reply::Cancelled, OutboundKind::Answer, &[]);
            }
            Some(name @ ("ticket" | "refund")) => {
                let number = parts.next().map(str::to_string);
                self.order_command(turn, name, number).await?;
            }
            Some("order") => match parts.next() {
                // As a bare order number: which of the order's questions the customer has.
                Some(number) => {
                    let found = self.entities.extract(number);
                    if !self.bare_number(turn, number, &found).await? {
                        self.say(turn, Reply::Reprompt, OutboundKind::Question, &[]);
                    }
                }
                // The delivery-status entry, whose flow asks for the number.
                None => match self.knowledge.with_action(crate::Action::DeliveryStatus) {
                    Some(entry) => {
                        let id = entry.id.clone();
                        turn.conversation.flow = None;
                        self.answer_entry(turn, &id, None).await?;
                    }
                    None => self.say(turn, Reply::AskOrderNo, OutboundKind::Question, &[]),
                },
            },
            // The "message me privately" button pressed where it is an ordinary button.
            Some("private") => {
                turn.conversation.flow = None;
                self.say(turn, Reply::Welcome, OutboundKind::Answer, &[]);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The customer picked one of the offered choices.
    pub(super) async fn choose(&self, turn: &mut Turn, id: &str) -> Result<(), EngineError> {
        turn.conversation.offered.clear();
        match id {
            dialogue::HUMAN_CHOICE => self.hand_off(turn, HandoffReason::Requested, None).await,
            dialogue::CONTINUE_CHOICE => {
                match turn
                    .conversation
                    .flow
                    .as_ref()
                    .and_then(|f| flows::registered(&f.name))
                {
                    Some(flow) => self.ask_again(turn, flow),
                    None => self.say(turn, Reply::Cancelled, OutboundKind::Answer, &[]),
                }
                Ok(())
            }
            id => {
                // Another question than the flow's: the flow gives way.
                turn.conversation.flow = None;
                self.answer_entry(turn, id, None).await
            }
        }
    }

    /// A numbered (or verbatim) choice among the suggestions of the previous reply.
    pub(super) fn chosen_offer(&self, turn: &Turn, text: &str) -> Option<String> {
        let offered = &turn.conversation.offered;
        if offered.is_empty() {
            return None;
        }
        if let Ok(n) = text
            .trim_matches(|c: char| !c.is_ascii_digit())
            .parse::<usize>()
        {
            if text.chars().count() <= 3 && (1..=offered.len()).contains(&n) {
                return Some(offered[n - 1].clone());
            }
        }
        offered
            .iter()
            .find(|id| {
                self.knowledge
                    .entry(id)
                    .is_some_and(|e| title(e, turn.locale()) == text)
            })
            .cloned()
    }

    /// Ranks `text`; on a blocking thread when the knowledge port says it ranks slowly (and
    /// a tokio runtime is there to provide one), so other conversations go on meanwhile.
    pub(super) async fn rank(&self, text: &str, limit: usize) -> Ranking {
        if !self.knowledge.ranks_slowly() || tokio::runtime::Handle::try_current().is_err() {
            return self.knowledge.rank(text, limit);
        }
        let knowledge = Arc::clone(&self.knowledge);
        let query = text.to_string();
        match tokio::task::spawn_blocking(move || knowledge.rank(&query, limit)).await {
            Ok(ranking) => ranking,
            Err(e) => match e.try_into_panic() {
                // As if it had panicked here.
                Ok(panic) => std::panic::resume_unwind(panic),
                // The runtime is shutting down: rank here instead.
                Err(_) => self.knowledge.rank(text, limit),
            },
        }
    }

    pub(super) async fn understand(&self, turn: &mut Turn, text: &str) -> Result<(), EngineError> {
        let ranking = self.rank(text, self.config.suggestions.max(1)).await;
        let decision = self.config.thresholds.decide(ranking.confidence());
        self.note_understanding(turn, decision, ranking.top());
        match (decision, ranking.top()) {
            (Decision::Answer, Some(top)) => {
                let confidence = top.confidence;
                self.answer_entry(turn, &top.id.clone(), Some(confidence))
                    .await
            }
            (Decision::Suggest, Some(_)) => {
                // After repeated misses a person is one of the choices: offered, not forced.
                let mut ids: Vec<String> =
                    ranking.candidates.iter().map(|c| c.id.clone()).collect();
                if self.missed(turn) {
                    ids.push(dialogue::HUMAN_CHOICE.to_string());
                }
                let intro = Reply::SuggestIntro.text(turn.locale()).to_string();
                self.offer(turn, intro, ids);
                Ok(())
            }
            _ => {
                let reply = if self.missed(turn) {
                    Reply::OfferPerson
                } else {
                    Reply::Decline
                };
                let human = Reply::HumanButton.text(turn.locale());
                self.say(
                    turn,
                    reply,
                    OutboundKind::Answer,
                    &[QuickReply::new(human, human)],
                );
                Ok(())
            }
        }
    }

    /// Counts a turn without an answer; true when that makes [`EngineConfig::max_misses`] in a
    /// row (then a person is offered more plainly, and the count starts again).
    pub(super) fn missed(&self, turn: &mut Turn) -> bool {
        turn.conversation.misses += 1;
        if turn.conversation.misses >= self.config.max_misses {
            turn.conversation.misses = 0;
            return true;
        }
        false
    }

    pub(super) fn note_understanding(
        &self,
        turn: &mut Turn,
        decision: Decision,
        top: Option<&Candidate>,
    ) {
        let line = &mut turn.lines[0];
        line.decision = Some(decision);
        line.confidence = Some(top.map_or(0.0, |c| c.confidence));
        line.entry = top.map(|c| c.id.clone());
    }

    pub(super) async fn answer_entry(
        &self,
        turn: &mut Turn,
        id: &str,
        confidence: Option<f32>,
    ) -> Result<(), EngineError> {
        let Some(entry) = self.knowledge.entry(id).cloned() else {
            return self
                .hand_off(turn, HandoffReason::NotUnderstood, None)
                .await;
        };
        if confidence.is_none() {
            // A chosen suggestion: the customer confirmed the entry.
            let line = &mut turn.lines[0];
            line.decision = Some(Decision::Answer);
            line.entry = Some(entry.id.clone());
        }
        turn.conversation.misses = 0;
        turn.conversation.offered.clear();
        let answer = self.render(entry.answer.get(turn.locale()), &BTreeMap::new());
        if entry.needs_person() {
            self.push(turn, answer, OutboundKind::Answer, Vec::new());
            return self
                .hand_off(turn, HandoffReason::NeedsPerson, Some(&entry))
                .await;
        }
        if let Some(flow) = entry.action.and_then(flows::for_action) {
            self.push(turn, answer, OutboundKind::Answer, Vec::new());
            if flow.private_only() && !turn.private {
                // Not even the order number is asked for in a group: straight to a private
                // chat.
                let button = super::ownership::private_chat_button(turn.locale());
                self.say(
                    turn,
                    Reply::KeysPrivateOnly,
                    OutboundKind::Answer,
                    &[button],
                );
                return Ok(());
            }
            // What the customer asked, for the description of any ticket the flow opens.
            let request = turn.lines[0].text.clone();
            turn.conversation.flow = Some(FlowState {
                name: flow.name().to_string(),
                entry: entry.id.clone(),
                slots: BTreeMap::from([(REQUEST.to_string(), request)]),
                reprompts: 0,
                awaiting_proof: false,
                awaiting_confirmation: false,
            });
            let known = turn.conversation.entities.clone();
            if let Some((kind, value)) = flows::filled(flow, &known) {
                return self.finish_flow(turn, flow, kind, value, &entry).await;
            }
            if flow
                .without_slot(&mut OrderStep::new(self, turn, &entry, None))
                .await?
            {
                turn.conversation.flow = None;
                return Ok(());
            }
            self.say(turn, flow.ask(), OutboundKind::Question, &[]);
            return Ok(());
        }
        let buttons = entry
            .follow_ups
            .iter()
            .filter_map(|f| self.knowledge.entry(f))
            .map(|f| {
                // The button shows the title and sends a question that finds the entry.
                let question = f
                    .questions
                    .iter()
                    .find(|q| Locale::detect(q) == turn.locale())
                    .or_else(|| f.questions.first())
                    .cloned()
                    .unwrap_or_default();
                QuickReply::new(title(f, turn.locale()), question)
            })
            .collect();
        self.push(turn, answer, OutboundKind::Answer, buttons);
        Ok(())
    }

    /// If `text` is answered by an entry other than the one that started `flow`, leaves the
    /// flow and answers it (true); otherwise does nothing (false).
    pub(super) async fn changed_topic(
        &self,
        turn: &mut Turn,
        flow: &FlowState,
        text: &str,
    ) -> Result<bool, EngineError> {
        let ranking = self.rank(text, 1).await;
        let decision = self.config.thresholds.decide(ranking.confidence());
        let Some(top) = ranking.top().filter(|top| top.id != flow.entry) else {
            return Ok(false);
        };
        if decision != Decision::Answer {
            return Ok(false);
        }
        tracing::debug!(conversation = %turn.conversation.key, from = %flow.name, to = %top.id, "topic changed mid-flow");
        turn.conversation.flow = None;
        self.note_understanding(turn, decision, Some(top));
        let confidence = top.confidence;
        self.answer_entry(turn, &top.id.clone(), Some(confidence))
            .await?;
        Ok(true)
    }
}
