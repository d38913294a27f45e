//! `memeguard-train differentiate` on models torch exported with their loss (the fixtures
//! of scripts/fixtures/make_differentiate_fixtures.py: a mini ResNet and an MLP, legacy
//! exporter at opset 17 and 20, the CNN also with a symbolic batch dimension, dynamo at 20
//! and 23 for the MLP), checked against PyTorch:
//! - the gradient graph's gradients at step 0 against autograd's;
//! - 20 steps of the AdamW training step in ONNX Runtime, driven from Rust by
//!   `training_step.json` alone, against torch.optim.AdamW's losses;
//! - 20 SGD steps (Nesterov, weight decay, global-norm clipping) against torch.optim.SGD;
//! - the AdamW steps in plain Python onnxruntime + numpy (training/tests/python/);
//! - both graphs through `onnx.checker` (full check);
//! - the refusals: a loss that is not a scalar, an unknown parameter, ops without rules.
//!
//! The Python checks need `.cache/venv` with onnx and onnxruntime (`make setup-test`, or
//! `MEMEGUARD_PYTHON`); without it they fail, they never pass quietly.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use memeguard_onnx::{Tensor, encode_model, load_model};
use memeguard_package::onnxruntime::{SessionOptions, session_from_bytes};
use memeguard_package::tensor_value::{from_value, to_value};
use serde_json::{Value, json};
use train_cli::{Run, arg, fails, json, ok};

/// (model, export) of every fixture export.
const EXPORTS: &[(&str, &str)] = &[
    ("cnn", "cnn-opset17"),
    ("cnn", "cnn-opset20"),
    ("cnn", "cnn-dynamic-batch"),
    ("mlp", "mlp-opset17"),
    ("mlp", "mlp-opset20"),
    ("mlp", "mlp-dynamo"),
    ("mlp", "mlp-dynamo23"),
];
const STEPS: usize = 20;
const WEIGHT_DECAY: &str = "0.01";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/differentiate").join(name)
}

/// Every tensor of a safetensors file (f32 and i64, as the fixtures and state hold).
fn read_safetensors(path: &Path) -> BTreeMap<String, Tensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| {
            let dims: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let data = view.data();
            let tensor = match view.dtype() {
                safetensors::Dtype::F32 => {
                    Tensor::f32(dims, data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
                }
                safetensors::Dtype::I64 => {
                    Tensor::i64(dims, data.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect())
                }
                other => panic!("{name}: unexpected {other:?}"),
            };
            (name, tensor)
        })
        .collect()
}

fn reference(model: &str) -> BTreeMap<String, Tensor> {
    read_safetensors(&fixture(&format!("{model}-reference.safetensors")))
}

/// The learning rate PyTorch's run of `model` used.
fn learning_rate(model: &str) -> String {
    json(&fixture("reference.json"))["optimizer"]["lr"][model].as_f64().expect("lr per model").to_string()
}

fn differentiate(export: &str, out: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["differentiate".to_string(), arg(&fixture(&format!("{export}.onnx")))];
    args.extend(["--loss", "loss", "--out"].map(String::from));
    args.push(arg(out));
    args.extend(extra.iter().map(|s| s.to_string()));
    ok(&args)
}

fn adamw_step(model: &str, export: &str, out: &Path) -> Run {
    let lr = learning_rate(model);
    differentiate(export, out, &["--optimizer", "adamw", "--lr", &lr, "--weight-decay", WEIGHT_DECAY])
}

/// ‖a − b‖ / ‖b‖.
fn normwise_relative(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
    assert_eq!(a.len(), b.len());
    let diff: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| y * y).sum();
    (diff / norm).sqrt()
}

/// Runs `model_path` once in ONNX Runtime (CPU); every output by name.
struct Ort(ort::session::Session);

impl Ort {
    fn load(path: &Path) -> Self {
        let model = load_model(path).unwrap();
        let opts = SessionOptions { deterministic: true, ..Default::default() };
        Ort(session_from_bytes(&encode_model(&model), &opts).expect("ONNX Runtime loads the model"))
    }

    fn run(&mut self, feeds: Vec<(String, Tensor)>, fetch: &[String]) -> Vec<Tensor> {
        let inputs: Vec<(String, _)> = feeds.iter().map(|(n, t)| (n.clone(), to_value(t).unwrap())).collect();
        let out = self.0.run(inputs).expect("the model runs");
        fetch.iter().map(|o| from_value(&out[o.as_str()], o).unwrap()).collect()
    }
}

/// The data inputs of batch `k` of a reference file.
fn batch(reference: &BTreeMap<String, Tensor>, k: usize, names: &[String]) -> Vec<(String, Tensor)> {
    names.iter().map(|n| (n.clone(), reference[&format!("batch.{k}.{n}")].clone())).collect()
}

