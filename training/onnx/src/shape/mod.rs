//! Type and shape inference for the ops our models and gradient graphs use.
//!
//! Every value gets an element type and, where it can be worked out, its dims
//! (known sizes, or symbolic names such as `batch`). Ops without a rule here get the
//! element type of their first input and an unknown shape; callers that need shapes
//! (the autodiff's `unbroadcast`) fall back to computing them at run time.
//!
//! This module is the engine: it walks the graph, merges what inference works out
//! with what the file declares, and asks [`registry`] for each op's rule. The rules
//! live one file per op family beside it.

use std::collections::HashMap;

use crate::builder::{Dim, attribute, value_dims, value_dtype};
use crate::proto::{ModelProto, NodeProto, tensor_proto::DataType};
use crate::tensor::Tensor;

mod conv_pool;
mod elementwise;
mod expand;
mod indexing;
mod losses;
mod matmul;
mod norm;
mod reduce;
mod registry;
mod reshape;
mod shape_ops;
#[cfg(test)]
mod tests;

pub use elementwise::{broadcast_dim, broadcast_shapes};

/// The inferred type of one value.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueType {
    pub dtype: DataType,
    /// `None` when even the rank is unknown.
    pub dims: Option<Vec<Dim>>,
}

impl ValueType {
    /// Rank, if known.
    pub fn rank(&self) -> Option<usize> {
        self.dims.as_ref().map(|d| d.len())
    }
    /// Known sizes only (`None` if any dim is symbolic or the rank is unknown).
    pub fn known_dims(&self) -> Option<Vec<i64>> {
        self.dims.as_ref()?.iter().map(|d| if let Dim::Known(v) = d { Some(*v) } else { None }).collect()
    }
}

/// Inferred types of all values of a graph, plus the constant tensors it could read.
#[derive(Debug, Clone, Default)]
pub struct ShapeMap {
    pub types: HashMap<String, ValueType>,
    pub constants: HashMap<String, Tensor>,
    /// Contents of small int64 values computed from shapes (`Shape`, then `Gather`,
    /// `Concat`, `Unsqueeze`...), element by element, known or symbolic: what lets a
    /// `Reshape` or `Expand` to a run-time shape keep `batch` and the known sizes.
    pub shape_values: HashMap<String, Vec<Dim>>,
}

impl ShapeMap {
    /// The type of `name`, if known.
    pub fn get(&self, name: &str) -> Option<&ValueType> {
        self.types.get(name)
    }
    /// The element type of `name`, if known.
    pub fn dtype(&self, name: &str) -> Option<DataType> {
        self.types.get(name).map(|t| t.dtype)
    }
    /// The dims of `name`, if known.
    pub fn dims(&self, name: &str) -> Option<&[Dim]> {
        self.types.get(name)?.dims.as_deref()
    }
    /// An int64 constant (initializer or `Constant` node), as a vector.
    pub fn const_i64s(&self, name: &str) -> Option<Vec<i64>> {
        let t = self.constants.get(name)?;
        match &t.data {
            crate::TensorData::I64(v) => Some(v.clone()),
            crate::TensorData::I32(v) => Some(v.iter().map(|&x| x as i64).collect()),
            _ => None,
        }
    }
    /// The contents of an int64 value as dims: a constant, or a value computed from shapes.
    pub fn dim_values(&self, name: &str) -> Option<Vec<Dim>> {
        if let Some(v) = self.const_i64s(name) {
            return Some(v.into_iter().map(Dim::Known).collect());
        }
        self.shape_values.get(name).cloned()
    }

    /// Infers the node's outputs and records them (for graphs extended after inference).
    pub fn add_node(&mut self, node: &NodeProto) {
        record_constant(node, &mut self.constants);
        if let Some(v) = propagate_shape_value(node, self)
            && let Some(out) = node.output.first()
        {
            self.shape_values.insert(out.clone(), v);
        }
        let outs = infer_node(node, self);
        for (name, t) in node.output.iter().zip(outs) {
            if let Some(t) = t {
                let merged = match self.types.remove(name) {
                    Some(declared) => merge_declared(declared, t),
                    None => t,
                };
                self.types.insert(name.clone(), merged);
            }
        }
    }
}

/// Combines what the file declares about a value (`value_info`, graph outputs) with what
/// inference works out: each known size or named dim inference finds wins, and the
/// declaration fills in whatever inference leaves unknown, the rank included. The
/// declared element type wins (inference guesses it for ops it has no rule for).
pub fn merge_declared(declared: ValueType, inferred: ValueType) -> ValueType {
    let dims = match (declared.dims, inferred.dims) {
        (Some(d), Some(i)) if d.len() == i.len() => Some(
            d.into_iter()
                .zip(i)
                .map(|(d, i)| match (&d, &i) {
                    (_, Dim::Known(_)) => i,
                    (Dim::Known(_), _) => d,
                    (d, i) if is_unknown(i) && !is_unknown(d) => d.clone(),
                    _ => i,
                })
                .collect(),
        ),
        (Some(d), None) => Some(d),
        (_, i) => i,
    };
    ValueType { dtype: declared.dtype, dims }
}

/// The contents of a node's output when it computes with shapes (the op's `values`
/// rule in the [`registry`]).
fn propagate_shape_value(node: &NodeProto, map: &ShapeMap) -> Option<Vec<Dim>> {
    let rule = registry::rule(node.op_type.as_deref().unwrap_or(""))?;
    (rule.values?)(node, map)
}

