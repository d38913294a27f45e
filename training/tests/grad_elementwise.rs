//! Finite-difference checks of the arithmetic and unary rules.

mod common;
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
fn pow_with_learned_exponent_is_refused() {
    let (m, y) = graph(
        memeguard_onnx::DataType::Float,
        &[x("a", &[2], vec![1.0, 2.0]), x("e", &[], vec![2.0])],
        &one("Pow", vec![]),
    );
    let mut b = memeguard_onnx::GraphBuilder::from_model(&m);
    let l = b.op("ReduceSum", &[&y], &[("keepdims", Attr::Int(0))]);
    let err = memeguard_training::autodiff::differentiate(&b.build(), &l, &["e".to_string()]).unwrap_err();
    assert!(err.to_string().contains("constant exponent"), "{err}");
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
