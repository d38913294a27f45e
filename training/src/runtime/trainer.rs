//! The training loop's engine: a step graph's session, its state on the device, the optional
//! teacher EMA session, step counters and the run's random generator.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use memeguard_onnx::Tensor;
use memeguard_package::Device;
use memeguard_package::onnxruntime::SessionOptions;
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::RuntimeError;
use super::checkpoint::{Checkpoint, RngState};
use super::dropout::advance_dropout_seeds;
use super::session::StateSession;
use super::store::StateStore;
use crate::optim::{EmaPair, ScalarInput, StateGraph, StateRole, StepGraph, build_ema_graph};

/// How to run: device, threads, determinism, and the seed of the run's generator.
#[derive(Debug, Clone)]
pub struct TrainerConfig {
    pub session: SessionOptions,
    /// Seeds [`Trainer::rng`] (data order, augmentation, dropout masks fed as inputs).
    pub seed: u64,
}

impl Default for TrainerConfig {
    /// CPU, deterministic kernels, seed 0.
    fn default() -> Self {
        TrainerConfig { session: SessionOptions { deterministic: true, ..SessionOptions::default() }, seed: 0 }
    }
}

impl TrainerConfig {
    /// The default config on `device`.
    pub fn on(device: Device) -> Self {
        let mut config = TrainerConfig::default();
        config.session.device = device;
        config
    }
}

/// Learning rate and weight decay of one parameter group for one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupHyper {
    pub lr: f32,
    pub weight_decay: f32,
}

/// The per-step scalars: a default for every group, and overrides by group name.
#[derive(Debug, Clone, PartialEq)]
pub struct StepHyper {
    pub default: GroupHyper,
    pub groups: BTreeMap<String, GroupHyper>,
}

impl StepHyper {
    /// The same `lr` and `weight_decay` for every group.
    pub fn new(lr: f32, weight_decay: f32) -> Self {
        StepHyper { default: GroupHyper { lr, weight_decay }, groups: BTreeMap::new() }
    }

    /// Overrides the scalars of `group`.
    pub fn with_group(mut self, group: &str, lr: f32, weight_decay: f32) -> Self {
        self.groups.insert(group.to_string(), GroupHyper { lr, weight_decay });
        self
    }

    /// The scalars of `group`.
    pub fn group(&self, group: &str) -> GroupHyper {
        self.groups.get(group).copied().unwrap_or(self.default)
    }
}

/// What one step reports back to the host.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub loss: f32,
    /// Global gradient norm before clipping (clipping configured, updating steps only).
    pub grad_norm: Option<f32>,
    /// True when this micro-batch completed an accumulation and the parameters changed.
    pub applied: bool,
    /// Other outputs asked for with [`Trainer::step_fetch`].
    pub outputs: BTreeMap<String, Tensor>,
    /// Wall time of the whole step, and of the part inside ONNX Runtime's run; the
    /// difference is this loop's own cost (binding, inputs, readback).
    pub step_time: Duration,
    pub run_time: Duration,
}

/// Runs a step graph step after step, keeping its state on the device.
pub struct Trainer {
    step_session: StateSession,
    ema_session: Option<StateSession>,
    store: StateStore,
    roles: Vec<(String, StateRole)>,
    loss: String,
    grad_norm: Option<String>,
    accumulation_steps: u64,
    optimizer_step: u64,
    micro_step: u64,
    rng: ChaCha20Rng,
    session_options: SessionOptions,
    /// The step graph as built (dropout seeds not yet advanced), to recreate its session
    /// when a run resumes.
    step_graph: StateGraph,
    run_seed: u64,
    /// Sessions replaced on resume; on CUDA the store's allocator came from the first
    /// one, so they stay alive as long as the store.
    retired_sessions: Vec<StateSession>,
}

fn scalar_f32(v: f32) -> Tensor {
    Tensor::scalar_f32(v)
}

impl Trainer {
    /// Loads `step` into a session on `config.session.device` and uploads the initial state.
    /// Requesting CUDA where it is unavailable fails here with a message saying so.
    pub fn new(step: StepGraph, config: &TrainerConfig) -> Result<Self, RuntimeError> {
        let StepGraph { graph, slots, loss, grad_norm, config: optimizer, .. } = step;
        let step_graph = graph.clone();
        let step_session = Self::step_session(&step_graph, config.seed, 0, &config.session)?;
        let device = config.session.device;
        let allocator = match device {
            Device::Cpu => Allocator::default(),
            Device::Cuda(id) => Allocator::new(
                step_session.session(),
                MemoryInfo::new(AllocationDevice::CUDA, id, AllocatorType::Device, MemoryType::Default)?,
            )?,
        };
        let mut store = StateStore::new(device, allocator);
        let mut roles = Vec::with_capacity(slots.len());
        for slot in slots {
            store.set(&slot.name, &slot.initial)?;
            roles.push((slot.name, slot.role));
        }
        Ok(Trainer {
            step_session,
            ema_session: None,
            store,
            roles,
            loss,
            grad_norm,
            accumulation_steps: optimizer.accumulation_steps.max(1) as u64,
            optimizer_step: 0,
            micro_step: 0,
            rng: ChaCha20Rng::seed_from_u64(config.seed),
            session_options: config.session.clone(),
            step_graph,
            run_seed: config.seed,
            retired_sessions: Vec::new(),
        })
    }

