//! What the Hugging Face towers are made of: parameters taken from the folder under
//! their `transformers` names, and the layers written with them. Linear weights keep
//! PyTorch's `[out, in]` layout (so a trained parameter can be written back under its
//! name as is) and are applied as `x · Wᵀ`.

use memeguard_onnx::proto::TensorProto;
use memeguard_onnx::{Attr, DataType, Tensor};

use crate::models::ModelError;
use crate::models::hf::config::Activation;
use crate::models::hf::weights::WeightIndex;
use crate::models::layers::dropout;
use crate::models::net::{Net, Weights};

/// Added to attention scores where attending is not allowed: softmax gives them
/// weight 0, as `transformers`' `finfo.min` does.
const MASKED_SCORE: f32 = -1e9;

/// Hands the towers their parameters: from the folder (or shape-only in hollow nets),
/// or, when recording, shape-only while noting every name and shape asked for, which
/// is how opening a folder learns what the towers need.
pub(crate) struct Loader<'a> {
    weights: &'a WeightIndex,
    prefix: String,
    recorded: Option<Vec<(String, Vec<usize>)>>,
}

impl<'a> Loader<'a> {
    /// Parameters named `{prefix}.{HF name}`, read from `weights`.
    pub(crate) fn new(weights: &'a WeightIndex, prefix: &str) -> Self {
        Loader { weights, prefix: prefix.to_string(), recorded: None }
    }

    /// A loader that reads nothing and records what is asked for.
    pub(crate) fn recording(weights: &'a WeightIndex) -> Self {
        Loader { weights, prefix: "check".into(), recorded: Some(Vec::new()) }
    }

    /// The names and shapes asked for so far (recording loaders only).
    pub(crate) fn into_recorded(self) -> Vec<(String, Vec<usize>)> {
        self.recorded.unwrap_or_default()
    }

    /// Whether the folder has tensor `name` (optional parts: pooler, projections).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.weights.contains(name)
    }

    /// Registers HF tensor `name` of `shape` as parameter `{prefix}.{name}`.
    pub(crate) fn param(
        &mut self,
        net: &mut Net,
        name: &str,
        shape: &[usize],
        trainable: bool,
    ) -> Result<String, ModelError> {
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let tensor = if let Some(recorded) = &mut self.recorded {
            recorded.push((name.to_string(), shape.to_vec()));
            shape_only(dims.clone())
        } else {
            // Opening checked every name and shape; this guards a changed index.
            match self.weights.shape(name) {
                Some(found) if found == shape => {}
                found => {
                    return Err(ModelError::Config(format!(
                        "Hugging Face weights: `{name}` should be {shape:?}, found {found:?}"
                    )));
                }
            }
            match net.weights() {
                Weights::Hollow => shape_only(dims.clone()),
                Weights::Random { .. } => self.weights.read_f32(name).map_err(ModelError::Config)?,
            }
        };
        let weight_decay = dims.len() >= 2;
        Ok(net.param_from_proto(&format!("{}.{name}", self.prefix), tensor, trainable, weight_decay))
    }
}

/// A float32 initializer with dims and no data, as [`Weights::Hollow`] parameters are.
fn shape_only(dims: Vec<i64>) -> TensorProto {
    TensorProto { dims, data_type: Some(DataType::Float as i32), ..Default::default() }
}

/// `x · Wᵀ (+ b)` with HF's `{name}.weight` `[out, in]` and `{name}.bias` `[out]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear(
    net: &mut Net,
    l: &mut Loader,
    name: &str,
    x: &str,
    in_dim: usize,
    out_dim: usize,
    bias: bool,
    trainable: bool,
) -> Result<String, ModelError> {
    let w = l.param(net, &format!("{name}.weight"), &[out_dim, in_dim], trainable)?;
    let w_t = net.b.op("Transpose", &[&w], &[("perm", Attr::Ints(vec![1, 0]))]);
    let y = net.b.op("MatMul", &[x, &w_t], &[]);
    if !bias {
        return Ok(y);
    }
    let b = l.param(net, &format!("{name}.bias"), &[out_dim], trainable)?;
    Ok(net.b.op("Add", &[&y, &b], &[]))
}

