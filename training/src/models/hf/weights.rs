//! The tensors of a model folder's safetensors: `model.safetensors`, or the shards
//! that `model.safetensors.index.json` lists. Opening reads only the headers; a
//! tensor's bytes are read from disk when it is attached, straight into the buffer
//! that becomes its initializer, so a model is held in memory once (by the graph),
//! never also by this index. float16 and bfloat16 (and float64) become float32.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use memeguard_onnx::DataType;
use memeguard_onnx::proto::TensorProto;
use safetensors::Dtype;
use safetensors::tensor::Metadata;

/// The single-file weights' name.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The index of sharded weights.
pub const SHARD_INDEX: &str = "model.safetensors.index.json";

/// Where one tensor lies.
#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    /// The name inside the file (before prefix stripping and renaming).
    stored_name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Absolute byte offset of the data in the file, and its length.
    start: u64,
    len: usize,
}

/// Every tensor of a folder by (canonical) name.
#[derive(Debug, Clone)]
pub struct WeightIndex {
    files: Vec<PathBuf>,
    tensors: BTreeMap<String, Entry>,
}

impl WeightIndex {
    /// Reads the headers of `dir`'s safetensors.
    pub fn open(dir: &Path) -> Result<Self, String> {
        let single = dir.join(SINGLE_FILE);
        let index = dir.join(SHARD_INDEX);
        let files: Vec<PathBuf> = if index.is_file() {
            shard_files(&index)?.into_iter().map(|f| dir.join(f)).collect()
        } else if single.is_file() {
            vec![single]
        } else {
            let hint = if dir.join("pytorch_model.bin").is_file() {
                " (the folder has only pytorch_model.bin: save it with `save_pretrained(..., safe_serialization=True)`)"
            } else {
                ""
            };
            return Err(format!("{} has neither {SINGLE_FILE} nor {SHARD_INDEX}{hint}", dir.display()));
        };
        let mut tensors = BTreeMap::new();
        for (i, path) in files.iter().enumerate() {
            for (name, entry) in read_header(path, i)? {
                if tensors.insert(name.clone(), entry).is_some() {
                    return Err(format!("tensor `{name}` is stored twice ({})", path.display()));
                }
            }
        }
        Ok(WeightIndex { files, tensors })
    }

    /// Renames tensors to the names the towers use: drops `prefix` where a name starts
    /// with it (task models put the encoder under `bert.`, `roberta.`, …), and maps the
    /// legacy LayerNorm names `gamma`/`beta` to `weight`/`bias`.
    pub fn canonicalise(&mut self, prefix: Option<&str>) {
        let old = std::mem::take(&mut self.tensors);
        for (name, entry) in old {
            let mut name = match prefix.and_then(|p| name.strip_prefix(p)) {
                Some(rest) => rest.to_string(),
                None => name,
            };
            if let Some(stem) = name.strip_suffix(".gamma") {
                name = format!("{stem}.weight");
            } else if let Some(stem) = name.strip_suffix(".beta") {
                name = format!("{stem}.bias");
            }
            self.tensors.insert(name, entry);
        }
    }

    /// Whether a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// A tensor's shape.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|e| e.shape.as_slice())
    }

    /// Every tensor name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Reads tensor `name` as a float32 initializer (raw little-endian data).
    pub fn read_f32(&self, name: &str) -> Result<TensorProto, String> {
        let entry = self.tensors.get(name).ok_or_else(|| format!("no tensor `{name}`"))?;
        let path = &self.files[entry.file];
        let fail = |e: std::io::Error| format!("{}: reading `{}`: {e}", path.display(), entry.stored_name);
        let mut file = File::open(path).map_err(fail)?;
        file.seek(SeekFrom::Start(entry.start)).map_err(fail)?;
        let mut bytes = vec![0u8; entry.len];
        file.read_exact(&mut bytes).map_err(fail)?;
        let raw = match entry.dtype {
            Dtype::F32 => bytes,
            Dtype::F16 => convert(&bytes, |b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            Dtype::BF16 => convert(&bytes, |b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)),
            Dtype::F64 => {
                let mut out = Vec::with_capacity(bytes.len() / 2);
                for c in bytes.chunks_exact(8) {
                    let v = f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32;
                    out.extend_from_slice(&v.to_le_bytes());
                }
                out
            }
            other => {
                return Err(format!(
                    "{}: `{}` has element type {other:?}; weights must be float32, float16, bfloat16 or float64",
                    path.display(),
                    entry.stored_name
                ));
            }
        };
        Ok(TensorProto {
            dims: entry.shape.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(raw),
            ..Default::default()
        })
    }
}

