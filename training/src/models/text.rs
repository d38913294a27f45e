//! The text encoder: token and learned position embeddings, pre-norm transformer
//! blocks that ignore padding (the attention mask becomes an additive mask), a final
//! LayerNorm, and a pooled output (the first token, `[CLS]`, or the mean over real
//! tokens). Inputs are what the shared tokenizer produces: `input_ids` and
//! `attention_mask`, int64 `[N, L]` with `L ≤ max_length`.

use memeguard_onnx::{Attr, DataType, Tensor};
use serde::{Deserialize, Serialize};

use crate::models::init::Init;
use crate::models::layers::{dropout, layer_norm};
use crate::models::net::Net;
use crate::models::transformer::{BlockShape, block};

/// Added to attention scores at padding positions: softmax gives them weight 0.
const MASKED_SCORE: f32 = -1e9;

/// How the token features become one vector per text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The first token (`[CLS]`).
    Cls,
    /// The mean over tokens whose attention mask is 1.
    Mean,
}

/// A text encoder's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    /// Token ids are in `0..vocab_size` (the tokenizer's vocabulary).
    pub vocab_size: usize,
    /// Longest input; sizes the position embeddings.
    pub max_length: usize,
    pub dim: usize,
    pub depth: usize,
    pub heads: usize,
    /// MLP hidden width = `dim · mlp_ratio`.
    pub mlp_ratio: usize,
    pub eps: f32,
    /// Dropout on the embeddings and inside the blocks (Train graphs only).
    pub dropout: f32,
    pub pooling: Pooling,
}

impl TextConfig {
    /// BERT-base sizes (width 768, 12 blocks, 12 heads).
    pub fn base(vocab_size: usize, max_length: usize) -> Self {
        TextConfig {
            vocab_size,
            max_length,
            dim: 768,
            depth: 12,
            heads: 12,
            mlp_ratio: 4,
            eps: 1e-12,
            dropout: 0.1,
            pooling: Pooling::Cls,
        }
    }
    /// A small encoder (width 256, 4 blocks, 4 heads) for CPU training.
    pub fn small(vocab_size: usize, max_length: usize) -> Self {
        TextConfig { dim: 256, depth: 4, heads: 4, ..Self::base(vocab_size, max_length) }
    }
    /// A tiny encoder for tests (width 32, 2 blocks, 2 heads, no dropout).
    pub fn tiny(vocab_size: usize, max_length: usize) -> Self {
        TextConfig { dim: 32, depth: 2, heads: 2, mlp_ratio: 2, dropout: 0.0, ..Self::base(vocab_size, max_length) }
    }
    /// Width of the pooled features.
    pub fn feature_dim(&self) -> usize {
        self.dim
    }
    fn block_shape(&self) -> BlockShape {
        BlockShape::new(self.dim, self.heads, self.mlp_ratio, self.eps, self.dropout)
    }
}

/// Builds the encoder on `input_ids` and `attention_mask` (int64 `[N, L]`) under
/// `prefix`; returns the pooled features `[N, dim]`.
pub fn text_encoder(net: &mut Net, cfg: &TextConfig, prefix: &str, input_ids: &str, attention_mask: &str) -> String {
    let d = cfg.dim as i64;
    let table = net.param(&format!("{prefix}.token_embed"), &[cfg.vocab_size as i64, d], Init::TRUNC_002, false);
    let tokens = net.b.op("Gather", &[&table, input_ids], &[("axis", Attr::Int(0))]);

    // Position embeddings for positions 0..L, gathered by position ids [N, L]
    // (cumulative sums of ones shaped like the ids, minus one). Gathering instead of
    // slicing the table to a run-time length keeps every rank known to shape inference.
    let pos = net.param(&format!("{prefix}.pos_embed"), &[cfg.max_length as i64, d], Init::TRUNC_002, false);
    let zero = net.b.constant("zero_i64", Tensor::scalar_i64(0));
    let one = net.b.constant("one_i64", Tensor::scalar_i64(1));
    let zeros = net.b.op("Mul", &[input_ids, &zero], &[]);
    let ones = net.b.op("Add", &[&zeros, &one], &[]);
    let axis1 = net.b.constant("axis1_i64", Tensor::scalar_i64(1));
    let counts = net.b.op("CumSum", &[&ones, &axis1], &[]);
    let positions = net.b.op("Sub", &[&counts, &one], &[]);
    let pos = net.b.op("Gather", &[&pos, &positions], &[("axis", Attr::Int(0))]);
    let x = net.b.op("Add", &[&tokens, &pos], &[]);
    let mut x = dropout(net, &x, cfg.dropout);

    // mask 1/0 → additive 0 / MASKED_SCORE, shaped [N, 1, 1, L] for [N, heads, L, L] scores.
    let mask_f = net.b.op("Cast", &[attention_mask], &[("to", Attr::Int(DataType::Float as i64))]);
    let one = net.scalar_f32("one", 1.0);
    let inverted = net.b.op("Sub", &[&one, &mask_f], &[]);
    let big = net.scalar_f32("masked_score", MASKED_SCORE);
    let additive = net.b.op("Mul", &[&inverted, &big], &[]);
    let axes = net.const_i64s("mask_axes", &[1, 2]);
    let additive = net.b.op("Unsqueeze", &[&additive, &axes], &[]);

    let shape = cfg.block_shape();
    for i in 0..cfg.depth {
        x = block(net, &format!("{prefix}.blocks.{i}"), &x, &shape, Some(&additive));
    }
    let x = layer_norm(net, &format!("{prefix}.norm"), &x, cfg.dim, cfg.eps);
    match cfg.pooling {
        Pooling::Cls => {
            let first = net.b.constant("cls_index", Tensor::scalar_i64(0));
            net.b.op("Gather", &[&x, &first], &[("axis", Attr::Int(1))])
        }
        Pooling::Mean => masked_mean(net, &x, &mask_f),
    }
}

/// Σ_t x[n, t]·m[n, t] / max(Σ_t m[n, t], 1) for tokens `x` `[N, L, D]`, mask `m` `[N, L]`.
fn masked_mean(net: &mut Net, x: &str, mask: &str) -> String {
    let last = net.const_i64s("last_axis", &[-1]);
    let m = net.b.op("Unsqueeze", &[mask, &last], &[]);
    let weighted = net.b.op("Mul", &[x, &m], &[]);
    let time = net.const_i64s("time_axis", &[1]);
    let sum = net.b.op("ReduceSum", &[&weighted, &time], &[("keepdims", Attr::Int(0))]);
    let count = net.b.op("ReduceSum", &[&m, &time], &[("keepdims", Attr::Int(0))]);
    let one = net.scalar_f32("one", 1.0);
    let count = net.b.op("Max", &[&count, &one], &[]);
    net.b.op("Div", &[&sum, &count], &[])
}
