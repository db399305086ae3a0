//! Evaluation over labelled cases: accuracy, out-of-scope detection, calibration and latency.
//!
//! Cases are labelled utterances ([`crate::import::Labelled`]); `label: null` marks a question
//! the bot must not answer. "Answered" means the best candidate's confidence reaches the answer
//! threshold.

use crate::import::Labelled;
use kefu_core::Knowledge;
use serde::Serialize;
use std::time::Instant;

/// How one case was ranked.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredCase {
    /// The expected id, `None` for out of scope.
    pub label: Option<String>,
    /// Candidate ids, best first (up to ten).
    pub ranked: Vec<String>,
    /// The best candidate's confidence (0 without candidates).
    pub confidence: f32,
    /// How long ranking took, in microseconds.
    pub micros: f64,
}

impl ScoredCase {
    fn rank_of_label(&self) -> Option<usize> {
        let label = self.label.as_deref()?;
        self.ranked.iter().position(|id| id == label)
    }

    fn answered(&self, threshold: f32) -> bool {
        !self.ranked.is_empty() && self.confidence >= threshold
    }
}

/// Ranks every case, calling `progress` after each.
pub fn score_cases(
    knowledge: &dyn Knowledge,
    cases: &[Labelled],
    mut progress: impl FnMut(usize),
) -> Vec<ScoredCase> {
    cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let started = Instant::now();
            let ranking = knowledge.rank(&case.text, 10);
            let micros = started.elapsed().as_secs_f64() * 1e6;
            progress(i + 1);
            ScoredCase {
                label: case.label.clone(),
                confidence: ranking.confidence(),
                ranked: ranking.candidates.into_iter().map(|c| c.id).collect(),
                micros,
            }
        })
        .collect()
}

/// The figures `kefu eval` reports; a figure that cannot be computed is `None` (JSON `null`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// In scope: the best candidate is right.
    pub top1: Option<f64>,
    /// In scope: answered (confidence ≥ threshold) with the right id.
    pub in_scope_accuracy: Option<f64>,
    /// In scope: mean reciprocal rank of the right id among the top ten.
    pub mrr: Option<f64>,
    /// In scope: the right id is among the top three.
    pub recall_at_3: Option<f64>,
    /// Out of scope: not answered.
    pub oos_recall: Option<f64>,
    /// Of the cases not answered, the share that are out of scope.
    pub oos_precision: Option<f64>,
    /// How well the confidence separates in-scope from out-of-scope cases.
    pub auroc: Option<f64>,
    /// The answer threshold used.
    pub threshold: f64,
    /// Median ranking time per query, microseconds.
    pub p50_us: Option<f64>,
    /// 99th percentile ranking time per query, microseconds.
    pub p99_us: Option<f64>,
    /// Cases.
    pub n: usize,
    /// In-scope cases.
    pub n_in_scope: usize,
    /// Out-of-scope cases.
    pub n_oos: usize,
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The figures for `cases` at answer threshold `threshold`.
pub fn report(cases: &[ScoredCase], threshold: f32) -> Report {
    let in_scope: Vec<&ScoredCase> = cases.iter().filter(|c| c.label.is_some()).collect();
    let oos: Vec<&ScoredCase> = cases.iter().filter(|c| c.label.is_none()).collect();
    let top1 = in_scope
        .iter()
        .filter(|c| c.rank_of_label() == Some(0))
        .count();
    let correct = in_scope
        .iter()
        .filter(|c| c.rank_of_label() == Some(0) && c.answered(threshold))
        .count();
    let rr: f64 = in_scope
        .iter()
        .filter_map(|c| c.rank_of_label())
        .map(|r| 1.0 / (r as f64 + 1.0))
        .sum();
    let at3 = in_scope
        .iter()
        .filter(|c| c.rank_of_label().is_some_and(|r| r < 3))
        .count();
    let oos_declined = oos.iter().filter(|c| !c.answered(threshold)).count();
    let declined = cases.iter().filter(|c| !c.answered(threshold)).count();
    let mut micros: Vec<f64> = cases.iter().map(|c| c.micros).collect();
    micros.sort_by(f64::total_cmp);
    Report {
        top1: ratio(top1, in_scope.len()),
        in_scope_accuracy: ratio(correct, in_scope.len()),
        mrr: (!in_scope.is_empty()).then(|| rr / in_scope.len() as f64),
        recall_at_3: ratio(at3, in_scope.len()),
        oos_recall: ratio(oos_declined, oos.len()),
        oos_precision: if oos.is_empty() {
            None
        } else {
            ratio(oos_declined, declined)
        },
        auroc: auroc(
            &in_scope.iter().map(|c| c.confidence).collect::<Vec<_>>(),
            &oos.iter().map(|c| c.confidence).collect::<Vec<_>>(),
        ),
        threshold: f64::from(threshold),
        p50_us: percentile(&micros, 0.50),
        p99_us: percentile(&micros, 0.99),
        n: cases.len(),
        n_in_scope: in_scope.len(),
        n_oos: oos.len(),
    }
}

