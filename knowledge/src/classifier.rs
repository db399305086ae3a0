//! The learned half of matching: TF-IDF vectors and a linear (softmax) model trained on the
//! entries' paraphrases when the knowledge base loads, the way Rasa trains on its NLU data.
//!
//! Features come from [`crate::text::Analyzer::features`]; [`Vectorizer`] maps them to a
//! compact vocabulary and weighs them (sublinear TF × IDF, L2-normalised); [`LinearModel`] is a
//! multinomial logistic regression trained by stochastic gradient descent with a fixed seed, so
//! the same FAQ files always give the same model.
//!
//! [`DenseModel`] is the same kind of classifier over sentence embeddings (see
//! [`crate::semantic`]).

use std::collections::HashMap;

/// A sparse vector: (dimension, value) pairs sorted by dimension.
pub type SparseVec = Vec<(u32, f32)>;

/// Maps hashed features to vocabulary dimensions with IDF weights.
#[derive(Debug, Clone, Default)]
pub struct Vectorizer {
    vocab: HashMap<u64, u32>,
    idf: Vec<f32>,
}

impl Vectorizer {
    /// Learns the vocabulary and document frequencies of `docs` (each a list of features).
    pub fn fit(docs: &[Vec<u64>]) -> Self {
        let mut vocab: HashMap<u64, u32> = HashMap::new();
        let mut df: Vec<u32> = Vec::new();
        let mut seen: Vec<u64> = Vec::new();
        for doc in docs {
            seen.clear();
            seen.extend_from_slice(doc);
            seen.sort_unstable();
            seen.dedup();
            for f in &seen {
                let next = vocab.len() as u32;
                let dim = *vocab.entry(*f).or_insert(next);
                if dim as usize == df.len() {
                    df.push(0);
                }
                df[dim as usize] += 1;
            }
        }
        let n = docs.len() as f32;
        let idf = df
            .iter()
            .map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0)
            .collect();
        Vectorizer { vocab, idf }
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        self.idf.len()
    }

    /// The L2-normalised TF-IDF vector of a document's features; features never seen in
    /// training are dropped.
    pub fn transform(&self, features: &[u64]) -> SparseVec {
        let mut dims: Vec<u32> = features
            .iter()
            .filter_map(|f| self.vocab.get(f).copied())
            .collect();
        dims.sort_unstable();
        let mut v: SparseVec = Vec::with_capacity(dims.len());
        for d in dims {
            match v.last_mut() {
                Some((last, tf)) if *last == d => *tf += 1.0,
                _ => v.push((d, 1.0)),
            }
        }
        let mut norm = 0.0f32;
        for (d, x) in v.iter_mut() {
            *x = (1.0 + x.ln()) * self.idf[*d as usize];
            norm += *x * *x;
        }
        if norm > 0.0 {
            let inv = norm.sqrt().recip();
            v.iter_mut().for_each(|(_, x)| *x *= inv);
        }
        v
    }
}

/// The dot product of two sparse vectors.
pub fn dot(a: &SparseVec, b: &SparseVec) -> f32 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                sum += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    sum
}

/// How a [`LinearModel`] is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainOptions {
    /// Passes over the training data.
    pub epochs: usize,
    /// The initial learning rate (it decays linearly towards a tenth of it).
    pub learning_rate: f32,
    /// L2 penalty per example seen.
    pub l2: f32,
    /// Seed of the shuffling.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 12,
            learning_rate: 2.0,
            l2: 1e-6,
            seed: 0x6b65_6675,
        }
    }
}

/// A multinomial logistic regression over sparse vectors.
#[derive(Debug, Clone)]
pub struct LinearModel {
    classes: usize,
    /// Row-major: `weights[dim * classes + class]`.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl LinearModel {
    /// Trains on `examples` labelled `labels` (each `< classes`) over `dim` dimensions.
    pub fn train(
        examples: &[SparseVec],
        labels: &[usize],
        classes: usize,
        dim: usize,
        options: &TrainOptions,
    ) -> Self {
        assert_eq!(examples.len(), labels.len(), "one label per example");
        let mut model = LinearModel {
            classes,
            weights: vec![0.0; dim * classes],
            bias: vec![0.0; classes],
        };
        if examples.is_empty() || classes < 2 {
            return model;
        }
        let mut probs = vec![0.0f32; classes];
        let mut decay = 1.0f32;
        let steps = sgd_steps(
            examples.len(),
            options.epochs,
            options.seed,
            options.learning_rate,
        );
        for (i, lr) in steps {
            decay *= 1.0 - lr * options.l2;
            let x = &examples[i];
            model.scores_into(x, decay, &mut probs);
            softmax(&mut probs);
            probs[labels[i]] -= 1.0;
            // Weights are stored divided by `decay` so the L2 shrink is one multiply.
            let scale = lr / decay;
            for (c, g) in probs.iter().enumerate() {
                if g.abs() < 1e-5 {
                    continue;
                }
                for &(d, v) in x {
                    model.weights[d as usize * classes + c] -= scale * g * v;
                }
                model.bias[c] -= lr * g * 0.1;
            }
        }
        model.weights.iter_mut().for_each(|w| *w *= decay);
        model
    }

