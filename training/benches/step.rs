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

use memeguard_onnx::{Attr, DataType, GraphBuilder, Tensor, dims, encode_model};
use memeguard_package::onnxruntime::{SessionOptions, session_from_bytes};
use memeguard_package::tensor_value::to_value;
use memeguard_training::autodiff::Options;
use memeguard_training::graph_spec::{Buffer, ModelGraph, Param};
use memeguard_training::optim::{OptimizerConfig, OptimizerKind, ScalarInput, StepGraph, differentiate_step};
use memeguard_training::runtime::{StepHyper, Trainer, TrainerConfig};

const WARMUP: usize = 3;
const STEPS: usize = 40;
const BLOCK: usize = 5;
const FAMILIES: [&str; 4] = ["mlp", "cnn", "vit", "text"];

/// Deterministic values in [-scale, scale).
fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A forward graph under construction with its parameter and buffer lists.
struct Net {
    g: GraphBuilder,
    params: Vec<Param>,
    buffers: Vec<Buffer>,
    seed: u64,
}

impl Net {
    fn new(name: &str) -> Self {
        Net { g: GraphBuilder::new(name), params: Vec::new(), buffers: Vec::new(), seed: 1 }
    }

    /// A parameter initialised uniformly in ±1/√fan_in (or to `fill`).
    fn param(&mut self, name: &str, dims: &[i64], fan_in: Option<i64>, fill: f32, decay: bool) -> String {
        let n = dims.iter().product::<i64>() as usize;
        self.seed += 1;
        let data = match fan_in {
            Some(f) => values(self.seed, n, 1.0 / (f as f32).sqrt()),
            None => vec![fill; n],
        };
        let name = self.g.initializer(name, &Tensor::f32(dims.to_vec(), data));
        self.params.push(Param { name: name.clone(), trainable: true, weight_decay: decay, group: "all".into() });
        name
    }

    fn linear(&mut self, name: &str, x: &str, d_in: i64, d_out: i64) -> String {
        let w = self.param(&format!("{name}.weight"), &[d_in, d_out], Some(d_in), 0.0, true);
        let b = self.param(&format!("{name}.bias"), &[d_out], None, 0.0, false);
        let y = self.g.op("MatMul", &[x, &w], &[]);
        self.g.op("Add", &[&y, &b], &[])
    }

    fn layer_norm(&mut self, name: &str, x: &str, d: i64) -> String {
        let scale = self.param(&format!("{name}.weight"), &[d], None, 1.0, false);
        let bias = self.param(&format!("{name}.bias"), &[d], None, 0.0, false);
        self.g.op("LayerNormalization", &[x, &scale, &bias], &[("axis", Attr::Int(-1))])
    }

    /// Conv (no bias) → BatchNormalization (training mode, running statistics) → Relu.
    fn conv_bn_relu(&mut self, name: &str, x: &str, c_in: i64, c_out: i64, stride: i64) -> String {
        let w = self.param(&format!("{name}.conv.weight"), &[c_out, c_in, 3, 3], Some(c_in * 9), 0.0, true);
        let y = self.g.op(
            "Conv",
            &[x, &w],
            &[("pads", Attr::Ints(vec![1, 1, 1, 1])), ("strides", Attr::Ints(vec![stride, stride]))],
        );
        let scale = self.param(&format!("{name}.bn.weight"), &[c_out], None, 1.0, false);
        let bias = self.param(&format!("{name}.bn.bias"), &[c_out], None, 0.0, false);
        let mean = self.g.initializer(&format!("{name}.bn.running_mean"), &Tensor::f32(vec![c_out], vec![0.0; c_out as usize]));
        let var = self.g.initializer(&format!("{name}.bn.running_var"), &Tensor::f32(vec![c_out], vec![1.0; c_out as usize]));
        let out = self.g.node(
            "BatchNormalization",
            &[&y, &scale, &bias, &mean, &var],
            3,
            &[("training_mode", Attr::Int(1)), ("momentum", Attr::Float(0.9))],
        );
        self.buffers.push(Buffer { name: mean, updated: out[1].clone() });
        self.buffers.push(Buffer { name: var, updated: out[2].clone() });
        self.g.op("Relu", &[&out[0]], &[])
    }