/// What the bot did with a case it got wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// An in-scope question answered with another entry: the customer got a wrong answer.
    WrongAnswer,
    /// An in-scope question not answered (handed off or asked to rephrase), whatever its best
    /// candidate was.
    Declined,
    /// An out-of-scope message answered with an entry.
    AnsweredOutOfScope,
}

/// A case the bot got wrong at the answer threshold: what an editor looks at to decide which
/// questions or out-of-scope examples to add.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Miss {
    /// What the customer wrote.
    pub text: String,
    /// The expected id, `None` for out of scope.
    pub label: Option<String>,
    /// What the bot did.
    pub outcome: Outcome,
    /// The best candidate, if there was one.
    pub best: Option<String>,
    /// The best candidate's confidence (0 without candidates).
    pub confidence: f32,
    /// Where the expected id ranked (1 = best) among the top ten; `None` when it is not there
    /// or the case is out of scope.
    pub rank: Option<usize>,
}

/// The cases of `scored` (ranked from `cases`, in the same order) that the bot gets wrong at
/// `threshold`, in file order.
pub fn misses(cases: &[Labelled], scored: &[ScoredCase], threshold: f32) -> Vec<Miss> {
    cases
        .iter()
        .zip(scored)
        .filter_map(|(case, c)| {
            let rank = c.rank_of_label();
            let outcome = match (&c.label, c.answered(threshold)) {
                (Some(_), true) if rank == Some(0) => return None,
                (Some(_), true) => Outcome::WrongAnswer,
                (Some(_), false) => Outcome::Declined,
                (None, true) => Outcome::AnsweredOutOfScope,
                (None, false) => return None,
            };
            Some(Miss {
                text: case.text.clone(),
                label: c.label.clone(),
                outcome,
                best: c.ranked.first().cloned(),
                confidence: c.confidence,
                rank: rank.map(|r| r + 1),
            })
        })
        .collect()
}

/// What [`tune_threshold`] maximises.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Objective {
    /// Correct decisions over all cases (right answers + declined out-of-scope cases): every
    /// case weighs the same, so the file's mix of in-scope and out-of-scope cases decides. The
    /// default: a customer's question is worth the same whether it is in scope or not.
    #[default]
    Decisions,
    /// `in_scope_accuracy + oos_recall`: both rates weigh the same, however few out-of-scope
    /// cases there are (a file with 3% out-of-scope cases then gives up many right answers to
    /// decline a few more of them).
    Balanced,
}

impl std::str::FromStr for Objective {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "balanced" => Ok(Objective::Balanced),
            "decisions" => Ok(Objective::Decisions),
            other => Err(format!(
                "unknown objective '{other}': use balanced or decisions"
            )),
        }
    }
}

/// The answer threshold that maximises `objective` on `cases` (the lowest such threshold when
/// several tie).
pub fn tune_threshold(cases: &[ScoredCase], objective: Objective) -> f32 {
    let mut candidates: Vec<f32> = cases.iter().map(|c| c.confidence).collect();
    candidates.push(0.0);
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let n_in = cases.iter().filter(|c| c.label.is_some()).count().max(1) as f64;
    let n_oos = cases.iter().filter(|c| c.label.is_none()).count().max(1) as f64;
    let mut best = (f64::NEG_INFINITY, 0.0f32);
    for t in candidates {
        let mut correct = 0usize;
        let mut declined = 0usize;
        for c in cases {
            match &c.label {
                Some(_) => correct += usize::from(c.answered(t) && c.rank_of_label() == Some(0)),
                None => declined += usize::from(!c.answered(t)),
            }
        }
        let value = match objective {
            Objective::Balanced => correct as f64 / n_in + declined as f64 / n_oos,
            Objective::Decisions => (correct + declined) as f64,
        };
        if value > best.0 + 1e-12 {
            best = (value, t);
        }
    }
    best.1
}