/// `onnx.checker.check_model(full_check=True)`; the venv is required.
fn onnx_checker(path: &Path) {
    memeguard_onnx::pycheck::onnx_checker(path).unwrap_or_else(|e| panic!("onnx.checker on {}: {e}", path.display()));
}

/// PyTorch's parameter names of `model`, from its step-0 gradients.
fn torch_params(reference: &BTreeMap<String, Tensor>) -> BTreeSet<String> {
    reference.keys().filter_map(|k| k.strip_prefix("grad.")).map(String::from).collect()
}

#[test]
fn gradients_match_pytorch_at_step_0() {
    for (model, export) in EXPORTS {
        let dir = tempfile::tempdir().unwrap();
        differentiate(export, dir.path(), &[]);
        let path = dir.path().join("gradient.onnx");
        onnx_checker(&path);
        let reference = reference(model);
        let params: Vec<String> = torch_params(&reference).into_iter().collect();
        let fetch: Vec<String> = params.iter().map(|p| format!("{p}_grad")).collect();
        let data = ["x".to_string(), "labels".to_string()];
        let grads = Ort::load(&path).run(batch(&reference, 0, &data), &fetch);
        let mut worst = 0.0f64;
        for (param, grad) in params.iter().zip(&grads) {
            let err = normwise_relative(grad, &reference[&format!("grad.{param}")]);
            assert!(err <= 1e-5, "{export}: gradient of {param} is off by {err:e} (normwise relative)");
            worst = worst.max(err);
        }
        println!("{export}: {} gradients, worst normwise relative error {worst:.2e}", params.len());
    }
}

/// The state entries of `training_step.json` with role `role`: (input, param).
fn state_of_role(spec: &Value, role: &str) -> Vec<(String, Option<String>)> {
    spec["state"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["role"] == role)
        .map(|s| (s["input"].as_str().unwrap().to_string(), s["param"].as_str().map(String::from)))
        .collect()
}

/// Runs the training step `STEPS` times from its initial state, feeding each `.next` back,
/// as any client would from the JSON alone; returns the losses.
fn run_steps_in_rust(dir: &Path, reference: &BTreeMap<String, Tensor>) -> Vec<f64> {
    run_steps_with_state(dir, reference).0
}

/// [`run_steps_in_rust`], also returning the final state.
fn run_steps_with_state(dir: &Path, reference: &BTreeMap<String, Tensor>) -> (Vec<f64>, BTreeMap<String, Tensor>) {
    let spec = json(&dir.join("training_step.json"));
    let mut state = read_safetensors(&dir.join(spec["initial_state"].as_str().unwrap()));
    let pairs: Vec<(String, String)> = spec["state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (s["input"].as_str().unwrap().to_string(), s["output"].as_str().expect("every state is updated").into())
        })
        .collect();
    assert_eq!(state.keys().collect::<BTreeSet<_>>(), pairs.iter().map(|(i, _)| i).collect::<BTreeSet<_>>());
    let hyper: Vec<(String, Tensor)> = spec["hyperparameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["name"].as_str().unwrap().into(), Tensor::scalar_f32(h["value"].as_f64().unwrap() as f32)))
        .collect();
    let data: Vec<String> =
        spec["data_inputs"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap().into()).collect();
    let mut fetch = vec![spec["loss"].as_str().unwrap().to_string()];
    fetch.extend(pairs.iter().map(|(_, o)| o.clone()));
    let mut session = Ort::load(&dir.join(spec["model"].as_str().unwrap()));
    let batches = reference.keys().filter(|k| k.ends_with(".x")).count();
    let mut losses = Vec::new();
    for i in 0..STEPS {
        let mut feeds = batch(reference, i % batches, &data);
        feeds.extend(hyper.iter().cloned());
        feeds.extend(state.iter().map(|(n, t)| (n.clone(), t.clone())));
        let mut out = session.run(feeds, &fetch).into_iter();
        losses.push(out.next().unwrap().to_f64_vec()[0]);
        for ((name, _), next) in pairs.iter().zip(out) {
            state.insert(name.clone(), next);
        }
    }
    (losses, state)
}

fn assert_losses_match(what: &str, got: &[f64], reference: &BTreeMap<String, Tensor>) {
    assert_losses_match_key(what, got, reference, "losses");
}

