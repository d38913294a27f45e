//! Finite-difference checks of the arithmetic and unary rules.

mod common;
mod ort_eval;
use common::*;
use memeguard_onnx::Attr;

#[test]
fn add_sub_mul_div_with_broadcasting() {
    for op in ["Add", "Sub", "Mul", "Div"] {
        // [2,3,4] with [3,1] (trailing broadcast) and with [4] (leading)
        let b1 = positive(3, 2, 0.5, 1.5);
        let ins = [x("a", &[2, 3, 4], values(24, 1, 0.1, 1.0)), x("b", &[3, 1], b1)];
        assert_eq!(check_grad(&ins, &one(op, vec![])), Precision::F64, "{op}");
        let ins = [x("a", &[2, 3, 4], values(24, 3, 0.1, 1.0)), x("b", &[4], positive(4, 4, 0.5, 1.5))];
        check_grad(&ins, &one(op, vec![]));
        // The same value used twice: gradients are summed.
        let ins = [x("a", &[3], positive(3, 5, 0.5, 1.5))];
        check_grad(&ins, &move |b, n| b.op(op, &[&n[0], &n[0]], &[]));
    }
}

#[test]
fn unary_functions() {
    let v = values(12, 7, 0.2, 1.5);
    let p = positive(12, 8, 0.3, 2.0);
    for (op, data) in [
        ("Neg", v.clone()),
        ("Exp", v.clone()),
        ("Tanh", v.clone()),
        ("Sigmoid", v.clone()),
        ("Abs", v.clone()),
        ("Sqrt", p.clone()),
        ("Log", p.clone()),
        ("Reciprocal", p.clone()),
        ("Identity", v.clone()),
    ] {
        check_grad(&[x("a", &[3, 4], data)], &one(op, vec![]));
    }
}

#[test]
fn pow_with_constant_exponent() {
    let ins = [x("a", &[2, 3], positive(6, 9, 0.5, 2.0)), fixed("e", &[], vec![2.5])];
    check_grad(&ins, &one("Pow", vec![]));
    let ins = [x("a", &[2, 3], values(6, 10, 0.5, 2.0)), fixed("e", &[3], vec![2.0, 3.0, 1.0])];
    check_grad(&ins, &one("Pow", vec![]));
}

#[test]
fn pow_with_respect_to_the_exponent() {
    // Positive bases (ln a exists), exponents broadcast and shared.
    let ins = [x("a", &[2, 3], positive(6, 9, 0.5, 2.0)), x("e", &[], vec![1.7])];
    assert_eq!(check_grad(&ins, &one("Pow", vec![])), Precision::F64);
    let ins = [x("a", &[2, 3], positive(6, 17, 0.5, 2.0)), x("e", &[3], vec![2.0, -1.5, 0.5])];
    check_grad(&ins, &one("Pow", vec![]));
    // A learned exponent over a fixed base (e.g. a learned temperature 10^t).
    let ins = [fixed("a", &[4], positive(4, 18, 0.5, 3.0)), x("e", &[2, 1], vec![0.3, -0.7])];
    check_grad(&ins, &one("Pow", vec![]));
}

#[test]
fn pow_exponent_gradient_is_zero_at_a_zero_base() {
    // 0^e for e > 0 is 0 for every nearby e: its derivative in e is 0, not 0·ln 0 = NaN.
    let ins = [fixed("a", &[3], vec![0.0, 1.5, 2.0]), x("e", &[3], vec![2.0, 1.5, 0.5])];
    check_grad(&ins, &one("Pow", vec![]));
}