/// Area under the ROC curve of `positive` scores against `negative` ones (ties count half).
pub fn auroc(positive: &[f32], negative: &[f32]) -> Option<f64> {
    if positive.is_empty() || negative.is_empty() {
        return None;
    }
    let mut all: Vec<(f32, bool)> = positive
        .iter()
        .map(|&s| (s, true))
        .chain(negative.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Mann–Whitney U with average ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg_rank * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let p = positive.len() as f64;
    let n = negative.len() as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    Some(sorted[idx.min(sorted.len() - 1)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(label: Option<&str>, ranked: &[&str], confidence: f32) -> ScoredCase {
        ScoredCase {
            label: label.map(Into::into),
            ranked: ranked.iter().map(|s| s.to_string()).collect(),
            confidence,
            micros: 10.0,
        }
    }

    #[test]
    fn computes_every_figure() {
        let cases = [
            case(Some("a"), &["a", "b"], 0.9),
            case(Some("b"), &["a", "b"], 0.7),
            case(Some("c"), &["a", "b"], 0.2),
            case(None, &["a"], 0.3),
            case(None, &["b"], 0.8),
        ];
        let r = report(&cases, 0.5);
        assert_eq!(r.n, 5);
        assert_eq!((r.n_in_scope, r.n_oos), (3, 2));
        assert_eq!(r.top1, Some(1.0 / 3.0));
        assert_eq!(r.in_scope_accuracy, Some(1.0 / 3.0));
        assert_eq!(r.recall_at_3, Some(2.0 / 3.0));
        assert!((r.mrr.unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(r.oos_recall, Some(0.5));
        // Declined: c (0.2) and the first oos (0.3); one of the two is out of scope.
        assert_eq!(r.oos_precision, Some(0.5));
        // In-scope confidences 0.9, 0.7, 0.2 vs oos 0.3, 0.8: 3 of 6 pairs ordered right.
        assert!((r.auroc.unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(r.p50_us, Some(10.0));
    }

    #[test]
    fn figures_without_out_of_scope_cases_are_null() {
        let r = report(&[case(Some("a"), &["a"], 0.9)], 0.5);
        assert_eq!(r.oos_recall, None);
        assert_eq!(r.oos_precision, None);
        assert_eq!(r.auroc, None);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["auroc"].is_null());
        assert_eq!(json["top1"], 1.0);
    }

    #[test]
    fn tuning_picks_the_threshold_that_separates() {
        let cases = [
            case(Some("a"), &["a"], 0.9),
            case(Some("a"), &["a"], 0.6),
            case(None, &["a"], 0.4),
            case(None, &["a"], 0.1),
        ];
        let t = tune_threshold(&cases, Objective::Balanced);
        assert!(t > 0.4 && t <= 0.6, "{t}");
        let r = report(&cases, t);
        assert_eq!(r.in_scope_accuracy, Some(1.0));
        assert_eq!(r.oos_recall, Some(1.0));
    }

    #[test]
    fn the_decisions_objective_lets_the_mix_of_cases_decide() {
        // Nine in-scope cases, one out of scope: declining the out-of-scope case at 0.5 would
        // cost two right answers.
        let mut cases: Vec<ScoredCase> = (0..7).map(|_| case(Some("a"), &["a"], 0.9)).collect();
        cases.push(case(Some("a"), &["a"], 0.4));
        cases.push(case(Some("a"), &["a"], 0.45));
        cases.push(case(None, &["a"], 0.5));
        let balanced = tune_threshold(&cases, Objective::Balanced);
        let decisions = tune_threshold(&cases, Objective::Decisions);
        assert!(balanced > 0.5, "{balanced}");
        assert!(decisions <= 0.4, "{decisions}");
        assert_eq!("decisions".parse::<Objective>(), Ok(Objective::Decisions));
        assert!("best".parse::<Objective>().is_err());
    }

    #[test]
    fn misses_name_what_went_wrong_in_file_order() {
        let texts = [
            "right",
            "wrong",
            "shy",
            "chatter answered",
            "chatter declined",
            "none",
        ];
        let labels = [Some("a"), Some("b"), Some("a"), None, None, Some("c")];
        let cases: Vec<Labelled> = texts
            .iter()
            .zip(labels)
            .map(|(t, l)| Labelled {
                text: t.to_string(),
                label: l.map(Into::into),
            })
            .collect();
        let scored = [
            case(Some("a"), &["a", "b"], 0.9),
            case(Some("b"), &["a", "b"], 0.8),
            case(Some("a"), &["a"], 0.3),
            case(None, &["b"], 0.7),
            case(None, &["b"], 0.2),
            case(Some("c"), &[], 0.0),
        ];
        let got = misses(&cases, &scored, 0.5);
        let summary: Vec<(&str, Outcome, Option<&str>, Option<usize>)> = got
            .iter()
            .map(|m| (m.text.as_str(), m.outcome, m.best.as_deref(), m.rank))
            .collect();
        assert_eq!(
            summary,
            [
                ("wrong", Outcome::WrongAnswer, Some("a"), Some(2)),
                ("shy", Outcome::Declined, Some("a"), Some(1)),
                (
                    "chatter answered",
                    Outcome::AnsweredOutOfScope,
                    Some("b"),
                    None
                ),
                ("none", Outcome::Declined, None, None),
            ]
        );
        let json = serde_json::to_value(&got[0]).unwrap();
        assert_eq!(json["outcome"], "wrong_answer");
        assert_eq!(json["label"], "b");
        // A lower threshold answers the shy case, and the wrong one stays wrong.
        let lower = misses(&cases, &scored, 0.25);
        assert!(lower.iter().all(|m| m.text != "shy"));
        assert!(lower.iter().any(|m| m.text == "wrong"));
    }

    #[test]
    fn auroc_handles_ties_and_perfect_separation() {
        assert_eq!(auroc(&[0.9, 0.8], &[0.1, 0.2]), Some(1.0));
        assert_eq!(auroc(&[0.5], &[0.5]), Some(0.5));
        assert_eq!(auroc(&[0.1], &[0.9]), Some(0.0));
    }
}
