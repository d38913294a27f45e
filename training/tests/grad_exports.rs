//! The PyTorch exports of the tiny CLIP towers (TorchScript at opsets 17 and 20, and
//! dynamo) differentiated end to end: every parameter's gradient is computed by ONNX
//! Runtime, has its parameter's shape and is finite, and the gradient agrees with a
//! central difference of the loss along a random direction in parameter space.
//! These are the graphs that broke the autodiff in issue #13: position embeddings whose
//! leading 1 is only known at run time, an opset-17 graph with old-style reductions,
//! dynamo's GatherND pooling and declared-only shapes.

mod common;
mod ort_eval;

use std::path::PathBuf;

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{Attr, DataType, GraphBuilder, Tensor, load_model};
use memeguard_training::autodiff::differentiate;

fn export(file: &str) -> ModelProto {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exports").join(file);
    load_model(&path).expect("the fixture loads")
}

fn text_feeds() -> Vec<(&'static str, Tensor)> {
    let ids = vec![49, 7, 300, 12, 399, 0, 0, 49, 250, 3, 18, 77, 399, 5];
    let mask = vec![1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1];
    vec![("input_ids", Tensor::i64(vec![2, 7], ids)), ("attention_mask", Tensor::i64(vec![2, 7], mask))]
}

fn image_feeds() -> Vec<(&'static str, Tensor)> {
    let pixels: Vec<f32> = common::values(2 * 3 * 32 * 32, 7, 0.0, 1.0).into_iter().map(|v| v as f32).collect();
    vec![("pixel_values", Tensor::f32(vec![2, 3, 32, 32], pixels))]
}

/// Float initializers with more than one element: what import trains.
fn parameters(m: &ModelProto) -> Vec<String> {
    let g = m.graph.as_ref().unwrap();
    g.initializer
        .iter()
        .filter(|t| t.data_type == Some(DataType::Float as i32) && t.dims.iter().product::<i64>() > 1)
        .filter_map(|t| t.name.clone())
        .collect()
}

/// `m` with every parameter moved by `scale · direction`.
fn moved(m: &ModelProto, direction: &[(String, Vec<f64>)], scale: f64) -> ModelProto {
    let mut m = m.clone();
    for t in &mut m.graph.as_mut().unwrap().initializer {
        if let Some((_, d)) = direction.iter().find(|(n, _)| Some(n) == t.name.as_ref()) {
            let mut host = Tensor::from_proto(t).unwrap();
            let values: Vec<f32> = host.to_f64_vec().iter().zip(d).map(|(v, dv)| (v + scale * dv) as f32).collect();
            host = Tensor::f32(host.dims.clone(), values);
            *t = host.to_proto(t.name.as_deref().unwrap());
        }
    }
    m
}

