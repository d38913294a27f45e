//! The training objectives as graphs: supervised classification and the
//! self-supervised methods CLIP, DINO, CASS and CASS-MM. Each builds one
//! [`crate::graph_spec::Mode::Train`] graph with a scalar `loss` output from the
//! models' layers and the losses, plus what the trainer must know beyond the graph
//! (teacher EMA pairs, values that are fed per step).
//!
//! Corrections to the seed study (see docs/training.md): gradients are computed fresh
//! every step (the step graph has no state that could keep old gradients), logits go
//! into cross-entropy un-softmaxed (the losses apply a stable log-softmax), every
//! layer — CASS-MM's fusion layers included — is a parameter of the step graph, and
//! AUROC is computed from probabilities over a whole split (`eval`).

pub mod cass;
pub mod cass_mm;
pub mod classify;
pub mod clip;
pub mod dino;
pub mod rgcl;

use crate::graph_spec::ModelGraph;
use crate::optim::EmaPair;

/// Name of the scalar loss output of every objective graph.
pub const LOSS: &str = "loss";

/// Name of the optional scalar output that watches for collapse (CASS, CASS-MM): how
/// spread out the L2-normalised embeddings are over the batch — the mean over dimensions
/// of their standard deviation, times √d — so embeddings spread evenly over every
/// direction give about 1 and identical embeddings give 0. A loss such as 2 − 2·cos has
/// the trivial minimum "every input maps to the same vector"; this number shows it.
pub const EMBEDDING_SPREAD: &str = "embedding_spread";

/// Below this spread (epoch mean) a run warns that its embeddings are collapsing.
pub const COLLAPSE_SPREAD: f32 = 0.1;

/// The [`EMBEDDING_SPREAD`] of embeddings `z` `[N, dim]` (not part of the loss).
pub fn embedding_spread(net: &mut crate::models::net::Net, z: &str, dim: usize) -> String {
    use memeguard_onnx::{Attr, Tensor};
    let unit = crate::models::layers::l2_normalize(net, z);
    let batch = net.const_i64s("spread_batch_axis", &[0]);
    let mean = net.b.op("ReduceMean", &[&unit, &batch], &[("keepdims", Attr::Int(1))]);
    let centred = net.b.op("Sub", &[&unit, &mean], &[]);
    let squared = net.b.op("Mul", &[&centred, &centred], &[]);
    let var = net.b.op("ReduceMean", &[&squared, &batch], &[("keepdims", Attr::Int(0))]);
    let std = net.b.op("Sqrt", &[&var], &[]);
    let spread = net.b.op("ReduceMean", &[&std, &batch], &[("keepdims", Attr::Int(0))]);
    let scale = net.b.constant("spread_scale", Tensor::scalar_f32((dim as f32).sqrt()));
    net.b.op("Mul", &[&spread, &scale], &[])
}

/// Which tensors a batch must feed the objective's graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feeds {
    /// `pixel_values` only (CASS).
    Image,
    /// `pixel_values`, `input_ids`, `attention_mask` (CLIP, CASS-MM).
    ImageText,
    /// `pixel_values`, `input_ids`, `attention_mask`, `labels` float [N] (finetuning).
    Labelled,
    /// DINO: `global_views` [2N,S,S,3], `local_views` [LN,s,s,3], `teacher_temperature` scalar.
    MultiCrop { local_crops: usize },
}

/// An objective's training graph and what the trainer needs besides it.
#[derive(Debug, Clone)]
pub struct Objective {
    /// Graph with a scalar output [`LOSS`].
    pub graph: ModelGraph,
    /// What each batch feeds.
    pub feeds: Feeds,
    /// Teacher ← student pairs updated by EMA after each step (DINO).
    pub ema: Vec<EmaPair>,
    /// The method's name for reports (`clip`, `dino`, ...).
    pub method: &'static str,
}

/// Loss-building errors surface as model configuration errors.
pub(crate) fn loss_error(e: crate::losses::LossError) -> crate::models::ModelError {
    crate::models::ModelError::Config(format!("building the loss: {e}"))
}
