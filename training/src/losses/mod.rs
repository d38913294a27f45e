//! Loss functions written from standard ONNX ops, appended to a forward graph and
//! differentiated by the autodiff like any other node.
//!
//! Each function takes the graph being built and the names of its input values, appends
//! the loss nodes and returns the name of the loss: a scalar (rank 0) of the inputs'
//! float type (float32 or float64), averaged over the batch (every position but the
//! class or feature axis, which is the last; BCE averages over every element).
//!
//! - [`cross_entropy`]: logits `[.., C]` against class indices (int64 `[..]`);
//! - [`soft_cross_entropy`]: logits `[.., C]` against class probabilities `[.., C]`;
//! - [`bce_with_logits`]: binary cross-entropy from logits, optional `pos_weight`;
//! - [`cosine_loss`]: `2 − 2·cos(a, b)` along the last axis;
//! - [`retrieval_contrastive`]: RGCL's loss over anchors, retrieved positives and
//!   negatives, and in-batch negatives.
//!
//! All are numerically stable for large logits: log-probabilities come from
//! `LogSoftmax` (max-shifted inside ONNX Runtime), never from softmax then log.

mod bce;
mod cosine;
mod cross_entropy;
mod rgcl;

pub use bce::bce_with_logits;
pub use cosine::{DEFAULT_COSINE_EPS, cosine_loss};
pub use cross_entropy::{cross_entropy, soft_cross_entropy};
pub use rgcl::retrieval_contrastive;

use memeguard_onnx::proto::{GraphProto, ModelProto};
use memeguard_onnx::shape::infer_shapes;
use memeguard_onnx::{DataType, Dim, GraphBuilder, Tensor, builder::value_info};

/// Errors building a loss.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    #[error("loss input `{0}` is not a value of the graph")]
    UnknownValue(String),
    #[error("loss input `{name}` must be float32 or float64, but it is {dtype:?}")]
    NotFloat { name: String, dtype: DataType },
}

/// The float type of `value` (float32 or float64), from the graph's shape inference.
/// Initializers enter the inference as typed inputs, so their data is not copied.
pub(crate) fn float_type(b: &GraphBuilder, value: &str) -> Result<DataType, LossError> {
    let g = b.graph();
    let mut light = GraphProto {
        node: g.node.clone(),
        input: g.input.clone(),
        value_info: g.value_info.clone(),
        ..Default::default()
    };
    for t in &g.initializer {
        let dtype = t.data_type.and_then(|d| DataType::try_from(d).ok()).unwrap_or(DataType::Undefined);
        if matches!(dtype, DataType::Int64 | DataType::Int32) {
            // Small integer constants (shapes, axes) are needed as values by the inference.
            light.initializer.push(t.clone());
        } else {
            let dims: Vec<Dim> = t.dims.iter().map(|&d| Dim::Known(d)).collect();
            light.input.push(value_info(t.name.as_deref().unwrap_or(""), dtype, &dims));
        }
    }
    let shapes = infer_shapes(&ModelProto { graph: Some(light), ..Default::default() });
    match shapes.dtype(value) {
        None => Err(LossError::UnknownValue(value.to_string())),
        Some(d @ (DataType::Float | DataType::Double)) => Ok(d),
        Some(dtype) => Err(LossError::NotFloat { name: value.to_string(), dtype }),
    }
}

/// A scalar constant of the given float type.
pub(crate) fn scalar(b: &mut GraphBuilder, base: &str, dtype: DataType, value: f64) -> String {
    b.constant(base, Tensor::full(dtype, &[], value))
}

/// `ReduceMean` over every axis, to a rank-0 scalar.
pub(crate) fn mean_all(b: &mut GraphBuilder, x: &str) -> String {
    b.op("ReduceMean", &[x], &[("keepdims", memeguard_onnx::Attr::Int(0))])
}
