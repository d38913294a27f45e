//! Normalization layers: `BatchNormalization` and `LayerNormalization` with their
//! optional statistics outputs.

use super::{Ctx, Outputs, ValueType, norm_axis};
use crate::builder::{Dim, attr_int};
use crate::proto::tensor_proto::DataType;

/// `BatchNormalization`: the input's type; running statistics shaped like the scale.
pub(super) fn batch_norm(c: &Ctx) -> Outputs {
    let scale = c.input(1).and_then(|t| t.dims.clone());
    let mut v = vec![c.same(c.dims0.clone())];
    for _ in 1..c.n_out {
        v.push(Some(ValueType { dtype: c.first_dtype, dims: scale.clone() }));
    }
    v
}

/// `LayerNormalization`: the input's type; mean and inverse std dev (float) with the
/// normalized axes (from `axis` on) kept as 1.
pub(super) fn layer_norm(c: &Ctx) -> Outputs {
    let mut v = vec![c.same(c.dims0.clone())];
    if c.n_out > 1 {
        let axis = attr_int(c.node, "axis", -1);
        let stat = c.dims0.as_ref().map(|d| {
            let a = norm_axis(axis, d.len());
            d.iter().enumerate().map(|(i, x)| if i >= a { Dim::Known(1) } else { x.clone() }).collect()
        });
        v.push(Some(ValueType { dtype: DataType::Float, dims: stat.clone() }));
        v.push(Some(ValueType { dtype: DataType::Float, dims: stat }));
    }
    v
}
