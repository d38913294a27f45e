//! Ops that select, join or split along axes: `Slice`, `Gather`, `GatherElements`,
//! `GatherND`, `Concat`, `Split`. `Slice`, `Gather` and `Concat` also carry the
//! contents of shape values through (`Shape(x)[0]`, `[n] ++ [1, 8]`).

use super::{Ctx, Outputs, ShapeMap, input_values, norm_axis, unknown, unknowns};
use crate::builder::{Dim, attr_int};
use crate::proto::NodeProto;

/// `Slice`: each sliced axis's length from constant starts, ends and steps; with starts
/// or ends fed at run time, the rank and (with constant axes) the axes not sliced.
pub(super) fn slice(c: &Ctx) -> Outputs {
    let (node, map) = (c.node, c.map);
    let starts = node.input.get(1).and_then(|n| map.const_i64s(n));
    let ends = node.input.get(2).and_then(|n| map.const_i64s(n));
    let dims = match (c.dims0.as_ref(), starts, ends) {
        (Some(d), Some(starts), Some(ends)) => {
            let axes = node
                .input
                .get(3)
                .filter(|s| !s.is_empty())
                .and_then(|n| map.const_i64s(n))
                .unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = node.input.get(4).filter(|s| !s.is_empty()).and_then(|n| map.const_i64s(n));
            let mut out = d.clone();
            for (k, &a) in axes.iter().enumerate() {
                let a = norm_axis(a, d.len());
                let step = steps.as_ref().map(|s| s[k]).unwrap_or(1);
                out[a] = match &d[a] {
                    Dim::Known(n) => {
                        let n = *n;
                        let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
                        let (s, e) = (starts[k], ends[k]);
                        let s = if s < 0 { s + n } else { s };
                        let e = if e < 0 { e + n } else { e };
                        let len = if step > 0 {
                            let (s, e) = (clamp(s, 0, n), clamp(e, 0, n));
                            if e > s { (e - s + step - 1) / step } else { 0 }
                        } else {
                            let (s, e) = (clamp(s, -1, n - 1), clamp(e, -1, n - 1));
                            if s > e { (s - e + (-step) - 1) / (-step) } else { 0 }
                        };
                        Dim::Known(len)
                    }
                    _ => unknown(),
                };
            }
            Some(out)
        }
        // Starts or ends fed at run time: the rank is kept; with constant axes,
        // the axes not sliced keep their sizes.
        (Some(d), _, _) => {
            let axes = node.input.get(3).filter(|s| !s.is_empty()).and_then(|n| map.const_i64s(n));
            Some(match axes {
                Some(axes) => {
                    let sliced: Vec<usize> = axes.iter().map(|&a| norm_axis(a, d.len())).collect();
                    d.iter().enumerate().map(|(i, x)| if sliced.contains(&i) { unknown() } else { x.clone() }).collect()
                }
                None => unknowns(d.len()),
            })
        }
        _ => None,
    };
    vec![c.same(dims)]
}

/// The contents of a 1-D `Slice` (no steps) of a shape value.
pub(super) fn slice_values(node: &NodeProto, map: &ShapeMap) -> Option<Vec<Dim>> {
    let data = input_values(node, map, 0)?;
    let (s, e) = (map.const_i64s(node.input.get(1)?)?, map.const_i64s(node.input.get(2)?)?);
    if node.input.len() > 4 && !node.input[4].is_empty() {
        return None;
    }
    let n = data.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
    let (a, b) = (clamp(*s.first()?), clamp(*e.first()?));
    Some(data.get(a..b.max(a))?.to_vec())
}

/// `Gather`: the indices' dims in place of `axis`.
pub(super) fn gather(c: &Ctx) -> Outputs {
    let idx = c.input(1).and_then(|t| t.dims.clone());
    let dims = match (c.dims0.as_ref(), idx) {
        (Some(d), Some(idx)) => {
            let axis = norm_axis(attr_int(c.node, "axis", 0), d.len());
            let mut out: Vec<Dim> = d[..axis].to_vec();
            out.extend(idx);
            out.extend_from_slice(&d[axis + 1..]);
            Some(out)
        }
        _ => None,
    };
    vec![c.same(dims)]
}

