//! Running training-step graphs in ONNX Runtime: parameter store, devices, checkpoints, export.
//!
//! A [`Trainer`] owns one session per state graph (the step graph, and the teacher EMA graph
//! when attached) and a [`StateStore`] of parameters, optimizer state and buffers living on
//! the session's device. Each step binds state inputs to the store's values and next-state
//! outputs to its spare buffers (IO binding), so on CUDA nothing returns to the host except
//! the scalars asked for. Checkpoints are safetensors files; [`export_inference`] writes the
//! trained values into the inference build of the model.

pub mod checkpoint;
pub mod dropout;
pub mod export;
pub mod host;
pub mod kernels;
pub mod session;
pub mod store;
pub mod trainer;

pub use checkpoint::{Checkpoint, RngState};
pub use export::export_inference;
pub use kernels::CudaKernelTable;
pub use session::StateSession;
pub use store::StateStore;
pub use trainer::{GroupHyper, StepHyper, StepReport, Trainer, TrainerConfig};

/// Errors running step graphs, keeping their state, checkpointing and exporting.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// ONNX Runtime missing, or CUDA requested but unavailable (the message says what to do).
    #[error(transparent)]
    Setup(#[from] memeguard_package::RuntimeError),
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),
    #[error(transparent)]
    Optim(#[from] crate::optim::OptimError),
    #[error(transparent)]
    Value(#[from] memeguard_package::tensor_value::ValueError),
    #[error("no state value is called `{0}`")]
    UnknownState(String),
    #[error("`{name}` is {expected}, but the new value is {got}")]
    Mismatch { name: String, expected: String, got: String },
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: String, message: String },
    #[error("cannot export the inference model: {0}")]
    Export(String),
    #[error("{0}")]
    Invalid(String),
}
