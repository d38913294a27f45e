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
mod share;

use crate::graph_spec::ModelGraph;
use crate::optim::EmaPair;

/// Name of the scalar loss output of every objective graph.
pub const LOSS: &str = "loss";

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
