//! CASS-MM, the multimodal extension of CASS: two branches, each an image encoder (a
//! CNN in branch `cnn`, a ViT in branch `vit`) plus its own text encoder plus a fusion
//! layer, fed the same (image, text) pair; the loss is the batch mean of
//! 2 − 2·cos between the two branches' fused outputs. Every layer of both branches —
//! the fusion layers included, which the seed study never gave to its optimizer — is
//! a trainable parameter.

use memeguard_onnx::{Attr, dims};
use serde::{Deserialize, Serialize};

use super::{EMBEDDING_SPREAD, Feeds, LOSS, Objective, embedding_spread, loss_error};
use crate::graph_spec::Mode;
use crate::losses;
use crate::models::ModelError;
use crate::models::encoders::ImageEncoderConfig;
use crate::models::input::{image_input, text_inputs};
use crate::models::layers::{gelu, layer_norm, linear};
use crate::models::net::{GraphOutput, Net};
use crate::models::text::{TextConfig, text_encoder};

/// CASS-MM's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CassMmConfig {
    pub cnn: ImageEncoderConfig,
    pub vit: ImageEncoderConfig,
    pub text: TextConfig,
    /// Width of each branch's fused output.
    pub fusion_dim: usize,
}

/// A branch's fusion layer: concat(image, text) → Linear → GELU → Linear → LayerNorm.
/// Names `{name}.fc1`, `{name}.fc2`, `{name}.norm`.
pub fn fusion_layer(net: &mut Net, name: &str, image: (&str, usize), text: (&str, usize), out_dim: usize) -> String {
    let joint = net.b.op("Concat", &[image.0, text.0], &[("axis", Attr::Int(-1))]);
    let h = linear(net, &format!("{name}.fc1"), &joint, image.1 + text.1, out_dim, true);
    let h = gelu(net, &h);
    let h = linear(net, &format!("{name}.fc2"), &h, out_dim, out_dim, true);
    layer_norm(net, &format!("{name}.norm"), &h, out_dim, 1e-5)
}

/// Builds CASS-MM's training graph. Parameters: branch `cnn` = `cnn.image.*`,
/// `cnn.text.*`, `cnn.fusion.*`; branch `vit` = `vit.image.*`, `vit.text.*`,
/// `vit.fusion.*`. A finetune takes one branch's encoders by renaming `cnn.` → ``.
pub fn build(cfg: &CassMmConfig, seed: u64) -> Result<Objective, ModelError> {
    cfg.cnn.validate()?;
    cfg.vit.validate()?;
    if cfg.cnn.image_size() != cfg.vit.image_size() {
        return Err(ModelError::Config("CASS-MM feeds one image to both branches: use one image size".into()));
    }
    let mut net = Net::new("cass_mm", Mode::Train, seed);
    let pixels = image_input(&mut net, cfg.cnn.image_size());
    let (ids, mask) = text_inputs(&mut net);
    let mut fused = Vec::new();
    for (branch, image_cfg) in [("cnn", &cfg.cnn), ("vit", &cfg.vit)] {
        let image = image_cfg.build(&mut net, &format!("{branch}.image"), &pixels);
        let text = text_encoder(&mut net, &cfg.text, &format!("{branch}.text"), &ids, &mask);
        fused.push(fusion_layer(
            &mut net,
            &format!("{branch}.fusion"),
            (&image, image_cfg.feature_dim()),
            (&text, cfg.text.feature_dim()),
            cfg.fusion_dim,
        ));
    }
    let loss = losses::cosine_loss(&mut net.b, &fused[0], &fused[1], losses::DEFAULT_COSINE_EPS).map_err(loss_error)?;
    // Collapse watch: the smaller spread of the two branches' fused outputs.
    let spread_a = embedding_spread(&mut net, &fused[0], cfg.fusion_dim);
    let spread_b = embedding_spread(&mut net, &fused[1], cfg.fusion_dim);
    let spread = net.b.op("Min", &[&spread_a, &spread_b], &[]);
    let graph =
        net.finish(&[GraphOutput::f32(&loss, LOSS, dims![]), GraphOutput::f32(&spread, EMBEDDING_SPREAD, dims![])]);
    Ok(Objective { graph, feeds: Feeds::ImageText, ema: vec![], method: "cass-mm" })
}
