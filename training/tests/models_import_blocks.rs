//! `trainable = "last:N"` for ONNX encoders: the repeated blocks are found in the names
//! torch's exporters keep (legacy: initializer names, or the scope in the names of the
//! nodes reading a renamed weight; dynamo: `…layers_3…`), on the committed exports of the
//! tiny CLIP (tests/fixtures/exports/, two blocks per tower). `last:1` trains block 1 and
//! what follows it (final norm, projection), never the embeddings or block 0; an export
//! without numbered blocks is refused with what was looked for.

#[path = "common/train_cli.rs"]
mod train_cli;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use memeguard_onnx::{DataType, GraphBuilder, Tensor, dims, save_model};
use memeguard_training::graph_spec::Mode;
use memeguard_training::models::encoders::blocks::{BlockStructure, block_index};
use memeguard_training::models::encoders::{OnnxImageEncoder, OnnxTextEncoder};
use memeguard_training::models::import::ImportedEncoder;
use memeguard_training::models::input::{BATCH, PIXEL_VALUES, normalise_pixels};
use memeguard_training::models::net::Net;
use memeguard_training::models::source::{EncoderSource, Trainable};

fn export(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exports").join(file)
}

fn source(file: &str) -> EncoderSource {
    EncoderSource::Onnx { file: export(file), output: None }
}

/// Each parameter's role by its (torch) name, whatever the exporter made of it: the block
/// it is in, or "before" / "after" the blocks.
fn role(name: &str) -> String {
    match block_index(name) {
        Some(b) => format!("block {b}"),
        None if ["post_layernorm", "final_layer_norm", "projection"].iter().any(|k| name.contains(k)) => "after".into(),
        None => "before".into(),
    }
}

/// A name the exporter made up for a weight it transposed or folded (legacy
/// `onnx::MatMul_291`, dynamo `val_21`): its block comes from the nodes that read it.
fn generated(name: &str) -> bool {
    name.starts_with("onnx::") || name.starts_with("val_")
}

#[test]
fn the_blocks_of_torch_exports_are_found_in_their_names() {
    for file in
        ["clip-vision-opset17.onnx", "clip-vision-dynamo.onnx", "clip-text-opset17.onnx", "clip-text-dynamo.onnx"]
    {
        let encoder = ImportedEncoder::load(&export(file)).unwrap();
        let names: Vec<String> = encoder.parameters().into_iter().map(|p| p.name).collect();
        let blocks = BlockStructure::find(encoder.graph_proto(), &names)
            .unwrap_or_else(|| panic!("{file}: no blocks found in {names:?}"));
        assert_eq!(blocks.count, 2, "{file}");
        // Every named parameter is placed as its name says; the renamed ones
        // (onnx::MatMul_…) through the nodes that read them.
        for name in &names {
            let placed = match (blocks.block.get(name), blocks.after.contains(name)) {
                (Some(b), false) => format!("block {b}"),
                (None, true) => "after".into(),
                (None, false) => "before".into(),
                (Some(_), true) => panic!("{file}: {name} is in a block and after the blocks"),
            };
            if !generated(name) {
                assert_eq!(placed, role(name), "{file}: {name}");
            }
        }
        // The renamed weights are the six matrices of each block (q, k, v, out, fc1, fc2).
        for b in 0..2 {
            let renamed = names.iter().filter(|n| generated(n) && blocks.block.get(*n) == Some(&b)).count();
            assert_eq!(renamed, 6, "{file}: block {b}: {:?}", blocks.block);
        }
        let last = blocks.last_blocks(1);
        let in_block = |b: usize| names.iter().filter(|n| blocks.block.get(*n) == Some(&b)).count();
        // The fixture's tiny random weights repeat (ones, zeros), so torch stored some
        // once for several blocks; a tensor shared across blocks belongs to none.
        assert!(in_block(0) >= 6 && in_block(1) >= 6, "{file}: {:?}", blocks.block);
        assert!(names.iter().filter(|n| blocks.block.get(*n) == Some(&1)).all(|n| last.contains(n)), "{file}");
        assert!(names.iter().filter(|n| blocks.block.get(*n) == Some(&0)).all(|n| !last.contains(n)), "{file}");
        assert!(!blocks.after.is_empty(), "{file}: nothing after the blocks");
        assert!(blocks.after.iter().all(|n| last.contains(n)));
        assert!(last.iter().all(|n| !n.contains("embedding") && !n.contains("pre_layrnorm")), "{file}: {last:?}");
        // last:2 is the whole stack and what follows; the embeddings stay frozen.
        let both = blocks.last_blocks(2);
        assert_eq!(both.len(), in_block(0) + in_block(1) + blocks.after.len(), "{file}");
        assert!(both.iter().all(|n| !n.contains("embedding")), "{file}: {both:?}");
    }
}