/// Differentiates `sum(output · R)` with respect to every parameter and checks it.
/// Returns the differentiated model and how many of its nodes are the forward graph's.
fn check_export(file: &str, output: &str, feeds: &[(&str, Tensor)]) -> (ModelProto, usize) {
    let model = export(file);
    let y = ort_eval::eval(&model, feeds, &[output]).remove(0);
    let r: Vec<f32> = common::values(y.numel(), 11, 0.5, 1.5).into_iter().map(|v| v as f32).collect();
    let mut b = GraphBuilder::from_model(&model);
    let r = b.constant("loss_weights", Tensor::f32(y.dims.clone(), r));
    let weighted = b.op("Mul", &[output, &r], &[]);
    let loss = b.op("ReduceSum", &[&weighted], &[("keepdims", Attr::Int(0))]);
    b.output(&loss, DataType::Float, &[]);
    let mut loss_model = b.build();
    // Keep the export's own opset: differentiate brings it to ours.
    loss_model.opset_import = model.opset_import.clone();
    loss_model.ir_version = model.ir_version;

    let params = parameters(&loss_model);
    let d = differentiate(&loss_model, &loss, &params).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut gb = GraphBuilder::from_model(&d.model);
    for p in &params {
        gb.output_unshaped(&d.grads[p], DataType::Float);
    }
    let grad_names: Vec<&str> = params.iter().map(|p| d.grads[p].as_str()).collect();
    let grads = ort_eval::eval(&gb.build(), feeds, &grad_names);

    // Shapes, finiteness, and the directional derivative along a random direction.
    let init = |name: &str| {
        let g = loss_model.graph.as_ref().unwrap();
        Tensor::from_proto(g.initializer.iter().find(|t| t.name.as_deref() == Some(name)).unwrap()).unwrap()
    };
    let mut direction = Vec::new();
    let mut analytic = 0.0;
    for (k, (p, g)) in params.iter().zip(&grads).enumerate() {
        let w = init(p);
        assert_eq!(g.dims, w.dims, "{file}: gradient of `{p}`");
        let g = g.to_f64_vec();
        assert!(g.iter().all(|v| v.is_finite()), "{file}: gradient of `{p}` is not finite");
        let dir = common::values(g.len(), 100 + k as u64, 0.0, 1.0);
        analytic += g.iter().zip(&dir).map(|(a, b)| a * b).sum::<f64>();
        direction.push((p.clone(), dir));
    }
    let eps = 1e-3;
    let at =
        |scale: f64| ort_eval::eval(&moved(&loss_model, &direction, scale), feeds, &[&loss]).remove(0).to_f64_vec()[0];
    let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
    let rel = (analytic - numeric).abs() / numeric.abs().max(1e-3);
    assert!(
        rel < 2e-2,
        "{file}: directional derivative {analytic:.6e} (autodiff) vs {numeric:.6e} (finite difference), relative error {rel:.2e}"
    );
    eprintln!(
        "{file}: {} parameters, directional derivative {analytic:.6e} vs {numeric:.6e} (rel {rel:.1e})",
        params.len()
    );
    let forward = loss_model.graph.as_ref().unwrap().node.len();
    (d.model, forward)
}

#[test]
fn clip_text_torchscript_exports_at_opsets_17_and_20() {
    check_export("clip-text-opset17.onnx", "text_embeds", &text_feeds());
    check_export("clip-text-opset20.onnx", "text_embeds", &text_feeds());
}

/// Small graphs through the rules added for exported models, for the CUDA check below.
fn new_rule_graph() -> (ModelProto, usize) {
    use memeguard_onnx::dims;
    let mut b = GraphBuilder::new("rules");
    let x = b.input("x", DataType::Float, &dims![2, 4, 3]);
    let labels = b.input("labels", DataType::Int64, &dims![2, 3]);
    let w = b.initializer("w", &Tensor::f32(vec![4], vec![1.0, 2.0, 0.5, 1.0]));
    let e = b.initializer("e", &Tensor::f32(vec![3], vec![1.0, 2.0, 0.5]));
    let h = b.op("HardSwish", &[&x], &[]);
    let h = b.op("Softplus", &[&h], &[]);
    let h = b.op("Elu", &[&h], &[]);
    let h = b.op("Pow", &[&h, &e], &[]);
    let s = b.op("Sin", &[&h], &[]);
    let c = b.op("Cos", &[&h], &[]);
    let m = b.op("Max", &[&s, &c, &h], &[]);
    let m = b.op("Mean", &[&m, &s, &c], &[]);
    let m = b.op("CastLike", &[&m, &x], &[]);
    let t = b.op("Trilu", &[&m], &[]);
    let axis = b.const_i64s("axis", &[1]);
    let t = b.op("CumSum", &[&t, &axis], &[]);
    let idx = b.constant("idx", Tensor::i64(vec![2, 1], vec![1, 3]));
    let g = b.op("GatherND", &[&t, &idx], &[("batch_dims", Attr::Int(1))]);
    let g = b.op("ReduceSum", &[&g], &[("keepdims", Attr::Int(0))]);
    let l1 = b.op("SoftmaxCrossEntropyLoss", &[&t, &labels, &w], &[("ignore_index", Attr::Int(-1))]);
    let lp = b.op("LogSoftmax", &[&t], &[("axis", Attr::Int(1))]);
    let l2 = b.op("NegativeLogLikelihoodLoss", &[&lp, &labels, &w], &[]);
    let l = b.op("Sum", &[&l1, &l2, &g], &[]);
    b.output(&l, DataType::Float, &[]);
    let m = b.build();
    let d = differentiate(&m, &l, &["x".to_string(), "w".to_string(), "e".to_string()]).unwrap();
    (d.model, m.graph.as_ref().unwrap().node.len())
}

