//! Vision Transformer (Dosovitskiy et al.; timm's `VisionTransformer` layout):
//! patch embedding by a strided convolution, a class token, learned position
//! embeddings sized for the input, pre-norm blocks, a final LayerNorm, and the class
//! token's features as the output. Names follow timm (`{prefix}.patch_embed.proj`,
//! `{prefix}.cls_token`, `{prefix}.pos_embed`, `{prefix}.blocks.{i}`, `{prefix}.norm`).

use memeguard_onnx::{Attr, Tensor};
use serde::{Deserialize, Serialize};

use crate::models::init::Init;
use crate::models::layers::{Conv2d, conv2d, dropout, layer_norm};
use crate::models::net::Net;
use crate::models::transformer::{BlockShape, block};

/// A ViT's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VitConfig {
    /// Square input side; must be a multiple of `patch_size`.
    pub image_size: usize,
    pub patch_size: usize,
    /// Token width.
    pub dim: usize,
    /// Number of blocks.
    pub depth: usize,
    pub heads: usize,
    /// MLP hidden width = `dim · mlp_ratio`.
    pub mlp_ratio: usize,
    /// LayerNorm epsilon (1e-6 in timm's ViTs).
    pub eps: f32,
    /// Dropout on the embeddings and inside the blocks (0 in the reference).
    pub dropout: f32,
}

impl VitConfig {
    /// ViT-B/16 at `image_size` (224 or 384; 86.6 M parameters at 224 with a
    /// 1000-class head).
    pub fn vit_b16(image_size: usize) -> Self {
        VitConfig { image_size, patch_size: 16, dim: 768, depth: 12, heads: 12, mlp_ratio: 4, eps: 1e-6, dropout: 0.0 }
    }
    /// ViT-S/16 at `image_size`.
    pub fn vit_s16(image_size: usize) -> Self {
        VitConfig { image_size, patch_size: 16, dim: 384, depth: 12, heads: 6, mlp_ratio: 4, eps: 1e-6, dropout: 0.0 }
    }
    /// ViT-Ti/16 at `image_size`.
    pub fn vit_ti16(image_size: usize) -> Self {
        VitConfig { image_size, patch_size: 16, dim: 192, depth: 12, heads: 3, mlp_ratio: 4, eps: 1e-6, dropout: 0.0 }
    }
    /// A tiny ViT for tests and CPU recipes: 32×32 inputs, 8×8 patches, width 32,
    /// two blocks of two heads.
    pub fn tiny() -> Self {
        VitConfig { image_size: 32, patch_size: 8, dim: 32, depth: 2, heads: 2, mlp_ratio: 2, eps: 1e-6, dropout: 0.0 }
    }
    /// The same model at another input size (position embeddings follow).
    pub fn at_size(mut self, image_size: usize) -> Self {
        self.image_size = image_size;
        self
    }
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
    /// Tokens including the class token.
    pub fn tokens(&self) -> usize {
        self.grid() * self.grid() + 1
    }
    /// Width of the output features.
    pub fn feature_dim(&self) -> usize {
        self.dim
    }
    fn block_shape(&self) -> BlockShape {
        BlockShape::new(self.dim, self.heads, self.mlp_ratio, self.eps, self.dropout)
    }
}

/// Builds the ViT on NCHW float `pixels` (`[N, 3, image_size, image_size]`) under
/// `prefix`; returns the normalised class-token features `[N, dim]`.
pub fn vit(net: &mut Net, cfg: &VitConfig, prefix: &str, pixels: &str) -> String {
    vit_at_input_size(net, cfg, prefix, pixels, cfg.image_size)
}

