//! The workflows `memeguard-train` runs, as library functions: pretraining, finetuning
//! (with dev-AUROC early stopping and seeds), evaluation and export of model packages.
//! The CLI only parses arguments and calls these.

pub mod dataset;
pub mod early_stopping;
pub mod export;
pub mod feature_cache;
pub mod finetune;
pub mod pretrain;
pub mod refresh;
pub mod retrieval;
pub mod reviews;
pub mod score;

pub use dataset::{Dataset, DatasetError};

/// Errors of a workflow, with what to do about them.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Data(#[from] DatasetError),
    #[error(transparent)]
    Recipe(#[from] crate::recipe::RecipeError),
    #[error(transparent)]
    Run(#[from] crate::run::RunError),
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    #[error(transparent)]
    Package(#[from] memeguard_package::PackageError),
    #[error("loader: {0}")]
    Loader(#[from] crate::data::LoaderError),
    #[error("scoring: {0}")]
    Score(String),
    #[error("{0}")]
    Invalid(String),
}
