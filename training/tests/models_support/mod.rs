//! Shared helpers of the models tests: deterministic inputs and running a model in
//! ONNX Runtime with every output read back as f32.

#![allow(dead_code)]

use std::collections::HashMap;

use memeguard_onnx::proto::ModelProto;
use memeguard_package::onnxruntime::{SessionOptions, session_from_bytes};
use ort::value::{DynValue, Tensor};

/// The shared [`memeguard_onnx::testing::Lcg`] with the draws these tests' data was made
/// with. Its `uniform` is in [-1, 0), not [-1, 1): `models_import`'s end-to-end training
/// gives a non-finite loss with the full range, so the data stays as it was.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next_u32(&mut self) -> u32 {
        let mut shared = memeguard_onnx::testing::Lcg(self.0);
        let v = shared.next_u32();
        self.0 = shared.0;
        v
    }
    /// Uniform in [-1, 0).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u32() as f32 / (1u64 << 31) as f32) - 1.0
    }
}

/// Loads ONNX Runtime from where the project keeps it; tensors can be made only
/// after that.
pub fn init_ort() {
    memeguard_package::onnxruntime::environment().expect("ONNX Runtime (run `make onnxruntime`)");
}

/// `pixel_values`: n random RGB images of side `size`, uint8 NHWC.
pub fn pixels(n: usize, size: usize, seed: u64) -> DynValue {
    init_ort();
    let mut rng = Lcg(seed);
    let data: Vec<u8> = (0..n * size * size * 3).map(|_| (rng.next_u32() % 256) as u8).collect();
    Tensor::from_array((vec![n as i64, size as i64, size as i64, 3], data)).unwrap().into_dyn()
}

/// `n` copies of one random image (a batch whose embeddings must all be equal).
pub fn repeated_pixels(n: usize, size: usize, seed: u64) -> DynValue {
    init_ort();
    let mut rng = Lcg(seed);
    let one: Vec<u8> = (0..size * size * 3).map(|_| (rng.next_u32() % 256) as u8).collect();
    let data: Vec<u8> = (0..n).flat_map(|_| one.iter().copied()).collect();
    Tensor::from_array((vec![n as i64, size as i64, size as i64, 3], data)).unwrap().into_dyn()
}

/// `input_ids` and `attention_mask` for texts of the given lengths, padded to `len`.
pub fn tokens(lengths: &[usize], len: usize, vocab: usize, seed: u64) -> (DynValue, DynValue) {
    init_ort();
    let mut rng = Lcg(seed);
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for &l in lengths {
        for t in 0..len {
            let real = t < l;
            ids.push(if real { 1 + (rng.next_u32() as usize % (vocab - 1)) as i64 } else { 0 });
            mask.push(real as i64);
        }
    }
    let shape = vec![lengths.len() as i64, len as i64];
    (
        Tensor::from_array((shape.clone(), ids)).unwrap().into_dyn(),
        Tensor::from_array((shape, mask)).unwrap().into_dyn(),
    )
}

/// Every output of one run: name → (shape, values).
pub type Outputs = HashMap<String, (Vec<i64>, Vec<f32>)>;

/// Runs `model` on CPU with `inputs` and returns every float output.
pub fn run(model: &ModelProto, inputs: Vec<(&str, DynValue)>) -> Outputs {
    let bytes = memeguard_onnx::encode_model(model);
    let mut session = session_from_bytes(&bytes, &SessionOptions::default()).expect("session");
    let inputs: Vec<(String, DynValue)> = inputs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let outputs = session.run(inputs).expect("run");
    let mut result = HashMap::new();
    for (name, value) in outputs.iter() {
        let (shape, data) = value.try_extract_tensor::<f32>().expect("float output");
        assert!(data.iter().all(|v| v.is_finite()), "output `{name}` has non-finite values");
        result.insert(name.to_string(), (shape.to_vec(), data.to_vec()));
    }
    result
}

/// Gives every parameter and buffer of a hollow graph a value, cheaply: weights of
/// rank ≥ 2 a repeated pseudo-random pattern of scale 0.02, norm weights and running
/// variances 1, everything else 0. For running big graphs in unoptimised test builds,
/// where drawing 86 M proper random numbers takes too long.
pub fn fill_hollow(model: &mut ModelProto) {
    let mut rng = Lcg(17);
    let pattern: Vec<u8> = (0..4099).flat_map(|_| (0.02 * rng.uniform()).to_le_bytes()).collect();
    for t in &mut model.graph.as_mut().unwrap().initializer {
        if t.raw_data.is_some() || !t.float_data.is_empty() {
            continue;
        }
        let bytes = 4 * t.dims.iter().product::<i64>() as usize;
        let name = t.name.clone().unwrap_or_default();
        let value: f32 =
            if name.ends_with("running_var") || (t.dims.len() == 1 && name.ends_with(".weight")) { 1.0 } else { 0.0 };
        let raw = if t.dims.len() >= 2 {
            let mut raw = pattern.clone();
            while raw.len() < bytes {
                raw.extend_from_within(..raw.len().min(bytes - raw.len()));
            }
            raw.truncate(bytes);
            raw
        } else {
            value.to_le_bytes().repeat(bytes / 4)
        };
        t.raw_data = Some(raw);
    }
}
