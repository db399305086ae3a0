//! Sentence embeddings: the semantic evidence of the matcher.
//!
//! An [`Embedder`] turns texts into unit-length vectors whose dot product says how close their
//! meanings are, across languages: "退钱" lands near "I want a refund". The knowledge base
//! embeds every question and paraphrase when it loads ([`embed_all`], batched, through an
//! on-disk [`EmbeddingCache`] keyed by model and text so a restart does not embed again) and
//! every query when it ranks.
//!
//! A knowledge base can use several encoders side by side: each says which texts it
//! [covers](Embedder::covers), and texts are compared with the encoders that cover both.
//! kefu uses multilingual-e5-small for every text and, for texts without Chinese, Japanese or
//! Korean characters, the English all-MiniLM-L6-v2 as well.
//!
//! The trait is always available; the implementation that runs both with rust-bert and
//! libtorch, [`BertEmbedder`], is behind the cargo feature `semantic`, so the default build
//! needs no libtorch.

#[cfg(feature = "semantic")]
mod bert;
mod cache;
mod trained;
#[cfg(feature = "semantic")]
mod weights;

#[cfg(feature = "semantic")]
pub use bert::{BertEmbedder, EncoderSpec};
pub use cache::EmbeddingCache;
pub use trained::{cached_numbers, ModelKey};

use std::time::Instant;

/// Why texts could not be embedded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EmbedError(pub String);

/// A sentence encoder.
///
/// Implementations must be deterministic (the same text gives the same vector, which is what
/// makes caching sound) and return vectors of length [`Embedder::dim`] with unit L2 norm.
pub trait Embedder: Send + Sync {
    /// Names the model and everything that changes its vectors (weights, prefixes, pooling).
    /// Embeddings are cached under this name; change it whenever the vectors would change.
    fn model_id(&self) -> &str;

    /// The length of every vector.
    fn dim(&self) -> usize;

    /// One unit vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// Whether the encoder understands `text`. A knowledge base never asks an encoder to embed
    /// a text it does not cover, and compares such texts with the other encoders only. The
    /// default covers every text.
    fn covers(&self, _text: &str) -> bool {
        true
    }
}

/// How many texts go through the encoder at once when a knowledge base loads.
pub const BATCH: usize = 32;

/// What [`embed_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EmbedStats {
    /// Texts found in the cache.
    pub cached: usize,
    /// Texts run through the encoder.
    pub embedded: usize,
    /// Seconds spent, cache reads and writes included.
    pub seconds: f64,
}

/// Embeds `texts` into one flat row-major matrix (`texts.len() × dim`), taking what the cache
/// has and adding what it lacks, then lets the cache drop what `texts` no longer need (see
/// [`EmbeddingCache::prune`]). Texts are encoded in batches of similar length (less padding);
/// `progress` is called with the number of texts done so far.
pub fn embed_all(
    embedder: &dyn Embedder,
    texts: &[&str],
    mut cache: Option<&mut EmbeddingCache>,
    mut progress: impl FnMut(usize),
) -> Result<(Vec<f32>, EmbedStats), EmbedError> {
    let started = Instant::now();
    let dim = embedder.dim();
    let mut out = vec![0f32; texts.len() * dim];
    let mut missing: Vec<usize> = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        match cache.as_deref().and_then(|c| c.get(text)) {
            Some(v) => out[i * dim..(i + 1) * dim].copy_from_slice(v),
            None => missing.push(i),
        }
    }
    let cached = texts.len() - missing.len();
    progress(cached);
    // Many paraphrases repeat; each distinct text is encoded once.
    missing.sort_by(|&a, &b| {
        texts[a]
            .chars()
            .count()
            .cmp(&texts[b].chars().count())
            .then(texts[a].cmp(texts[b]))
    });
    missing.dedup_by(|a, b| texts[*a] == texts[*b]);
    let mut done = cached;
    for chunk in missing.chunks(BATCH) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
        let vectors = embedder.embed(&batch)?;
        if vectors.len() != batch.len() || vectors.iter().any(|v| v.len() != dim) {
            return Err(EmbedError(format!(
                "the encoder returned {} vectors for {} texts (or vectors not {dim} long)",
                vectors.len(),
                batch.len()
            )));
        }
        for (text, v) in batch.iter().zip(&vectors) {
            if let Some(cache) = cache.as_deref_mut() {
                cache.insert(text, v);
            }
        }
        for (&i, v) in chunk.iter().zip(&vectors) {
            out[i * dim..(i + 1) * dim].copy_from_slice(v);
        }
        done += chunk.len();
        progress(done);
    }
    // Duplicates of encoded texts were skipped above: fill them from their twin.
    let embedded = missing.len();
    let seen: std::collections::HashMap<&str, usize> =
        missing.iter().map(|&i| (texts[i], i)).collect();
    for (i, text) in texts.iter().enumerate() {
        if let Some(&j) = seen.get(text) {
            if j != i {
                let (src, dst) = (j * dim, i * dim);
                out.copy_within(src..src + dim, dst);
            }
        }
    }
    if let Some(cache) = cache {
        cache
            .flush()
            .map_err(|e| EmbedError(format!("cannot write the embedding cache: {e}")))?;
        // Vectors of questions edited away; failing to drop them costs only disk space.
        match cache.prune(texts) {
            Ok(0) => {}
            Ok(dropped) => {
                tracing::info!(dropped, path = %cache.path().display(), "dropped unused vectors from the embedding cache")
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %cache.path().display(), "cannot prune the embedding cache")
            }
        }
    }
    progress(texts.len());
    Ok((
        out,
        EmbedStats {
            cached,
            embedded,
            seconds: started.elapsed().as_secs_f64(),
        },
    ))
}

