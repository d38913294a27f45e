//! Which package is served, and swapping it without downtime. A reload finds the
//! package to serve in the models directory, loads and warms it up next to the current
//! one, then swaps the handle: new requests go to the new model, requests in flight
//! finish on the old one (they hold its handle), and the old one unloads when the last
//! of them is done. A package that fails any check is refused; the current one stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use memeguard_package::placeholder::{PLACEHOLDER_NAME, PLACEHOLDER_VERSION};
use memeguard_package::{Manifest, ModelPackage, SessionOptions, write_placeholder_package};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::model::{LoadError, LoadedModel};
use crate::config::BatchConfig;
use crate::metrics::Metrics;

/// A package directory found in the models directory, by its manifest alone.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub dir: PathBuf,
    pub id: String,
    pub name: String,
    pub placeholder: bool,
    pub created_at: OffsetDateTime,
}

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no model package in {}{}", .dir.display(), .wanted.as_ref().map(|w| format!(" matches `{w}`")).unwrap_or_default())]
    NoPackage { dir: PathBuf, wanted: Option<String> },
    #[error(
        "the models directory {} does not exist; create it with a model package in it, or pass \
         --allow-placeholder to start with the untrained placeholder",
        .dir.display()
    )]
    MissingModelsDir { dir: PathBuf },
    #[error("cannot read the models directory {}: {source}", .dir.display())]
    ModelsDir { dir: PathBuf, source: std::io::Error },
    #[error("package {id} refused: {source}")]
    Refused { id: String, source: LoadError },
    #[error("writing the placeholder package failed: {0}")]
    Placeholder(memeguard_package::PackageError),
    #[error("the loading thread failed: {0}")]
    Join(String),
}

/// The result of a successful reload.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadOutcome {
    /// The model now served.
    pub model: String,
    /// The model served before, if any.
    pub previous: Option<String>,
    /// False when the chosen package was already being served.
    pub changed: bool,
    pub placeholder: bool,
    /// Newer packages that were refused on the way to this one.
    pub skipped: Vec<BrokenPackage>,
}

/// A package that failed to load, and why.
#[derive(Debug, Clone, Serialize)]
pub struct BrokenPackage {
    pub id: String,
    pub reason: String,
}

/// Where packages come from and how they are run.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub models_dir: PathBuf,
    /// `name@version` or `name` to serve instead of the newest package.
    pub pinned: Option<String>,
    pub session: SessionOptions,
    pub batching: BatchConfig,
    /// Create a missing models directory with the placeholder in it (else an error).
    pub allow_placeholder: bool,
}

/// What a reload's search found.
enum Found {
    Loaded(Box<LoadedModel>),
    /// The best package that loads is the one already served.
    Current,
    /// Every package tried was refused.
    Nothing,
}

/// Holds the served model and swaps it.
#[derive(Debug)]
pub struct ModelRegistry {
    config: RegistryConfig,
    current: RwLock<Option<Arc<LoadedModel>>>,
    /// Why no model is served (the last refusal), for 503 answers and `/readyz`.
    last_error: RwLock<Option<String>>,
    /// Packages refused by the last reload (newer than the one served), for `/readyz`.
    broken: RwLock<Vec<BrokenPackage>>,
    /// One reload at a time: two concurrent reloads would load the same package twice.
    reloading: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

impl ModelRegistry {
    pub fn new(config: RegistryConfig, metrics: Arc<Metrics>) -> Self {
        ModelRegistry {
            config,
            current: RwLock::new(None),
            last_error: RwLock::new(Some("no model loaded yet".into())),
            broken: RwLock::new(Vec::new()),
            reloading: tokio::sync::Mutex::new(()),
            metrics,
        }
    }

    /// The model serving new requests.
    pub fn current(&self) -> Option<Arc<LoadedModel>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Why no model is served, when none is.
    pub fn unavailable_reason(&self) -> String {
        self.last_error.read().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_else(|| "no model loaded".into())
    }