/// [`vit`] on inputs of side `input_size`, which may differ from the size the
/// position embeddings are made for (`cfg.image_size`), as DINO's local crops do:
/// the patch position embeddings are then resized bicubically (PyTorch's
/// `interpolate(mode="bicubic", align_corners=False)`), by a constant interpolation
/// matrix so that the resizing is a `MatMul` the autodiff differentiates. With
/// [`Net::set_weight_sharing`], one ViT can run on several input sizes in one graph.
pub fn vit_at_input_size(net: &mut Net, cfg: &VitConfig, prefix: &str, pixels: &str, input_size: usize) -> String {
    for size in [cfg.image_size, input_size] {
        assert!(
            size.is_multiple_of(cfg.patch_size),
            "image size {size} is not a multiple of the patch size {}",
            cfg.patch_size
        );
    }
    let d = cfg.dim as i64;
    let patch = Conv2d {
        in_channels: 3,
        out_channels: cfg.dim,
        kernel: cfg.patch_size,
        stride: cfg.patch_size,
        padding: 0,
        bias: true,
    };
    // [N, D, g, g] → [N, D, g·g] → [N, g·g, D]
    let x = conv2d(net, &format!("{prefix}.patch_embed.proj"), pixels, patch, Init::TRUNC_002);
    let flat = net.const_i64s("patch_flat", &[0, d, -1]);
    let x = net.b.op("Reshape", &[&x, &flat], &[]);
    let tokens = net.b.op("Transpose", &[&x], &[("perm", Attr::Ints(vec![0, 2, 1]))]);

    // Prepend the class token: a zero row in front of the patch tokens, plus the class
    // token padded to the whole sequence ([cls; 0; ...; 0]) and the position
    // embeddings. The same as concatenating an expanded class token, but every shape
    // stays static (no batch-sized Expand), so shape inference knows them all.
    let grid = input_size / cfg.patch_size;
    let t = (grid * grid + 1) as i64;
    let cls = net.param(&format!("{prefix}.cls_token"), &[1, 1, d], Init::Normal { std: 1e-6 }, false);
    let front = net.const_i64s("pad_front", &[0, 1, 0, 0, 0, 0]);
    let tokens = net.b.op("Pad", &[&tokens, &front], &[]);
    let back = net.const_i64s("pad_back", &[0, 0, 0, 0, t - 1, 0]);
    let cls = net.b.op("Pad", &[&cls, &back], &[]);
    let pos = net.param(&format!("{prefix}.pos_embed"), &[1, cfg.tokens() as i64, d], Init::TRUNC_002, false);
    let pos = if grid == cfg.grid() { pos } else { resize_position_embeddings(net, &pos, cfg.grid(), grid) };
    let start = net.b.op("Add", &[&cls, &pos], &[]);
    let x = net.b.op("Add", &[&tokens, &start], &[]);
    let mut x = dropout(net, &x, cfg.dropout);
    let shape = cfg.block_shape();
    for i in 0..cfg.depth {
        x = block(net, &format!("{prefix}.blocks.{i}"), &x, &shape, None);
    }
    let x = layer_norm(net, &format!("{prefix}.norm"), &x, cfg.dim, cfg.eps);
    let first = net.b.constant("cls_index", Tensor::scalar_i64(0));
    net.b.op("Gather", &[&x, &first], &[("axis", Attr::Int(1))])
}

/// Position embeddings `[1, 1 + g², D]` → `[1, 1 + h², D]`: the class position kept,
/// the g×g patch grid resized to h×h bicubically.
fn resize_position_embeddings(net: &mut Net, pos: &str, from: usize, to: usize) -> String {
    let axis1 = net.const_i64s("axis1", &[1]);
    let zero = net.const_i64s("start0", &[0]);
    let one = net.const_i64s("start1", &[1]);
    let end = net.const_i64s("end_patches", &[(from * from + 1) as i64]);
    let cls_pos = net.b.op("Slice", &[pos, &zero, &one, &axis1], &[]);
    let patch_pos = net.b.op("Slice", &[pos, &one, &end, &axis1], &[]);
    let rows = bicubic_matrix(from, to);
    // 2-D resizing of a row-major grid = kron(rows, rows): [h², g²].
    let mut matrix = Vec::with_capacity(to * to * from * from);
    for (oy, ox) in (0..to).flat_map(|y| (0..to).map(move |x| (y, x))) {
        for (iy, ix) in (0..from).flat_map(|y| (0..from).map(move |x| (y, x))) {
            matrix.push(rows[oy * from + iy] * rows[ox * from + ix]);
        }
    }
    let matrix = net.const_f32("pos_resize", &[(to * to) as i64, (from * from) as i64], matrix);
    let resized = net.b.op("MatMul", &[&matrix, &patch_pos], &[]);
    net.b.op("Concat", &[&cls_pos, &resized], &[("axis", Attr::Int(1))])
}

/// The `[to, from]` matrix of 1-D bicubic interpolation as PyTorch computes it with
/// `align_corners=False`: source coordinate (i + ½)·from/to − ½, cubic convolution
/// with a = −0.75, indices clamped to the edges.
pub fn bicubic_matrix(from: usize, to: usize) -> Vec<f32> {
    const A: f64 = -0.75;
    let near = |t: f64| ((A + 2.0) * t - (A + 3.0)) * t * t + 1.0; // |t| ≤ 1
    let far = |t: f64| ((A * t - 5.0 * A) * t + 8.0 * A) * t - 4.0 * A; // 1 < |t| < 2
    let mut m = vec![0.0f32; to * from];
    let scale = from as f64 / to as f64;
    for i in 0..to {
        let src = (i as f64 + 0.5) * scale - 0.5;
        let x0 = src.floor();
        let t = src - x0;
        let weights = [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)];
        for (k, w) in weights.iter().enumerate() {
            let j = (x0 as i64 - 1 + k as i64).clamp(0, from as i64 - 1) as usize;
            m[i * from + j] += *w as f32;
        }
    }
    m
}
