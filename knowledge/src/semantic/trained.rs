//! Trained weights kept on disk, so a restart with unchanged FAQ files skips training.

use sha2::{Digest, Sha256};
use std::path::Path;

const MAGIC: &[u8; 8] = b"KEFUMDL1";

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
    // Written beside and renamed, so a reader never sees half a file.
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    let written = std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(&tmp, &bytes))
        .and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(path = %path.display(), error = %e, "cannot write the model cache");
    }
    (numbers, false)
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
}
