//! Ops that make shapes or tensors from shapes and attributes: `Shape`, `Size`,
//! `NonZero`, `Constant`, `ConstantOfShape`, `Range`.

use super::{Ctx, Outputs, ShapeMap, ValueType, unknown, unknowns};
use crate::builder::{Dim, attr_int, attribute};
use crate::proto::{NodeProto, tensor_proto::DataType};
use crate::tensor::Tensor;

/// `Shape`: int64 of the input's rank, or of the `start`..`end` range of its dims
/// (opset 15), clamped to [0, rank].
pub(super) fn shape(c: &Ctx) -> Outputs {
    let len = c.rank0().map(|r| {
        let r = r as i64;
        let at = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r);
        (at(attr_int(c.node, "end", r)) - at(attr_int(c.node, "start", 0))).max(0)
    });
    vec![Some(ValueType { dtype: DataType::Int64, dims: len.map(|n| vec![Dim::Known(n)]) })]
}

/// The contents of `Shape`'s output: the input's dims, known or named.
pub(super) fn shape_values(node: &NodeProto, map: &ShapeMap) -> Option<Vec<Dim>> {
    let d = map.dims(node.input.first()?)?.to_vec();
    let r = d.len() as i64;
    let norm = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) } as usize;
    let start = norm(attr_int(node, "start", 0));
    let end = attribute(node, "end").and_then(|a| a.i).map(norm).unwrap_or(d.len());
    Some(d.get(start..end.max(start))?.to_vec())
}

/// `Size`: an int64 scalar.
pub(super) fn size(_: &Ctx) -> Outputs {
    vec![Some(ValueType { dtype: DataType::Int64, dims: Some(vec![]) })]
}

/// `NonZero`: int64 `[rank, count]`, the count unknown.
pub(super) fn non_zero(c: &Ctx) -> Outputs {
    vec![Some(ValueType { dtype: DataType::Int64, dims: c.rank0().map(|r| vec![Dim::Known(r as i64), unknown()]) })]
}

/// `Constant`: the type of its `value` tensor.
pub(super) fn constant(c: &Ctx) -> Outputs {
    vec![
        attribute(c.node, "value")
            .and_then(|a| a.t.as_ref())
            .and_then(|t| Tensor::from_proto(t).ok())
            .map(|t| ValueType { dtype: t.data_type(), dims: Some(t.dims.iter().map(|&d| Dim::Known(d)).collect()) }),
    ]
}

/// `ConstantOfShape`: the element type of `value` (float by default), the shape its
/// input holds, or as many unknown sizes as the input is long.
pub(super) fn constant_of_shape(c: &Ctx) -> Outputs {
    let dtype = attribute(c.node, "value")
        .and_then(|a| a.t.as_ref())
        .and_then(|t| t.data_type)
        .and_then(|d| DataType::try_from(d).ok())
        .unwrap_or(DataType::Float);
    let dims = c.node.input.first().and_then(|n| c.map.dim_values(n)).or_else(|| {
        c.input(0).and_then(|t| t.known_dims()).map(|d| unknowns(d.first().copied().unwrap_or(0) as usize))
    });
    vec![Some(ValueType { dtype, dims })]
}

/// `Range`: 1-D of unknown length.
pub(super) fn range(c: &Ctx) -> Outputs {
    vec![Some(ValueType { dtype: c.first_dtype, dims: Some(vec![unknown()]) })]
}
