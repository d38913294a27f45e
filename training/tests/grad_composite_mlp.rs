//! A small MLP classifier, differentiated end to end: Gemm → layer norm → Relu →
//! Gemm (transB) → Tanh → MatMul + bias → cross-entropy against class indices. The
//! layer norm is the `LayerNormalization` op or the same computation written from
//! elementwise ops (as older exporters emit it). The batch size is symbolic. Checked against finite differences for every parameter, and
//! its training graph checked to use default-domain ops only, to pass `onnx.checker`
//! and to run in ONNX Runtime.

mod common;
mod ort_eval;
use common::values;
use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{Attr, DataType, GraphBuilder, Tensor, check_model, dims};
use memeguard_training::autodiff::differentiate;
use memeguard_training::autodiff::gradcheck::{GradCheck, check};
use memeguard_training::losses;

const PARAMS: [(&str, &[i64]); 8] = [
    ("w1", &[5, 6]),
    ("b1", &[6]),
    ("gamma", &[6]),
    ("beta", &[6]),
    ("w2", &[4, 6]),
    ("b2", &[4]),
    ("w3", &[4, 3]),
    ("b3", &[3]),
];

/// Layer normalisation over the last axis written from elementwise ops (as older
/// exporters emit it): `(h − mean) / sqrt(var + eps) · gamma + beta`.
fn decomposed_layer_norm(b: &mut GraphBuilder, h: &str, gamma: &str, beta: &str) -> String {
    let last = b.const_i64s("ln_axis", &[-1]);
    let mean = b.op("ReduceMean", &[h, &last], &[("keepdims", Attr::Int(1))]);
    let centred = b.op("Sub", &[h, &mean], &[]);
    let sq = b.op("Mul", &[&centred, &centred], &[]);
    let var = b.op("ReduceMean", &[&sq, &last], &[("keepdims", Attr::Int(1))]);
    let eps = b.constant("ln_eps", Tensor::scalar_f64(1e-5));
    let var = b.op("Add", &[&var, &eps], &[]);
    let std = b.op("Sqrt", &[&var], &[]);
    let normed = b.op("Div", &[&centred, &std], &[]);
    let scaled = b.op("Mul", &[&normed, gamma], &[]);
    b.op("Add", &[&scaled, beta], &[])
}

/// How the MLP normalises its hidden layer.
#[derive(Clone, Copy, Debug)]
enum Norm {
    LayerNormalization,
    Decomposed,
}

/// The MLP and its loss, in float64, parameters as initializers. Returns the model and
/// the loss value's name.
fn mlp(norm: Norm) -> (ModelProto, String) {
    let mut b = GraphBuilder::new("mlp");
    let x = b.input("x", DataType::Double, &dims!["batch", 5]);
    let labels = b.input("labels", DataType::Int64, &dims!["batch"]);
    let p: Vec<String> = PARAMS
        .iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let n = shape.iter().product::<i64>() as usize;
            let v = if name.starts_with("gamma") {
                values(n, 200 + i as u64, 0.8, 1.2)
            } else {
                values(n, 200 + i as u64, 0.1, 0.9)
            };
            b.initializer(name, &Tensor::f64(shape.to_vec(), v))
        })
        .collect();
    let h = b.op("Gemm", &[&x, &p[0], &p[1]], &[]);
    let h = match norm {
        Norm::LayerNormalization => {
            b.op("LayerNormalization", &[&h, &p[2], &p[3]], &[("axis", Attr::Int(-1)), ("epsilon", Attr::Float(1e-5))])
        }
        Norm::Decomposed => decomposed_layer_norm(&mut b, &h, &p[2], &p[3]),
    };
    let h = b.op("Relu", &[&h], &[]);
    let h = b.op("Gemm", &[&h, &p[4], &p[5]], &[("transB", Attr::Int(1))]);
    let h = b.op("Tanh", &[&h], &[]);
    let logits = b.op("MatMul", &[&h, &p[6]], &[]);
    let logits = b.op("Add", &[&logits, &p[7]], &[]);
    let loss = losses::cross_entropy(&mut b, &logits, &labels).unwrap();
    b.output(&loss, DataType::Double, &[]);
    (b.build(), loss)
}

fn feeds() -> Vec<(String, Tensor)> {
    vec![
        ("x".to_string(), Tensor::f64(vec![4, 5], values(20, 250, 0.1, 2.0))),
        ("labels".to_string(), Tensor::i64(vec![4], vec![2, 0, 1, 2])),
    ]
}

fn param_names() -> Vec<&'static str> {
    PARAMS.iter().map(|(n, _)| *n).collect()
}

#[test]
fn mlp_gradients_match_finite_differences() {
    for norm in [Norm::LayerNormalization, Norm::Decomposed] {
        let (model, loss) = mlp(norm);
        let report =
            check(&GradCheck::f64(model, &loss, feeds(), &param_names())).unwrap_or_else(|e| panic!("{norm:?}: {e}"));
        let total: i64 = PARAMS.iter().map(|(_, s)| s.iter().product::<i64>()).sum();
        assert_eq!(report.checked as i64, total);
    }
}

#[test]
fn mlp_training_graph_is_standard_onnx_and_runs() {
    let (model, loss) = mlp(Norm::LayerNormalization);
    let wrt: Vec<String> = param_names().iter().map(|s| s.to_string()).collect();
    let d = differentiate(&model, &loss, &wrt).unwrap();
    let mut b = GraphBuilder::from_model(&d.model);
    for (name, shape) in PARAMS {
        let dims: Vec<memeguard_onnx::Dim> = shape.iter().map(|&v| v.into()).collect();
        b.output(&d.grads[name], DataType::Double, &dims);
    }
    let train = b.build();

    assert!(memeguard_onnx::check::foreign_ops(&train).is_empty());
    for node in &train.graph.as_ref().unwrap().node {
        assert_eq!(node.domain.as_deref().unwrap_or(""), "", "node {:?} is outside the default domain", node.name);
    }
    check_model(&train, true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp_train.onnx");
    memeguard_onnx::save_model(&train, &path).unwrap();
    memeguard_onnx::pycheck::onnx_checker(&path).unwrap();

    // It runs, at a batch size other than the one above, and every gradient is finite
    // and not all zero.
    let f = [
        ("x", Tensor::f64(vec![7, 5], values(35, 260, 0.1, 2.0))),
        ("labels", Tensor::i64(vec![7], vec![0, 1, 2, 2, 1, 0, 1])),
    ];
    let outs: Vec<&str> = PARAMS.iter().map(|(n, _)| d.grads[*n].as_str()).collect();
    for (g, (name, shape)) in ort_eval::eval(&train, &f, &outs).iter().zip(PARAMS) {
        assert_eq!(g.dims, shape.to_vec(), "gradient of {name}");
        let v = g.to_f64_vec();
        assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0), "gradient of {name}: {v:?}");
    }
}
