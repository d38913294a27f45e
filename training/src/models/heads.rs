//! Heads that the pretraining objectives put on encoders: the seed study's
//! projection head (CLIP, CASS) and DINO's head.

use memeguard_onnx::Attr;
use serde::{Deserialize, Serialize};

use crate::models::init::Init;
use crate::models::layers::{dropout, gelu, l2_normalize, layer_norm, linear};
use crate::models::net::Net;

/// The seed study's projection head:
/// `p = Linear(x)`, `h = Dropout(Linear(GELU(p)))`, `LayerNorm(h + p)`.
/// Names: `{name}.projection`, `{name}.fc`, `{name}.layer_norm`.
pub fn projection_head(
    net: &mut Net,
    name: &str,
    x: &str,
    in_dim: usize,
    proj_dim: usize,
    dropout_ratio: f32,
) -> String {
    let projected = linear(net, &format!("{name}.projection"), x, in_dim, proj_dim, true);
    let h = gelu(net, &projected);
    let h = linear(net, &format!("{name}.fc"), &h, proj_dim, proj_dim, true);
    let h = dropout(net, &h, dropout_ratio);
    let h = net.b.op("Add", &[&h, &projected], &[]);
    layer_norm(net, &format!("{name}.layer_norm"), &h, proj_dim, 1e-5)
}

/// DINO's head configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DinoHeadConfig {
    /// Output dimension K (prototypes; 65536 in the reference).
    pub out_dim: usize,
    /// Hidden width of the MLP (2048).
    pub hidden_dim: usize,
    /// Width before the weight-normalised last layer (256).
    pub bottleneck_dim: usize,
    /// MLP layers (3).
    pub layers: usize,
}

impl DinoHeadConfig {
    /// The reference head with `out_dim` prototypes.
    pub fn reference(out_dim: usize) -> Self {
        DinoHeadConfig { out_dim, hidden_dim: 2048, bottleneck_dim: 256, layers: 3 }
    }
    /// A tiny head for tests.
    pub fn tiny() -> Self {
        DinoHeadConfig { out_dim: 64, hidden_dim: 32, bottleneck_dim: 16, layers: 3 }
    }
}

/// DINO's head: an MLP of `layers` linear layers (GELU between), L2 normalisation,
/// then a bias-free last layer with weight normalisation `W = g · v / ‖v‖` (norm per
/// output unit), whose magnitude `g` is frozen at 1 as in the reference. Written
/// with `ReduceL2` and `Div` so autodiff differentiates through the normalisation of
/// `v`. Names: `{name}.mlp.{0,2,4}`, `{name}.last_layer.weight_v` `[bottleneck, K]`,
/// `{name}.last_layer.weight_g` `[1, K]` (frozen).
pub fn dino_head(net: &mut Net, name: &str, x: &str, in_dim: usize, cfg: &DinoHeadConfig) -> String {
    assert!(cfg.layers >= 1, "a DINO head needs at least one layer");
    let mut h = x.to_string();
    let mut width = in_dim;
    for i in 0..cfg.layers {
        let last = i + 1 == cfg.layers;
        let out = if last { cfg.bottleneck_dim } else { cfg.hidden_dim };
        // Index like the reference's nn.Sequential (Linear, GELU, Linear, GELU, Linear).
        h = linear(net, &format!("{name}.mlp.{}", 2 * i), &h, width, out, true);
        if !last {
            h = gelu(net, &h);
        }
        width = out;
    }
    let h = l2_normalize(net, &h);
    let (b, k) = (cfg.bottleneck_dim as i64, cfg.out_dim as i64);
    let v = net.param(&format!("{name}.last_layer.weight_v"), &[b, k], Init::TRUNC_002, true);
    let g = net.frozen_param(&format!("{name}.last_layer.weight_g"), &[1, k], Init::Ones);
    let axis0 = net.const_i64s("axis0", &[0]);
    let norm = net.b.op("ReduceL2", &[&v, &axis0], &[("keepdims", Attr::Int(1))]);
    let direction = net.b.op("Div", &[&v, &norm], &[]);
    let weight = net.b.op("Mul", &[&direction, &g], &[]);
    net.b.op("MatMul", &[&h, &weight], &[])
}
