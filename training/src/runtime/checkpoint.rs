//! Checkpoints as safetensors files: every state value (parameters, optimizer state, buffers,
//! gradient accumulators) under its graph name, and in the header metadata the step
//! counters, the run generator's exact position and the caller's own entries.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use memeguard_onnx::proto::TensorProto;
use memeguard_onnx::{DataType, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use safetensors::tensor::{Dtype, TensorView};

use super::RuntimeError;

/// Format tag written into every checkpoint.
pub const FORMAT: &str = "memeguard-checkpoint-1";
const KEY_FORMAT: &str = "memeguard.format";
const KEY_OPTIMIZER_STEP: &str = "memeguard.optimizer_step";
const KEY_MICRO_STEP: &str = "memeguard.micro_step";
const KEY_RUN_SEED: &str = "memeguard.run_seed";
const KEY_RNG_SEED: &str = "memeguard.rng.seed";
const KEY_RNG_STREAM: &str = "memeguard.rng.stream";
const KEY_RNG_WORD_POS: &str = "memeguard.rng.word_pos";

/// The exact position of a ChaCha20 generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RngState {
    pub seed: [u8; 32],
    pub stream: u64,
    pub word_pos: u128,
}

impl RngState {
    /// The state of `rng`.
    pub fn of(rng: &ChaCha20Rng) -> Self {
        RngState { seed: rng.get_seed(), stream: rng.get_stream(), word_pos: rng.get_word_pos() }
    }

    /// A generator continuing exactly where the saved one was.
    pub fn restore(&self) -> ChaCha20Rng {
        let mut rng = ChaCha20Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}

/// Everything a run needs to continue as if never stopped.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub tensors: BTreeMap<String, Tensor>,
    pub optimizer_step: u64,
    pub micro_step: u64,
    /// The seed the run was started with (unseeded dropout nodes derive theirs from it).
    pub run_seed: u64,
    pub rng: RngState,
    /// The caller's metadata (config, data position, ...); keys must not start with `memeguard.`.
    pub extra: BTreeMap<String, String>,
}

fn safetensors_dtype(dtype: DataType) -> Option<Dtype> {
    Some(match dtype {
        DataType::Float => Dtype::F32,
        DataType::Double => Dtype::F64,
        DataType::Int64 => Dtype::I64,
        DataType::Int32 => Dtype::I32,
        DataType::Uint8 => Dtype::U8,
        DataType::Bool => Dtype::BOOL,
        _ => return None,
    })
}

fn onnx_dtype(dtype: Dtype) -> Option<DataType> {
    Some(match dtype {
        Dtype::F32 => DataType::Float,
        Dtype::F64 => DataType::Double,
        Dtype::I64 => DataType::Int64,
        Dtype::I32 => DataType::Int32,
        Dtype::U8 => DataType::Uint8,
        Dtype::BOOL => DataType::Bool,
        _ => return None,
    })
}

