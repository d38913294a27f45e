//! Finetuning a classifier: from scratch, from a pretraining checkpoint (parameters
//! matched by name after renames), frozen encoders or end to end; the dev AUROC after
//! every epoch picks the best epoch (and stops early after `patience` epochs without
//! improvement); the threshold is chosen on dev; test metrics are reported at it. An
//! interrupted run resumes from its run directory's checkpoint and early-stopping record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memeguard_onnx::Tensor;
use memeguard_onnx::proto::ModelProto;
use memeguard_package::onnxruntime::SessionOptions;
use memeguard_package::{ImageSpec, ResizeRule};
use serde::{Deserialize, Serialize};

use super::early_stopping::{EarlyStopping, EpochRecord};
use super::score::{Scores, SplitMetrics, score_package_memes};
use super::{Dataset, PipelineError};
use crate::data::augment::Views;
use crate::data::{Loader, LoaderConfig, Sampling, Split};
use crate::eval::{Threshold, choose_threshold};
use crate::graph_spec::Mode;
use crate::models::classifier::build_classifier;
use crate::models::net::Weights;
use crate::models::source::Trainable;
use crate::recipe::{Method, Recipe};
use crate::run::feed::LoaderSource;
use crate::run::{RunDir, RunError, RunOptions, StepLog, train};
use crate::runtime::{Checkpoint, export_inference};

/// The resize rule of packages with built-in encoders (the server letterboxes the same
/// way); an imported encoder's preprocessing is its own ([`ImageEncoder::image_spec`](crate::models::encoders::ImageEncoder::image_spec)).
pub const RESIZE: ResizeRule = ResizeRule::Letterbox;

/// Options of a finetune beyond the recipe.
#[derive(Debug, Clone)]
pub struct FinetuneOptions {
    pub run: RunOptions,
    /// A pretraining checkpoint to start from.
    pub init_from: Option<PathBuf>,
    /// Renames applied to the checkpoint's names (prefix `from` → `to`).
    pub renames: Vec<(String, String)>,
    /// Train only the head (encoders frozen).
    pub freeze_encoders: bool,
    pub threshold: Threshold,
    pub workers: usize,
    /// Memes added to the training split (e.g. reviewed decisions), each `extra_repeat` times.
    pub extra_train: Vec<crate::data::Meme>,
    pub extra_repeat: usize,
}

impl Default for FinetuneOptions {
    fn default() -> Self {
        FinetuneOptions {
            run: RunOptions::default(),
            init_from: None,
            renames: Vec::new(),
            freeze_encoders: false,
            threshold: Threshold::BestAccuracy,
            workers: 2,
            extra_train: Vec::new(),
            extra_repeat: 1,
        }
    }
}

/// What a finetune produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinetuneReport {
    pub best_epoch: u64,
    pub epochs_run: u64,
    pub dev: SplitMetrics,
    pub test: Option<SplitMetrics>,
    pub threshold: f32,
    /// Parameters initialised from the checkpoint.
    pub initialised: usize,
    /// Dev metrics after every epoch (also in the run's `metrics.csv`).
    #[serde(default)]
    pub epochs: Vec<EpochRecord>,
    #[serde(skip)]
    pub log: Vec<StepLog>,
    #[serde(skip)]
    pub dev_scores: Scores,
    #[serde(skip)]
    pub test_scores: Option<Scores>,
}

/// A finetuned inference model and its report.
pub struct Finetuned {
    pub model: ModelProto,
    pub report: FinetuneReport,
    /// How the model's images are prepared (size, resize rule, filter, mean/std): what
    /// its package's manifest records.
    pub image: ImageSpec,
}

/// Reads a checkpoint's tensors with `renames` applied to their names.
pub fn pretrained_values(path: &Path, renames: &[(String, String)]) -> Result<BTreeMap<String, Tensor>, PipelineError> {
    let checkpoint = Checkpoint::load(path)?;
    Ok(checkpoint
        .tensors
        .into_iter()
        .map(|(name, t)| {
            let renamed = renames
                .iter()
                .find(|(from, _)| name.starts_with(from.as_str()))
                .map(|(from, to)| format!("{to}{}", &name[from.len()..]))
                .unwrap_or(name);
            (renamed, t)
        })
        .collect())
}

