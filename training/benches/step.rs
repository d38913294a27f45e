//! Training-step benchmark on CPU: step time and peak memory (RSS) for a small CNN, a small
//! ViT block stack and a small text encoder at fixed batch sizes, and the overhead of our
//! step loop (`Trainer::step`: IO binding, state swap, scalar inputs, loss readback) over a
//! bare `session.run` of the same step graph.
//!
//!   cargo bench -p memeguard-training --bench step             # all families
//!   cargo bench -p memeguard-training --bench step -- vit      # one family
//!   cargo bench -p memeguard-training --bench step -- --vs-pytorch [family...]
//!   cargo bench -p memeguard-training --bench step -- --sweep [--threads=1] [family...]
//!   cargo bench -p memeguard-training --bench step -- --profile [--threads=1] [family...]
//!
//! `--vs-pytorch` alternates blocks of our steps with blocks of the same architecture's
//! steps in PyTorch (`scripts/bench/step_pytorch.py`, run by `.cache/bench-venv`'s Python
//! or `$BENCH_PYTHON`; `make bench-venv`), at 1 and 2 threads (`--threads=1,2`). `--sweep`
//! alternates the step under several ONNX Runtime session options in one process.
//! `--profile` runs ONNX Runtime's profiler on the bare step and sums kernel time per op
//! type and per part of the graph (forward, backward, optimizer). Session options for
//! the other modes: `--opt=basic|extended|all`, `--no-mem-pattern`, `--no-spin`, `--ftz`,
//! `--threads=N`. `--conv-grad` times the conv-gradient formulations per ResNet-18 shape.
//!
//! Each family runs in its own child process so that its peak RSS is its own. The graphs
//! are built here with `GraphBuilder` (small stand-ins for the models crate's ResNet, ViT
//! and text encoder), differentiated by `autodiff`, with AdamW and global-norm clipping.
//! Results go to docs/benchmarks.md ("Training step").

use std::time::Instant;

use memeguard_onnx::{Attr, DataType, Tensor, dims, encode_model};
use memeguard_package::onnxruntime::{OptimizationLevel, SessionOptions, session_builder, session_from_bytes};
use memeguard_package::tensor_value::to_value;
use memeguard_training::autodiff::Options;
use memeguard_training::graph_spec::{Mode, ModelGraph};
use memeguard_training::losses::soft_cross_entropy;
use memeguard_training::models::layers::linear;
use memeguard_training::models::net::{GraphOutput, Net as ModelNet};
use memeguard_training::models::resnet::{ResNetConfig, resnet};
use memeguard_training::optim::{
    OptimizerConfig, OptimizerKind, ScalarInput, StepGraph, UpdateLayout, differentiate_step, differentiate_step_with,
};
use memeguard_training::runtime::{StepHyper, Trainer, TrainerConfig};

const WARMUP: usize = 3;
const STEPS: usize = 40;
const BLOCK: usize = 5;
const FAMILIES: [&str; 4] = ["mlp", "cnn", "vit", "text"];
/// Families of `--vs-pytorch`, `--sweep` and `--profile` when none is named.
const VS_FAMILIES: [&str; 5] = ["mlp", "cnn", "vit", "text", "resnet18"];

#[path = "../tests/optim_fixtures/net.rs"]
mod net;
use net::{Net, cnn_classifier, onehot, text_classifier, uniform as values};

/// A benchmark case: the forward graph with its loss, the batch, and a description.
struct Case {
    model: ModelGraph,
    loss: String,
    batch: Vec<(String, Tensor)>,
    description: String,
}

/// 3 conv-BN-ReLU stages (16, 32, 64 channels; strides 1, 2, 2), global pool, linear head.
fn cnn() -> Case {
    let (b, hw, classes) = (32usize, 32i64, 10i64);
    let (model, loss) = cnn_classifier(3, hw, &[(16, 1), (32, 2), (64, 2)], classes);
    let batch = vec![
        ("pixels".into(), Tensor::f32(vec![b as i64, 3, hw, hw], values(99, b * 3 * (hw * hw) as usize, 1.0))),
        ("onehot".into(), onehot(b, classes as usize)),
    ];
    Case { model, loss, batch, description: format!("CNN 3×conv-BN-ReLU (16/32/64 ch), batch {b}, 3×{hw}×{hw}") }
}

