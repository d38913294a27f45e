//! Graphs built with the builder load in a real ONNX Runtime session and compute what
//! a naive Rust reference computes; saved files load back unchanged.

use memeguard_onnx::testing::Lcg;
use memeguard_onnx::{Attr, DataType, GraphBuilder, Tensor, check_model, dims, load_model, save_model};
use memeguard_package::onnxruntime::{SessionOptions, session_from_bytes};
use ort::value::TensorRef;

/// y = Softmax(Relu(x·W + b)) along the last axis, then scaled by a Constant node.
fn build(w: &Tensor, b: &Tensor) -> memeguard_onnx::proto::ModelProto {
    let mut g = GraphBuilder::new("mlp");
    let x = g.input("x", DataType::Float, &dims!["batch", 4]);
    let w = g.initializer("w", w);
    let b = g.initializer("b", b);
    let h = g.op("MatMul", &[&x, &w], &[]);
    let h = g.op("Add", &[&h, &b], &[]);
    let h = g.op("Relu", &[&h], &[]);
    let p = g.op("Softmax", &[&h], &[("axis", Attr::Int(-1))]);
    let two = g.op("Constant", &[], &[("value", Attr::Tensor(Tensor::scalar_f32(2.0)))]);
    let y = g.op("Mul", &[&p, &two], &[]);
    g.named_output(&y, "y", DataType::Float, &dims!["batch", 3]);
    g.build()
}

fn reference(x: &[f32], w: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut h: Vec<f32> =
            (0..3).map(|j| ((0..4).map(|k| x[i * 4 + k] * w[k * 3 + j]).sum::<f32>() + b[j]).max(0.0)).collect();
        let m = h.iter().cloned().fold(f32::MIN, f32::max);
        let s: f32 = h.iter().map(|v| (v - m).exp()).sum();
        for v in h.iter_mut() {
            *v = 2.0 * (*v - m).exp() / s;
        }
        out.extend(h);
    }
    out
}

#[test]
fn built_graph_runs_in_onnx_runtime_and_matches_reference() {
    let mut rng = Lcg(7);
    let w: Vec<f32> = (0..12).map(|_| rng.uniform()).collect();
    let b: Vec<f32> = (0..3).map(|_| rng.uniform()).collect();
    let x: Vec<f32> = (0..20).map(|_| rng.uniform()).collect();
    let model = build(&Tensor::f32(vec![4, 3], w.clone()), &Tensor::f32(vec![3], b.clone()));
    check_model(&model, true).unwrap();

    // Round trip through a file first: what ONNX Runtime runs is what we saved.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.onnx");
    save_model(&model, &path).unwrap();
    let loaded = load_model(&path).unwrap();
    assert_eq!(loaded, model);

    let mut session = session_from_bytes(&std::fs::read(&path).unwrap(), &SessionOptions::default()).unwrap();
    let input = ndarray::Array2::from_shape_vec((5, 4), x.clone()).unwrap();
    let outputs = session.run(ort::inputs!["x" => TensorRef::from_array_view(&input).unwrap()]).unwrap();
    let (shape, y) = outputs["y"].try_extract_tensor::<f32>().unwrap();
    assert_eq!(&shape[..], &[5, 3]);
    let want = reference(&x, &w, &b, 5);
    for (got, want) in y.iter().zip(&want) {
        assert!((got - want).abs() < 1e-5, "got {got}, want {want}");
    }
}

#[test]
fn float64_graphs_run_too() {
    // Gradient checks run in f64: make sure the runtime takes f64 graphs.
    let mut g = GraphBuilder::new("f64");
    let x = g.input("x", DataType::Double, &dims![3]);
    let y = g.op("Tanh", &[&x], &[]);
    g.output(&y, DataType::Double, &dims![3]);
    let model = g.build();
    let bytes = memeguard_onnx::encode_model(&model);
    let mut session = session_from_bytes(&bytes, &SessionOptions::default()).unwrap();
    let input = ndarray::arr1(&[0.5f64, -1.0, 2.0]);
    let outputs = session.run(ort::inputs!["x" => TensorRef::from_array_view(&input).unwrap()]).unwrap();
    let (_, got) = outputs[y.as_str()].try_extract_tensor::<f64>().unwrap();
    for (g, x) in got.iter().zip([0.5f64, -1.0, 2.0]) {
        assert!((g - x.tanh()).abs() < 1e-12);
    }
}

#[test]
fn onnx_checker_accepts_built_graphs() {
    let model = build(&Tensor::f32(vec![4, 3], vec![0.1; 12]), &Tensor::f32(vec![3], vec![0.0; 3]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    save_model(&model, &path).unwrap();
    memeguard_onnx::pycheck::onnx_checker(&path).unwrap();

    // And the checker does reject a broken graph, so the check above means something.
    let mut broken = model.clone();
    broken.graph.as_mut().unwrap().node[0].input[0] = "nowhere".into();
    save_model(&broken, &path).unwrap();
    assert!(memeguard_onnx::pycheck::onnx_checker(&path).is_err());
}