    /// Packages the last reload refused (newer than the served one, or all when none is).
    pub fn broken_packages(&self) -> Vec<BrokenPackage> {
        self.broken.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn models_dir(&self) -> &Path {
        &self.config.models_dir
    }

    /// The configured pin when it is a package directory rather than a name.
    fn pinned_dir(&self) -> Option<PathBuf> {
        self.config
            .pinned
            .as_deref()
            .map(PathBuf::from)
            .filter(|p| p.join(memeguard_package::manifest::MANIFEST_FILE).is_file())
    }

    /// Writes the untrained placeholder into the models directory when it holds no
    /// package at all, and says loudly that scores will mean nothing. Returns whether it wrote one.
    pub async fn ensure_some_package(&self) -> Result<bool, ReloadError> {
        if self.config.pinned.is_some() {
            // The operator chose a package; a missing one is an error to report, not to paper over.
            return Ok(false);
        }
        let dir = self.config.models_dir.clone();
        let allow_placeholder = self.config.allow_placeholder;
        tokio::task::spawn_blocking(move || {
            // A mistyped path must not silently serve an untrained model.
            if !dir.exists() && !allow_placeholder {
                return Err(ReloadError::MissingModelsDir { dir });
            }
            if !find_candidates(&dir)?.is_empty() {
                return Ok(false);
            }
            let target = dir.join(PLACEHOLDER_NAME).join(PLACEHOLDER_VERSION);
            write_placeholder_package(&target).map_err(ReloadError::Placeholder)?;
            tracing::warn!(
                dir = %target.display(),
                "NO MODEL PACKAGE FOUND: wrote the UNTRAINED PLACEHOLDER model. Its scores are meaningless; \
                 train and export a real package (memeguard-train export) into the models directory, then reload."
            );
            Ok(true)
        })
        .await
        .map_err(|e| ReloadError::Join(e.to_string()))?
    }

    /// Chooses the package to serve (`wanted`, else the configured pin, else the newest
    /// non-placeholder, else the newest placeholder), loads and warms it up, and swaps it
    /// in. The current model keeps serving if anything fails. When no model is served
    /// yet (at start), a package that fails is skipped for the next best one, so a broken
    /// newest version does not take the service down while an older one is valid; the
    /// skipped ones are logged and listed in `/readyz`.
    pub async fn reload(&self, wanted: Option<&str>) -> Result<ReloadOutcome, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let result = self.reload_locked(wanted).await;
        self.metrics.record_reload(result.is_ok());
        match &result {
            Ok(outcome) if outcome.changed => {
                tracing::info!(model = %outcome.model, previous = ?outcome.previous, "model swapped in");
                if outcome.placeholder {
                    tracing::warn!(model = %outcome.model, "serving the UNTRAINED PLACEHOLDER model: its scores are meaningless");
                }
            }
            Ok(_) => {}
            Err(e) if self.current().is_none() => {
                tracing::error!(error = %e, "no valid model package: none is served");
                let mut reason = e.to_string();
                let others = self.broken_packages();
                if others.len() > 1 {
                    let ids: Vec<&str> = others.iter().map(|b| b.id.as_str()).collect();
                    reason.push_str(&format!(" (refused: {})", ids.join(", ")));
                }
                *self.last_error.write().unwrap_or_else(|p| p.into_inner()) = Some(reason);
            }
            Err(e) => tracing::error!(error = %e, "model reload refused; the current model keeps serving"),
        }
        result
    }

    async fn reload_locked(&self, wanted: Option<&str>) -> Result<ReloadOutcome, ReloadError> {
        // The configured pin may be a package directory (`--model /opt/models/x/1`); a
        // request names packages of the models directory only (no paths over HTTP).
        let (dir, wanted) = match (wanted, self.pinned_dir()) {
            (Some(w), _) => (self.config.models_dir.clone(), Some(w.to_string())),
            (None, Some(pinned_dir)) => (pinned_dir, None),
            (None, None) => (self.config.models_dir.clone(), self.config.pinned.clone()),
        };
        let previous = self.current();
        let (session, batching, metrics) = (self.config.session.clone(), self.config.batching, self.metrics.clone());
        let current_id = previous.as_ref().map(|m| m.id().to_string());

        let (found, refused) = tokio::task::spawn_blocking(move || {
            let candidates = find_candidates(&dir)?;
            let ranked = rank(&candidates, wanted.as_deref());
            if ranked.is_empty() {
                return Err(ReloadError::NoPackage { dir: dir.clone(), wanted: wanted.clone() });
            }
            // With a model served, only the first choice is tried (a refusal is reported
            // and the current one stays); without one, the next best are tried in turn.
            let fall_back = current_id.is_none();
            let mut refused: Vec<(String, LoadError)> = Vec::new();
            for chosen in ranked {
                if current_id.as_deref() == Some(chosen.id.as_str()) {
                    return Ok((Found::Current, refused));
                }
                let loaded = ModelPackage::open(&chosen.dir)
                    .map_err(LoadError::from)
                    .and_then(|package| LoadedModel::load(package, &session, batching, metrics.clone()));
                match loaded {
                    Ok(model) => return Ok((Found::Loaded(Box::new(model)), refused)),
                    Err(source) => {
                        tracing::warn!(package = %chosen.id, error = %source, "model package refused");
                        refused.push((chosen.id.clone(), source));
                        if !fall_back {
                            break;
                        }
                    }
                }
            }
            Ok((Found::Nothing, refused))
        })
        .await
        .map_err(|e| ReloadError::Join(e.to_string()))??;
        let skipped: Vec<BrokenPackage> =
            refused.iter().map(|(id, e)| BrokenPackage { id: id.clone(), reason: e.to_string() }).collect();
        *self.broken.write().unwrap_or_else(|p| p.into_inner()) = skipped.clone();
        let loaded = match found {
            Found::Loaded(model) => Some(*model),
            Found::Current => None,
            Found::Nothing => {
                // Report the first choice's reason (all are in `broken_packages`).
                let (id, source) = refused.into_iter().next().expect("a refusal for each candidate tried");
                return Err(ReloadError::Refused { id, source });
            }
        };

        let previous_id = previous.as_ref().map(|m| m.id().to_string());
        let Some(model) = loaded else {
            let current = previous.expect("unchanged implies a current model");
            return Ok(ReloadOutcome {
                model: current.id().to_string(),
                previous: previous_id,
                changed: false,
                placeholder: current.is_placeholder(),
                skipped,
            });
        };
        let outcome = ReloadOutcome {
            model: model.id().to_string(),
            previous: previous_id,
            changed: true,
            placeholder: model.is_placeholder(),
            skipped,
        };
        let old = self.current.write().unwrap_or_else(|p| p.into_inner()).replace(Arc::new(model));
        *self.last_error.write().unwrap_or_else(|p| p.into_inner()) = None;
        // Requests in flight still hold the old model and finish on it; it unloads when
        // the last of them lets go.
        drop(old);
        Ok(outcome)
    }

