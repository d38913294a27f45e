//! A small pre-norm self-attention block checked end to end: LayerNormalization → Q, K,
//! V projections → Reshape/Transpose to heads → scaled MatMul → Softmax → MatMul →
//! heads merged → output projection → residual. Float64 finite differences for every
//! parameter and the input; the training graph uses standard ops only, passes both
//! checkers and runs in ONNX Runtime with a symbolic batch size.

mod common;
mod ort_eval;
use common::values;
use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{Attr, DataType, Dim, GraphBuilder, Tensor, check_model, dims};
use memeguard_training::autodiff::differentiate;
use memeguard_training::autodiff::gradcheck::{GradCheck, check};

const TOKENS: i64 = 3;
const WIDTH: i64 = 4;
const HEADS: i64 = 2;

const PARAMS: [(&str, &[i64]); 10] = [
    ("ln_scale", &[WIDTH]),
    ("ln_bias", &[WIDTH]),
    ("wq", &[WIDTH, WIDTH]),
    ("bq", &[WIDTH]),
    ("wk", &[WIDTH, WIDTH]),
    ("bk", &[WIDTH]),
    ("wv", &[WIDTH, WIDTH]),
    ("bv", &[WIDTH]),
    ("wo", &[WIDTH, WIDTH]),
    ("bo", &[WIDTH]),
];

/// `x·w + b`, then `[N, T, D]` → `[N, heads, T, D/heads]` (or `[N, heads, D/heads, T]`
/// with `keys_transposed`, ready for `Q·Kᵀ`).
fn heads(b: &mut GraphBuilder, x: &str, w: &str, bias: &str, keys_transposed: bool) -> String {
    let h = b.op("MatMul", &[x, w], &[]);
    let h = b.op("Add", &[&h, bias], &[]);
    let split = b.const_i64s("split_heads", &[0, 0, HEADS, WIDTH / HEADS]);
    let h = b.op("Reshape", &[&h, &split], &[]);
    let perm = if keys_transposed { vec![0, 2, 3, 1] } else { vec![0, 2, 1, 3] };
    b.op("Transpose", &[&h], &[("perm", Attr::Ints(perm))])
}

/// The block in float64 with parameters as initializers; returns it unfinished and its
/// output `[N, T, D]`.
fn attention_block() -> (GraphBuilder, String) {
    let mut b = GraphBuilder::new("attention_block");
    let x = b.input("x", DataType::Double, &dims!["n", TOKENS, WIDTH]);
    for (i, (name, shape)) in PARAMS.iter().enumerate() {
        let n = shape.iter().product::<i64>() as usize;
        let v =
            if *name == "ln_scale" { values(n, 300 + i as u64, 0.8, 1.2) } else { values(n, 300 + i as u64, 0.1, 0.9) };
        b.initializer(name, &Tensor::f64(shape.to_vec(), v));
    }
    let normed = b.op("LayerNormalization", &[&x, "ln_scale", "ln_bias"], &[("axis", Attr::Int(-1))]);
    let q = heads(&mut b, &normed, "wq", "bq", false);
    let kt = heads(&mut b, &normed, "wk", "bk", true);
    let v = heads(&mut b, &normed, "wv", "bv", false);
    let scores = b.op("MatMul", &[&q, &kt], &[]);
    let scale = b.constant("attention_scale", Tensor::scalar_f64(1.0 / ((WIDTH / HEADS) as f64).sqrt()));
    let scores = b.op("Mul", &[&scores, &scale], &[]);
    let weights = b.op("Softmax", &[&scores], &[("axis", Attr::Int(-1))]);
    let context = b.op("MatMul", &[&weights, &v], &[]);
    let context = b.op("Transpose", &[&context], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
    let merge = b.const_i64s("merge_heads", &[0, 0, WIDTH]);
    let context = b.op("Reshape", &[&context, &merge], &[]);
    let out = b.op("MatMul", &[&context, "wo"], &[]);
    let out = b.op("Add", &[&out, "bo"], &[]);
    let y = b.op("Add", &[&x, &out], &[]);
    (b, y)
}

fn input(batch: i64, seed: u64) -> Tensor {
    let n = (batch * TOKENS * WIDTH) as usize;
    Tensor::f64(vec![batch, TOKENS, WIDTH], values(n, seed, 0.1, 2.0))
}

#[test]
fn attention_block_gradients_match_finite_differences() {
    let (mut b, y) = attention_block();
    b.output(&y, DataType::Double, &dims!["n", TOKENS, WIDTH]);
    let mut wrt: Vec<&str> = PARAMS.iter().map(|p| p.0).collect();
    wrt.push("x");
    let report = check(&GradCheck::f64(b.build(), &y, vec![("x".into(), input(2, 350))], &wrt))
        .unwrap_or_else(|e| panic!("{e}"));
    let total: i64 = PARAMS.iter().map(|(_, s)| s.iter().product::<i64>()).sum::<i64>() + 2 * TOKENS * WIDTH;
    assert_eq!(report.checked as i64, total);
}

/// Loss `mean(y²)`, each parameter's gradient as a shaped output.
fn training_graph() -> ModelProto {
    let (mut b, y) = attention_block();
    let sq = b.op("Mul", &[&y, &y], &[]);
    let loss = b.op("ReduceMean", &[&sq], &[("keepdims", Attr::Int(0))]);
    b.output(&loss, DataType::Double, &[]);
    let wrt: Vec<String> = PARAMS.iter().map(|p| p.0.to_string()).collect();
    let d = differentiate(&b.build(), &loss, &wrt).expect("differentiates");
    let mut gb = GraphBuilder::from_model(&d.model);
    for (name, shape) in PARAMS {
        let dims: Vec<Dim> = shape.iter().map(|&v| Dim::Known(v)).collect();
        gb.named_output(&d.grads[name], &format!("grad_{name}"), DataType::Double, &dims);
    }
    gb.build()
}

#[test]
fn attention_training_graph_is_standard_and_runs() {
    let model = training_graph();
    assert_eq!(memeguard_onnx::check::foreign_ops(&model), Vec::<String>::new());
    check_model(&model, true).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("attention_train.onnx");
    memeguard_onnx::save_model(&model, &path).expect("saves");
    memeguard_onnx::pycheck::onnx_checker(&path).unwrap_or_else(|e| panic!("onnx.checker: {e}"));

    let outputs: Vec<String> = PARAMS.iter().map(|(n, _)| format!("grad_{n}")).collect();
    let outputs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    for batch in [2, 5] {
        let grads = ort_eval::eval(&model, &[("x", input(batch, 360 + batch as u64))], &outputs);
        for (g, (name, shape)) in grads.iter().zip(PARAMS) {
            assert_eq!(g.dims, shape.to_vec(), "gradient of {name}");
            let v = g.to_f64_vec();
            assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0), "gradient of {name}: {v:?}");
        }
    }
}
