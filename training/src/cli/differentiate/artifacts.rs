//! What `differentiate` writes beside the training step: the step counter as state,
//! `training_step.json` (every state input -> output pair with its role, the data inputs,
//! the hyperparameters) and `initial_state.safetensors`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{Context, bail};
use memeguard_onnx::builder::{value_dims, value_dtype, value_info};
use memeguard_onnx::proto::NodeProto;
use memeguard_onnx::{DataType, Dim, Tensor, check_model};
use memeguard_training::optim::{NEXT_SUFFIX, OptimizerKind, ScalarInput, StateRole, StepGraph};
use serde_json::json;

/// One state input of the training step, as `training_step.json` describes it.
pub(super) struct StateEntry {
    input: String,
    output: Option<String>,
    /// `parameter`, `buffer`, `adam_m`, `adam_v`, `momentum`, `gradient_accumulator`, `step`.
    role: &'static str,
    /// The parameter an optimizer state belongs to.
    param: Option<String>,
    initial: Tensor,
}

/// The state of `step` with its roles, in the graph's order.
pub(super) fn state_entries(step: &StepGraph) -> Vec<StateEntry> {
    step.slots
        .iter()
        .map(|slot| {
            let output = step.graph.state.iter().find(|s| s.name == slot.name).and_then(|s| s.next.clone());
            let (role, param) = match &slot.role {
                StateRole::Parameter { .. } => ("parameter", None),
                StateRole::Buffer => ("buffer", None),
                StateRole::OptimizerState { param } => {
                    let role = match slot.name.strip_prefix(param.as_str()) {
                        Some(".exp_avg") => "adam_m",
                        Some(".exp_avg_sq") => "adam_v",
                        Some(".momentum") => "momentum",
                        _ => "optimizer_state",
                    };
                    (role, Some(param.clone()))
                }
                StateRole::GradientAccumulator { param } => ("gradient_accumulator", Some(param.clone())),
            };
            StateEntry { input: slot.name.clone(), output, role, param, initial: slot.initial.clone() }
        })
        .collect()
}

/// Turns the `optim.step` scalar input (AdamW's 1-based update count) into state: the
/// graph also outputs `optim.step.next = optim.step + 1`, so a training loop feeds every
/// `.next` output back and nothing else changes between steps. Returns its entry.
pub(super) fn carry_step_counter(step: &mut StepGraph) -> anyhow::Result<Option<StateEntry>> {
    if !step.graph.scalars.contains(&ScalarInput::Step) {
        return Ok(None);
    }
    // The optimizer-step counter, carried as state so a loop only feeds outputs back.
    let counter = ScalarInput::Step.name();
    let next = format!("{counter}{NEXT_SUFFIX}");
    let one = format!("{counter}.one");
    let graph = step.graph.model.graph.as_mut().expect("built with a graph");
    let used = |name: &str| {
        graph.node.iter().any(|n| n.output.iter().any(|o| o == name))
            || graph.initializer.iter().any(|t| t.name() == name)
            || graph.input.iter().any(|v| v.name() == name)
    };
    if used(&next) || used(&one) {
        bail!("the model already has a value named `{next}` or `{one}`; rename it and export again");
    }
    graph.initializer.push(Tensor::scalar_f32(1.0).to_proto(&one));
    graph.node.push(NodeProto {
        name: Some(next.clone()),
        op_type: Some("Add".into()),
        input: vec![counter.clone(), one],
        output: vec![next.clone()],
        ..Default::default()
    });
    graph.output.push(value_info(&next, DataType::Float, &[]));
    check_model(&step.graph.model, true).context("the training step is invalid (a bug in memeguard)")?;
    step.graph.scalars.retain(|s| *s != ScalarInput::Step);
    Ok(Some(StateEntry {
        input: counter,
        output: Some(next),
        role: "step",
        param: None,
        initial: Tensor::scalar_f32(1.0),
    }))
}

/// Renames each buffer's next value (a BatchNormalization output such as
/// `/bn1/BatchNormalization_output_1`) to `<buffer>.next`, so every state output is named
/// the same way.
pub(super) fn name_buffer_outputs(step: &mut StepGraph, entries: &mut [StateEntry]) -> anyhow::Result<()> {
    let graph = step.graph.model.graph.as_mut().expect("built with a graph");
    for entry in entries.iter_mut().filter(|e| e.role == "buffer") {
        let Some(from) = entry.output.clone() else { continue };
        let to = format!("{}{NEXT_SUFFIX}", entry.input);
        if from == to {
            continue;
        }
        let used = graph.node.iter().flat_map(|n| n.input.iter().chain(&n.output)).any(|v| *v == to)
            || graph.input.iter().chain(&graph.output).any(|v| v.name() == to)
            || graph.initializer.iter().any(|t| t.name() == to);
        if used {
            bail!("the model already has a value named `{to}`; rename it and export again");
        }
        for v in graph.node.iter_mut().flat_map(|n| n.input.iter_mut().chain(n.output.iter_mut())) {
            if *v == from {
                *v = to.clone();
            }
        }
        for v in graph.output.iter_mut().chain(graph.value_info.iter_mut()) {
            if v.name() == from {
                v.name = Some(to.clone());
            }
        }
        for io in step.graph.state.iter_mut().filter(|s| s.next.as_deref() == Some(from.as_str())) {
            io.next = Some(to.clone());
        }
        entry.output = Some(to);
    }
    check_model(&step.graph.model, true).context("the training step is invalid (a bug in memeguard)")?;
    Ok(())
}

