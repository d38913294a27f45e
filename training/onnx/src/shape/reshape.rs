//! Ops that rearrange a tensor's dims without touching its elements: `Reshape`,
//! `Flatten`, `Squeeze`, `Unsqueeze`, `Transpose`.

use super::{Ctx, Outputs, norm_axis, unknown, unknowns};
use crate::builder::{Dim, attr_int, attr_ints};

/// `Reshape`: 0 copies the input's size (unless `allowzero`), -1 is worked out where it
/// can be. The target may be a constant, a value computed from other shapes (whose
/// named dims are kept), or fed at run time (only its length, the rank, is known).
pub(super) fn reshape(c: &Ctx) -> Outputs {
    let (node, map, dims0) = (c.node, c.map, &c.dims0);
    if node.input.get(1).and_then(|n| map.const_i64s(n)).is_none()
        && let Some(target) = node.input.get(1).and_then(|n| map.dim_values(n))
    {
        // A shape computed from other shapes: 0 copies, -1 is worked out where it can be.
        let mut dims: Vec<Dim> = target
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Dim::Known(0) => dims0.as_ref().and_then(|x| x.get(i).cloned()).unwrap_or_else(unknown),
                Dim::Known(-1) => unknown(),
                other => other.clone(),
            })
            .collect();
        if let (Some(pos), Some(src)) = (target.iter().position(|d| *d == Dim::Known(-1)), dims0.as_ref()) {
            resolve_minus_one(&mut dims, pos, src);
        }
        return vec![c.same(Some(dims))];
    }
    let target = node.input.get(1).and_then(|n| map.const_i64s(n));
    if target.is_none() {
        // A shape computed at run time: its length is the output's rank.
        let rank = c.input(1).and_then(|t| t.known_dims()).and_then(|d| d.first().copied());
        return vec![c.same(rank.map(|r| unknowns(r as usize)))];
    }
    let dims = target.map(|t| {
        let allow_zero = attr_int(node, "allowzero", 0) != 0;
        let mut d: Vec<Dim> = t
            .iter()
            .enumerate()
            .map(|(i, &v)| match v {
                0 if !allow_zero => dims0.as_ref().and_then(|d| d.get(i).cloned()).unwrap_or_else(unknown),
                -1 => unknown(),
                v => Dim::Known(v),
            })
            .collect();
        if let (Some(pos), Some(src)) = (t.iter().position(|&v| v == -1), dims0.as_ref()) {
            resolve_minus_one(&mut d, pos, src);
        }
        d
    });
    vec![c.same(dims)]
}

/// Works out the `-1` at `pos` of a Reshape to `d` from the input's dims `src`: named
/// dims present on both sides cancel out, and the known sizes that remain give it.
fn resolve_minus_one(d: &mut [Dim], pos: usize, src: &[Dim]) {
    let mut src_syms: Vec<&Dim> = src.iter().filter(|x| matches!(x, Dim::Sym(_))).collect();
    let mut rest = 1i64;
    for (i, x) in d.iter().enumerate() {
        if i == pos {
            continue;
        }
        match x {
            Dim::Known(v) => rest *= v,
            sym => match src_syms.iter().position(|s| *s == sym && !matches!(s, Dim::Sym(n) if n == "?")) {
                Some(k) => {
                    src_syms.remove(k);
                }
                None => return,
            },
        }
    }
    let total: i64 = src.iter().filter_map(|x| if let Dim::Known(v) = x { Some(*v) } else { None }).product();
    match src_syms.as_slice() {
        [] if rest != 0 && total % rest == 0 => d[pos] = Dim::Known(total / rest),
        // One named size left and the known sizes balance: the -1 is that size
        // (`input_ids.view(-1, L)` keeps `batch`).
        [only] if rest == total && !matches!(only, Dim::Sym(n) if n == "?") => d[pos] = (*only).clone(),
        _ => {}
    }
}

/// `Flatten`: `[prod(dims[..axis]), prod(dims[axis..])]`.
pub(super) fn flatten(c: &Ctx) -> Outputs {
    let dims = c.dims0.as_ref().map(|d| {
        let axis = norm_axis(attr_int(c.node, "axis", 1), d.len());
        let prod = |s: &[Dim]| -> Dim {
            if s.len() == 1 {
                return s[0].clone();
            }
            s.iter()
                .try_fold(1i64, |acc, x| if let Dim::Known(v) = x { Some(acc * v) } else { None })
                .map(Dim::Known)
                .unwrap_or_else(unknown)
        };
        vec![prod(&d[..axis]), prod(&d[axis..])]
    });
    vec![c.same(dims)]
}

/// `Squeeze`: the given axes removed, or every known 1 when no axes are given.
pub(super) fn squeeze(c: &Ctx) -> Outputs {
    let node = c.node;
    let axes = node.input.get(1).and_then(|n| c.map.const_i64s(n));
    let dims = c.dims0.as_ref().and_then(|d| match axes {
        Some(ax) => {
            let ax: Vec<usize> = ax.iter().map(|&a| norm_axis(a, d.len())).collect();
            Some(d.iter().enumerate().filter(|(i, _)| !ax.contains(i)).map(|(_, x)| x.clone()).collect())
        }
        None if node.input.len() < 2 || node.input[1].is_empty() => {
            if d.iter().all(|x| matches!(x, Dim::Known(_))) {
                Some(d.iter().filter(|x| **x != Dim::Known(1)).cloned().collect())
            } else {
                None
            }
        }
        None => None,
    });
    vec![c.same(dims)]
}

/// `Unsqueeze`: a 1 inserted at each axis (counted in the output).
pub(super) fn unsqueeze(c: &Ctx) -> Outputs {
    let axes = c.node.input.get(1).and_then(|n| c.map.const_i64s(n));
    let dims = match (c.dims0.as_ref(), axes) {
        (Some(d), Some(ax)) => {
            let r = d.len() + ax.len();
            let mut ax: Vec<usize> = ax.iter().map(|&a| norm_axis(a, r)).collect();
            ax.sort();
            let mut it = d.iter();
            Some(
                (0..r)
                    .map(|i| if ax.contains(&i) { Dim::Known(1) } else { it.next().cloned().unwrap_or_else(unknown) })
                    .collect(),
            )
        }
        _ => None,
    };
    vec![c.same(dims)]
}

/// `Transpose`: the dims permuted by `perm` (reversed by default).
pub(super) fn transpose(c: &Ctx) -> Outputs {
    let dims = c.dims0.as_ref().map(|d| {
        let perm = attr_ints(c.node, "perm").unwrap_or_else(|| (0..d.len() as i64).rev().collect());
        perm.iter().map(|&p| d[p as usize].clone()).collect()
    });
    vec![c.same(dims)]
}
