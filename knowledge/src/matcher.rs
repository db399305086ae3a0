//! [`KnowledgeBase`]: ranked FAQ candidates with a calibrated confidence.
//!
//! Three kinds of evidence are combined for every candidate entry:
//!
//! - **model**: the probability the linear model ([`crate::classifier`]) trained on all
//!   paraphrases gives the entry. Out-of-scope examples from the FAQ files train an extra
//!   "not ours" class, so the model learns what not to answer.
//! - **neighbour**: the cosine similarity between the query and the entry's closest question
//!   (TF-IDF over words and character n-grams), which tells how close the query really is.
//! - **index**: the entry's best BM25 score in the tantivy index of questions and answers,
//!   relative to the best score of the query.
//! - **semantic** (when built with sentence encoders, see [`KnowledgeBase::build_with`]): the
//!   probability a softmax model trained on the questions' sentence embeddings gives the entry
//!   (with its own "not ours" class), and the cosine between the query's embedding and the
//!   entry's closest question's. These carry meaning across paraphrases and languages. With
//!   several encoders (kefu: multilingual-e5-small, and an English-only one for texts without
//!   Chinese characters) the model reads every encoder's vector side by side, zeros standing
//!   for an encoder that does not [cover](Embedder::covers) the text, and the cosine is the
//!   mean over the encoders that cover both texts.
//!
//! The ranking score and the confidence are combinations of those (see
//! [`KnowledgeBase::rank`]); their weights were fitted once on public intent data sets and are
//! the same for every knowledge base; there is one set of weights with semantic evidence and
//! one without. A confidence above the answer threshold should be right
//! most of the time; out-of-scope questions should fall under the suggest threshold.

use crate::classifier::{
    dot, DenseModel, DenseOptions, LinearModel, SparseVec, TrainOptions, Vectorizer,
};
use crate::faq::{self, FaqSet, ValidationOptions};
use crate::index::{IndexDoc, QuestionIndex};
use crate::semantic::{
    self, cached_numbers, embed_all, EmbedStats, Embedder, EmbeddingCache, ModelKey,
};
use crate::speller::Speller;
use crate::text::Analyzer;
use crate::Error;
use kefu_core::template;
use kefu_core::{Candidate, Decision, FaqEntry, Knowledge, Locale, Ranking, Thresholds};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Above this many classes the linear model is not trained (its weights would not fit in
/// memory and every entry has too few paraphrases to learn from); neighbours and the index
/// carry the ranking alone.
pub const MAX_MODEL_CLASSES: usize = 2_000;

/// How many questions per query are compared exactly with the query for the neighbour evidence.
const EXACT_NEIGHBOURS: usize = 64;

thread_local! {
    /// Per-thread similarity accumulator for the neighbour search (one slot per question).
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A centred cosine above which an entry is a candidate on semantic evidence alone.
const SEMANTIC_CANDIDATE: f32 = 0.2;

/// How many index hits per query feed the index evidence.
const INDEX_HITS: usize = 10;

/// How a [`KnowledgeBase`] is built and how it decides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MatcherOptions {
    /// The answer / suggest / decline bands.
    pub thresholds: Thresholds,
    /// How the linear model is trained.
    pub training: TrainOptions,
    /// Where trained models and sentence embeddings are kept between starts (`None`: nowhere,
    /// everything is computed at each load). Safe to delete at any time.
    pub cache_dir: Option<PathBuf>,
}

/// Where a question came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Entry(usize),
    OutOfScope,
    /// An example of `near_misses`: a neighbour like an out-of-scope example, but not learned
    /// by the lexical model.
    NearMiss,
}

/// How long building took, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BuildStats {
    /// Questions learned (in scope and out of scope).
    pub questions: usize,
    /// Seconds spent indexing with tantivy.
    pub index_seconds: f64,
    /// Seconds spent vectorising and training the model.
    pub model_seconds: f64,
    /// True when the linear model came from the cache instead of training.
    pub model_cached: bool,
    /// Seconds spent embedding questions (cache reads included) and on the embedding model
    /// (not loading the encoder); 0 without an encoder.
    pub semantic_seconds: f64,
    /// What embedding the questions did (without an encoder: nothing).
    pub embedded: EmbedStats,
}

/// The evidence for one candidate, exposed for evaluation and debugging.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evidence {
    /// The model's probability for the entry.
    pub model: f32,
    /// The model's probability that the query is out of scope.
    pub out_of_scope: f32,
    /// Cosine similarity to the entry's closest question.
    pub neighbour: f32,
    /// Cosine similarity to the closest out-of-scope example (near misses included).
    pub neighbour_out_of_scope: f32,
    /// Cosine similarity to the closest near miss.
    pub neighbour_near_miss: f32,
    /// BM25 of the entry relative to the query's best BM25 hit, in [0, 1].
    pub index: f32,
    /// Whether the semantic fields below were computed (an encoder is set and it worked).
    pub has_semantic: bool,
    /// The embedding model's probability for the entry.
    pub semantic_model: f32,
    /// The embedding model's probability that the query is out of scope.
    pub semantic_out_of_scope: f32,
    /// Cosine similarity of the (centred) sentence embeddings of the query and the entry's
    /// closest question (the mean over the encoders that cover both).
    pub semantic: f32,
    /// The same for the closest out-of-scope example.
    pub semantic_neighbour_out_of_scope: f32,
}

/// One sentence encoder's view of the questions.
struct Channel {
    embedder: Arc<dyn Embedder>,
    dim: usize,
    /// The mean embedding of the questions it covers, subtracted before comparing: e5
    /// vectors all lie in a narrow cone (any two texts have a cosine near 0.8), centring
    /// spreads them out.
    mean: Vec<f32>,
    /// Per question: its centred, unit-length embedding (row-major), all zeros for a question
    /// the encoder does not cover.
    vectors: Vec<f32>,
    /// Per question: whether the encoder covers it.
    covered: Vec<bool>,
}

