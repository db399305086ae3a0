//! Trained weights kept on disk, so a restart with unchanged FAQ files skips training.

use sha2::{Digest, Sha256};
use std::path::Path;

const MAGIC: &[u8; 8] = b"KEFUMDL1";

/// How many model files the cache keeps: the ones used most recently. Every edit of the FAQ
/// files makes new ones, and a large base's lexical model takes tens of megabytes.
pub const KEEP_MODELS: usize = 32;

/// A key over everything that decides a trained model: build it with [`ModelKey::add`].
pub struct ModelKey(Sha256);

impl ModelKey {
    /// Starts a key for one kind of model (its name and version).
    pub fn new(kind: &str) -> Self {
        let mut h = Sha256::new();
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.update([0]);
        h.update(kind.as_bytes());
        h.update([0]);
        ModelKey(h)
    }

    /// Adds one input (a text, a label, an option).
    pub fn add(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    fn hex(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The numbers cached under `key` in `dir`, or `train()`'s, which are then cached. Without a
/// directory, or when the cache cannot be read or written, this just trains (a warning says
/// why the cache was not used).
pub fn cached_numbers(
    dir: Option<&Path>,
    key: ModelKey,
    train: impl FnOnce() -> Vec<f32>,
) -> (Vec<f32>, bool) {
    let Some(dir) = dir else {
        return (train(), false);
    };
    let dir = dir.join("models");
    let path = dir.join(format!("{}.f32", key.hex()));
    if let Ok(bytes) = std::fs::read(&path) {
        if bytes.len() >= 16 && &bytes[..8] == MAGIC {
            let n = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
            let body = &bytes[16..];
            if body.len() == n * 4 {
                let numbers = body
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                // Marks it as used, for pruning.
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                return (numbers, true);
            }
        }
        tracing::warn!(path = %path.display(), "damaged model cache file; training again");
    }
    let numbers = train();
    let mut bytes = Vec::with_capacity(16 + numbers.len() * 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(numbers.len() as u64).to_le_bytes());
    for x in &numbers {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    let written = std::fs::create_dir_all(&dir).and_then(|_| super::replace_file(&path, &bytes));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the model cache");
    } else {
        prune(&dir, KEEP_MODELS);
    }
    (numbers, false)
}

/// Deletes all but the `keep` model files of `dir` used most recently.
fn prune(dir: &Path, keep: usize) {
    let Ok(files) = std::fs::read_dir(dir) else {
        return;
    };
    let mut models: Vec<(std::time::SystemTime, std::path::PathBuf)> = files
        .filter_map(|f| {
            let path = f.ok()?.path();
            let used = path.metadata().ok()?.modified().ok()?;
            (path.extension()? == "f32").then_some((used, path))
        })
        .collect();
    if models.len() <= keep {
        return;
    }
    models.sort_by_key(|m| std::cmp::Reverse(m.0));
    for (_, path) in &models[keep..] {
        // Another process may have removed it first, or be about to read it and train again.
        if std::fs::remove_file(path).is_ok() {
            tracing::debug!(path = %path.display(), "pruned an unused model from the cache");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> ModelKey {
        let mut k = ModelKey::new("test-v1");
        k.add(text.as_bytes());
        k
    }

    #[test]
    fn a_model_is_trained_once_per_key_and_a_damaged_file_is_retrained() {
        let dir = tempfile::tempdir().unwrap();
        let (a, hit) = cached_numbers(Some(dir.path()), key("x"), || vec![1.0, 2.0]);
        assert!(!hit);
        let (b, hit) = cached_numbers(Some(dir.path()), key("x"), || unreachable!());
        assert!(hit);
        assert_eq!(a, b);
        let (c, hit) = cached_numbers(Some(dir.path()), key("y"), || vec![3.0]);
        assert!(!hit);
        assert_eq!(c, vec![3.0]);
        for f in std::fs::read_dir(dir.path().join("models")).unwrap() {
            let f = f.unwrap().path();
            std::fs::write(&f, b"KEFUMDL1garbage").unwrap();
        }
        let (d, hit) = cached_numbers(Some(dir.path()), key("x"), || vec![5.0]);
        assert!(!hit);
        assert_eq!(d, vec![5.0]);
        let (_, hit) = cached_numbers(None, key("x"), || vec![5.0]);
        assert!(!hit);
    }

    #[test]
    fn the_cache_keeps_the_models_used_most_recently() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        let path = |i: usize| models.join(format!("{}.f32", key(&i.to_string()).hex()));
        let now = std::time::SystemTime::now();
        for i in 0..KEEP_MODELS {
            cached_numbers(Some(dir.path()), key(&i.to_string()), || vec![i as f32]);
            // Model i was last used i minutes after model 0.
            let when = now - std::time::Duration::from_secs(3600 - 60 * i as u64);
            let file = std::fs::File::options().write(true).open(path(i)).unwrap();
            file.set_modified(when).unwrap();
        }
        // Using the oldest makes it the newest.
        let (_, hit) = cached_numbers(Some(dir.path()), key("0"), || unreachable!());
        assert!(hit);
        for i in KEEP_MODELS..KEEP_MODELS + 3 {
            cached_numbers(Some(dir.path()), key(&i.to_string()), || vec![i as f32]);
        }
        assert_eq!(std::fs::read_dir(&models).unwrap().count(), KEEP_MODELS);
        for i in 0..KEEP_MODELS + 3 {
            let gone = (1..=3).contains(&i);
            assert_eq!(path(i).exists(), !gone, "model {i}");
        }
    }
}