/// LayerNorm over the last axis with `{name}.weight` and `{name}.bias`.
pub(crate) fn layer_norm(
    net: &mut Net,
    l: &mut Loader,
    name: &str,
    x: &str,
    dim: usize,
    eps: f32,
    trainable: bool,
) -> Result<String, ModelError> {
    let gamma = l.param(net, &format!("{name}.weight"), &[dim], trainable)?;
    let beta = l.param(net, &format!("{name}.bias"), &[dim], trainable)?;
    Ok(net.b.op("LayerNormalization", &[x, &gamma, &beta], &[("axis", Attr::Int(-1)), ("epsilon", Attr::Float(eps))]))
}

/// The MLP activation.
pub(crate) fn activation(net: &mut Net, act: Activation, x: &str) -> String {
    match act {
        Activation::Gelu => net.b.op("Gelu", &[x], &[]),
        Activation::GeluTanh => net.b.op("Gelu", &[x], &[("approximate", Attr::Str("tanh".into()))]),
        Activation::Relu => net.b.op("Relu", &[x], &[]),
        Activation::QuickGelu => {
            let k = net.scalar_f32("quick_gelu_k", 1.702);
            let kx = net.b.op("Mul", &[x, &k], &[]);
            let s = net.b.op("Sigmoid", &[&kx], &[]);
            net.b.op("Mul", &[x, &s], &[])
        }
        Activation::Silu => {
            let s = net.b.op("Sigmoid", &[x], &[]);
            net.b.op("Mul", &[x, &s], &[])
        }
    }
}

/// Full names of an attention's four projections.
pub(crate) struct AttentionNames {
    pub q: String,
    pub k: String,
    pub v: String,
    pub out: String,
}

