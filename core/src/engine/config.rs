//! How the engine behaves.

use super::*;

/// How the engine behaves; every field has a sensible default.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// The answer / suggest / decline bands.
    pub thresholds: Thresholds,
    /// Template variables filled into answers and the bot's own messages.
    pub variables: BTreeMap<String, String>,
    /// The language of a conversation whose first message tells none (digits only, say).
    pub default_locale: Locale,
    /// The skill group of hand-offs that no FAQ entry names.
    pub default_skill_group: String,
    /// Turns in a row without an answer before the conversation goes to a person.
    pub max_misses: u32,
    /// Times a flow asks again for its slot before a person takes over.
    pub max_reprompts: u32,
    /// How many candidates a "did you mean" offers.
    pub suggestions: usize,
    /// How many transcript lines a hand-off request carries.
    pub handoff_context: usize,
    /// How long a customer's proof of owning an order holds in the conversation (ms).
    pub verification_ttl_ms: u64,
    /// Failed proofs within [`EngineConfig::failed_proof_window_ms`], for one user or one
    /// order, after which lookups stop and the risk group takes over.
    pub max_failed_proofs: usize,
    /// The window failed proofs are counted in (ms). The SQL stores keep attempts for 7
    /// days, so longer windows count only the last 7 days.
    pub failed_proof_window_ms: u64,
    /// The skill group that handles suspicious lookups.
    pub risk_skill_group: String,
    /// Whether a buyer who proves an order with a secret in a private chat gets their chat
    /// identity linked to it (when it has none), so that account needs no proof again.
    pub link_identity_on_proof: bool,
    /// How many times in 24 hours an order's card keys are shown to its buyer (the first
    /// time and resends together) before a person must check; 0 for no limit.
    pub max_key_views_per_day: usize,
    /// Whether a verified buyer may cancel an unpaid order themselves (otherwise the request
    /// becomes a ticket).
    pub self_cancel: bool,
    /// Refunds of undelivered orders up to this amount (smallest currency unit) are made at
    /// once; larger ones, and every delivered order's, become tickets. 0: never automatic.
    pub refund_auto_approve_cents: i64,
    /// The skill group of refund tickets.
    pub refund_skill_group: String,
    /// How long a team has for a ticket the bot opens (ms), unless its kind has its own
    /// time in [`Self::ticket_sla_by_kind`].
    pub ticket_sla_ms: u64,
    /// How long a team has for tickets of a kind (ms): by default card-key problems
    /// (`card_key`, `delivery`) are due in 2 hours.
    pub ticket_sla_by_kind: BTreeMap<String, u64>,
    /// The shop's time zone, as minutes from UTC (480 for China), for times shown to
    /// customers.
    pub utc_offset_minutes: i32,
    /// When people answer hand-offs, in the shop's time zone ([`Self::utc_offset_minutes`]);
    /// outside them a hand-off opens a ticket and says when people are back. `None`: always.
    pub support_hours: Option<SupportHours>,
    /// Support hours of single skill groups (others follow [`Self::support_hours`]).
    pub group_hours: BTreeMap<String, SupportHours>,
    /// Customers served in the VIP lane: `user` or `channel:user`.
    pub vip_customers: std::collections::BTreeSet<String>,
    /// Customers with at least this many paid orders are served in the VIP lane (needs an
    /// order system that lists a customer's orders). `None`: not by orders.
    pub vip_min_paid_orders: Option<usize>,
    /// Whether a customer waiting for a person still gets the bot's answer to a clear FAQ
    /// question (their message goes to the person either way).
    pub answer_while_queued: bool,
    /// The longest message, in characters, the bot reads. A longer one gets a polite request
    /// to send it shorter, is not ranked, and only its beginning is kept in the transcript.
    pub max_message_chars: usize,
    /// Whether closing a conversation ([`crate::Agents::close`]) asks the customer to rate
    /// the help they got (the satisfaction survey flow).
    pub survey_on_close: bool,
    /// How long a turn waits for its conversation's lock (ms) before it gives up with
    /// [`EngineError::Busy`], so a stuck conversation cannot stall the messages queued
    /// behind it for ever.
    pub turn_lock_wait_ms: u64,
}

impl EngineConfig {
    /// How long a team has for a ticket of `kind` (ms).
    pub fn ticket_sla(&self, kind: &str) -> u64 {
        self.ticket_sla_by_kind
            .get(kind)
            .copied()
            .unwrap_or(self.ticket_sla_ms)
    }

    /// The support hours of `skill_group` (its own, or the shop's).
    pub fn hours_of(&self, skill_group: &str) -> Option<SupportHours> {
        self.group_hours
            .get(skill_group)
            .copied()
            .or(self.support_hours)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            thresholds: Thresholds::default(),
            variables: BTreeMap::new(),
            default_locale: Locale::Zh,
            default_skill_group: "general".to_string(),
            max_misses: 2,
            max_reprompts: 2,
            suggestions: 3,
            handoff_context: 50,
            verification_ttl_ms: 30 * 60 * 1000,
            max_failed_proofs: 5,
            failed_proof_window_ms: 60 * 60 * 1000,
            risk_skill_group: "risk".to_string(),
            link_identity_on_proof: true,
            max_key_views_per_day: 5,
            self_cancel: true,
            refund_auto_approve_cents: 0,
            refund_skill_group: "refunds".to_string(),
            ticket_sla_ms: 24 * 60 * 60 * 1000,
            ticket_sla_by_kind: BTreeMap::from([
                ("card_key".to_string(), 2 * 60 * 60 * 1000),
                ("delivery".to_string(), 2 * 60 * 60 * 1000),
            ]),
            group_hours: BTreeMap::new(),
            vip_customers: Default::default(),
            vip_min_paid_orders: None,
            utc_offset_minutes: 480,
            max_message_chars: 4000,
            turn_lock_wait_ms: 30_000,
            support_hours: None,
            answer_while_queued: true,
            survey_on_close: true,
        }
    }
}
