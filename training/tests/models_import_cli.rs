//! A user's encoder to a served verdict, on the command line: `finetune` with
//! `--set model.image=onnx:FILE#OUTPUT` (torch's exports of the tiny CLIP in
//! tests/fixtures/exports/) → `--export` → a package the server's own code opens and
//! scores, carrying the imported weights and the encoder's tokenizer. And what the
//! command line refuses: `--init-from` an ONNX file, an imported text encoder without its
//! tokenizer, recipe typos. `hf:DIR` folders take the same road, with the folder's
//! preprocessing and tokenizer; `refresh` finetunes such packages again from reviews.

#[path = "common/decision_log.rs"]
mod decision_log;
#[path = "common/train_cli.rs"]
mod train_cli;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use decision_log::{Decision, DecisionLog};
use memeguard_onnx::Tensor;
use memeguard_package::ModelPackage;
use train_cli::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn export(name: &str) -> String {
    arg(&fixtures().join("exports").join(name))
}

fn sets(pairs: &[String]) -> Vec<String> {
    pairs.iter().flat_map(|s| ["--set".to_string(), s.clone()]).collect()
}

/// Float initializers of an ONNX file (external data read in), by name.
fn weights(path: &Path) -> BTreeMap<String, Tensor> {
    let model = memeguard_onnx::load_model(path).unwrap();
    model
        .graph
        .unwrap()
        .initializer
        .iter()
        .filter(|t| t.data_type == Some(memeguard_onnx::DataType::Float as i32))
        .map(|t| (t.name.clone().unwrap(), Tensor::from_proto(t).unwrap()))
        .collect()
}

/// The package's `prefix.*` weights that come from `encoder` (same name after the
/// prefix): how many, and how many changed.
fn compare_imported(pkg: &ModelPackage, prefix: &str, encoder: &Path) -> (usize, usize) {
    let model = pkg.model().unwrap();
    let theirs = weights(encoder);
    let mut same_name = 0;
    let mut changed = 0;
    for t in &model.graph.unwrap().initializer {
        let Some(name) = t.name.as_deref().and_then(|n| n.strip_prefix(prefix)) else { continue };
        if let Some(original) = theirs.get(name) {
            same_name += 1;
            if Tensor::from_proto(t).unwrap() != *original {
                changed += 1;
            }
        }
    }
    (same_name, changed)
}

#[test]
fn a_frozen_onnx_clip_finetunes_and_exports_a_package_the_server_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 32, 16, 16);
    let package = tmp.path().join("models/clip/1.0.0");
    let joint = export("clip-joint-opset17.onnx");
    let mut args = command_args("finetune", "tiny-finetune-multimodal", &data);
    args.extend(small());
    args.extend(sets(&[
        "train.epochs=2".into(),
        // A joint two-tower export: each tower picked by its output.
        format!("model.image=onnx:{joint}#image_embeds"),
        format!("model.text=onnx:{joint}#text_embeds"),
        "model.image_trainable=false".into(),
        "model.text_trainable=false".into(),
    ]));
    args.extend([
        "--tokenizer".into(),
        arg(&fixtures().join("hf/clip-tiny/tokenizer.json")),
        "--out".into(),
        arg(&tmp.path().join("run")),
        "--export".into(),
        arg(&package),
    ]);
    let out = ok(&args);
    assert!(out.stdout.contains("exported clip@1.0.0"), "{}", out.both());

    let pkg = ModelPackage::open(&package).unwrap();
    let m = &pkg.manifest;
    assert_eq!(m.image.size, 32, "the image size comes from the export's input shape");
    assert_eq!(m.architecture.image_encoder, format!("onnx:{joint}#image_embeds"));
    assert_eq!(m.architecture.text_encoder, format!("onnx:{joint}#text_embeds"));
    // The tokenizer is the encoder's (CLIP's end-of-text token is id 1), not one trained here.
    assert_eq!(pkg.tokenizer.token_id("<|endoftext|>"), Some(1));
    // The imported weights are in the package, unchanged (frozen).
    let (image_weights, changed) =
        compare_imported(&pkg, "image.", &fixtures().join("exports/clip-joint-opset17.onnx"));
    assert!(image_weights >= 15 && changed == 0, "{image_weights} image weights, {changed} changed");
    let (text_weights, changed) = compare_imported(&pkg, "text.", &fixtures().join("exports/clip-joint-opset17.onnx"));
    assert!(text_weights >= 15 && changed == 0, "{text_weights} text weights, {changed} changed");

    let dev = memes(&data, "dev_seen");
    let scores = package_scores(&pkg, &data, &dev);
    assert_eq!(scores.len(), dev.len());
    assert!(scores.iter().all(|p| (0.0..=1.0).contains(p)), "{scores:?}");
}