#[test]
fn cast_like_mean_sin_cos_and_n_ary_min_max() {
    let v = values(12, 25, 0.2, 1.5);
    for op in ["Sin", "Cos"] {
        assert_eq!(check_grad(&[x("a", &[3, 4], v.clone())], &one(op, vec![])), Precision::F64, "{op}");
    }
    // CastLike to float64 of a float64 value, and through a round trip as PyTorch's
    // dynamo export writes it (`type_as`).
    let ins = [x("a", &[3, 4], v.clone()), fixed("like", &[1], vec![0.0])];
    check_grad(&ins, &|b, n| {
        let t = b.op("Tanh", &[&n[0]], &[]);
        b.op("CastLike", &[&t, &n[1]], &[])
    });
    let ins = [
        x("a", &[2, 3], values(6, 26, 0.1, 1.0)),
        x("b", &[3], values(3, 27, 0.1, 1.0)),
        x("c", &[2, 1], values(2, 28, 0.1, 1.0)),
    ];
    for op in ["Max", "Min", "Sum"] {
        assert_eq!(check_grad(&ins, &one(op, vec![])), Precision::F64, "{op}");
    }
    // ONNX Runtime has no float64 Mean kernel: float32.
    check_grad(&ins, &one("Mean", vec![]));
}

#[test]
fn cast_like_sends_a_float32_gradient_to_a_float32_input() {
    use memeguard_onnx::{DataType, Tensor};
    use memeguard_training::autodiff::gradcheck::{GradCheck, check};
    let ins = [x("a", &[4], values(4, 29, 0.1, 1.0))];
    let (m, y) = graph(DataType::Float, &ins, &|b, n| {
        let like = b.constant("like", Tensor::scalar_f64(0.0));
        let c = b.op("CastLike", &[&n[0], &like], &[]);
        let t = b.op("Tanh", &[&c], &[]);
        b.op("Cast", &[&t], &[("to", Attr::Int(DataType::Float as i64))])
    });
    let feeds = vec![("a".to_string(), Tensor::f32(vec![4], ins[0].data.iter().map(|&v| v as f32).collect()))];
    check(&GradCheck::f32(m, &y, feeds, &["a"])).unwrap();
}

#[test]
fn n_ary_max_gives_ties_to_the_first_input() {
    use memeguard_onnx::{DataType, Tensor};
    let (m, y) = graph(
        DataType::Double,
        &[x("a", &[2], vec![1.0, 2.0]), x("b", &[2], vec![1.0, 3.0]), x("c", &[2], vec![1.0, 3.0])],
        &one("Max", vec![]),
    );
    let mut b = memeguard_onnx::GraphBuilder::from_model(&m);
    let l = b.op("ReduceSum", &[&y], &[("keepdims", Attr::Int(0))]);
    let wrt: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let d = memeguard_training::autodiff::differentiate(&b.build(), &l, &wrt).unwrap();
    let mut gb = memeguard_onnx::GraphBuilder::from_model(&d.model);
    for w in &wrt {
        gb.output_unshaped(&d.grads[w], DataType::Double);
    }
    let feeds: Vec<(&str, Tensor)> = vec![
        ("a", Tensor::f64(vec![2], vec![1.0, 2.0])),
        ("b", Tensor::f64(vec![2], vec![1.0, 3.0])),
        ("c", Tensor::f64(vec![2], vec![1.0, 3.0])),
    ];
    let names: Vec<&str> = wrt.iter().map(|w| d.grads[w].as_str()).collect();
    let got: Vec<Vec<f64>> = ort_eval::eval(&gb.build(), &feeds, &names).iter().map(|t| t.to_f64_vec()).collect();
    assert_eq!(got, vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.0, 0.0]]);
}

#[test]
fn min_max_where_clip() {
    for op in ["Min", "Max"] {
        let ins = [x("a", &[2, 3], values(6, 11, 0.1, 1.0)), x("b", &[3], values(3, 12, 0.1, 1.0))];
        check_grad(&ins, &one(op, vec![]));
    }
    let ins = [x("a", &[2, 3], values(6, 13, 0.1, 1.0)), x("b", &[2, 3], values(6, 14, 0.1, 1.0))];
    check_grad(&ins, &|b, n| {
        let c = b.op("Greater", &[&n[0], &n[1]], &[]);
        b.op("Where", &[&c, &n[0], &n[1]], &[])
    });
    // Clip bounds at ±0.5, inputs away from them.
    let data: Vec<f64> =
        values(8, 15, 0.1, 1.0).into_iter().map(|v| if (v.abs() - 0.5).abs() < 0.05 { v * 1.3 } else { v }).collect();
    let ins = [x("a", &[8], data), fixed("lo", &[], vec![-0.5]), fixed("hi", &[], vec![0.5])];
    check_grad(&ins, &one("Clip", vec![]));
}

