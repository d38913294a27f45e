//! Turns a differentiated forward graph into a training-step graph: parameters, buffers and
//! optimizer state become graph inputs, their next values graph outputs, and the update
//! (accumulation, clipping, SGD or AdamW) is appended as standard ONNX nodes.

use std::collections::{BTreeMap, HashSet};

use memeguard_onnx::builder::value_info;
use memeguard_onnx::proto::{GraphProto, ModelProto};
use memeguard_onnx::{DataType, Dim, GraphBuilder, Tensor, check_model};

use super::clip::{Accumulation, clip_coefficient, clip_global_norm};
use super::config::OptimizerConfig;
use super::multi_tensor::{Member, UpdateLayout, emit_bucket_update, flatten_concat, plan_units};
use super::state_graph::{ScalarInput, StateGraph, StateIo};
use super::update::{ParamUpdate, adam_shared, emit_update, group_scalars};
use super::{OptimError, OptimizerKind};
use crate::autodiff;
use crate::graph_spec::{Buffer, ModelGraph, Param};

/// Suffix of the graph output holding a state value's next value.
pub const NEXT_SUFFIX: &str = ".next";

/// A differentiated forward graph: the forward pass, its scalar loss, and a gradient value
/// for each trainable parameter (what autodiff returns), plus the parameter and buffer
/// lists of its [`crate::graph_spec::ModelGraph`].
#[derive(Debug, Clone, Copy)]
pub struct TrainingGraph<'a> {
    pub model: &'a ModelProto,
    pub loss: &'a str,
    /// Trainable parameter name → the graph value holding d loss / d parameter.
    pub grads: &'a BTreeMap<String, String>,
    pub params: &'a [Param],
    pub buffers: &'a [Buffer],
}

/// What a state value is, for checkpoints and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateRole {
    Parameter {
        trainable: bool,
        group: String,
    },
    /// Updated by the forward pass (batch-norm running statistics).
    Buffer,
    /// A moment or momentum buffer of `param`.
    OptimizerState {
        param: String,
    },
    /// The running gradient sum of `param` under gradient accumulation.
    GradientAccumulator {
        param: String,
    },
}

/// One state value with its initial contents.
#[derive(Debug, Clone)]
pub struct StateSlot {
    pub name: String,
    pub role: StateRole,
    pub initial: Tensor,
}

/// A training-step graph and everything the runtime needs to run it.
#[derive(Debug, Clone)]
pub struct StepGraph {
    pub graph: StateGraph,
    /// Every state value (same order as `graph.state`) with its role and initial value.
    pub slots: Vec<StateSlot>,
    /// The loss output.
    pub loss: String,
    /// The gradient-norm output, when clipping is on.
    pub grad_norm: Option<String>,
    pub config: OptimizerConfig,
    /// Parameter groups with a learning-rate input, in order of first appearance.
    pub groups: Vec<String>,
}

impl StepGraph {
    /// The state slot called `name`.
    pub fn slot(&self, name: &str) -> Option<&StateSlot> {
        self.slots.iter().find(|s| s.name == name)
    }
}

/// The default-domain ops (op_type) a model uses, sorted (for kernel-coverage checks).
pub fn ops_used(model: &ModelProto) -> Vec<String> {
    let mut ops: Vec<String> =
        model.graph.iter().flat_map(|g| g.node.iter()).filter_map(|n| n.op_type.clone()).collect();
    ops.sort();
    ops.dedup();
    ops
}

/// Removes the initializer `name` and declares it a graph input instead; returns its value.
fn initializer_to_input(graph: &mut GraphProto, name: &str) -> Result<Tensor, OptimError> {
    let index = graph
        .initializer
        .iter()
        .position(|t| t.name.as_deref() == Some(name))
        .ok_or_else(|| OptimError::MissingInitializer { name: name.to_string() })?;
    let proto = graph.initializer.remove(index);
    let tensor = Tensor::from_proto(&proto)
        .map_err(|e| OptimError::BadInitializer { name: name.to_string(), message: e.to_string() })?;
    if !graph.input.iter().any(|v| v.name.as_deref() == Some(name)) {
        let dims: Vec<Dim> = tensor.dims.iter().map(|&d| Dim::Known(d)).collect();
        graph.input.push(value_info(name, tensor.data_type(), &dims));
    }
    Ok(tensor)
}

