//! Training-step benchmark on CPU: step time and peak memory (RSS) for a small CNN, a small
//! ViT block stack and a small text encoder at fixed batch sizes, and the overhead of our
//! step loop (`Trainer::step`: IO binding, state swap, scalar inputs, loss readback) over a
//! bare `session.run` of the same step graph.
//!
//!   cargo bench -p memeguard-training --bench step             # all families
//!   cargo bench -p memeguard-training --bench step -- vit      # one family
//!
//! Each family runs in its own child process so that its peak RSS is its own. The graphs
//! are built here with `GraphBuilder` (small stand-ins for the models crate's ResNet, ViT
//! and text encoder), differentiated by `autodiff`, with AdamW and global-norm clipping.
//! Results go to docs/benchmarks.md ("Training step").

use std::time::Instant;

use memeguard_onnx::{Attr, DataType, Tensor, dims, encode_model};
use memeguard_package::onnxruntime::{SessionOptions, session_from_bytes};
use memeguard_package::tensor_value::to_value;
use memeguard_training::autodiff::Options;
use memeguard_training::graph_spec::ModelGraph;
use memeguard_training::optim::{OptimizerConfig, OptimizerKind, ScalarInput, StepGraph, differentiate_step};
use memeguard_training::runtime::{StepHyper, Trainer, TrainerConfig};

const WARMUP: usize = 3;
const STEPS: usize = 40;
const BLOCK: usize = 5;
const FAMILIES: [&str; 4] = ["mlp", "cnn", "vit", "text"];

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

fn run_family(family: &str) {
    let case = match family {
        "mlp" => mlp(),
        "cnn" => cnn(),
        "vit" => vit(),
        "text" => text(),
        other => panic!("unknown family `{other}` (use one of {FAMILIES:?})"),
    };
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
    let mut trainer = Trainer::new(step, &TrainerConfig::default()).unwrap();
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
    drop(ours_ms);
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if let Some(family) = args.first() {
        run_family(family);
        return;
    }
    println!(
        "machine: {} logical CPUs; {WARMUP} warm-up steps, median of {STEPS} (blocks of {BLOCK}, alternating)",
        num_cpus()
    );
    println!(
        "| model | params | step-graph nodes | Trainer::step ms, median (min) | of which in ONNX Runtime's run, ms | loop overhead ms (share) | bare session.run ms, median (min) | peak RSS MiB | loss first → last |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let exe = std::env::current_exe().unwrap();
    for family in FAMILIES {
        let status = std::process::Command::new(&exe).arg(family).status().unwrap();
        if !status.success() {
            println!("| {family} | failed ({status}) |");
        }
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
