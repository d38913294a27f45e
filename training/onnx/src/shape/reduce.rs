//! Reductions (`ReduceSum`, `ReduceMean`…, axes as attribute or input) and
//! `ArgMax`/`ArgMin`.

use super::{Ctx, Outputs, ValueType, norm_axis};
use crate::builder::{Dim, attr_int, attr_ints};
use crate::proto::tensor_proto::DataType;

/// `Reduce*`: the first input's element type, the reduced axes dropped or kept as 1.
pub(super) fn reduce(c: &Ctx) -> Outputs {
    let dims = c.dims0.as_ref().and_then(|d| {
        let axes = attr_ints(c.node, "axes").filter(|a| !a.is_empty()).or_else(|| match c.node.input.get(1) {
            Some(n) if !n.is_empty() => c.map.const_i64s(n),
            _ => Some(vec![]),
        })?;
        reduced(c, d, axes)
    });
    vec![Some(ValueType { dtype: c.first_dtype, dims })]
}

/// `ArgMax`/`ArgMin`: int64 indices along `axis`.
pub(super) fn arg_reduce(c: &Ctx) -> Outputs {
    let dims = c.dims0.as_ref().and_then(|d| reduced(c, d, vec![attr_int(c.node, "axis", 0)]));
    vec![Some(ValueType { dtype: DataType::Int64, dims })]
}

/// `d` reduced over `axes` (all of them when empty, unless `noop_with_empty_axes`),
/// the reduced ones kept as 1 with `keepdims`.
fn reduced(c: &Ctx, d: &[Dim], axes: Vec<i64>) -> Option<Vec<Dim>> {
    let keep = attr_int(c.node, "keepdims", 1) != 0;
    let noop = attr_int(c.node, "noop_with_empty_axes", 0) != 0;
    let axes: Vec<usize> = if axes.is_empty() {
        if noop { return Some(d.to_vec()) } else { (0..d.len()).collect() }
    } else {
        axes.iter().map(|&a| norm_axis(a, d.len())).collect()
    };
    Some(
        d.iter()
            .enumerate()
            .filter_map(
                |(i, x)| {
                    if axes.contains(&i) { if keep { Some(Dim::Known(1)) } else { None } } else { Some(x.clone()) }
                },
            )
            .collect(),
    )
}
