//! Elementwise ops: same shape as the first input, or the inputs broadcast together
//! (numpy rules); casts; `Dropout` and its mask.

use super::{Ctx, Outputs, ValueType, unknown};
use crate::builder::{Dim, attr_int};
use crate::proto::{NodeProto, tensor_proto::DataType};

/// Broadcasts two dims (numpy rules); unknown where it cannot tell.
pub fn broadcast_dim(a: &Dim, b: &Dim) -> Dim {
    match (a, b) {
        (Dim::Known(1), x) | (x, Dim::Known(1)) => x.clone(),
        (x, y) if x == y => x.clone(),
        (Dim::Known(k), Dim::Sym(_)) | (Dim::Sym(_), Dim::Known(k)) => Dim::Known(*k),
        _ => unknown(),
    }
}

/// Broadcasts shapes (multidirectional, numpy rules).
pub fn broadcast_shapes(shapes: &[&[Dim]]) -> Vec<Dim> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    (0..rank)
        .map(|i| {
            shapes.iter().fold(Dim::Known(1), |acc, s| {
                let pad = rank - s.len();
                if i < pad { acc } else { broadcast_dim(&acc, &s[i - pad]) }
            })
        })
        .collect()
}

/// Unary ops (and `Softmax`, `CumSum`, the scatters…): the first input's type.
pub(super) fn same_shape(c: &Ctx) -> Outputs {
    vec![c.same(c.dims0.clone())]
}

/// `IsNaN`: the first input's shape, bool.
pub(super) fn is_nan(c: &Ctx) -> Outputs {
    vec![Some(ValueType { dtype: DataType::Bool, dims: c.dims0.clone() })]
}

/// The non-empty inputs' shapes broadcast together.
fn broadcast_inputs(c: &Ctx) -> Option<Vec<Dim>> {
    let all: Option<Vec<Vec<Dim>>> =
        c.node.input.iter().filter(|s| !s.is_empty()).map(|n| c.map.get(n).and_then(|t| t.dims.clone())).collect();
    all.map(|all| broadcast_shapes(&all.iter().map(|v| v.as_slice()).collect::<Vec<_>>()))
}

/// Arithmetic (`Add`, `Mul`, `Pow`, `Sum`, `PRelu`…): the inputs broadcast, the first
/// input's element type.
pub(super) fn broadcast(c: &Ctx) -> Outputs {
    vec![Some(ValueType { dtype: c.first_dtype, dims: broadcast_inputs(c) })]
}

/// Comparisons and logic (`Equal`, `Less`, `And`…): the inputs broadcast, bool.
pub(super) fn compare(c: &Ctx) -> Outputs {
    vec![Some(ValueType { dtype: DataType::Bool, dims: broadcast_inputs(c) })]
}

/// `Where(cond, x, y)`: all three broadcast, the element type of `x`.
pub(super) fn where_(c: &Ctx) -> Outputs {
    let all: Option<Vec<Vec<Dim>>> = (0..3).map(|i| c.input(i).and_then(|t| t.dims.clone())).collect();
    let dtype = c.input(1).map(|t| t.dtype).unwrap_or(DataType::Float);
    vec![Some(ValueType {
        dtype,
        dims: all.map(|a| broadcast_shapes(&a.iter().map(|v| v.as_slice()).collect::<Vec<_>>())),
    })]
}

fn dtype_from_attr(node: &NodeProto, name: &str) -> Option<DataType> {
    DataType::try_from(attr_int(node, name, 0) as i32).ok().filter(|d| *d != DataType::Undefined)
}

/// `Cast`: the element type of `to`.
pub(super) fn cast(c: &Ctx) -> Outputs {
    vec![Some(ValueType { dtype: dtype_from_attr(c.node, "to").unwrap_or(c.first_dtype), dims: c.dims0.clone() })]
}

/// `CastLike`: the element type of the second input.
pub(super) fn cast_like(c: &Ctx) -> Outputs {
    vec![Some(ValueType { dtype: c.input(1).map(|t| t.dtype).unwrap_or(c.first_dtype), dims: c.dims0.clone() })]
}

/// `Dropout`: the input's type, then a bool mask of its shape.
pub(super) fn dropout(c: &Ctx) -> Outputs {
    vec![c.same(c.dims0.clone()), Some(ValueType { dtype: DataType::Bool, dims: c.dims0.clone() })]
}
