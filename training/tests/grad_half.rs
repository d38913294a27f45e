//! Float16 and bfloat16 graphs: the gradient seed, zeros and every constant a rule
//! writes take the graph's float type, so a half-precision MLP differentiates into a
//! graph that passes ONNX's strict type inference, and the float16
//! one runs in ONNX Runtime's CPU and agrees with the float32 gradients within
//! half-precision tolerance (its CPU has no bfloat16 kernels for these ops). A float16
//! graph through the newer rules (ConvTranspose … Resize … Einsum, ReduceProd) passes
//! the same type inference.
//!
//! Parameters are fed as float32 and cast to the half type inside the graph (the
//! crate's tensor type holds no half data), so the gradients flow back through Cast
//! and come out in float32.

mod ort_eval;

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{Attr, DataType, GraphBuilder, Tensor, dims};
use memeguard_training::autodiff::differentiate;

const PARAMS: [&str; 5] = ["w1", "b1", "scale", "w2", "b2"];

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(7);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
        })
        .collect()
}

fn feeds() -> Vec<(&'static str, Tensor)> {
    vec![
        ("x", Tensor::f32(vec![4, 3], seeded(12, 1))),
        ("w1", Tensor::f32(vec![3, 6], seeded(18, 2))),
        ("b1", Tensor::f32(vec![6], seeded(6, 3))),
        ("scale", Tensor::f32(vec![6], seeded(6, 4).iter().map(|v| 1.0 + v).collect())),
        ("w2", Tensor::f32(vec![6, 3], seeded(18, 5))),
        ("b2", Tensor::f32(vec![3], seeded(3, 6))),
    ]
}

/// x → MatMul + bias → LayerNormalization → Relu → MatMul + bias → Tanh → Softmax →
/// mean square distance to a fixed target, computed in `dtype`; the loss is `dtype`.
/// One extra parameter (`unused`) does not reach the loss: its gradient is zeros.
fn mlp(dtype: DataType) -> (ModelProto, String) {
    let mut b = GraphBuilder::new("half_mlp");
    let mut names = Vec::new();
    for (name, t) in feeds() {
        let dims: Vec<memeguard_onnx::Dim> = t.dims.iter().map(|&d| d.into()).collect();
        let v = b.input(name, DataType::Float, &dims);
        names.push(if dtype == DataType::Float { v } else { b.op("Cast", &[&v], &[("to", Attr::Int(dtype as i64))]) });
    }
    let unused = b.input("unused", DataType::Float, &dims![2]);
    let _ = b.op("Cast", &[&unused], &[("to", Attr::Int(dtype as i64))]);
    let [x, w1, b1, scale, w2, b2] = [0, 1, 2, 3, 4, 5].map(|i| names[i].clone());
    let h = b.op("MatMul", &[&x, &w1], &[]);
    let h = b.op("Add", &[&h, &b1], &[]);
    let h = b.op("LayerNormalization", &[&h, &scale], &[("axis", Attr::Int(-1))]);
    let h = b.op("Relu", &[&h], &[]);
    let h = b.op("MatMul", &[&h, &w2], &[]);
    let h = b.op("Add", &[&h, &b2], &[]);
    let h = b.op("Tanh", &[&h], &[]);
    let p = b.op("Softmax", &[&h], &[("axis", Attr::Int(-1))]);
    let target = b.initializer("target", &Tensor::f32(vec![3], vec![0.2, 0.5, 0.3]));
    let target =
        if dtype == DataType::Float { target } else { b.op("Cast", &[&target], &[("to", Attr::Int(dtype as i64))]) };
    let d = b.op("Sub", &[&p, &target], &[]);
    let sq = b.op("Mul", &[&d, &d], &[]);
    let loss = b.op("ReduceMean", &[&sq], &[("keepdims", Attr::Int(0))]);
    b.output(&loss, dtype, &[]);
    (b.build(), loss)
}

/// The training graph of `mlp(dtype)` with every parameter's gradient (float32) as an output.
fn training_graph(dtype: DataType) -> (ModelProto, Vec<String>) {
    let (model, loss) = mlp(dtype);
    let mut wrt: Vec<String> = PARAMS.iter().map(|s| s.to_string()).collect();
    wrt.push("unused".into());
    let d = differentiate(&model, &loss, &wrt).unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
    let mut b = GraphBuilder::from_model(&d.model);
    let grads: Vec<String> = wrt.iter().map(|w| d.grads[w].clone()).collect();
    for g in &grads {
        b.output_unshaped(g, DataType::Float);
    }
    (b.build(), grads)
}

fn all_feeds() -> Vec<(&'static str, Tensor)> {
    let mut f = feeds();
    f.push(("unused", Tensor::f32(vec![2], vec![1.0, 2.0])));
    f
}

