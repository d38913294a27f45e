//! Type and shape inference for the ops our models and gradient graphs use.
//!
//! Every value gets an element type and, where it can be worked out, its dims
//! (known sizes, or symbolic names such as `batch`). Ops without a rule here get the
//! element type of their first input and an unknown shape; callers that need shapes
//! (the autodiff's `unbroadcast`) fall back to computing them at run time.

use std::collections::HashMap;

use crate::builder::{Dim, attr_int, attr_ints, attribute, value_dims, value_dtype};
use crate::proto::{ModelProto, NodeProto, tensor_proto::DataType};
use crate::tensor::Tensor;

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
        if let Some(v) = propagate_shape_value(node, self) {
            if let Some(out) = node.output.first() {
                self.shape_values.insert(out.clone(), v);
            }
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

/// The contents of a node's output when it computes with shapes.
fn propagate_shape_value(node: &NodeProto, map: &ShapeMap) -> Option<Vec<Dim>> {
    let op = node.op_type.as_deref().unwrap_or("");
    let arg = |i: usize| node.input.get(i).filter(|s| !s.is_empty()).and_then(|n| map.dim_values(n));
    match op {
        "Shape" => {
            let d = map.dims(node.input.first()?)?.to_vec();
            let r = d.len() as i64;
            let norm = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) } as usize;
            let start = norm(attr_int(node, "start", 0));
            let end = crate::builder::attribute(node, "end").and_then(|a| a.i).map(norm).unwrap_or(d.len());
            Some(d.get(start..end.max(start))?.to_vec())
        }
        "Identity" | "Squeeze" | "Unsqueeze" | "Cast" => arg(0),
        "Concat" => {
            let mut out = Vec::new();
            for i in 0..node.input.len() {
                out.extend(arg(i)?);
            }
            Some(out)
        }
        "Gather" => {
            let data = arg(0)?;
            let idx = map.const_i64s(node.input.get(1)?)?;
            idx.iter()
                .map(|&i| data.get(if i < 0 { (i + data.len() as i64) as usize } else { i as usize }).cloned())
                .collect()
        }
        "Slice" => {
            let data = arg(0)?;
            let (s, e) = (map.const_i64s(node.input.get(1)?)?, map.const_i64s(node.input.get(2)?)?);
            if node.input.len() > 4 && !node.input[4].is_empty() {
                return None;
            }
            let n = data.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
            let (a, b) = (clamp(*s.first()?), clamp(*e.first()?));
            Some(data.get(a..b.max(a))?.to_vec())
        }
        _ => None,
    }
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
    if node.op_type.as_deref() == Some("Constant") {
        if let (Some(out), Some(t)) = (node.output.first(), attribute(node, "value").and_then(|a| a.t.as_ref())) {
            if let Ok(t) = Tensor::from_proto(t) {
                constants.insert(out.clone(), t);
            }
        }
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

fn norm_axis(axis: i64, rank: usize) -> usize {
    if axis < 0 { (axis + rank as i64).max(0) as usize } else { axis as usize }
}

fn dtype_from_attr(node: &NodeProto, name: &str) -> Option<DataType> {
    DataType::try_from(attr_int(node, name, 0) as i32).ok().filter(|d| *d != DataType::Undefined)
}

/// Output size of a sliding window (conv, pooling) along one axis.
fn window_out(input: &Dim, kernel: i64, stride: i64, pad_total: i64, dilation: i64, ceil: bool) -> Dim {
    match input {
        Dim::Known(n) => {
            let eff = dilation * (kernel - 1) + 1;
            let span = n + pad_total - eff;
            let out = if ceil { (span + stride - 1) / stride + 1 } else { span / stride + 1 };
            Dim::Known(out)
        }
        _ => unknown(),
    }
}

/// Infers the outputs of one node from the types recorded so far.
pub fn infer_node(node: &NodeProto, map: &ShapeMap) -> Vec<Option<ValueType>> {
    let op = node.op_type.as_deref().unwrap_or("");
    let input = |i: usize| node.input.get(i).filter(|s| !s.is_empty()).and_then(|n| map.get(n));
    let first_dtype = input(0).map(|t| t.dtype).unwrap_or(DataType::Float);
    let dims0 = input(0).and_then(|t| t.dims.clone());
    let same = |dims: Option<Vec<Dim>>| Some(ValueType { dtype: first_dtype, dims });
    let n_out = node.output.len();
    let mut out: Vec<Option<ValueType>> = vec![None; n_out];
    let rank0 = dims0.as_ref().map(|d| d.len());

    let single = match op {
        "Identity" | "Neg" | "Abs" | "Exp" | "Log" | "Sqrt" | "Reciprocal" | "Tanh" | "Sigmoid" | "Erf" | "Relu"
        | "LeakyRelu" | "Gelu" | "Softmax" | "LogSoftmax" | "Clip" | "Sign" | "Floor" | "Ceil" | "Round" | "Sin"
        | "Cos" | "Elu" | "Softplus" | "HardSigmoid" | "HardSwish" | "IsNaN" | "LpNormalization" | "CumSum"
        | "Trilu" | "ScatterElements" | "ScatterND" => {
            let mut t = same(dims0.clone());
            if op == "IsNaN" {
                t.as_mut().expect("set").dtype = DataType::Bool;
            }
            t
        }
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Min" | "Max" | "Sum" | "Mean" | "Equal" | "Less" | "Greater"
        | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or" | "Xor" | "Mod" | "PRelu" => {
            let all: Option<Vec<Vec<Dim>>> =
                node.input.iter().filter(|s| !s.is_empty()).map(|n| map.get(n).and_then(|t| t.dims.clone())).collect();
            let dims = all.map(|all| broadcast_shapes(&all.iter().map(|v| v.as_slice()).collect::<Vec<_>>()));
            let dtype =
                if matches!(op, "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or" | "Xor")
                {
                    DataType::Bool
                } else {
                    first_dtype
                };
            Some(ValueType { dtype, dims })
        }
        "Not" => same(dims0.clone()),
        "Where" => {
            let all: Option<Vec<Vec<Dim>>> = (0..3).map(|i| input(i).and_then(|t| t.dims.clone())).collect();
            let dtype = input(1).map(|t| t.dtype).unwrap_or(DataType::Float);
            Some(ValueType {
                dtype,
                dims: all.map(|a| broadcast_shapes(&a.iter().map(|v| v.as_slice()).collect::<Vec<_>>())),
            })
        }
        "Cast" => Some(ValueType { dtype: dtype_from_attr(node, "to").unwrap_or(first_dtype), dims: dims0.clone() }),
        "CastLike" => Some(ValueType { dtype: input(1).map(|t| t.dtype).unwrap_or(first_dtype), dims: dims0.clone() }),
        "Shape" => {
            // Optional start/end (opset 15) select a range of the dims, clamped to [0, rank].
            let len = rank0.map(|r| {
                let r = r as i64;
                let at = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r);
                (at(attr_int(node, "end", r)) - at(attr_int(node, "start", 0))).max(0)
            });
            Some(ValueType { dtype: DataType::Int64, dims: len.map(|n| vec![Dim::Known(n)]) })
        }
        "Size" => Some(ValueType { dtype: DataType::Int64, dims: Some(vec![]) }),
        "NonZero" => {
            Some(ValueType { dtype: DataType::Int64, dims: rank0.map(|r| vec![Dim::Known(r as i64), unknown()]) })
        }
        "Constant" => attribute(node, "value")
            .and_then(|a| a.t.as_ref())
            .and_then(|t| Tensor::from_proto(t).ok())
            .map(|t| ValueType { dtype: t.data_type(), dims: Some(t.dims.iter().map(|&d| Dim::Known(d)).collect()) }),
        "ConstantOfShape" => {
            let dtype = attribute(node, "value")
                .and_then(|a| a.t.as_ref())
                .and_then(|t| t.data_type)
                .and_then(|d| DataType::try_from(d).ok())
                .unwrap_or(DataType::Float);
            let dims = node.input.first().and_then(|n| map.dim_values(n)).or_else(|| {
                input(0).and_then(|t| t.known_dims()).map(|d| unknowns(d.first().copied().unwrap_or(0) as usize))
            });
            Some(ValueType { dtype, dims })
        }
        "MatMul" => {
            let a = input(0).and_then(|t| t.dims.clone());
            let b = input(1).and_then(|t| t.dims.clone());
            let dims = match (a, b) {
                (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => {
                    let (a2, a_vec) =
                        if a.len() == 1 { (vec![Dim::Known(1), a[0].clone()], true) } else { (a.clone(), false) };
                    let (b2, b_vec) =
                        if b.len() == 1 { (vec![b[0].clone(), Dim::Known(1)], true) } else { (b.clone(), false) };
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
            same(dims)
        }
        "Gemm" => {
            let a = input(0).and_then(|t| t.dims.clone());
            let b = input(1).and_then(|t| t.dims.clone());
            let dims = match (a, b) {
                (Some(a), Some(b)) if a.len() == 2 && b.len() == 2 => {
                    let m = if attr_int(node, "transA", 0) != 0 { a[1].clone() } else { a[0].clone() };
                    let n = if attr_int(node, "transB", 0) != 0 { b[0].clone() } else { b[1].clone() };
                    Some(vec![m, n])
                }
                _ => None,
            };
            same(dims)
        }
        "Transpose" => {
            let dims = dims0.as_ref().map(|d| {
                let perm = attr_ints(node, "perm").unwrap_or_else(|| (0..d.len() as i64).rev().collect());
                perm.iter().map(|&p| d[p as usize].clone()).collect()
            });
            same(dims)
        }
        "Reshape"
            if node.input.get(1).and_then(|n| map.const_i64s(n)).is_none()
                && node.input.get(1).and_then(|n| map.dim_values(n)).is_some() =>
        {
            // A shape computed from other shapes: 0 copies, -1 is worked out where it can be.
            let target = node.input.get(1).and_then(|n| map.dim_values(n)).expect("checked");
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
            same(Some(dims))
        }
        "Reshape" => {
            let target = node.input.get(1).and_then(|n| map.const_i64s(n));
            if target.is_none() {
                // A shape computed at run time: its length is the output's rank.
                let rank = input(1).and_then(|t| t.known_dims()).and_then(|d| d.first().copied());
                return pad_outputs(vec![same(rank.map(|r| unknowns(r as usize)))], n_out);
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
            same(dims)
        }
        "Flatten" => {
            let dims = dims0.as_ref().map(|d| {
                let axis = norm_axis(attr_int(node, "axis", 1), d.len());
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
            same(dims)
        }
        "Squeeze" => {
            let axes = node.input.get(1).and_then(|n| map.const_i64s(n));
            let dims = dims0.as_ref().and_then(|d| match axes {
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
            same(dims)
        }
        "Unsqueeze" => {
            let axes = node.input.get(1).and_then(|n| map.const_i64s(n));
            let dims = match (dims0.as_ref(), axes) {
                (Some(d), Some(ax)) => {
                    let r = d.len() + ax.len();
                    let mut ax: Vec<usize> = ax.iter().map(|&a| norm_axis(a, r)).collect();
                    ax.sort();
                    let mut it = d.iter();
                    Some(
                        (0..r)
                            .map(|i| {
                                if ax.contains(&i) { Dim::Known(1) } else { it.next().cloned().unwrap_or_else(unknown) }
                            })
                            .collect(),
                    )
                }
                _ => None,
            };
            same(dims)
        }
        "Concat" => {
            let all: Option<Vec<Vec<Dim>>> =
                node.input.iter().map(|n| map.get(n).and_then(|t| t.dims.clone())).collect();
            // Inputs of different ranks are an invalid graph: leave the shape unknown.
            let dims =
                all.filter(|a| !a.is_empty() && a.iter().all(|d| d.len() == a[0].len() && !d.is_empty())).map(|all| {
                    let axis = norm_axis(attr_int(node, "axis", 0), all[0].len());
                    let mut d = all[0].clone();
                    d[axis] = all
                        .iter()
                        .try_fold(0i64, |acc, s| if let Dim::Known(v) = s[axis] { Some(acc + v) } else { None })
                        .map(Dim::Known)
                        .unwrap_or_else(unknown);
                    d
                });
            same(dims)
        }
        "Expand" => {
            let shape = node.input.get(1).and_then(|n| map.dim_values(n));
            let dims = match (dims0.as_ref(), shape) {
                (Some(d), Some(s)) => Some(broadcast_shapes(&[d, &s])),
                // A shape fed at run time (not traced from shapes): its length gives the rank,
                // and every dim of the input other than 1 is kept (the shape may only have 1
                // or that size there).
                (Some(d), None) => input(1).and_then(|t| t.known_dims()).and_then(|k| k.first().copied()).map(|k| {
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
            same(dims)
        }
        "Tile" => {
            let reps = node.input.get(1).and_then(|n| map.const_i64s(n));
            let dims = match (dims0.as_ref(), reps) {
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
            same(dims)
        }
        "Slice" => {
            let starts = node.input.get(1).and_then(|n| map.const_i64s(n));
            let ends = node.input.get(2).and_then(|n| map.const_i64s(n));
            let dims = match (dims0.as_ref(), starts, ends) {
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
                            d.iter()
                                .enumerate()
                                .map(|(i, x)| if sliced.contains(&i) { unknown() } else { x.clone() })
                                .collect()
                        }
                        None => unknowns(d.len()),
                    })
                }
                _ => None,
            };
            same(dims)
        }
        "GatherElements" => same(input(1).and_then(|t| t.dims.clone())),
        "Gather" => {
            let idx = input(1).and_then(|t| t.dims.clone());
            let dims = match (dims0.as_ref(), idx) {
                (Some(d), Some(idx)) => {
                    let axis = norm_axis(attr_int(node, "axis", 0), d.len());
                    let mut out: Vec<Dim> = d[..axis].to_vec();
                    out.extend(idx);
                    out.extend_from_slice(&d[axis + 1..]);
                    Some(out)
                }
                _ => None,
            };
            same(dims)
        }
        "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceL2" | "ReduceProd" | "ReduceLogSumExp"
        | "ReduceSumSquare" | "ArgMax" | "ArgMin" => {
            let dims = dims0.as_ref().and_then(|d| {
                let keep = attr_int(node, "keepdims", 1) != 0;
                let axes = if matches!(op, "ArgMax" | "ArgMin") {
                    Some(vec![attr_int(node, "axis", 0)])
                } else {
                    attr_ints(node, "axes").filter(|a| !a.is_empty()).or_else(|| match node.input.get(1) {
                        Some(n) if !n.is_empty() => map.const_i64s(n),
                        _ => Some(vec![]),
                    })
                }?;
                let noop = attr_int(node, "noop_with_empty_axes", 0) != 0;
                let axes: Vec<usize> = if axes.is_empty() {
                    if noop { return Some(d.clone()) } else { (0..d.len()).collect() }
                } else {
                    axes.iter().map(|&a| norm_axis(a, d.len())).collect()
                };
                Some(
                    d.iter()
                        .enumerate()
                        .filter_map(|(i, x)| {
                            if axes.contains(&i) {
                                if keep { Some(Dim::Known(1)) } else { None }
                            } else {
                                Some(x.clone())
                            }
                        })
                        .collect(),
                )
            });
            let dtype = if matches!(op, "ArgMax" | "ArgMin") { DataType::Int64 } else { first_dtype };
            Some(ValueType { dtype, dims })
        }
        "Conv" | "MaxPool" | "AveragePool" => {
            let w = input(1).and_then(|t| t.dims.clone());
            let dims = dims0.as_ref().filter(|d| d.len() >= 3).map(|d| {
                let spatial = d.len() - 2;
                let kernel: Vec<i64> = attr_ints(node, "kernel_shape").unwrap_or_else(|| {
                    w.as_ref()
                        .map(|w| w[2..].iter().map(|x| if let Dim::Known(v) = x { *v } else { 1 }).collect())
                        .unwrap_or_else(|| vec![1; spatial])
                });
                let strides = attr_ints(node, "strides").unwrap_or_else(|| vec![1; spatial]);
                let dil = attr_ints(node, "dilations").unwrap_or_else(|| vec![1; spatial]);
                let pads = attr_ints(node, "pads").unwrap_or_else(|| vec![0; 2 * spatial]);
                let ceil = attr_int(node, "ceil_mode", 0) != 0;
                let auto_pad = crate::builder::attr_str(node, "auto_pad").unwrap_or_default();
                let mut out = vec![d[0].clone()];
                out.push(if op == "Conv" {
                    w.as_ref().map(|w| w[0].clone()).unwrap_or_else(unknown)
                } else {
                    d[1].clone()
                });
                for i in 0..spatial {
                    out.push(if auto_pad.starts_with("SAME") {
                        match &d[2 + i] {
                            Dim::Known(n) => Dim::Known((n + strides[i] - 1) / strides[i]),
                            _ => unknown(),
                        }
                    } else {
                        window_out(&d[2 + i], kernel[i], strides[i], pads[i] + pads[i + spatial], dil[i], ceil)
                    });
                }
                out
            });
            let mut v = vec![same(dims)];
            if op == "MaxPool" && n_out > 1 {
                v.push(v[0].clone().map(|t| ValueType { dtype: DataType::Int64, ..t }));
            }
            return pad_outputs(v, n_out);
        }
        "ConvTranspose" => {
            // out = stride·(in − 1) + output_padding + dilation·(k − 1) + 1 − pads, or
            // `output_shape` when given; channels = W[1]·group.
            let known = |x: &Dim| if let Dim::Known(v) = x { Some(*v) } else { None };
            let w = input(1).and_then(|t| t.dims.clone());
            let dims = dims0.as_ref().filter(|d| d.len() >= 3).map(|d| {
                let spatial = d.len() - 2;
                let kernel: Option<Vec<i64>> = attr_ints(node, "kernel_shape").or_else(|| {
                    w.as_ref().filter(|w| w.len() == d.len()).and_then(|w| w[2..].iter().map(known).collect())
                });
                let strides = attr_ints(node, "strides").unwrap_or_else(|| vec![1; spatial]);
                let dil = attr_ints(node, "dilations").unwrap_or_else(|| vec![1; spatial]);
                let out_pad = attr_ints(node, "output_padding").unwrap_or_else(|| vec![0; spatial]);
                let auto_pad = crate::builder::attr_str(node, "auto_pad").unwrap_or_default();
                let pads = match attr_ints(node, "pads") {
                    Some(p) if auto_pad.is_empty() || auto_pad == "NOTSET" => p,
                    _ => vec![0; 2 * spatial],
                };
                let explicit = attr_ints(node, "output_shape");
                let group = attr_int(node, "group", 1);
                let mut out = vec![d[0].clone()];
                out.push(
                    w.as_ref()
                        .and_then(|w| w.get(1))
                        .and_then(known)
                        .map(|c| Dim::Known(c * group))
                        .unwrap_or_else(unknown),
                );
                for i in 0..spatial {
                    out.push(match (&explicit, known(&d[2 + i]), &kernel) {
                        (Some(s), _, _) => Dim::Known(s[s.len() - spatial + i]),
                        (None, Some(n), _) if auto_pad.starts_with("SAME") => Dim::Known(n * strides[i]),
                        (None, Some(n), Some(k)) => Dim::Known(
                            strides[i] * (n - 1) + out_pad[i] + dil[i] * (k[i] - 1) + 1 - pads[i] - pads[i + spatial],
                        ),
                        _ => unknown(),
                    });
                }
                out
            });
            same(dims)
        }
        "GlobalAveragePool" | "GlobalMaxPool" => same(
            dims0
                .as_ref()
                .map(|d| d.iter().enumerate().map(|(i, x)| if i >= 2 { Dim::Known(1) } else { x.clone() }).collect()),
        ),
        "BatchNormalization" => {
            let c = input(1).and_then(|t| t.dims.clone());
            let mut v = vec![same(dims0.clone())];
            for _ in 1..n_out {
                v.push(Some(ValueType { dtype: first_dtype, dims: c.clone() }));
            }
            return pad_outputs(v, n_out);
        }
        "LayerNormalization" => {
            let mut v = vec![same(dims0.clone())];
            if n_out > 1 {
                let axis = attr_int(node, "axis", -1);
                let stat = dims0.as_ref().map(|d| {
                    let a = norm_axis(axis, d.len());
                    d.iter().enumerate().map(|(i, x)| if i >= a { Dim::Known(1) } else { x.clone() }).collect()
                });
                v.push(Some(ValueType { dtype: DataType::Float, dims: stat.clone() }));
                v.push(Some(ValueType { dtype: DataType::Float, dims: stat }));
            }
            return pad_outputs(v, n_out);
        }
        "Dropout" => {
            let v = vec![same(dims0.clone()), Some(ValueType { dtype: DataType::Bool, dims: dims0.clone() })];
            return pad_outputs(v, n_out);
        }
        "Split" => {
            let Some(d) = dims0.as_ref() else { return vec![same(None); n_out] };
            let axis = norm_axis(attr_int(node, "axis", 0), d.len());
            let sizes = node.input.get(1).filter(|s| !s.is_empty()).and_then(|n| map.const_i64s(n)).or_else(|| {
                if let Dim::Known(n) = d[axis] {
                    let k = n_out as i64;
                    Some(
                        (0..k)
                            .map(|i| if i < k - 1 { (n + k - 1) / k } else { n - (k - 1) * ((n + k - 1) / k) })
                            .collect(),
                    )
                } else {
                    None
                }
            });
            return (0..n_out)
                .map(|i| {
                    let mut dd = d.clone();
                    dd[axis] = sizes.as_ref().map(|s| Dim::Known(s[i])).unwrap_or_else(unknown);
                    same(Some(dd))
                })
                .collect();
        }
        "Pad" => {
            let pads = node.input.get(1).and_then(|n| map.const_i64s(n));
            // With an `axes` input (opset 18), spread the pads over all axes first.
            let pads = match (pads, node.input.get(3).filter(|s| !s.is_empty()), rank0) {
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
            let dims = match (dims0.as_ref(), pads) {
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
            same(dims)
        }
        "Range" => Some(ValueType { dtype: first_dtype, dims: Some(vec![unknown()]) }),
        "SoftmaxCrossEntropyLoss" | "NegativeLogLikelihoodLoss" => {
            // The loss: [N, d…] without reduction, else a scalar; then the log-probabilities.
            let none = crate::builder::attr_str(node, "reduction").as_deref() == Some("none");
            let loss = if none {
                dims0.as_ref().filter(|d| d.len() >= 2).map(|d| {
                    let mut d = d.clone();
                    d.remove(1);
                    d
                })
            } else {
                Some(vec![])
            };
            return pad_outputs(vec![same(loss), same(dims0.clone())], n_out);
        }
        "GatherND" => {
            // indices [B…, Q…, k] pick from data [B…, K…, rest…]: the output is
            // indices' dims without k, then data's dims after the b + k indexed ones.
            let b = attr_int(node, "batch_dims", 0).max(0) as usize;
            let idx = input(1).and_then(|t| t.dims.clone());
            let dims = match (dims0.as_ref(), idx) {
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
            same(dims)
        }
        _ => same(None),
    };
    if n_out > 0 {
        out[0] = single;
    }
    out
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

fn pad_outputs(mut v: Vec<Option<ValueType>>, n: usize) -> Vec<Option<ValueType>> {
    v.resize(n, None);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attr, GraphBuilder, dims};

    #[test]
    fn infers_a_small_cnn_and_mlp() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DataType::Float, &dims!["batch", 3, 32, 32]);
        let w = b.initializer("w", &Tensor::f32(vec![8, 3, 3, 3], vec![0.0; 216]));
        let c = b.op("Conv", &[&x, &w], &[("strides", Attr::Ints(vec![2, 2])), ("pads", Attr::Ints(vec![1, 1, 1, 1]))]);
        let p =
            b.op("MaxPool", &[&c], &[("kernel_shape", Attr::Ints(vec![2, 2])), ("strides", Attr::Ints(vec![2, 2]))]);
        let g = b.op("GlobalAveragePool", &[&p], &[]);
        let f = b.op("Flatten", &[&g], &[]);
        let shape = b.const_i64s("shape", &[0, 2, -1]);
        let r = b.op("Reshape", &[&f, &shape], &[]);
        let m = b.initializer("m", &Tensor::f32(vec![4, 5], vec![0.0; 20]));
        let y = b.op("MatMul", &[&r, &m], &[]);
        let axes = b.const_i64s("axes", &[1]);
        let s = b.op("ReduceSum", &[&y, &axes], &[("keepdims", Attr::Int(0))]);
        let cast = b.op("Cast", &[&s], &[("to", Attr::Int(DataType::Double as i64))]);
        let model = b.build();
        let map = infer_shapes(&model);
        assert_eq!(map.dims(&c).unwrap(), &dims!["batch", 8, 16, 16][..]);
        assert_eq!(map.dims(&p).unwrap(), &dims!["batch", 8, 8, 8][..]);
        assert_eq!(map.dims(&f).unwrap(), &dims!["batch", 8][..]);
        assert_eq!(map.dims(&r).unwrap(), &dims!["batch", 2, 4][..]);
        assert_eq!(map.dims(&y).unwrap(), &dims!["batch", 2, 5][..]);
        assert_eq!(map.dims(&s).unwrap(), &dims!["batch", 5][..]);
        assert_eq!(map.dtype(&cast), Some(DataType::Double));
    }

    #[test]
    fn run_time_shapes_keep_ranks() {
        // Shape's start/end set its length; shapes fed at run time (not traced from
        // other shapes) still give Expand, Reshape and Slice their ranks.
        let mut b = GraphBuilder::new("g");
        let tokens = b.input("tokens", DataType::Float, &dims!["batch", 4, 8]);
        let target = b.input("target", DataType::Int64, &dims![3]);
        let cls = b.initializer("cls", &Tensor::f32(vec![1, 1, 8], vec![0.0; 8]));
        let n = b.op("Shape", &[&tokens], &[("start", Attr::Int(0)), ("end", Attr::Int(1))]);
        let tail = b.op("Shape", &[&tokens], &[("start", Attr::Int(-2))]);
        let e = b.op("Expand", &[&cls, &target], &[]);
        let r = b.op("Reshape", &[&tokens, &target], &[]);
        let s = b.op("Slice", &[&tokens, &n, &n], &[]);
        let map = infer_shapes(&b.build());
        assert_eq!(map.dims(&n).unwrap(), &dims![1][..]);
        assert_eq!(map.dims(&tail).unwrap(), &dims![2][..]);
        let e = map.dims(&e).unwrap();
        assert!(is_unknown(&e[0]) && is_unknown(&e[1]) && e[0] != e[1], "{e:?}");
        // Unknown sizes of one value are not claimed equal.
        let sd = map.dims(&s).unwrap();
        assert!(sd.iter().all(is_unknown) && sd[0] != sd[1] && sd[1] != sd[2], "{sd:?}");
        assert_eq!(e[2], Dim::Known(8));
        assert_eq!(map.get(&r).unwrap().rank(), Some(3));
        assert_eq!(map.get(&s).unwrap().rank(), Some(3));
    }

    #[test]
    fn shapes_computed_at_run_time_keep_symbolic_dims() {
        // cls token [1,1,D] expanded to [batch,1,D] with a shape made from Shape(x).
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DataType::Float, &dims!["batch", 4, 8]);
        let cls = b.initializer("cls", &Tensor::f32(vec![1, 1, 8], vec![0.0; 8]));
        let s = b.op("Shape", &[&x], &[]);
        let i0 = b.const_i64s("i0", &[0]);
        let n = b.op("Gather", &[&s, &i0], &[("axis", Attr::Int(0))]);
        let rest = b.const_i64s("rest", &[1, 8]);
        let target = b.op("Concat", &[&n, &rest], &[("axis", Attr::Int(0))]);
        let e = b.op("Expand", &[&cls, &target], &[]);
        let flat = b.const_i64s("flat", &[0, -1]);
        let t2 = b.op("Concat", &[&n, &flat], &[("axis", Attr::Int(0))]);
        let r = b.op("Reshape", &[&x, &t2], &[]);
        let map = infer_shapes(&b.build());
        assert_eq!(map.dims(&e).unwrap(), &dims!["batch", 1, 8][..]);
        // 0 copies `4`, and -1 is what is left of batch·4·8 once batch cancels out.
        assert_eq!(map.dims(&r).unwrap(), &dims!["batch", 4, 8][..]);
    }

    #[test]
    fn a_minus_one_that_is_the_one_named_size_left_keeps_its_name() {
        // `input_ids.view(-1, L)` as exporters write it: [-1] ++ Shape(ids)[-1:].
        let mut b = GraphBuilder::new("g");
        let ids = b.input("ids", DataType::Int64, &dims!["batch", "sequence"]);
        let last = b.op("Shape", &[&ids], &[("start", Attr::Int(-1))]);
        let minus_one = b.const_i64s("minus_one", &[-1]);
        let target = b.op("Concat", &[&minus_one, &last], &[("axis", Attr::Int(0))]);
        let r = b.op("Reshape", &[&ids, &target], &[]);
        // And a constant target: [-1, 6] of [batch, 2, 3].
        let x = b.input("x", DataType::Float, &dims!["batch", 2, 3]);
        let six = b.const_i64s("six", &[-1, 6]);
        let flat = b.op("Reshape", &[&x, &six], &[]);
        let map = infer_shapes(&b.build());
        assert_eq!(map.dims(&r).unwrap(), &dims!["batch", "sequence"][..]);
        assert_eq!(map.dims(&flat).unwrap(), &dims!["batch", 6][..]);
    }

    #[test]
    fn a_slice_to_a_run_time_length_keeps_the_axes_it_does_not_slice() {
        // position_ids[:, :L] with L read from the input: [1, ?].
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DataType::Float, &dims!["batch", "len", 4]);
        let ids = b.initializer("ids", &Tensor::i64(vec![1, 77], (0..77).collect()));
        let len = b.op("Shape", &[&x], &[("start", Attr::Int(1)), ("end", Attr::Int(2))]);
        let (zero, one) = (b.const_i64s("zero", &[0]), b.const_i64s("one", &[1]));
        let s = b.op("Slice", &[&ids, &zero, &len, &one], &[]);
        let map = infer_shapes(&b.build());
        let d = map.dims(&s).unwrap();
        assert_eq!(d[0], Dim::Known(1));
        assert!(is_unknown(&d[1]), "{d:?}");
    }

    #[test]
    fn conv_transpose_inverts_the_conv_size() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DataType::Double, &dims!["batch", 6, 3, 4]);
        let w = b.initializer("w", &Tensor::f32(vec![6, 2, 3, 3], vec![0.0; 108]));
        let attrs = [
            ("strides", Attr::Ints(vec![2, 2])),
            ("pads", Attr::Ints(vec![1, 0, 1, 1])),
            ("output_padding", Attr::Ints(vec![1, 0])),
            ("group", Attr::Int(3)),
        ];
        let y = b.op("ConvTranspose", &[&x, &w], &attrs);
        let map = infer_shapes(&b.build());
        assert_eq!(map.dims(&y).unwrap(), &dims!["batch", 6, 6, 8][..]);
        assert_eq!(map.dtype(&y), Some(DataType::Double));
    }

    #[test]
    fn expand_to_a_run_time_shape_keeps_the_rank() {
        // A shape whose values are unknown until run time (here fed as an input): its
        // length still gives the rank.
        let mut b = GraphBuilder::new("g");
        let target = b.input("target", DataType::Int64, &dims![3]);
        let cls = b.initializer("cls", &Tensor::f32(vec![1, 1, 8], vec![0.0; 8]));
        let y = b.op("Expand", &[&cls, &target], &[]);
        let map = infer_shapes(&b.build());
        assert_eq!(map.dims(&y).map(|d| d.len()), Some(3));
        assert_eq!(map.dims(&y).unwrap()[2], Dim::Known(8));
    }

    #[test]
    fn declared_shapes_survive_where_inference_knows_less() {
        // Reshape to a shape fed at run time whose length is not known either: inference
        // alone loses even the rank; the declared value_info and graph output keep theirs.
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DataType::Float, &dims!["batch", 12]);
        let target = b.input("target", DataType::Int64, &dims!["n"]);
        let r = b.op("Reshape", &[&x, &target], &[]);
        let c = b.op("Cast", &[&r], &[("to", Attr::Int(DataType::Double as i64))]);
        let u = b.op("Mystery", &[&x], &[]);
        b.output(&c, DataType::Double, &dims!["batch", 3, "?"]);
        let mut m = b.build();
        let g = m.graph.as_mut().unwrap();
        g.value_info.push(crate::builder::value_info(&r, DataType::Float, &dims!["b", 3, 4]));
        g.value_info.push(crate::builder::value_info(&u, DataType::Int32, &dims!["batch", 5]));
        assert_eq!(infer_shapes(&b_free(&m)).get(&r).unwrap().dims, None, "inference alone knows nothing");
        let map = infer_shapes(&m);
        assert_eq!(map.dims(&r).unwrap(), &dims!["b", 3, 4][..]);
        // Cast passes the (declared) dims on, and its own declaration adds nothing new.
        assert_eq!(map.dims(&c).unwrap(), &dims!["b", 3, 4][..]);
        assert_eq!(map.dtype(&c), Some(DataType::Double));
        // An op inference has no rule for: the declared type and shape stand.
        assert_eq!(map.get(&u).unwrap(), &ValueType { dtype: DataType::Int32, dims: Some(dims!["batch", 5]) });
    }

    /// `m` without its declared value_info and graph outputs.
    fn b_free(m: &ModelProto) -> ModelProto {
        let mut m = m.clone();
        let g = m.graph.as_mut().unwrap();
        g.value_info.clear();
        g.output.clear();
        m
    }

    #[test]
    fn inferred_sizes_refine_declared_ones() {
        let d = ValueType { dtype: DataType::Float, dims: Some(dims!["batch", "?", 4]) };
        let i = ValueType { dtype: DataType::Float, dims: Some(vec![unknown(), Dim::Known(7), unknown()]) };
        assert_eq!(merge_declared(d, i).dims.unwrap(), dims!["batch", 7, 4]);
    }

    #[test]
    fn loss_ops_and_gather_nd() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DataType::Double, &dims!["n", 5, 7]);
        let labels = b.input("labels", DataType::Int64, &dims!["n", 7]);
        let none = b.node("SoftmaxCrossEntropyLoss", &[&x, &labels], 2, &[("reduction", Attr::Str("none".into()))]);
        let mean = b.op("NegativeLogLikelihoodLoss", &[&x, &labels], &[]);
        let idx = b.input("idx", DataType::Int64, &dims!["n", 3, 1]);
        let g = b.op("GatherND", &[&x, &idx], &[("batch_dims", Attr::Int(1))]);
        let map = infer_shapes(&b.build());
        assert_eq!(map.get(&none[0]).unwrap(), &ValueType { dtype: DataType::Double, dims: Some(dims!["n", 7]) });
        assert_eq!(map.dims(&none[1]).unwrap(), &dims!["n", 5, 7][..]);
        assert_eq!(map.get(&mean).unwrap(), &ValueType { dtype: DataType::Double, dims: Some(vec![]) });
        assert_eq!(map.dims(&g).unwrap(), &dims!["n", 3, 7][..]);
    }

    #[test]
    fn broadcasting_follows_numpy() {
        let a = dims!["n", 1, 4];
        let b = dims![3, 1];
        assert_eq!(broadcast_shapes(&[&a, &b]), dims!["n", 3, 4]);
    }
}