/// The rules of issue #13 item 2 in one graph, for the CUDA check below.
fn item2_rule_graph() -> (ModelProto, usize) {
    use memeguard_onnx::dims;
    let mut b = GraphBuilder::new("item2");
    let img = b.input("img", DataType::Float, &dims![2, 4, 3, 3]);
    let f32s = |n: usize, v: f32| vec![v; n];
    let wct = b.initializer("wct", &Tensor::f32(vec![4, 2, 2, 2], f32s(32, 0.1)));
    let (s2, b2) = (
        b.initializer("s2", &Tensor::f32(vec![2], f32s(2, 1.0))),
        b.initializer("b2", &Tensor::f32(vec![2], f32s(2, 0.0))),
    );
    let (gs, gb) = (
        b.initializer("gs", &Tensor::f32(vec![2], f32s(2, 1.0))),
        b.initializer("gb", &Tensor::f32(vec![2], f32s(2, 0.0))),
    );
    let slope = b.initializer("slope", &Tensor::f32(vec![2, 1, 1], f32s(2, 0.2)));
    let wd = b.initializer("wd", &Tensor::f32(vec![128, 3], f32s(384, 0.01)));
    let u = b.initializer("u", &Tensor::f32(vec![2, 1], f32s(2, 0.5)));
    let u2 = b.initializer("u2", &Tensor::f32(vec![1, 3], f32s(3, 0.5)));
    let y = b.op("ConvTranspose", &[&img, &wct], &[]);
    let y = b.op("InstanceNormalization", &[&y, &s2, &b2], &[]);
    let scales = b.initializer("scales", &Tensor::f32(vec![4], vec![1.0, 1.0, 2.0, 2.0]));
    let y = b.op("Resize", &[&y, "", &scales], &[("mode", Attr::Str("linear".into()))]);
    let y = b.op("GroupNormalization", &[&y, &gs, &gb], &[("num_groups", Attr::Int(2))]);
    let y = b.op("Mish", &[&y], &[]);
    let y = b.op("Selu", &[&y], &[]);
    let y = b.op("PRelu", &[&y, &slope], &[]);
    let gm = b.op("GlobalMaxPool", &[&y], &[]);
    let flat = b.const_i64s("flat", &[2, 128]);
    let f = b.op("Reshape", &[&y, &flat], &[]);
    let f = b.op("LpNormalization", &[&f], &[("axis", Attr::Int(1))]);
    let e = b.op("Einsum", &[&f, &wd], &[("equation", Attr::Str("bn,nd->bd".into()))]);
    let k = b.const_i64s("k", &[2]);
    let t = b.node("TopK", &[&e, &k], 2, &[]).remove(0);
    let idx = b.constant("idx", Tensor::i64(vec![2, 1], vec![0, 2]));
    let sc = b.op("ScatterElements", &[&e, &idx, &u], &[("axis", Attr::Int(1))]);
    let idx_nd = b.constant("idx_nd", Tensor::i64(vec![1, 1], vec![1]));
    let snd = b.op("ScatterND", &[&sc, &idx_nd, &u2], &[]);
    let r1 = b.op("ReduceProd", &[&snd], &[("keepdims", Attr::Int(0))]);
    let r2 = b.op("ReduceL1", &[&t], &[("keepdims", Attr::Int(0))]);
    let r3 = b.op("ReduceSum", &[&gm], &[("keepdims", Attr::Int(0))]);
    let l = b.op("Sum", &[&r1, &r2, &r3], &[]);
    b.output(&l, DataType::Float, &[]);
    let m = b.build();
    let wrt: Vec<String> =
        ["img", "wct", "s2", "b2", "gs", "gb", "slope", "wd", "u", "u2"].iter().map(|s| s.to_string()).collect();
    let d = differentiate(&m, &l, &wrt).unwrap();
    (d.model, m.graph.as_ref().unwrap().node.len())
}

