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
use super::feature_cache::{self, CacheUse, FeatureSource, FeatureTable, score_features};
use super::retrieval::{Retrieval, RetrievalSource};
use super::score::{Scores, SplitMetrics, score_package_memes};
use super::{Dataset, PipelineError};
use crate::data::augment::Views;
use crate::data::{Loader, LoaderConfig, Sampling, Split};
use crate::eval::{Threshold, choose_threshold};
use crate::graph_spec::Mode;
use crate::graph_spec::ModelGraph;
use crate::models::classifier::{build_classifier, build_head_classifier};
use crate::models::net::Weights;
use crate::models::source::Trainable;
use crate::recipe::{Method, Recipe};
use crate::run::feed::LoaderSource;
use crate::run::{BatchSource, RunDir, RunError, RunOptions, StepLog, train};
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
    /// Where frozen encoders' features are cached ([`feature_cache`]).
    pub feature_cache: FeatureCacheDir,
}

/// Where the frozen-feature cache lives.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum FeatureCacheDir {
    /// `features/` in the run directory (no cache without one).
    #[default]
    InRun,
    /// This folder (the CLI passes one shared by all seeds of a run).
    At(PathBuf),
    /// Never cache: the encoders run in every step.
    Off,
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
            feature_cache: FeatureCacheDir::InRun,
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
    /// Whether each split's frozen features were computed or read from the cache
    /// (absent when the encoders ran in every step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_cache: Option<BTreeMap<String, CacheUse>>,
    /// Wall-clock seconds of each epoch of this process (training and dev scoring).
    #[serde(default)]
    pub epoch_seconds: Vec<f64>,
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
    let cache_dir = match (&opts.feature_cache, feature_cache::ineligible(&cfg, recipe.data.augment)) {
        (FeatureCacheDir::Off, _) => None,
        (_, Some(why)) => {
            tracing::info!("no frozen-feature cache: {why}");
            None
        }
        // Pretrained values could replace an imported encoder's weights.
        (_, None) if opts.init_from.is_some() => None,
        (FeatureCacheDir::At(dir), None) => Some(dir.clone()),
        (FeatureCacheDir::InRun, None) => run_dir.as_deref().map(|r| r.path.join("features")),
    };
    // With the cache the head trains alone, on the encoders' features.
    let mut objective = match (&cache_dir, &recipe.rgcl) {
        (Some(_), Some(rgcl)) => crate::objectives::rgcl::build(&cfg, recipe.train.seed, rgcl)?,
        (Some(_), None) => crate::objectives::classify::build_head(&cfg, recipe.train.seed)?,
        (None, None) => crate::objectives::classify::build(&cfg, recipe.train.seed)?,
        (None, Some(_)) => {
            return Err(PipelineError::Invalid(format!(
                "recipe `{}` trains with RGCL, which retrieves over cached features: its encoders must be imported \
                 (hf:, onnx:) and frozen, data.augment false, without --init-from or --no-feature-cache{}",
                recipe.name,
                feature_cache::ineligible(&cfg, recipe.data.augment).map(|why| format!(" ({why})")).unwrap_or_default()
            )));
        }
    };
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
    let session = SessionOptions { device: opts.run.device, threads: opts.run.threads, ..Default::default() };
    let dev_labelled: Vec<crate::data::Meme> = dev_memes.iter().filter(|m| m.label.is_some()).cloned().collect();
    let mut cache_use = None;
    let mut retrieval: Option<Retrieval> = None;
    let (mut source, cached): (Box<dyn BatchSource>, Option<(FeatureTable, ModelGraph)>) = match &cache_dir {
        Some(dir) => {
            let splits: [(&str, &[crate::data::Meme]); 2] = [("train", loader.memes()), ("dev", &dev_labelled)];
            let mut tables = feature_cache::tables(dir, &cfg, &splits, &data.tokenizer, &image, max_len, &session)?;
            let (dev_table, dev_use) = tables.pop().expect("two splits");
            let (train_table, train_use) = tables.pop().expect("two splits");
            cache_use = Some(BTreeMap::from([("train".to_string(), train_use), ("dev".to_string(), dev_use)]));
            let labels: Vec<Option<u8>> = loader.memes().iter().map(|m| m.label).collect();
            let head = build_head_classifier(&cfg, Mode::Infer, Weights::Hollow)?;
            let table = std::rc::Rc::new(train_table);
            let features = FeatureSource { loader, table: table.clone(), labels: labels.clone() };
            let source: Box<dyn BatchSource> = match &recipe.rgcl {
                Some(rgcl) => {
                    // The head's starting values: what the training graph was built with.
                    let start = initial_values(&objective.graph);
                    let r = Retrieval::new(&cfg, rgcl, table, labels, &start, &session)?;
                    let neighbours = r.neighbours.clone();
                    retrieval = Some(r);
                    Box::new(RetrievalSource { inner: features, neighbours })
                }
                None => Box::new(features),
            };
            (source, Some((dev_table, head)))
        }
        None => (Box::new(LoaderSource { loader, feeds: objective.feeds }), None),
    };
    // Without the cache the training graph holds the imported encoders' weights now, and
    // the loaded files need not stay in memory while it trains; with it, the package's
    // graph is built from them at the end.
    let (infer, export_cfg) = match cached {
        None => {
            let infer = build_classifier(&cfg, Mode::Infer, Weights::Hollow)?;
            drop(cfg);
            (Some(infer), None)
        }
        Some(_) => (None, Some(cfg)),
    };
    let patience = recipe.data.patience;
    // A resumed run continues the record its run directory holds, so the best epoch is
    // chosen over all epochs, those before the interruption included.
    let mut stopping = match (&opts.run.resume, run_dir.as_deref()) {
        (Some(_), Some(r)) => EarlyStopping::resume(patience, &r.path)?,
        (_, r) => EarlyStopping::new(patience, r.map(|r| r.path.as_path())),
    };
    let mut epochs_run = 0;
    let mut epoch_seconds = Vec::new();
    let mut epoch_started = std::time::Instant::now();
    let dev_scores_of = |values: &BTreeMap<String, Tensor>| -> Result<Scores, PipelineError> {
        match &cached {
            Some((table, head)) => score_features(&export_inference(head, values)?, table, &dev_labelled, &session),
            None => score_package_memes(
                &export_inference(infer.as_ref().expect("built without the cache"), values)?,
                &dev_memes,
                &data.tokenizer,
                &image,
                max_len,
                &session,
            ),
        }
    };
    // Frozen parameters never change: the best epoch's record (and best.safetensors) keeps
    // what trains, and the frozen values are taken from the trainer once, at the end.
    let frozen: std::collections::BTreeSet<String> =
        objective.graph.params.iter().filter(|p| !p.trainable).map(|p| p.name.clone()).collect();
    let mut hook = |epoch: u64, trainer: &mut crate::runtime::Trainer| -> Result<bool, RunError> {
        epochs_run = epoch + 1;
        let values = trainer.model_values()?;
        let scores = dev_scores_of(&values).map_err(|e| RunError::Invalid(e.to_string()))?;
        if let Some(r) = retrieval.as_mut() {
            // The next epoch retrieves in the embedding space the head has now.
            r.refresh(&values).map_err(|e| RunError::Invalid(e.to_string()))?;
        }
        epoch_seconds.push(epoch_started.elapsed().as_secs_f64());
        epoch_started = std::time::Instant::now();
        let at_half = scores.metrics(0.5);
        let auc = at_half.auroc.unwrap_or(0.5);
        tracing::info!(epoch = epoch + 1, dev_auroc = auc, "epoch done");
        let trained_values = values.into_iter().filter(|(name, _)| !frozen.contains(name)).collect();
        stopping.record(epoch, auc, at_half.accuracy, trained_values)
    };
    let trained =
        train(&objective, source.as_mut(), &recipe.train, &run_opts, run_dir.as_deref_mut(), Some(&mut hook))?;
    let epochs = stopping.history().to_vec();
    let (_, best_epoch, mut values) =
        stopping.into_best().ok_or_else(|| PipelineError::Invalid("no epoch finished".into()))?;
    if !frozen.is_empty() {
        let all = trained.trainer.model_values()?;
        values.extend(all.into_iter().filter(|(name, _)| frozen.contains(name)));
    }
    let dev_scores = dev_scores_of(&values)?;
    // The package holds the whole classifier: the cached run's head values go into the
    // inference graph, whose imported encoder weights are already there.
    let model = match (&infer, export_cfg) {
        (Some(infer), _) => export_inference(infer, &values)?,
        (None, Some(cfg)) => {
            // Imported weights are read from their files; the head's are the trained ones.
            let graph = build_classifier(&cfg, Mode::Infer, Weights::Random { seed: recipe.train.seed })?;
            drop(cfg);
            with_head_values(graph, &values)?
        }
        (None, None) => unreachable!("the classifier configuration is kept when the inference graph is not built"),
    };
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
        feature_cache: cache_use,
        epoch_seconds,
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