impl Channel {
    /// Embeds the questions the encoder covers (through the embedding cache) and centres them.
    fn build(
        embedder: Arc<dyn Embedder>,
        texts: &[&str],
        cache_dir: Option<&Path>,
    ) -> Result<(Self, EmbedStats), semantic::EmbedError> {
        let dim = embedder.dim();
        let covered: Vec<bool> = texts.iter().map(|t| embedder.covers(t)).collect();
        let mine: Vec<&str> = texts
            .iter()
            .zip(&covered)
            .filter(|(_, c)| **c)
            .map(|(t, _)| *t)
            .collect();
        let mut cache = cache_dir.and_then(|dir| {
            EmbeddingCache::open(&dir.join("embeddings"), embedder.model_id(), dim)
                .map_err(|e| {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot open the embedding cache; embedding without it");
                })
                .ok()
        });
        let (embedded, stats) = embed_all(embedder.as_ref(), &mine, cache.as_mut(), |_| {})?;
        let mut mean = vec![0f32; dim];
        for row in embedded.chunks(dim) {
            mean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
        }
        let n = mine.len().max(1) as f32;
        mean.iter_mut().for_each(|m| *m /= n);
        let mut channel = Channel {
            embedder,
            dim,
            mean,
            vectors: Vec::new(),
            covered,
        };
        let mut vectors = vec![0f32; texts.len() * dim];
        let mut rows = embedded.chunks(dim);
        for (q, covered) in channel.covered.iter().enumerate() {
            if *covered {
                let row = &mut vectors[q * dim..(q + 1) * dim];
                row.copy_from_slice(rows.next().unwrap_or_default());
                channel.centre(row);
            }
        }
        channel.vectors = vectors;
        Ok((channel, stats))
    }

    fn centre(&self, raw: &mut [f32]) {
        raw.iter_mut().zip(&self.mean).for_each(|(x, m)| *x -= m);
        semantic::normalize(raw);
    }

    fn row(&self, q: usize) -> &[f32] {
        &self.vectors[q * self.dim..(q + 1) * self.dim]
    }

    /// The query's centred embedding, or `None` when the encoder does not cover it or fails
    /// (logged: the other evidence still ranks the message).
    fn query(&self, query: &str) -> Option<Vec<f32>> {
        if !self.embedder.covers(query) {
            return None;
        }
        match self.embedder.embed(&[query]) {
            Ok(mut v) if v.len() == 1 && v[0].len() == self.dim => {
                let mut q = v.pop().unwrap_or_default();
                self.centre(&mut q);
                Some(q)
            }
            Ok(_) => {
                tracing::error!(
                    model = self.embedder.model_id(),
                    "the encoder returned a malformed vector; ranking without it"
                );
                None
            }
            Err(e) => {
                tracing::error!(model = self.embedder.model_id(), error = %e, "cannot embed the query; ranking without this encoder");
                None
            }
        }
    }
}

/// The semantic side of a knowledge base: one channel per encoder, and a classifier trained on
/// the channels' embeddings side by side (zeros where an encoder does not cover a text).
struct SemanticIndex {
    channels: Vec<Channel>,
    model: Option<DenseModel>,
}

impl SemanticIndex {
    /// Embeds every question with every encoder and trains (or takes from the cache) the
    /// classifier.
    fn build(
        embedders: Vec<Arc<dyn Embedder>>,
        texts: &[&str],
        labels: &[usize],
        classes: usize,
        cache_dir: Option<&Path>,
    ) -> Result<(Self, EmbedStats), semantic::EmbedError> {
        let mut channels = Vec::new();
        let mut stats = EmbedStats::default();
        for embedder in embedders {
            let (channel, s) = Channel::build(embedder, texts, cache_dir)?;
            stats.cached += s.cached;
            stats.embedded += s.embedded;
            stats.seconds += s.seconds;
            channels.push(channel);
        }
        let mut index = SemanticIndex {
            channels,
            model: None,
        };
        let options = DenseOptions::default();
        index.model = (2..=MAX_MODEL_CLASSES).contains(&classes).then(|| {
            // As for the lexical model: inputs (the encoders and every text), options, and a
            // version to change with `DenseModel::train`.
            let mut key = ModelKey::new("semantic-dense-v1");
            for channel in &index.channels {
                key.add(channel.embedder.model_id().as_bytes());
            }
            key.add(format!("{options:?}").as_bytes());
            key.add(&(classes as u64).to_le_bytes());
            for (text, label) in texts.iter().zip(labels) {
                key.add(text.as_bytes()).add(&(*label as u64).to_le_bytes());
            }
            let dim = index.dim();
            let train = || {
                let joined: Vec<f32>;
                let examples = match index.channels.as_slice() {
                    [one] => one.vectors.as_slice(),
                    _ => {
                        joined = (0..texts.len())
                            .flat_map(|q| index.channels.iter().flat_map(move |c| c.row(q)))
                            .copied()
                            .collect();
                        joined.as_slice()
                    }
                };
                DenseModel::train(examples, dim, labels, classes, &options)
            };
            let (numbers, _) = cached_numbers(cache_dir, key, || train().to_numbers());
            DenseModel::from_numbers(classes, dim, numbers).unwrap_or_else(train)
        });
        Ok((index, stats))
    }

    /// The classifier's input length: every channel's side by side.
    fn dim(&self) -> usize {
        self.channels.iter().map(|c| c.dim).sum()
    }
}

/// A loaded, indexed and trained knowledge base. Read-only and cheap to share behind an `Arc`.
pub struct KnowledgeBase {
    entries: Vec<FaqEntry>,
    by_id: HashMap<String, usize>,
    questions: Vec<(Owner, String)>,
    analyzer: Analyzer,
    /// Corrects misspelled English words of a message against the questions' vocabulary.
    speller: Speller,
    index: QuestionIndex,
    vectorizer: Vectorizer,
    /// Per question: its TF-IDF vector.
    vectors: Vec<SparseVec>,
    /// Per vocabulary dimension: the questions having it, with their weight (empty for the
    /// most common dimensions).
    postings: Vec<Vec<(u32, f32)>>,
    model: Option<LinearModel>,
    semantic: Option<SemanticIndex>,
    has_out_of_scope: bool,
    options: MatcherOptions,
    stats: BuildStats,
}