    /// A session for `graph` continuing a run of seed `run_seed` after `runs` step runs.
    fn step_session(
        graph: &StateGraph,
        run_seed: u64,
        runs: u64,
        options: &SessionOptions,
    ) -> Result<StateSession, RuntimeError> {
        let mut graph = graph.clone();
        let others = advance_dropout_seeds(&mut graph.model, run_seed, runs);
        if !others.is_empty() {
            tracing::warn!(ops = ?others, "the step graph has random ops whose sequences a resumed run does not continue");
        }
        StateSession::new(graph, options)
    }

    /// Adds the teacher update `t ← m·t + (1−m)·s` over `pairs`, run by [`Trainer::ema_update`].
    /// Every teacher and student must be a state value of the step graph.
    pub fn attach_ema(&mut self, pairs: &[EmaPair]) -> Result<(), RuntimeError> {
        for pair in pairs {
            for name in [&pair.teacher, &pair.student] {
                let (_, dims) = self.store.describe(name)?;
                if dims != pair.dims {
                    return Err(RuntimeError::Mismatch {
                        name: name.clone(),
                        expected: format!("{dims:?}"),
                        got: format!("{:?}", pair.dims),
                    });
                }
            }
        }
        let graph = build_ema_graph(pairs)?;
        self.ema_session = Some(StateSession::new(graph, &self.session_options)?);
        Ok(())
    }

    /// One micro-batch: forward, backward and (on the last micro-batch of an accumulation)
    /// the optimizer update. `batch` feeds the step graph's data inputs by name.
    pub fn step(&mut self, batch: Vec<(String, Tensor)>, hyper: &StepHyper) -> Result<StepReport, RuntimeError> {
        self.step_fetch(batch, hyper, &[])
    }

    /// [`Trainer::step`], also copying the outputs named in `fetch` to the host.
    pub fn step_fetch(
        &mut self,
        batch: Vec<(String, Tensor)>,
        hyper: &StepHyper,
        fetch: &[&str],
    ) -> Result<StepReport, RuntimeError> {
        let start = Instant::now();
        let graph = self.step_session.graph();
        for (name, _) in &batch {
            if !graph.data_inputs.contains(name) {
                return Err(RuntimeError::Invalid(format!(
                    "the batch has `{name}`, which is not a data input of the step graph (inputs: {})",
                    graph.data_inputs.join(", ")
                )));
            }
        }
        if let Some(missing) = graph.data_inputs.iter().find(|d| !batch.iter().any(|(n, _)| n == *d)) {
            return Err(RuntimeError::Invalid(format!("the batch lacks the data input `{missing}`")));
        }
        let applies = (self.micro_step + 1).is_multiple_of(self.accumulation_steps);
        let mut feeds = batch;
        for scalar in &graph.scalars {
            let value = match scalar {
                ScalarInput::LearningRate { group } => scalar_f32(hyper.group(group).lr),
                ScalarInput::WeightDecay { group } => scalar_f32(hyper.group(group).weight_decay),
                ScalarInput::Step => scalar_f32((self.optimizer_step + 1) as f32),
                ScalarInput::ApplyUpdate => Tensor::bool(Vec::<i64>::new(), vec![applies]),
                ScalarInput::EmaMomentum => {
                    return Err(RuntimeError::Invalid("a step graph cannot take the EMA momentum".into()));
                }
            };
            feeds.push((scalar.name(), value));
        }
        let mut wanted = vec![self.loss.clone()];
        if applies {
            wanted.extend(self.grad_norm.iter().cloned());
        }
        wanted.extend(fetch.iter().map(|s| s.to_string()));
        let mut outputs = self.step_session.run(&mut self.store, feeds, &wanted)?;
        self.micro_step += 1;
        if applies {
            self.optimizer_step += 1;
        }
        let loss = first_f32(outputs.remove(&self.loss), &self.loss)?;
        let grad_norm = match self.grad_norm.as_ref().filter(|_| applies) {
            Some(name) => Some(first_f32(outputs.remove(name), name)?),
            None => None,
        };
        Ok(StepReport {
            loss,
            grad_norm,
            applied: applies,
            outputs,
            step_time: start.elapsed(),
            run_time: self.step_session.last_run_time(),
        })
    }

