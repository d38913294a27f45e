//! Running an objective: differentiate its graph, append the optimizer, train on a
//! stream of batches with schedules, progress, checkpoints and Ctrl-C handling, and
//! record everything in a run directory. Readable top to bottom: [`train`].

pub mod feed;
mod interrupt;
pub mod run_dir;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use memeguard_onnx::Tensor;
use memeguard_package::Device;
use serde::{Deserialize, Serialize};

use crate::autodiff::{AutodiffError, differentiate};
use crate::objectives::{LOSS, Objective};
use crate::optim::schedule::{CosineSchedule, dino_teacher_momentum};
use crate::optim::{OptimError, OptimizerConfig, OptimizerKind, TrainingGraph, build_step_graph};
use crate::runtime::{RuntimeError, StepHyper, Trainer, TrainerConfig};
pub use interrupt::{install_interrupt_handler, interrupted};
pub use run_dir::RunDir;

/// A batch: tensors fed to the step graph by input name.
pub type Batch = Vec<(String, Tensor)>;

/// Where batches come from: one pass over the data per epoch.
pub trait BatchSource {
    /// The batches of `epoch` (the order may depend on the epoch, never on timing).
    fn epoch(&mut self, epoch: u64) -> Box<dyn Iterator<Item = Result<Batch, String>> + '_>;
    /// Batches per epoch (for progress and schedules).
    fn batches_per_epoch(&self) -> usize;
}

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Autodiff(#[from] AutodiffError),
    #[error(transparent)]
    Optim(#[from] OptimError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("data: {0}")]
    Data(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("interrupted: a checkpoint was written to {0}; continue with --resume")]
    Interrupted(PathBuf),
    #[error("{0}")]
    Invalid(String),
}

/// Optimizer choice as written in configs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerChoice {
    Adamw,
    Sgd,
}

/// How to train (the part of a recipe that is not the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub epochs: u64,
    pub batch_size: usize,
    pub optimizer: OptimizerChoice,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_epochs: f64,
    pub weight_decay: f64,
    /// Global gradient-norm clipping (none when absent).
    pub max_grad_norm: Option<f32>,
    pub accumulation_steps: u32,
    pub seed: u64,
    /// DINO: teacher temperature at the start and after its warm-up.
    pub teacher_temperature: (f32, f32),
    pub teacher_temperature_warmup_epochs: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 32,
            optimizer: OptimizerChoice::Adamw,
            lr: 1e-3,
            min_lr: 1e-5,
            warmup_epochs: 1.0,
            weight_decay: 0.05,
            max_grad_norm: Some(3.0),
            accumulation_steps: 1,
            seed: 0,
            teacher_temperature: (0.04, 0.04),
            teacher_temperature_warmup_epochs: 0.0,
        }
    }
}

impl TrainConfig {
    fn optimizer(&self) -> OptimizerConfig {
        let kind = match self.optimizer {
            OptimizerChoice::Adamw => OptimizerKind::adamw(),
            OptimizerChoice::Sgd => OptimizerKind::sgd(),
        };
        let mut cfg = OptimizerConfig::new(kind).with_accumulation(self.accumulation_steps.max(1));
        if let Some(max) = self.max_grad_norm {
            cfg = cfg.with_clipping(max);
        }
        cfg
    }
}

/// Where and how the run executes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub device: Device,
    pub threads: usize,
    /// Resume from this checkpoint (same objective and optimizer).
    pub resume: Option<PathBuf>,
    /// Initial values for parameters (pretrained weights), already renamed to this
    /// objective's parameter names. Names the objective lacks are reported and skipped.
    pub init: BTreeMap<String, Tensor>,
    /// Show progress bars (off in tests and when stderr is not a terminal).
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { device: Device::Cpu, threads: 0, resume: None, init: BTreeMap::new(), progress: false }
    }
}

/// One logged step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepLog {
    pub step: u64,
    pub epoch: u64,
    pub loss: f32,
    pub lr: f64,
    pub grad_norm: Option<f32>,
    /// The objective's [`crate::objectives::EMBEDDING_SPREAD`], when it has one.
    #[serde(default)]
    pub embedding_spread: Option<f32>,
}

/// A finished (or stopped) run: its trainer holds the final state.
pub struct Trained {
    pub trainer: Trainer,
    pub log: Vec<StepLog>,
    /// Names of `RunOptions::init` values that were applied.
    pub initialised: Vec<String>,
}

