//! What every handler shares, and how the server starts its parts.

use std::sync::Arc;

use memeguard_package::ImageLimits;

use crate::config::ServeConfig;
use crate::db::{Db, DbError, DecisionWriter};
use crate::memory::poll::Poller;
use crate::memory::{MemoryMode, ReviewMemory};
use crate::metrics::{Gauges, Metrics};
use crate::ocr::Ocr;
use crate::pixel_budget::PixelBudget;
use crate::scoring::{ModelRegistry, RegistryConfig, ReloadError, Scorer};
use crate::web::throttle::SignInThrottle;

/// Shared state of the server (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Db,
    /// Records decisions with group commit (see [`DecisionWriter`]).
    pub decisions: DecisionWriter,
    pub scorer: Scorer,
    pub config: Arc<ServeConfig>,
    pub metrics: Arc<Metrics>,
    /// Reads the text of memes sent without text.
    pub ocr: Ocr,
    /// Failed sign-ins per account and address (see [`SignInThrottle`]).
    pub sign_in: Arc<SignInThrottle>,
    /// Decoded pixels admitted per request and in all (see [`PixelBudget`]).
    pub pixels: PixelBudget,
    /// Reviewed decisions by their signals (see [`ReviewMemory`]).
    pub memory: Arc<ReviewMemory>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the database {url}: {source}")]
    Database { url: String, source: DbError },
    #[error("preparing the models directory: {0}")]
    Models(#[from] ReloadError),
}

impl AppState {
    /// Opens and migrates the database, writes the placeholder package if the models
    /// directory has none, and loads the package to serve. A package that fails to load
    /// is logged and the server starts without a model (503 until a reload succeeds).
    pub async fn start(config: ServeConfig) -> Result<AppState, StartError> {
        let url = config.db.database_url.clone();
        let db = Db::connect(&url).await.map_err(|source| StartError::Database { url: url.clone(), source })?;
        db.migrate().await.map_err(|source| StartError::Database { url: url.clone(), source })?;
        let memory = Arc::new(ReviewMemory::new(config.memory.clone()));
        // Replicas sharing PostgreSQL pick up each other's reviews by polling (primed
        // before the load, so a review committed in between is not missed).
        let poll = matches!(db, Db::Postgres(_)) && config.memory.mode != MemoryMode::Off && config.memory.poll_ms > 0;
        let poller = match poll {
            true => {
                Some(Poller::primed(&db).await.map_err(|source| StartError::Database { url: url.clone(), source })?)
            }
            false => None,
        };
        let remembered = memory.load(&db).await.map_err(|source| StartError::Database { url, source })?;
        tracing::info!(reviewed = remembered, mode = ?config.memory.mode, "review memory loaded");
        if let Some(poller) = poller {
            poller.spawn(db.clone(), &memory, std::time::Duration::from_millis(config.memory.poll_ms));
        }

        let metrics = Arc::new(Metrics::default());
        let registry = Arc::new(ModelRegistry::new(
            RegistryConfig {
                models_dir: config.models_dir.clone(),
                pinned: config.model.clone(),
                session: config.session_options(),
                batching: config.batching(),
                allow_placeholder: config.allow_placeholder,
            },
            metrics.clone(),
        ));
        registry.ensure_some_package().await?;
        // Logged inside; the server still starts so that /readyz and reloads work.
        let _ = registry.reload(None).await;
        let scorer = Scorer::new(registry, config.queue_capacity as usize, metrics.clone());
        let decisions = DecisionWriter::start(db.clone());
        let ocr = Ocr::start(&config.ocr);
        let sign_in = Arc::new(SignInThrottle::default());
        let pixels = PixelBudget::new(config.max_request_pixels, config.max_pixels_in_flight);
        Ok(AppState { db, decisions, scorer, config: Arc::new(config), metrics, ocr, sign_in, pixels, memory })
    }

    pub fn image_limits(&self) -> ImageLimits {
        self.config.image_limits()
    }

    /// The gauges `/metrics` samples.
    pub fn gauges(&self) -> Gauges {
        let model = self.scorer.registry().current();
        Gauges {
            queue_depth: self.scorer.queue_depth(),
            queue_capacity: self.scorer.queue_capacity(),
            pixels_in_flight: self.pixels.in_flight(),
            model: model.as_ref().map(|m| m.id().to_string()),
            placeholder_model: model.is_some_and(|m| m.is_placeholder()),
        }
    }

    /// Stops scoring (waits for model threads) and closes the database. Call after the
    /// HTTP server has finished its requests.
    pub async fn shutdown(&self) {
        self.scorer.registry().shutdown().await;
        self.db.close().await;
    }
}