/// Patch embedding (4×4 conv), 4 pre-norm blocks (D 64, 4 heads, MLP 256), mean pool, head.
fn vit() -> Case {
    let (b, hw, d, classes) = (32usize, 32i64, 64i64, 10i64);
    let tokens = (hw / 4) * (hw / 4);
    let mut net = Net::new("bench_vit");
    let x = net.g.input("pixels", DataType::Float, &dims!["batch", 3, hw, hw]);
    let w = net.param("patch.weight", &[d, 3, 4, 4], Some(48), 0.0, true);
    let bias = net.param("patch.bias", &[d], None, 0.0, false);
    let p = net.g.op("Conv", &[&x, &w, &bias], &[("strides", Attr::Ints(vec![4, 4]))]);
    let flat_shape = net.g.const_i64s("patch_shape", &[0, d, tokens]);
    let p = net.g.op("Reshape", &[&p, &flat_shape], &[]);
    let mut h = net.g.op("Transpose", &[&p], &[("perm", Attr::Ints(vec![0, 2, 1]))]);
    let pos = net.param("pos_embed", &[1, tokens, d], Some(d), 0.0, false);
    h = net.g.op("Add", &[&h, &pos], &[]);
    for i in 0..4 {
        h = net.block(&format!("block{i}"), &h, d, 4);
    }
    let loss = net.token_classifier_loss(&h, d, classes);
    let (model, loss) = net.finish(loss);
    let batch = vec![
        ("pixels".into(), Tensor::f32(vec![b as i64, 3, hw, hw], values(98, b * 3 * (hw * hw) as usize, 1.0))),
        ("onehot".into(), onehot(b, classes as usize)),
    ];
    Case {
        model,
        loss,
        batch,
        description: format!("ViT 4 blocks (D {d}, 4 heads, {tokens} tokens), batch {b}, 3×{hw}×{hw}"),
    }
}

/// Token + position embeddings, 2 pre-norm blocks (D 64, 4 heads), mean pool, head.
fn text() -> Case {
    let (b, len, vocab, d, classes) = (32usize, 32i64, 1000i64, 64i64, 2i64);
    let (model, loss) = text_classifier(vocab, len, d, 4, 2, classes);
    let ids: Vec<i64> = (0..b * len as usize).map(|i| ((i * 7919) % vocab as usize) as i64).collect();
    let batch = vec![
        ("input_ids".into(), Tensor::i64(vec![b as i64, len], ids)),
        ("onehot".into(), onehot(b, classes as usize)),
    ];
    Case {
        model,
        loss,
        batch,
        description: format!("text encoder 2 blocks (D {d}, vocab {vocab}), batch {b}, length {len}"),
    }
}

/// A tiny MLP (64 → 256 → 256 → 10), where the loop's fixed per-step cost shows most.
fn mlp() -> Case {
    let (b, d, hidden, classes) = (256usize, 64i64, 256i64, 10i64);
    let mut net = Net::new("bench_mlp");
    let x = net.g.input("features", DataType::Float, &dims!["batch", d]);
    let h = net.linear("fc1", &x, d, hidden);
    let h = net.g.op("Relu", &[&h], &[]);
    let h = net.linear("fc2", &h, hidden, hidden);
    let h = net.g.op("Relu", &[&h], &[]);
    let logits = net.linear("head", &h, hidden, classes);
    let loss = net.cross_entropy(&logits, classes);
    let (model, loss) = net.finish(loss);
    let batch = vec![
        ("features".into(), Tensor::f32(vec![b as i64, d], values(97, b * d as usize, 1.0))),
        ("onehot".into(), onehot(b, classes as usize)),
    ];
    Case { model, loss, batch, description: format!("MLP {d}→{hidden}→{hidden}→{classes}, batch {b}") }
}

/// torchvision's ResNet-18 layout (the models crate's) at 64×64, 10-class linear head.
fn resnet18() -> Case {
    let (b, hw, classes) = (16usize, 64i64, 10i64);
    let mut net = ModelNet::new("bench_resnet18", Mode::Train, 0);
    let pixels = net.b.input("pixels", DataType::Float, &dims!["batch", 3, hw, hw]);
    let features = resnet(&mut net, &ResNetConfig::resnet18().at_size(hw as usize), "image", &pixels);
    let logits = linear(&mut net, "head", &features, 512, classes as usize, true);
    let onehot_input = net.b.input("onehot", DataType::Float, &dims!["batch", classes]);
    let loss = soft_cross_entropy(&mut net.b, &logits, &onehot_input).expect("float logits");
    let model = net.finish(&[GraphOutput::f32(&loss, "loss", vec![])]);
    let batch = vec![
        ("pixels".into(), Tensor::f32(vec![b as i64, 3, hw, hw], values(96, b * 3 * (hw * hw) as usize, 1.0))),
        ("onehot".into(), onehot(b, classes as usize)),
    ];
    Case { model, loss: "loss".into(), batch, description: format!("ResNet-18, batch {b}, 3×{hw}×{hw}") }
}

