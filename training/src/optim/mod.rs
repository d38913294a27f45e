//! Optimizers as graph nodes (SGD, AdamW, clipping, accumulation) and schedules as pure functions.
//!
//! [`build_step_graph`] appends the update to a differentiated forward graph and returns a
//! [`StepGraph`]: the ONNX model plus which inputs are state, scalars or data. The runtime
//! (`crate::runtime`) runs it. [`build_ema_graph`] makes the teacher-update graph.

mod clip;
pub mod config;
pub mod ema;
pub mod multi_tensor;
pub mod schedule;
pub mod state_graph;
pub mod step_graph;
mod update;

pub use clip::GRAD_NORM;
pub use config::{OptimizerConfig, OptimizerKind};
pub use ema::{EmaPair, build_ema_graph};
pub use multi_tensor::UpdateLayout;
pub use state_graph::{ScalarInput, StateGraph, StateIo};
pub use step_graph::{
    NEXT_SUFFIX, StateRole, StateSlot, StepGraph, TrainingGraph, build_step_graph, build_step_graph_with,
    differentiate_step, differentiate_step_with, ops_used,
};

/// Errors building step or EMA graphs.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    #[error("parameter or buffer `{name}` is not an initializer of the graph")]
    MissingInitializer { name: String },
    #[error("initializer `{name}` cannot be read: {message}")]
    BadInitializer { name: String, message: String },
    #[error("trainable parameter `{param}` has no gradient (is it used by the loss?)")]
    MissingGradient { param: String },
    #[error("the {what} is `{name}`, which no node or input of the graph defines")]
    MissingValue { what: String, name: String },
    #[error("trainable parameter `{name}` is {dtype}; optimizers update float32 parameters only")]
    UnsupportedType { name: String, dtype: String },
    #[error("the step graph needs the name `{name}`, which the graph already uses")]
    NameClash { name: String },
    #[error(transparent)]
    Autodiff(#[from] crate::autodiff::AutodiffError),
    #[error("invalid optimizer setup: {0}")]
    InvalidConfig(String),
    #[error("the generated graph is invalid (a bug in the optimizer builder): {0}")]
    InvalidGraph(String),
}
