//! [`EmbeddingCache`]: sentence vectors on disk, keyed by model and text.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"KEFUEMB1";

/// Stale vectors (of texts no longer asked for) tolerated before [`EmbeddingCache::prune`]
/// rewrites the file, beyond as many as are in use.
const STALE_SLACK: usize = 1024;

/// Vectors already computed by one model, kept in one file per model under a cache directory.
///
/// The file is `<dir>/<first 16 hex digits of sha256(model id)>.emb`: a header (magic,
/// dimension, model id) and then records of `sha256(text)` followed by the vector as
/// little-endian f32. New vectors are appended by [`EmbeddingCache::flush`], one `write` per
/// batch of whole records, so an interrupted write leaves at most a partial last record,
/// which the next open drops. A file whose header names another model or dimension is
/// started over. Deleting the directory is always safe: it only costs the time to embed again.
pub struct EmbeddingCache {
    path: PathBuf,
    /// The file's header (magic, dimension, model id).
    head: Vec<u8>,
    dim: usize,
    /// sha256(text) -> the record's index in `vectors`.
    index: HashMap<[u8; 32], usize>,
    vectors: Vec<f32>,
    /// Records added since the last flush, ready to append.
    pending: Vec<u8>,
}

impl std::fmt::Debug for EmbeddingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingCache")
            .field("path", &self.path)
            .field("vectors", &self.len())
            .finish_non_exhaustive()
    }
}

fn header(model_id: &str, dim: usize) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(&(dim as u32).to_le_bytes());
    h.extend_from_slice(&(model_id.len() as u32).to_le_bytes());
    h.extend_from_slice(model_id.as_bytes());
    h
}