/// Builds the step graph of `objective` and a trainer for it.
pub fn prepare(objective: &Objective, cfg: &TrainConfig, opts: &RunOptions) -> Result<Trainer, RunError> {
    let graph = &objective.graph;
    let trainable = graph.trainable();
    let diff = differentiate(&graph.model, LOSS, &trainable)?;
    let training = TrainingGraph {
        model: &diff.model,
        loss: LOSS,
        grads: &diff.grads,
        params: &graph.params,
        buffers: &graph.buffers,
    };
    let step = build_step_graph(&training, &cfg.optimizer())?;
    let mut tc = TrainerConfig::on(opts.device);
    tc.seed = cfg.seed;
    tc.session.threads = opts.threads;
    let mut trainer = Trainer::new(step, &tc)?;
    if !objective.ema.is_empty() {
        trainer.attach_ema(&objective.ema)?;
        // The teacher starts as a copy of the student.
        for pair in &objective.ema {
            let v = trainer.value(&pair.student)?;
            trainer.set_value(&pair.teacher, &v)?;
        }
    }
    Ok(trainer)
}

/// Called after each epoch with the trainer; returns false to stop early.
pub type EpochHook<'a> = &'a mut dyn FnMut(u64, &mut Trainer) -> Result<bool, RunError>;

/// Trains `objective` on `data` for `cfg.epochs` epochs, logging into `run` (when given)
/// and calling `on_epoch` after every epoch.
pub fn train(
    objective: &Objective,
    data: &mut dyn BatchSource,
    cfg: &TrainConfig,
    opts: &RunOptions,
    mut run: Option<&mut RunDir>,
    mut on_epoch: Option<EpochHook<'_>>,
) -> Result<Trained, RunError> {
    let mut trainer = prepare(objective, cfg, opts)?;
    let mut initialised = Vec::new();
    for (name, value) in &opts.init {
        if trainer.value(name).is_ok() {
            trainer.set_value(name, value)?;
            initialised.push(name.clone());
        }
    }
    if !objective.ema.is_empty() && !initialised.is_empty() {
        for pair in &objective.ema {
            let v = trainer.value(&pair.student)?;
            trainer.set_value(&pair.teacher, &v)?;
        }
    }
    let mut log: Vec<StepLog> = Vec::new();
    if let Some(path) = &opts.resume {
        let extra = trainer.resume(path)?;
        if let Some(text) = extra.get("log") {
            log = serde_json::from_str(text).unwrap_or_default();
        }
    }

    let per_epoch = data.batches_per_epoch().max(1) as u64;
    let accumulation = cfg.accumulation_steps.max(1) as u64;
    let total_updates = (per_epoch * cfg.epochs).div_ceil(accumulation).max(1);
    let warmup = ((cfg.warmup_epochs * per_epoch as f64) / accumulation as f64).round() as u64;
    let lr = CosineSchedule::new(cfg.lr, cfg.min_lr, total_updates).with_warmup(warmup.min(total_updates), 0.0);
    let momentum = dino_teacher_momentum(total_updates);
    let temp_warmup = ((cfg.teacher_temperature_warmup_epochs * per_epoch as f64) / accumulation as f64) as u64;
    let is_dino = matches!(objective.feeds, crate::objectives::Feeds::MultiCrop { .. });
    let spread_name = crate::objectives::EMBEDDING_SPREAD;
    let watch_spread = objective
        .graph
        .model
        .graph
        .as_ref()
        .is_some_and(|g| g.output.iter().any(|o| o.name.as_deref() == Some(spread_name)));
    let fetch: &[&str] = if watch_spread { &[spread_name] } else { &[] };

    let start_epoch = trainer.micro_step() / per_epoch;
    let skip_in_epoch = trainer.micro_step() % per_epoch;
    let bar = progress_bar(opts.progress, per_epoch * cfg.epochs, trainer.micro_step());
    let started = Instant::now();
    for epoch in start_epoch..cfg.epochs {
        let mut batches = data.epoch(epoch);
        if epoch == start_epoch {
            for _ in 0..skip_in_epoch {
                batches.next();
            }
        }
        for batch in batches {
            let mut batch = batch.map_err(RunError::Data)?;
            let update = trainer.optimizer_step();
            let lr_now = lr.at(update);
            if is_dino {
                let (t0, t1) = cfg.teacher_temperature;
                let t = if update < temp_warmup { t0 + (t1 - t0) * update as f32 / temp_warmup as f32 } else { t1 };
                batch.push((crate::objectives::dino::TEACHER_TEMPERATURE.to_string(), Tensor::scalar_f32(t)));
            }
            let hyper = StepHyper::new(lr_now as f32, cfg.weight_decay as f32);
            let report = trainer.step_fetch(batch, &hyper, fetch)?;
            let spread = report.outputs.get(spread_name).and_then(|t| t.as_f32()).and_then(|v| v.first().copied());
            if !report.loss.is_finite() {
                return Err(RunError::Invalid(format!(
                    "the loss became {} at step {} (epoch {epoch}): lower the learning rate or enable clipping",
                    report.loss,
                    trainer.micro_step()
                )));
            }
            if report.applied && !objective.ema.is_empty() {
                trainer.ema_update(momentum.at(update) as f32)?;
            }
            log.push(StepLog {
                step: trainer.micro_step(),
                epoch,
                loss: report.loss,
                lr: lr_now,
                grad_norm: report.grad_norm,
                embedding_spread: spread,
            });
            bar.set_message(format!("epoch {} loss {:.4} lr {:.2e}", epoch + 1, report.loss, lr_now));
            bar.inc(1);
            // At an epoch's last step the epoch is finished first (checkpoint, log, hook),
            // so a resumed run never skips an epoch's end.
            if interrupted() && trainer.micro_step() % per_epoch != 0 {
                bar.abandon_with_message("interrupted: writing a checkpoint");
                return Err(stop(&trainer, run.as_deref_mut(), &log)?);
            }
        }
        if let Some(r) = run.as_deref_mut() {
            save(&trainer, &r.checkpoint_path(), &log)?;
            r.write_log(&log)?;
        }
        warn_on_collapse(epoch, &log);
        if let Some(hook) = on_epoch.as_mut()
            && !hook(epoch, &mut trainer)?
        {
            break;
        }
        if interrupted() && epoch + 1 < cfg.epochs {
            bar.abandon_with_message("interrupted at the end of an epoch");
            return Err(match run.as_deref_mut() {
                // Written just above.
                Some(r) => RunError::Interrupted(r.checkpoint_path()),
                None => stop(&trainer, None, &log)?,
            });
        }
    }
    bar.finish_with_message(format!("done in {:.1}s", started.elapsed().as_secs_f64()));
    Ok(Trained { trainer, log, initialised })
}

