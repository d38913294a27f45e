//! Finite-difference checks of the shape, indexing and windowing rules (Reshape,
//! Flatten, Transpose, Squeeze, Unsqueeze, Concat, Split, Slice, Gather,
//! GatherElements, Expand, Tile, Pad) and of Dropout.

mod common;
mod ort_eval;
use common::*;
use memeguard_onnx::{Attr, DataType, GraphBuilder, Tensor, dims};
use memeguard_training::autodiff::differentiate;
use memeguard_training::autodiff::gradcheck::{GradCheck, check};

fn n(dims: &[i64]) -> usize {
    dims.iter().product::<i64>() as usize
}

/// The rules here need no float-only kernels: every check must run in float64.
fn check64(ins: &[In], body: &dyn Fn(&mut GraphBuilder, &[String]) -> String) {
    assert_eq!(check_grad(ins, body), Precision::F64);
}

/// Input `a` of the given dims, differentiated.
fn a(dims: &[i64], seed: u64) -> In {
    x("a", dims, values(n(dims), seed, 0.1, 2.0))
}

#[test]
fn reshape_flatten_squeeze_unsqueeze() {
    check64(&[a(&[2, 3, 4], 1)], &|b, v| {
        let s = b.const_i64s("shape", &[0, -1, 2]);
        b.op("Reshape", &[&v[0], &s], &[])
    });
    for axis in [0, 1, 2, -1] {
        check64(&[a(&[2, 3, 4], 2)], &one("Flatten", vec![("axis", Attr::Int(axis))]));
    }
    check64(&[a(&[2, 1, 3, 1], 3)], &|b, v| {
        let ax = b.const_i64s("axes", &[1, -1]);
        b.op("Squeeze", &[&v[0], &ax], &[])
    });
    check64(&[a(&[2, 1, 3, 1], 4)], &one("Squeeze", vec![]));
    check64(&[a(&[2, 3], 5)], &|b, v| {
        let ax = b.const_i64s("axes", &[0, 3]);
        b.op("Unsqueeze", &[&v[0], &ax], &[])
    });
}

#[test]
fn reshape_with_a_shape_computed_at_run_time() {
    // The target shape comes from another tensor: no static shape for the output.
    let ins = [a(&[2, 6], 6), fixed("like", &[3, 4], vec![0.0; 12])];
    check64(&ins, &|b, v| {
        let s = b.op("Shape", &[&v[1]], &[]);
        b.op("Reshape", &[&v[0], &s], &[])
    });
}

#[test]
fn transpose_with_and_without_perm() {
    check64(&[a(&[2, 3, 4], 7)], &one("Transpose", vec![("perm", Attr::Ints(vec![1, 2, 0]))]));
    check64(&[a(&[2, 3, 4], 8)], &one("Transpose", vec![]));
}

#[test]
fn concat_n_inputs_on_each_axis() {
    for axis in [0i64, 1, -1] {
        let d = |k: i64| -> Vec<i64> {
            let mut d = vec![2, 3, 2];
            d[axis.rem_euclid(3) as usize] = k;
            d
        };
        let ins = [
            x("a", &d(1), values(n(&d(1)), 10, 0.1, 2.0)),
            x("b", &d(2), values(n(&d(2)), 11, 0.1, 2.0)),
            fixed("c", &d(3), values(n(&d(3)), 12, 0.1, 2.0)),
            x("e", &d(1), values(n(&d(1)), 13, 0.1, 2.0)),
        ];
        check64(&ins, &one("Concat", vec![("axis", Attr::Int(axis))]));
    }
    // The same value twice: both halves of GO add up.
    check64(&[a(&[2, 3], 14)], &|b, v| b.op("Concat", &[&v[0], &v[0]], &[("axis", Attr::Int(1))]));
}

/// A scalar from the chosen outputs of a node (others left unused): the sum of their
/// squares, so every element gets its own gradient.
fn combine(b: &mut GraphBuilder, outs: &[String], used: &[usize]) -> String {
    let parts: Vec<String> =
        used.iter().map(|&i| b.op("ReduceSumSquare", &[&outs[i]], &[("keepdims", Attr::Int(0))])).collect();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    b.op("Sum", &refs, &[])
}

