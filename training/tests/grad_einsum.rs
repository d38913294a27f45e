//! Finite-difference checks of Einsum: the contractions exporters write (matrix and
//! batched products, attention scores, outer products, ellipses, implicit outputs,
//! transposes, labels summed within one operand), and a clear refusal, naming the
//! equation, of a diagonal.

mod common;
use common::*;
use memeguard_onnx::{Attr, DataType, GraphBuilder, dims};
use memeguard_training::autodiff::differentiate;

fn einsum(equation: &'static str) -> impl Fn(&mut GraphBuilder, &[String]) -> String {
    one("Einsum", vec![("equation", Attr::Str(equation.into()))])
}

#[test]
fn two_operand_contractions() {
    let cases: [(&str, Vec<i64>, Vec<i64>); 9] = [
        ("ij,jk->ik", vec![3, 4], vec![4, 2]),
        ("bij,bjk->bik", vec![2, 3, 4], vec![2, 4, 2]),
        ("bhid,bhjd->bhij", vec![1, 2, 3, 4], vec![1, 2, 5, 4]),
        ("bhij,bhjd->bhid", vec![1, 2, 3, 5], vec![1, 2, 5, 4]),
        ("i,j->ij", vec![3], vec![4]),
        ("ij,ij->i", vec![3, 4], vec![3, 4]),
        ("...ij,jk->...ik", vec![2, 3, 4], vec![4, 2]),
        ("ij,jk", vec![3, 4], vec![4, 2]),
        ("bn,nd->bd", vec![2, 5], vec![5, 3]),
    ];
    for (i, (eq, a, b)) in cases.into_iter().enumerate() {
        let (na, nb) = (a.iter().product::<i64>() as usize, b.iter().product::<i64>() as usize);
        let ins = [x("a", &a, values(na, 10 + i as u64, 0.1, 1.0)), x("b", &b, values(nb, 20 + i as u64, 0.1, 1.0))];
        eprintln!("{eq}");
        check_grad(&ins, &einsum(eq));
    }
}

/// Ellipsis dims that broadcast (`[1, 3, 4]` against `[2, 4, 5]`) are summed back.
#[test]
fn ellipsis_broadcast_and_one_operand() {
    let ins = [x("a", &[1, 3, 4], values(12, 30, 0.1, 1.0)), x("b", &[2, 4, 5], values(40, 31, 0.1, 1.0))];
    check_grad(&ins, &einsum("...ij,...jk->...ik"));
    check_grad(&[x("a", &[3, 4], values(12, 32, 0.1, 1.0))], &einsum("ij->ji"));
    check_grad(&[x("a", &[2, 3, 4], values(24, 33, 0.1, 1.0))], &einsum("bij->bji"));
}

/// Labels summed within one operand alone: left out of the gradient's Einsum and
/// broadcast back.
#[test]
fn sums_within_one_operand() {
    for (eq, a, b) in [
        ("ij->i", vec![3, 4], None),
        ("ij->", vec![3, 4], None),
        ("bij,bk->bk", vec![2, 3, 4], Some(vec![2, 5])),
        ("ij,jk->k", vec![3, 4], Some(vec![4, 2])),
        ("...ij->...j", vec![2, 3, 4], None),
    ] {
        let na = a.iter().product::<i64>() as usize;
        let mut ins = vec![x("a", &a, values(na, 40, 0.1, 1.0))];
        if let Some(b) = &b {
            ins.push(x("b", b, values(b.iter().product::<i64>() as usize, 41, 0.1, 1.0)));
        }
        eprintln!("{eq}");
        check_grad(&ins, &einsum(eq));
    }
}

#[test]
fn a_diagonal_is_refused_naming_the_equation() {
    for (eq, d) in [("ii->i", dims![3, 3]), ("ii->", dims![3, 3]), ("iij->j", dims![3, 3, 2])] {
        let mut b = GraphBuilder::new("einsum");
        let a = b.input("a", DataType::Float, &d);
        let y = b.op("Einsum", &[&a], &[("equation", Attr::Str(eq.into()))]);
        let loss = b.op("ReduceSum", &[&y], &[("keepdims", Attr::Int(0))]);
        let err = differentiate(&b.build(), &loss, &["a".to_string()]).unwrap_err();
        assert!(err.to_string().contains(eq), "{err}");
    }
}