/// ONNX's strict type inference over `model`: a float32 constant meeting a half value
/// fails it.
fn strict_type_check(model: &ModelProto, dtype: DataType) {
    let script = "import sys, onnx\n\
                  m = onnx.load(sys.argv[1])\n\
                  onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)\n\
                  print('ok')";
    // A file of its own: tests of this binary run in parallel in one process.
    let file = tempfile::Builder::new().prefix("memeguard_half_").suffix(".onnx").tempfile().expect("temp file");
    std::fs::write(file.path(), memeguard_onnx::encode_model(model)).expect("writable temp dir");
    let checked = memeguard_onnx::pycheck::run_python(script, &[&file.path().display().to_string()]);
    checked.unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
}

/// Every value the gradient nodes read has the type the node expects: no float32
/// constant meets a half value.
#[test]
fn half_training_graphs_type_check() {
    for dtype in [DataType::Float16, DataType::Bfloat16] {
        strict_type_check(&training_graph(dtype).0, dtype);
    }
}

/// The newer rules in one half-precision graph: every constant they write (slopes,
/// zeros, the Resize probes' identity) takes the graph's type.
fn new_rules_graph(dtype: DataType) -> ModelProto {
    let mut b = GraphBuilder::new("half_rules");
    let cast = |b: &mut GraphBuilder, v: &str| b.op("Cast", &[v], &[("to", Attr::Int(dtype as i64))]);
    let x = b.input("x", DataType::Float, &dims![1, 2, 3, 3]);
    let w = b.input("w", DataType::Float, &dims![2, 2, 2, 2]);
    let slope = b.input("slope", DataType::Float, &dims![2, 1, 1]);
    let (xh, wh, sh) = (cast(&mut b, &x), cast(&mut b, &w), cast(&mut b, &slope));
    let ones = b.initializer("ones", &Tensor::f32(vec![2], vec![1.0, 1.0]));
    let ones = cast(&mut b, &ones);
    let y = b.op("ConvTranspose", &[&xh, &wh], &[]);
    let y = b.op("InstanceNormalization", &[&y, &ones, &ones], &[]);
    let scales = b.initializer("scales", &Tensor::f32(vec![4], vec![1.0, 1.0, 2.0, 2.0]));
    let y = b.op("Resize", &[&y, "", &scales], &[("mode", Attr::Str("linear".into()))]);
    let y = b.op("GroupNormalization", &[&y, &ones, &ones], &[("num_groups", Attr::Int(2))]);
    let y = b.op("Mish", &[&y], &[]);
    let y = b.op("Selu", &[&y], &[]);
    let y = b.op("PRelu", &[&y, &sh], &[]);
    let m = b.op("GlobalMaxPool", &[&y], &[]);
    let y = b.op("LpNormalization", &[&y], &[("p", Attr::Int(1))]);
    let flat = b.const_i64s("flat", &[1, 2]);
    let m = b.op("Reshape", &[&m, &flat], &[]);
    let e = b.op("Einsum", &[&y, &m], &[("equation", Attr::Str("bchw,bc->bhw".into()))]);
    let p = b.op("ReduceProd", &[&e], &[("keepdims", Attr::Int(0))]);
    let l1 = b.op("ReduceL1", &[&y], &[("keepdims", Attr::Int(0))]);
    let loss = b.op("Add", &[&p, &l1], &[]);
    b.output(&loss, dtype, &[]);
    let model = b.build();
    let wrt = ["x", "w", "slope"].map(String::from);
    differentiate(&model, &loss, &wrt).unwrap_or_else(|e| panic!("{dtype:?}: {e}")).model
}

/// Float16 only: at opset 20 most of these ops (ConvTranspose, InstanceNormalization,
/// Mish, Selu, LpNormalization, the pools) take no bfloat16 in their schemas.
#[test]
fn float16_graph_of_the_newer_rules_type_checks() {
    strict_type_check(&new_rules_graph(DataType::Float16), DataType::Float16);
}

/// Worst absolute difference between two gradient sets, against the largest magnitude.
fn compare(name: &str, half: &[Tensor], full: &[Tensor], rel: f64) {
    for ((w, h), f) in PARAMS.iter().chain(["unused"].iter()).zip(half).zip(full) {
        let (h, f) = (h.to_f64_vec(), f.to_f64_vec());
        let scale = f.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
        let worst = h.iter().zip(&f).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        eprintln!("{name} d/d {w}: max |half − f32| = {worst:.3e} (largest |grad| {scale:.3e})");
        assert!(worst <= rel * scale, "{name} d/d {w}: {worst:.3e} > {rel} × {scale:.3e}\nhalf {h:?}\nf32  {f:?}");
    }
}

#[test]
fn half_gradients_match_float32() {
    let (full_model, full_grads) = training_graph(DataType::Float);
    let refs: Vec<&str> = full_grads.iter().map(String::as_str).collect();
    let full = ort_eval::eval(&full_model, &all_feeds(), &refs);
    // Float16 keeps 11 significant bits. (ONNX Runtime's CPU has no bfloat16 Relu,
    // MatMul or LayerNormalization kernels: bfloat16 is type-checked above only.)
    let (model, grads) = training_graph(DataType::Float16);
    let refs: Vec<&str> = grads.iter().map(String::as_str).collect();
    let half = ort_eval::eval(&model, &all_feeds(), &refs);
    compare("Float16", &half, &full, 2e-2);
}