/// Trained end to end (`*_trainable = true`), an ONNX tower's weights move (legacy and
/// dynamo exports of both towers); an external-data export takes the same road frozen.
#[test]
fn onnx_towers_train_end_to_end_and_export() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 32, 16, 16);
    let tokenizer = arg(&fixtures().join("hf/clip-tiny/tokenizer.json"));
    for (side, file, trainable) in [
        ("image", "clip-vision-opset17.onnx", true),
        ("image", "clip-vision-dynamo.onnx", true),
        ("image", "clip-vision-external.onnx", false),
        ("text", "clip-text-opset17.onnx", true),
        ("text", "clip-text-dynamo.onnx", true),
    ] {
        let package = tmp.path().join(format!("models/{}/1.0.0", file.trim_end_matches(".onnx")));
        let mut args = command_args("finetune", &format!("tiny-finetune-{side}"), &data);
        args.extend(small());
        args.extend(sets(&[
            "train.epochs=1".into(),
            format!("model.{side}=onnx:{}", export(file)),
            format!("model.{side}_trainable={trainable}"),
        ]));
        args.extend(["--out".into(), arg(&tmp.path().join(file)), "--export".into(), arg(&package)]);
        if side == "text" {
            args.extend(["--tokenizer".into(), tokenizer.clone()]);
        }
        ok(&args);
        let pkg = ModelPackage::open(&package).unwrap();
        let (imported, changed) = compare_imported(&pkg, &format!("{side}."), &fixtures().join("exports").join(file));
        assert!(imported >= 15, "{file}: {imported} imported weights in the package");
        if trainable {
            assert!(changed > imported / 2, "{file}: only {changed} of {imported} weights trained");
        } else {
            assert_eq!(changed, 0, "{file}");
        }
        let dev = memes(&data, "dev_seen");
        assert_eq!(package_scores(&pkg, &data, &dev).len(), dev.len());
    }
}

#[test]
fn the_command_line_refuses_what_it_cannot_do_and_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 16, 8, 0);
    let run = |extra: &[String]| {
        let mut args = command_args("finetune", "tiny-finetune-multimodal", &data);
        args.extend(small());
        args.extend(["--out".into(), arg(&tmp.path().join("run"))]);
        args.extend(extra.iter().cloned());
        fails(&args)
    };

    let out = run(&["--init-from".into(), export("clip-vision-opset17.onnx")]);
    assert!(out.stderr.contains("model.image=onnx:"), "{}", out.both());

    let out = run(&sets(&[format!("model.text=onnx:{}", export("clip-text-opset17.onnx"))]));
    assert!(out.stderr.contains("--tokenizer"), "{}", out.both());

    // Typos are refused with the keys that exist (issue #17).
    let out = run(&sets(&["train.epoch=2".into()]));
    assert!(out.stderr.contains("epoch") && out.stderr.contains("epochs"), "{}", out.both());
    let out = run(&sets(&["model.haed=cross".into()]));
    assert!(out.stderr.contains("haed") && out.stderr.contains("head"), "{}", out.both());

    let out = run(&sets(&[
        format!("model.image=onnx:{}", export("clip-vision-opset17.onnx")),
        "model.image_trainable=\"last:3\"".into(),
    ]));
    assert!(out.stderr.contains("last:3") && out.stderr.contains("has 2 blocks"), "{}", out.both());
}

/// `hf:` folders for both towers: the folder's preprocessing (CLIP's resize, bicubic,
/// CLIP's statistics) and tokenizer travel into the package; `refresh` then finetunes
/// the package again from a moderator's reviews, keeping both.
#[test]
fn an_hf_clip_folder_exports_with_its_preprocessing_and_tokenizer_and_refreshes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 32, 16, 0);
    let models = tmp.path().join("models");
    let current = models.join("clip/1.0.0");
    let folder = arg(&fixtures().join("hf/clip-tiny"));
    let mut args = command_args("finetune", "tiny-finetune-multimodal", &data);
    args.extend(small());
    args.extend(sets(&[
        "train.epochs=1".into(),
        format!("model.image=hf:{folder}"),
        format!("model.text=hf:{folder}"),
        "model.image_trainable=false".into(),
        "model.text_trainable=false".into(),
    ]));
    args.extend(["--out".into(), arg(&tmp.path().join("run")), "--export".into(), arg(&current)]);
    ok(&args);
    let pkg = ModelPackage::open(&current).unwrap();
    let image = pkg.manifest.image;
    assert_eq!(image.size, 32);
    assert_eq!(image.resize, memeguard_package::ResizeRule::ScaleShorterSideThenCenterCrop);
    assert_eq!(image.mean, memeguard_package::manifest::CLIP_MEAN);
    assert_eq!(pkg.tokenizer.token_id("<|endoftext|>"), Some(1), "the folder's tokenizer");
    assert_eq!(pkg.manifest.architecture.text_encoder, format!("hf:{folder}"));

    // A moderator reviews one decision; refresh finetunes the package again.
    let meme = &memes(&data, "dev_seen")[0];
    let db = tmp.path().join("memeguard.db");
    let log = DecisionLog::create(&db);
    let bytes = std::fs::read(data.join(&meme.img)).unwrap();
    let decision = Decision {
        model: &pkg.id(),
        score: 0.5,
        threshold: pkg.manifest.threshold,
        text: &meme.text,
        image: &bytes,
        stored: true,
    };
    let id = log.decide(&decision);
    log.review(id, meme.label == 1, "checked");
    log.close();
    let mut args = vec!["refresh".to_string(), "--database".into(), arg(&db), "--package".into(), arg(&current)];
    args.extend(["--data".into(), arg(&data), "--models".into(), arg(&models), "--work-dir".into()]);
    args.push(arg(&tmp.path().join("work")));
    args.extend(["--epochs", "1", "--threads", "1", "--workers", "1", "--quiet"].map(String::from));
    let out = ok(&args);
    assert!(out.stdout.contains("| refreshed |"), "{}", out.both());
    if let Some(line) = out.stdout.lines().find_map(|l| l.strip_prefix("new package: ")) {
        let new = ModelPackage::open(Path::new(line)).unwrap();
        assert_eq!(new.manifest.image, image, "the refreshed package keeps the encoder's preprocessing");
        assert_eq!(new.tokenizer.token_id("<|endoftext|>"), Some(1));
        assert_eq!(new.manifest.architecture, pkg.manifest.architecture);
    } else {
        assert!(out.stdout.contains("kept clip@1.0.0"), "{}", out.both());
    }
}

