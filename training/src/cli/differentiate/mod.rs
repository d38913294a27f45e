//! `memeguard-train differentiate`: training graphs for any ONNX model that computes its
//! own loss, in standard ONNX ops. A successor to ONNX Runtime training's
//! `generate_artifacts`: the gradient graph, and optionally a one-step training graph with
//! its state described in JSON and its initial values in safetensors.

mod artifacts;

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use anyhow::{Context, bail};
use memeguard_onnx::builder::{value_dims, value_dtype, value_info};
use memeguard_onnx::check::{MAX_RUNTIME_IR_VERSION, MAX_RUNTIME_OPSET};
use memeguard_onnx::proto::{GraphProto, ModelProto, NodeProto};
use memeguard_onnx::upgrade::{default_opset, upgrade_opset};
use memeguard_onnx::{DataType, Dim, OPSET_VERSION, check_model, load_model, save_model};
use memeguard_training::autodiff;
use memeguard_training::graph_spec::{Buffer, Param};
use memeguard_training::models::ImportedEncoder;
use memeguard_training::models::import::describe_dims;
use memeguard_training::optim::{OptimizerConfig, OptimizerKind, TrainingGraph, build_step_graph};

use artifacts::{carry_step_counter, manifest, name_buffer_outputs, state_entries, write_initial_state};

const LONG_ABOUT: &str = "\
Differentiate an ONNX model that computes its own loss, and build a training step for
ONNX Runtime, in standard ONNX ops only (any ONNX Runtime 1.31 build runs it: no
training build, no custom ops). A successor to ONNX Runtime training's generate_artifacts.

1. Export the model with its loss as an output, the labels as an input. From PyTorch:

     class WithLoss(torch.nn.Module):
         def __init__(self, net): super().__init__(); self.net = net
         def forward(self, x, labels):
             return torch.nn.functional.cross_entropy(self.net(x), labels)
     model = WithLoss(net).train()
     torch.onnx.export(model, (x, labels), 'model.onnx', input_names=['x', 'labels'],
         output_names=['loss'], opset_version=17, dynamo=False,
         training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)

   Training mode keeps BatchNorm in its training form (batch statistics, running
   statistics as outputs); constant folding off keeps the weights as initializers.

2. Differentiate, and build the step:

     memeguard-train differentiate model.onnx --loss loss --optimizer adamw \\
         --lr 1e-3 --weight-decay 0.01 --out artifacts/

   artifacts/gradient.onnx        the forward graph; its outputs plus <param>_grad for
                                  each trainable parameter
   artifacts/training_step.onnx   one optimizer step: inputs are the data, the state and
                                  the hyperparameters (lr.all, weight_decay.all); outputs
                                  are the forward outputs and <state>.next for each state
   artifacts/training_step.json   every state input -> output pair with its role
                                  (parameter, buffer, adam_m, adam_v, momentum, step),
                                  shape and dtype; the data inputs; the hyperparameters
   artifacts/initial_state.safetensors   the starting value of every state input

3. Train: feed the data, the state and the hyperparameters, run, feed each
   <state>.next back as <state>. docs/training.md shows a loop in Python with numpy.

Trainable parameters are the float32 initializers with more than one element, except
BatchNorm running statistics (which become buffers updated by the forward pass). Pick
them with --wrt (any float32 initializer) or drop some with --frozen; frozen ones stay
constants of the graphs. AdamW and SGD follow torch.optim's semantics; weight decay
applies to every trainable parameter, as torch.optim.AdamW(model.parameters()) does.";

