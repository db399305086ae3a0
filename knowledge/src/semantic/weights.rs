//! Reading `model.safetensors` into a model's variables a slice at a time.
//!
//! tch's `VarStore::load` reads the whole file into memory, makes a tensor of every entry and
//! only then copies them into the variables: three copies of the weights at once, about
//! 1.3 GB at peak for multilingual-e5-small's 448 MiB. Reading each tensor straight from the
//! file in slices of rows keeps the peak at the variables plus one slice.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use tch::{nn, Kind, Tensor};

/// Bytes read at once: a slice of rows of the largest table (the word embeddings), never the
/// whole of it.
const SLICE_BYTES: usize = 16 << 20;

/// The safetensors header is JSON at the start of the file; anything this long is not one.
const MAX_HEADER_BYTES: u64 = 100 << 20;

/// One tensor as the header describes it.
#[derive(serde::Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<i64>,
    data_offsets: [u64; 2],
}

/// Fills every variable of `vs` from the safetensors file at `path`. Tensors stored as F32,
/// F16 or BF16 are converted to the variable's kind; a variable missing from the file, or
/// stored with another shape, is an error. Tensors the model does not use are skipped.
pub(super) fn load(vs: &nn::VarStore, path: &Path) -> Result<(), String> {
    load_in_slices(vs, path, SLICE_BYTES)
}