/// `image_trainable = "last:1"` on an `hf:` CLIP: the last block and what follows it
/// train, the embeddings and the first block stay as the folder has them.
#[test]
fn an_hf_vision_tower_trains_its_last_block_only() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 32, 16, 0);
    let package = tmp.path().join("models/clip/1.0.0");
    let folder = fixtures().join("hf/clip-tiny");
    let mut args = command_args("finetune", "tiny-finetune-image", &data);
    args.extend(small());
    args.extend(sets(&[
        "train.epochs=1".into(),
        format!("model.image=hf:{}", arg(&folder)),
        "model.image_trainable=\"last:1\"".into(),
    ]));
    args.extend(["--out".into(), arg(&tmp.path().join("run")), "--export".into(), arg(&package)]);
    ok(&args);

    let bytes = std::fs::read(folder.join("model.safetensors")).unwrap();
    let original = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let pkg = ModelPackage::open(&package).unwrap();
    let model = pkg.model().unwrap();
    let mut trained = Vec::new();
    let mut kept = Vec::new();
    for t in &model.graph.unwrap().initializer {
        let Some(name) = t.name.as_deref().and_then(|n| n.strip_prefix("image.")) else { continue };
        let Ok(view) = original.tensor(name) else { continue };
        let theirs: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let ours = Tensor::from_proto(t).unwrap();
        if ours.as_f32().unwrap() == theirs.as_slice() {
            kept.push(name.to_string())
        } else {
            trained.push(name.to_string())
        }
    }
    let in_block = |names: &[String], block: &str| names.iter().filter(|n| n.contains(block)).count();
    assert_eq!(in_block(&trained, "layers.0."), 0, "the first block trained: {trained:?}");
    assert_eq!(in_block(&kept, "layers.1."), 0, "some of the last block stayed: {kept:?}");
    assert!(in_block(&trained, "layers.1.") >= 10, "{trained:?}");
    for frozen in ["vision_model.embeddings.patch_embedding.weight", "vision_model.pre_layrnorm.weight"] {
        assert!(kept.iter().any(|n| n == frozen), "{frozen} trained");
    }
    for tail in ["vision_model.post_layernorm.weight", "visual_projection.weight"] {
        assert!(trained.iter().any(|n| n == tail), "{tail} did not train");
    }
}

/// `memeguard-train models onnx:…` / `hf:…` describe an encoder before a recipe names it.
#[test]
fn models_describes_encoders_from_elsewhere() {
    let out = ok(&["models".to_string(), format!("onnx:{}#text_embeds", export("clip-joint-opset17.onnx"))]);
    assert!(out.stdout.contains("input_ids Int64 [batch, sequence]"), "{}", out.both());
    assert!(!out.stdout.contains("pixel_values"), "the image tower is cut away:\n{}", out.both());
    assert!(out.stdout.contains("features: 16 per item"), "{}", out.both());
    let out = fails(&["models".to_string(), format!("onnx:{}", export("clip-joint-opset17.onnx"))]);
    assert!(out.stderr.contains("2 outputs (image_embeds, text_embeds)"), "{}", out.both());
    let out = ok(&["models".to_string(), format!("hf:{}", arg(&fixtures().join("hf/clip-tiny")))]);
    assert!(out.stdout.contains("vision tower: 32×32 images, 16 features"), "{}", out.both());
}
