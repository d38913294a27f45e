//! Matrix products: `MatMul` (numpy semantics, batch dims broadcast) and `Gemm`.

use super::{Ctx, Outputs, broadcast_shapes};
use crate::builder::{Dim, attr_int};

/// `MatMul`: batch dims broadcast, then `[m, n]`; a 1-D operand loses its dim.
pub(super) fn matmul(c: &Ctx) -> Outputs {
    let a = c.input(0).and_then(|t| t.dims.clone());
    let b = c.input(1).and_then(|t| t.dims.clone());
    let dims = match (a, b) {
        (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => {
            let (a2, a_vec) = if a.len() == 1 { (vec![Dim::Known(1), a[0].clone()], true) } else { (a.clone(), false) };
            let (b2, b_vec) = if b.len() == 1 { (vec![b[0].clone(), Dim::Known(1)], true) } else { (b.clone(), false) };
            let batch = broadcast_shapes(&[&a2[..a2.len() - 2], &b2[..b2.len() - 2]]);
            let mut d = batch;
            if !a_vec {
                d.push(a2[a2.len() - 2].clone());
            }
            if !b_vec {
                d.push(b2[b2.len() - 1].clone());
            }
            Some(d)
        }
        _ => None,
    };
    vec![c.same(dims)]
}

/// `Gemm`: `[m, n]` after the optional transposes.
pub(super) fn gemm(c: &Ctx) -> Outputs {
    let a = c.input(0).and_then(|t| t.dims.clone());
    let b = c.input(1).and_then(|t| t.dims.clone());
    let dims = match (a, b) {
        (Some(a), Some(b)) if a.len() == 2 && b.len() == 2 => {
            let m = if attr_int(c.node, "transA", 0) != 0 { a[1].clone() } else { a[0].clone() };
            let n = if attr_int(c.node, "transB", 0) != 0 { b[0].clone() } else { b[1].clone() };
            Some(vec![m, n])
        }
        _ => None,
    };
    vec![c.same(dims)]
}