fn case(family: &str) -> Case {
    match family {
        "mlp" => mlp(),
        "cnn" => cnn(),
        "vit" => vit(),
        "text" => text(),
        "resnet18" => resnet18(),
        other => panic!("unknown family `{other}` (use one of {VS_FAMILIES:?})"),
    }
}

/// Peak resident set size of this process so far, in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The bare `session.run` of the step graph: every input (state, scalars, batch) prepared
/// once as ONNX Runtime values, every output fetched; nothing fed back. The state is the
/// trainer's after its warm-up, so both loops compute on the same kind of values (initial
/// values differ: zero moments, for one, make different denormal and cache behaviour).
struct BareRun {
    session: ort::session::Session,
    inputs: Vec<(String, ort::value::DynValue)>,
}

impl BareRun {
    fn new(step: &StepGraph, trainer: &Trainer, batch: &[(String, Tensor)]) -> Self {
        let session = session_from_bytes(&encode_model(&step.graph.model), &SessionOptions::default()).unwrap();
        Self::with_session(session, step, trainer, batch)
    }

    fn with_session(
        session: ort::session::Session,
        step: &StepGraph,
        trainer: &Trainer,
        batch: &[(String, Tensor)],
    ) -> Self {
        let mut inputs: Vec<(String, ort::value::DynValue)> = Vec::new();
        for slot in &step.slots {
            inputs.push((slot.name.clone(), to_value(&trainer.value(&slot.name).unwrap()).unwrap()));
        }
        for scalar in &step.graph.scalars {
            let value = match scalar {
                ScalarInput::ApplyUpdate => Tensor::bool(Vec::<i64>::new(), vec![true]),
                ScalarInput::Step => Tensor::scalar_f32(1.0),
                _ => Tensor::scalar_f32(1e-3),
            };
            inputs.push((scalar.name(), to_value(&value).unwrap()));
        }
        for (name, t) in batch {
            inputs.push((name.clone(), to_value(t).unwrap()));
        }
        BareRun { session, inputs }
    }

    /// One run, in milliseconds.
    fn run_ms(&mut self) -> f64 {
        let feeds: Vec<(&str, &ort::value::DynValue)> = self.inputs.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let start = Instant::now();
        drop(self.session.run(feeds).unwrap());
        start.elapsed().as_secs_f64() * 1e3
    }
}

fn run_family(family: &str, session: &SessionOptions) {
    let case = case(family);
    let params = case.model.parameter_count();
    let config = OptimizerConfig::new(OptimizerKind::adamw()).with_clipping(1.0);
    let step = match differentiate_step(&case.model, &case.loss, &config, &Options::default()) {
        Ok(step) => step,
        Err(e) => {
            println!("| {} | — | — | — | — | — | — | — | not run: {e} |", case.description);
            return;
        }
    };
    let nodes = step.graph.model.graph.as_ref().map_or(0, |g| g.node.len());
    let bare_step = step.clone();
    let mut trainer = Trainer::new(step, &trainer_config(session)).unwrap();
    let hyper = StepHyper::new(1e-3, 0.05);
    let mut losses = Vec::new();
    let mut overheads = Vec::new();
    let mut run_times = Vec::new();
    let mut ours_ms = |trainer: &mut Trainer| {
        let report = trainer.step(case.batch.clone(), &hyper).unwrap();
        losses.push(report.loss);
        let (step, run) = (report.step_time.as_secs_f64() * 1e3, report.run_time.as_secs_f64() * 1e3);
        overheads.push(step - run);
        run_times.push(run);
        step
    };
    for _ in 0..WARMUP {
        ours_ms(&mut trainer);
    }
    // Peak RSS of the training path alone, before the bare session exists.
    let rss = peak_rss_mib();
    let mut bare = BareRun::new(&bare_step, &trainer, &case.batch);
    for _ in 0..WARMUP {
        bare.run_ms();
    }
    // Alternate blocks of both loops so that load changes on the machine hit both alike.
    let (mut times, mut bare_times) = (Vec::new(), Vec::new());
    for _ in 0..STEPS / BLOCK {
        for _ in 0..BLOCK {
            times.push(ours_ms(&mut trainer));
        }
        for _ in 0..BLOCK {
            bare_times.push(bare.run_ms());
        }
    }
    // Only the timed steps (the warm-up ones come first).
    let mut overheads = overheads.split_off(WARMUP);
    let mut run_times = run_times.split_off(WARMUP);
    let ours = median(&mut times);
    let theirs = median(&mut bare_times);
    let (ours_min, theirs_min) = (times[0], bare_times[0]);
    let run = median(&mut run_times);
    let overhead = median(&mut overheads);
    println!(
        "| {} | {:.2} M | {} | {:.1} ({:.1}) | {:.1} | {:.2} ({:.1} %) | {:.1} ({:.1}) | {:.0} | loss {:.3} → {:.3} |",
        case.description,
        params as f64 / 1e6,
        nodes,
        ours,
        ours_min,
        run,
        overhead,
        100.0 * overhead / ours,
        theirs,
        theirs_min,
        rss,
        losses[0],
        losses[losses.len() - 1],
    );
}

