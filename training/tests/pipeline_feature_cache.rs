//! The frozen-feature cache on the command line, with the tiny `hf:` CLIP fixture
//! frozen: a cached finetune scores dev as the uncached one does (same seed, float
//! tolerance); `--seeds 2` and `--resume` read the features the first run wrote; a
//! changed preprocessing (max length) computes new ones; the exported package is the
//! whole classifier, as without the cache.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::path::{Path, PathBuf};

use memeguard_package::ModelPackage;
use train_cli::*;

fn clip_args(data: &Path, run: &Path, extra: &[&str]) -> Vec<String> {
    let folder = arg(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/clip-tiny"));
    let mut args = command_args("finetune", "tiny-finetune-hf-clip", data);
    for set in [
        "train.epochs=2".to_string(),
        "train.batch_size=16".into(),
        format!("model.image=hf:{folder}"),
        format!("model.text=hf:{folder}"),
    ] {
        args.extend(["--set".to_string(), set]);
    }
    args.extend(["--threads", "1", "--workers", "1", "--quiet", "--out"].map(String::from));
    args.push(arg(run));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// `split -> "computed" | "reused"` from a run's metrics.json (null without the cache).
fn cache_use(run: &Path) -> serde_json::Value {
    json(&run.join("metrics.json"))["feature_cache"].clone()
}

fn dev_auroc_per_epoch(run: &Path) -> Vec<f64> {
    json(&run.join("metrics.json"))["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["dev_auroc"].as_f64().unwrap())
        .collect()
}

fn feature_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn cached_features_train_the_head_as_the_encoders_would() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 32, 16, 0);

    let uncached = tmp.path().join("uncached");
    ok(&clip_args(&data, &uncached, &["--no-feature-cache"]));
    assert!(cache_use(&uncached).is_null());
    assert!(!uncached.join("features").exists());

    let cached = tmp.path().join("cached");
    let pkg_dir = tmp.path().join("models/clip/1.0.0");
    ok(&clip_args(&data, &cached, &["--export", &arg(&pkg_dir)]));
    assert_eq!(cache_use(&cached), serde_json::json!({"train": "computed", "dev": "computed"}));

    // Same seed, same batches: the dev AUROC of every epoch and the final dev
    // probabilities agree (the encoders ran in another graph: float tolerance).
    let (a, b) = (dev_auroc_per_epoch(&uncached), dev_auroc_per_epoch(&cached));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-6, "dev AUROC per epoch: uncached {a:?}, cached {b:?}");
    }
    let (ma, mb) = (json(&uncached.join("metrics.json")), json(&cached.join("metrics.json")));
    assert_eq!(ma["dev"]["auroc"], mb["dev"]["auroc"]);
    assert_eq!(ma["best_epoch"], mb["best_epoch"]);

    // The package is the whole classifier and scores dev as the head did.
    let pkg = ModelPackage::open(&pkg_dir).unwrap();
    let lines = memes(&data, "dev_seen");
    let probabilities = package_scores(&pkg, &data, &lines);
    let labels: Vec<bool> = lines.iter().map(|m| m.label == 1).collect();
    let auroc = memeguard_training::eval::auroc(&probabilities, &labels).unwrap();
    let reported = mb["dev"]["auroc"].as_f64().unwrap();
    assert!((auroc - reported).abs() < 1e-6, "package AUROC {auroc}, cached run's dev AUROC {reported}");
    // Only the head was checkpointed; without the cache the best epoch's record still
    // leaves the frozen encoders out (only the runtime's checkpoint holds them).
    let encoder = |k: &String| k.starts_with("image.") || k.starts_with("text.");
    let load = memeguard_training::runtime::Checkpoint::load;
    assert!(!load(&cached.join("checkpoint.safetensors")).unwrap().tensors.keys().any(encoder));
    assert!(!load(&cached.join("best.safetensors")).unwrap().tensors.keys().any(encoder));
    let best = load(&uncached.join("best.safetensors")).unwrap();
    assert!(!best.tensors.keys().any(encoder) && best.tensors.keys().any(|k| k.starts_with("head.")));

    // Two seeds: the second reads what the first computed (the folder is shared).
    let seeds = tmp.path().join("seeds");
    ok(&clip_args(&data, &seeds, &["--seeds", "2"]));
    assert_eq!(cache_use(&seeds.join("seed-0")), serde_json::json!({"train": "computed", "dev": "computed"}));
    assert_eq!(cache_use(&seeds.join("seed-1")), serde_json::json!({"train": "reused", "dev": "reused"}));
    let files = feature_files(&seeds.join("features"));
    assert_eq!(files.len(), 4, "train and dev rows and their records: {files:?}");

    // Resume: the features are read again, not computed.
    let mut resume = clip_args(&data, &cached, &["--resume"]);
    resume.push(arg(&cached.join("checkpoint.safetensors")));
    let before = std::fs::metadata(feature_files(&cached.join("features"))[0].clone()).unwrap().modified().unwrap();
    ok(&resume);
    assert_eq!(cache_use(&cached), serde_json::json!({"train": "reused", "dev": "reused"}));
    let after = std::fs::metadata(feature_files(&cached.join("features"))[0].clone()).unwrap().modified().unwrap();
    assert_eq!(before, after);

    // Another preprocessing (texts cut at 8 tokens): new keys, computed again.
    let mut shorter = clip_args(&data, &seeds, &[]);
    shorter.extend(["--set".into(), "model.max_length=8".into()]);
    ok(&shorter);
    assert_eq!(cache_use(&seeds), serde_json::json!({"train": "computed", "dev": "computed"}));
    assert_eq!(feature_files(&seeds.join("features")).len(), 8);
}

/// The key covers the weights: the same folder with one weight changed (its last byte,
/// inside the tensor data) computes its features again.
#[test]
fn changed_encoder_weights_invalidate_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 16, 8, 0);
    let folder = tmp.path().join("clip-tiny");
    std::fs::create_dir(&folder).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/clip-tiny");
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, folder.join(path.file_name().unwrap())).unwrap();
        }
    }
    let run = tmp.path().join("run");
    let mut args = command_args("finetune", "tiny-finetune-hf-clip", &data);
    for set in [
        "train.epochs=1".to_string(),
        format!("model.image=hf:{}", arg(&folder)),
        format!("model.text=hf:{}", arg(&folder)),
    ] {
        args.extend(["--set".to_string(), set]);
    }
    args.extend(["--threads", "1", "--workers", "1", "--quiet", "--out"].map(String::from));
    args.push(arg(&run));
    ok(&args);
    ok(&args);
    assert_eq!(cache_use(&run), serde_json::json!({"train": "reused", "dev": "reused"}));
    let weights = folder.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&weights, bytes).unwrap();
    ok(&args);
    assert_eq!(cache_use(&run), serde_json::json!({"train": "computed", "dev": "computed"}));
}