fn key(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl EmbeddingCache {
    /// Opens (or starts) the cache of `model_id` in `dir`, creating `dir` if needed.
    pub fn open(dir: &Path, model_id: &str, dim: usize) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let digest = Sha256::digest(model_id.as_bytes());
        let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("{name}.emb"));
        let head = header(model_id, dim);
        let mut cache = EmbeddingCache {
            path,
            head: head.clone(),
            dim,
            index: HashMap::new(),
            vectors: Vec::new(),
            pending: Vec::new(),
        };
        let bytes = match File::open(&cache.path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)?;
                bytes
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        if bytes.len() < head.len() || bytes[..head.len()] != head[..] {
            // Missing, from another model, or damaged at the start: start over.
            if !bytes.is_empty() {
                tracing::warn!(path = %cache.path.display(), "embedding cache does not match the model; starting it over");
            }
            let mut f = File::create(&cache.path)?;
            f.write_all(&head)?;
            return Ok(cache);
        }
        let record = 32 + 4 * dim;
        let body = &bytes[head.len()..];
        let whole = body.len() / record;
        cache.vectors.reserve(whole * dim);
        for rec in body.chunks_exact(record) {
            let k: [u8; 32] = rec[..32].try_into().expect("32 bytes");
            let at = cache.vectors.len() / dim;
            cache.vectors.extend(
                rec[32..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            cache.index.insert(k, at);
        }
        if body.len() % record != 0 {
            tracing::warn!(path = %cache.path.display(), "embedding cache ends in a partial record; dropping it");
            let f = OpenOptions::new().write(true).open(&cache.path)?;
            f.set_len((head.len() + whole * record) as u64)?;
        }
        Ok(cache)
    }

    /// Where the vectors are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many vectors the cache holds (flushed or not).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The vector of `text`, if computed before.
    pub fn get(&self, text: &str) -> Option<&[f32]> {
        let at = *self.index.get(&key(text))?;
        Some(&self.vectors[at * self.dim..(at + 1) * self.dim])
    }

    /// Remembers the vector of `text` (written out by [`EmbeddingCache::flush`]).
    ///
    /// # Panics
    /// If `vector` is not as long as the cache's dimension.
    pub fn insert(&mut self, text: &str, vector: &[f32]) {
        assert_eq!(vector.len(), self.dim, "vector length");
        let k = key(text);
        if self.index.contains_key(&k) {
            return;
        }
        self.index.insert(k, self.vectors.len() / self.dim);
        self.vectors.extend_from_slice(vector);
        self.pending.extend_from_slice(&k);
        for x in vector {
            self.pending.extend_from_slice(&x.to_le_bytes());
        }
    }

    /// Drops the vectors of texts not in `keep` once they outnumber those kept (and
    /// [`STALE_SLACK`]): every edit of a question leaves its old text's vector behind, and the
    /// whole file is read at each load. The file is rewritten under a temporary name and
    /// renamed over the old one, so a crash leaves one or the other. Returns how many vectors
    /// were dropped (0 when the file was left alone).
    ///
    /// Two knowledge bases sharing a cache directory keep each other's vectors as long as
    /// they are of similar size; a vector dropped by mistake only costs embedding it again.
    pub fn prune(&mut self, keep: &[&str]) -> io::Result<usize> {
        self.flush()?;
        let mut kept: Vec<([u8; 32], usize)> = keep
            .iter()
            .filter_map(|t| {
                let k = key(t);
                self.index.get(&k).map(|&at| (k, at))
            })
            .collect();
        kept.sort_unstable_by_key(|&(_, at)| at);
        kept.dedup_by_key(|&mut (_, at)| at);
        let stale = self.len() - kept.len();
        if stale <= kept.len() + STALE_SLACK {
            return Ok(0);
        }
        let dim = self.dim;
        let mut bytes = self.head.clone();
        let mut index = HashMap::with_capacity(kept.len());
        let mut vectors = Vec::with_capacity(kept.len() * dim);
        for (k, at) in kept {
            let v = &self.vectors[at * dim..(at + 1) * dim];
            bytes.extend_from_slice(&k);
            for x in v {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
            index.insert(k, vectors.len() / dim);
            vectors.extend_from_slice(v);
        }
        super::replace_file(&self.path, &bytes)?;
        self.index = index;
        self.vectors = vectors;
        Ok(stale)
    }

    /// Appends the vectors added since the last flush to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut f = OpenOptions::new().append(true).open(&self.path)?;
        f.write_all(&self.pending)?;
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_survive_a_reopen_and_a_torn_last_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EmbeddingCache::open(dir.path(), "m", 3).unwrap();
        assert!(c.is_empty());
        c.insert("a", &[1.0, 0.0, 0.0]);
        c.insert("b", &[0.0, 1.0, 0.0]);
        c.insert("a", &[9.0, 9.0, 9.0]); // already there: kept as first computed
        c.flush().unwrap();
        let path = c.path().to_path_buf();

        let c = EmbeddingCache::open(dir.path(), "m", 3).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("a").unwrap(), &[1.0, 0.0, 0.0]);
        assert_eq!(c.get("b").unwrap(), &[0.0, 1.0, 0.0]);
        assert!(c.get("c").is_none());

        // A crash in the middle of an append.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[7u8; 40]).unwrap();
        drop(f);
        let mut c = EmbeddingCache::open(dir.path(), "m", 3).unwrap();
        assert_eq!(c.len(), 2);
        c.insert("c", &[0.0, 0.0, 1.0]);
        c.flush().unwrap();
        let c = EmbeddingCache::open(dir.path(), "m", 3).unwrap();
        assert_eq!(c.get("c").unwrap(), &[0.0, 0.0, 1.0]);
        assert_eq!(c.get("a").unwrap(), &[1.0, 0.0, 0.0]);
    }

    #[test]
    fn pruning_drops_unused_vectors_once_they_outnumber_the_used_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EmbeddingCache::open(dir.path(), "m", 2).unwrap();
        let texts: Vec<String> = (0..2 * STALE_SLACK).map(|i| format!("q{i}")).collect();
        for (i, t) in texts.iter().enumerate() {
            c.insert(t, &[i as f32, 1.0]);
        }
        c.flush().unwrap();
        let size = fs::metadata(c.path()).unwrap().len();

        // Half still in use: the stale half is within the slack, nothing is rewritten.
        let half: Vec<&str> = texts[..STALE_SLACK].iter().map(String::as_str).collect();
        assert_eq!(c.prune(&half).unwrap(), 0);
        assert_eq!(c.len(), 2 * STALE_SLACK);
        assert_eq!(fs::metadata(c.path()).unwrap().len(), size);

        // Three in use (one asked for twice, one never computed), one added since the flush.
        c.insert("new", &[-1.0, -2.0]);
        let keep = ["q5", "q7", "q5", "never seen", "new"];
        assert_eq!(c.prune(&keep).unwrap(), 2 * STALE_SLACK - 2);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("q7").unwrap(), &[7.0, 1.0]);
        assert!(c.get("q6").is_none());

        let c = EmbeddingCache::open(dir.path(), "m", 2).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("q5").unwrap(), &[5.0, 1.0]);
        assert_eq!(c.get("new").unwrap(), &[-1.0, -2.0]);
        assert!(c.get("q6").is_none());
        assert!(fs::metadata(c.path()).unwrap().len() < size / 100);
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the cache file is left: {left:?}");
    }

    #[test]
    fn a_file_of_another_dimension_is_started_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EmbeddingCache::open(dir.path(), "m", 3).unwrap();
        c.insert("a", &[1.0, 0.0, 0.0]);
        c.flush().unwrap();
        let c = EmbeddingCache::open(dir.path(), "m", 4).unwrap();
        assert!(c.is_empty());
    }
}
