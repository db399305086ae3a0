//! The one turn loop: the conversation's lock, running a turn (again, if the conversation
//! changed under it), committing it, and the same loop for changes outside a customer's turn.

use super::*;

/// How a turn's replies reach the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Returned to the caller, who sends them (a webhook's response, the terminal).
    Returned,
    /// Written to the outbox with the turn.
    Outbox,
}

impl Engine {
    /// Handles one customer message and returns the replies to send, in order. A message id
    /// seen before returns no replies.
    pub async fn handle(&self, message: Inbound) -> Result<Vec<Outbound>, EngineError> {
        self.handle_as(message, Delivery::Returned).await
    }

    /// Handles one customer message like [`Engine::handle`], but writes the replies to the
    /// [outbox](crate::outbox) in the same store commit as the turn, for channels that send
    /// every message through the platform's API (Telegram, Discord): once this returns, the
    /// turn and its replies are stored together, so the platform's update can be
    /// acknowledged — a crash before the replies are sent delays them, never loses them —
    /// and the outbox worker paces them to the platform's limits. Returns the replies
    /// written (none for a message id seen before).
    pub async fn handle_via_outbox(&self, message: Inbound) -> Result<Vec<Outbound>, EngineError> {
        self.handle_as(message, Delivery::Outbox).await
    }

    async fn handle_as(
        &self,
        message: Inbound,
        delivery: Delivery,
    ) -> Result<Vec<Outbound>, EngineError> {
        let started = std::time::Instant::now();
        let inbound = &message;
        let (replies, events) = self
            .locked(&message.conversation, || {
                self.handle_locked(inbound, started, delivery)
            })
            .await?;
        for event in &events {
            self.emit(event);
        }
        Ok(replies)
    }

