//! CLIP: image and text encoders with projection heads, L2-normalised embeddings, and a
//! symmetric cross-entropy over the batch's similarity matrix with a learnable
//! temperature (logit scale initialised to ln(1/0.07), clamped at 100).

use memeguard_onnx::{Attr, Tensor, dims};
use serde::{Deserialize, Serialize};

use super::{Feeds, LOSS, Objective, loss_error};
use crate::graph_spec::Mode;
use crate::losses;
use crate::models::ModelError;
use crate::models::encoders::ImageEncoderConfig;
use crate::models::heads::projection_head;
use crate::models::input::{image_input, text_inputs};
use crate::models::layers::l2_normalize;
use crate::models::net::{GraphOutput, Net};
use crate::models::text::{TextConfig, text_encoder};

/// CLIP's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    pub image: ImageEncoderConfig,
    pub text: TextConfig,
    /// Shared embedding width of the projection heads.
    pub projection_dim: usize,
    pub dropout: f32,
}

/// Initial logit scale, ln(1 / 0.07), as in CLIP.
pub const LOGIT_SCALE_INIT: f32 = 2.659_26;
/// The logit scale is clamped so that exp(scale) ≤ 100.
pub const LOGIT_SCALE_MAX: f32 = 4.605_17;

/// Builds CLIP's training graph. Parameters: `image.*`, `text.*` (the encoders, named as
/// in classifiers so a finetune can start from them), `image_projection.*`,
/// `text_projection.*`, `logit_scale`.
pub fn build(cfg: &ClipConfig, seed: u64) -> Result<Objective, ModelError> {
    cfg.image.validate()?;
    let mut net = Net::new("clip", Mode::Train, seed);
    let pixels = image_input(&mut net, cfg.image.image_size());
    let image = cfg.image.build(&mut net, "image", &pixels);
    let (ids, mask) = text_inputs(&mut net);
    let text = text_encoder(&mut net, &cfg.text, "text", &ids, &mask);
    let zi =
        projection_head(&mut net, "image_projection", &image, cfg.image.feature_dim(), cfg.projection_dim, cfg.dropout);
    let zt =
        projection_head(&mut net, "text_projection", &text, cfg.text.feature_dim(), cfg.projection_dim, cfg.dropout);
    let zi = l2_normalize(&mut net, &zi);
    let zt = l2_normalize(&mut net, &zt);

    let scale =
        net.param_from_proto("logit_scale", Tensor::f32(vec![1], vec![LOGIT_SCALE_INIT]).to_proto(""), true, false);
    let max = net.scalar_f32("logit_scale_max", LOGIT_SCALE_MAX);
    let clamped = net.b.op("Min", &[&scale, &max], &[]);
    let factor = net.b.op("Exp", &[&clamped], &[]);
    let zt_t = net.b.op("Transpose", &[&zt], &[("perm", Attr::Ints(vec![1, 0]))]);
    let sim = net.b.op("MatMul", &[&zi, &zt_t], &[]);
    let logits_per_image = net.b.op("Mul", &[&sim, &factor], &[]);
    let logits_per_text = net.b.op("Transpose", &[&logits_per_image], &[("perm", Attr::Ints(vec![1, 0]))]);

    // Targets: the matching pair is on the diagonal, labels = 0..N.
    let shape = net.b.op("Shape", &[&zi], &[]);
    let zero_idx = net.const_i64s("clip_zero", &[0]);
    let n = net.b.op("Gather", &[&shape, &zero_idx], &[("axis", Attr::Int(0))]);
    let n = net.b.op("Squeeze", &[&n], &[]);
    let start = net.b.constant("clip_start", Tensor::scalar_i64(0));
    let step = net.b.constant("clip_step", Tensor::scalar_i64(1));
    let labels = net.b.op("Range", &[&start, &n, &step], &[]);

    let li = losses::cross_entropy(&mut net.b, &logits_per_image, &labels).map_err(loss_error)?;
    let lt = losses::cross_entropy(&mut net.b, &logits_per_text, &labels).map_err(loss_error)?;
    let sum = net.b.op("Add", &[&li, &lt], &[]);
    let half = net.scalar_f32("clip_half", 0.5);
    let loss = net.b.op("Mul", &[&sum, &half], &[]);
    let graph =
        net.finish(&[GraphOutput::f32(&loss, LOSS, dims![]), GraphOutput::f32(&factor, "logit_scale_exp", dims![1])]);
    Ok(Objective { graph, feeds: Feeds::ImageText, ema: vec![], method: "clip" })
}
