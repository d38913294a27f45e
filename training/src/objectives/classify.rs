//! Supervised finetuning: a classifier (image-only, text-only or multimodal) trained
//! with binary cross-entropy on its logits (never on probabilities) against the float
//! input `labels` [N].

use memeguard_onnx::{DataType, dims};

use super::{Feeds, LOSS, Objective, loss_error};
use crate::graph_spec::Mode;
use crate::losses;
use crate::models::ModelError;
use crate::models::classifier::{ClassifierConfig, build_classifier, build_head_classifier};
use crate::models::net::Weights;

/// Name of the labels input (float32 [N], 1 = hateful).
pub const LABELS: &str = "labels";

/// Builds the finetuning graph: the classifier in `Train` mode plus the loss.
pub fn build(cfg: &ClassifierConfig, seed: u64) -> Result<Objective, ModelError> {
    with_loss(build_classifier(cfg, Mode::Train, Weights::Random { seed })?)
}

/// The head-only finetuning graph of frozen encoders (the frozen-feature cache): the
/// head on feature inputs (`image_embedding`, `text_embedding` [N, D]) plus the loss;
/// its parameters start as [`build`]'s `head.*` do for the same seed.
pub fn build_head(cfg: &ClassifierConfig, seed: u64) -> Result<Objective, ModelError> {
    with_loss(build_head_classifier(cfg, Mode::Train, Weights::Random { seed })?)
}

fn with_loss(mut graph: crate::graph_spec::ModelGraph) -> Result<Objective, ModelError> {
    let mut b = memeguard_onnx::GraphBuilder::from_model(&graph.model);
    let labels = b.input(LABELS, DataType::Float, &dims!["batch"]);
    let loss = losses::bce_with_logits(&mut b, "logits", &labels, None).map_err(loss_error)?;
    b.named_output(&loss, LOSS, DataType::Float, &dims![]);
    graph.model = b.build();
    Ok(Objective { graph, feeds: Feeds::Labelled, ema: vec![], method: "finetune" })
}