#[test]
fn cast_passes_gradient_back_to_the_source_type() {
    // float32 input, computed in float64, cast back: the gradient arrives as float32.
    use memeguard_onnx::{DataType, Tensor};
    use memeguard_training::autodiff::gradcheck::{GradCheck, check};
    let ins = [x("a", &[4], values(4, 16, 0.1, 1.0))];
    let (m, y) = graph(DataType::Float, &ins, &|b, n| {
        let c = b.op("Cast", &[&n[0]], &[("to", Attr::Int(DataType::Double as i64))]);
        let t = b.op("Tanh", &[&c], &[]);
        b.op("Cast", &[&t], &[("to", Attr::Int(DataType::Float as i64))])
    });
    let feeds = vec![("a".to_string(), Tensor::f32(vec![4], ins[0].data.iter().map(|&v| v as f32).collect()))];
    check(&GradCheck::f32(m, &y, feeds, &["a"])).unwrap();
}

/// `x + pos` where `pos` is `[1, L, D]` at run time but its leading 1 is not known
/// statically: the gradient of `pos` must still be summed over the batch.
#[test]
fn add_unbroadcasts_an_addend_whose_leading_one_is_only_known_at_run_time() {
    use memeguard_onnx::{DataType, GraphBuilder, Tensor, dims};
    use memeguard_training::autodiff::gradcheck::{GradCheck, check};
    // Declared with symbolic dims: `one` may be 1 or the batch size as far as the file says.
    let mut b = GraphBuilder::new("g");
    let xs = b.input("x", DataType::Double, &dims!["batch", "len", 4]);
    let pos = b.input("pos", DataType::Double, &dims!["one", "len", 4]);
    let y = b.op("Add", &[&xs, &pos], &[]);
    b.output_unshaped(&y, DataType::Double);
    let feeds = vec![
        ("x".to_string(), Tensor::f64(vec![2, 3, 4], values(24, 21, 0.1, 1.0))),
        ("pos".to_string(), Tensor::f64(vec![1, 3, 4], values(12, 22, 0.1, 1.0))),
    ];
    check(&GradCheck::f64(b.build(), &y, feeds, &["x", "pos"])).unwrap();
}

/// The CLIP text tower's position embeddings: `table[ids[:, :L]]` with `L = Shape(x)[1]`
/// read at run time, so shape inference sees `[?, ?, D]` for a `[1, L, D]` value.
#[test]
fn position_embeddings_gathered_with_a_run_time_length() {
    let ids: Vec<i64> = (0..5).collect();
    let ins = [
        x("x", &[2, 3, 4], values(24, 23, 0.1, 1.0)),
        x("table", &[5, 4], values(20, 24, 0.1, 1.0)),
        int("ids", &[1, 5], ids),
    ];
    assert_eq!(
        check_grad(&ins, &|b, n| {
            let len = b.op("Shape", &[&n[0]], &[("start", Attr::Int(1)), ("end", Attr::Int(2))]);
            let (zero, one) = (b.const_i64s("zero", &[0]), b.const_i64s("one", &[1]));
            let sliced = b.op("Slice", &[&n[2], &zero, &len, &one], &[]);
            let pos = b.op("Gather", &[&n[1], &sliced], &[]);
            b.op("Add", &[&n[0], &pos], &[])
        }),
        Precision::F64
    );
}