/// Moves every parameter and buffer from the initializers to the graph inputs; returns
/// their slots (parameters first, in list order) with the initializer values.
fn state_from_initializers(
    graph: &mut GraphProto,
    params: &[Param],
    buffers: &[Buffer],
) -> Result<Vec<StateSlot>, OptimError> {
    let mut slots = Vec::new();
    let mut seen = HashSet::new();
    for p in params {
        if !seen.insert(p.name.as_str()) {
            return Err(OptimError::InvalidConfig(format!("parameter `{}` is listed twice", p.name)));
        }
        let initial = initializer_to_input(graph, &p.name)?;
        if p.trainable && initial.data_type() != DataType::Float {
            return Err(OptimError::UnsupportedType {
                name: p.name.clone(),
                dtype: format!("{:?}", initial.data_type()),
            });
        }
        let role = StateRole::Parameter { trainable: p.trainable, group: p.group.clone() };
        slots.push(StateSlot { name: p.name.clone(), role, initial });
    }
    for buf in buffers {
        if !seen.insert(buf.name.as_str()) {
            return Err(OptimError::InvalidConfig(format!("buffer `{}` is listed twice", buf.name)));
        }
        let initial = initializer_to_input(graph, &buf.name)?;
        slots.push(StateSlot { name: buf.name.clone(), role: StateRole::Buffer, initial });
    }
    Ok(slots)
}

/// Renames the value `from` (just produced by a node) to `to` everywhere, so the node that
/// computes a next-state value writes the graph output directly (no Identity copy).
fn rename_value(b: &mut GraphBuilder, from: &str, to: &str) -> Result<(), OptimError> {
    if b.is_used(to) {
        return Err(OptimError::NameClash { name: to.to_string() });
    }
    let reserved = b.unique(to);
    debug_assert_eq!(reserved, to);
    for node in &mut b.graph_mut().node {
        for v in node.input.iter_mut().chain(node.output.iter_mut()) {
            if v == from {
                *v = to.to_string();
            }
        }
    }
    Ok(())
}

/// Declares `value` a graph output unless it already is one.
fn ensure_output(b: &mut GraphBuilder, value: &str, dtype: DataType, dims: &[Dim]) {
    if !b.graph().output.iter().any(|o| o.name.as_deref() == Some(value)) {
        b.output(value, dtype, dims);
    }
}

fn known_dims(dims: &[i64]) -> Vec<Dim> {
    dims.iter().map(|&d| Dim::Known(d)).collect()
}

/// A scalar input for `kind`, declared once.
fn scalar_input(b: &mut GraphBuilder, scalars: &mut Vec<ScalarInput>, kind: ScalarInput) -> Result<String, OptimError> {
    let name = kind.name();
    if !scalars.contains(&kind) {
        if b.is_used(&name) {
            return Err(OptimError::NameClash { name });
        }
        b.input(&name, kind.dtype(), &[]);
        scalars.push(kind);
    }
    Ok(name)
}

/// Differentiates `loss` (a value of `model.model`, appended by the objective) with respect
/// to the model's trainable parameters and builds the step graph: the usual entry point.
/// `options` passes stop-gradient values to autodiff.
pub fn differentiate_step(
    model: &ModelGraph,
    loss: &str,
    config: &OptimizerConfig,
    options: &autodiff::Options,
) -> Result<StepGraph, OptimError> {
    differentiate_step_with(model, loss, config, options, UpdateLayout::default())
}

