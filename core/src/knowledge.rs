//! The `Knowledge` port: FAQ entries, ranked candidates with a calibrated confidence, and the
//! policy that turns a confidence into answer / suggest / decline.

use crate::locale::Locale;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A flow the bot starts instead of giving a static answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Look up the card keys of an order the asker owns.
    CardKeyLookup,
    /// Explain an order's delivery state.
    DeliveryStatus,
    /// Report an after-sales ticket's progress.
    TicketProgress,
    /// Open a refund request.
    RefundRequest,
    /// Cancel an unpaid order (a paid, undelivered one becomes a refund request).
    CancelOrder,
    /// Hand the conversation to a person at once.
    Handoff,
}

impl Action {
    /// Every action, in the spelling FAQ files use.
    pub const ALL: [Action; 6] = [
        Action::CardKeyLookup,
        Action::DeliveryStatus,
        Action::TicketProgress,
        Action::RefundRequest,
        Action::CancelOrder,
        Action::Handoff,
    ];

    /// The action's name as written in FAQ files.
    pub fn name(self) -> &'static str {
        match self {
            Action::CardKeyLookup => "card_key_lookup",
            Action::DeliveryStatus => "delivery_status",
            Action::TicketProgress => "ticket_progress",
            Action::RefundRequest => "refund_request",
            Action::CancelOrder => "cancel_order",
            Action::Handoff => "handoff",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Action {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL.into_iter().find(|a| a.name() == s).ok_or(())
    }
}

/// How urgently a hand-off is served; higher is sooner.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Can wait behind everything else.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Served before normal requests.
    High,
    /// Money or an account at risk: served first.
    Urgent,
}

impl Priority {
    /// One step more urgent (urgent stays urgent).
    pub fn raised(self) -> Priority {
        match self {
            Priority::Low => Priority::Normal,
            Priority::Normal => Priority::High,
            Priority::High | Priority::Urgent => Priority::Urgent,
        }
    }

    /// Every priority, lowest first, in the spelling FAQ files use.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    /// The priority's name as written in FAQ files.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

impl FromStr for Priority {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL.into_iter().find(|p| p.name() == s).ok_or(())
    }
}

/// An answer in every supported locale.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answers {
    /// The Chinese answer (may hold `{variable}` templates).
    pub zh: String,
    /// The English answer (may hold `{variable}` templates).
    pub en: String,
}

impl Answers {
    /// The answer in `locale`.
    pub fn get(&self, locale: Locale) -> &str {
        match locale {
            Locale::Zh => &self.zh,
            Locale::En => &self.en,
        }
    }
}

/// How an entry is called on buttons and in "did you mean" lists, per locale; either may be
/// missing (then the entry's first question in that language stands in).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Titles {
    /// The Chinese title.
    pub zh: Option<String>,
    /// The English title.
    pub en: Option<String>,
}

impl Titles {
    /// The title in `locale`, if the editor gave one.
    pub fn get(&self, locale: Locale) -> Option<&str> {
        match locale {
            Locale::Zh => self.zh.as_deref(),
            Locale::En => self.en.as_deref(),
        }
    }
}

/// One question-and-answer entry of the knowledge base, as an editor wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaqEntry {
    /// Stable identifier, dotted by convention (`refund.policy`).
    pub id: String,
    /// The canonical question first, then paraphrases in any language.
    pub questions: Vec<String>,
    /// The answer text per locale.
    pub answer: Answers,
    /// What buttons and "did you mean" lists call the entry.
    #[serde(default)]
    pub title: Titles,
    /// The human team that takes this topic on hand-off.
    pub skill_group: Option<String>,
    /// A flow to start instead of giving the static answer.
    pub action: Option<Action>,
    /// Priority of a hand-off started from this entry.
    pub priority: Option<Priority>,
    /// Ids of entries suggested after this one.
    pub follow_ups: Vec<String>,
    /// Free labels for editors and reports.
    pub tags: Vec<String>,
    /// Questions the editor asserts must match this entry (checked by `kefu kb check`).
    pub examples: Vec<String>,
}

impl FaqEntry {
    /// An entry with a static answer and nothing optional set (no skill group, action,
    /// priority, follow-ups, tags or examples); set those fields directly as needed.
    pub fn new(
        id: impl Into<String>,
        questions: impl IntoIterator<Item = impl Into<String>>,
        answer: Answers,
    ) -> Self {
        FaqEntry {
            id: id.into(),
            questions: questions.into_iter().map(Into::into).collect(),
            answer,
            title: Titles::default(),
            skill_group: None,
            action: None,
            priority: None,
            follow_ups: Vec::new(),
            tags: Vec::new(),
            examples: Vec::new(),
        }
    }