/// The trainable flags the training graph gets from `last:1`, vision and text, legacy and
/// dynamo.
#[test]
fn last_one_trains_the_last_block_and_the_tail_in_the_training_graph() {
    for file in ["clip-vision-opset17.onnx", "clip-vision-dynamo.onnx"] {
        let encoder = OnnxImageEncoder::load(&source(file), Trainable::LastBlocks(1)).unwrap();
        let mut net = Net::new("g", Mode::Train, 0);
        let pixels = net.b.input(PIXEL_VALUES, DataType::Uint8, &dims![BATCH, 32, 32, 3]);
        let x = normalise_pixels(&mut net, &pixels);
        encoder.build(&mut net, "image", &x).unwrap();
        let graph = net.finish(&[]);
        check_flags(file, "image.", &graph.params.iter().map(|p| (p.name.clone(), p.trainable)).collect::<Vec<_>>());
    }
    for file in ["clip-text-opset17.onnx", "clip-text-dynamo.onnx"] {
        let encoder = OnnxTextEncoder::load(&source(file), Trainable::LastBlocks(1)).unwrap();
        let mut net = Net::new("g", Mode::Train, 0);
        let (ids, mask) = memeguard_training::models::input::text_inputs(&mut net);
        encoder.build(&mut net, "text", &ids, &mask).unwrap();
        let graph = net.finish(&[]);
        check_flags(file, "text.", &graph.params.iter().map(|p| (p.name.clone(), p.trainable)).collect::<Vec<_>>());
    }
}

fn check_flags(file: &str, prefix: &str, params: &[(String, bool)]) {
    let trained: BTreeSet<&str> = params.iter().filter(|(_, t)| *t).map(|(n, _)| n.as_str()).collect();
    assert!(!trained.is_empty() && trained.len() < params.len(), "{file}: {params:?}");
    for (name, trains) in params {
        let theirs = name.strip_prefix(prefix).unwrap();
        if generated(theirs) {
            continue;
        }
        let want = matches!(role(theirs).as_str(), "block 1" | "after");
        assert_eq!(*trains, want, "{file}: {theirs} ({})", role(theirs));
    }
}

#[test]
fn an_export_without_numbered_blocks_is_refused_for_last_n() {
    let mut b = GraphBuilder::new("flat");
    let x = b.input("pixels", DataType::Float, &dims!["n", 3, 8, 8]);
    let h = b.op("Flatten", &[&x], &[]);
    let w = b.initializer("proj.weight", &Tensor::f32(vec![192, 4], vec![0.01; 768]));
    let h = b.op("MatMul", &[&h, &w], &[]);
    b.named_output(&h, "embedding", DataType::Float, &dims!["n", 4]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flat.onnx");
    save_model(&b.build(), &path).unwrap();
    let source = EncoderSource::Onnx { file: path, output: None };
    let text = OnnxImageEncoder::load(&source, Trainable::LastBlocks(1)).unwrap_err().to_string();
    assert!(text.contains("last:1") && text.contains("layers.N") && text.contains("false (frozen)"), "{text}");
    // Frozen or whole, it loads.
    OnnxImageEncoder::load(&source, Trainable::Frozen).unwrap();
    // More blocks than the export has.
    let text = OnnxImageEncoder::load(&self::source("clip-vision-dynamo.onnx"), Trainable::LastBlocks(3))
        .unwrap_err()
        .to_string();
    assert!(text.contains("has 2 blocks"), "{text}");
}

/// End to end: `finetune --set model.image=onnx:…dynamo… --set image_trainable="last:1"`,
/// then the package's copy of the encoder: block 1's matrices and the projection moved,
/// block 0's and the patch embedding are the file's.
#[test]
fn a_finetune_with_last_one_moves_only_the_last_block_of_an_onnx_export() {
    use train_cli::*;
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(&tmp.path().join("synth"), 32, 16, 0);
    let package = tmp.path().join("models/clip/1.0.0");
    let file = export("clip-vision-dynamo.onnx");
    let mut args = command_args("finetune", "tiny-finetune-image", &data);
    args.extend(small());
    for set in [
        "train.epochs=1".to_string(),
        format!("model.image=onnx:{}", arg(&file)),
        "model.image_trainable=\"last:1\"".into(),
    ] {
        args.extend(["--set".to_string(), set]);
    }
    args.extend(["--out".into(), arg(&tmp.path().join("run")), "--export".into(), arg(&package)]);
    ok(&args);

    let encoder = ImportedEncoder::load(&file).unwrap();
    let names: Vec<String> = encoder.parameters().into_iter().map(|p| p.name).collect();
    let blocks = BlockStructure::find(encoder.graph_proto(), &names).unwrap();
    let theirs: std::collections::BTreeMap<String, Tensor> = encoder
        .graph_proto()
        .initializer
        .iter()
        .map(|t| (t.name.clone().unwrap(), Tensor::from_proto(t).unwrap()))
        .collect();
    let pkg = memeguard_package::ModelPackage::open(&package).unwrap();
    let model = pkg.model().unwrap();
    let mut moved = BTreeSet::new();
    let mut kept = BTreeSet::new();
    for t in &model.graph.unwrap().initializer {
        let Some(name) = t.name.as_deref().and_then(|n| n.strip_prefix("image.")) else { continue };
        let Some(original) = theirs.get(name) else { continue };
        if Tensor::from_proto(t).unwrap() == *original {
            kept.insert(name.to_string())
        } else {
            moved.insert(name.to_string())
        };
    }
    let trains = blocks.last_blocks(1);
    for name in &names {
        if trains.contains(name) {
            assert!(moved.contains(name), "{name} should have trained; moved: {moved:?}");
        } else {
            assert!(kept.contains(name), "{name} should be the file's; moved: {moved:?}");
        }
    }
    assert!(kept.contains("vision_model.embeddings.patch_embedding.weight"));
    assert!(moved.contains("visual_projection.weight"));
}
