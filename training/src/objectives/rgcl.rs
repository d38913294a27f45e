//! RGCL finetuning (Mei et al., ACL 2024): the classifier head on frozen encoders'
//! features, trained with binary cross-entropy plus the retrieval-guided contrastive
//! loss ([`crate::losses::retrieval_contrastive`]) on the head's embedding — the values
//! its last layer reads. Each batch holds the anchors, their retrieved pseudo-gold
//! positives and their K retrieved hard negatives (`pipeline::retrieval` retrieves them
//! from the training set's embeddings, refreshed every epoch); the cross-entropy covers
//! every row (all are labelled training memes).

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{DataType, dims};
use serde::{Deserialize, Serialize};

use super::classify::LABELS;
use super::{Feeds, LOSS, Objective, loss_error};
use crate::graph_spec::Mode;
use crate::losses;
use crate::models::ModelError;
use crate::models::classifier::{ClassifierConfig, HEAD_PREFIX, build_head_classifier};
use crate::models::net::Weights;

/// The RGCL part of a recipe (`[rgcl]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RgclConfig {
    /// Hard negatives retrieved per anchor.
    pub hard_negatives: usize,
    /// Pseudo-gold positives retrieved per anchor (the loss uses one, as the paper does).
    #[serde(default = "one")]
    pub positives: usize,
    /// Softmax temperature of the cosine similarities.
    pub temperature: f32,
    /// loss = BCE + weight · RGCL.
    pub weight: f32,
}

fn one() -> usize {
    1
}

impl Default for RgclConfig {
    fn default() -> Self {
        RgclConfig { hard_negatives: 1, positives: 1, temperature: 1.0, weight: 1.0 }
    }
}

impl RgclConfig {
    /// Blocks of N rows in a batch: anchors, positives, hard negatives.
    pub fn groups(&self) -> usize {
        2 + self.hard_negatives
    }
}

/// The value the head's output layer reads (`head.out.weight`'s MatMul), and its width:
/// the head's embedding.
pub fn head_embedding(model: &ModelProto) -> Result<(String, usize), ModelError> {
    let weight = format!("{HEAD_PREFIX}.out.weight");
    let graph = model.graph.as_ref().ok_or_else(|| ModelError::Config("the head graph is empty".into()))?;
    let width = graph
        .initializer
        .iter()
        .find(|t| t.name.as_deref() == Some(weight.as_str()))
        .and_then(|t| t.dims.first().copied())
        .ok_or_else(|| ModelError::Config(format!("the head has no `{weight}`")))?;
    let node = graph
        .node
        .iter()
        .find(|n| n.op_type.as_deref() == Some("MatMul") && n.input.get(1) == Some(&weight))
        .ok_or_else(|| ModelError::Config(format!("no MatMul reads `{weight}`")))?;
    Ok((node.input[0].clone(), width as usize))
}

/// The RGCL training graph of the head (inputs as [`super::classify::build_head`]'s, with
/// batches of `groups · N` rows laid out as the loss expects).
pub fn build(cfg: &ClassifierConfig, seed: u64, rgcl: &RgclConfig) -> Result<Objective, ModelError> {
    if rgcl.hard_negatives == 0 || rgcl.temperature <= 0.0 {
        return Err(ModelError::Config("rgcl: hard_negatives must be at least 1 and temperature positive".into()));
    }
    if rgcl.positives != 1 {
        return Err(ModelError::Config("rgcl.positives: one pseudo-gold positive per anchor is implemented".into()));
    }
    let mut graph = build_head_classifier(cfg, Mode::Train, Weights::Random { seed })?;
    let (embedding, width) = head_embedding(&graph.model)?;
    let mut b = memeguard_onnx::GraphBuilder::from_model(&graph.model);
    let labels = b.input(LABELS, DataType::Float, &dims!["batch"]);
    let bce = losses::bce_with_logits(&mut b, "logits", &labels, None).map_err(loss_error)?;
    let contrastive =
        losses::retrieval_contrastive(&mut b, &embedding, &labels, rgcl.groups(), width, rgcl.temperature)
            .map_err(loss_error)?;
    let weight = b.constant("rgcl_weight", memeguard_onnx::Tensor::scalar_f32(rgcl.weight));
    let contrastive = b.op("Mul", &[&contrastive, &weight], &[]);
    let loss = b.op("Add", &[&bce, &contrastive], &[]);
    b.named_output(&loss, LOSS, DataType::Float, &dims![]);
    graph.model = b.build();
    Ok(Objective { graph, feeds: Feeds::Labelled, ema: vec![], method: "finetune" })
}