/// The inference classifier with the trained `head.*` values of a head-only run; every
/// other parameter keeps the value the graph was built with (the imported encoders').
fn with_head_values(infer: ModelGraph, values: &BTreeMap<String, Tensor>) -> Result<ModelProto, PipelineError> {
    let mut model = infer.model;
    let graph =
        model.graph.as_mut().ok_or_else(|| PipelineError::Invalid("the inference model has no graph".into()))?;
    let head = crate::models::classifier::HEAD_PREFIX;
    let mut missing = Vec::new();
    for name in infer.params.iter().map(|p| &p.name).chain(infer.buffers.iter().map(|b| &b.name)) {
        if !name.starts_with(&format!("{head}.")) {
            continue;
        }
        let Some(value) = values.get(name) else {
            missing.push(name.clone());
            continue;
        };
        if let Some(init) = graph.initializer.iter_mut().find(|t| t.name.as_deref() == Some(name.as_str())) {
            *init = value.to_proto(name);
        } else {
            missing.push(name.clone());
        }
    }
    if !missing.is_empty() {
        return Err(PipelineError::Invalid(format!("the head-only run has no value for {}", missing.join(", "))));
    }
    Ok(model)
}

/// The values a graph's parameters and buffers were built with.
fn initial_values(graph: &ModelGraph) -> BTreeMap<String, Tensor> {
    let names: std::collections::BTreeSet<&str> =
        graph.params.iter().map(|p| p.name.as_str()).chain(graph.buffers.iter().map(|b| b.name.as_str())).collect();
    graph
        .model
        .graph
        .iter()
        .flat_map(|g| g.initializer.iter())
        .filter(|t| t.name.as_deref().is_some_and(|n| names.contains(n)))
        .filter_map(|t| Some((t.name.clone()?, Tensor::from_proto(t).ok()?)))
        .collect()
}