fn dtype_name(dtype: Option<DataType>) -> &'static str {
    match dtype {
        Some(DataType::Float) => "float32",
        Some(DataType::Double) => "float64",
        Some(DataType::Float16) => "float16",
        Some(DataType::Bfloat16) => "bfloat16",
        Some(DataType::Int64) => "int64",
        Some(DataType::Int32) => "int32",
        Some(DataType::Uint8) => "uint8",
        Some(DataType::Bool) => "bool",
        _ => "other",
    }
}

fn dims_json(dims: &[Dim]) -> serde_json::Value {
    dims.iter()
        .map(|d| match d {
            Dim::Known(n) => json!(n),
            Dim::Sym(s) => json!(s),
        })
        .collect()
}

/// `x` as the shortest decimal that reads back as the same f32 (`0.01`, not `0.009999999776`).
fn decimal(x: f32) -> f64 {
    x.to_string().parse().expect("an f32 prints as a number")
}

/// `training_step.json`: what a training loop in any language needs to drive the step.
pub(super) fn manifest(step: &StepGraph, entries: &[StateEntry], lr: f32, weight_decay: f32) -> serde_json::Value {
    let graph = step.graph.model.graph.as_ref().expect("built with a graph");
    let input = |name: &str| graph.input.iter().find(|v| v.name() == name);
    let data: Vec<_> = step
        .graph
        .data_inputs
        .iter()
        .map(|name| {
            let v = input(name);
            json!({
                "name": name,
                "dtype": dtype_name(v.and_then(value_dtype)),
                "shape": v.and_then(value_dims).map(|d| dims_json(&d)),
            })
        })
        .collect();
    let hyper: Vec<_> = step
        .graph
        .scalars
        .iter()
        .map(|s| {
            let (role, value) = match s {
                ScalarInput::LearningRate { .. } => ("learning_rate", json!(decimal(lr))),
                ScalarInput::WeightDecay { .. } => ("weight_decay", json!(decimal(weight_decay))),
                _ => ("other", serde_json::Value::Null),
            };
            json!({ "name": s.name(), "role": role, "dtype": dtype_name(Some(s.dtype())), "shape": [], "value": value })
        })
        .collect();
    let state: Vec<_> = entries
        .iter()
        .map(|e| {
            let mut entry = json!({
                "input": e.input,
                "output": e.output,
                "role": e.role,
                "dtype": dtype_name(Some(e.initial.data_type())),
                "shape": e.initial.dims,
            });
            if let Some(param) = &e.param {
                entry["param"] = json!(param);
            }
            entry
        })
        .collect();
    let nexts: HashSet<&str> = entries.iter().filter_map(|e| e.output.as_deref()).collect();
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name()).filter(|o| !nexts.contains(o)).collect();
    let (kind, constants) = match step.config.kind {
        OptimizerKind::AdamW { beta1, beta2, eps } => {
            ("adamw", json!({ "beta1": decimal(beta1), "beta2": decimal(beta2), "eps": decimal(eps) }))
        }
        OptimizerKind::Sgd { momentum, nesterov } => ("sgd", json!({ "momentum": momentum, "nesterov": nesterov })),
    };
    json!({
        "format": "memeguard-training-step/1",
        "model": "training_step.onnx",
        "initial_state": "initial_state.safetensors",
        "loss": step.loss,
        "optimizer": { "kind": kind, "constants": constants, "max_grad_norm": step.config.max_grad_norm.map(decimal) },
        "data_inputs": data,
        "hyperparameters": hyper,
        "state": state,
        "outputs": outputs,
    })
}

/// Every state input's starting value, as safetensors (a JSON header and little-endian
/// bytes: numpy alone reads it, see docs/training.md).
pub(super) fn write_initial_state(entries: &[StateEntry], path: &Path) -> anyhow::Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = entries
        .iter()
        .map(|e| {
            let dtype = match e.initial.data_type() {
                DataType::Float => Dtype::F32,
                DataType::Double => Dtype::F64,
                DataType::Int64 => Dtype::I64,
                other => bail!("state `{}` is {other:?}, which initial_state.safetensors does not hold", e.input),
            };
            let shape = e.initial.dims.iter().map(|&d| d as usize).collect();
            Ok((e.input.clone(), dtype, shape, e.initial.to_proto(&e.input).raw_data.unwrap_or_default()))
        })
        .collect::<anyhow::Result<_>>()?;
    let views = raw
        .iter()
        .map(|(name, dtype, shape, bytes)| Ok((name.clone(), TensorView::new(*dtype, shape.clone(), bytes)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let metadata = BTreeMap::from([("format".to_string(), "memeguard-training-step/1".to_string())]);
    let bytes = safetensors::serialize(views, Some(metadata.into_iter().collect()))?;
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
