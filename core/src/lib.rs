//! kefu-core: the channel-agnostic heart of the kefu support bot.
//!
//! # Layout
//!
//! - [`locale`]: the languages the bot speaks ([`Locale`]) and how a message's language is told.
//! - [`knowledge`]: the `Knowledge` port — FAQ entries ([`FaqEntry`]), ranked candidates with a
//!   calibrated confidence ([`Ranking`]), and the answer / suggest / decline policy
//!   ([`Thresholds`], [`Decision`]).
//! - [`template`]: filling `{shop_name}`-style variables in answers.
//!
//! kefu-core depends on no search engine, database or chat platform: adapters implement its
//! ports. The `kefu-knowledge` crate implements [`Knowledge`] with a tantivy index and a
//! classifier trained on the FAQ's paraphrases.
//!
//! ```
//! use kefu_core::{Decision, Locale, Thresholds};
//!
//! let thresholds = Thresholds::default();
//! assert_eq!(thresholds.decide(0.95), Decision::Answer);
//! assert_eq!(thresholds.decide(0.0), Decision::Decline);
//! assert_eq!(Locale::detect("我的卡密在哪里"), Locale::Zh);
//! assert_eq!(Locale::detect("where is my card key"), Locale::En);
//! ```

pub mod knowledge;
pub mod locale;
pub mod template;

pub use knowledge::{
    Action, Answers, Candidate, Decision, FaqEntry, Knowledge, Priority, Ranking, Thresholds,
};
pub use locale::Locale;