fn load_in_slices(vs: &nn::VarStore, path: &Path, slice_bytes: usize) -> Result<(), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut file = BufReader::with_capacity(1 << 20, file);
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| "not a safetensors file (too short)".to_string())?;
    let header_len = u64::from_le_bytes(len);
    if header_len > MAX_HEADER_BYTES || 8 + header_len > file_len {
        return Err(format!(
            "not a safetensors file (a header of {header_len} bytes in a file of {file_len})"
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    let header: HashMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| format!("not a safetensors file (bad header: {e})"))?;
    let data_start = 8 + header_len;

    let mut variables: Vec<(String, Tensor, Entry)> = Vec::new();
    for (name, var) in vs.variables() {
        let entry = header
            .get(&name)
            .ok_or_else(|| format!("the tensor {name} is missing"))?;
        let entry: Entry = serde_json::from_value(entry.clone())
            .map_err(|e| format!("the tensor {name} is badly described: {e}"))?;
        variables.push((name, var, entry));
    }
    // In file order, so the reads go forward through the file.
    variables.sort_by_key(|(_, _, entry)| entry.data_offsets[0]);
    for (name, var, entry) in &variables {
        read_into(
            &mut file,
            data_start,
            file_len,
            slice_bytes,
            name,
            var,
            entry,
        )?;
    }
    Ok(())
}

fn read_into(
    file: &mut BufReader<File>,
    data_start: u64,
    file_len: u64,
    slice_bytes: usize,
    name: &str,
    var: &Tensor,
    entry: &Entry,
) -> Result<(), String> {
    let kind = match entry.dtype.as_str() {
        "F32" => Kind::Float,
        "F16" => Kind::Half,
        "BF16" => Kind::BFloat16,
        other => return Err(format!("the tensor {name} is {other}, not a float type")),
    };
    if entry.shape != var.size() {
        return Err(format!(
            "the tensor {name} has the shape {:?}, the model expects {:?}",
            entry.shape,
            var.size()
        ));
    }
    let count: i64 = entry.shape.iter().product();
    let bytes = count as u64 * kind.elt_size_in_bytes() as u64;
    let [begin, end] = entry.data_offsets;
    if end.checked_sub(begin) != Some(bytes) || data_start + end > file_len {
        return Err(format!(
            "the tensor {name} does not fit its place in the file (is the file cut short?)"
        ));
    }
    if count == 0 {
        return Ok(());
    }
    file.seek(SeekFrom::Start(data_start + begin))
        .map_err(|e| e.to_string())?;
    // Slices of whole rows along the first dimension (a scalar is one row).
    let rows = entry.shape.first().copied().unwrap_or(1).max(1);
    let row_bytes = (bytes / rows as u64).max(1) as usize;
    let per_slice = (slice_bytes / row_bytes).max(1) as i64;
    let mut buf = Vec::new();
    tch::no_grad(|| -> Result<(), String> {
        let mut row = 0;
        while row < rows {
            let n = per_slice.min(rows - row);
            buf.resize(n as usize * row_bytes, 0);
            file.read_exact(&mut buf)
                .map_err(|e| format!("cannot read the tensor {name}: {e}"))?;
            let mut shape = entry.shape.clone();
            if let Some(first) = shape.first_mut() {
                *first = n;
            }
            let slice = Tensor::f_from_data_size(&buf, &shape, kind).map_err(|e| e.to_string())?;
            let mut target = if entry.shape.is_empty() {
                var.shallow_clone()
            } else {
                var.f_narrow(0, row, n).map_err(|e| e.to_string())?
            };
            target
                .f_copy_(&slice)
                .map_err(|e| format!("cannot fill the tensor {name}: {e}"))?;
            row += n;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// A store with a 3×5 matrix and a vector, as a model would have, filled with zeros.
    fn store() -> nn::VarStore {
        let vs = nn::VarStore::new(Device::Cpu);
        let layer = vs.root() / "layer";
        let _ = layer.zeros("weight", &[3, 5]);
        let _ = layer.zeros("bias", &[5]);
        vs
    }

    fn numbers(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.to_kind(Kind::Float).contiguous().view(-1)).unwrap()
    }

    fn write(path: &Path, tensors: &[(&str, Tensor)]) {
        Tensor::write_safetensors(tensors, path).unwrap();
    }

    fn weight() -> Tensor {
        Tensor::arange(15, (Kind::Float, Device::Cpu)).view([3, 5]) / 7.0
    }

    fn bias() -> Tensor {
        Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25, -3.5])
    }

    #[test]
    fn every_variable_is_filled_whatever_the_slice_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        // An extra tensor the model does not use is skipped.
        let unused = Tensor::ones([4], (Kind::Float, Device::Cpu));
        write(
            &path,
            &[
                ("layer.weight", weight()),
                ("layer.bias", bias()),
                ("pooler.weight", unused),
            ],
        );
        // One row at a time, two rows at a time, everything at once.
        for slice in [1, 40, 1 << 20] {
            let vs = store();
            load_in_slices(&vs, &path, slice).unwrap();
            let vars = vs.variables();
            assert_eq!(
                numbers(&vars["layer.weight"]),
                numbers(&weight()),
                "{slice}"
            );
            assert_eq!(numbers(&vars["layer.bias"]), numbers(&bias()), "{slice}");
        }
    }

    #[test]
    fn half_precision_weights_are_widened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        write(
            &path,
            &[
                ("layer.weight", weight().to_kind(Kind::Half)),
                ("layer.bias", bias().to_kind(Kind::BFloat16)),
            ],
        );
        let vs = store();
        load(&vs, &path).unwrap();
        let vars = vs.variables();
        assert_eq!(vars["layer.weight"].kind(), Kind::Float);
        let got = numbers(&vars["layer.weight"]);
        for (a, b) in got.iter().zip(numbers(&weight())) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
        assert_eq!(numbers(&vars["layer.bias"]), numbers(&bias()));
    }

    #[test]
    fn a_missing_or_misshapen_tensor_or_a_cut_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");

        write(&path, &[("layer.weight", weight())]);
        let e = load(&store(), &path).unwrap_err();
        assert!(e.contains("layer.bias is missing"), "{e}");

        write(
            &path,
            &[
                ("layer.weight", weight().view([5, 3])),
                ("layer.bias", bias()),
            ],
        );
        let e = load(&store(), &path).unwrap_err();
        assert!(e.contains("layer.weight has the shape [5, 3]"), "{e}");

        write(&path, &[("layer.weight", weight()), ("layer.bias", bias())]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
        let e = load(&store(), &path).unwrap_err();
        assert!(e.contains("cut short"), "{e}");

        std::fs::write(&path, b"{\"not\": \"safetensors\"}").unwrap();
        let e = load(&store(), &path).unwrap_err();
        assert!(e.contains("not a safetensors file"), "{e}");
    }
}