    /// Whether answering this entry means passing the customer to a person.
    pub fn needs_person(&self) -> bool {
        self.action == Some(Action::Handoff)
    }

    /// What a button or a "did you mean" list calls the entry in `locale`: its title, else
    /// its first question in that language (else its first question) with the first letter
    /// capitalised, else its id.
    pub fn title(&self, locale: Locale) -> String {
        if let Some(title) = self.title.get(locale) {
            return title.to_string();
        }
        let question = self
            .questions
            .iter()
            .find(|q| Locale::detect(q) == locale)
            .or_else(|| self.questions.first())
            .map_or(self.id.as_str(), String::as_str);
        let mut chars = question.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => String::new(),
        }
    }
}

/// One FAQ entry proposed for a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The entry's id.
    pub id: String,
    /// The ranking score the candidates are ordered by (not comparable across queries).
    pub score: f32,
    /// How sure the matcher is that this entry answers the query, in [0, 1].
    pub confidence: f32,
    /// The entry's question that is closest to the query.
    pub matched_question: String,
}

/// The candidates for one query, best first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    /// The candidates, best first; may be empty.
    pub candidates: Vec<Candidate>,
}

impl Ranking {
    /// The best candidate, if any.
    pub fn top(&self) -> Option<&Candidate> {
        self.candidates.first()
    }

    /// The best candidate's confidence, or 0 when there is none.
    pub fn confidence(&self) -> f32 {
        self.top().map_or(0.0, |c| c.confidence)
    }
}

/// What the bot does with a query, by the confidence of its best candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Confident: give the best entry's answer (or start its action).
    Answer,
    /// Unsure: offer the top candidates as "did you mean".
    Suggest,
    /// Not an FAQ question: say so and offer a person.
    Decline,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Answer => "answer",
            Decision::Suggest => "suggest",
            Decision::Decline => "decline",
        })
    }
}

/// The confidence bands of the answer / suggest / decline policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// At or above this confidence the bot answers.
    pub answer: f32,
    /// At or above this (and below `answer`) the bot suggests its top candidates.
    pub suggest: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            answer: 0.5,
            suggest: 0.25,
        }
    }
}

impl Thresholds {
    /// The decision for a best candidate of this confidence.
    pub fn decide(&self, confidence: f32) -> Decision {
        if confidence >= self.answer {
            Decision::Answer
        } else if confidence >= self.suggest {
            Decision::Suggest
        } else {
            Decision::Decline
        }
    }
}

/// The knowledge port: ranked FAQ candidates for a customer's message.
///
/// Implementations are read-only after construction and shared across tasks.
pub trait Knowledge: Send + Sync {
    /// The best `limit` candidates for `query`, best first, each with a confidence in [0, 1].
    fn rank(&self, query: &str, limit: usize) -> Ranking;

    /// The entry with this id.
    fn entry(&self, id: &str) -> Option<&FaqEntry>;

    /// The first entry whose action is `action`: what a command such as `/refund` starts its
    /// flow from. The default finds none, and such commands then say they are unavailable.
    fn with_action(&self, action: Action) -> Option<&FaqEntry> {
        let _ = action;
        None
    }

    /// Whether [`Knowledge::rank`] costs enough CPU (milliseconds, as with a sentence encoder)
    /// that the engine should run it on a blocking thread rather than on an async worker,
    /// where it would hold up every other conversation that worker serves. The default, for
    /// rankings that take microseconds, is no.
    fn ranks_slowly(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_split_into_three_bands() {
        let t = Thresholds {
            answer: 0.6,
            suggest: 0.3,
        };
        assert_eq!(t.decide(0.6), Decision::Answer);
        assert_eq!(t.decide(0.59), Decision::Suggest);
        assert_eq!(t.decide(0.3), Decision::Suggest);
        assert_eq!(t.decide(0.29), Decision::Decline);
    }

    #[test]
    fn actions_and_priorities_round_trip_their_names() {
        for a in Action::ALL {
            assert_eq!(a.name().parse::<Action>(), Ok(a));
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.name())
            );
        }
        for p in Priority::ALL {
            assert_eq!(p.name().parse::<Priority>(), Ok(p));
        }
        assert!("refund".parse::<Action>().is_err());
    }
}