impl std::fmt::Debug for KnowledgeBase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeBase")
            .field("entries", &self.entries.len())
            .field("questions", &self.questions.len())
            .finish_non_exhaustive()
    }
}

impl KnowledgeBase {
    /// Loads, validates, indexes and trains on the FAQ files under `dir`.
    pub fn load(
        dir: &Path,
        validation: &ValidationOptions,
        options: MatcherOptions,
    ) -> Result<Self, Error> {
        let set = faq::load_dir(dir, validation)?;
        Self::build(set, options)
    }

    /// Indexes and trains on already validated FAQ entries (lexical evidence only).
    pub fn build(set: FaqSet, options: MatcherOptions) -> Result<Self, Error> {
        Self::build_with(set, options, Vec::new())
    }

    /// Indexes and trains on already validated FAQ entries; with sentence encoders (none:
    /// lexical evidence only), also embeds every question each encoder covers (through the
    /// embedding cache in [`MatcherOptions::cache_dir`]) and trains a classifier on the
    /// embeddings, so ranking uses semantic evidence too.
    pub fn build_with(
        set: FaqSet,
        options: MatcherOptions,
        embedders: Vec<Arc<dyn Embedder>>,
    ) -> Result<Self, Error> {
        Self::build_loading(set, options, move || Ok(embedders))
    }

    /// As [`KnowledgeBase::build_with`], calling `load_embedder` on another thread while the
    /// index is built and the lexical model trained (loading the encoders takes about as
    /// long).
    pub fn build_loading<L>(
        set: FaqSet,
        options: MatcherOptions,
        load_embedder: L,
    ) -> Result<Self, Error>
    where
        L: FnOnce() -> Result<Vec<Arc<dyn Embedder>>, semantic::EmbedError> + Send,
    {
        std::thread::scope(|scope| {
            let loading = scope.spawn(load_embedder);
            Self::build_inner(set, options, || {
                loading
                    .join()
                    .map_err(|_| semantic::EmbedError("loading the encoder panicked".into()))?
            })
        })
    }