/// Multi-head self-attention on `x` `[N, T, dim]` with separate q/k/v projections (all
/// with biases): softmax(q·kᵀ/√d + mask)·v per head, heads merged, then `out`.
/// `mask` is additive, broadcastable to `[N, heads, T, T]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(
    net: &mut Net,
    l: &mut Loader,
    names: &AttentionNames,
    x: &str,
    dim: usize,
    heads: usize,
    mask: Option<&str>,
    attention_dropout: f32,
    trainable: bool,
) -> Result<String, ModelError> {
    let head_dim = dim / heads;
    let q = linear(net, l, &names.q, x, dim, dim, true, trainable)?;
    let k = linear(net, l, &names.k, x, dim, dim, true, trainable)?;
    let v = linear(net, l, &names.v, x, dim, dim, true, trainable)?;
    let split = net.const_i64s("heads_shape", &[0, 0, heads as i64, head_dim as i64]);
    // [N, T, D] → [N, T, H, d] → q, v: [N, H, T, d]; k: [N, H, d, T]
    let mut per_head = |value: &str, perm: Vec<i64>| {
        let r = net.b.op("Reshape", &[value, &split], &[]);
        net.b.op("Transpose", &[&r], &[("perm", Attr::Ints(perm))])
    };
    let q = per_head(&q, vec![0, 2, 1, 3]);
    let k_t = per_head(&k, vec![0, 2, 3, 1]);
    let v = per_head(&v, vec![0, 2, 1, 3]);
    let scale = net.scalar_f32("attn_scale", 1.0 / (head_dim as f32).sqrt());
    let q = net.b.op("Mul", &[&q, &scale], &[]);
    let mut scores = net.b.op("MatMul", &[&q, &k_t], &[]);
    if let Some(mask) = mask {
        scores = net.b.op("Add", &[&scores, mask], &[]);
    }
    let probs = net.b.op("Softmax", &[&scores], &[("axis", Attr::Int(-1))]);
    let probs = dropout(net, &probs, attention_dropout);
    let context = net.b.op("MatMul", &[&probs, &v], &[]);
    let context = net.b.op("Transpose", &[&context], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
    let merge = net.const_i64s("merge_shape", &[0, 0, dim as i64]);
    let context = net.b.op("Reshape", &[&context, &merge], &[]);
    linear(net, l, &names.out, &context, dim, dim, true, trainable)
}

/// Positions 0, 1, …, L−1 for every row of `ids` `[N, L]` (int64 `[N, L]`): cumulative
/// sums of ones, so every shape stays known to shape inference and the embedding
/// `Gather` gives `[N, L, D]`, the tokens' own shape (no broadcast add).
pub(crate) fn positions(net: &mut Net, ids: &str) -> String {
    let zero = net.b.constant("zero_i64", Tensor::scalar_i64(0));
    let one = net.b.constant("one_i64", Tensor::scalar_i64(1));
    let zeros = net.b.op("Mul", &[ids, &zero], &[]);
    let ones = net.b.op("Add", &[&zeros, &one], &[]);
    let axis1 = net.b.constant("axis1_i64", Tensor::scalar_i64(1));
    let counts = net.b.op("CumSum", &[&ones, &axis1], &[]);
    net.b.op("Sub", &[&counts, &one], &[])
}

/// Zeros shaped like `ids` (token type 0 everywhere).
pub(crate) fn zeros_like_ids(net: &mut Net, ids: &str) -> String {
    let zero = net.b.constant("zero_i64", Tensor::scalar_i64(0));
    net.b.op("Mul", &[ids, &zero], &[])
}

/// `table[ids]`: `[V, D]` rows gathered by int64 ids of any shape.
pub(crate) fn embed(net: &mut Net, table: &str, ids: &str) -> String {
    net.b.op("Gather", &[table, ids], &[("axis", Attr::Int(0))])
}

/// `blocked` (bool) → additive float: `MASKED_SCORE` where true, 0 where false.
pub(crate) fn additive_mask(net: &mut Net, blocked: &str) -> String {
    let blocked = net.b.op("Cast", &[blocked], &[("to", Attr::Int(DataType::Float as i64))]);
    let big = net.scalar_f32("masked_score", MASKED_SCORE);
    net.b.op("Mul", &[&blocked, &big], &[])
}

/// Padding mask for bidirectional encoders: `attention_mask` `[N, L]` → additive
/// `[N, 1, 1, L]`.
pub(crate) fn padding_mask(net: &mut Net, attention_mask: &str) -> String {
    let zero = net.b.constant("zero_i64", Tensor::scalar_i64(0));
    let padded = net.b.op("Equal", &[attention_mask, &zero], &[]);
    let additive = additive_mask(net, &padded);
    let axes = net.const_i64s("mask_axes", &[1, 2]);
    net.b.op("Unsqueeze", &[&additive, &axes], &[])
}

/// Causal and padding mask for CLIP's text tower: position `i` sees positions
/// `j ≤ i` whose `attention_mask` is 1. `positions` `[N, L]` as [`positions`] gives;
/// returns additive `[N, 1, L, L]`.
pub(crate) fn causal_padding_mask(net: &mut Net, positions: &str, attention_mask: &str) -> String {
    let last = net.const_i64s("query_axis", &[2]);
    let query = net.b.op("Unsqueeze", &[positions, &last], &[]);
    let middle = net.const_i64s("key_axis", &[1]);
    let key = net.b.op("Unsqueeze", &[positions, &middle], &[]);
    let future = net.b.op("Greater", &[&key, &query], &[]);
    let zero = net.b.constant("zero_i64", Tensor::scalar_i64(0));
    let padded = net.b.op("Equal", &[attention_mask, &zero], &[]);
    let padded = net.b.op("Unsqueeze", &[&padded, &middle], &[]);
    let blocked = net.b.op("Or", &[&future, &padded], &[]);
    let additive = additive_mask(net, &blocked);
    net.b.op("Unsqueeze", &[&additive, &middle], &[])
}

/// Row `index[n]` of `x[n]` for `x` `[N, L, D]` and int64 `index` `[N, 1]`, as a
/// one-hot `[N, 1, L]` times `x` (a MatMul the autodiff differentiates); `[N, D]`.
pub(crate) fn pick_rows(net: &mut Net, x: &str, positions: &str, index: &str, dim: usize) -> String {
    let hit = net.b.op("Equal", &[positions, index], &[]);
    let one_hot = net.b.op("Cast", &[&hit], &[("to", Attr::Int(DataType::Float as i64))]);
    let axis = net.const_i64s("pick_axis", &[1]);
    let one_hot = net.b.op("Unsqueeze", &[&one_hot, &axis], &[]);
    let picked = net.b.op("MatMul", &[&one_hot, x], &[]);
    let shape = net.const_i64s("picked_shape", &[0, dim as i64]);
    net.b.op("Reshape", &[&picked, &shape], &[])
}

/// The first token of `x` `[N, T, D]`: `[N, D]`.
pub(crate) fn first_token(net: &mut Net, x: &str) -> String {
    let first = net.b.constant("first_index", Tensor::scalar_i64(0));
    net.b.op("Gather", &[x, &first], &[("axis", Attr::Int(1))])
}