/// `got` against the reference losses under `key`, each within 1e-4 (relative).
fn assert_losses_match_key(what: &str, got: &[f64], reference: &BTreeMap<String, Tensor>, key: &str) {
    let want = reference[key].to_f64_vec();
    assert_eq!(got.len(), want.len(), "{what}: {got:?}");
    let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs() / w.abs()).fold(0.0, f64::max);
    println!(
        "{what}: {} losses ({:.4} → {:.4}), worst relative error {worst:.2e}",
        got.len(),
        got[0],
        got[got.len() - 1]
    );
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let rel = (g - w).abs() / w.abs();
        assert!(rel <= 1e-4, "{what}: step {i} loss {g} vs PyTorch's {w} (relative {rel:e})\n{got:?}\n{want:?}");
    }
}

#[test]
fn adamw_steps_in_onnx_runtime_match_pytorch() {
    for (model, export) in EXPORTS {
        let dir = tempfile::tempdir().unwrap();
        adamw_step(model, export, dir.path());
        onnx_checker(&dir.path().join("training_step.onnx"));
        let spec = json(&dir.path().join("training_step.json"));
        let reference = reference(model);

        // The state is PyTorch's parameters, AdamW's two moments of each, the step count,
        // and BatchNorm's running statistics.
        let params: BTreeSet<String> = state_of_role(&spec, "parameter").into_iter().map(|(n, _)| n).collect();
        assert_eq!(params, torch_params(&reference), "{export}");
        for (role, suffix) in [("adam_m", "exp_avg"), ("adam_v", "exp_avg_sq")] {
            let moments: BTreeSet<(String, Option<String>)> = state_of_role(&spec, role).into_iter().collect();
            let want: BTreeSet<_> = params.iter().map(|p| (format!("{p}.{suffix}"), Some(p.clone()))).collect();
            assert_eq!(moments, want, "{export}: {role}");
        }
        assert_eq!(state_of_role(&spec, "step"), [("optim.step".to_string(), None)], "{export}");
        let buffers: BTreeSet<String> = state_of_role(&spec, "buffer").into_iter().map(|(n, _)| n).collect();
        let want: BTreeSet<String> = load_model(&fixture(&format!("{export}.onnx")))
            .unwrap()
            .graph
            .unwrap()
            .node
            .iter()
            .filter(|n| n.op_type() == "BatchNormalization")
            .flat_map(|n| n.input[3..5].to_vec())
            .collect();
        assert_eq!(want.len(), if *model == "cnn" { 12 } else { 0 }, "{export}: six BatchNorms in the CNN");
        assert_eq!(buffers, want, "{export}: BatchNorm running statistics");
        for entry in spec["state"].as_array().unwrap() {
            assert_eq!(entry["output"].as_str().unwrap(), format!("{}.next", entry["input"].as_str().unwrap()));
        }

        let batch_dim = match (*model, *export) {
            (_, "cnn-dynamic-batch") => json!("N"),
            ("cnn", _) => json!(8),
            _ => json!(16),
        };
        assert_eq!(spec["data_inputs"][0]["shape"][0], batch_dim, "{export}: the batch dimension");
        let (losses, state) = run_steps_with_state(dir.path(), &reference);
        assert_losses_match(export, &losses, &reference);
        // The buffers were fed back: BatchNorm's running means follow PyTorch's.
        for (key, want) in reference.iter().filter_map(|(k, t)| k.strip_prefix("after.").map(|k| (k, t))) {
            let err = normwise_relative(&state[key], want);
            assert!(err <= 1e-4, "{export}: {key} after {STEPS} steps is off by {err:e}");
        }
    }
}

#[test]
fn sgd_steps_with_nesterov_weight_decay_and_clipping_match_pytorch() {
    let sgd = &json(&fixture("reference.json"))["sgd"];
    let setting = |key: &str| sgd[key].as_f64().unwrap().to_string();
    for export in ["mlp-opset20", "mlp-dynamo"] {
        let dir = tempfile::tempdir().unwrap();
        let (lr, momentum, weight_decay, max_norm) =
            (setting("lr"), setting("momentum"), setting("weight_decay"), setting("max_grad_norm"));
        differentiate(
            export,
            dir.path(),
            &[
                "--optimizer",
                "sgd",
                "--lr",
                &lr,
                "--momentum",
                &momentum,
                "--nesterov",
                "--weight-decay",
                &weight_decay,
                "--max-grad-norm",
                &max_norm,
            ],
        );
        let spec = json(&dir.path().join("training_step.json"));
        let params = state_of_role(&spec, "parameter");
        let momenta: Vec<_> = state_of_role(&spec, "momentum").into_iter().map(|(_, p)| p.unwrap()).collect();
        assert_eq!(momenta, params.into_iter().map(|(n, _)| n).collect::<Vec<_>>(), "{export}");
        let reference = reference("mlp");
        let losses = run_steps_in_rust(dir.path(), &reference);
        assert_losses_match_key(&format!("{export} SGD"), &losses, &reference, "sgd_losses");
    }
}

