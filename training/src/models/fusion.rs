//! Classifier heads that turn encoder features into one hateful/not logit per item:
//! single-modality (image-only, text-only), the seed study's concatenation fusion,
//! and Hate-CLIPper's feature-interaction fusion (Kumar & Nandakumar, 2022).
//! Every head returns logits `[N]`; the sigmoid is applied outside (losses take
//! logits, never probabilities).

use memeguard_onnx::Attr;
use serde::{Deserialize, Serialize};

use crate::models::layers::{batch_norm2d, dropout, l2_normalize, linear, relu};
use crate::models::net::Net;

/// The seed study's head sizes: each modality projected to `proj_dim` (300), then
/// `hidden_dim` (256) hidden units, dropout, one logit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConcatHead {
    pub proj_dim: usize,
    pub hidden_dim: usize,
    pub dropout: f32,
    /// Standardise each modality's features over the batch (BatchNorm, running
    /// statistics at inference) before projecting them. Not in the seed study: without
    /// it a freshly initialised text transformer gives nearly the same pooled features
    /// for every caption, and a label that depends on the *pair* (benign confounders)
    /// never gets a gradient strong enough to leave the loss plateau.
    #[serde(default)]
    pub feature_norm: bool,
}

impl Default for ConcatHead {
    fn default() -> Self {
        ConcatHead { proj_dim: 300, hidden_dim: 256, dropout: 0.1, feature_norm: true }
    }
}

/// `x` through [`feature_norm`] when the head asks for it, else `x` itself.
fn normalised_if_asked(net: &mut Net, cfg: &ConcatHead, name: &str, x: &str, dim: usize) -> String {
    if cfg.feature_norm { feature_norm(net, name, x, dim) } else { x.to_string() }
}

/// `[N, d]` features standardised over the batch: BatchNorm on `[N, d, 1, 1]`.
/// Names: `{name}.weight`, `{name}.bias`, `{name}.running_mean`, `{name}.running_var`.
pub fn feature_norm(net: &mut Net, name: &str, x: &str, dim: usize) -> String {
    let axes = net.const_i64s("feature_norm_axes", &[2, 3]);
    let x4 = net.b.op("Unsqueeze", &[x, &axes], &[]);
    let y4 = batch_norm2d(net, name, &x4, dim);
    net.b.op("Flatten", &[&y4], &[("axis", Attr::Int(1))])
}

/// How Hate-CLIPper combines the projected image and text features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interaction {
    /// The outer product (`map_dim²` features): every image feature times every text feature.
    Cross,
    /// The element-wise product (`map_dim` features).
    Align,
}

/// Hate-CLIPper's head. Defaults follow the authors' code: `map_dim` 32, one
/// pre-output layer, dropout 0.1 after the projections, 0.4 on the interaction
/// features, 0.2 after each pre-output layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HateClipperHead {
    pub interaction: Interaction,
    pub map_dim: usize,
    pub pre_output_layers: usize,
    /// Dropout after the projections, on the interaction features, after each
    /// pre-output layer.
    pub dropout: [f32; 3],
}

impl HateClipperHead {
    /// The reference settings with the given interaction.
    pub fn new(interaction: Interaction) -> Self {
        HateClipperHead { interaction, map_dim: 32, pre_output_layers: 1, dropout: [0.1, 0.4, 0.2] }
    }
}

/// Which classifier head a model uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HeadConfig {
    /// Concatenation fusion for two modalities; for one modality the same layers
    /// without the other branch.
    Concat(ConcatHead),
    /// Feature-interaction fusion (needs both modalities).
    HateClipper(HateClipperHead),
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig::Concat(ConcatHead::default())
    }
}

/// `[N, d]` features → logits `[N]` with the seed-study layers for one modality:
/// `Linear(d → proj) → ReLU → Linear(proj → hidden) → ReLU → Dropout → Linear(hidden → 1)`.
/// Names: `{name}.proj`, `{name}.hidden`, `{name}.out`.
pub fn single_modality_head(net: &mut Net, name: &str, x: &str, in_dim: usize, cfg: &ConcatHead) -> String {
    let x = &normalised_if_asked(net, cfg, &format!("{name}.norm"), x, in_dim);
    let p = linear(net, &format!("{name}.proj"), x, in_dim, cfg.proj_dim, true);
    let p = relu(net, &p);
    hidden_and_logit(net, name, &p, cfg.proj_dim, cfg)
}