    /// Pre-norm transformer block on [B, T, D] with `heads` heads.
    fn block(&mut self, name: &str, x: &str, d: i64, heads: i64) -> String {
        let dh = d / heads;
        let h = self.layer_norm(&format!("{name}.ln1"), x, d);
        let q = self.linear(&format!("{name}.q"), &h, d, d);
        let k = self.linear(&format!("{name}.k"), &h, d, d);
        let v = self.linear(&format!("{name}.v"), &h, d, d);
        let split = self.g.const_i64s("split_heads", &[0, 0, heads, dh]);
        let q = self.g.op("Reshape", &[&q, &split], &[]);
        let q = self.g.op("Transpose", &[&q], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
        let k = self.g.op("Reshape", &[&k, &split], &[]);
        let k = self.g.op("Transpose", &[&k], &[("perm", Attr::Ints(vec![0, 2, 3, 1]))]);
        let v = self.g.op("Reshape", &[&v, &split], &[]);
        let v = self.g.op("Transpose", &[&v], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
        let scores = self.g.op("MatMul", &[&q, &k], &[]);
        let scale = self.g.constant("attn_scale", Tensor::scalar_f32(1.0 / (dh as f32).sqrt()));
        let scores = self.g.op("Mul", &[&scores, &scale], &[]);
        let attn = self.g.op("Softmax", &[&scores], &[("axis", Attr::Int(-1))]);
        let ctx = self.g.op("MatMul", &[&attn, &v], &[]);
        let ctx = self.g.op("Transpose", &[&ctx], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
        let merge = self.g.const_i64s("merge_heads", &[0, 0, d]);
        let ctx = self.g.op("Reshape", &[&ctx, &merge], &[]);
        let o = self.linear(&format!("{name}.o"), &ctx, d, d);
        let x = self.g.op("Add", &[x, &o], &[]);
        let h = self.layer_norm(&format!("{name}.ln2"), &x, d);
        let h = self.linear(&format!("{name}.fc1"), &h, d, 4 * d);
        let h = self.g.op("Gelu", &[&h], &[]);
        let h = self.linear(&format!("{name}.fc2"), &h, 4 * d, d);
        self.g.op("Add", &[&x, &h], &[])
    }

    /// Mean cross-entropy of `logits` [B, C] against the one-hot input `onehot`.
    fn cross_entropy(&mut self, logits: &str, classes: i64) -> String {
        let onehot = self.g.input("onehot", DataType::Float, &dims!["batch", classes]);
        let logp = self.g.op("LogSoftmax", &[logits], &[("axis", Attr::Int(-1))]);
        let picked = self.g.op("Mul", &[&onehot, &logp], &[]);
        let axes = self.g.const_i64s("class_axis", &[1]);
        let per_row = self.g.op("ReduceSum", &[&picked, &axes], &[("keepdims", Attr::Int(0))]);
        let mean = self.g.op("ReduceMean", &[&per_row], &[("keepdims", Attr::Int(0))]);
        self.g.op("Neg", &[&mean], &[])
    }

    fn finish(self, loss: String) -> (ModelGraph, String) {
        (ModelGraph { model: self.g.build(), params: self.params, buffers: self.buffers }, loss)
    }
}

/// A benchmark case: the forward graph with its loss, the batch, and a description.
struct Case {
    model: ModelGraph,
    loss: String,
    batch: Vec<(String, Tensor)>,
    description: String,
}

fn onehot(batch: usize, classes: usize) -> Tensor {
    let mut v = vec![0.0; batch * classes];
    for i in 0..batch {
        v[i * classes + i % classes] = 1.0;
    }
    Tensor::f32(vec![batch as i64, classes as i64], v)
}

/// 3 conv-BN-ReLU stages (16, 32, 64 channels; strides 1, 2, 2), global pool, linear head.
fn cnn() -> Case {
    let (b, hw, classes) = (32usize, 32i64, 10i64);
    let mut net = Net::new("bench_cnn");
    let x = net.g.input("pixels", DataType::Float, &dims!["batch", 3, hw, hw]);
    let h = net.conv_bn_relu("stage1", &x, 3, 16, 1);
    let h = net.conv_bn_relu("stage2", &h, 16, 32, 2);
    let h = net.conv_bn_relu("stage3", &h, 32, 64, 2);
    let pooled = net.g.op("GlobalAveragePool", &[&h], &[]);
    let flat = net.g.op("Flatten", &[&pooled], &[("axis", Attr::Int(1))]);
    let logits = net.linear("head", &flat, 64, classes);
    let loss = net.cross_entropy(&logits, classes);
    let (model, loss) = net.finish(loss);
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
    let h = net.layer_norm("norm", &h, d);
    let axes = net.g.const_i64s("token_axis", &[1]);
    let pooled = net.g.op("ReduceMean", &[&h, &axes], &[("keepdims", Attr::Int(0))]);
    let logits = net.linear("head", &pooled, d, classes);
    let loss = net.cross_entropy(&logits, classes);
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
    let mut net = Net::new("bench_text");
    let ids = net.g.input("input_ids", DataType::Int64, &dims!["batch", len]);
    let emb = net.param("token_embed", &[vocab, d], Some(d), 0.0, true);
    let mut h = net.g.op("Gather", &[&emb, &ids], &[("axis", Attr::Int(0))]);
    let pos = net.param("pos_embed", &[1, len, d], Some(d), 0.0, false);
    h = net.g.op("Add", &[&h, &pos], &[]);
    for i in 0..2 {
        h = net.block(&format!("block{i}"), &h, d, 4);
    }
    let h = net.layer_norm("norm", &h, d);
    let axes = net.g.const_i64s("token_axis", &[1]);
    let pooled = net.g.op("ReduceMean", &[&h, &axes], &[("keepdims", Attr::Int(0))]);
    let logits = net.linear("head", &pooled, d, classes);
    let loss = net.cross_entropy(&logits, classes);
    let (model, loss) = net.finish(loss);
    let ids: Vec<i64> = (0..b * len as usize).map(|i| ((i * 7919) % vocab as usize) as i64).collect();
    let batch =
        vec![("input_ids".into(), Tensor::i64(vec![b as i64, len], ids)), ("onehot".into(), onehot(b, classes as usize))];
    Case { model, loss, batch, description: format!("text encoder 2 blocks (D {d}, vocab {vocab}), batch {b}, length {len}") }
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
/// once as ONNX Runtime values, every output fetched; nothing fed back.
struct BareRun {
    session: ort::session::Session,
    inputs: Vec<(String, ort::value::DynValue)>,
}

impl BareRun {
    fn new(step: &StepGraph, batch: &[(String, Tensor)]) -> Self {
        let session = session_from_bytes(&encode_model(&step.graph.model), &SessionOptions::default()).unwrap();
        let mut inputs: Vec<(String, ort::value::DynValue)> = Vec::new();
        for slot in &step.slots {
            inputs.push((slot.name.clone(), to_value(&slot.initial).unwrap()));
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
            println!("| {} | — | — | — | — | — | not run: {e} |", case.description);
            return;
        }
    };
    let nodes = step.graph.model.graph.as_ref().map_or(0, |g| g.node.len());
    let bare_step = step.clone();
    let mut trainer = Trainer::new(step, &TrainerConfig::default()).unwrap();
    let hyper = StepHyper::new(1e-3, 0.05);
    let mut losses = Vec::new();
    let mut ours_ms = || {
        let batch = case.batch.clone();
        let start = Instant::now();
        let report = trainer.step(batch, &hyper).unwrap();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        losses.push(report.loss);
        ms
    };
    for _ in 0..WARMUP {
        ours_ms();
    }
    // Peak RSS of the training path alone, before the bare session exists.
    let rss = peak_rss_mib();
    let mut bare = BareRun::new(&bare_step, &case.batch);
    for _ in 0..WARMUP {
        bare.run_ms();
    }
    // Alternate blocks of both loops so that load changes on the machine hit both alike.
    let (mut times, mut bare_times) = (Vec::new(), Vec::new());
    for _ in 0..STEPS / BLOCK {
        for _ in 0..BLOCK {
            times.push(ours_ms());
        }
        for _ in 0..BLOCK {
            bare_times.push(bare.run_ms());
        }
    }
    let ours = median(&mut times);
    let theirs = median(&mut bare_times);
    let (ours_min, theirs_min) = (times[0], bare_times[0]);
    println!(
        "| {} | {:.2} M | {} | {:.1} ({:.1}) | {:.1} ({:.1}) | {:+.2} ({:+.2}) | {:.0} | loss {:.3} → {:.3} |",
        case.description,
        params as f64 / 1e6,
        nodes,
        ours,
        ours_min,
        theirs,
        theirs_min,
        ours - theirs,
        ours_min - theirs_min,
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
    println!("machine: {} logical CPUs; {WARMUP} warm-up steps, median of {STEPS} (blocks of {BLOCK}, alternating)", num_cpus());
    println!(
        "| model | params | step-graph nodes | Trainer::step ms, median (min) | bare session.run ms, median (min) | overhead ms, median (min) | peak RSS MiB | note |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
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