#[test]
fn plain_python_onnxruntime_runs_the_step() {
    let python = memeguard_onnx::pycheck::python().unwrap_or_else(|e| panic!("{e}"));
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/run_training_step.py");
    for (model, export) in [("cnn", "cnn-opset17"), ("mlp", "mlp-dynamo")] {
        let dir = tempfile::tempdir().unwrap();
        adamw_step(model, export, dir.path());
        let reference_path = fixture(&format!("{model}-reference.safetensors"));
        let out = std::process::Command::new(&python)
            .arg(&driver)
            .arg(dir.path())
            .arg(&reference_path)
            .arg(STEPS.to_string())
            .output()
            .expect("python starts");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{export}: the Python driver failed (onnxruntime missing? run `make setup-test`):\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let losses: Vec<f64> = stdout.lines().map(|l| l.trim().parse().unwrap()).collect();
        assert_losses_match(&format!("{export} in Python"), &losses, &reference(model));
    }
}

#[test]
fn wrt_and_frozen_choose_the_trainable_parameters() {
    let dir = tempfile::tempdir().unwrap();
    differentiate("mlp-opset20", dir.path(), &["--wrt", "net.fc3.weight", "net.fc3.bias"]);
    let grads: BTreeSet<String> = load_model(&dir.path().join("gradient.onnx"))
        .unwrap()
        .graph
        .unwrap()
        .output
        .iter()
        .filter_map(|o| o.name.clone())
        .collect();
    let want: BTreeSet<String> = ["loss", "net.fc3.weight_grad", "net.fc3.bias_grad"].map(String::from).into();
    assert_eq!(grads, want);

    let dir = tempfile::tempdir().unwrap();
    differentiate(
        "cnn-opset17",
        dir.path(),
        &["--frozen", "net.stem.0.weight", "--optimizer", "sgd", "--lr", "0.1", "--max-grad-norm", "1"],
    );
    let spec = json(&dir.path().join("training_step.json"));
    let params: Vec<String> = state_of_role(&spec, "parameter").into_iter().map(|(n, _)| n).collect();
    let mut want: Vec<String> =
        torch_params(&reference("cnn")).into_iter().filter(|p| p != "net.stem.0.weight").collect();
    want.sort();
    let mut params_sorted = params.clone();
    params_sorted.sort();
    assert_eq!(params_sorted, want);
    assert_eq!(state_of_role(&spec, "momentum").len(), params.len());
    assert!(state_of_role(&spec, "step").is_empty(), "SGD counts no steps");
    onnx_checker(&dir.path().join("training_step.onnx"));
}

fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["differentiate".to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    all.extend(["--out".to_string(), arg(dir.path())]);
    let run = fails(&all);
    assert!(!dir.path().join("gradient.onnx").exists(), "a refused model leaves no gradient graph");
    run.stderr
}

#[test]
fn refusals_say_what_to_fix() {
    let cnn = arg(&fixture("cnn-opset17.onnx"));

    let err = refused(&[&cnn, "--loss", "logits"]);
    assert!(err.contains("the loss `logits` is declared [8, 10]; it must be a scalar"), "{err}");

    let err = refused(&[&cnn, "--loss", "cost"]);
    assert!(err.contains("has no output `cost`; its outputs are: loss, logits"), "{err}");

    let err = refused(&[&cnn, "--loss", "loss", "--wrt", "net.fc.weight", "net.head.weight"]);
    assert!(err.contains("--wrt `net.head.weight` is not an initializer of the model"), "{err}");
    assert!(err.contains("net.fc.bias") && !err.contains("running_mean"), "candidates listed: {err}");

    let err = refused(&[&cnn, "--loss", "loss", "--wrt", "net.stem.1.running_var"]);
    assert!(err.contains("--wrt `net.stem.1.running_var` is a BatchNorm running statistic"), "{err}");

    let err = refused(&[&cnn, "--loss", "loss", "--frozen", "net.stem.1.running_mean"]);
    assert!(err.contains("--frozen `net.stem.1.running_mean`: not a trainable parameter"), "{err}");

    let err = refused(&[&cnn, "--loss", "loss", "--optimizer", "adamw"]);
    assert!(err.contains("--optimizer needs --lr"), "{err}");

    let err = refused(&[&arg(&fixture("no-rule.onnx")), "--loss", "loss"]);
    assert!(
        err.contains("have no gradient rule: Det (2×, e.g. node `det_1`), Hardmax (1×, e.g. node `hardmax`)"),
        "{err}"
    );
    assert!(err.contains("--frozen"), "says what to do: {err}");
}
