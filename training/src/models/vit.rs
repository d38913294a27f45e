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
        BlockShape {
            dim: self.dim,
            heads: self.heads,
            mlp_hidden: self.dim * self.mlp_ratio,
            eps: self.eps,
            dropout: self.dropout,
        }
    }
}

/// Builds the ViT on NCHW float `pixels` (`[N, 3, image_size, image_size]`) under
/// `prefix`; returns the normalised class-token features `[N, dim]`.
pub fn vit(net: &mut Net, cfg: &VitConfig, prefix: &str, pixels: &str) -> String {
    assert!(
        cfg.image_size % cfg.patch_size == 0,
        "image size {} is not a multiple of the patch size {}",
        cfg.image_size,
        cfg.patch_size
    );
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

    // The class token [1, 1, D], expanded to [N, 1, D] and put first.
    let cls = net.param(&format!("{prefix}.cls_token"), &[1, 1, d], Init::Normal { std: 1e-6 }, false);
    let shape = net.b.op("Shape", &[&tokens], &[("start", Attr::Int(0)), ("end", Attr::Int(1))]);
    let ones = net.b.constant("ones_2", Tensor::vec_i64(&[1, 1]));
    let expand_shape = net.b.op("Concat", &[&shape, &ones], &[("axis", Attr::Int(0))]);
    let cls = net.b.op("Expand", &[&cls, &expand_shape], &[]);
    let x = net.b.op("Concat", &[&cls, &tokens], &[("axis", Attr::Int(1))]);

    let pos = net.param(&format!("{prefix}.pos_embed"), &[1, cfg.tokens() as i64, d], Init::TRUNC_002, false);
    let x = net.b.op("Add", &[&x, &pos], &[]);
    let mut x = dropout(net, &x, cfg.dropout);
    let shape = cfg.block_shape();
    for i in 0..cfg.depth {
        x = block(net, &format!("{prefix}.blocks.{i}"), &x, &shape, None);
    }
    let x = layer_norm(net, &format!("{prefix}.norm"), &x, cfg.dim, cfg.eps);
    let first = net.b.constant("cls_index", Tensor::scalar_i64(0));
    net.b.op("Gather", &[&x, &first], &[("axis", Attr::Int(1))])
}