    /// Moves every teacher towards its student with momentum `momentum`.
    pub fn ema_update(&mut self, momentum: f32) -> Result<(), RuntimeError> {
        let session = self
            .ema_session
            .as_mut()
            .ok_or_else(|| RuntimeError::Invalid("no EMA pairs attached (attach_ema)".into()))?;
        session.run(&mut self.store, vec![(ScalarInput::EmaMomentum.name(), scalar_f32(momentum))], &[])?;
        Ok(())
    }

    /// Number of optimizer updates applied so far.
    pub fn optimizer_step(&self) -> u64 {
        self.optimizer_step
    }

    /// Number of micro-batches run so far.
    pub fn micro_step(&self) -> u64 {
        self.micro_step
    }

    /// The run's random generator; its state is saved in checkpoints.
    pub fn rng(&mut self) -> &mut ChaCha20Rng {
        &mut self.rng
    }

    /// The device the state lives on.
    pub fn device(&self) -> Device {
        self.store.device()
    }

    /// Every state value with its role, in step-graph order.
    pub fn roles(&self) -> &[(String, StateRole)] {
        &self.roles
    }

    /// A host copy of the state value `name`.
    pub fn value(&self, name: &str) -> Result<Tensor, RuntimeError> {
        self.store.get(name)
    }

    /// Replaces the state value `name` (same type and shape), e.g. with pretrained weights.
    pub fn set_value(&mut self, name: &str, value: &Tensor) -> Result<(), RuntimeError> {
        if !self.store.contains(name) {
            return Err(RuntimeError::UnknownState(name.to_string()));
        }
        self.store.set(name, value)
    }

    /// Host copies of the model's values (parameters and buffers, not optimizer state), for
    /// export.
    pub fn model_values(&self) -> Result<BTreeMap<String, Tensor>, RuntimeError> {
        self.roles
            .iter()
            .filter(|(_, role)| matches!(role, StateRole::Parameter { .. } | StateRole::Buffer))
            .map(|(name, _)| Ok((name.clone(), self.store.get(name)?)))
            .collect()
    }

    /// Writes every state value, the step counters and the generator's state to `path`
    /// (safetensors), with `extra` as additional metadata.
    pub fn save_checkpoint(&self, path: &Path, extra: &BTreeMap<String, String>) -> Result<(), RuntimeError> {
        let mut tensors = BTreeMap::new();
        for (name, _) in &self.roles {
            tensors.insert(name.clone(), self.store.get(name)?);
        }
        let checkpoint = Checkpoint {
            tensors,
            optimizer_step: self.optimizer_step,
            micro_step: self.micro_step,
            run_seed: self.run_seed,
            rng: RngState::of(&self.rng),
            extra: extra.clone(),
        };
        checkpoint.save(path)
    }

    /// Restores a checkpoint written by [`Trainer::save_checkpoint`] for the same step graph:
    /// every state value, the counters and the generator. Returns its extra metadata.
    pub fn resume(&mut self, path: &Path) -> Result<BTreeMap<String, String>, RuntimeError> {
        let checkpoint = Checkpoint::load(path)?;
        let problem = |message: String| RuntimeError::Checkpoint { path: path.display().to_string(), message };
        for (name, _) in &self.roles {
            if !checkpoint.tensors.contains_key(name) {
                return Err(problem(format!(
                    "it has no value for `{name}` (saved from a different model or optimizer?)"
                )));
            }
        }
        if let Some(extra) = checkpoint.tensors.keys().find(|k| !self.roles.iter().any(|(n, _)| n == *k)) {
            return Err(problem(format!(
                "it holds `{extra}`, which this step graph does not have (a different model or optimizer?)"
            )));
        }
        for (name, _) in &self.roles {
            self.store.set(name, &checkpoint.tensors[name])?;
        }
        if checkpoint.micro_step != self.micro_step || checkpoint.run_seed != self.run_seed {
            let session = Self::step_session(
                &self.step_graph,
                checkpoint.run_seed,
                checkpoint.micro_step,
                &self.session_options,
            )?;
            self.retired_sessions.push(std::mem::replace(&mut self.step_session, session));
            if self.store.device() == Device::Cpu {
                self.retired_sessions.clear();
            }
        }
        self.optimizer_step = checkpoint.optimizer_step;
        self.micro_step = checkpoint.micro_step;
        self.run_seed = checkpoint.run_seed;
        self.rng = checkpoint.rng.restore();
        Ok(checkpoint.extra)
    }
}

fn first_f32(value: Option<Tensor>, name: &str) -> Result<f32, RuntimeError> {
    let value = value.ok_or_else(|| RuntimeError::Invalid(format!("output `{name}` is missing")))?;
    value
        .as_f32()
        .and_then(|v| v.first().copied())
        .ok_or_else(|| RuntimeError::Invalid(format!("output `{name}` is not a float32 value")))
}
