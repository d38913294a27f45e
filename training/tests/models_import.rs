//! Importing a saved ONNX encoder: its weights become parameters, our head attaches,
//! the combined graph runs and computes what the encoder alone computes; encoders
//! that cannot be trained or embedded are refused with what is wrong.

mod models_support;

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{Attr, DataType, GraphBuilder, Tensor, check_model, dims, save_model};
use memeguard_training::graph_spec::Mode;
use memeguard_training::models::import::{ImportError, ImportedEncoder};
use memeguard_training::models::input::{BATCH, PIXEL_VALUES, normalise_pixels};
use memeguard_training::models::layers::linear;
use memeguard_training::models::*;
use models_support::{Lcg, pixels, run};

fn random(dims: &[i64], seed: u64) -> Tensor {
    let mut rng = Lcg(seed);
    Tensor::f32(dims.to_vec(), (0..dims.iter().product::<i64>()).map(|_| 0.3 * rng.uniform()).collect())
}

/// A small image encoder as another framework would export it at opset 17:
/// ReduceMean over the pixels (axes as an attribute, as before opset 18) → MatMul +
/// Add → Relu → ×2 (a scalar initializer) → Gemm → `embedding` [N, 6]. `extra` ops are
/// applied to the embedding before the output (for the gradient-rule check), and
/// `input_op` to the input (which needs no gradient).
fn encoder(extra: &[&str], input_op: Option<&str>) -> ModelProto {
    let mut b = GraphBuilder::new("exported");
    let x = b.input("pixels", DataType::Float, &dims!["n", 3, 8, 8]);
    let x = match input_op {
        Some(op) => b.op(op, &[&x], &[]),
        None => x,
    };
    let h = b.op("ReduceMean", &[&x], &[("axes", Attr::Ints(vec![2, 3])), ("keepdims", Attr::Int(0))]);
    let w = b.initializer("proj.weight", &random(&[3, 5], 1));
    let bias = b.initializer("proj.bias", &random(&[5], 2));
    let h = b.op("MatMul", &[&h, &w], &[]);
    let h = b.op("Add", &[&h, &bias], &[]);
    let h = b.op("Relu", &[&h], &[]);
    let two = b.initializer("two", &Tensor::scalar_f32(2.0));
    let h = b.op("Mul", &[&h, &two], &[]);
    let fc = b.initializer("fc.weight", &random(&[6, 5], 3));
    let fc_bias = b.initializer("fc.bias", &random(&[6], 4));
    let mut h = b.op("Gemm", &[&h, &fc, &fc_bias], &[("transB", Attr::Int(1))]);
    for op in extra {
        h = if *op == "Einsum" {
            b.op("Einsum", &[&h, &h], &[("equation", Attr::Str("ni,ni->ni".into()))])
        } else {
            b.op(op, &[&h], &[])
        };
    }
    b.named_output(&h, "embedding", DataType::Float, &dims!["n", 6]);
    let mut model = b.build();
    model.opset_import[0].version = Some(17);
    model
}

fn save(model: &ModelProto, dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("encoder.onnx");
    save_model(model, &path).unwrap();
    path
}

