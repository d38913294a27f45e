//! Finite-difference checks of activations (Mish, Selu, PRelu with broadcast slopes
//! among them), softmax, matrix products and reductions (ReduceProd through zeros).

mod common;
use common::*;
use memeguard_onnx::{Attr, GraphBuilder};

#[test]
fn activations_away_from_kinks() {
    let v = values(12, 21, 0.2, 2.0);
    for (op, attrs) in [
        ("Relu", vec![]),
        ("LeakyRelu", vec![("alpha", Attr::Float(0.1))]),
        ("Erf", vec![]),
        ("Gelu", vec![]),
        ("Gelu", vec![("approximate", Attr::Str("tanh".into()))]),
    ] {
        check_grad(&[x("a", &[3, 4], v.clone())], &one(op, attrs));
    }
}

#[test]
fn softmax_and_log_softmax_on_each_axis() {
    for op in ["Softmax", "LogSoftmax"] {
        for axis in [-1, 0, 1] {
            check_grad(&[x("a", &[2, 3, 4], values(24, 22, 0.0, 2.0))], &one(op, vec![("axis", Attr::Int(axis))]));
        }
    }
}

#[test]
fn matmul_batched_broadcast_and_vectors() {
    let cases: Vec<(Vec<i64>, Vec<i64>)> = vec![
        (vec![3, 4], vec![4, 2]),
        (vec![2, 3, 4], vec![4, 5]),
        (vec![2, 3, 4], vec![2, 4, 5]),
        (vec![1, 3, 4], vec![2, 4, 2]),
        (vec![4], vec![4, 3]),
        (vec![2, 3, 4], vec![4]),
        (vec![4], vec![4]),
    ];
    for (i, (a, b)) in cases.into_iter().enumerate() {
        let na = a.iter().product::<i64>() as usize;
        let nb = b.iter().product::<i64>() as usize;
        let ins = [x("a", &a, values(na, 30 + i as u64, 0.1, 1.0)), x("b", &b, values(nb, 40 + i as u64, 0.1, 1.0))];
        check_grad(&ins, &one("MatMul", vec![]));
    }
}

#[test]
fn gemm_all_transposes_alpha_beta() {
    for ta in [0, 1] {
        for tb in [0, 1] {
            let a = if ta == 1 { vec![4, 3] } else { vec![3, 4] };
            let b = if tb == 1 { vec![2, 4] } else { vec![4, 2] };
            let ins = [
                x("a", &a, values(12, 50, 0.1, 1.0)),
                x("b", &b, values(8, 51, 0.1, 1.0)),
                x("c", &[2], values(2, 52, 0.1, 1.0)),
            ];
            let attrs = vec![
                ("transA", Attr::Int(ta)),
                ("transB", Attr::Int(tb)),
                ("alpha", Attr::Float(0.7)),
                ("beta", Attr::Float(1.3)),
            ];
            check_grad(&ins, &one("Gemm", attrs));
        }
    }
}

/// `op` over `axes` (none: all) with `keepdims`.
fn reduction(op: &'static str, axes: Vec<i64>, keep: i64) -> impl Fn(&mut GraphBuilder, &[String]) -> String {
    move |b, n| {
        if axes.is_empty() {
            b.op(op, &[&n[0]], &[("keepdims", Attr::Int(keep))])
        } else {
            let ax = b.const_i64s("axes", &axes);
            b.op(op, &[&n[0], &ax], &[("keepdims", Attr::Int(keep))])
        }
    }
}

#[test]
fn reductions_with_and_without_keepdims() {
    for op in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp"] {
        for keep in [0, 1] {
            for axes in [vec![1], vec![0, 2], vec![-1], vec![]] {
                let data = values(24, 60, 0.1, 2.0); // distinct values: no ties for max/min
                let ins = [x("a", &[2, 3, 4], data)];
                check_grad(&ins, &reduction(op, axes, keep));
            }
        }
    }
}

/// Inputs in ±[0.2, 2] and ±[3.5, 5], away from the kinks of the hard functions
/// (HardSigmoid's at ±2.5, HardSwish's at ±3).
fn spread(seed: u64) -> Vec<f64> {
    let near = values(8, seed, 0.2, 2.0);
    let far = values(4, seed + 1, 3.5, 5.0);
    near.into_iter().chain(far).collect()
}

#[test]
fn softplus_elu_hard_sigmoid_hard_swish() {
    for (op, attrs) in [
        ("Softplus", vec![]),
        ("Elu", vec![]),
        ("Elu", vec![("alpha", Attr::Float(0.5))]),
        ("HardSigmoid", vec![]),
        ("HardSigmoid", vec![("alpha", Attr::Float(0.3)), ("beta", Attr::Float(0.4))]),
        ("HardSwish", vec![]),
    ] {
        // ONNX Runtime has float32 kernels only for these: the check runs in float32.
        check_grad(&[x("a", &[3, 4], spread(31))], &one(op, attrs));
    }
}

#[test]
fn mish_and_selu() {
    for (op, attrs) in
        [("Mish", vec![]), ("Selu", vec![]), ("Selu", vec![("alpha", Attr::Float(1.5)), ("gamma", Attr::Float(0.8))])]
    {
        check_grad(&[x("a", &[3, 4], values(12, 33, 0.2, 2.0))], &one(op, attrs));
    }
}

/// The slope broadcasts against x (per channel `[C, 1]`, per last axis, one shared).
#[test]
fn prelu_with_broadcast_slopes() {
    for (i, slope) in [vec![2, 3, 4], vec![4], vec![3, 1], vec![1]].into_iter().enumerate() {
        let n = slope.iter().product::<i64>() as usize;
        let ins =
            [x("a", &[2, 3, 4], values(24, 34 + i as u64, 0.2, 2.0)), x("slope", &slope, values(n, 44, 0.1, 0.5))];
        check_grad(&ins, &one("PRelu", vec![]));
    }
}

#[test]
fn reduce_prod_and_l1() {
    for op in ["ReduceProd", "ReduceL1"] {
        for keep in [0, 1] {
            for axes in [vec![1], vec![0, 2], vec![]] {
                let ins = [x("a", &[2, 3, 4], values(24, 61, 0.3, 1.5))];
                check_grad(&ins, &reduction(op, axes, keep));
            }
        }
    }
}

/// A product is linear in each factor, so central differences are exact at a zero: one
/// zero in a row gives that element the product of the others, two give every element 0.
#[test]
fn reduce_prod_through_zeros() {
    let mut data = values(12, 62, 0.3, 1.5);
    data[1] = 0.0; // row 0: one zero
    data[8] = 0.0; // row 2: two zeros
    data[10] = 0.0;
    let ins = [x("a", &[3, 4], data)];
    check_grad(&ins, &|b, n| {
        let ax = b.const_i64s("axes", &[1]);
        b.op("ReduceProd", &[&n[0], &ax], &[("keepdims", Attr::Int(0))])
    });
}