/// Finetunes the recipe's classifier on `data`.
pub fn finetune(
    recipe: &Recipe,
    data: &Dataset,
    mut run_dir: Option<&mut RunDir>,
    opts: &FinetuneOptions,
) -> Result<Finetuned, PipelineError> {
    if recipe.method != Method::Finetune {
        return Err(PipelineError::Invalid(format!(
            "recipe `{}` is a {} recipe, not a finetune",
            recipe.name,
            recipe.method.name()
        )));
    }
    // --freeze-encoders: the encoders are built frozen (an imported one then needs no
    // gradient rules).
    let mut frozen;
    let recipe = if opts.freeze_encoders {
        frozen = recipe.clone();
        frozen.model.image_trainable = Trainable::Frozen;
        frozen.model.text_trainable = Trainable::Frozen;
        &frozen
    } else {
        recipe
    };
    let vocab = data.tokenizer.vocab_size();
    // One configuration for the training and the inference graph: imported encoders
    // are read once.
    let cfg = recipe.classifier(vocab)?;
    let mut objective = crate::objectives::classify::build(&cfg, recipe.train.seed)?;
    let m = &recipe.model;
    let freeze_image = !m.image_trainable.any();
    let freeze_text = !m.text_trainable.any();
    for p in objective.graph.params.iter_mut() {
        if (freeze_image && p.name.starts_with("image.")) || (freeze_text && p.name.starts_with("text.")) {
            p.trainable = false;
        }
    }
    let mut run_opts = opts.run.clone();
    if let Some(path) = &opts.init_from {
        let values = pretrained_values(path, &opts.renames)?;
        let wanted: Vec<&str> = objective
            .graph
            .params
            .iter()
            .map(|p| p.name.as_str())
            .chain(objective.graph.buffers.iter().map(|b| b.name.as_str()))
            .collect();
        run_opts.init = values.into_iter().filter(|(k, _)| wanted.contains(&k.as_str())).collect();
        if run_opts.init.is_empty() {
            return Err(PipelineError::Invalid(format!(
                "no parameter of {} matches this classifier's names (image.*, text.*); pass --rename FROM=TO, e.g. --rename cnn.image.=image.",
                path.display()
            )));
        }
    }

    let image = match &cfg.image {
        Some(encoder) => encoder.image_spec(),
        None => ImageSpec::new(recipe.image_size()? as u32, RESIZE),
    };
    let size = image.size;
    let max_len = recipe.model.max_length;
    let mut train_memes = data.split(Split::Train)?;
    for _ in 0..opts.extra_repeat.max(1) {
        train_memes.extend(opts.extra_train.iter().cloned());
    }
    let dev_memes = data.dev()?;
    let views = if recipe.data.augment { Views::finetune(size) } else { Views::package(&image) };
    let sampling = if recipe.data.class_balanced { Sampling::ClassBalanced } else { Sampling::Shuffle };
    let loader_cfg = LoaderConfig {
        batch_size: recipe.train.batch_size,
        workers: opts.workers.max(1),
        prefetch: opts.workers.max(1) * 2,
        sampling,
        seed: recipe.train.seed,
        max_text_len: max_len,
        ..Default::default()
    };
    let loader = Loader::new(train_memes, Some(&data.tokenizer), views, loader_cfg)?;
    let mut source = LoaderSource { loader, feeds: objective.feeds };

    let infer = build_classifier(&cfg, Mode::Infer, Weights::Hollow)?;
    // The training graph holds the imported encoders' weights now; the loaded files
    // need not stay in memory while it trains.
    drop(cfg);
    let session = SessionOptions { device: opts.run.device, threads: opts.run.threads, ..Default::default() };
    let patience = recipe.data.patience;
    // A resumed run continues the record its run directory holds, so the best epoch is
    // chosen over all epochs, those before the interruption included.
    let mut stopping = match (&opts.run.resume, run_dir.as_deref()) {
        (Some(_), Some(r)) => EarlyStopping::resume(patience, &r.path)?,
        (_, r) => EarlyStopping::new(patience, r.map(|r| r.path.as_path())),
    };
    let mut epochs_run = 0;
    let mut hook = |epoch: u64, trainer: &mut crate::runtime::Trainer| -> Result<bool, RunError> {
        epochs_run = epoch + 1;
        let values = trainer.model_values()?;
        let model = export_inference(&infer, &values)?;
        let scores = score_package_memes(&model, &dev_memes, &data.tokenizer, &image, max_len, &session)
            .map_err(|e| RunError::Invalid(e.to_string()))?;
        let at_half = scores.metrics(0.5);
        let auc = at_half.auroc.unwrap_or(0.5);
        tracing::info!(epoch = epoch + 1, dev_auroc = auc, "epoch done");
        stopping.record(epoch, auc, at_half.accuracy, values)
    };
    let trained = train(&objective, &mut source, &recipe.train, &run_opts, run_dir.as_deref_mut(), Some(&mut hook))?;
    let epochs = stopping.history().to_vec();
    let (_, best_epoch, values) =
        stopping.into_best().ok_or_else(|| PipelineError::Invalid("no epoch finished".into()))?;
    let model = export_inference(&infer, &values)?;
    let dev_scores = score_package_memes(&model, &dev_memes, &data.tokenizer, &image, max_len, &session)?;
    let threshold = choose_threshold(&dev_scores.probabilities, &dev_scores.labels, opts.threshold);
    let test_memes: Vec<_> = data.data.split(Split::TestSeen).iter().filter(|m| m.label.is_some()).cloned().collect();
    let test_scores = if test_memes.is_empty() {
        None
    } else {
        Some(score_package_memes(&model, &test_memes, &data.tokenizer, &image, max_len, &session)?)
    };
    let report = FinetuneReport {
        best_epoch: best_epoch + 1,
        epochs_run,
        dev: dev_scores.metrics(threshold),
        test: test_scores.as_ref().map(|s| s.metrics(threshold)),
        threshold,
        initialised: trained.initialised.len(),
        epochs,
        log: trained.log,
        dev_scores,
        test_scores,
    };
    if let Some(r) = run_dir {
        r.write_json("metrics.json", &report)?;
        r.write_json("data.json", &data.summary())?;
        let mut curves = vec![("dev", report.dev_scores.roc())];
        if let Some(t) = &report.test_scores {
            curves.push(("test", t.roc()));
        }
        let refs: Vec<(&str, &[crate::eval::RocPoint])> = curves.iter().map(|(n, c)| (*n, c.as_slice())).collect();
        crate::eval::plot::roc_plot(&r.path.join("roc.svg"), &format!("ROC — {}", recipe.name), &refs)
            .map_err(PipelineError::Invalid)?;
        memeguard_onnx::save_model(&model, &r.path.join("model.onnx"))
            .map_err(|e| PipelineError::Invalid(e.to_string()))?;
        std::fs::write(r.path.join("tokenizer.json"), data.tokenizer.to_json())
            .map_err(|e| PipelineError::Invalid(e.to_string()))?;
    }
    Ok(Finetuned { model, report, image })
}