/// Options of `memeguard-train differentiate`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Gradient and training-step graphs for an ONNX model that computes its own loss",
    long_about = LONG_ABOUT
)]
pub struct Args {
    /// The forward graph, with the loss as one of its outputs.
    pub model: PathBuf,
    /// The graph output holding the scalar loss.
    #[arg(long)]
    pub loss: String,
    /// Differentiate with respect to these initializers only.
    #[arg(long, num_args = 1.., value_name = "NAME", conflicts_with = "frozen")]
    pub wrt: Vec<String>,
    /// Keep these initializers fixed (all others are trainable).
    #[arg(long, num_args = 1.., value_name = "NAME")]
    pub frozen: Vec<String>,
    /// Also build training_step.onnx with this optimizer.
    #[arg(long, value_enum)]
    pub optimizer: Option<Optimizer>,
    /// Learning rate written as the default of the `lr.all` input (required with --optimizer).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Weight decay, the default of `weight_decay.all` [default: 0.01 for AdamW, 0 for SGD].
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// AdamW's β₁.
    #[arg(long, default_value_t = 0.9)]
    pub beta1: f32,
    /// AdamW's β₂.
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f32,
    /// AdamW's ε.
    #[arg(long, default_value_t = 1e-8)]
    pub eps: f32,
    /// SGD's momentum (0: plain SGD).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f32,
    /// SGD with Nesterov momentum.
    #[arg(long)]
    pub nesterov: bool,
    /// Clip the global gradient norm to this value (output `optim.grad_norm`).
    #[arg(long)]
    pub max_grad_norm: Option<f32>,
    /// Output folder (created).
    #[arg(long)]
    pub out: PathBuf,
}

/// The optimizers of the step graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Optimizer {
    Adamw,
    Sgd,
}

/// The parameter group every trainable parameter belongs to: inputs `lr.all`, `weight_decay.all`.
const GROUP: &str = "all";

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut model = load_model(&args.model).with_context(|| format!("cannot read {}", args.model.display()))?;
    let source = args.model.display().to_string();
    // Settings first: a refusal leaves nothing half-written.
    let optimizer = match args.optimizer {
        Some(optimizer) => Some(optimizer_settings(optimizer, &args)?),
        None => None,
    };
    refuse_foreign_nodes(&model, &source)?;
    bring_to_supported_opset(&mut model, &source)?;
    let graph = model.graph.as_ref().context("the model has no graph")?;
    let outputs: Vec<&str> = graph.output.iter().filter_map(|v| v.name.as_deref()).collect();
    if !outputs.contains(&args.loss.as_str()) {
        bail!(
            "{source} has no output `{}`; its outputs are: {}. Pass the loss output with --loss \
             (export the loss as an output, e.g. output_names=['loss'])",
            args.loss,
            outputs.join(", ")
        );
    }
    refuse_non_scalar_loss(graph, &args.loss, &source)?;
    let buffers = batch_norm_buffers(graph);
    let trainable = select_trainable(graph, &buffers, &args)?;
    refuse_missing_rules(&model, &args.loss, &trainable, &source)?;

    let differentiated = autodiff::differentiate(&model, &args.loss, &trainable)
        .with_context(|| format!("cannot differentiate `{}` of {source}", args.loss))?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;

    let gradient = gradient_model(&differentiated, graph)?;
    let path = args.out.join("gradient.onnx");
    save_model(&gradient, &path).with_context(|| format!("cannot write {}", path.display()))?;
    let elements: i64 =
        trainable.iter().filter_map(|p| initializer(graph, p)).map(|t| t.dims.iter().product::<i64>()).sum();
    println!(
        "{}: the forward outputs and the gradients of `{}` w.r.t. {} trainable parameters ({elements} values)",
        path.display(),
        args.loss,
        trainable.len()
    );
    for (param, grad) in &differentiated.grads {
        if *grad != format!("{param}_grad") {
            println!("  the gradient of `{param}` is `{grad}` (`{param}_grad` names another value)");
        }
    }

    let Some((config, lr, weight_decay)) = optimizer else {
        return Ok(());
    };
    let params: Vec<Param> = trainable
        .iter()
        .map(|name| Param { name: name.clone(), trainable: true, weight_decay: true, group: GROUP.into() })
        .collect();
    let training = TrainingGraph {
        model: &differentiated.model,
        loss: &args.loss,
        grads: &differentiated.grads,
        params: &params,
        buffers: &buffers,
    };
    let mut step = build_step_graph(&training, &config).context("cannot build the training step")?;
    let mut entries = state_entries(&step);
    entries.extend(carry_step_counter(&mut step)?);
    name_buffer_outputs(&mut step, &mut entries)?;
    let path = args.out.join("training_step.onnx");
    save_model(&step.graph.model, &path).with_context(|| format!("cannot write {}", path.display()))?;
    let manifest = manifest(&step, &entries, lr, weight_decay);
    let json_path = args.out.join("training_step.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&manifest)? + "\n")
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let state_path = args.out.join("initial_state.safetensors");
    write_initial_state(&entries, &state_path)?;
    println!(
        "{}: one {} step; {} state values ({} parameters, {} buffers), described in {}, initial values in {}",
        path.display(),
        config.kind.name(),
        entries.len(),
        params.len(),
        buffers.len(),
        json_path.display(),
        state_path.display()
    );
    Ok(())
}

