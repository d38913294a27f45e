//! Every op of the built-in models, forward (`builtin_model_ops`) and in their
//! training graphs (forward + gradients), has a CUDA kernel in ONNX Runtime 1.31.1
//! (the repository's kernel table), at the version the op resolves to under opset 20
//! (read from the `onnx` package's schemas).
//!
//! The table lists registered kernels, not their limits at run time: ONNX Runtime's
//! CUDA `BatchNormalization` is registered but refuses `training_mode=1` from opset
//! 14 on, which is why training graphs write batch norm with elementwise ops
//! (`TrainBatchNorm::Decomposed`); the last test checks they do.

mod models_support;

use std::collections::{BTreeMap, BTreeSet};

use memeguard_onnx::{Attr, dims};
use memeguard_training::autodiff::differentiate;
use memeguard_training::graph_spec::Mode;
use memeguard_training::models::catalog::{builtin_model_ops, graph_stats};
use memeguard_training::models::input::BATCH;
use memeguard_training::models::*;
use memeguard_training::runtime::CudaKernelTable;

/// Op → since-version of its schema at opset 20, from `onnx.defs`.
fn versions_at_opset_20(ops: &BTreeSet<String>) -> BTreeMap<String, i64> {
    let script = "import sys, json, onnx.defs\n\
                  print(json.dumps({op: onnx.defs.get_schema(op, 20, '').since_version for op in sys.argv[1:]}))";
    let args: Vec<&str> = ops.iter().map(String::as_str).collect();
    serde_json::from_str(&memeguard_onnx::pycheck::run_python(script, &args).unwrap()).unwrap()
}

/// The ops of each tiny model's training graph: forward, loss, gradients.
fn training_graph_ops() -> BTreeSet<String> {
    let text = TextConfig { pooling: Pooling::Mean, dropout: 0.1, ..TextConfig::tiny(16, 8) };
    let mut ops = BTreeSet::new();
    for (image, head) in [
        ("resnet-tiny", HeadConfig::default()),
        ("vit-tiny", HeadConfig::HateClipper(HateClipperHead::new(Interaction::Cross))),
    ] {
        let cfg = ClassifierConfig {
            image: Some(ImageEncoderConfig::parse(image).unwrap().into()),
            text: Some(text.clone().into()),
            head,
        };
        let graph = build_classifier(&cfg, Mode::Train, Weights::Random { seed: 1 }).unwrap();
        let mut b = memeguard_onnx::GraphBuilder::from_model(&graph.model);
        let squared = b.op("Mul", &["logits", "logits"], &[]);
        let loss = b.op("ReduceMean", &[&squared], &[("keepdims", Attr::Int(0))]);
        let diff = differentiate(&b.build(), &loss, &graph.trainable()).unwrap();
        ops.extend(diff.model.graph.unwrap().node.into_iter().filter_map(|n| n.op_type));
    }
    let mut net = Net::new("dino", Mode::Train, 1);
    let pixels = image_input(&mut net, 32);
    let f = vit_at_input_size(&mut net, &VitConfig::tiny(), "image", &pixels, 16);
    let d = dino_head(&mut net, "dino", &f, 32, &DinoHeadConfig::tiny());
    let p = projection_head(&mut net, "proj", &f, 32, 16, 0.1);
    let sum = net.b.op("Add", &[&d, &d], &[]);
    let both = net.b.op("Concat", &[&sum, &p], &[("axis", Attr::Int(-1))]);
    let loss = net.b.op("ReduceMean", &[&both], &[("keepdims", Attr::Int(0))]);
    let graph = net.finish(&[GraphOutput::f32(&loss, "loss", dims![])]);
    let diff = differentiate(&graph.model, "loss", &graph.trainable()).unwrap();
    ops.extend(diff.model.graph.unwrap().node.into_iter().filter_map(|n| n.op_type));
    ops
}

#[test]
fn every_model_op_has_a_cuda_kernel() {
    let mut ops = builtin_model_ops();
    ops.extend(training_graph_ops());
    let versions = versions_at_opset_20(&ops);
    let missing = CudaKernelTable::builtin().missing(versions.iter().map(|(op, v)| (op.as_str(), *v)));
    assert!(missing.is_empty(), "no CUDA kernel for: {}", missing.join(", "));
    assert!(ops.len() > 30, "{ops:?}");
}

#[test]
fn training_graphs_avoid_the_batch_norm_training_mode_cuda_refuses() {
    let cfg = ImageEncoderConfig::parse("resnet-tiny").unwrap();
    let mut net = Net::hollow("cnn", Mode::Train);
    let x = image_input(&mut net, 32);
    let f = cfg.build(&mut net, "image", &x);
    let graph = net.finish(&[GraphOutput::f32(&f, "features", dims![BATCH, 64])]);
    assert!(!graph_stats(&graph).ops.contains_key("BatchNormalization"));
    assert!(!graph.buffers.is_empty() && graph.buffers.iter().all(|b| !b.updated.is_empty()));
}