    fn scores_into(&self, x: &SparseVec, decay: f32, out: &mut [f32]) {
        out.copy_from_slice(&self.bias);
        for &(d, v) in x {
            let row = &self.weights[d as usize * self.classes..(d as usize + 1) * self.classes];
            let v = v * decay;
            for (o, w) in out.iter_mut().zip(row) {
                *o += v * w;
            }
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The probability of every class for `x`.
    pub fn predict(&self, x: &SparseVec) -> Vec<f32> {
        let mut p = vec![0.0; self.classes];
        if self.classes == 0 {
            return p;
        }
        self.scores_into(x, 1.0, &mut p);
        softmax(&mut p);
        p
    }
}

/// How a [`DenseModel`] is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenseOptions {
    /// Passes over the examples.
    pub epochs: usize,
    /// The first step size; it falls linearly to a tenth of it.
    pub learning_rate: f32,
    /// Shuffling seed.
    pub seed: u64,
}

impl Default for DenseOptions {
    fn default() -> Self {
        DenseOptions {
            epochs: 10,
            learning_rate: 1.0,
            seed: 0x6b65_6675,
        }
    }
}

/// A softmax classifier over dense vectors (sentence embeddings), trained with plain SGD.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseModel {
    classes: usize,
    dim: usize,
    /// `classes × dim`, one row per class.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl DenseModel {
    /// Trains on the rows of `examples` (`labels.len() × dim`, row-major).
    pub fn train(
        examples: &[f32],
        dim: usize,
        labels: &[usize],
        classes: usize,
        options: &DenseOptions,
    ) -> Self {
        assert_eq!(
            examples.len(),
            labels.len() * dim,
            "one label per example row"
        );
        let mut model = DenseModel {
            classes,
            dim,
            weights: vec![0.0; classes * dim],
            bias: vec![0.0; classes],
        };
        if labels.is_empty() || classes < 2 {
            return model;
        }
        let mut probs = vec![0.0f32; classes];
        let steps = sgd_steps(
            labels.len(),
            options.epochs,
            options.seed,
            options.learning_rate,
        );
        for (i, lr) in steps {
            let x = &examples[i * dim..(i + 1) * dim];
            model.scores_into(x, &mut probs);
            softmax(&mut probs);
            probs[labels[i]] -= 1.0;
            for (c, g) in probs.iter().enumerate() {
                // Classes the example does not confuse learn nothing from it.
                if g.abs() < 1e-4 {
                    continue;
                }
                let row = &mut model.weights[c * dim..(c + 1) * dim];
                let k = lr * g;
                for (w, v) in row.iter_mut().zip(x) {
                    *w -= k * v;
                }
                model.bias[c] -= k * 0.1;
            }
        }
        model
    }

    fn scores_into(&self, x: &[f32], out: &mut [f32]) {
        for (c, o) in out.iter_mut().enumerate() {
            *o = self.bias[c]
                + crate::semantic::dot(&self.weights[c * self.dim..(c + 1) * self.dim], x);
        }
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The probability of each class for `x`.
    pub fn predict(&self, x: &[f32]) -> Vec<f32> {
        let mut p = vec![0.0; self.classes];
        if self.classes == 0 {
            return p;
        }
        self.scores_into(x, &mut p);
        softmax(&mut p);
        p
    }

    /// The model as numbers (bias then weights), for the model cache.
    pub(crate) fn to_numbers(&self) -> Vec<f32> {
        join_numbers(&self.bias, &self.weights)
    }

    /// The inverse of [`DenseModel::to_numbers`]; `None` if the count does not fit.
    pub(crate) fn from_numbers(classes: usize, dim: usize, numbers: Vec<f32>) -> Option<Self> {
        let (bias, weights) = split_numbers(classes, dim, numbers)?;
        Some(DenseModel {
            classes,
            dim,
            weights,
            bias,
        })
    }
}

impl LinearModel {
    /// The model as numbers (bias then weights), for the model cache.
    pub(crate) fn to_numbers(&self) -> Vec<f32> {
        join_numbers(&self.bias, &self.weights)
    }