#[test]
fn imported_encoder_gets_a_head_and_computes_what_it_computed_alone() {
    let dir = tempfile::tempdir().unwrap();
    let original = encoder(&[], None);
    let imported = ImportedEncoder::load(&save(&original, &dir)).unwrap();
    let params: Vec<String> = imported.parameters().into_iter().map(|p| p.name).collect();
    assert_eq!(params, ["proj.weight", "proj.bias", "fc.weight", "fc.bias"]);
    assert_eq!(imported.inputs().len(), 1);
    assert_eq!(imported.outputs()[0].name, "embedding");
    assert!(imported.ops_without_gradient_rule().is_empty());

    for trainable in [true, false] {
        let mut net = Net::new("imported", Mode::Train, 1);
        let x = net.b.input(PIXEL_VALUES, DataType::Uint8, &dims![BATCH, 8, 8, 3]);
        let x = normalise_pixels(&mut net, &x);
        let outputs = imported.attach(&mut net, "image", &[("pixels", &x)], trainable).unwrap();
        let embedding = &outputs["embedding"];
        let logit = linear(&mut net, "head.out", embedding, 6, 1, true);
        let graph = net.finish(&[
            GraphOutput::f32(&logit, "logit", dims![BATCH, 1]),
            GraphOutput::f32(embedding, "embedding", dims![BATCH, 6]),
            GraphOutput::f32(&x, "normalised", dims![BATCH, 3, 8, 8]),
        ]);
        check_model(&graph.model, true).unwrap();
        let encoder_params: Vec<_> = graph.params.iter().filter(|p| p.group == "image").collect();
        assert_eq!(encoder_params.len(), 4);
        assert!(encoder_params.iter().all(|p| p.trainable == trainable && p.name.starts_with("image.")));
        // Weight decay on matrices and kernels, not on biases.
        assert!(graph.params.iter().find(|p| p.name == "image.proj.weight").unwrap().weight_decay);
        assert!(!graph.params.iter().find(|p| p.name == "image.fc.bias").unwrap().weight_decay);
        assert_eq!(graph.trainable().len(), if trainable { 6 } else { 2 });

        let out = run(&graph.model, vec![(PIXEL_VALUES, pixels(3, 8, 4))]);
        assert_eq!(out["logit"].0, vec![3, 1]);
        // The encoder alone (its own opset-17 file) on the same normalised input.
        let (shape, normalised) = &out["normalised"];
        let input = ort::value::Tensor::from_array((shape.clone(), normalised.clone())).unwrap().into_dyn();
        let alone = run(&original, vec![("pixels", input)]);
        for (a, b) in alone["embedding"].1.iter().zip(&out["embedding"].1) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}

#[test]
fn ops_without_gradient_rules_are_listed_when_training() {
    let dir = tempfile::tempdir().unwrap();
    // Softsign on the input needs no gradient; Hardmax and Celu after the weights do
    // (neither has a rule; Einsum, used here before, has one now).
    let model = encoder(&["Hardmax", "Celu", "Hardmax", "Relu"], Some("Softsign"));
    let imported = ImportedEncoder::load(&save(&model, &dir)).unwrap();
    let missing = imported.ops_without_gradient_rule();
    let ops: Vec<(&str, usize)> = missing.iter().map(|m| (m.op_type.as_str(), m.count)).collect();
    assert_eq!(ops, [("Hardmax", 2), ("Celu", 1)]);

    let mut net = Net::new("imported", Mode::Train, 1);
    let x = net.b.input("x", DataType::Float, &dims![BATCH, 3, 8, 8]);
    let err = imported.attach(&mut net, "image", &[("pixels", &x)], true).unwrap_err();
    assert!(matches!(err, ImportError::MissingGradientRules { .. }));
    let text = err.to_string();
    assert!(text.contains("Hardmax (2×") && text.contains("Celu (1×") && !text.contains("Softsign"), "{text}");
    // Frozen, it imports fine.
    imported.attach(&mut net, "image", &[("pixels", &x)], false).unwrap();
}

#[test]
fn encoders_that_cannot_be_embedded_are_refused_with_the_reason() {
    let refuse = |model: ModelProto| ImportedEncoder::from_model(model, "enc.onnx").unwrap_err().to_string();

    let mut old = encoder(&[], None);
    old.opset_import[0].version = Some(11);
    let text = refuse(old);
    assert!(text.contains("opset 11") && text.contains("re-export"), "{text}");

    let mut foreign = encoder(&[], None);
    foreign.graph.as_mut().unwrap().node[1].domain = Some("com.microsoft".into());
    assert!(refuse(foreign).contains("domain `com.microsoft`"));

    let mut external = encoder(&[], None);
    external.graph.as_mut().unwrap().initializer[0].data_location =
        Some(memeguard_onnx::proto::tensor_proto::DataLocation::External as i32);
    // Bytes without a folder: external data cannot be read in, one message says so.
    let text = refuse(external);
    assert!(text.contains("1 initializer(s) are stored in an external data file"), "{text}");

    let imported = ImportedEncoder::from_model(encoder(&[], None), "enc.onnx").unwrap();
    let mut net = Net::new("g", Mode::Infer, 0);
    let x = net.b.input("x", DataType::Float, &dims![BATCH, 3, 8, 8]);
    let text = imported.attach(&mut net, "image", &[("image", &x)], false).unwrap_err().to_string();
    assert!(text.contains("no input `image`") && text.contains("pixels"), "{text}");
    let text = imported.attach(&mut net, "image", &[], false).unwrap_err().to_string();
    assert!(text.contains("not connected: pixels"), "{text}");
}

/// Imported encoder + our head, differentiated by the autodiff and trained end to end
/// by plain gradient descent on a fixed batch (the optimizers proper live in `optim`).
#[test]
fn an_imported_encoder_with_our_head_trains_end_to_end() {
    use memeguard_training::autodiff::differentiate;
    use memeguard_training::models::layers::relu;

    let dir = tempfile::tempdir().unwrap();
    let imported = ImportedEncoder::load(&save(&encoder(&[], None), &dir)).unwrap();
    let mut net = Net::new("finetune", Mode::Train, 3);
    let x = net.b.input("x", DataType::Float, &dims![BATCH, 3, 8, 8]);
    let target = net.b.input("target", DataType::Float, &dims![BATCH, 1]);
    let embedding = imported.attach(&mut net, "image", &[("pixels", &x)], true).unwrap()["embedding"].clone();
    let h = linear(&mut net, "head.hidden", &embedding, 6, 16, true);
    let h = relu(&mut net, &h);
    let logit = linear(&mut net, "head.out", &h, 16, 1, true);
    let diff = net.b.op("Sub", &[&logit, &target], &[]);
    let squared = net.b.op("Mul", &[&diff, &diff], &[]);
    let loss = net.b.op("ReduceMean", &[&squared], &[("keepdims", Attr::Int(0))]);
    let graph = net.finish(&[GraphOutput::f32(&loss, "loss", vec![])]);
    let trainable = graph.trainable();
    assert_eq!(trainable.len(), 8);
    let diff = differentiate(&graph.model, "loss", &trainable).unwrap();
    let mut builder = GraphBuilder::from_model(&diff.model);
    let dims_of = |name: &str| {
        graph.model.graph.as_ref().unwrap().initializer.iter().find(|t| t.name() == name).unwrap().dims.clone()
    };
    for p in &trainable {
        let d: Vec<memeguard_onnx::Dim> = dims_of(p).into_iter().map(memeguard_onnx::Dim::Known).collect();
        builder.output(&diff.grads[p], DataType::Float, &d);
    }
    let mut step_model = builder.build();
    check_model(&step_model, true).unwrap();

    let mut rng = Lcg(8);
    let n = 8;
    // Each image has its own brightness per channel, so the pooled features differ.
    let offsets: Vec<f32> = (0..n * 3).map(|_| 2.0 * rng.uniform()).collect();
    let xs: Vec<f32> = (0..n * 3 * 64).map(|i| offsets[i / 64] + 0.1 * rng.uniform()).collect();
    // A target the pooled features can explain: the sign of the red channel's offset.
    let ys: Vec<f32> = (0..n).map(|i| offsets[3 * i].signum()).collect();
    let mut losses = Vec::new();
    for _ in 0..40 {
        models_support::init_ort();
        let inputs = vec![
            ("x", ort::value::Tensor::from_array((vec![n as i64, 3, 8, 8], xs.clone())).unwrap().into_dyn()),
            ("target", ort::value::Tensor::from_array((vec![n as i64, 1], ys.clone())).unwrap().into_dyn()),
        ];
        let out = run(&step_model, inputs);
        losses.push(out["loss"].1[0]);
        // p ← p − 0.5·∂loss/∂p, written back into the initializers.
        for init in &mut step_model.graph.as_mut().unwrap().initializer {
            let name = init.name().to_string();
            if let Some(grad) = diff.grads.get(&name) {
                let value = Tensor::from_proto(init).unwrap();
                let updated: Vec<f32> =
                    value.as_f32().unwrap().iter().zip(&out[grad].1).map(|(p, g)| p - 0.5 * g).collect();
                *init = Tensor::f32(value.dims.clone(), updated).to_proto(&name);
            }
        }
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < 0.25 * first, "loss went from {first} to {last}: {losses:?}");
}