/// Where the static shapes decide it, the gradient graph stays free of run-time shape
/// arithmetic (no `NonZero`): named dims that match on both sides were not broadcast.
#[test]
fn matching_named_dims_unbroadcast_statically() {
    use memeguard_onnx::{DataType, GraphBuilder, dims};
    let mut b = GraphBuilder::new("g");
    let xs = b.input("x", DataType::Float, &dims!["batch", "len", 4]);
    let w = b.input("w", DataType::Float, &dims!["batch", "len", 1]);
    let y = b.op("Mul", &[&xs, &w], &[]);
    let l = b.op("ReduceSum", &[&y], &[("keepdims", Attr::Int(0))]);
    let d = memeguard_training::autodiff::differentiate(&b.build(), &l, &["w".to_string()]).unwrap();
    let ops: Vec<&str> = d.model.graph.as_ref().unwrap().node.iter().filter_map(|n| n.op_type.as_deref()).collect();
    assert!(!ops.contains(&"NonZero"), "{ops:?}");
}

#[test]
fn trilu_and_cum_sum() {
    let v = || x("a", &[2, 3, 4], values(24, 30, 0.1, 1.0));
    for (upper, k) in [(1, 0), (0, 0), (1, 1), (0, -1)] {
        check_grad(&[v(), int("k", &[], vec![k])], &one("Trilu", vec![("upper", Attr::Int(upper))]));
    }
    check_grad(&[v()], &one("Trilu", vec![]));
    for axis in [0, 1, -1] {
        for (exclusive, reverse) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let attrs = vec![("exclusive", Attr::Int(exclusive)), ("reverse", Attr::Int(reverse))];
            check_grad(&[v(), int("axis", &[], vec![axis])], &one("CumSum", attrs));
        }
    }
}

/// After the position-embedding `Add` (whose sizes inference cannot know), a residual
/// `Add` of two values with those same unknown sizes broadcast nothing: only the first
/// needs the run-time path.
#[test]
fn unknown_sizes_keep_their_identity_through_elementwise_ops() {
    use memeguard_onnx::{DataType, GraphBuilder, Tensor, dims};
    use memeguard_training::autodiff::gradcheck::{GradCheck, check};
    let mut b = GraphBuilder::new("g");
    let xs = b.input("x", DataType::Double, &dims!["batch", "len", 4]);
    let table = b.input("table", DataType::Double, &dims![5, 4]);
    let ids = b.input("ids", DataType::Int64, &dims![1, 5]);
    let len = b.op("Shape", &[&xs], &[("start", Attr::Int(1)), ("end", Attr::Int(2))]);
    let (zero, one) = (b.const_i64s("zero", &[0]), b.const_i64s("one", &[1]));
    let sliced = b.op("Slice", &[&ids, &zero, &len, &one], &[]);
    let pos = b.op("Gather", &[&table, &sliced], &[]);
    let h = b.node_named("embed", "Add", &[&xs, &pos], 1, &[]).remove(0);
    let t = b.op("Tanh", &[&h], &[]);
    let y = b.node_named("residual", "Add", &[&h, &t], 1, &[]).remove(0);
    let model = b.build();
    let mut lb = GraphBuilder::from_model(&model);
    let l = lb.op("ReduceSum", &[&y], &[("keepdims", Attr::Int(0))]);
    let d =
        memeguard_training::autodiff::differentiate(&lb.build(), &l, &["table".to_string(), "x".to_string()]).unwrap();
    let run_time = |node: &str| {
        let nodes = &d.model.graph.as_ref().unwrap().node;
        nodes.iter().filter(|n| n.op_type() == "NonZero" && n.name().starts_with(&format!("{node}_grad"))).count()
    };
    // `batch` against a fresh unknown: either side may have been broadcast.
    assert_eq!(run_time("embed"), 2);
    assert_eq!(run_time("residual"), 0);
    let feeds = vec![
        ("x".to_string(), Tensor::f64(vec![2, 3, 4], values(24, 31, 0.1, 1.0))),
        ("table".to_string(), Tensor::f64(vec![5, 4], values(20, 32, 0.1, 1.0))),
        ("ids".to_string(), Tensor::i64(vec![1, 5], (0..5).collect())),
    ];
    check(&GradCheck::f64(model, &y, feeds, &["x", "table"])).unwrap();
}
