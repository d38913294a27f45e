//! Scoring: the model package being served, a bounded queue with dynamic batching, and
//! the threads that run ONNX Runtime. HTTP knows nothing of this beyond [`Scorer`].
//!
//! Flow of one request: admission (a permit per pair from a fixed pool: none left →
//! [`ScorerError::QueueFull`], answered 429) → the current model's handle is taken (none →
//! 503) → the package's preprocessing runs on the blocking pool → the pairs join the
//! model's queue → a model thread batches and runs them → scores come back. The handle
//! taken at the start keeps that model alive, so a reload never fails a request in flight.

pub mod model;
pub mod registry;
mod worker;

use std::sync::Arc;

use memeguard_package::DecodedImage;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use self::model::{LoadError, LoadedModel};
pub use self::registry::{ModelRegistry, RegistryConfig, ReloadError, ReloadOutcome};
use crate::metrics::Metrics;
pub use memeguard_package::{ItemScore, PackageSession};

/// Why pairs were not scored.
#[derive(Debug, thiserror::Error)]
pub enum ScorerError {
    #[error("the scoring queue is full")]
    QueueFull,
    #[error("no valid model is loaded: {0}")]
    NoModel(String),
    #[error("{0} pairs in one request; the queue holds at most {1}")]
    TooManyPairs(usize, usize),
    #[error("scoring failed: {0}")]
    Model(String),
}

/// One image+text pair to score. `image: None` scores the text with a blank grey image.
#[derive(Debug)]
pub struct ScoreInput {
    pub image: Option<DecodedImage>,
    pub text: String,
}

/// A pair's `image_embedding` and `text_embedding` rows (`None` where the package has none).
pub type PairEmbeddings = (Option<Vec<f32>>, Option<Vec<f32>>);

/// Scores of one request's pairs, all from one model.
#[derive(Debug, Clone)]
pub struct Scores {
    /// `name@version` of the model that scored them.
    pub model: String,
    pub threshold: f32,
    pub placeholder: bool,
    pub scores: Vec<f32>,
    /// The package's embedding outputs per pair (`None` where it has none).
    pub embeddings: Vec<PairEmbeddings>,
}

/// The scoring front door: admission control over the model registry.
#[derive(Debug, Clone)]
pub struct Scorer {
    registry: Arc<ModelRegistry>,
    admission: Arc<Semaphore>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl Scorer {
    /// A scorer admitting at most `capacity` pairs at once (queued or running).
    pub fn new(registry: Arc<ModelRegistry>, capacity: usize, metrics: Arc<Metrics>) -> Self {
        Scorer { registry, admission: Arc::new(Semaphore::new(capacity)), capacity, metrics }
    }

    pub fn registry(&self) -> &Arc<ModelRegistry> {
        &self.registry
    }

    /// Pairs admitted and not yet scored.
    pub fn queue_depth(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    pub fn queue_capacity(&self) -> usize {
        self.capacity
    }

    /// Admits `pairs` pairs now or refuses (never waits); they count in the queue until
    /// the permit is dropped. [`Scorer::score`] does this itself.
    pub fn admit(&self, pairs: usize) -> Result<OwnedSemaphorePermit, ScorerError> {
        if pairs > self.capacity {
            return Err(ScorerError::TooManyPairs(pairs, self.capacity));
        }
        let permits = u32::try_from(pairs).map_err(|_| ScorerError::TooManyPairs(pairs, self.capacity))?;
        self.admission.clone().try_acquire_many_owned(permits).map_err(|_| {
            self.metrics.record_queue_rejection();
            ScorerError::QueueFull
        })
    }

    /// Scores `inputs` with the current model, in order.
    pub async fn score(&self, inputs: Vec<ScoreInput>) -> Result<Scores, ScorerError> {
        let admitted = self.admit(inputs.len())?;
        // The reason (paths, checksums) is for operators: /readyz and the log have it.
        let model =
            self.registry.current().ok_or_else(|| ScorerError::NoModel("see /readyz or the server log".into()))?;

        let preparing = model.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            inputs.iter().map(|input| preparing.prepare(input.image.as_ref(), &input.text)).collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ScorerError::Model(format!("preprocessing failed: {e}")))?;

        let items = model
            .submit(prepared, admitted)
            .await
            // Only a closed model drops a job unanswered (shutdown): try again elsewhere.
            .map_err(|_| ScorerError::NoModel("the model was unloaded; retry".into()))?
            .map_err(ScorerError::Model)?;
        Ok(Scores {
            model: model.id().to_string(),
            threshold: model.threshold(),
            placeholder: model.is_placeholder(),
            scores: items.iter().map(|i| i.probability).collect(),
            embeddings: items.into_iter().map(|i| (i.image_embedding, i.text_embedding)).collect(),
        })
    }
}
