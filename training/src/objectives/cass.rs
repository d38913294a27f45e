//! CASS: a CNN and a ViT see the same augmented image; each has a projection head to
//! a shared width, and the loss is the batch mean of 2 − 2·cos(z_cnn, z_vit). Both
//! networks are updated by gradient (neither is a frozen teacher).

use memeguard_onnx::dims;
use serde::{Deserialize, Serialize};

use super::{EMBEDDING_SPREAD, Feeds, LOSS, Objective, embedding_spread, loss_error};
use crate::graph_spec::Mode;
use crate::losses;
use crate::models::ModelError;
use crate::models::encoders::ImageEncoderConfig;
use crate::models::heads::projection_head;
use crate::models::input::image_input;
use crate::models::net::{GraphOutput, Net};

/// CASS's settings: the two image encoders must take the same image size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CassConfig {
    pub cnn: ImageEncoderConfig,
    pub vit: ImageEncoderConfig,
    pub projection_dim: usize,
    pub dropout: f32,
}

/// Builds CASS's training graph. Parameters: `cnn.*`, `vit.*`, `cnn_projection.*`,
/// `vit_projection.*`.
pub fn build(cfg: &CassConfig, seed: u64) -> Result<Objective, ModelError> {
    cfg.cnn.validate()?;
    cfg.vit.validate()?;
    if cfg.cnn.image_size() != cfg.vit.image_size() {
        return Err(ModelError::Config(format!(
            "CASS feeds one image to both encoders, but the CNN takes {} px and the ViT {} px",
            cfg.cnn.image_size(),
            cfg.vit.image_size()
        )));
    }
    let mut net = Net::new("cass", Mode::Train, seed);
    let pixels = image_input(&mut net, cfg.cnn.image_size());
    let a = cfg.cnn.build(&mut net, "cnn", &pixels);
    let b = cfg.vit.build(&mut net, "vit", &pixels);
    let za = projection_head(&mut net, "cnn_projection", &a, cfg.cnn.feature_dim(), cfg.projection_dim, cfg.dropout);
    let zb = projection_head(&mut net, "vit_projection", &b, cfg.vit.feature_dim(), cfg.projection_dim, cfg.dropout);
    let loss = losses::cosine_loss(&mut net.b, &za, &zb, losses::DEFAULT_COSINE_EPS).map_err(loss_error)?;
    // Collapse watch: the smaller spread of the two branches' embeddings.
    let spread_a = embedding_spread(&mut net, &za, cfg.projection_dim);
    let spread_b = embedding_spread(&mut net, &zb, cfg.projection_dim);
    let spread = net.b.op("Min", &[&spread_a, &spread_b], &[]);
    let graph =
        net.finish(&[GraphOutput::f32(&loss, LOSS, dims![]), GraphOutput::f32(&spread, EMBEDDING_SPREAD, dims![])]);
    Ok(Objective { graph, feeds: Feeds::Image, ema: vec![], method: "cass" })
}