/// Warns when the epoch's mean embedding spread fell below
/// [`crate::objectives::COLLAPSE_SPREAD`].
fn warn_on_collapse(epoch: u64, log: &[StepLog]) {
    let spreads: Vec<f32> = log.iter().filter(|s| s.epoch == epoch).filter_map(|s| s.embedding_spread).collect();
    if spreads.is_empty() {
        return;
    }
    let mean = spreads.iter().sum::<f32>() / spreads.len() as f32;
    if mean < crate::objectives::COLLAPSE_SPREAD {
        tracing::warn!(
            epoch = epoch + 1,
            spread = mean,
            "the embeddings are collapsing (spread over the batch {mean:.3}; about 1 when spread evenly, 0 when every input maps to the same vector): a low loss here means little"
        );
    }
}

/// Ctrl-C: writes the checkpoint, and the step log and loss curve up to this step, so
/// the run directory shows where the run stopped; returns the error that says how to resume.
fn stop(trainer: &Trainer, run: Option<&mut RunDir>, log: &[StepLog]) -> Result<RunError, RunError> {
    let path = match &run {
        Some(r) => r.checkpoint_path(),
        None => std::env::temp_dir().join("memeguard-interrupted.safetensors"),
    };
    save(trainer, &path, log)?;
    if let Some(r) = run {
        r.write_log(log)?;
    }
    Ok(RunError::Interrupted(path))
}

/// Writes a checkpoint with the step log in its metadata (so a resumed run's curves
/// continue where they stopped).
pub fn save(trainer: &Trainer, path: &std::path::Path, log: &[StepLog]) -> Result<(), RunError> {
    let mut extra = BTreeMap::new();
    extra.insert("log".to_string(), serde_json::to_string(log).unwrap_or_default());
    trainer.save_checkpoint(path, &extra)?;
    Ok(())
}

fn progress_bar(show: bool, total: u64, done: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps ({per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_position(done);
    bar
}
