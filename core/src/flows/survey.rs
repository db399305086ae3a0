//! The satisfaction survey, asked when an agent closes a conversation
//! ([`crate::Agents::close`], with [`crate::EngineConfig::survey_on_close`]): a score from 1
//! to 5 as quick replies, then an optional comment. The rating is stored with the
//! conversation and the agent who held it.
//!
//! A message that is not a score (a new question, say) ends the survey without a rating and
//! is answered as usual; so is a clear question instead of a comment.

use super::{Flow, FlowContext, Step};
use crate::locale::Locale;
use crate::message::{OutboundKind, QuickReply};
use regex::Regex;
use std::sync::OnceLock;

/// The flow's name.
pub const NAME: &str = "survey";
/// The slot holding the agent being rated.
pub const AGENT: &str = "agent";
/// The slot set once the score is in (the comment is awaited).
const SCORED: &str = "scored";

/// The satisfaction survey.
pub struct Survey;

#[derive(Clone, Copy)]
enum Says {
    Ask,
    AskComment,
    Skip,
    Thanks,
}

fn text(says: Says, locale: Locale) -> &'static str {
    use Locale::{En, Zh};
    match (says, locale) {
        (Says::Ask, Zh) => "本次服务您满意吗？请回复 1–5 分（5 分最满意），帮助我们做得更好。",
        (Says::Ask, En) => {
            "How did we do? Reply with a score from 1 to 5 (5 is best) to help us improve."
        }
        (Says::AskComment, Zh) => {
            "谢谢您的评分！还有什么想对我们说的吗？直接回复即可；不需要的话点“跳过”。"
        }
        (Says::AskComment, En) => {
            "Thanks for rating us! Anything you'd like to tell us? Just reply, or press Skip."
        }
        (Says::Skip, Zh) => "跳过",
        (Says::Skip, En) => "Skip",
        (Says::Thanks, Zh) => "感谢您的反馈，我们会认真看每一条意见。还有其他问题随时问我。",
        (Says::Thanks, En) => {
            "Thank you for your feedback; we read every comment. Ask me anything else any time."
        }
    }
}

fn score_buttons(locale: Locale) -> Vec<QuickReply> {
    let labels: [&str; 5] = match locale {
        Locale::Zh => ["5 非常满意", "4 满意", "3 一般", "2 不满意", "1 很不满意"],
        Locale::En => ["5 Excellent", "4 Good", "3 OK", "2 Poor", "1 Very poor"],
    };
    labels
        .iter()
        .zip(["5", "4", "3", "2", "1"])
        .map(|(label, score)| QuickReply::new(*label, score))
        .collect()
}

/// The score a reply gives, if it gives one: a digit 1–5 (also full-width), alone or as
/// "5分", "4 stars", "给3分", "3/5"; a Chinese numeral with 分 or 星 ("三星"); a row of stars;
/// or a word ("满意", "excellent").
pub fn score(reply: &str) -> Option<u8> {
    static SHAPED: OnceLock<Regex> = OnceLock::new();
    let shaped = SHAPED.get_or_init(|| {
        Regex::new(
            r"(?ix)^(?:给|打|评)?\s*(?:
                (?P<d>[1-5１-５])\s*(?:分|星|颗星|stars?|points?|/\s*5)?
              | (?P<c>[一二两三四五])\s*(?:分|星|颗星)
            )\s*(?:吧|了)?\s*[!！.。~]*$",
        )
        .expect("valid regex")
    });
    let t = reply.trim().to_lowercase();
    if let Some(caps) = shaped.captures(&t) {
        let n = match (caps.name("d"), caps.name("c")) {
            (Some(d), _) => d.as_str().chars().next().map(|c| match c {
                '１'..='５' => c as u32 - '０' as u32,
                _ => c.to_digit(10).unwrap_or(0),
            }),
            (_, Some(c)) => "一二三四五"
                .chars()
                .position(|x| c.as_str().starts_with(x))
                .map(|i| i as u32 + 1)
                .or(Some(2)),
            _ => None,
        };
        return n.and_then(|n| u8::try_from(n).ok());
    }
    let stars = t.chars().filter(|c| matches!(c, '⭐' | '★' | '🌟')).count();
    if stars > 0
        && t.chars()
            .all(|c| matches!(c, '⭐' | '★' | '🌟' | ' ' | '\u{fe0f}'))
    {
        return u8::try_from(stars.min(5)).ok();
    }
    match t.trim_matches(|c: char| !c.is_alphanumeric()) {
        "非常满意" | "很满意" | "超级满意" | "excellent" | "perfect" | "great" | "amazing" => {
            Some(5)
        }
        "满意" | "挺好" | "不错" | "good" | "very good" => Some(4),
        "一般" | "还行" | "还可以" | "ok" | "okay" | "average" | "fine" => Some(3),
        "不满意" | "差" | "不好" | "bad" | "poor" => Some(2),
        "非常不满意" | "很不满意" | "很差" | "太差了" | "terrible" | "awful" | "very poor" => {
            Some(1)
        }
        _ => None,
    }
}