impl Checkpoint {
    /// Writes the checkpoint to `path` (through a temporary file, so a crash mid-write never
    /// leaves a truncated checkpoint under the final name).
    pub fn save(&self, path: &Path) -> Result<(), RuntimeError> {
        let fail = |message: String| RuntimeError::Checkpoint { path: path.display().to_string(), message };
        let mut metadata: HashMap<String, String> = HashMap::new();
        for (k, v) in &self.extra {
            if k.starts_with("memeguard.") {
                return Err(fail(format!("metadata key `{k}` is reserved")));
            }
            metadata.insert(k.clone(), v.clone());
        }
        metadata.insert(KEY_FORMAT.into(), FORMAT.into());
        metadata.insert(KEY_OPTIMIZER_STEP.into(), self.optimizer_step.to_string());
        metadata.insert(KEY_MICRO_STEP.into(), self.micro_step.to_string());
        metadata.insert(KEY_RUN_SEED.into(), self.run_seed.to_string());
        metadata.insert(KEY_RNG_SEED.into(), hex::encode(self.rng.seed));
        metadata.insert(KEY_RNG_STREAM.into(), self.rng.stream.to_string());
        metadata.insert(KEY_RNG_WORD_POS.into(), self.rng.word_pos.to_string());

        // Little-endian bytes, as in ONNX raw_data and safetensors alike.
        let raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let dtype = safetensors_dtype(t.data_type())
                    .ok_or_else(|| fail(format!("`{name}` has an unsupported type")))?;
                let shape = t.dims.iter().map(|&d| d as usize).collect();
                Ok((name.clone(), dtype, shape, t.to_proto(name).raw_data.unwrap_or_default()))
            })
            .collect::<Result<_, RuntimeError>>()?;
        let views = raw
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| fail(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| fail(e.to_string()))?;
        let partial = path.with_extension("partial");
        std::fs::write(&partial, bytes).map_err(|e| fail(e.to_string()))?;
        std::fs::rename(&partial, path).map_err(|e| fail(e.to_string()))
    }

    /// Reads a checkpoint written by [`Checkpoint::save`].
    pub fn load(path: &Path) -> Result<Self, RuntimeError> {
        let fail = |message: String| RuntimeError::Checkpoint { path: path.display().to_string(), message };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| fail(format!("not a safetensors file: {e}")))?;
        let mut metadata = header.metadata().clone().unwrap_or_default();
        if metadata.get(KEY_FORMAT).map(String::as_str) != Some(FORMAT) {
            return Err(fail(format!("not a memeguard checkpoint (metadata `{KEY_FORMAT}` is not `{FORMAT}`)")));
        }
        let mut take = |key: &str| metadata.remove(key).ok_or_else(|| fail(format!("metadata `{key}` is missing")));
        let optimizer_step = take(KEY_OPTIMIZER_STEP)?.parse().map_err(|_| fail("bad optimizer step".into()))?;
        let micro_step = take(KEY_MICRO_STEP)?.parse().map_err(|_| fail("bad micro step".into()))?;
        let run_seed = take(KEY_RUN_SEED)?.parse().map_err(|_| fail("bad run seed".into()))?;
        let seed: [u8; 32] = hex::decode(take(KEY_RNG_SEED)?)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| fail("bad generator seed".into()))?;
        let stream = take(KEY_RNG_STREAM)?.parse().map_err(|_| fail("bad generator stream".into()))?;
        let word_pos = take(KEY_RNG_WORD_POS)?.parse().map_err(|_| fail("bad generator position".into()))?;
        metadata.remove(KEY_FORMAT);

        let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| fail(e.to_string()))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            let dtype = onnx_dtype(view.dtype())
                .ok_or_else(|| fail(format!("`{name}` has unsupported type {:?}", view.dtype())))?;
            let proto = TensorProto {
                dims: view.shape().iter().map(|&d| d as i64).collect(),
                data_type: Some(dtype as i32),
                raw_data: Some(view.data().to_vec()),
                name: Some(name.clone()),
                ..Default::default()
            };
            let tensor = Tensor::from_proto(&proto).map_err(|e| fail(e.to_string()))?;
            tensors.insert(name, tensor);
        }
        Ok(Checkpoint {
            tensors,
            optimizer_step,
            micro_step,
            run_seed,
            rng: RngState { seed, stream, word_pos },
            extra: metadata.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn round_trip_keeps_tensors_counters_generator_and_metadata() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        rng.next_u64();
        let checkpoint = Checkpoint {
            tensors: BTreeMap::from([
                ("w".to_string(), Tensor::f32(vec![2, 2], vec![1.0, -2.0, 3.5, f32::MIN_POSITIVE])),
                ("steps".to_string(), Tensor::i64(vec![1], vec![i64::MAX])),
                ("mask".to_string(), Tensor::bool(vec![2], vec![true, false])),
                ("s".to_string(), Tensor::scalar_f32(0.25)),
            ]),
            optimizer_step: 12,
            micro_step: 48,
            run_seed: u64::MAX,
            rng: RngState::of(&rng),
            extra: BTreeMap::from([("config".to_string(), "{\"lr\":0.1}".to_string())]),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        checkpoint.save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(back.tensors, checkpoint.tensors);
        assert_eq!((back.optimizer_step, back.micro_step, back.run_seed), (12, 48, u64::MAX));
        assert_eq!(back.extra, checkpoint.extra);
        let mut restored = back.rng.restore();
        assert_eq!(restored.next_u64(), rng.next_u64());
    }

    #[test]
    fn reserved_keys_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        let checkpoint = Checkpoint {
            tensors: BTreeMap::new(),
            optimizer_step: 0,
            micro_step: 0,
            run_seed: 0,
            rng: RngState::of(&ChaCha20Rng::seed_from_u64(0)),
            extra: BTreeMap::from([("memeguard.format".to_string(), "x".to_string())]),
        };
        assert!(checkpoint.save(&path).unwrap_err().to_string().contains("reserved"));
        // A safetensors file without our metadata is not a checkpoint.
        let bytes = safetensors::serialize(Vec::<(String, TensorView)>::new(), None).unwrap();
        std::fs::write(&path, bytes).unwrap();
        assert!(Checkpoint::load(&path).unwrap_err().to_string().contains("not a memeguard checkpoint"));
    }
}