/// Replaces the file at `path` with `bytes`: written beside it under a name of this process's
/// and renamed over it, so a reader never sees half a file and two writers never share one.
/// On failure the temporary file is removed.
fn replace_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let written = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Whether `text` holds a Chinese, Japanese or Korean character (or a full-width form): such a
/// text is not given to an English-only encoder.
pub fn has_cjk(text: &str) -> bool {
    text.chars().any(|c| {
        matches!(c as u32,
            0x2E80..=0x9FFF        // radicals, CJK punctuation, kana, Bopomofo, Han
            | 0xA960..=0xA97F      // Hangul Jamo extended
            | 0xAC00..=0xD7FF      // Hangul syllables
            | 0xF900..=0xFAFF      // CJK compatibility ideographs
            | 0xFE30..=0xFE4F      // CJK compatibility forms
            | 0xFF00..=0xFFEF      // half- and full-width forms
            | 0x20000..=0x3FFFF) // Han extensions B and later
    })
}

/// Scales `v` to unit length (left as is when it is all zeros).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The dot product of two equally long vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four accumulators let the compiler vectorise without reassociating one sum.
    let mut acc = [0f32; 4];
    let chunks = a.len() / 4 * 4;
    for (x, y) in a[..chunks].chunks_exact(4).zip(b[..chunks].chunks_exact(4)) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f32 = a[chunks..]
        .iter()
        .zip(&b[chunks..])
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
pub(crate) mod testing {
    //! A small deterministic embedder for tests of everything around the encoder: hashed
    //! character bigrams, so texts sharing characters are close. It knows no meaning.
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Bigrams {
        pub id: String,
        pub calls: AtomicUsize,
        pub texts: AtomicUsize,
    }

    impl Bigrams {
        pub fn new(id: &str) -> Self {
            Bigrams {
                id: id.to_string(),
                calls: AtomicUsize::new(0),
                texts: AtomicUsize::new(0),
            }
        }
    }

    impl Embedder for Bigrams {
        fn model_id(&self) -> &str {
            &self.id
        }
        fn dim(&self) -> usize {
            64
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.texts.fetch_add(texts.len(), Ordering::SeqCst);
            Ok(texts
                .iter()
                .map(|t| {
                    let chars: Vec<char> = t.to_lowercase().chars().collect();
                    let mut v = vec![0f32; 64];
                    for w in chars.windows(2) {
                        let h = (w[0] as u32).wrapping_mul(31).wrapping_add(w[1] as u32);
                        v[(h % 64) as usize] += 1.0;
                    }
                    if chars.len() < 2 {
                        v[0] = 1.0;
                    }
                    normalize(&mut v);
                    v
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Bigrams;
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn embed_all_encodes_each_distinct_text_once_and_fills_the_rest_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let enc = Bigrams::new("bigrams-v1");
        let texts = ["退款", "refund please", "退款", "where is my key"];
        let mut cache = EmbeddingCache::open(dir.path(), enc.model_id(), enc.dim()).unwrap();
        let (first, stats) = embed_all(&enc, &texts, Some(&mut cache), |_| {}).unwrap();
        assert_eq!(stats.cached, 0);
        assert_eq!(stats.embedded, 3);
        assert_eq!(enc.texts.load(Ordering::SeqCst), 3);
        assert_eq!(first.len(), 4 * 64);
        assert_eq!(first[..64], first[2 * 64..3 * 64]);
        for row in first.chunks(64) {
            assert!((dot(row, row) - 1.0).abs() < 1e-5);
        }

        // A new process: everything comes from disk, nothing is encoded.
        let enc2 = Bigrams::new("bigrams-v1");
        let mut cache = EmbeddingCache::open(dir.path(), enc2.model_id(), enc2.dim()).unwrap();
        let (second, stats) = embed_all(&enc2, &texts, Some(&mut cache), |_| {}).unwrap();
        assert_eq!(enc2.calls.load(Ordering::SeqCst), 0);
        assert_eq!(stats.cached, 4);
        assert_eq!(first, second);

        // Another model id never sees those vectors.
        let other = Bigrams::new("bigrams-v2");
        let mut cache = EmbeddingCache::open(dir.path(), other.model_id(), other.dim()).unwrap();
        let (_, stats) = embed_all(&other, &texts, Some(&mut cache), |_| {}).unwrap();
        assert_eq!(stats.embedded, 3);
    }

    #[test]
    fn dot_matches_a_plain_sum() {
        let a: Vec<f32> = (0..11).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..11).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-4);
    }
}