    /// The inverse of [`LinearModel::to_numbers`]; `None` if the count does not fit.
    pub(crate) fn from_numbers(classes: usize, dim: usize, numbers: Vec<f32>) -> Option<Self> {
        let (bias, weights) = split_numbers(classes, dim, numbers)?;
        Some(LinearModel {
            classes,
            weights,
            bias,
        })
    }
}

/// A model's bias and weights as one list of numbers.
fn join_numbers(bias: &[f32], weights: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bias.len() + weights.len());
    out.extend_from_slice(bias);
    out.extend_from_slice(weights);
    out
}

/// The bias (`classes`) and weights (`classes × dim`) of [`join_numbers`]' output; `None` if
/// the count does not fit.
fn split_numbers(
    classes: usize,
    dim: usize,
    mut numbers: Vec<f32>,
) -> Option<(Vec<f32>, Vec<f32>)> {
    if numbers.len() != classes * (dim + 1) {
        return None;
    }
    let weights = numbers.split_off(classes);
    Some((numbers, weights))
}

/// Fisher–Yates with xorshift: the same order for the same seed, so the same FAQ files always
/// give the same model.
fn shuffle(order: &mut [usize], rng: &mut u64) {
    for i in (1..order.len()).rev() {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        order.swap(i, (*rng % (i as u64 + 1)) as usize);
    }
}

/// The examples SGD visits, with the step size for each: `epochs` passes over `0..n`, each in
/// a new order drawn from `seed`, the step falling from `base` (see [`learning_rate`]).
fn sgd_steps(n: usize, epochs: usize, seed: u64, base: f32) -> impl Iterator<Item = (usize, f32)> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = seed | 1;
    let total = (epochs * n).max(1) as f32;
    (0..epochs)
        .flat_map(move |_| {
            shuffle(&mut order, &mut rng);
            order.clone()
        })
        .enumerate()
        .map(move |(step, i)| (i, learning_rate(base, step, total)))
}

/// The step size at `step` of `total`: from `base` falling linearly to a tenth of it.
fn learning_rate(base: f32, step: usize, total: f32) -> f32 {
    base * (1.0 - 0.9 * step as f32 / total)
}

fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    v.iter_mut().for_each(|x| *x /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Analyzer;

    fn data() -> (Vectorizer, Vec<SparseVec>, Vec<usize>) {
        let a = Analyzer::shared();
        let texts = [
            ("where is my card key", 0),
            ("i did not get my key", 0),
            ("卡密在哪里", 0),
            ("没收到卡密", 0),
            ("i want a refund", 1),
            ("refund my order please", 1),
            ("我要退款", 1),
            ("能不能退钱", 1),
        ];
        let feats: Vec<Vec<u64>> = texts.iter().map(|(t, _)| a.features(t)).collect();
        let v = Vectorizer::fit(&feats);
        let xs = feats.iter().map(|f| v.transform(f)).collect();
        (v, xs, texts.iter().map(|(_, l)| *l).collect())
    }

    #[test]
    fn vectors_are_unit_length_and_drop_unknown_features() {
        let (v, xs, _) = data();
        for x in &xs {
            let n: f32 = x.iter().map(|(_, v)| v * v).sum();
            assert!((n - 1.0).abs() < 1e-4);
        }
        assert!(v.transform(&[42, 43]).is_empty());
        assert!((dot(&xs[0], &xs[0]) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn learns_to_separate_paraphrases() {
        let (v, xs, ys) = data();
        let m = LinearModel::train(&xs, &ys, 2, v.dim(), &TrainOptions::default());
        let a = Analyzer::shared();
        let p = m.predict(&v.transform(&a.features("my card key didnt arrive")));
        assert!(p[0] > 0.6, "{p:?}");
        let p = m.predict(&v.transform(&a.features("退款怎么弄")));
        assert!(p[1] > 0.6, "{p:?}");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn training_is_deterministic() {
        let (v, xs, ys) = data();
        let a = LinearModel::train(&xs, &ys, 2, v.dim(), &TrainOptions::default());
        let b = LinearModel::train(&xs, &ys, 2, v.dim(), &TrainOptions::default());
        assert_eq!(a.weights, b.weights);
    }
}