/// Command-line flags shared by the parent and its child processes.
#[derive(Debug, Clone)]
struct Flags {
    families: Vec<String>,
    vs_pytorch: bool,
    sweep: bool,
    profile: bool,
    threads: Vec<usize>,
    session: SessionOptions,
    /// The flags as given, forwarded to children.
    raw: Vec<String>,
}

impl Flags {
    fn parse() -> Self {
        let mut flags = Flags {
            families: Vec::new(),
            vs_pytorch: false,
            sweep: false,
            profile: false,
            threads: Vec::new(),
            session: trainer_config(&SessionOptions::default()).session,
            raw: Vec::new(),
        };
        for arg in std::env::args().skip(1) {
            let Some(flag) = arg.strip_prefix("--") else {
                flags.families.push(arg);
                continue;
            };
            match flag.split_once('=').unwrap_or((flag, "")) {
                ("vs-pytorch", _) => flags.vs_pytorch = true,
                ("sweep", _) => flags.sweep = true,
                ("profile", _) => flags.profile = true,
                ("threads", list) => {
                    flags.threads = list.split(',').map(|t| t.parse().expect("--threads=N[,M]")).collect()
                }
                ("opt", level) => flags.session.optimization_level = level.parse().unwrap(),
                ("no-mem-pattern", _) => flags.session.memory_pattern = false,
                ("no-spin", _) => flags.session.intra_op_spinning = false,
                ("ftz", _) => flags.session.denormal_as_zero = true,
                // cargo bench passes --bench; other harness flags are ignored too.
                _ => continue,
            }
            if !flag.starts_with("threads") {
                flags.raw.push(arg.clone());
            }
        }
        flags
    }
}

/// The trainer's config (deterministic kernels, as `memeguard-train` runs) with the
/// bench's session options.
fn trainer_config(session: &SessionOptions) -> TrainerConfig {
    let mut config = TrainerConfig::default();
    config.session = SessionOptions { deterministic: config.session.deterministic, ..session.clone() };
    config
}

fn build(case: &Case) -> StepGraph {
    build_with(case, UpdateLayout::default())
}

fn build_with(case: &Case, layout: UpdateLayout) -> StepGraph {
    let config = OptimizerConfig::new(OptimizerKind::adamw()).with_clipping(1.0);
    differentiate_step_with(&case.model, &case.loss, &config, &Options::default(), layout).unwrap()
}

/// The step with the per-parameter update layout (as before issue #13's speed work, except
/// that AdamW's folding of the clipping coefficient applies to both layouts) and ONNX
/// Runtime's default options (deterministic, as the trainer runs).
fn before(case: &Case, threads: usize) -> Trainer {
    let session = SessionOptions { threads, ..trainer_config(&SessionOptions::default()).session };
    Trainer::new(build_with(case, UpdateLayout::PerParameter), &trainer_config(&session)).unwrap()
}

fn summary(times: &mut [f64]) -> String {
    let m = median(times);
    format!("{m:.1} ({:.1})", times[0])
}

/// The PyTorch side of `--vs-pytorch`: the companion script, kept running, answering
/// "N" with N step times.
struct PyTorch {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    banner: String,
}