/// [`differentiate_step`] with the update laid out as `layout`.
pub fn differentiate_step_with(
    model: &ModelGraph,
    loss: &str,
    config: &OptimizerConfig,
    options: &autodiff::Options,
    layout: UpdateLayout,
) -> Result<StepGraph, OptimError> {
    let differentiated = autodiff::differentiate_with(&model.model, loss, &model.trainable(), options)?;
    let training = TrainingGraph {
        model: &differentiated.model,
        loss,
        grads: &differentiated.grads,
        params: &model.params,
        buffers: &model.buffers,
    };
    build_step_graph_with(&training, config, layout)
}

/// Builds the training-step graph for `training` with `config`.
///
/// Inputs of the result: the forward graph's data inputs, every parameter (trainable and
/// frozen) and buffer under its own name, optimizer state `<param>.<state>` (`momentum`;
/// `exp_avg`, `exp_avg_sq`), gradient accumulators `<param>.grad_accum`, and the scalars
/// `lr.<group>`, `weight_decay.<group>`, `optim.step` (AdamW), `optim.apply` (accumulation).
/// Outputs: the loss, `optim.grad_norm` (clipping), and `<state>.next` for every value the
/// step changes (buffers keep their `updated` value name).
pub fn build_step_graph(training: &TrainingGraph<'_>, config: &OptimizerConfig) -> Result<StepGraph, OptimError> {
    build_step_graph_with(training, config, UpdateLayout::default())
}

