//! The pre-norm transformer block shared by the ViT and the text encoder:
//! `x + Dropout(Attention(LayerNorm(x)))`, then `x + Dropout(MLP(LayerNorm(x)))`, with
//! multi-head self-attention through one fused `qkv` projection and a GELU MLP.
//! Names follow timm (`{name}.norm1`, `{name}.attn.qkv`, `{name}.attn.proj`,
//! `{name}.norm2`, `{name}.mlp.fc1`, `{name}.mlp.fc2`).

use memeguard_onnx::Attr;

use crate::models::layers::{dropout, gelu, layer_norm, linear};
use crate::models::net::Net;

/// The shape of one transformer block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockShape {
    /// Token width.
    pub dim: usize,
    /// Attention heads; `dim` must be a multiple.
    pub heads: usize,
    /// Hidden width of the MLP.
    pub mlp_hidden: usize,
    /// LayerNorm epsilon.
    pub eps: f32,
    /// Dropout after the attention projection and in the MLP (Train graphs only).
    pub dropout: f32,
}

impl BlockShape {
    /// A block of width `dim` with an MLP `mlp_ratio` times wider.
    pub fn new(dim: usize, heads: usize, mlp_ratio: usize, eps: f32, dropout: f32) -> Self {
        BlockShape { dim, heads, mlp_hidden: dim * mlp_ratio, eps, dropout }
    }
}

/// One pre-norm block on tokens `x` `[N, T, dim]`. `mask` is an optional additive
/// attention mask broadcastable to `[N, heads, T, T]` (0 where attending is allowed,
/// a large negative number where not).
pub fn block(net: &mut Net, name: &str, x: &str, shape: &BlockShape, mask: Option<&str>) -> String {
    let h = layer_norm(net, &format!("{name}.norm1"), x, shape.dim, shape.eps);
    let h = attention(net, &format!("{name}.attn"), &h, shape, mask);
    let h = dropout(net, &h, shape.dropout);
    let x = net.b.op("Add", &[x, &h], &[]);
    let h = layer_norm(net, &format!("{name}.norm2"), &x, shape.dim, shape.eps);
    let h = linear(net, &format!("{name}.mlp.fc1"), &h, shape.dim, shape.mlp_hidden, true);
    let h = gelu(net, &h);
    let h = dropout(net, &h, shape.dropout);
    let h = linear(net, &format!("{name}.mlp.fc2"), &h, shape.mlp_hidden, shape.dim, true);
    let h = dropout(net, &h, shape.dropout);
    net.b.op("Add", &[&x, &h], &[])
}

/// Multi-head self-attention on `x` `[N, T, dim]`:
/// softmax(q·kᵀ/√d_head + mask)·v per head, heads concatenated, then projected.
pub fn attention(net: &mut Net, name: &str, x: &str, shape: &BlockShape, mask: Option<&str>) -> String {
    assert!(shape.dim.is_multiple_of(shape.heads), "width {} is not a multiple of {} heads", shape.dim, shape.heads);
    let head_dim = shape.dim / shape.heads;
    let qkv = linear(net, &format!("{name}.qkv"), x, shape.dim, 3 * shape.dim, true);
    let parts = net.b.node("Split", &[&qkv], 3, &[("axis", Attr::Int(-1)), ("num_outputs", Attr::Int(3))]);
    // [N, T, dim] → [N, T, heads, head_dim] → [N, heads, T, head_dim]
    let split_heads = net.const_i64s("heads_shape", &[0, 0, shape.heads as i64, head_dim as i64]);
    let per_head: Vec<String> = parts
        .iter()
        .map(|p| {
            let r = net.b.op("Reshape", &[p, &split_heads], &[]);
            net.b.op("Transpose", &[&r], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))])
        })
        .collect();
    let [q, k, v] = <[String; 3]>::try_from(per_head).expect("Split has three outputs");
    let scale = net.scalar_f32("attn_scale", 1.0 / (head_dim as f32).sqrt());
    let q = net.b.op("Mul", &[&q, &scale], &[]);
    let k_t = net.b.op("Transpose", &[&k], &[("perm", Attr::Ints(vec![0, 1, 3, 2]))]);
    let mut scores = net.b.op("MatMul", &[&q, &k_t], &[]);
    if let Some(mask) = mask {
        scores = net.b.op("Add", &[&scores, mask], &[]);
    }
    let weights = net.b.op("Softmax", &[&scores], &[("axis", Attr::Int(-1))]);
    let context = net.b.op("MatMul", &[&weights, &v], &[]);
    // [N, heads, T, head_dim] → [N, T, heads, head_dim] → [N, T, dim]
    let context = net.b.op("Transpose", &[&context], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
    let merge_heads = net.const_i64s("merge_shape", &[0, 0, shape.dim as i64]);
    let context = net.b.op("Reshape", &[&context, &merge_heads], &[]);
    linear(net, &format!("{name}.proj"), &context, shape.dim, shape.dim, true)
}
