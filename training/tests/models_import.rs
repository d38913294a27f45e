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
/// Conv → Relu → ReduceMean (axes as an attribute) → ×2 (a scalar initializer) →
/// Gemm → `embedding` [N, 6]; plus a Reshape whose shape is an int64 initializer.
/// `extra` ops are applied to the embedding before the output (for the gradient-rule
/// check), and `input_op` to the input (which needs no gradient).
fn encoder(extra: &[&str], input_op: Option<&str>) -> ModelProto {
    let mut b = GraphBuilder::new("exported");
    let x = b.input("pixels", DataType::Float, &dims!["n", 3, 8, 8]);
    let x = match input_op {
        Some(op) => b.op(op, &[&x], &[]),
        None => x,
    };
    let w = b.initializer("conv.weight", &random(&[4, 3, 3, 3], 1));
    let bias = b.initializer("conv.bias", &random(&[4], 2));
    let h =
        b.op("Conv", &[&x, &w, &bias], &[("kernel_shape", Attr::Ints(vec![3, 3])), ("pads", Attr::Ints(vec![1; 4]))]);
    let h = b.op("Relu", &[&h], &[]);
    let h = b.op("ReduceMean", &[&h], &[("axes", Attr::Ints(vec![2, 3])), ("keepdims", Attr::Int(1))]);
    let shape = b.initializer("flat_shape", &Tensor::vec_i64(&[0, -1]));
    let h = b.op("Reshape", &[&h, &shape], &[]);
    let two = b.initializer("two", &Tensor::scalar_f32(2.0));
    let h = b.op("Mul", &[&h, &two], &[]);
    let fc = b.initializer("fc.weight", &random(&[6, 4], 3));
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
    assert_eq!(params, ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]);
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
        assert!(graph.params.iter().find(|p| p.name == "image.conv.weight").unwrap().weight_decay);
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
    // Softsign on the input needs no gradient; Softplus and Einsum after the weights do.
    let model = encoder(&["Softplus", "Einsum", "Softplus", "Relu"], Some("Softsign"));
    let imported = ImportedEncoder::load(&save(&model, &dir)).unwrap();
    let missing = imported.ops_without_gradient_rule();
    let ops: Vec<(&str, usize)> = missing.iter().map(|m| (m.op_type.as_str(), m.count)).collect();
    assert_eq!(ops, [("Softplus", 2), ("Einsum", 1)]);

    let mut net = Net::new("imported", Mode::Train, 1);
    let x = net.b.input("x", DataType::Float, &dims![BATCH, 3, 8, 8]);
    let err = imported.attach(&mut net, "image", &[("pixels", &x)], true).unwrap_err();
    assert!(matches!(err, ImportError::MissingGradientRules { .. }));
    let text = err.to_string();
    assert!(text.contains("Softplus (2×") && text.contains("Einsum (1×") && !text.contains("Softsign"), "{text}");
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
    assert!(refuse(external).contains("external file"));

    let imported = ImportedEncoder::from_model(encoder(&[], None), "enc.onnx").unwrap();
    let mut net = Net::new("g", Mode::Infer, 0);
    let x = net.b.input("x", DataType::Float, &dims![BATCH, 3, 8, 8]);
    let text = imported.attach(&mut net, "image", &[("image", &x)], false).unwrap_err().to_string();
    assert!(text.contains("no input `image`") && text.contains("pixels"), "{text}");
    let text = imported.attach(&mut net, "image", &[], false).unwrap_err().to_string();
    assert!(text.contains("not connected: pixels"), "{text}");
}
