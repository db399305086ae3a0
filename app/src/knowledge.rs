//! Loading the knowledge base the configuration names: the FAQ files (a directory, or the
//! built-in ones), the matcher's options, and the sentence encoders when `knowledge.semantic`
//! is on (feature `semantic`).

use crate::config::Config;
use kefu_knowledge::faq::{self, FaqSet};
use kefu_knowledge::semantic::{EmbedError, Embedder};
use kefu_knowledge::{Error, KnowledgeBase, MatcherOptions};
use std::path::Path;
use std::sync::Arc;
#[cfg(feature = "semantic")]
use std::time::Instant;

/// Loads the FAQ files of `dir`, or of the configured directory, or the built-in ones.
pub fn load_faq(config: &Config, dir: Option<&Path>) -> Result<(FaqSet, String), Error> {
    let validation = config.validation();
    match dir.or(config.knowledge.dir.as_deref()) {
        Some(dir) => Ok((faq::load_dir(dir, &validation)?, dir.display().to_string())),
        None => Ok((
            kefu_knowledge::defaults::load(&validation)?,
            "the built-in knowledge base".to_string(),
        )),
    }
}

/// The matcher's options from the configuration: thresholds and the model cache directory.
pub fn matcher_options(config: &Config) -> MatcherOptions {
    MatcherOptions {
        thresholds: config.thresholds,
        cache_dir: config.knowledge.effective_cache_dir(),
        ..MatcherOptions::default()
    }
}

/// Builds the knowledge base from FAQ files already read, with `embedders` (none: lexical).
pub fn build(
    config: &Config,
    set: FaqSet,
    embedders: Vec<Arc<dyn Embedder>>,
) -> Result<KnowledgeBase, Error> {
    KnowledgeBase::build_with(set, matcher_options(config), embedders)
}

/// The sentence encoders when `knowledge.semantic` is on: multilingual-e5-small, and the
/// English encoder unless `knowledge.english_encoder` is off. They load side by side.
#[cfg(feature = "semantic")]
pub fn embedder(config: &Config) -> anyhow::Result<Vec<Arc<dyn Embedder>>> {
    use kefu_knowledge::semantic::BertEmbedder;
    let knowledge = &config.knowledge;
    if !knowledge.semantic {
        return Ok(Vec::new());
    }
    let dir = match &knowledge.model_dir {
        Some(dir) => dir.clone(),
        None => kefu_knowledge::install::default_model_dir()?,
    };
    let english_dir = match (&knowledge.english_model_dir, knowledge.english_encoder) {
        (_, false) => None,
        (Some(dir), true) => Some(dir.clone()),
        (None, true) => Some(kefu_knowledge::install::default_english_model_dir()?),
    };
    let started = Instant::now();
    let (multilingual, english) = std::thread::scope(|s| {
        let english = english_dir.as_deref().map(|dir| {
            s.spawn(move || {
                BertEmbedder::english_minilm(dir).map_err(|e| {
                    anyhow::anyhow!(
                        "{e}; or turn knowledge.english_encoder off to match with the \
                         multilingual encoder alone"
                    )
                })
            })
        });
        let multilingual = BertEmbedder::multilingual_e5(&dir);
        (multilingual, english.map(|h| h.join()))
    });
    let mut encoders: Vec<Arc<dyn Embedder>> = vec![Arc::new(multilingual?)];
    if let Some(english) = english {
        let english =
            english.map_err(|_| anyhow::anyhow!("loading the English encoder panicked"))?;
        encoders.push(Arc::new(english?));
    }
    tracing::info!(dir = %dir.display(), english = ?english_dir, seconds = started.elapsed().as_secs_f64(), "sentence encoders loaded");
    Ok(encoders)
}

/// The sentence encoders when `knowledge.semantic` is on: a build without the feature has none.
#[cfg(not(feature = "semantic"))]
pub fn embedder(config: &Config) -> anyhow::Result<Vec<Arc<dyn Embedder>>> {
    if config.knowledge.semantic {
        anyhow::bail!(
            "knowledge.semantic is on, but this kefu was built without the `semantic` feature; \
             build it with `cargo build --release --features semantic` (see README: Semantic \
             matching) or turn knowledge.semantic off"
        );
    }
    Ok(Vec::new())
}

/// Loads the FAQ files (see [`load_faq`]) and builds the knowledge base from them, with the
/// sentence encoder when it is configured. The encoder loads while the files are read, indexed
/// and learned.
pub fn load_kb(config: &Config, dir: Option<&Path>) -> anyhow::Result<KnowledgeBase> {
    Ok(load_kb_keeping_faq(config, dir, false)?.0)
}

/// [`load_kb`], also returning the FAQ files it read when `keep_faq` (to build another
/// knowledge base from them without reading them again).
pub fn load_kb_keeping_faq(
    config: &Config,
    dir: Option<&Path>,
    keep_faq: bool,
) -> anyhow::Result<(KnowledgeBase, Option<FaqSet>)> {
    let loading = {
        let config = config.clone();
        std::thread::spawn(move || embedder(&config))
    };
    let (set, _) = load_faq(config, dir)?;
    let kept = keep_faq.then(|| set.clone());
    let kb = KnowledgeBase::build_loading(set, matcher_options(config), move || {
        loading
            .join()
            .map_err(|_| EmbedError("loading the sentence encoder panicked".into()))?
            .map_err(|e| EmbedError(format!("{e:#}")))
    })?;
    Ok((kb, kept))
}