/// Custom-domain ops and control flow: every offending node at once.
fn refuse_foreign_nodes(model: &ModelProto, source: &str) -> anyhow::Result<()> {
    let graph = model.graph.as_ref().with_context(|| format!("{source} has no graph"))?;
    let mut problems = Vec::new();
    for node in &graph.node {
        let label = format!("node `{}` ({})", node.name(), node.op_type());
        let domain = node.domain.as_deref().unwrap_or("");
        if !(domain.is_empty() || domain == "ai.onnx") {
            problems.push(format!("{label} is in domain `{domain}`"));
        }
        if node.attribute.iter().any(|a| a.g.is_some() || !a.graphs.is_empty()) {
            problems.push(format!("{label} has a subgraph (control flow)"));
        }
    }
    if !problems.is_empty() {
        bail!(
            "{source} cannot be differentiated:\n  {}\nOnly standard ONNX ops without control flow are supported: \
             re-export without custom ops (torch.onnx.export's default operator_export_type) and with loops unrolled.",
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// Opsets 13-19 are rewritten to opset 20, the gradient rules' opset; up to what ONNX
/// Runtime 1.31 runs is kept as it is.
fn bring_to_supported_opset(model: &mut ModelProto, source: &str) -> anyhow::Result<()> {
    let opset = default_opset(model).with_context(|| format!("{source} imports no default-domain opset"))?;
    if opset > MAX_RUNTIME_OPSET {
        bail!(
            "{source} uses opset {opset}; ONNX Runtime 1.31 runs opsets up to {MAX_RUNTIME_OPSET}: re-export with \
             opset_version={OPSET_VERSION}"
        );
    }
    if model.ir_version.unwrap_or(0) > MAX_RUNTIME_IR_VERSION {
        bail!(
            "{source} has IR version {}; ONNX Runtime 1.31 reads up to {MAX_RUNTIME_IR_VERSION}: re-export with an \
             older onnx package",
            model.ir_version.unwrap_or(0)
        );
    }
    upgrade_opset(model).with_context(|| {
        format!(
            "{source} (opset {opset}) cannot be brought to opset {OPSET_VERSION}: re-export with opset_version=17 or 20"
        )
    })
}

/// A loss declared with a shape other than a scalar (rank 0 or all ones). Undeclared
/// shapes are left to autodiff, which infers them.
fn refuse_non_scalar_loss(graph: &GraphProto, loss: &str, source: &str) -> anyhow::Result<()> {
    let Some(output) = graph.output.iter().find(|o| o.name() == loss) else { return Ok(()) };
    if let Some(dtype) = value_dtype(output).filter(|t| !matches!(t, DataType::Float | DataType::Double)) {
        bail!("{source}: the loss `{loss}` is {dtype:?}; it must be a float32 or float64 scalar");
    }
    if let Some(dims) = value_dims(output).filter(|d| d.iter().any(|x| *x != Dim::Known(1))) {
        bail!(
            "{source}: the loss `{loss}` is declared {}; it must be a scalar: reduce it in the model before \
             exporting (e.g. `.mean()`), or pass the scalar loss output with --loss",
            describe_dims(&dims)
        );
    }
    Ok(())
}

/// BatchNormalization in training mode with its running statistics as outputs: the
/// statistics become buffers, their updated values the node's outputs 1 and 2.
fn batch_norm_buffers(graph: &GraphProto) -> Vec<Buffer> {
    let mut buffers = Vec::new();
    let mut inference = Vec::new();
    for node in graph.node.iter().filter(|n| n.op_type() == "BatchNormalization") {
        if !node.attribute.iter().any(|a| a.name() == "training_mode" && a.i() == 1) {
            inference.push(format!("`{}`", node.name()));
            continue;
        }
        for (stat, updated) in [(3, 1), (4, 2)] {
            let (Some(name), Some(next)) = (node.input.get(stat), node.output.get(updated)) else { continue };
            if !next.is_empty() && initializer(graph, name).is_some() {
                buffers.push(Buffer { name: name.clone(), updated: next.clone() });
            }
        }
    }
    if !inference.is_empty() {
        eprintln!(
            "warning: {} BatchNormalization node(s) ({}) are in inference mode: they normalise with their running \
             statistics and never update them. For batch statistics, export in training mode: \
             torch.onnx.export(..., training=torch.onnx.TrainingMode.TRAINING, dynamo=False)",
            inference.len(),
            inference.join(", ")
        );
    }
    buffers
}

fn initializer<'a>(graph: &'a GraphProto, name: &str) -> Option<&'a memeguard_onnx::proto::TensorProto> {
    graph.initializer.iter().find(|t| t.name.as_deref() == Some(name))
}

fn is_float32(t: &memeguard_onnx::proto::TensorProto) -> bool {
    t.data_type == Some(DataType::Float as i32)
}

/// The trainable parameters: `--wrt`, or every candidate less `--frozen`.
fn select_trainable(graph: &GraphProto, buffers: &[Buffer], args: &Args) -> anyhow::Result<Vec<String>> {
    let running: HashSet<&str> = graph
        .node
        .iter()
        .filter(|n| n.op_type() == "BatchNormalization")
        .flat_map(|n| n.input.iter().skip(3).map(String::as_str))
        .chain(buffers.iter().map(|b| b.name.as_str()))
        .collect();
    let candidates: Vec<String> = graph
        .initializer
        .iter()
        .filter(|t| is_float32(t) && t.dims.iter().product::<i64>() > 1)
        .filter_map(|t| t.name.clone())
        .filter(|n| !running.contains(n.as_str()))
        .collect();
    let listing = || format!("the candidates are: {}", candidates.join(", "));
    let chosen: Vec<String> = if !args.wrt.is_empty() {
        for name in &args.wrt {
            match initializer(graph, name) {
                Some(_) if running.contains(name.as_str()) => bail!(
                    "--wrt `{name}` is a BatchNorm running statistic: the forward pass updates it, not a gradient; {}",
                    listing()
                ),
                Some(t) if is_float32(t) => {}
                Some(_) => bail!("--wrt `{name}` is not a float32 initializer; {}", listing()),
                None => bail!("--wrt `{name}` is not an initializer of the model; {}", listing()),
            }
        }
        args.wrt.clone()
    } else {
        let unknown: Vec<&String> = args.frozen.iter().filter(|n| !candidates.contains(n)).collect();
        if !unknown.is_empty() {
            bail!(
                "--frozen {}: not a trainable parameter of the model; {}",
                unknown.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
                listing()
            );
        }
        candidates.iter().filter(|n| !args.frozen.contains(n)).cloned().collect()
    };
    let mut seen = BTreeSet::new();
    let chosen: Vec<String> = chosen.into_iter().filter(|n| seen.insert(n.clone())).collect();
    if chosen.is_empty() {
        bail!("no trainable parameter is left to differentiate; {}", listing());
    }
    Ok(chosen)
}

/// Every op without a gradient rule on a path from a trainable parameter to the loss,
/// with counts, in one message (through import's check, on a copy where the other
/// initializers are constants).
fn refuse_missing_rules(model: &ModelProto, loss: &str, trainable: &[String], source: &str) -> anyhow::Result<()> {
    let mut copy = model.clone();
    // The check reads op types only; import takes opsets up to OPSET_VERSION.
    for o in &mut copy.opset_import {
        if matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")) {
            o.version = o.version.map(|v| v.min(OPSET_VERSION));
        }
    }
    let graph = copy.graph.as_mut().expect("checked on load");
    let (params, constants): (Vec<_>, Vec<_>) = std::mem::take(&mut graph.initializer)
        .into_iter()
        .partition(|t| trainable.iter().any(|p| Some(p) == t.name.as_ref()));
    graph.initializer = params;
    let mut nodes: Vec<NodeProto> = constants
        .into_iter()
        .map(|t| NodeProto {
            output: vec![t.name.clone().unwrap_or_default()],
            op_type: Some("Constant".into()),
            attribute: vec![memeguard_onnx::proto::AttributeProto {
                name: Some("value".into()),
                r#type: Some(memeguard_onnx::proto::attribute_proto::AttributeType::Tensor as i32),
                t: Some(t),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    nodes.append(&mut graph.node);
    graph.node = nodes;
    let constants: HashSet<String> =
        graph.node.iter().filter(|n| n.op_type() == "Constant").flat_map(|n| n.output.clone()).collect();
    graph.input.retain(|v| !constants.contains(v.name()));
    let missing = ImportedEncoder::from_model(copy, source)
        .and_then(|e| e.into_output(Some(loss)))
        .map(|e| e.ops_without_gradient_rule())
        .with_context(|| format!("cannot check {source} for gradient rules"))?;
    if !missing.is_empty() {
        bail!(
            "{source}: these ops between the trainable parameters and `{loss}` have no gradient rule: {}.\n\
             Freeze the parameters that feed them (--frozen NAME…, or --wrt with the others), or re-export the \
             model without them. `memeguard-train models --ops` lists the ops that have rules.",
            missing.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// The differentiated model with each gradient declared a graph output, checked.
fn gradient_model(differentiated: &autodiff::Differentiated, forward: &GraphProto) -> anyhow::Result<ModelProto> {
    let mut model = differentiated.model.clone();
    let graph = model.graph.as_mut().expect("autodiff returns a graph");
    for (param, grad) in &differentiated.grads {
        let t = initializer(forward, param).expect("trainable parameters are initializers");
        let dims: Vec<Dim> = t.dims.iter().map(|&d| Dim::Known(d)).collect();
        if !graph.output.iter().any(|o| o.name() == grad) {
            graph.output.push(value_info(grad, DataType::Float, &dims));
        }
    }
    check_model(&model, true).context("the gradient graph is invalid (a bug in memeguard's autodiff)")?;
    Ok(model)
}

/// The optimizer's config and the defaults of its `lr.all` and `weight_decay.all` inputs.
fn optimizer_settings(optimizer: Optimizer, args: &Args) -> anyhow::Result<(OptimizerConfig, f32, f32)> {
    let lr = args.lr.context("--optimizer needs --lr (the default value of the `lr.all` input)")?;
    let weight_decay = args.weight_decay.unwrap_or(match optimizer {
        Optimizer::Adamw => 0.01,
        Optimizer::Sgd => 0.0,
    });
    // Written so that NaN is refused too.
    if !lr.is_finite() || lr <= 0.0 || !weight_decay.is_finite() || weight_decay < 0.0 {
        bail!("--lr must be positive and --weight-decay not negative (got {lr} and {weight_decay})");
    }
    Ok((optimizer_config(optimizer, args)?, lr, weight_decay))
}

fn optimizer_config(optimizer: Optimizer, args: &Args) -> anyhow::Result<OptimizerConfig> {
    let kind = match optimizer {
        Optimizer::Adamw => OptimizerKind::AdamW { beta1: args.beta1, beta2: args.beta2, eps: args.eps },
        Optimizer::Sgd => OptimizerKind::Sgd { momentum: args.momentum, nesterov: args.nesterov },
    };
    let mut config = OptimizerConfig::new(kind);
    if let Some(max) = args.max_grad_norm {
        if !max.is_finite() || max <= 0.0 {
            bail!("--max-grad-norm must be positive, not {max}");
        }
        config = config.with_clipping(max);
    }
    Ok(config)
}
