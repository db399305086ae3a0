//! [`BertEmbedder`]: the BERT-architecture sentence encoders kefu uses, run by rust-bert on
//! libtorch: multilingual-e5-small ([`EncoderSpec::MULTILINGUAL_E5`]) and the English
//! all-MiniLM-L6-v2 ([`EncoderSpec::ENGLISH_MINILM`]).

use super::{EmbedError, Embedder};
use rust_bert::bert::{BertConfig, BertEmbedding, BertModel};
use rust_bert::RustBertError;
use std::borrow::Borrow;
use std::path::Path;
use std::sync::Mutex;
use tch::{nn, Device, Kind, Tensor};
use tokenizers::Tokenizer;

/// Tokens per text; longer texts are cut (customer questions are far shorter).
const MAX_TOKENS: usize = 128;

/// What sets one encoder apart from another: how its input is written, what it is called in
/// the embedding cache and which texts it understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSpec {
    /// The start of the model's id in the embedding cache (the weights' checksum follows).
    pub name: &'static str,
    /// Put before every text (the e5 models are trained with one).
    pub prefix: &'static str,
    /// How the prefix is spelled in the model id (the cache's names predate this type).
    pub prefix_id: &'static str,
    /// The model reads English only: texts with Chinese, Japanese or Korean characters are
    /// not given to it (see [`super::has_cjk`]).
    pub english_only: bool,
    /// The padding token of its tokenizer.
    pub pad_token: &'static str,
}

impl EncoderSpec {
    /// multilingual-e5-small: about 100 languages in one space. "query: " is the e5 prefix for
    /// symmetric tasks such as matching a question against questions.
    pub const MULTILINGUAL_E5: EncoderSpec = EncoderSpec {
        name: "e5",
        prefix: "query: ",
        prefix_id: "query-prefix",
        english_only: false,
        pad_token: "<pad>",
    };

    /// all-MiniLM-L6-v2: English only, half the layers of e5-small, trained on a billion
    /// English sentence pairs; beside e5 it sharpens English intents.
    pub const ENGLISH_MINILM: EncoderSpec = EncoderSpec {
        name: "minilm",
        prefix: "",
        prefix_id: "no-prefix",
        english_only: true,
        pad_token: "[PAD]",
    };
}

/// A BERT-architecture sentence encoder from a model directory made by `kefu model install`:
/// `model.safetensors`, `config.json`, `tokenizer.json` and optionally `model.sha256`.
///
/// Texts get the spec's prefix, the token vectors are mean-pooled over the attention mask
/// and the result is L2-normalised, as both models' authors prescribe. One forward pass runs
/// at a time; libtorch spreads each over the machine's cores.
pub struct BertEmbedder {
    model: Mutex<BertModel<Embeddings>>,
    tokenizer: Tokenizer,
    spec: EncoderSpec,
    pad_id: i64,
    dim: usize,
    id: String,
    // Owns the weights the model's tensors point into.
    _vs: nn::VarStore,
}

fn err(what: &str, dir: &Path, e: impl std::fmt::Display) -> EmbedError {
    EmbedError(format!(
        "{what} in {}: {e} (run `kefu model install` to set the model up)",
        dir.display()
    ))
}

impl BertEmbedder {
    /// Loads multilingual-e5-small from `dir` on the CPU.
    pub fn multilingual_e5(dir: &Path) -> Result<Self, EmbedError> {
        Self::load(dir, EncoderSpec::MULTILINGUAL_E5)
    }

    /// Loads the English all-MiniLM-L6-v2 from `dir` on the CPU.
    pub fn english_minilm(dir: &Path) -> Result<Self, EmbedError> {
        Self::load(dir, EncoderSpec::ENGLISH_MINILM)
    }

    /// Loads the model in `dir` on the CPU, used as `spec` says.
    pub fn load(dir: &Path, spec: EncoderSpec) -> Result<Self, EmbedError> {
        for file in ["model.safetensors", "config.json", "tokenizer.json"] {
            if !dir.join(file).is_file() {
                return Err(err("no model", dir, format!("{file} is missing")));
            }
        }
        let config: BertConfig = std::fs::read(dir.join("config.json"))
            .map_err(|e| err("cannot read config.json", dir, e))
            .and_then(|bytes| {
                serde_json::from_slice(&bytes).map_err(|e| err("bad config.json", dir, e))
            })?;
        // The tokenizer (a 16 MiB JSON vocabulary) is read while the weights load.
        let (tokenizer, weights) = std::thread::scope(|s| {
            let tokenizer = s.spawn(|| Tokenizer::from_file(dir.join("tokenizer.json")));
            let weights = Self::load_weights(dir, &config);
            (tokenizer.join(), weights)
        });
        let (vs, model) = weights?;
        let mut tokenizer = tokenizer
            .map_err(|_| err("cannot read tokenizer.json", dir, "the reader panicked"))?
            .map_err(|e| err("cannot read tokenizer.json", dir, e))?;
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| err("cannot set up the tokenizer", dir, e))?;
        tokenizer.with_padding(None);
        let pad_id = tokenizer.token_to_id(spec.pad_token).ok_or_else(|| {
            err(
                "a tokenizer for another model",
                dir,
                format!("tokenizer.json has no {} token", spec.pad_token),
            )
        })? as i64;
        let checksum = match std::fs::read_to_string(dir.join("model.sha256")) {
            Ok(line) => line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
            Err(_) => String::new(),
        };
        let checksum = if checksum.len() == 64 {
            checksum
        } else {
            // Not made by `kefu model install`: name the weights by their size and date.
            let meta = std::fs::metadata(dir.join("model.safetensors"))
                .map_err(|e| err("cannot read model.safetensors", dir, e))?;
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            format!("size{}-mtime{modified}", meta.len())
        };
        let name = spec.name;
        let prefix = spec.prefix_id;
        let mut id = format!("{name}/{checksum}/{prefix}/mean/l2/max{MAX_TOKENS}");
        if spec.english_only {
            id.push_str("/english-only");
        }
        Ok(BertEmbedder {
            model: Mutex::new(model),
            tokenizer,
            spec,
            pad_id,
            dim: config.hidden_size as usize,
            id,
            _vs: vs,
        })
    }
}

