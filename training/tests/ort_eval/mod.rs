//! Runs a model once in ONNX Runtime (CPU) and returns the requested outputs, for tests
//! that compare graph values with a reference computed in Rust.
#![allow(dead_code)]

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{Tensor, encode_model};
use memeguard_package::onnxruntime::{SessionOptions, session_from_bytes};
use memeguard_package::tensor_value::{from_value, to_value};

/// Feeds `feeds`, returns `outputs` (which must be declared graph outputs).
pub fn eval(model: &ModelProto, feeds: &[(&str, Tensor)], outputs: &[&str]) -> Vec<Tensor> {
    let opts = SessionOptions { deterministic: true, ..Default::default() };
    let mut session = session_from_bytes(&encode_model(model), &opts).expect("ONNX Runtime loads the model");
    let inputs: Vec<(String, _)> =
        feeds.iter().map(|(n, t)| (n.to_string(), to_value(t).expect("a host tensor"))).collect();
    let out = session.run(inputs).expect("the model runs");
    outputs.iter().map(|o| from_value(&out[*o], o).expect("a tensor output")).collect()
}