    /// Stops serving: takes the model out, closes its queue and waits for its threads to
    /// answer what is queued. Call once the HTTP server has finished its requests.
    pub async fn shutdown(&self) {
        let model = self.current.write().unwrap_or_else(|p| p.into_inner()).take();
        *self.last_error.write().unwrap_or_else(|p| p.into_inner()) = Some("the server is shutting down".into());
        if let Some(model) = model {
            let _ = tokio::task::spawn_blocking(move || model.close()).await;
        }
    }
}

/// Package directories under `dir` (itself, `<name>/`, or `<name>/<version>/`), judged
/// by their manifests; directories whose manifest does not parse are logged and skipped.
pub fn find_candidates(dir: &Path) -> Result<Vec<Candidate>, ReloadError> {
    let mut candidates = Vec::new();
    if !dir.exists() {
        return Ok(candidates);
    }
    let io_err = |source| ReloadError::ModelsDir { dir: dir.to_path_buf(), source };
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((path, depth)) = stack.pop() {
        let manifest_path = path.join(memeguard_package::manifest::MANIFEST_FILE);
        if manifest_path.is_file() {
            match std::fs::read_to_string(&manifest_path)
                .map_err(|e| e.to_string())
                .and_then(|t| Manifest::parse(&t).map_err(|e| e.to_string()))
            {
                Ok(m) => candidates.push(Candidate {
                    id: m.id(),
                    name: m.name.clone(),
                    placeholder: m.placeholder,
                    created_at: OffsetDateTime::parse(&m.created_at, &Rfc3339).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    dir: path.clone(),
                }),
                Err(e) => {
                    tracing::warn!(path = %manifest_path.display(), error = %e, "skipping a package whose manifest is unreadable")
                }
            }
            continue;
        }
        if depth == 2 {
            continue;
        }
        for entry in std::fs::read_dir(&path).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type().map_err(io_err)?.is_dir() {
                stack.push((entry.path(), depth + 1));
            }
        }
    }
    Ok(candidates)
}

/// The package to serve: the first of [`rank`].
pub fn choose<'a>(candidates: &'a [Candidate], wanted: Option<&str>) -> Option<&'a Candidate> {
    rank(candidates, wanted).into_iter().next()
}

/// The packages matching `wanted` (`name@version` or `name`), best first: real models
/// before placeholders, newest first, ties by id.
pub fn rank<'a>(candidates: &'a [Candidate], wanted: Option<&str>) -> Vec<&'a Candidate> {
    let mut ranked: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| match wanted {
            None => true,
            Some(w) if w.contains('@') => c.id == w,
            Some(w) => c.name == w,
        })
        .collect();
    ranked.sort_by(|a, b| (!b.placeholder, b.created_at, &b.id).cmp(&(!a.placeholder, a.created_at, &a.id)));
    ranked
}
