//! `refresh`: moderators' reviews + the original training data → finetune from the
//! current package → compare old and new on the same dev split → write a new package
//! version only if it is not worse.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memeguard_onnx::Tensor;
use memeguard_package::ModelPackage;
use memeguard_package::onnxruntime::SessionOptions;
use serde::Serialize;

use super::export::{ExportInfo, export_package, time_version};
use super::finetune::{FinetuneOptions, finetune};
use super::reviews::{ReviewSummary, as_memes, read_reviews};
use super::score::{SplitMetrics, score_package_memes};
use super::{Dataset, PipelineError};
use crate::recipe::Recipe;
use crate::run::{RunDir, RunOptions};

/// What `refresh` needs.
#[derive(Debug, Clone)]
pub struct RefreshOptions {
    /// The server's SQLite database (read-only).
    pub database: PathBuf,
    /// The package in service now.
    pub package: PathBuf,
    /// The original data set (its train split is reused, its dev split decides).
    pub data: PathBuf,
    /// Where new versions go: `<models>/<name>/<version>`.
    pub models_dir: PathBuf,
    /// Work folder (run directory of the finetune, review images).
    pub work_dir: PathBuf,
    /// Epochs of the refresh finetune (default: the recipe's).
    pub epochs: Option<u64>,
    /// How often each reviewed meme is repeated in the training split.
    pub review_weight: usize,
    pub run: RunOptions,
    pub workers: usize,
}

/// The comparison `refresh` prints.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshOutcome {
    pub reviews: ReviewSummary,
    pub used_reviews: usize,
    pub old: String,
    pub old_dev: SplitMetrics,
    pub new_dev: SplitMetrics,
    /// Reviewed memes whose verdict matches the review, old and new model.
    pub old_follows_reviews: usize,
    pub new_follows_reviews: usize,
    /// The new package, when written.
    pub written: Option<PathBuf>,
    pub reason: String,
}

/// Runs a refresh.
pub fn refresh(opts: &RefreshOptions) -> Result<RefreshOutcome, PipelineError> {
    let old = ModelPackage::open(&opts.package)?;
    let recipe_text = old.manifest.data.get("recipe").and_then(|r| r.as_str()).ok_or_else(|| {
        PipelineError::Invalid(format!(
            "{} carries no training recipe in its manifest (only packages exported by memeguard-train can be refreshed)",
            opts.package.display()
        ))
    })?;
    let mut recipe: Recipe =
        toml::from_str(recipe_text).map_err(|e| PipelineError::Invalid(format!("the package's recipe: {e}")))?;
    if let Some(e) = opts.epochs {
        recipe.train.epochs = e;
    }
    let (reviews, summary) = read_reviews(&opts.database).map_err(PipelineError::Invalid)?;
    if reviews.is_empty() {
        return Err(PipelineError::Invalid(format!(
            "{} has no reviewed decisions with stored image and text ({} reviewed, {} without content): nothing to learn from",
            opts.database.display(),
            summary.reviewed,
            summary.without_content
        )));
    }
    let review_memes =
        as_memes(&reviews, &opts.work_dir.join("reviews"), &opts.database).map_err(PipelineError::Invalid)?;
    let data = Dataset::load(&opts.data, Some(old.tokenizer.clone()), recipe.model.vocab_size)?;

    // Start from the package's trained values (parameters and running statistics).
    let old_model = old.model().map_err(|e| PipelineError::Invalid(e.to_string()))?;
    let init: BTreeMap<String, Tensor> = old_model
        .graph
        .iter()
        .flat_map(|g| g.initializer.iter())
        .filter_map(|t| Some((t.name.clone()?, Tensor::from_proto(t).ok()?)))
        .collect();
    let mut run_dir = RunDir::create(&opts.work_dir.join("run"))?;
    run_dir.write_config(&recipe)?;
    let ft = FinetuneOptions {
        run: RunOptions { init, ..opts.run.clone() },
        workers: opts.workers,
        extra_train: review_memes.clone(),
        extra_repeat: opts.review_weight.max(1),
        ..Default::default()
    };
    let done = finetune(&recipe, &data, Some(&mut run_dir), &ft)?;

    // Old and new on the same dev split, through the same scoring.
    let m = &old.manifest;
    let session = SessionOptions { device: opts.run.device, threads: opts.run.threads, ..Default::default() };
    let dev = data.dev()?;
    let old_scores = score_package_memes(&old_model, &dev, &old.tokenizer, &m.image, m.text.max_length, &session)?;
    let old_dev = old_scores.metrics(m.threshold);
    let new_dev = done.report.dev.clone();
    let follows = |model: &memeguard_onnx::proto::ModelProto, threshold: f32| -> Result<usize, PipelineError> {
        let s = score_package_memes(model, &review_memes, &old.tokenizer, &m.image, m.text.max_length, &session)?;
        Ok(s.probabilities.iter().zip(&s.labels).filter(|(p, l)| (**p >= threshold) == **l).count())
    };
    let old_follows = follows(&old_model, m.threshold)?;
    let new_follows = follows(&done.model, done.report.threshold)?;

    let old_auc = old_dev.auroc.unwrap_or(0.5);
    let new_auc = new_dev.auroc.unwrap_or(0.5);
    let (written, reason) = if new_auc + 1e-9 >= old_auc {
        let version = time_version();
        let dir = opts.models_dir.join(&m.name).join(&version);
        let info = ExportInfo {
            name: m.name.clone(),
            version: Some(version),
            pretraining: m.pretraining.clone(),
            seeds: None,
        };
        export_package(&dir, &recipe, &data, &done, &info)?;
        (Some(dir), format!("dev AUROC {new_auc:.4} is not worse than {old_auc:.4}: new version written"))
    } else {
        (
            None,
            format!(
                "kept {}: the refreshed model's dev AUROC {new_auc:.4} is below the current {old_auc:.4}",
                old.id()
            ),
        )
    };
    Ok(RefreshOutcome {
        reviews: summary,
        used_reviews: review_memes.len(),
        old: old.id(),
        old_dev,
        new_dev,
        old_follows_reviews: old_follows,
        new_follows_reviews: new_follows,
        written,
        reason,
    })
}

/// The comparison as text for people.
pub fn describe(o: &RefreshOutcome) -> String {
    let auc = |m: &SplitMetrics| m.auroc.map(|a| format!("{a:.4}")).unwrap_or_else(|| "n/a".into());
    format!(
        "reviews: {} reviewed decisions, {} usable ({} without stored content)\n\
         | model | dev AUROC | dev accuracy | verdicts matching the reviews |\n|---|---|---|---|\n\
         | current {} | {} | {:.4} | {}/{} |\n| refreshed | {} | {:.4} | {}/{} |\n{}{}",
        o.reviews.reviewed,
        o.used_reviews,
        o.reviews.without_content,
        o.old,
        auc(&o.old_dev),
        o.old_dev.accuracy,
        o.old_follows_reviews,
        o.used_reviews,
        auc(&o.new_dev),
        o.new_dev.accuracy,
        o.new_follows_reviews,
        o.used_reviews,
        o.reason,
        o.written.as_ref().map(|p| format!("\nnew package: {}", p.display())).unwrap_or_default()
    )
}

/// Default work folder for a refresh.
pub fn default_work_dir(models_dir: &Path) -> PathBuf {
    models_dir.join(".refresh").join(time_version())
}