/// The seed study's concatenation fusion: image → `proj_dim`, text → `proj_dim`
/// (each Linear + ReLU), concatenated, `Linear(2·proj → hidden) → ReLU → Dropout →
/// Linear(hidden → 1)`. Names: `{name}.image_proj`, `{name}.text_proj`,
/// `{name}.hidden`, `{name}.out`.
pub fn concat_head(
    net: &mut Net,
    name: &str,
    (image, image_dim): (&str, usize),
    (text, text_dim): (&str, usize),
    cfg: &ConcatHead,
) -> String {
    let image = &normalised_if_asked(net, cfg, &format!("{name}.image_norm"), image, image_dim);
    let text = &normalised_if_asked(net, cfg, &format!("{name}.text_norm"), text, text_dim);
    let i = linear(net, &format!("{name}.image_proj"), image, image_dim, cfg.proj_dim, true);
    let i = relu(net, &i);
    let t = linear(net, &format!("{name}.text_proj"), text, text_dim, cfg.proj_dim, true);
    let t = relu(net, &t);
    let joined = net.b.op("Concat", &[&i, &t], &[("axis", Attr::Int(-1))]);
    hidden_and_logit(net, name, &joined, 2 * cfg.proj_dim, cfg)
}

fn hidden_and_logit(net: &mut Net, name: &str, x: &str, in_dim: usize, cfg: &ConcatHead) -> String {
    let h = linear(net, &format!("{name}.hidden"), x, in_dim, cfg.hidden_dim, true);
    let h = relu(net, &h);
    let h = dropout(net, &h, cfg.dropout);
    logit(net, &format!("{name}.out"), &h, cfg.hidden_dim)
}

/// Hate-CLIPper: image and text each projected to `map_dim` (Linear + Dropout) and
/// L2-normalised; their outer product (flattened, `Cross`) or element-wise product
/// (`Align`); dropout; `pre_output_layers` × (Linear → ReLU → Dropout) of width
/// `map_dim`; one logit. Names: `{name}.image_map`, `{name}.text_map`,
/// `{name}.pre_output.{i}`, `{name}.out`.
pub fn hate_clipper_head(
    net: &mut Net,
    name: &str,
    (image, image_dim): (&str, usize),
    (text, text_dim): (&str, usize),
    cfg: &HateClipperHead,
) -> String {
    let m = cfg.map_dim;
    let i = linear(net, &format!("{name}.image_map"), image, image_dim, m, true);
    let i = dropout(net, &i, cfg.dropout[0]);
    let i = l2_normalize(net, &i);
    let t = linear(net, &format!("{name}.text_map"), text, text_dim, m, true);
    let t = dropout(net, &t, cfg.dropout[0]);
    let t = l2_normalize(net, &t);
    let (features, mut width) = match cfg.interaction {
        Interaction::Align => (net.b.op("Mul", &[&i, &t], &[]), m),
        Interaction::Cross => {
            // [N, m, 1] · [N, 1, m] → [N, m, m] → [N, m²]
            let axis2 = net.const_i64s("axis2", &[2]);
            let axis1 = net.const_i64s("axis1", &[1]);
            let column = net.b.op("Unsqueeze", &[&i, &axis2], &[]);
            let row = net.b.op("Unsqueeze", &[&t, &axis1], &[]);
            let outer = net.b.op("Mul", &[&column, &row], &[]);
            (net.b.op("Flatten", &[&outer], &[("axis", Attr::Int(1))]), m * m)
        }
    };
    let mut h = dropout(net, &features, cfg.dropout[1]);
    for layer in 0..cfg.pre_output_layers {
        h = linear(net, &format!("{name}.pre_output.{layer}"), &h, width, m, true);
        h = relu(net, &h);
        h = dropout(net, &h, cfg.dropout[2]);
        width = m;
    }
    logit(net, &format!("{name}.out"), &h, width)
}

/// `Linear(d → 1)` squeezed to `[N]`.
fn logit(net: &mut Net, name: &str, x: &str, in_dim: usize) -> String {
    let y = linear(net, name, x, in_dim, 1, true);
    let axis = net.const_i64s("logit_axis", &[-1]);
    net.b.op("Squeeze", &[&y, &axis], &[])
}