    fn build_inner(
        set: FaqSet,
        options: MatcherOptions,
        embedder: impl FnOnce() -> Result<Vec<Arc<dyn Embedder>>, semantic::EmbedError>,
    ) -> Result<Self, Error> {
        let vocabulary = set.vocabulary();
        let entries: Vec<FaqEntry> = set.entries.into_iter().map(|e| e.entry).collect();
        if entries.is_empty() {
            return Err(Error::Empty);
        }
        let by_id = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.clone(), i))
            .collect();
        let mut questions: Vec<(Owner, String)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            questions.extend(e.questions.iter().map(|q| (Owner::Entry(i), q.clone())));
        }
        let has_out_of_scope = !set.out_of_scope.is_empty();
        questions.extend(set.out_of_scope.into_iter().map(|o| {
            let owner = if o.near_miss {
                Owner::NearMiss
            } else {
                Owner::OutOfScope
            };
            (owner, o.text)
        }));
        let analyzer = Analyzer::shared().with_vocabulary(vocabulary);
        let speller = Speller::new(questions.iter().map(|(_, q)| q.as_str()));

        let started = Instant::now();
        let answers: Vec<String> = entries
            .iter()
            .map(|e| format!("{}\n{}", e.answer.zh, e.answer.en))
            .collect();
        let question_docs =
            questions
                .iter()
                .enumerate()
                .filter_map(|(q, (owner, text))| match owner {
                    Owner::Entry(entry) => Some(IndexDoc {
                        entry: *entry,
                        question: Some(q),
                        text,
                    }),
                    Owner::OutOfScope | Owner::NearMiss => None,
                });
        let answer_docs = answers.iter().enumerate().map(|(entry, text)| IndexDoc {
            entry,
            question: None,
            text,
        });
        let index = QuestionIndex::build(&analyzer, question_docs.chain(answer_docs))?;
        let index_seconds = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let features: Vec<Vec<u64>> = questions
            .iter()
            .map(|(_, q)| analyzer.features(q))
            .collect();
        let vectorizer = Vectorizer::fit(&features);
        let vectors: Vec<SparseVec> = features.iter().map(|f| vectorizer.transform(f)).collect();
        let mut postings: Vec<Vec<(u32, f32)>> = vec![Vec::new(); vectorizer.dim()];
        for (q, v) in vectors.iter().enumerate() {
            for &(d, w) in v {
                postings[d as usize].push((q as u32, w));
            }
        }
        // The most common features ("what", "<th") weigh little in a cosine but would make
        // every query visit most questions; they are left out of the candidate search and
        // counted again when the best candidates are scored exactly.
        let cap = (questions.len() / 64).max(64);
        for list in &mut postings {
            if list.len() > cap {
                list.clear();
            }
        }
        let classes = entries.len() + usize::from(has_out_of_scope);
        let labels: Vec<usize> = questions
            .iter()
            .map(|(owner, _)| match owner {
                Owner::Entry(i) => *i,
                Owner::OutOfScope | Owner::NearMiss => entries.len(),
            })
            .collect();
        // Near misses teach by closeness only (see `confidence`): learned as "not ours", their
        // words (客服, refund, 账号, a game's name) would pull down every question sharing them.
        let learned: Vec<usize> = (0..questions.len())
            .filter(|&q| questions[q].0 != Owner::NearMiss)
            .collect();
        let cache_dir = options.cache_dir.as_deref();
        let mut model_cached = false;
        let model = (2..=MAX_MODEL_CLASSES).contains(&classes).then(|| {
            // The key holds what the model is trained on (every question's features, so a
            // change to the analyzer trains again) and how; change the kind's version with
            // any change to `LinearModel::train` itself.
            let mut key = ModelKey::new("lexical-linear-v1");
            key.add(format!("{:?}", options.training).as_bytes());
            key.add(&(classes as u64).to_le_bytes());
            for &q in &learned {
                let bytes: Vec<u8> = features[q].iter().flat_map(|x| x.to_le_bytes()).collect();
                key.add(&bytes).add(&(labels[q] as u64).to_le_bytes());
            }
            let dim = vectorizer.dim();
            let examples: Vec<SparseVec> = learned.iter().map(|&q| vectors[q].clone()).collect();
            let example_labels: Vec<usize> = learned.iter().map(|&q| labels[q]).collect();
            let train =
                || LinearModel::train(&examples, &example_labels, classes, dim, &options.training);
            let (numbers, hit) = cached_numbers(cache_dir, key, || train().to_numbers());
            model_cached = hit;
            LinearModel::from_numbers(classes, dim, numbers).unwrap_or_else(train)
        });
        let model_seconds = started.elapsed().as_secs_f64();

        let embedders = embedder()?;
        let started = Instant::now();
        let mut embedded = EmbedStats::default();
        let semantic = if embedders.is_empty() {
            None
        } else {
            let texts: Vec<&str> = questions.iter().map(|(_, q)| q.as_str()).collect();
            let (index, stats) =
                SemanticIndex::build(embedders, &texts, &labels, classes, cache_dir)?;
            embedded = stats;
            Some(index)
        };
        let semantic_seconds = started.elapsed().as_secs_f64();
        let stats = BuildStats {
            questions: questions.len(),
            index_seconds,
            model_seconds,
            model_cached,
            semantic_seconds,
            embedded,
        };
        tracing::info!(
            entries = entries.len(),
            questions = questions.len(),
            index_seconds,
            model_seconds,
            model_cached,
            semantic_seconds,
            embedded = embedded.embedded,
            "knowledge base built"
        );
        Ok(KnowledgeBase {
            entries,
            by_id,
            questions,
            analyzer,
            speller,
            index,
            vectorizer,
            vectors,
            postings,
            model,
            semantic,
            has_out_of_scope,
            options,
            stats,
        })
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[FaqEntry] {
        &self.entries
    }

    /// The configured thresholds.
    pub fn thresholds(&self) -> Thresholds {
        self.options.thresholds
    }

    /// The tantivy index alone (for benchmarks that compare against a bare index query).
    pub fn index(&self) -> &QuestionIndex {
        &self.index
    }

    /// How long building took.
    pub fn stats(&self) -> BuildStats {
        self.stats
    }

    /// The decision for `query` under the configured thresholds, with its ranking.
    pub fn decide(&self, query: &str, limit: usize) -> (Decision, Ranking) {
        let ranking = self.rank(query, limit);
        (
            self.options.thresholds.decide(ranking.confidence()),
            ranking,
        )
    }

    /// The answer of entry `id` in `locale` with `{variables}` filled from `vars`.
    pub fn render_answer(
        &self,
        id: &str,
        locale: Locale,
        vars: &BTreeMap<String, String>,
    ) -> Option<String> {
        let entry = self.entry(id)?;
        Some(template::render(entry.answer.get(locale), vars))
    }

    /// Candidates with the evidence behind each, best first.
    ///
    /// A message of several clauses ("bought a year card for my mum yesterday, she already has
    /// one, can I get a refund? order 2026…") is ranked as a whole, and its clauses and pairs
    /// of adjacent clauses are ranked on their own: when one of them puts the same entry first,
    /// the best candidate keeps the higher of the two confidences. Every clause around the
    /// question dilutes the whole message's evidence, but not the clause that asks it; and a
    /// clause that disagrees with the whole message changes nothing, so the context still
    /// decides between close entries. A message answered as a whole is not split.
    pub fn rank_with_evidence(&self, query: &str, limit: usize) -> Vec<(Candidate, Evidence)> {
        let mut ranked = self.rank_whole(query, limit);
        let Some((best, _)) = ranked.first_mut() else {
            return ranked;
        };
        // An answer already: the windows could only confirm it.
        if best.confidence >= self.options.thresholds.answer {
            return ranked;
        }
        for window in clause_windows(query) {
            if let Some((top, _)) = self.rank_whole(window, 1).into_iter().next() {
                if top.id == best.id && top.confidence > best.confidence {
                    best.confidence = top.confidence;
                }
            }
        }
        ranked
    }

    /// [`KnowledgeBase::rank_with_evidence`] for the message as one text.
    fn rank_whole(&self, query: &str, limit: usize) -> Vec<(Candidate, Evidence)> {
        // The words and n-grams are matched with the shop's vocabulary applied and English
        // typos put right; the sentence encoders read the message as written (they have their
        // own ways with typos and slang).
        let prepared = self.analyzer.prepare(query);
        // A corrected word may itself be a form of the vocabulary: prepared again.
        let lexical = match self.speller.correct(&prepared) {
            Some(corrected) => self.analyzer.prepare(&corrected),
            None => prepared,
        };
        let lexical = lexical.as_str();
        let x = self
            .vectorizer
            .transform(&self.analyzer.features_prepared(lexical));
        let n = self.entries.len();
        let mut evidence: Vec<Evidence> = vec![Evidence::default(); n];
        let mut closest: Vec<Option<usize>> = vec![None; n];

        // Neighbours: cosine similarity to every question sharing a (not too common) feature
        // with the query, accumulated in a per-thread buffer that only the touched slots dirty.
        let mut touched: Vec<u32> = Vec::new();
        SCRATCH.with(|cell| {
            let mut sims = cell.borrow_mut();
            if sims.len() < self.questions.len() {
                sims.resize(self.questions.len(), 0.0);
            }
            for &(d, w) in &x {
                for &(q, v) in &self.postings[d as usize] {
                    let s = &mut sims[q as usize];
                    if *s == 0.0 {
                        touched.push(q);
                    }
                    *s += w * v;
                }
            }
            if touched.len() > EXACT_NEIGHBOURS {
                touched.select_nth_unstable_by(EXACT_NEIGHBOURS, |a, b| {
                    sims[*b as usize].total_cmp(&sims[*a as usize])
                });
            }
            for &q in &touched {
                sims[q as usize] = 0.0;
            }
        });
        touched.truncate(EXACT_NEIGHBOURS);
        // Exact cosines for the questions that share the most rare features with the query.
        let mut oos_neighbour = 0.0f32;
        let mut near_miss_neighbour = 0.0f32;
        for &q in &touched {
            let s = dot(&x, &self.vectors[q as usize]);
            match self.questions[q as usize].0 {
                Owner::Entry(e) => {
                    if s > evidence[e].neighbour {
                        evidence[e].neighbour = s;
                        closest[e] = Some(q as usize);
                    }
                }
                Owner::OutOfScope => oos_neighbour = oos_neighbour.max(s),
                Owner::NearMiss => {
                    oos_neighbour = oos_neighbour.max(s);
                    near_miss_neighbour = near_miss_neighbour.max(s);
                }
            }
        }

        // The model; a query without a single known feature would only get its prior.
        let mut oos_prob = 0.0;
        if let Some(model) = self.model.as_ref().filter(|_| !x.is_empty()) {
            let p = model.predict(&x);
            for (e, ev) in evidence.iter_mut().enumerate() {
                ev.model = p[e];
            }
            if self.has_out_of_scope {
                oos_prob = p[n];
            }
        }

        // The index.
        let hits = self.index.search_prepared(lexical, INDEX_HITS);
        if let Some(best) = hits.first().map(|h| h.score).filter(|s| *s > 0.0) {
            for h in &hits {
                let rel = h.score / best;
                let ev = &mut evidence[h.entry];
                if rel > ev.index {
                    ev.index = rel;
                }
                if closest[h.entry].is_none() {
                    closest[h.entry] = h.question;
                }
            }
        }

        // The sentence embeddings: compared with every question (a few milliseconds for
        // 15,000 questions), and the classifier trained on them.
        if let Some(sem) = self.semantic.as_ref().filter(|_| !query.trim().is_empty()) {
            let embedded: Vec<Option<Vec<f32>>> =
                sem.channels.iter().map(|c| c.query(query)).collect();
            if embedded.iter().any(Option::is_some) {
                let mut sem_closest: Vec<Option<usize>> = vec![None; n];
                let mut oos = -1.0f32;
                for ev in evidence.iter_mut() {
                    ev.has_semantic = true;
                    ev.semantic = -1.0;
                }
                for (i, (owner, _)) in self.questions.iter().enumerate() {
                    // The mean cosine over the encoders that cover both texts.
                    let (mut sum, mut count) = (0.0f32, 0u32);
                    for (channel, q) in sem.channels.iter().zip(&embedded) {
                        if let Some(q) = q.as_deref().filter(|_| channel.covered[i]) {
                            sum += semantic::dot(q, channel.row(i));
                            count += 1;
                        }
                    }
                    if count == 0 {
                        continue;
                    }
                    let s = sum / count as f32;
                    match owner {
                        Owner::Entry(e) => {
                            if s > evidence[*e].semantic {
                                evidence[*e].semantic = s;
                                sem_closest[*e] = Some(i);
                            }
                        }
                        Owner::OutOfScope | Owner::NearMiss => oos = oos.max(s),
                    }
                }
                let mut sem_oos = 0.0;
                if let Some(model) = &sem.model {
                    let mut x = Vec::with_capacity(sem.dim());
                    for (channel, q) in sem.channels.iter().zip(&embedded) {
                        match q {
                            Some(q) => x.extend_from_slice(q),
                            None => x.resize(x.len() + channel.dim, 0.0),
                        }
                    }
                    let p = model.predict(&x);
                    for (e, ev) in evidence.iter_mut().enumerate() {
                        ev.semantic_model = p[e];
                    }
                    if self.has_out_of_scope {
                        sem_oos = p[n];
                    }
                }
                for ev in evidence.iter_mut() {
                    ev.semantic_neighbour_out_of_scope = oos.max(0.0);
                    ev.semantic_out_of_scope = sem_oos;
                }
                // The closest question in meaning is the one to show.
                for (e, q) in sem_closest.into_iter().enumerate() {
                    if q.is_some() {
                        closest[e] = q;
                    }
                }
            }
        }

        let mut scored: Vec<(usize, f32)> = evidence
            .iter_mut()
            .enumerate()
            .filter(|(_, ev)| {
                ev.model > 1e-3
                    || ev.neighbour > 0.0
                    || ev.index > 0.0
                    || ev.semantic_model > 1e-3
                    || ev.semantic > SEMANTIC_CANDIDATE
            })
            .map(|(e, ev)| {
                ev.out_of_scope = oos_prob;
                ev.neighbour_out_of_scope = oos_neighbour;
                ev.neighbour_near_miss = near_miss_neighbour;
                (e, self.score(ev))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(limit);
        let runner_up = scored.get(1).map_or(0.0, |s| s.1);
        scored
            .iter()
            .enumerate()
            .map(|(rank, &(e, score))| {
                let ev = evidence[e];
                let margin = if rank == 0 { score - runner_up } else { 0.0 };
                let matched_question = closest[e]
                    .map(|q| self.questions[q].1.clone())
                    .or_else(|| self.entries[e].questions.first().cloned())
                    .unwrap_or_default();
                let candidate = Candidate {
                    id: self.entries[e].id.clone(),
                    score,
                    confidence: self.confidence(&ev, score, margin),
                    matched_question,
                };
                (candidate, ev)
            })
            .collect()
    }

    /// The ranking score of a candidate from its evidence.
    fn score(&self, ev: &Evidence) -> f32 {
        // With an encoder: weights fitted (conditional logit over each query's candidates) on
        // CLINC150 validation, a held-out fifth of BANKING77 and the card-shop messages, and
        // without models on AFQMC.
        if ev.has_semantic {
            return if self.model.is_some() {
                1.9 * ev.model
                    + 4.8 * ev.semantic_model
                    + 1.3 * ev.neighbour
                    + 4.3 * ev.semantic
                    + 1.25 * ev.index
            } else {
                0.5 * ev.neighbour + 0.3 * ev.index + 4.0 * ev.semantic
            };
        }
        if self.model.is_some() {
            ev.model + 0.5 * ev.neighbour + 0.2 * ev.index
        } else {
            ev.neighbour + 0.3 * ev.index
        }
    }

    /// The confidence of a candidate: a logistic function of its evidence, `margin` being its
    /// lead in score over the runner-up (0 for all but the best candidate).
    ///
    /// With a model, the coefficients were fitted on CLINC150 (built with and without its
    /// out-of-scope examples) and on held-out card-shop messages against the built-in knowledge
    /// base, maximising AUROC and in-scope accuracy + out-of-scope recall. The model's
    /// out-of-scope class weighs most: it is what tells chatter from questions.
    ///
    /// With an encoder the coefficients were fitted by logistic regression (is the best
    /// candidate right?) on the same data as the ranking weights; the two models' out-of-scope
    /// probabilities weigh most.
    fn confidence(&self, ev: &Evidence, score: f32, margin: f32) -> f32 {
        let z = if ev.has_semantic {
            if self.model.is_some() {
                -1.56 + 0.8 * ev.model
                    - 3.43 * ev.out_of_scope
                    - 0.68 * ev.neighbour
                    - 0.91 * ev.neighbour_out_of_scope
                    + 0.66 * ev.index
                    + 0.26 * ev.semantic_model
                    - 2.72 * ev.semantic_out_of_scope
                    - 0.59 * ev.semantic
                    + 1.05 * ev.semantic_neighbour_out_of_scope
                    + 0.5 * margin
                    + 0.16 * score
            } else {
                // Too many entries for the models: closeness in meaning and the lead.
                -3.0 + 4.0 * ev.semantic + 2.4 * margin
            }
        } else if self.model.is_some() {
            -2.1 + 3.3 * ev.model + 0.6 * ev.neighbour + 1.0 * ev.index
                - 0.8 * margin
                - 6.9 * ev.out_of_scope
                + 0.8 * ev.neighbour_out_of_scope
                - near_miss_penalty(ev)
        } else {
            -5.0 + 8.0 * score + 4.0 * margin
        };
        1.0 / (1.0 + (-z).exp())
    }
}

/// A message lighter than this (see [`weight`]: about twelve English words or twenty-four
/// Chinese characters) is ranked as a whole only: a short message is not diluted much, and
/// its parts are not worth the risk of a fragment answering for it.
const LONG_MESSAGE: usize = 24;

/// How a near miss lowers the confidence (lexical matching with a model): a message whose
/// closest near miss is within [`NEAR_MISS_MARGIN`] of (or closer than) the matched entry's
/// closest question loses `NEAR_MISS_WEIGHT` × the difference in the confidence's logit.
/// Chosen on tests/data/customer_messages_4_dev.jsonl (weights 4–32, margins −0.1–0.1): there
/// it declines 8 more of the 44 out-of-scope messages (34 → 42) at the cost of 2 of the 181
/// in-scope answers.
const NEAR_MISS_WEIGHT: f32 = 32.0;
/// See [`NEAR_MISS_WEIGHT`].
const NEAR_MISS_MARGIN: f32 = 0.1;

/// What the closest near miss takes off a candidate's confidence logit; nothing for a message
/// that shares no feature with any near miss (or a knowledge base without them).
fn near_miss_penalty(ev: &Evidence) -> f32 {
    if ev.neighbour_near_miss <= 0.0 {
        return 0.0;
    }
    NEAR_MISS_WEIGHT * (ev.neighbour_near_miss - ev.neighbour + NEAR_MISS_MARGIN).max(0.0)
}

/// The longest run of adjacent clauses ranked as one window (three measured no better on
/// the development messages than two, at half again the cost).
const WINDOW_CLAUSES: usize = 2;

/// At most this many clauses of a long message are ranked on their own (the last ones: the
/// question tends to come after the story).
const MAX_CLAUSES: usize = 8;

/// The clauses of `query` and the runs of up to [`WINDOW_CLAUSES`] adjacent clauses, when it
/// is long and has more than one.
fn clause_windows(query: &str) -> Vec<&str> {
    if weight(query) < LONG_MESSAGE {
        return Vec::new();
    }
    let spans = crate::text::clause_spans(query);
    if spans.len() < 2 {
        return Vec::new();
    }
    let spans = &spans[spans.len().saturating_sub(MAX_CLAUSES)..];
    let mut windows = Vec::new();
    for len in 1..=WINDOW_CLAUSES.min(spans.len() - 1) {
        for run in spans.windows(len) {
            let window = &query[run[0].start..run[len - 1].end];
            // A fragment ("or both", "怎么办") says too little to answer for the message
            // alone; it still counts inside longer runs.
            if len > 1 || substantive(window) {
                windows.push(window);
            }
        }
    }
    windows
}

/// How much a text says: two per Latin word, one per Han character (a Chinese word is about
/// two characters).
fn weight(text: &str) -> usize {
    let han = text
        .chars()
        .filter(|c| kefu_core::locale::is_han(*c))
        .count();
    let latin = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.chars().any(|c| c.is_ascii_alphabetic()))
        .count();
    2 * latin + han
}

