//! Ops that grow a tensor by repeating or padding it: `Expand`, `Tile`, `Pad`.

use super::{Ctx, Outputs, broadcast_shapes, norm_axis, unknown, unknowns};
use crate::builder::Dim;

/// `Expand`: the input broadcast with the target shape.
pub(super) fn expand(c: &Ctx) -> Outputs {
    let shape = c.node.input.get(1).and_then(|n| c.map.dim_values(n));
    let dims = match (c.dims0.as_ref(), shape) {
        (Some(d), Some(s)) => Some(broadcast_shapes(&[d, &s])),
        // A shape fed at run time (not traced from shapes): its length gives the rank,
        // and every dim of the input other than 1 is kept (the shape may only have 1
        // or that size there).
        (Some(d), None) => c.input(1).and_then(|t| t.known_dims()).and_then(|k| k.first().copied()).map(|k| {
            let rank = (k as usize).max(d.len());
            (0..rank)
                .map(|i| match i.checked_sub(rank - d.len()).map(|j| &d[j]) {
                    Some(x) if *x != Dim::Known(1) => x.clone(),
                    _ => unknown(),
                })
                .collect()
        }),
        _ => None,
    };
    vec![c.same(dims)]
}

/// `Tile`: each size times its repeat count.
pub(super) fn tile(c: &Ctx) -> Outputs {
    let reps = c.node.input.get(1).and_then(|n| c.map.const_i64s(n));
    let dims = match (c.dims0.as_ref(), reps) {
        (Some(d), Some(r)) => Some(
            d.iter()
                .zip(r)
                .map(|(x, k)| match x {
                    Dim::Known(v) => Dim::Known(v * k),
                    other if k == 1 => other.clone(),
                    _ => unknown(),
                })
                .collect(),
        ),
        _ => None,
    };
    vec![c.same(dims)]
}

/// `Pad`: each size plus its two pads; with pads fed at run time, the rank only.
pub(super) fn pad(c: &Ctx) -> Outputs {
    let (node, map) = (c.node, c.map);
    let pads = node.input.get(1).and_then(|n| map.const_i64s(n));
    // With an `axes` input (opset 18), spread the pads over all axes first.
    let pads = match (pads, node.input.get(3).filter(|s| !s.is_empty()), c.rank0()) {
        (Some(p), Some(axes), Some(r)) => map.const_i64s(axes).filter(|a| p.len() == 2 * a.len()).map(|axes| {
            let mut full = vec![0; 2 * r];
            for (k, &a) in axes.iter().enumerate() {
                let a = norm_axis(a, r);
                full[a] = p[k];
                full[a + r] = p[k + axes.len()];
            }
            full
        }),
        (pads, _, _) => pads,
    };
    let dims = match (c.dims0.as_ref(), pads) {
        (Some(d), Some(p)) if p.len() == 2 * d.len() => Some(
            d.iter()
                .enumerate()
                .map(|(i, x)| match x {
                    Dim::Known(v) => Dim::Known(v + p[i] + p[i + d.len()]),
                    other if p[i] == 0 && p[i + d.len()] == 0 => other.clone(),
                    _ => unknown(),
                })
                .collect(),
        ),
        // Pads fed at run time: the rank is kept, the sizes are unknown.
        (Some(d), _) => Some(unknowns(d.len())),
        _ => None,
    };
    vec![c.same(dims)]
}