/// Issue #12 trains these towers on CUDA: every op the gradient nodes use, for the
/// exports and for the rules added for them, has a CUDA kernel in ONNX Runtime 1.31.1.
/// (The forward graphs are the exporter's: SoftmaxCrossEntropyLoss, for one, has no
/// CUDA kernel there, and ONNX Runtime runs such a node on the CPU.)
#[test]
fn gradient_graphs_of_the_exports_use_only_ops_with_cuda_kernels() {
    use memeguard_training::optim::ops_used;
    use memeguard_training::runtime::CudaKernelTable;
    let graphs = vec![
        ("clip-text-opset17", check_export("clip-text-opset17.onnx", "text_embeds", &text_feeds())),
        ("clip-text-dynamo", check_export("clip-text-dynamo.onnx", "text_embeds", &text_feeds())),
        ("clip-vision-dynamo", check_export("clip-vision-dynamo.onnx", "image_embeds", &image_feeds())),
        ("new rules", new_rule_graph()),
        ("item 2 rules", item2_rule_graph()),
    ];
    // The gradient nodes only: what follows the forward graph's nodes.
    let gradient_ops = |(m, forward): &(ModelProto, usize)| {
        let mut g = m.clone();
        g.graph.as_mut().unwrap().node.drain(..*forward);
        ops_used(&g)
    };
    let mut all: Vec<String> = graphs.iter().flat_map(|(_, m)| gradient_ops(m)).collect();
    all.sort();
    all.dedup();
    let script =
        "import sys, onnx.defs\nfor op in sys.argv[1:]:\n    print(op, onnx.defs.get_schema(op, 20, '').since_version)";
    let args: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = memeguard_onnx::pycheck::run_python(script, &args).unwrap();
    let versions: std::collections::BTreeMap<String, i64> = out
        .lines()
        .map(|l| {
            let (op, v) = l.split_once(' ').unwrap();
            (op.to_string(), v.parse().unwrap())
        })
        .collect();
    let table = CudaKernelTable::builtin();
    let mut problems = Vec::new();
    for (name, model) in &graphs {
        let missing = table.missing(gradient_ops(model).iter().map(|op| (op.as_str(), versions[op])));
        if !missing.is_empty() {
            problems.push(format!("{name}: no CUDA kernel for {}", missing.join(", ")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn clip_text_dynamo_export() {
    check_export("clip-text-dynamo.onnx", "text_embeds", &text_feeds());
}

#[test]
fn clip_vision_exports() {
    check_export("clip-vision-opset17.onnx", "image_embeds", &image_feeds());
    check_export("clip-vision-dynamo.onnx", "image_embeds", &image_feeds());
}

/// Dynamo writes a shape for most values into `value_info`; inference must not replace
/// one with "unknown rank" (the autodiff's Gather and MatMul rules need ranks).
#[test]
fn declared_shapes_of_dynamo_exports_survive_inference() {
    for file in ["clip-text-dynamo.onnx", "clip-vision-dynamo.onnx"] {
        let m = export(file);
        let map = memeguard_onnx::shape::infer_shapes(&m);
        let g = m.graph.as_ref().unwrap();
        let declared: Vec<_> =
            g.value_info.iter().chain(&g.output).filter(|v| memeguard_onnx::builder::value_dims(v).is_some()).collect();
        let lost: Vec<&str> = declared
            .iter()
            .filter(|v| {
                let want = memeguard_onnx::builder::value_dims(v).map(|d| d.len());
                map.get(v.name.as_deref().unwrap()).and_then(|t| t.rank()) != want
            })
            .filter_map(|v| v.name.as_deref())
            .collect();
        eprintln!("{file}: {} declared shapes, {} lost", declared.len(), lost.len());
        assert!(lost.is_empty(), "{file}: {} of {} declared shapes lost: {lost:?}", lost.len(), declared.len());
        // And where both know a size, they agree.
        use memeguard_onnx::Dim;
        let conflicts: Vec<String> = declared
            .iter()
            .filter_map(|v| {
                let want = memeguard_onnx::builder::value_dims(v)?;
                let got = map.dims(v.name.as_deref()?)?;
                let clash =
                    want.iter().zip(got).any(|(w, g)| matches!((w, g), (Dim::Known(a), Dim::Known(b)) if a != b));
                clash.then(|| format!("{}: declared {want:?}, inferred {got:?}", v.name.as_deref().unwrap_or("")))
            })
            .collect();
        assert!(conflicts.is_empty(), "{file}: {conflicts:#?}");
    }
}