/// The shard files an index names, each once, in first-mention order.
fn shard_files(index: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(index).map_err(|e| format!("{}: {e}", index.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not valid JSON: {e}", index.display()))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| format!("{}: no `weight_map` object", index.display()))?;
    let mut seen = BTreeSet::new();
    let mut files = Vec::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| format!("{}: `{tensor}` maps to a non-string", index.display()))?;
        if file.contains("..") || file.starts_with('/') {
            return Err(format!("{}: shard `{file}` is outside the folder", index.display()));
        }
        if seen.insert(file.to_string()) {
            files.push(file.to_string());
        }
    }
    Ok(files)
}

/// The tensors of one safetensors file, read from its header alone.
fn read_header(path: &Path, file_index: usize) -> Result<Vec<(String, Entry)>, String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = File::open(path).map_err(fail)?;
    let file_len = file.metadata().map_err(fail)?.len();
    let mut n = [0u8; 8];
    file.read_exact(&mut n).map_err(|e| format!("{}: not a safetensors file ({e})", path.display()))?;
    let n = u64::from_le_bytes(n);
    // The format caps headers at 100 MB.
    if n > 100_000_000 || 8 + n > file_len {
        return Err(format!("{}: not a safetensors file (header length {n})", path.display()));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(fail)?;
    let metadata: Metadata =
        serde_json::from_slice(&header).map_err(|e| format!("{}: not a safetensors header: {e}", path.display()))?;
    let data_start = 8 + n;
    let mut out = Vec::new();
    for (name, info) in metadata.tensors() {
        let (begin, end) = info.data_offsets;
        let elements: usize = info.shape.iter().product();
        let expected = elements * info.dtype.bitsize() / 8;
        if end < begin || end - begin != expected || data_start + end as u64 > file_len {
            return Err(format!("{}: tensor `{name}` has inconsistent offsets", path.display()));
        }
        let entry = Entry {
            file: file_index,
            stored_name: name.clone(),
            dtype: info.dtype,
            shape: info.shape.clone(),
            start: data_start + begin as u64,
            len: end - begin,
        };
        out.push((name, entry));
    }
    Ok(out)
}

fn convert(bytes: &[u8], f: impl Fn(&[u8]) -> f32) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for c in bytes.chunks_exact(2) {
        out.extend_from_slice(&f(c).to_le_bytes());
    }
    out
}

/// IEEE half → single precision, subnormals, infinities and NaN included.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m · 2⁻²⁴, exact in f32.
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn reads_single_and_sharded_folders_in_every_float_type() {
        use safetensors::tensor::TensorView;
        let dir = tempfile::tempdir().unwrap();
        let f32s: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let f16s: Vec<u8> = [0x3c00u16, 0xc000].iter().flat_map(|v| v.to_le_bytes()).collect();
        let bf16s: Vec<u8> = [0x3fc0u16, 0xc000].iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = [("bert.a.weight", TensorView::new(Dtype::F32, vec![2], &f32s).unwrap())];
        let b = [
            ("b.LayerNorm.gamma", TensorView::new(Dtype::F16, vec![2, 1], &f16s).unwrap()),
            ("c", TensorView::new(Dtype::BF16, vec![1, 2], &bf16s).unwrap()),
        ];
        safetensors::serialize_to_file(a, None, &dir.path().join("one.safetensors")).unwrap();
        safetensors::serialize_to_file(b, None, &dir.path().join("two.safetensors")).unwrap();
        let index = r#"{"weight_map": {"bert.a.weight": "one.safetensors", "b.LayerNorm.gamma": "two.safetensors",
                        "c": "two.safetensors"}}"#;
        std::fs::write(dir.path().join(SHARD_INDEX), index).unwrap();
        let mut w = WeightIndex::open(dir.path()).unwrap();
        w.canonicalise(Some("bert."));
        assert_eq!(w.names().collect::<Vec<_>>(), ["a.weight", "b.LayerNorm.weight", "c"]);
        let values = |name: &str| {
            let t = w.read_f32(name).unwrap();
            memeguard_onnx::Tensor::from_proto(&t).unwrap().as_f32().unwrap().to_vec()
        };
        assert_eq!(values("a.weight"), [1.5, -2.0]);
        assert_eq!(values("b.LayerNorm.weight"), [1.0, -2.0]);
        assert_eq!(values("c"), [1.5, -2.0]);
        assert_eq!(w.shape("b.LayerNorm.weight"), Some(&[2usize, 1][..]));

        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join("pytorch_model.bin"), b"x").unwrap();
        let err = WeightIndex::open(empty.path()).unwrap_err();
        assert!(err.contains("safe_serialization"), "{err}");
    }
}