/// The contents of a `Gather` with constant indices from a shape value.
pub(super) fn gather_values(node: &NodeProto, map: &ShapeMap) -> Option<Vec<Dim>> {
    let data = input_values(node, map, 0)?;
    let idx = map.const_i64s(node.input.get(1)?)?;
    idx.iter().map(|&i| data.get(if i < 0 { (i + data.len() as i64) as usize } else { i as usize }).cloned()).collect()
}

/// `GatherElements`: the indices' shape.
pub(super) fn gather_elements(c: &Ctx) -> Outputs {
    vec![c.same(c.input(1).and_then(|t| t.dims.clone()))]
}

/// `GatherND`: indices `[B…, Q…, k]` pick from data `[B…, K…, rest…]`: the output is
/// indices' dims without k, then data's dims after the b + k indexed ones.
pub(super) fn gather_nd(c: &Ctx) -> Outputs {
    let b = attr_int(c.node, "batch_dims", 0).max(0) as usize;
    let idx = c.input(1).and_then(|t| t.dims.clone());
    let dims = match (c.dims0.as_ref(), idx) {
        (Some(d), Some(idx)) => match idx.last() {
            Some(Dim::Known(k)) if b + (*k as usize) <= d.len() => {
                let mut out = idx[..idx.len() - 1].to_vec();
                out.extend_from_slice(&d[b + *k as usize..]);
                Some(out)
            }
            _ => None,
        },
        _ => None,
    };
    vec![c.same(dims)]
}

/// `Concat`: the sizes along `axis` added up; inputs of different ranks are an invalid
/// graph, so the shape is left unknown.
pub(super) fn concat(c: &Ctx) -> Outputs {
    let all: Option<Vec<Vec<Dim>>> = c.node.input.iter().map(|n| c.map.get(n).and_then(|t| t.dims.clone())).collect();
    let dims = all.filter(|a| !a.is_empty() && a.iter().all(|d| d.len() == a[0].len() && !d.is_empty())).map(|all| {
        let axis = norm_axis(attr_int(c.node, "axis", 0), all[0].len());
        let mut d = all[0].clone();
        d[axis] = all
            .iter()
            .try_fold(0i64, |acc, s| if let Dim::Known(v) = s[axis] { Some(acc + v) } else { None })
            .map(Dim::Known)
            .unwrap_or_else(unknown);
        d
    });
    vec![c.same(dims)]
}

/// The contents of a `Concat` of shape values, one after the other.
pub(super) fn concat_values(node: &NodeProto, map: &ShapeMap) -> Option<Vec<Dim>> {
    let mut out = Vec::new();
    for i in 0..node.input.len() {
        out.extend(input_values(node, map, i)?);
    }
    Some(out)
}

/// `Split`: the `split` sizes along `axis`, or equal parts (the last one smaller).
pub(super) fn split(c: &Ctx) -> Outputs {
    let n_out = c.n_out;
    let Some(d) = c.dims0.as_ref() else { return vec![c.same(None); n_out] };
    let axis = norm_axis(attr_int(c.node, "axis", 0), d.len());
    let sizes = c.node.input.get(1).filter(|s| !s.is_empty()).and_then(|n| c.map.const_i64s(n)).or_else(|| {
        if let Dim::Known(n) = d[axis] {
            let k = n_out as i64;
            Some((0..k).map(|i| if i < k - 1 { (n + k - 1) / k } else { n - (k - 1) * ((n + k - 1) / k) }).collect())
        } else {
            None
        }
    });
    (0..n_out)
        .map(|i| {
            let mut dd = d.clone();
            dd[axis] = sizes.as_ref().map(|s| Dim::Known(s[i])).unwrap_or_else(unknown);
            c.same(Some(dd))
        })
        .collect()
}
