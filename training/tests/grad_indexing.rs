//! Finite-difference checks of the scatters (ScatterND, ScatterElements, with
//! `reduction` none and add) and TopK's values; `mul`/`max`/`min` scatters are refused.

mod common;
use common::*;
use memeguard_onnx::{Attr, DataType, GraphBuilder, dims};
use memeguard_training::autodiff::differentiate;

fn scatter(op: &'static str, attrs: Vec<(&'static str, Attr)>) -> impl Fn(&mut GraphBuilder, &[String]) -> String {
    one(op, attrs)
}

#[test]
fn scatter_nd_rows_and_elements() {
    for reduction in ["none", "add"] {
        let attrs = || vec![("reduction", Attr::Str(reduction.into()))];
        // Whole rows: indices [2, 1] into [4, 3].
        let ins = [
            x("data", &[4, 3], values(12, 1, 0.1, 1.0)),
            int("idx", &[2, 1], vec![3, 1]),
            x("updates", &[2, 3], values(6, 2, 0.1, 1.0)),
        ];
        check_grad(&ins, &scatter("ScatterND", attrs()));
        // Single elements: indices [3, 2] into [2, 3, 2] pick rows of length 2.
        let ins = [
            x("data", &[2, 3, 2], values(12, 3, 0.1, 1.0)),
            int("idx", &[3, 2], vec![0, 2, 1, 0, 1, 2]),
            x("updates", &[3, 2], values(6, 4, 0.1, 1.0)),
        ];
        check_grad(&ins, &scatter("ScatterND", attrs()));
    }
}

#[test]
fn scatter_elements_on_each_axis() {
    for reduction in ["none", "add"] {
        for (axis, idx) in
            [(0, vec![1, 0, 2, 1, 2, 2, 0, 0]), (1, vec![3, 0, 1, 2, 0, 3, 2, 1]), (-1, vec![1, 2, 0, 3, 3, 1, 0, 2])]
        {
            let ins = [
                x("data", &[3, 4], values(12, 5, 0.1, 1.0)),
                int("idx", &[2, 4], idx),
                x("updates", &[2, 4], values(8, 6, 0.1, 1.0)),
            ];
            let attrs = vec![("axis", Attr::Int(axis)), ("reduction", Attr::Str(reduction.into()))];
            check_grad(&ins, &scatter("ScatterElements", attrs));
        }
    }
}

#[test]
fn scatter_with_a_mul_reduction_is_a_clear_error() {
    let mut b = GraphBuilder::new("scatter");
    let d = b.input("data", DataType::Float, &dims![3]);
    let idx = b.const_i64s("idx", &[1]);
    let u = b.input("updates", DataType::Float, &dims![1]);
    let y = b.op("ScatterElements", &[&d, &idx, &u], &[("reduction", Attr::Str("mul".into()))]);
    let loss = b.op("ReduceSum", &[&y], &[("keepdims", Attr::Int(0))]);
    let err = differentiate(&b.build(), &loss, &["data".to_string()]).unwrap_err();
    assert!(err.to_string().contains("reduction `mul`"), "{err}");
}

/// The values' gradient goes back to where they were taken from; the distinct random
/// values keep the selection fixed under the finite-difference step.
#[test]
fn top_k_values() {
    for (axis, largest, k) in [(-1, 1, 2), (0, 1, 1), (1, 0, 3)] {
        let ins = [x("a", &[3, 4], values(12, 7 + k as u64, 0.1, 2.0)), int("k", &[1], vec![k])];
        check_grad(&ins, &move |b, n| {
            let attrs = [("axis", Attr::Int(axis)), ("largest", Attr::Int(largest))];
            b.node_named("topk", "TopK", &[&n[0], &n[1]], 2, &attrs).remove(0)
        });
    }
}