/// [`build_step_graph`] with the update laid out as `layout` (the same numbers either
/// way, up to float rounding in the gradient norm's summation order).
pub fn build_step_graph_with(
    training: &TrainingGraph<'_>,
    config: &OptimizerConfig,
    layout: UpdateLayout,
) -> Result<StepGraph, OptimError> {
    if config.accumulation_steps == 0 {
        return Err(OptimError::InvalidConfig("accumulation_steps must be at least 1".into()));
    }
    // One opset for the whole step: the forward graph's old-style nodes are rewritten
    // to the opset the gradient and optimizer nodes are written in.
    let mut model = training.model.clone();
    memeguard_onnx::upgrade::upgrade_opset(&mut model).map_err(|e| OptimError::InvalidGraph(e.to_string()))?;
    let opset = memeguard_onnx::upgrade::default_opset(&model).unwrap_or(memeguard_onnx::OPSET_VERSION);
    let graph = model.graph.as_mut().ok_or_else(|| OptimError::InvalidConfig("the model has no graph".into()))?;
    let data_inputs: Vec<String> = graph
        .input
        .iter()
        .filter_map(|v| v.name.clone())
        .filter(|n| !graph.initializer.iter().any(|t| t.name.as_deref() == Some(n)))
        .collect();

    let mut slots = state_from_initializers(graph, training.params, training.buffers)?;

    let mut b = GraphBuilder::from_model(&model);
    let defined: HashSet<String> = {
        let g = b.graph();
        g.input
            .iter()
            .filter_map(|v| v.name.clone())
            .chain(g.node.iter().flat_map(|n| n.output.iter().cloned()))
            .collect()
    };
    if !defined.contains(training.loss) {
        return Err(OptimError::MissingValue { what: "loss".into(), name: training.loss.to_string() });
    }
    ensure_output(&mut b, training.loss, DataType::Float, &[]);

    let trainable: Vec<&Param> = training.params.iter().filter(|p| p.trainable).collect();
    if trainable.is_empty() {
        return Err(OptimError::InvalidConfig("no trainable parameter".into()));
    }
    let mut grads = Vec::new();
    for p in &trainable {
        let grad = training.grads.get(&p.name).ok_or_else(|| OptimError::MissingGradient { param: p.name.clone() })?;
        if !defined.contains(grad) {
            return Err(OptimError::MissingValue { what: format!("gradient of `{}`", p.name), name: grad.clone() });
        }
        grads.push(grad.clone());
    }

    let mut scalars = Vec::new();
    let mut state_io: Vec<StateIo> = Vec::new();
    // (state, value computing its next value, whether it only lands on `apply`)
    let mut candidates: Vec<(String, String, bool)> = Vec::new();
    let mut extra_slots = Vec::new();
    let dims_of =
        |name: &str| slots.iter().find(|s| s.name == name).map(|s| s.initial.dims.clone()).expect("slot exists");

    // Accumulation: average k micro-batch gradients; everything below only lands on `apply`.
    let accumulation = if config.accumulation_steps > 1 {
        let apply = scalar_input(&mut b, &mut scalars, ScalarInput::ApplyUpdate)?;
        Some(Accumulation::new(&mut b, &apply, config.accumulation_steps))
    } else {
        None
    };
    if let Some(acc) = &accumulation {
        for (p, grad) in trainable.iter().zip(grads.iter_mut()) {
            let dims = dims_of(&p.name);
            let name = format!("{}.grad_accum", p.name);
            if b.is_used(&name) {
                return Err(OptimError::NameClash { name });
            }
            let accumulator = b.input(&name, DataType::Float, &known_dims(&dims));
            let (mean, accumulator_next) = acc.accumulate(&mut b, &accumulator, grad);
            *grad = mean;
            candidates.push((accumulator.clone(), accumulator_next, false));
            extra_slots.push(StateSlot {
                name: accumulator,
                role: StateRole::GradientAccumulator { param: p.name.clone() },
                initial: Tensor::full(DataType::Float, &dims, 0.0),
            });
        }
    }

    // Update units: single parameters, or buckets of small ones updated as one flat
    // vector (their gradients concatenated here, so clipping also sees one value).
    let param_dims: Vec<Vec<i64>> = trainable.iter().map(|p| dims_of(&p.name)).collect();
    let members: Vec<Member<'_>> = trainable
        .iter()
        .zip(&param_dims)
        .map(|(p, dims)| Member { group: &p.group, decays: p.weight_decay, dims })
        .collect();
    let units = plan_units(&members, layout);
    let mut unit_grads: Vec<String> = units
        .iter()
        .map(|u| match u.members.as_slice() {
            [i] => grads[*i].clone(),
            many => {
                let values: Vec<&str> = many.iter().map(|&i| grads[i].as_str()).collect();
                let dims: Vec<&[i64]> = many.iter().map(|&i| param_dims[i].as_slice()).collect();
                flatten_concat(&mut b, &values, &dims)
            }
        })
        .collect();

    // AdamW folds the clipping coefficient into its scalars (one pass over the gradients
    // fewer); SGD scales the gradients.
    let mut grad_scale = None;
    let grad_norm = match (config.max_grad_norm, config.kind) {
        (Some(max_norm), OptimizerKind::AdamW { .. }) => {
            let (coef, norm) = clip_coefficient(&mut b, &unit_grads, max_norm)?;
            grad_scale = Some(coef);
            Some(norm)
        }
        (Some(max_norm), OptimizerKind::Sgd { .. }) => {
            let (clipped, norm) = clip_global_norm(&mut b, &unit_grads, max_norm)?;
            unit_grads = clipped;
            Some(norm)
        }
        (None, _) => None,
    };

    // Per-group scalars, then one update per trainable parameter.
    let step = match config.kind {
        OptimizerKind::AdamW { .. } => Some(scalar_input(&mut b, &mut scalars, ScalarInput::Step)?),
        OptimizerKind::Sgd { .. } => None,
    };
    let adam = step.as_deref().and_then(|s| adam_shared(&mut b, &config.kind, s, grad_scale.as_deref()));
    let mut groups: Vec<String> = Vec::new();
    let mut rules = BTreeMap::new();
    for p in &trainable {
        if groups.contains(&p.group) {
            continue;
        }
        groups.push(p.group.clone());
        let lr = scalar_input(&mut b, &mut scalars, ScalarInput::LearningRate { group: p.group.clone() })?;
        let decays = trainable.iter().any(|q| q.group == p.group && q.weight_decay);
        let wd = if decays {
            Some(scalar_input(&mut b, &mut scalars, ScalarInput::WeightDecay { group: p.group.clone() })?)
        } else {
            None
        };
        rules.insert(p.group.clone(), group_scalars(&mut b, &config.kind, &lr, wd.as_deref(), adam.as_ref()));
    }
    let mut param_updates: Vec<Option<ParamUpdate>> = (0..trainable.len()).map(|_| None).collect();
    for (unit, grad) in units.iter().zip(&unit_grads) {
        let first = trainable[unit.members[0]];
        let rule = &rules[&first.group];
        let updates = match unit.members.as_slice() {
            [i] => vec![emit_update(&mut b, rule, &first.name, grad, &param_dims[*i], first.weight_decay)?],
            many => {
                let names: Vec<&str> = many.iter().map(|&i| trainable[i].name.as_str()).collect();
                let dims: Vec<&[i64]> = many.iter().map(|&i| param_dims[i].as_slice()).collect();
                emit_bucket_update(&mut b, rule, &names, &dims, grad, first.weight_decay)?
            }
        };
        for (&i, update) in unit.members.iter().zip(updates) {
            param_updates[i] = Some(update);
        }
    }
    // State slots in parameter order, whatever the layout.
    for (i, update) in param_updates.into_iter().enumerate() {
        let (p, update) = (trainable[i], update.expect("every parameter is in one unit"));
        candidates.push((p.name.clone(), update.param_next, true));
        for (state, next) in update.state {
            extra_slots.push(StateSlot {
                name: state.clone(),
                role: StateRole::OptimizerState { param: p.name.clone() },
                initial: Tensor::full(DataType::Float, &param_dims[i], 0.0),
            });
            candidates.push((state, next, true));
        }
    }

    // Next values: gated by `apply` under accumulation, written to `<state>.next`.
    let mut next_of: BTreeMap<String, String> = BTreeMap::new();
    for (state, candidate, gated) in candidates {
        let out = format!("{state}{NEXT_SUFFIX}");
        match accumulation.as_ref().filter(|_| gated) {
            Some(acc) => {
                if b.is_used(&out) {
                    return Err(OptimError::NameClash { name: out });
                }
                b.node_with_outputs("Where", &[&acc.apply, &candidate, &state], &[&out], &[]);
            }
            None => rename_value(&mut b, &candidate, &out)?,
        }
        next_of.insert(state, out);
    }
    for buf in training.buffers {
        if buf.updated.is_empty() || !defined.contains(&buf.updated) {
            return Err(OptimError::MissingValue {
                what: format!("updated value of buffer `{}`", buf.name),
                name: buf.updated.clone(),
            });
        }
        next_of.insert(buf.name.clone(), buf.updated.clone());
    }

    slots.extend(extra_slots);
    for slot in &slots {
        let next = next_of.get(&slot.name).cloned();
        if let Some(next) = &next {
            ensure_output(&mut b, next, slot.initial.data_type(), &known_dims(&slot.initial.dims));
        }
        state_io.push(StateIo { name: slot.name.clone(), next });
    }

    let mut reports = vec![training.loss.to_string()];
    reports.extend(grad_norm.iter().cloned());
    if let Some(norm) = &grad_norm {
        ensure_output(&mut b, norm, DataType::Float, &[]);
    }
    b.metadata("memeguard.optimizer", config.kind.name());
    let mut model = b.build();
    // The builder declares opset 20; a forward graph already newer keeps its opset.
    if opset > memeguard_onnx::OPSET_VERSION {
        model.opset_import[0].version = Some(opset);
        model.ir_version = model.ir_version.max(training.model.ir_version);
    }
    check_model(&model, true).map_err(|e| OptimError::InvalidGraph(e.to_string()))?;
    Ok(StepGraph {
        graph: StateGraph { model, state: state_io, scalars, data_inputs, reports },
        slots,
        loss: training.loss.to_string(),
        grad_norm,
        config: *config,
        groups,
    })
}