    /// Runs `attempt` under the conversation's turn lock until it commits: `Ok(None)` means
    /// the conversation changed since it was loaded, and the attempt runs again on the new
    /// state (a few times, with growing pauses), since the lock is what should prevent that.
    pub(super) async fn locked<T, F>(
        &self,
        key: &ConversationKey,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, EngineError>
    where
        F: std::future::Future<Output = Result<Option<T>, EngineError>>,
    {
        let lock = self.lock(key).await?;
        let mut result = Ok(None);
        for round in 0..CONFLICT_RETRIES {
            if round > 0 {
                conflict_pause(round).await;
            }
            result = attempt().await;
            match &result {
                Ok(None) => {
                    tracing::debug!(conversation = %key, round, "conversation changed during the turn; running it again");
                }
                _ => break,
            }
        }
        release_lock(lock, key).await;
        result?.ok_or_else(|| EngineError::Conflict(key.clone()))
    }

    /// Waits for the conversation's turn lock, at most [`EngineConfig::turn_lock_wait_ms`].
    pub(super) async fn lock(
        &self,
        key: &ConversationKey,
    ) -> Result<crate::store::TurnLock, EngineError> {
        let wait = std::time::Duration::from_millis(self.config.turn_lock_wait_ms.max(1));
        match tokio::time::timeout(wait, self.store.lock(key)).await {
            Ok(lock) => Ok(lock?),
            Err(_) => {
                tracing::warn!(conversation = %key, wait_ms = self.config.turn_lock_wait_ms, "gave up waiting for the conversation's lock");
                Err(EngineError::Busy(key.clone()))
            }
        }
    }

    /// Changes a conversation outside a customer's turn (agents, notices) in one commit under
    /// its lock: `mutate` changes the state and returns the transcript lines to add and the
    /// messages to queue for the customer. `mutate` runs again if the conversation changed
    /// meanwhile. Returns the messages queued. [`EngineError::NoConversation`] when there
    /// is no such conversation.
    pub(crate) async fn change(
        &self,
        key: &ConversationKey,
        mutate: impl Fn(&mut Conversation) -> (Vec<TranscriptLine>, Vec<Outbound>) + Sync,
    ) -> Result<Vec<Outbound>, EngineError> {
        let mutate = &mutate;
        self.locked(key, || async move {
            // Agents act on conversations customers started; a mistyped key creates nothing.
            let Some(mut conversation) = self.store.load(key).await? else {
                return Err(EngineError::NoConversation(key.clone()));
            };
            let (lines, outbox) = mutate(&mut conversation);
            conversation.updated_at = now_millis();
            let committed = self
                .store
                .commit(TurnCommit {
                    conversation,
                    message_id: None,
                    lines,
                    outbox: outbox.clone(),
                })
                .await?;
            Ok(match committed {
                Committed::Conflict => None,
                Committed::Stored | Committed::Duplicate => Some(outbox),
            })
        })
        .await
    }

    /// One attempt at a turn under the lock; `None` when the conversation changed since it was
    /// loaded and the turn must run again.
    pub(super) async fn handle_locked(
        &self,
        message: &Inbound,
        started: std::time::Instant,
        delivery: Delivery,
    ) -> Result<Option<(Vec<Outbound>, Vec<EngineEvent>)>, EngineError> {
        let key = &message.conversation;
        let stored = match self.store.start_turn(key, &message.message_id).await? {
            TurnStart::Processed => {
                tracing::debug!(conversation = %key, message = %message.message_id, "duplicate delivery ignored");
                return Ok(Some((Vec::new(), Vec::new())));
            }
            TurnStart::Ready(stored) => stored,
        };
        let too_long = message.text.chars().count() > self.config.max_message_chars;
        // Nothing past the limit is read: not ranked, not searched for secrets or numbers.
        let text = if too_long { "" } else { message.text.trim() };
        let found = self.entities.extract(text);
        // Order numbers such as DD2024112300017 say nothing about the customer's language.
        let words = found
            .values()
            .fold(text.to_string(), |t, value| t.replace(value.as_str(), " "));
        // A command ("/cancel", "/human") says nothing about the customer's language either.
        let command = text.starts_with('/');
        // What the customer writes now says which language they read: it wins over the
        // platform's hint (a Chinese customer on an English phone writes Chinese). A message
        // without a real word — "km", "ok", a number — says nothing; the hint then decides for a
        // new conversation, and a going one keeps its language.
        let detected = (says_language(&words) && !command).then(|| Locale::detect(&words));
        let conversation = match stored {
            Some(c) => c,
            None => {
                let locale = detected
                    .or(message.locale)
                    .unwrap_or(self.config.default_locale);
                Conversation::new(key.clone(), &message.user, locale)
            }
        };
        let mut turn = Turn {
            conversation,
            out: Vec::new(),
            lines: vec![TranscriptLine {
                at: now_millis(),
                speaker: Speaker::Customer,
                message_id: Some(message.message_id.clone()),
                text: if too_long {
                    cut(&message.text, self.config.max_message_chars)
                } else {
                    message.text.clone()
                },
                decision: None,
                confidence: None,
                entry: None,
                kind: None,
                quick_replies: Vec::new(),
            }],
            private: message.private,
            message_id: message.message_id.clone(),
            handoff: None,
            handoff_group: None,
            locked_out: false,
            events: Vec::new(),
        };
        let flow_before = turn.conversation.flow.as_ref().map(|f| f.name.clone());
        turn.conversation.user = message.user.clone();
        // A reply to "prove this order is yours" is a secret, not a sentence: it says nothing
        // about the language, and what looks like a number in it is not an order to remember.
        let proof_expected = turn
            .conversation
            .flow
            .as_ref()
            .is_some_and(|f| f.awaiting_proof);
        if !turn.conversation.locale_pinned && !proof_expected {
            if let Some(locale) = detected {
                turn.conversation.locale = locale;
            }
        }
        if !proof_expected {
            turn.conversation.entities.extend(found.clone());
        }

        if too_long {
            tracing::info!(conversation = %key, chars = message.text.chars().count(), "message too long; asked for a shorter one");
            if proof_expected {
                // It may hold a secret: keep none of it.
                turn.lines[0].text = Reply::ProofHidden.text(turn.locale()).to_string();
            }
            let values =
                BTreeMap::from([("max".to_string(), self.config.max_message_chars.to_string())]);
            let text = self.render(Reply::TooLong.text(turn.locale()), &values);
            self.push(&mut turn, text, OutboundKind::Answer, Vec::new());
        } else if turn.conversation.holder == Holder::Queue {
            self.while_queued(&mut turn, message, text).await?;
        } else if turn.conversation.holder != Holder::Bot {
            // A person is talking with the customer: the bot stays out of it.
            self.queue.relay(message).await?;
            tracing::debug!(conversation = %key, "relayed to the person holding it");
        } else {
            self.respond(&mut turn, text, &found).await?;
        }

        turn.conversation.updated_at = now_millis();
        let flow_after = turn.conversation.flow.as_ref().map(|f| f.name.clone());
        let first = &turn.lines[0];
        // Built only for subscribers: a turn nobody watches pays nothing for it.
        let event = (!self.events.is_empty()).then(|| TurnEvent {
            conversation: key.clone(),
            user: message.user.clone(),
            message_id: message.message_id.clone(),
            locale: turn.conversation.locale,
            decision: first.decision,
            entry: first.entry.clone(),
            confidence: first.confidence,
            latency: std::time::Duration::ZERO,
            replies: turn.out.len(),
            handoff: turn.handoff,
            handoff_group: turn.handoff_group.clone(),
            flow_started: flow_after.clone().filter(|_| flow_after != flow_before),
            flow_finished: flow_before.clone().filter(|_| flow_after != flow_before),
            locked_out: turn.locked_out,
            holder: turn.conversation.holder.clone(),
        });
        let replies = turn.out;
        let extra = turn.events;
        let committed = self
            .store
            .commit(TurnCommit {
                conversation: turn.conversation,
                message_id: Some(message.message_id.clone()),
                lines: turn.lines,
                outbox: match delivery {
                    Delivery::Returned => Vec::new(),
                    Delivery::Outbox => replies.clone(),
                },
            })
            .await?;
        Ok(match committed {
            Committed::Stored => {
                let mut events: Vec<EngineEvent> = event
                    .map(|event| {
                        EngineEvent::Turn(TurnEvent {
                            latency: started.elapsed(),
                            ..event
                        })
                    })
                    .into_iter()
                    .collect();
                events.extend(extra);
                Some((replies, events))
            }
            Committed::Duplicate => Some((Vec::new(), Vec::new())),
            Committed::Conflict => None,
        })
    }
}