#[test]
fn split_equal_and_given_sizes_with_unused_outputs() {
    // Equal parts (num_outputs), all used and one unused.
    for used in [vec![0, 1, 2], vec![0, 2]] {
        check64(&[a(&[2, 6], 20)], &move |b, v| {
            let outs = b.node("Split", &[&v[0]], 3, &[("axis", Attr::Int(1)), ("num_outputs", Attr::Int(3))]);
            combine(b, &outs, &used)
        });
    }
    // Given sizes on a negative axis; the middle part unused.
    check64(&[a(&[5, 2], 21)], &|b, v| {
        let sizes = b.const_i64s("split", &[1, 3, 1]);
        let outs = b.node("Split", &[&v[0], &sizes], 3, &[("axis", Attr::Int(-2))]);
        combine(b, &outs, &[0, 2])
    });
}

/// Slice(a, starts, ends, axes, steps) with constant index inputs (`None` omits one).
fn slice_of(
    starts: &[i64],
    ends: &[i64],
    axes: Option<Vec<i64>>,
    steps: Option<Vec<i64>>,
) -> impl Fn(&mut GraphBuilder, &[String]) -> String {
    let (starts, ends) = (starts.to_vec(), ends.to_vec());
    move |b, v| {
        let s = b.const_i64s("starts", &starts);
        let e = b.const_i64s("ends", &ends);
        let mut args = vec![v[0].clone(), s, e];
        if axes.is_some() || steps.is_some() {
            args.push(axes.as_ref().map(|a| b.const_i64s("axes", a)).unwrap_or_default());
        }
        if let Some(st) = &steps {
            args.push(b.const_i64s("steps", st));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        b.op("Slice", &refs, &[])
    }
}

#[test]
fn slice_unit_steps_by_pad() {
    let d = [3, 5, 4];
    // Axes omitted, negative starts/ends, ends past the end (i64::MAX), an empty slice.
    check64(&[a(&d, 30)], &slice_of(&[1, -4], &[3, -1], None, None));
    check64(&[a(&d, 31)], &slice_of(&[-2, 1], &[i64::MAX, 100], Some(vec![-1, 0]), None));
    check64(&[a(&d, 32)], &slice_of(&[0, 2], &[5, 2], Some(vec![1, 2]), Some(vec![1, 1])));
}

#[test]
fn slice_strided_and_reversed() {
    let d = [3, 7, 2];
    check64(&[a(&d, 33)], &slice_of(&[1], &[7], Some(vec![1]), Some(vec![2])));
    check64(&[a(&d, 34)], &slice_of(&[-1, 2], &[i64::MIN, 0], Some(vec![1, 0]), Some(vec![-1, -2])));
    check64(&[a(&d, 35)], &slice_of(&[5, 0], &[0, 3], Some(vec![1, 0]), Some(vec![-3, 1])));
}

#[test]
fn slice_with_starts_fed_at_run_time() {
    let ins = [a(&[4, 5], 36), int("starts", &[2], vec![1, -3]), int("ends", &[2], vec![3, 5])];
    check64(&ins, &one("Slice", vec![]));
    let ins = [
        a(&[4, 5], 37),
        int("starts", &[1], vec![3]),
        int("ends", &[1], vec![0]),
        int("axes", &[1], vec![1]),
        int("steps", &[1], vec![-1]),
    ];
    check64(&ins, &one("Slice", vec![]));
}

#[test]
fn gather_repeated_and_negative_indices_accumulate() {
    // Axis 0 (embedding lookup) with 2-D indices, repeats and a negative index.
    let ins = [a(&[4, 3], 40), int("i", &[2, 3], vec![0, 2, 2, -1, 0, 2])];
    check64(&ins, &one("Gather", vec![("axis", Attr::Int(0))]));
    // Middle and last axis, scalar and 1-D indices.
    let ins = [a(&[2, 4, 3], 41), int("i", &[3], vec![3, 1, 3])];
    check64(&ins, &one("Gather", vec![("axis", Attr::Int(1))]));
    let ins = [a(&[2, 4, 3], 42), int("i", &[], vec![1])];
    check64(&ins, &one("Gather", vec![("axis", Attr::Int(-1))]));
}

#[test]
fn gather_elements_accumulates() {
    let ins = [a(&[3, 4], 43), int("i", &[3, 2], vec![0, 0, 3, 1, 2, 2])];
    check64(&ins, &one("GatherElements", vec![("axis", Attr::Int(1))]));
}

#[test]
fn expand_and_tile() {
    check64(&[a(&[3, 1], 50)], &|b, v| {
        let s = b.const_i64s("shape", &[2, 3, 4]);
        b.op("Expand", &[&v[0], &s], &[])
    });
    for reps in [vec![2, 3], vec![1, 2], vec![3, 1]] {
        check64(&[a(&[2, 3], 51)], &move |b, v| {
            let r = b.const_i64s("repeats", &reps);
            b.op("Tile", &[&v[0], &r], &[])
        });
    }
}

#[test]
fn pad_constant_including_negative_pads_and_axes() {
    let d = [2, 3, 4];
    for (pads, axes) in
        [(vec![1, 0, 2, 0, 1, 1], None), (vec![0, -1, 1, 1, 2, -2], None), (vec![2, -1, 1, 3], Some(vec![-1, 1]))]
    {
        check64(&[a(&d, 60), x("cv", &[], vec![0.7])], &move |b, v| {
            let p = b.const_i64s("pads", &pads);
            let mut args = vec![v[0].clone(), p, v[1].clone()];
            if let Some(ax) = &axes {
                args.push(b.const_i64s("axes", ax));
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            b.op("Pad", &refs, &[])
        });
    }
}

#[test]
fn pad_reflect_edge_wrap() {
    for mode in ["reflect", "edge", "wrap"] {
        check64(&[a(&[2, 3, 4], 61)], &move |b, v| {
            let p = b.const_i64s("pads", &[0, 2, 1, 0, 1, 3]);
            b.op("Pad", &[&v[0], &p], &[("mode", Attr::Str(mode.into()))])
        });
    }
}

#[test]
fn dropout_in_inference_is_the_identity() {
    check64(&[a(&[2, 3], 70)], &|b, v| {
        let r = b.constant("ratio", Tensor::scalar_f32(0.3));
        let t = b.constant("training", Tensor::bool(vec![], vec![false]));
        b.op("Dropout", &[&v[0], &r, &t], &[])
    });
    check64(&[a(&[2, 3], 71)], &one("Dropout", vec![]));
}

#[test]
fn chain_with_a_symbolic_batch_size() {
    // Every rule here must work from run-time shapes: the batch size is only a name.
    let mut b = GraphBuilder::new("dynamic");
    let x = b.input("x", DataType::Double, &dims!["batch", 6]);
    let s = b.const_i64s("shape", &[0, 2, 3]);
    let r = b.op("Reshape", &[&x, &s], &[]); // [batch, 2, 3]
    let t = b.op("Transpose", &[&r], &[("perm", Attr::Ints(vec![0, 2, 1]))]); // [batch, 3, 2]
    let c = b.op("Concat", &[&t, &t], &[("axis", Attr::Int(1))]); // [batch, 6, 2]
    let parts = b.node("Split", &[&c], 2, &[("axis", Attr::Int(-1)), ("num_outputs", Attr::Int(2))]);
    let (st, en, ax) = (b.const_i64s("starts", &[1]), b.const_i64s("ends", &[-1]), b.const_i64s("axes", &[1]));
    let sl = b.op("Slice", &[&parts[0], &st, &en, &ax], &[]); // [batch, 4, 1]
    let idx = b.const_i64s("idx", &[3, 0, 3]);
    let g = b.op("Gather", &[&sl, &idx], &[("axis", Attr::Int(1))]); // [batch, 3, 1]
    let reps = b.const_i64s("reps", &[1, 1, 2]);
    let tl = b.op("Tile", &[&g, &reps], &[]); // [batch, 3, 2]
    let pads = b.const_i64s("pads", &[0, 1, 0, 0, 0, 1]);
    let p = b.op("Pad", &[&tl, &pads], &[("mode", Attr::Str("reflect".into()))]); // [batch, 4, 3]
    let shape = b.const_i64s("expand", &[2, 1, 1, 1]);
    let e = b.op("Expand", &[&p, &shape], &[]); // [2, batch, 4, 3]
    let y = b.op("Flatten", &[&e], &[("axis", Attr::Int(2))]); // [2*batch, 12]
    let model = b.build();
    let feeds = vec![("x".to_string(), Tensor::f64(vec![3, 6], values(18, 80, 0.1, 2.0)))];
    let report = check(&GradCheck::f64(model, &y, feeds, &["x"])).unwrap();
    assert_eq!(report.checked, 18);
}

/// `Dropout(x, 0.25, training)` with its mask exposed; `loss = sum(y · w)`, w fixed.
fn dropout_graph(training: Option<bool>, expose_mask: bool) -> (memeguard_onnx::proto::ModelProto, Vec<f64>) {
    let w = values(64, 91, 0.5, 1.5);
    let mut b = GraphBuilder::new("dropout");
    let x = b.input("x", DataType::Double, &dims![8, 8]);
    let r = b.constant("ratio", Tensor::scalar_f64(0.25));
    let t = match training {
        Some(v) => b.constant("training", Tensor::bool(vec![], vec![v])),
        None => b.input("training", DataType::Bool, &[]),
    };
    let outs = b.node("Dropout", &[&x, &r, &t], if expose_mask { 2 } else { 1 }, &[("seed", Attr::Int(5))]);
    let wt = b.constant("w", Tensor::f64(vec![8, 8], w.clone()));
    let m = b.op("Mul", &[&outs[0], &wt], &[]);
    b.node_with_outputs("ReduceSum", &[&m], &["loss"], &[("keepdims", Attr::Int(0))]);
    b.output("loss", DataType::Double, &[]);
    b.output(&outs[0], DataType::Double, &dims![8, 8]);
    if expose_mask {
        b.output(&outs[1], DataType::Bool, &dims![8, 8]);
    }
    (b.build(), w)
}

/// One run of the differentiated dropout graph.
struct DropoutRun {
    x: Vec<f64>,
    y: Vec<f64>,
    mask: Vec<bool>,
    x_grad: Vec<f64>,
    /// The fixed weights of the loss: dloss/dy.
    w: Vec<f64>,
}

/// Runs the differentiated dropout graph once.
fn run_dropout(training: Option<bool>, feed_training: bool) -> DropoutRun {
    let (model, w) = dropout_graph(training, true);
    let d = differentiate(&model, "loss", &["x".to_string()]).unwrap();
    let mut b = GraphBuilder::from_model(&d.model);
    let grad = d.grads["x"].clone();
    b.output(&grad, DataType::Double, &dims![8, 8]);
    let model = b.build();
    let names: Vec<String> = model.graph.as_ref().unwrap().output.iter().map(|o| o.name.clone().unwrap()).collect();
    let xs = values(64, 90, 0.1, 2.0);
    let mut feeds = vec![("x", Tensor::f64(vec![8, 8], xs.clone()))];
    if training.is_none() {
        feeds.push(("training", Tensor::bool(vec![], vec![feed_training])));
    }
    let out = ort_eval::eval(&model, &feeds, &[&names[1], &names[2], &grad]);
    let mask = match &out[1].data {
        memeguard_onnx::TensorData::Bool(m) => m.clone(),
        other => panic!("mask is not boolean: {other:?}"),
    };
    DropoutRun { x: xs, y: out[0].to_f64_vec(), mask, x_grad: out[2].to_f64_vec(), w }
}

#[test]
fn dropout_in_training_reuses_the_forward_mask() {
    // A random mask cannot be finite-differenced across runs; instead the gradient is
    // checked in the same run against the mask the forward pass drew:
    // y = x·mask/(1−p) and dx = w·mask/(1−p).
    for (training, feed) in [(Some(true), true), (None, true)] {
        let DropoutRun { x: xs, y, mask, x_grad: grad, w } = run_dropout(training, feed);
        let dropped = mask.iter().filter(|&&m| !m).count();
        assert!((4..40).contains(&dropped), "{dropped} of 64 dropped at ratio 0.25");
        for i in 0..64 {
            let keep = if mask[i] { 1.0 / 0.75 } else { 0.0 };
            assert!((y[i] - xs[i] * keep).abs() < 1e-12, "forward y[{i}]");
            assert!((grad[i] - w[i] * keep).abs() < 1e-12, "dx[{i}] = {} but w·mask/(1−p) = {}", grad[i], w[i] * keep);
        }
    }
    // training_mode fed as false at run time: identity, no rescaling.
    let DropoutRun { mask, x_grad: grad, w, .. } = run_dropout(None, false);
    assert!(mask.iter().all(|&m| m));
    assert_eq!(grad, w);
}

#[test]
fn dropout_in_training_without_its_mask_output_is_a_clear_error() {
    let (model, _) = dropout_graph(Some(true), false);
    let err = differentiate(&model, "loss", &["x".to_string()]).unwrap_err().to_string();
    assert!(err.contains("Dropout") && err.contains("mask"), "{err}");
}

/// `Reshape(x, target)` with `target` fed at run time and of unknown length: static
/// inference loses even the rank of the result.
fn reshaped_to_a_run_time_shape(b: &mut GraphBuilder) -> String {
    let x = b.input("x", DataType::Double, &dims![2, 3, 4]);
    let target = b.input("target", DataType::Int64, &dims!["n"]);
    b.op("Reshape", &[&x, &target], &[])
}

fn run_time_shape_feeds() -> Vec<(String, Tensor)> {
    vec![
        ("x".to_string(), Tensor::f64(vec![2, 3, 4], values(24, 90, 0.1, 2.0))),
        ("target".to_string(), Tensor::i64(vec![3], vec![2, 3, 4])),
    ]
}

#[test]
fn gather_from_data_of_unknown_rank() {
    for axis in [0, 1, 2, -1, -2] {
        let mut b = GraphBuilder::new("g");
        let r = reshaped_to_a_run_time_shape(&mut b);
        let idx = b.const_i64s("idx", &[1, 0, 1]);
        let y = b.op("Gather", &[&r, &idx], &[("axis", Attr::Int(axis))]);
        let model = b.build();
        assert_eq!(memeguard_onnx::shape::infer_shapes(&model).get(&r).unwrap().rank(), None);
        check(&GradCheck::f64(model, &y, run_time_shape_feeds(), &["x"]))
            .unwrap_or_else(|e| panic!("axis {axis}: {e}"));
    }
}

#[test]
fn a_declared_shape_gives_matmul_the_rank_inference_cannot() {
    let build = |declare: bool| {
        let mut b = GraphBuilder::new("g");
        let r = reshaped_to_a_run_time_shape(&mut b);
        let w = b.input("w", DataType::Double, &dims![4, 2]);
        let y = b.node_named("proj", "MatMul", &[&r, &w], 1, &[]).remove(0);
        let mut model = b.build();
        if declare {
            // What exporters write into value_info.
            let vi = memeguard_onnx::builder::value_info(&r, DataType::Double, &dims!["batch", "len", 4]);
            model.graph.as_mut().unwrap().value_info.push(vi);
        }
        (model, y)
    };
    let (model, y) = build(true);
    let mut feeds = run_time_shape_feeds();
    feeds.push(("w".to_string(), Tensor::f64(vec![4, 2], values(8, 91, 0.1, 2.0))));
    check(&GradCheck::f64(model, &y, feeds, &["x", "w"])).unwrap();
    // Without the declaration: a clear error that names the node.
    let (model, y) = build(false);
    let mut b = GraphBuilder::from_model(&model);
    let l = b.op("ReduceSum", &[&y], &[("keepdims", Attr::Int(0))]);
    let err = differentiate(&b.build(), &l, &["w".to_string()]).unwrap_err().to_string();
    assert!(err.contains("MatMul") && err.contains("`proj`") && err.contains("rank"), "{err}");
}

#[test]
fn reductions_of_data_of_unknown_rank() {
    for (op, axes, keep) in [("ReduceSum", vec![-1], 0), ("ReduceMean", vec![0, -1], 0), ("ReduceMax", vec![1], 1)] {
        let mut b = GraphBuilder::new("g");
        let r = reshaped_to_a_run_time_shape(&mut b);
        let ax = b.const_i64s("axes", &axes);
        let y = b.op(op, &[&r, &ax], &[("keepdims", Attr::Int(keep))]);
        let model = b.build();
        check(&GradCheck::f64(model, &y, run_time_shape_feeds(), &["x"])).unwrap_or_else(|e| panic!("{op}: {e}"));
    }
}

#[test]
fn gather_nd_with_and_without_batch_dims() {
    // Whole rows, repeated (gradients accumulate), and single elements with a negative index.
    check64(&[a(&[3, 4], 101), int("idx", &[3, 1], vec![2, 0, 2])], &one("GatherND", vec![]));
    check64(&[a(&[3, 4], 102), int("idx", &[2, 2], vec![1, -1, 0, 2])], &one("GatherND", vec![]));
    // CLIP's pooling at the end-of-text token: hidden [B, L, D], one position per batch row.
    let pool = vec![("batch_dims", Attr::Int(1))];
    check64(&[a(&[2, 5, 3], 103), int("eot", &[2, 1], vec![4, 1])], &one("GatherND", pool.clone()));
    // batch_dims 1 with several lookups per row, and batch_dims 2.
    check64(
        &[a(&[2, 5, 3], 104), int("idx", &[2, 3, 2], vec![4, 0, 1, 2, 4, 0, 0, 1, 0, 1, 3, 2])],
        &one("GatherND", pool),
    );
    check64(
        &[a(&[2, 3, 4], 105), int("idx", &[2, 3, 1], vec![0, 3, 3, 1, 2, 0])],
        &one("GatherND", vec![("batch_dims", Attr::Int(2))]),
    );
}
