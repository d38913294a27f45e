//! RGCL and Hate-CLIPper on frozen encoders: the retrieval-guided contrastive loss
//! against a naive reference (float64, from the paper's formula), and the tiny CPU
//! recipes end to end on the tiny CLIP fixture (cached features, export, package scores);
//! RGCL without cached features is refused with what to change.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::Path;

use memeguard_onnx::{DataType, Dim, GraphBuilder, Tensor};
use memeguard_package::onnxruntime::{SessionOptions, session_from_bytes};
use memeguard_package::tensor_value::{from_value, to_value};
use memeguard_training::losses::retrieval_contrastive;
use train_cli::*;

/// `−log(e^{s⁺/τ} / (e^{s⁺/τ} + Σ_hard e^{s/τ} + Σ_{in-batch, other label} e^{s/τ}))`,
/// averaged over the anchors; `rows` laid out as anchors, positives, negatives.
fn reference(rows: &[Vec<f64>], labels: &[f64], groups: usize, tau: f64) -> f64 {
    let n = rows.len() / groups;
    let unit: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            let norm = r.iter().map(|x| x * x).sum::<f64>().sqrt();
            r.iter().map(|x| x / norm).collect()
        })
        .collect();
    let cos = |a: usize, b: usize| unit[a].iter().zip(&unit[b]).map(|(x, y)| x * y).sum::<f64>() / tau;
    let mut total = 0.0;
    for i in 0..n {
        let positive = cos(i, n + i);
        let mut negatives: Vec<f64> = (2..groups).map(|g| cos(i, g * n + i)).collect();
        negatives.extend((0..n).filter(|&j| labels[j] != labels[i]).map(|j| cos(i, j)));
        let denominator = positive.exp() + negatives.iter().map(|s| s.exp()).sum::<f64>();
        total += -(positive.exp() / denominator).ln();
    }
    total / n as f64
}

#[test]
fn the_contrastive_loss_matches_the_formula() {
    let (n, groups, d, tau) = (3usize, 4usize, 5usize, 0.5f32);
    let mut state = 7u64;
    let mut uniform = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f64 / (1u64 << 24) as f64) * 2.0 - 1.0
    };
    let rows: Vec<Vec<f64>> = (0..n * groups).map(|_| (0..d).map(|_| uniform()).collect()).collect();
    // Anchors 0 and 2 hateful, 1 not; the other rows' labels do not enter the loss.
    let labels: Vec<f64> = (0..n * groups).map(|i| if i % n == 1 { 0.0 } else { 1.0 }).collect();

    let mut b = GraphBuilder::new("rgcl");
    let x = b.input("x", DataType::Float, &[Dim::Known((n * groups) as i64), Dim::Known(d as i64)]);
    let y = b.input("y", DataType::Float, &[Dim::Known((n * groups) as i64)]);
    let loss = retrieval_contrastive(&mut b, &x, &y, groups, d, tau).unwrap();
    b.named_output(&loss, "loss", DataType::Float, &[]);
    let model = b.build();
    let mut session = session_from_bytes(&memeguard_onnx::encode_model(&model), &SessionOptions::default()).unwrap();
    let flat: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
    let feeds = vec![
        ("x".to_string(), to_value(&Tensor::f32(vec![(n * groups) as i64, d as i64], flat)).unwrap()),
        (
            "y".to_string(),
            to_value(&Tensor::f32(vec![(n * groups) as i64], labels.iter().map(|&v| v as f32).collect())).unwrap(),
        ),
    ];
    let out = session.run(feeds).unwrap();
    let ours = from_value(&out["loss"], "loss").unwrap().as_f32().unwrap()[0] as f64;
    let want = reference(&rows, &labels, groups, f64::from(tau));
    assert!((ours - want).abs() < 1e-4 * want.abs().max(1.0), "ours {ours}, reference {want}");
}

fn fixture_args(recipe_name: &str, data: &Path, run: &Path, extra: &[&str]) -> Vec<String> {
    let folder = arg(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/clip-tiny"));
    let mut args = command_args("finetune", recipe_name, data);
    for set in [format!("model.image=hf:{folder}"), format!("model.text=hf:{folder}"), "train.epochs=2".into()] {
        args.extend(["--set".to_string(), set]);
    }
    args.extend(["--threads", "1", "--workers", "1", "--quiet", "--out"].map(String::from));
    args.push(arg(run));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn the_tiny_hateclipper_and_rgcl_recipes_train_on_cached_features_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 32, 16, 0);
    for recipe in ["tiny-hateclipper-hf-clip", "tiny-rgcl-hf-clip"] {
        let run = tmp.path().join(recipe);
        let package = tmp.path().join("models").join(recipe).join("1.0.0");
        ok(&fixture_args(recipe, &data, &run, &["--export", &arg(&package)]));
        let metrics = json(&run.join("metrics.json"));
        assert_eq!(metrics["feature_cache"]["train"], "computed", "{recipe}: {metrics}");
        let log = step_log(&run);
        assert!(!log.is_empty() && log.iter().all(|s| s.loss.is_finite()), "{recipe}");
        let pkg = memeguard_package::ModelPackage::open(&package).unwrap();
        assert_eq!(pkg.manifest.architecture.fusion, if recipe.contains("rgcl") { "align" } else { "cross" });
        let lines = memes(&data, "dev_seen");
        let scores = package_scores(&pkg, &data, &lines);
        assert_eq!(scores.len(), lines.len());
        // The package is the whole classifier: it scores dev as the run's cached head did.
        let labels: Vec<bool> = lines.iter().map(|m| m.label == 1).collect();
        let auroc = memeguard_training::eval::auroc(&scores, &labels).unwrap();
        let reported = metrics["dev"]["auroc"].as_f64().unwrap();
        assert!((auroc - reported).abs() < 1e-6, "{recipe}: package {auroc}, run {reported}");
    }
    // The RGCL loss is part of what trains: its steps' losses differ from the same run
    // with the contrastive term weighted 0 (cross-entropy alone).
    let plain = tmp.path().join("rgcl-weight-0");
    ok(&fixture_args("tiny-rgcl-hf-clip", &data, &plain, &["--set", "rgcl.weight=0.0"]));
    let (with, without) = (step_log(&tmp.path().join("tiny-rgcl-hf-clip")), step_log(&plain));
    assert!(with[0].loss > without[0].loss, "RGCL adds a positive term: {} vs {}", with[0].loss, without[0].loss);

    // Without the cache there is nothing to retrieve from.
    let out = fails(&fixture_args("tiny-rgcl-hf-clip", &data, &tmp.path().join("refused"), &["--no-feature-cache"]));
    assert!(out.stderr.contains("RGCL") && out.stderr.contains("frozen"), "{}", out.both());
}