/// A size inference cannot work out. Each gets a name of its own (`?1`, `?2`, …), so a
/// value copied or passed through an elementwise op keeps it: two dims with the same
/// name are the same size, which lets the autodiff's `unbroadcast` see that a residual
/// `Add` of two `[?1, ?2, D]` values broadcast nothing. `?` alone (a file's dim with no
/// name) promises nothing.
fn unknown() -> Dim {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    Dim::Sym(format!("?{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
}

/// `n` unknown sizes, each with its own name (never `vec![unknown(); n]`: that would
/// claim they are all equal).
fn unknowns(n: usize) -> Vec<Dim> {
    (0..n).map(|_| unknown()).collect()
}

/// True for a dim whose size is not known and that has no meaningful name: `?` or a
/// fresh `?N` from inference.
pub fn is_unknown(d: &Dim) -> bool {
    matches!(d, Dim::Sym(n) if n.starts_with('?'))
}

fn record_constant(node: &NodeProto, constants: &mut HashMap<String, Tensor>) {
    if node.op_type.as_deref() == Some("Constant")
        && let (Some(out), Some(t)) = (node.output.first(), attribute(node, "value").and_then(|a| a.t.as_ref()))
        && let Ok(t) = Tensor::from_proto(t)
    {
        constants.insert(out.clone(), t);
    }
}

/// Infers types for every value of `model`'s graph, keeping the shapes the file declares
/// where inference knows less.
pub fn infer_shapes(model: &ModelProto) -> ShapeMap {
    let mut map = ShapeMap::default();
    let Some(graph) = model.graph.as_ref() else { return map };
    for t in &graph.initializer {
        if let (Some(name), Ok(tensor)) = (t.name.as_ref(), Tensor::from_proto(t)) {
            let dtype = tensor.data_type();
            map.types
                .insert(name.clone(), ValueType { dtype, dims: Some(t.dims.iter().map(|&d| Dim::Known(d)).collect()) });
            map.constants.insert(name.clone(), tensor);
        }
    }
    // Declared types first; inference refines them node by node (see `merge_declared`).
    for v in graph.input.iter().chain(graph.value_info.iter()).chain(graph.output.iter()) {
        if let (Some(name), Some(dtype)) = (v.name.as_ref(), value_dtype(v)) {
            map.types.insert(name.clone(), ValueType { dtype, dims: value_dims(v) });
        }
    }
    for node in &graph.node {
        map.add_node(node);
    }
    map
}

/// What a shape rule sees of one node: the node, the types recorded so far, and the
/// first input's type, which most rules start from.
pub(super) struct Ctx<'a> {
    pub node: &'a NodeProto,
    pub map: &'a ShapeMap,
    pub op: &'a str,
    /// The first input's element type (`Float` when unknown): most outputs keep it.
    pub first_dtype: DataType,
    /// The first input's dims, if known.
    pub dims0: Option<Vec<Dim>>,
    /// How many outputs the node has.
    pub n_out: usize,
}

impl<'a> Ctx<'a> {
    /// The type of input `i`, if present and known.
    pub fn input(&self, i: usize) -> Option<&'a ValueType> {
        self.node.input.get(i).filter(|s| !s.is_empty()).and_then(|n| self.map.get(n))
    }
    /// An output of the first input's element type with `dims`.
    pub fn same(&self, dims: Option<Vec<Dim>>) -> Option<ValueType> {
        Some(ValueType { dtype: self.first_dtype, dims })
    }
    /// The first input's rank, if known.
    pub fn rank0(&self) -> Option<usize> {
        self.dims0.as_ref().map(|d| d.len())
    }
}

/// The types a rule infers for a node's outputs, in order (missing ones unknown).
type Outputs = Vec<Option<ValueType>>;

/// Infers the outputs of one node from the types recorded so far.
pub fn infer_node(node: &NodeProto, map: &ShapeMap) -> Vec<Option<ValueType>> {
    let op = node.op_type.as_deref().unwrap_or("");
    let first = node.input.first().filter(|s| !s.is_empty()).and_then(|n| map.get(n));
    let ctx = Ctx {
        node,
        map,
        op,
        first_dtype: first.map(|t| t.dtype).unwrap_or(DataType::Float),
        dims0: first.and_then(|t| t.dims.clone()),
        n_out: node.output.len(),
    };
    let mut out = match registry::rule(op) {
        Some(rule) => (rule.outputs)(&ctx),
        // No rule: the first input's element type, shape unknown.
        None => vec![ctx.same(None)],
    };
    out.resize(ctx.n_out, None);
    out
}

/// `axis` counted from the end when negative.
fn norm_axis(axis: i64, rank: usize) -> usize {
    if axis < 0 { (axis + rank as i64).max(0) as usize } else { axis as usize }
}

/// The contents of input `i` as dims (a constant or a value computed from shapes).
fn input_values(node: &NodeProto, map: &ShapeMap, i: usize) -> Option<Vec<Dim>> {
    node.input.get(i).filter(|s| !s.is_empty()).and_then(|n| map.dim_values(n))
}

/// The `values` rule of ops that pass their first input's contents through
/// (`Identity`, `Squeeze`, `Unsqueeze`, `Cast`).
fn first_input_values(node: &NodeProto, map: &ShapeMap) -> Option<Vec<Dim>> {
    input_values(node, map, 0)
}
