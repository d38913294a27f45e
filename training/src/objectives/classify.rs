//! Supervised finetuning: a classifier (image-only, text-only or multimodal) trained
//! with binary cross-entropy on its logits (never on probabilities) against the float
//! input `labels` [N].

use memeguard_onnx::{dims, DataType};

use super::{loss_error, Feeds, Objective, LOSS};
use crate::graph_spec::Mode;
use crate::losses;
use crate::models::classifier::{build_classifier, ClassifierConfig};
use crate::models::net::Weights;
use crate::models::ModelError;

/// Name of the labels input (float32 [N], 1 = hateful).
pub const LABELS: &str = "labels";

/// Builds the finetuning graph: the classifier in `Train` mode plus the loss.
pub fn build(cfg: &ClassifierConfig, seed: u64) -> Result<Objective, ModelError> {
    let mut graph = build_classifier(cfg, Mode::Train, Weights::Random { seed })?;
    let mut b = memeguard_onnx::GraphBuilder::from_model(&graph.model);
    let labels = b.input(LABELS, DataType::Float, &dims!["batch"]);
    let loss = losses::bce_with_logits(&mut b, "logits", &labels, None).map_err(loss_error)?;
    b.named_output(&loss, LOSS, DataType::Float, &dims![]);
    graph.model = b.build();
    Ok(Objective { graph, feeds: Feeds::Labelled, ema: vec![], method: "finetune" })
}