impl PyTorch {
    fn start(family: &str, threads: usize) -> Result<Self, String> {
        use std::io::BufRead;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = std::env::var_os("BENCH_PYTHON")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root.join(".cache/bench-venv/bin/python"));
        let mut child = std::process::Command::new(&python)
            .arg(root.join("scripts/bench/step_pytorch.py"))
            .arg(family)
            .arg(format!("--threads={threads}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {} ({e}): make bench-venv", python.display()))?;
        let stdin = child.stdin.take().unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        stdout.read_line(&mut banner).map_err(|e| e.to_string())?;
        if !banner.starts_with("ready") {
            return Err(format!("the PyTorch script did not start (is torch in {}?)", python.display()));
        }
        Ok(PyTorch { child, stdin, stdout, banner: banner.trim().to_string() })
    }

    fn steps(&mut self, n: usize) -> Vec<f64> {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "{n}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.split_whitespace().map(|t| t.parse().unwrap()).collect()
    }
}

impl Drop for PyTorch {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

/// Our `Trainer::step` before and now, and PyTorch's step of the same architecture,
/// alternating blocks of each.
fn vs_pytorch(family: &str, threads: usize, session: &SessionOptions) {
    let case = case(family);
    let session = SessionOptions { threads, ..session.clone() };
    let mut now = Trainer::new(build(&case), &trainer_config(&session)).unwrap();
    let mut old = before(&case, threads);
    let hyper = StepHyper::new(1e-3, 0.05);
    let ours_ms =
        |trainer: &mut Trainer| trainer.step(case.batch.clone(), &hyper).unwrap().step_time.as_secs_f64() * 1e3;
    for _ in 0..WARMUP {
        ours_ms(&mut now);
        ours_ms(&mut old);
    }
    let mut torch = match PyTorch::start(family, threads) {
        Ok(t) => t,
        Err(e) => {
            println!("| {} | {threads} | — | — | — | — | PyTorch not run: {e} |", case.description);
            return;
        }
    };
    let (mut ours, mut ours_before, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    let steps = if family == "resnet18" { 20 } else { STEPS };
    for _ in 0..steps / BLOCK {
        for _ in 0..BLOCK {
            ours_before.push(ours_ms(&mut old));
        }
        for _ in 0..BLOCK {
            ours.push(ours_ms(&mut now));
        }
        theirs.extend(torch.steps(BLOCK));
    }
    let ratio = median(&mut ours) / median(&mut theirs);
    println!(
        "| {} | {threads} | {} | {} | {} | {ratio:.2} | {} |",
        case.description,
        summary(&mut ours_before),
        summary(&mut ours),
        summary(&mut theirs),
        torch.banner
    );
}

/// The step under several update layouts and session options, alternating blocks of
/// each in one process.
fn sweep(family: &str, threads: usize) {
    let case = case(family);
    let base = SessionOptions { threads, ..trainer_config(&SessionOptions::default()).session };
    let per_parameter = build_with(&case, UpdateLayout::PerParameter);
    let default = build(&case);
    let mut variants: Vec<(String, StepGraph, SessionOptions)> = vec![
        ("per-parameter update, default session options (before)".into(), per_parameter.clone(), base.clone()),
        (
            "per-parameter update, extended".into(),
            per_parameter.clone(),
            SessionOptions { optimization_level: OptimizationLevel::Extended, ..base.clone() },
        ),
        (
            "per-parameter update, basic".into(),
            per_parameter.clone(),
            SessionOptions { optimization_level: OptimizationLevel::Basic, ..base.clone() },
        ),
        (
            "per-parameter update, no memory pattern".into(),
            per_parameter.clone(),
            SessionOptions { memory_pattern: false, ..base.clone() },
        ),
        (
            "per-parameter update, no spinning".into(),
            per_parameter.clone(),
            SessionOptions { intra_op_spinning: false, ..base.clone() },
        ),
        (
            "per-parameter update, denormals as zero".into(),
            per_parameter.clone(),
            SessionOptions { denormal_as_zero: true, ..base.clone() },
        ),
        (
            "per-parameter update, not deterministic".into(),
            per_parameter,
            SessionOptions { deterministic: false, ..base.clone() },
        ),
    ];
    for max in [1usize << 12, 1 << 20] {
        let layout = UpdateLayout::MultiTensor { max_elements: max };
        variants.push((format!("multi-tensor ≤ {max} elements"), build_with(&case, layout), base.clone()));
    }
    variants.push((format!("{:?} (default)", UpdateLayout::default()), default, base.clone()));
    let hyper = StepHyper::new(1e-3, 0.05);
    let mut trainers: Vec<Trainer> = variants
        .iter()
        .map(|(_, step, o)| Trainer::new(step.clone(), &TrainerConfig { session: o.clone(), seed: 0 }).unwrap())
        .collect();
    let mut times = vec![Vec::new(); trainers.len()];
    for t in &mut trainers {
        for _ in 0..WARMUP {
            t.step(case.batch.clone(), &hyper).unwrap();
        }
    }
    let rounds = if family == "resnet18" { 3 } else { 8 };
    for _ in 0..rounds {
        for (t, times) in trainers.iter_mut().zip(&mut times) {
            for _ in 0..BLOCK {
                times.push(t.step(case.batch.clone(), &hyper).unwrap().step_time.as_secs_f64() * 1e3);
            }
        }
    }
    for ((name, step, _), times) in variants.iter().zip(&mut times) {
        let nodes = step.graph.model.graph.as_ref().map_or(0, |g| g.node.len());
        println!("| {} | {threads} | {name} | {nodes} | {} |", case.description, summary(times));
    }
}

/// ONNX Runtime's profile of the bare step: kernel time per op type and per part.
fn profile(family: &str, threads: usize, session: &SessionOptions) {
    let case = case(family);
    let step = build(&case);
    let forward_nodes = case.model.model.graph.as_ref().map_or(0, |g| g.node.len());
    let differentiated = memeguard_training::autodiff::differentiate_with(
        &case.model.model,
        &case.loss,
        &case.model.trainable(),
        &Options::default(),
    )
    .unwrap();
    let backward_end = differentiated.model.graph.as_ref().map_or(0, |g| g.node.len());
    let mut part_of = std::collections::HashMap::new();
    for (i, node) in step.graph.model.graph.as_ref().unwrap().node.iter().enumerate() {
        let part = if i < forward_nodes {
            "forward"
        } else if i < backward_end {
            "backward"
        } else {
            "optimizer"
        };
        part_of.insert(node.name.clone().unwrap_or_default(), part);
    }
    let trainer = Trainer::new(step.clone(), &trainer_config(&SessionOptions { threads, ..session.clone() })).unwrap();
    let dir = std::env::temp_dir().join(format!("memeguard-step-profile-{family}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let opts = SessionOptions { threads, ..trainer_config(session).session };
    let session = session_builder(&opts)
        .unwrap()
        .with_profiling(dir.join("profile"))
        .unwrap()
        .commit_from_memory(&encode_model(&step.graph.model))
        .unwrap();
    let mut bare = BareRun::with_session(session, &step, &trainer, &case.batch);
    let runs = 10;
    let mut wall = Vec::new();
    for _ in 0..WARMUP + runs {
        wall.push(bare.run_ms());
    }
    let file = bare.session.end_profiling().unwrap();
    let events: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let (mut by_op, mut by_part) = (BTreeMapF::new(), BTreeMapF::new());
    let mut total = 0.0;
    let mut seen_runs = 0;
    for e in &events {
        if e["name"] == "model_run" {
            seen_runs += 1;
        }
        // Skip the warm-up runs' kernels (events come in run order).
        if e["cat"] != "Node" || seen_runs < WARMUP || !e["name"].as_str().is_some_and(|n| n.ends_with("_kernel_time"))
        {
            continue;
        }
        let us = e["dur"].as_f64().unwrap_or(0.0) / runs as f64;
        let node = e["name"].as_str().unwrap().trim_end_matches("_kernel_time");
        let op = e["args"]["op_name"].as_str().unwrap_or("?").to_string();
        *by_op.entry(op).or_default() += us;
        *by_part.entry(part_of.get(node).copied().unwrap_or("fused by ONNX Runtime").to_string()).or_default() += us;
        total += us;
    }
    let mut wall = wall.split_off(WARMUP);
    println!(
        "### {} — {threads} thread(s), bare run median {:.1} ms; kernels {:.1} ms",
        case.description,
        median(&mut wall),
        total / 1e3
    );
    println!("| part | ms | share |\n| --- | --- | --- |");
    for (part, us) in &by_part {
        println!("| {part} | {:.1} | {:.0} % |", us / 1e3, 100.0 * us / total);
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
    println!("\n| op | ms | share |\n| --- | --- | --- |");
    for (op, us) in ops.iter().take(12) {
        println!("| {op} | {:.1} | {:.0} % |", us / 1e3, 100.0 * us / total);
    }
    println!();
}

type BTreeMapF = std::collections::BTreeMap<String, f64>;

/// Milliseconds per run (median of `reps`) of a one-node-ish graph on fixed inputs.
fn time_graph(model: &memeguard_onnx::proto::ModelProto, inputs: &[(&str, Tensor)], threads: usize) -> f64 {
    let opts = SessionOptions { threads, ..trainer_config(&SessionOptions::default()).session };
    let mut session = session_from_bytes(&encode_model(model), &opts).unwrap();
    let values: Vec<(String, ort::value::DynValue)> =
        inputs.iter().map(|(n, t)| (n.to_string(), to_value(t).unwrap())).collect();
    let mut times = Vec::new();
    for i in 0..23 {
        let feeds: Vec<(&str, &ort::value::DynValue)> = values.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let start = Instant::now();
        drop(session.run(feeds).unwrap());
        if i >= 3 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    median(&mut times)
}

/// A graph of one `op` node on float inputs of the given shapes.
fn one_node(op: &str, inputs: &[(&str, Vec<i64>)], attrs: &[(&str, Attr)]) -> memeguard_onnx::proto::ModelProto {
    let mut g = memeguard_onnx::GraphBuilder::new("conv_grad");
    let names: Vec<String> = inputs
        .iter()
        .map(|(n, d)| {
            g.input(n, DataType::Float, &d.iter().map(|&x| memeguard_onnx::Dim::Known(x)).collect::<Vec<_>>())
        })
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let y = g.op(op, &refs, attrs);
    g.output(&y, DataType::Float, &[]);
    g.build()
}

/// Item 4 of issue #13: the conv-gradient formulations per ResNet-18 shape (64×64,
/// batch 16), one op each: the forward Conv; dX as ConvTranspose (what autodiff emits)
/// and, for stride 1, as a Conv with the kernel transposed and flipped; dW as
/// autodiff's Conv over batch-as-channels (its Transposes not counted).
fn conv_grad(threads: usize) {
    let n = 16i64;
    // (name, c_in, c_out, kernel, stride, input side)
    let shapes = [
        ("layer1 3×3", 64i64, 64i64, 3i64, 1i64, 16i64),
        ("layer2.0 3×3 s2", 64, 128, 3, 2, 16),
        ("layer2 3×3", 128, 128, 3, 1, 8),
        ("layer2 downsample 1×1 s2", 64, 128, 1, 2, 16),
        ("layer3 3×3", 256, 256, 3, 1, 4),
        ("layer4 3×3", 512, 512, 3, 1, 2),
    ];
    println!(
        "| conv ({threads} thread) | forward Conv ms | dX ConvTranspose ms | dX as Conv ms | dW Conv (batch as channels) ms |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for (name, ci, co, k, s, hw) in shapes {
        let p = k / 2;
        let ho = (hw + 2 * p - k) / s + 1;
        let x = Tensor::f32(vec![n, ci, hw, hw], values(1, (n * ci * hw * hw) as usize, 1.0));
        let w = Tensor::f32(vec![co, ci, k, k], values(2, (co * ci * k * k) as usize, 0.1));
        let dy = Tensor::f32(vec![n, co, ho, ho], values(3, (n * co * ho * ho) as usize, 1.0));
        let geometry = |pads: i64, stride: i64| {
            vec![("pads", Attr::Ints(vec![pads; 4])), ("strides", Attr::Ints(vec![stride, stride]))]
        };
        let fwd = one_node("Conv", &[("x", x.dims.clone()), ("w", w.dims.clone())], &geometry(p, s));
        let fwd_ms = time_graph(&fwd, &[("x", x.clone()), ("w", w.clone())], threads);
        let mut ct_attrs = geometry(p, s);
        ct_attrs.push(("output_shape", Attr::Ints(vec![hw, hw])));
        let ct = one_node("ConvTranspose", &[("dy", dy.dims.clone()), ("w", w.dims.clone())], &ct_attrs);
        let ct_ms = time_graph(&ct, &[("dy", dy.clone()), ("w", w.clone())], threads);
        let as_conv = if s == 1 {
            // W'[c, o, i, j] = W[o, c, k−1−i, k−1−j]
            let wd = w.as_f32().unwrap();
            let mut flipped = vec![0.0; wd.len()];
            for o in 0..co {
                for c in 0..ci {
                    for i in 0..k {
                        for j in 0..k {
                            flipped[(((c * co + o) * k + i) * k + j) as usize] =
                                wd[(((o * ci + c) * k + (k - 1 - i)) * k + (k - 1 - j)) as usize];
                        }
                    }
                }
            }
            let wf = Tensor::f32(vec![ci, co, k, k], flipped);
            let m = one_node("Conv", &[("dy", dy.dims.clone()), ("w", wf.dims.clone())], &geometry(k - 1 - p, 1));
            format!("{:.2}", time_graph(&m, &[("dy", dy.clone()), ("w", wf)], threads))
        } else {
            "—".into()
        };
        // dW: Conv(Xᵀ [ci, n, hw, hw], dYᵀ [co, n, ho, ho], dilations = stride) → [ci, co, k', k']
        let xt = Tensor::f32(vec![ci, n, hw, hw], values(4, (n * ci * hw * hw) as usize, 1.0));
        let dyt = Tensor::f32(vec![co, n, ho, ho], values(5, (n * co * ho * ho) as usize, 1.0));
        let dw_attrs = vec![("pads", Attr::Ints(vec![p; 4])), ("dilations", Attr::Ints(vec![s, s]))];
        let dw = one_node("Conv", &[("x", xt.dims.clone()), ("dy", dyt.dims.clone())], &dw_attrs);
        let dw_ms = time_graph(&dw, &[("x", xt), ("dy", dyt)], threads);
        println!("| {name}: {ci}→{co}, {hw}×{hw} | {fwd_ms:.2} | {ct_ms:.2} | {as_conv} | {dw_ms:.2} |");
    }
}

fn main() {
    let flags = Flags::parse();
    if std::env::args().any(|a| a == "--conv-grad") {
        for t in if flags.threads.is_empty() { vec![1] } else { flags.threads.clone() } {
            conv_grad(t);
        }
        return;
    }
    let child = std::env::var_os("MEMEGUARD_STEP_BENCH_CHILD").is_some();
    let threads = |default: &[usize]| if flags.threads.is_empty() { default.to_vec() } else { flags.threads.clone() };
    if child {
        let family = &flags.families[0];
        let t = threads(&[0])[0];
        if flags.vs_pytorch {
            vs_pytorch(family, t, &flags.session);
        } else if flags.sweep {
            sweep(family, t);
        } else if flags.profile {
            profile(family, t, &flags.session);
        } else {
            run_family(family, &SessionOptions { threads: t, ..flags.session.clone() });
        }
        return;
    }
    let special = flags.vs_pytorch || flags.sweep || flags.profile;
    let families: Vec<String> = if !flags.families.is_empty() {
        flags.families.clone()
    } else if special {
        VS_FAMILIES.iter().map(|s| s.to_string()).collect()
    } else {
        FAMILIES.iter().map(|s| s.to_string()).collect()
    };
    let thread_list = threads(if flags.vs_pytorch {
        &[1, 2]
    } else if special {
        &[1]
    } else {
        &[0]
    });
    println!(
        "machine: {} logical CPUs; session options {:?}; {WARMUP} warm-up steps, median (min) of blocks of {BLOCK}, alternating",
        num_cpus(),
        flags.session
    );
    if flags.vs_pytorch {
        println!(
            "| model | threads | ours before ms, median (min) | ours now ms, median (min) | PyTorch ms, median (min) | now / PyTorch | PyTorch |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- |");
    } else if flags.sweep {
        println!("| model | threads | variant | step-graph nodes | `Trainer::step` ms, median (min) |");
        println!("| --- | --- | --- | --- | --- |");
    } else if !flags.profile {
        println!(
            "| model | params | step-graph nodes | Trainer::step ms, median (min) | of which in ONNX Runtime's run, ms | loop overhead ms (share) | bare session.run ms, median (min) | peak RSS MiB | loss first → last |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    }
    let exe = std::env::current_exe().unwrap();
    for t in thread_list {
        for family in &families {
            let status = std::process::Command::new(&exe)
                .env("MEMEGUARD_STEP_BENCH_CHILD", "1")
                .arg(family)
                .arg(format!("--threads={t}"))
                .args(&flags.raw)
                .status()
                .unwrap();
            if !status.success() {
                println!("| {family} | failed ({status}) |");
            }
        }
    }
}
fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