impl BertEmbedder {
    fn load_weights(
        dir: &Path,
        config: &BertConfig,
    ) -> Result<(nn::VarStore, BertModel<Embeddings>), EmbedError> {
        let started = std::time::Instant::now();
        let vs = nn::VarStore::new(Device::Cpu);
        let model = BertModel::<Embeddings>::new_with_optional_pooler(vs.root(), config, false);
        let built = started.elapsed().as_secs_f64();
        super::weights::load(&vs, &dir.join("model.safetensors"))
            .map_err(|e| err("cannot load model.safetensors", dir, e))?;
        tracing::debug!(
            build_seconds = built,
            load_seconds = started.elapsed().as_secs_f64() - built,
            "encoder weights loaded"
        );
        Ok((vs, model))
    }
}

/// BERT's input embeddings (word + position + token type, then layer norm) for inference.
///
/// The same computation and weight names as rust-bert's `BertEmbeddings`, but the tables start
/// as zeros instead of random numbers: they are overwritten by the model file anyway, and
/// drawing 96 M random numbers for the word table took half a second of every start.
pub struct Embeddings {
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    layer_norm: nn::LayerNorm,
}

impl BertEmbedding for Embeddings {
    fn new<'p, P>(p: P, config: &BertConfig) -> Self
    where
        P: Borrow<nn::Path<'p>>,
    {
        let p = p.borrow();
        let zeros = |padding_idx| nn::EmbeddingConfig {
            ws_init: nn::Init::Const(0.0),
            padding_idx,
            ..Default::default()
        };
        Embeddings {
            word: nn::embedding(
                p / "word_embeddings",
                config.vocab_size,
                config.hidden_size,
                zeros(0),
            ),
            position: nn::embedding(
                p / "position_embeddings",
                config.max_position_embeddings,
                config.hidden_size,
                zeros(-1),
            ),
            token_type: nn::embedding(
                p / "token_type_embeddings",
                config.type_vocab_size,
                config.hidden_size,
                zeros(-1),
            ),
            layer_norm: nn::layer_norm(
                p / "LayerNorm",
                vec![config.hidden_size],
                nn::LayerNormConfig {
                    eps: 1e-12,
                    ..Default::default()
                },
            ),
        }
    }

    fn forward_t(
        &self,
        input_ids: Option<&Tensor>,
        token_type_ids: Option<&Tensor>,
        position_ids: Option<&Tensor>,
        _input_embeds: Option<&Tensor>,
        _train: bool,
    ) -> Result<Tensor, RustBertError> {
        let ids = input_ids
            .ok_or_else(|| RustBertError::ValueError("the encoder needs token ids".to_string()))?;
        let seq = ids.size()[1];
        let positions = match position_ids {
            Some(p) => p.shallow_clone(),
            None => Tensor::arange(seq, (Kind::Int64, ids.device())).unsqueeze(0),
        };
        let types = match token_type_ids {
            Some(t) => t.shallow_clone(),
            None => ids.zeros_like(),
        };
        let sum =
            ids.apply(&self.word) + positions.apply(&self.position) + types.apply(&self.token_type);
        Ok(sum.apply(&self.layer_norm))
    }
}

impl Embedder for BertEmbedder {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn covers(&self, text: &str) -> bool {
        !(self.spec.english_only && super::has_cjk(text))
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let prefix = self.spec.prefix;
        let inputs: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| EmbedError(format!("cannot tokenize: {e}")))?;
        let len = encodings.iter().map(|e| e.len()).max().unwrap_or(1).max(1);
        let mut ids = vec![self.pad_id; texts.len() * len];
        let mut mask = vec![0i64; texts.len() * len];
        for (row, enc) in encodings.iter().enumerate() {
            for (col, &id) in enc.get_ids().iter().enumerate() {
                ids[row * len + col] = i64::from(id);
                mask[row * len + col] = 1;
            }
        }
        let shape = [texts.len() as i64, len as i64];
        let ids = Tensor::from_slice(&ids).view(shape);
        let mask = Tensor::from_slice(&mask).view(shape);
        let model = self
            .model
            .lock()
            .map_err(|_| EmbedError("the encoder panicked earlier".into()))?;
        let pooled = tch::no_grad(|| -> Result<Tensor, EmbedError> {
            let out = model
                .forward_t(Some(&ids), Some(&mask), None, None, None, None, None, false)
                .map_err(|e| EmbedError(format!("the encoder failed: {e}")))?;
            let m = mask.unsqueeze(-1).to_kind(Kind::Float);
            let summed = (out.hidden_state * &m).sum_dim_intlist(1, false, Kind::Float);
            let counts = m.sum_dim_intlist(1, false, Kind::Float).clamp_min(1.0);
            let mean = summed / counts;
            let norm = (&mean * &mean)
                .sum_dim_intlist(1, true, Kind::Float)
                .sqrt()
                .clamp_min(1e-12);
            Ok(mean / norm)
        })?;
        drop(model);
        let flat: Vec<f32> = Vec::try_from(pooled.contiguous().view(-1))
            .map_err(|e| EmbedError(format!("cannot read the vectors: {e}")))?;
        Ok(flat.chunks(self.dim).map(<[f32]>::to_vec).collect())
    }
}