/// Whether a clause has enough words to be matched on its own: three Latin words, four Han
/// characters, or a mix worth as much.
fn substantive(clause: &str) -> bool {
    weight(clause) >= 6
}

impl Knowledge for KnowledgeBase {
    fn rank(&self, query: &str, limit: usize) -> Ranking {
        Ranking {
            candidates: self
                .rank_with_evidence(query, limit)
                .into_iter()
                .map(|(c, _)| c)
                .collect(),
        }
    }

    fn entry(&self, id: &str) -> Option<&FaqEntry> {
        self.by_id.get(id).map(|&i| &self.entries[i])
    }

    fn with_action(&self, action: kefu_core::Action) -> Option<&FaqEntry> {
        self.entries.iter().find(|e| e.action == Some(action))
    }

    /// With a sentence encoder every message costs milliseconds of CPU.
    fn ranks_slowly(&self) -> bool {
        self.semantic.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faq::{LocatedEntry, Location, OutOfScope};
    use kefu_core::Answers;

    fn located(id: &str, questions: &[&str]) -> LocatedEntry {
        let location = Location {
            path: "t.yaml".into(),
            line: 1,
            column: 1,
        };
        LocatedEntry {
            entry: FaqEntry::new(
                id,
                questions.iter().copied(),
                Answers {
                    zh: format!("{id} 的答案"),
                    en: format!("answer of {id}"),
                },
            ),
            location,
            example_locations: vec![],
        }
    }

    fn set(with_out_of_scope: bool) -> FaqSet {
        let mut set = FaqSet {
            entries: vec![
                located(
                    "order.card_key_lookup",
                    &[
                        "我的卡密在哪里",
                        "卡密没收到",
                        "where is my card key",
                        "i did not get my key",
                        "show me my code",
                    ],
                ),
                located(
                    "refund.request",
                    &[
                        "我要退款",
                        "怎么退钱",
                        "i want a refund",
                        "give me my money back",
                        "refund my order",
                    ],
                ),
                located(
                    "service.contact_hours",
                    &[
                        "客服几点上班",
                        "客服什么时候在",
                        "what are your support hours",
                        "when are you open",
                        "are you online at night",
                    ],
                ),
            ],
            ..FaqSet::default()
        };
        if with_out_of_scope {
            set.out_of_scope = [
                "今天天气怎么样",
                "讲个笑话",
                "what's the weather",
                "tell me a joke",
                "who won the game",
            ]
            .iter()
            .map(|t| OutOfScope {
                near_miss: false,
                text: t.to_string(),
                location: Location {
                    path: "t.yaml".into(),
                    line: 1,
                    column: 1,
                },
            })
            .collect();
        }
        set
    }

    fn kb(with_out_of_scope: bool) -> KnowledgeBase {
        KnowledgeBase::build(set(with_out_of_scope), MatcherOptions::default()).unwrap()
    }

    #[test]
    fn any_text_ranks_without_panicking_with_confidences_in_range() {
        let mut set = set(true);
        set.vocabulary = ["km", "點解", "ty"]
            .iter()
            .zip(["卡密", "为什么", "thanks"])
            .map(|(form, word)| crate::faq::VocabularyRule {
                form: form.to_string(),
                word: word.to_string(),
                location: Location {
                    path: "t.yaml".into(),
                    line: 1,
                    column: 1,
                },
            })
            .collect();
        let kb = KnowledgeBase::build(set, MatcherOptions::default()).unwrap();
        // Long texts too: twenty random pieces and more get split into clause windows.
        for text in crate::vocabulary::tests::random_texts(2_000) {
            let long = format!("{text} 我昨天买的卡密，结果 {text}，but it says invalid {text}");
            for query in [text.as_str(), long.as_str()] {
                for (candidate, _) in kb.rank_with_evidence(query, 5) {
                    assert!(
                        (0.0..=1.0).contains(&candidate.confidence),
                        "{query:?}: {candidate:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn paraphrases_rank_their_entry_first_with_a_bounded_confidence() {
        let kb = kb(true);
        for (query, id) in [
            ("卡密在哪看", "order.card_key_lookup"),
            ("where's my key??", "order.card_key_lookup"),
            ("refund pls", "refund.request"),
            ("客服啥时候上班", "service.contact_hours"),
        ] {
            let ranking = kb.rank(query, 3);
            assert_eq!(ranking.top().unwrap().id, id, "{query}");
            assert!(ranking.candidates.len() <= 3);
            for pair in ranking.candidates.windows(2) {
                assert!(pair[0].score >= pair[1].score, "{ranking:?}");
            }
            for c in &ranking.candidates {
                assert!((0.0..=1.0).contains(&c.confidence), "{c:?}");
            }
        }
    }

    #[test]
    fn out_of_scope_examples_lower_the_confidence_of_chatter() {
        let with = kb(true);
        let without = kb(false);
        let query = "tell me a joke about the weather";
        assert!(with.rank(query, 1).confidence() < without.rank(query, 1).confidence().max(0.01));
        assert_ne!(with.decide(query, 3).0, Decision::Answer);
        // In-scope questions keep a high confidence.
        assert_eq!(with.decide("我要退款", 3).0, Decision::Answer);
    }

    #[test]
    fn the_matched_question_is_the_closest_one() {
        let ranking = kb(true).rank("give me my money back now", 1);
        assert_eq!(
            ranking.top().unwrap().matched_question,
            "give me my money back"
        );
    }

    #[test]
    fn unrelated_text_has_no_or_low_candidates_and_an_empty_base_is_an_error() {
        let kb = kb(true);
        assert!(kb.rank("", 3).candidates.is_empty());
        assert_eq!(kb.decide("qwzx", 3).0, Decision::Decline);
        assert!(matches!(
            KnowledgeBase::build(FaqSet::default(), MatcherOptions::default()),
            Err(Error::Empty)
        ));
    }

    #[test]
    fn answers_are_rendered_in_the_asked_locale() {
        let kb = kb(false);
        let vars = BTreeMap::new();
        assert_eq!(
            kb.render_answer("refund.request", Locale::En, &vars)
                .unwrap(),
            "answer of refund.request"
        );
        assert_eq!(
            kb.render_answer("refund.request", Locale::Zh, &vars)
                .unwrap(),
            "refund.request 的答案"
        );
        assert!(kb.render_answer("nope", Locale::Zh, &vars).is_none());
    }

    #[test]
    fn an_encoder_adds_semantic_evidence_and_a_cache_makes_a_restart_skip_the_work() {
        use crate::semantic::testing::Bigrams;
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let options = MatcherOptions {
            cache_dir: Some(dir.path().to_path_buf()),
            ..MatcherOptions::default()
        };
        let encoder = Arc::new(Bigrams::new("bigrams"));
        let kb =
            KnowledgeBase::build_with(set(true), options.clone(), vec![encoder.clone()]).unwrap();
        assert_eq!(encoder.texts.load(Ordering::SeqCst), kb.stats().questions);
        assert!(!kb.stats().model_cached);
        let ranked = kb.rank_with_evidence("我要退款", 2);
        let (top, ev) = &ranked[0];
        assert_eq!(top.id, "refund.request");
        assert!(
            ev.has_semantic && ev.semantic > 0.5 && ev.semantic_model > 0.0,
            "{ev:?}"
        );
        assert!((0.0..=1.0).contains(&top.confidence));
        // The engine ranks it on a blocking thread; a lexical base it ranks in place.
        assert!(kb.ranks_slowly());
        assert!(!KnowledgeBase::build(set(true), MatcherOptions::default())
            .unwrap()
            .ranks_slowly());

        let encoder = Arc::new(Bigrams::new("bigrams"));
        let again = KnowledgeBase::build_with(set(true), options, vec![encoder.clone()]).unwrap();
        assert_eq!(again.stats().embedded.embedded, 0);
        assert!(again.stats().model_cached);
        // Only the queries are embedded now.
        assert_eq!(encoder.texts.load(Ordering::SeqCst), 0);
        assert_eq!(again.rank("我要退款", 3), kb.rank("我要退款", 3));
    }

    /// Character bigrams that, like an English-only encoder, cover no Chinese text.
    struct EnglishOnly(crate::semantic::testing::Bigrams);

    impl Embedder for EnglishOnly {
        fn model_id(&self) -> &str {
            self.0.model_id()
        }
        fn dim(&self) -> usize {
            self.0.dim()
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, semantic::EmbedError> {
            assert!(!texts.iter().any(|t| semantic::has_cjk(t)), "{texts:?}");
            self.0.embed(texts)
        }
        fn covers(&self, text: &str) -> bool {
            !semantic::has_cjk(text)
        }
    }

    #[test]
    fn a_second_encoder_sees_only_the_texts_it_covers_and_joins_only_their_comparisons() {
        use crate::semantic::testing::Bigrams;
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let options = MatcherOptions {
            cache_dir: Some(dir.path().to_path_buf()),
            ..MatcherOptions::default()
        };
        let build = || {
            let english = Arc::new(EnglishOnly(Bigrams::new("english-bigrams")));
            let encoders: Vec<Arc<dyn Embedder>> =
                vec![Arc::new(Bigrams::new("bigrams")), english.clone()];
            let kb = KnowledgeBase::build_with(set(true), options.clone(), encoders).unwrap();
            (kb, english)
        };
        let (kb, english) = build();
        let set = set(true);
        let texts: Vec<&str> = set.texts().collect();
        let latin = texts.iter().filter(|t| !semantic::has_cjk(t)).count();
        assert_eq!(english.0.texts.load(Ordering::SeqCst), latin);
        assert_eq!(kb.stats().embedded.embedded, texts.len() + latin);

        // A Chinese message is compared by the multilingual encoder alone: its closeness to
        // each entry is what that encoder alone finds.
        let alone = KnowledgeBase::build_with(
            self::set(true),
            MatcherOptions::default(),
            vec![Arc::new(Bigrams::new("bigrams"))],
        )
        .unwrap();
        let closeness = |kb: &KnowledgeBase, query: &str| -> Vec<(String, f32)> {
            let mut v: Vec<(String, f32)> = kb
                .rank_with_evidence(query, 10)
                .into_iter()
                .map(|(c, ev)| (c.id, ev.semantic))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        assert_eq!(
            closeness(&kb, "我要退款啊"),
            closeness(&alone, "我要退款啊")
        );
        assert_eq!(english.0.texts.load(Ordering::SeqCst), latin);
        // An English one by both.
        let (top, ev) = &kb.rank_with_evidence("refund my order please", 1)[0];
        assert_eq!(top.id, "refund.request");
        assert!(ev.has_semantic && ev.semantic > 0.5, "{ev:?}");
        assert_eq!(english.0.texts.load(Ordering::SeqCst), latin + 1);

        // A restart takes both encoders' vectors and the classifier from the cache.
        let (again, english) = build();
        assert_eq!(again.stats().embedded.embedded, 0);
        assert_eq!(again.stats().embedded.cached, texts.len() + latin);
        assert_eq!(english.0.calls.load(Ordering::SeqCst), 0);
        assert_eq!(
            again.rank("refund my order please", 3),
            kb.rank("refund my order please", 3)
        );
    }

    #[test]
    fn a_base_too_large_for_the_model_still_ranks_by_neighbours_and_index() {
        let entries: Vec<LocatedEntry> = (0..MAX_MODEL_CLASSES + 1)
            .map(|i| {
                let a = format!("question number{i} about topic{i}");
                let b = format!("another way to ask topic{i}");
                located(&format!("e{i}"), &[&a, &b])
            })
            .collect();
        let set = FaqSet {
            entries,
            ..FaqSet::default()
        };
        let kb = KnowledgeBase::build(set, MatcherOptions::default()).unwrap();
        assert!(kb.model.is_none());
        let ranking = kb.rank("asking about topic1234", 3);
        assert_eq!(ranking.top().unwrap().id, "e1234");
    }
}