fn is_skip(reply: &str) -> bool {
    let t = reply.trim().to_lowercase();
    let t = t.trim_matches(|c: char| !c.is_alphanumeric());
    matches!(
        t,
        "跳过"
            | "不用"
            | "不用了"
            | "没有"
            | "没了"
            | "无"
            | "skip"
            | "no"
            | "nope"
            | "nothing"
            | "no thanks"
    )
}

impl Flow for Survey {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&self, cx: &mut FlowContext<'_>) {
        let locale = cx.locale();
        cx.say(
            text(Says::Ask, locale),
            OutboundKind::Survey,
            score_buttons(locale),
        );
    }

    fn on_message(&self, cx: &mut FlowContext<'_>, reply: &str) -> Step {
        let locale = cx.locale();
        if !cx.slots().contains_key(SCORED) {
            let Some(score) = score(reply) else {
                return Step::NotMine;
            };
            let agent = cx.slots().get(AGENT).cloned();
            cx.rate(score, agent);
            cx.slots().insert(SCORED.to_string(), score.to_string());
            let skip = text(Says::Skip, locale);
            cx.say(
                text(Says::AskComment, locale),
                OutboundKind::Survey,
                vec![QuickReply::new(skip, skip)],
            );
            return Step::Continue;
        }
        if cx.is_clear_question() {
            return Step::NotMine;
        }
        // Another of the score buttons, pressed after the first (the buttons stay under the
        // message): a changed mind, not a comment.
        if let Some(changed) = score(reply).filter(|_| reply.trim().chars().count() == 1) {
            cx.rescore(changed);
            cx.slots().insert(SCORED.to_string(), changed.to_string());
            let skip = text(Says::Skip, locale);
            cx.say(
                text(Says::AskComment, locale),
                OutboundKind::Survey,
                vec![QuickReply::new(skip, skip)],
            );
            return Step::Continue;
        }
        if !is_skip(reply) {
            cx.comment(reply);
        }
        cx.say(text(Says::Thanks, locale), OutboundKind::Answer, Vec::new());
        Step::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_read_in_many_shapes() {
        for (reply, want) in [
            ("5", Some(5)),
            ("５", Some(5)),
            ("4分", Some(4)),
            ("给3分吧", Some(3)),
            ("4 stars", Some(4)),
            ("三星", Some(3)),
            ("⭐⭐⭐⭐", Some(4)),
            ("非常满意", Some(5)),
            ("Excellent!", Some(5)),
            ("terrible", Some(1)),
            ("一般", Some(3)),
            ("0", None),
            ("6", None),
            ("我的订单 20241123000017 卡密没到", None),
            ("where is my card key", None),
            ("2 or 3", None),
            ("等一下", None),
            ("3天了还没到", None),
            ("3/5", Some(3)),
            ("两星", Some(2)),
        ] {
            assert_eq!(score(reply), want, "{reply}");
        }
    }

    #[test]
    fn skipping_is_understood_in_both_languages() {
        assert!(is_skip("跳过"));
        assert!(is_skip("Skip"));
        assert!(is_skip("no thanks"));
        assert!(!is_skip("the agent was very patient"));
    }
}
