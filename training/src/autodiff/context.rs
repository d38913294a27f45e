//! The vocabulary a gradient rule is written in.

use memeguard_onnx::builder::{attr_float, attr_int, attr_ints, attr_str};
use memeguard_onnx::proto::NodeProto;
use memeguard_onnx::shape::ShapeMap;
use memeguard_onnx::{Attr, DataType, Dim, GraphBuilder, Tensor};

use super::AutodiffError;

/// What a rule sees of one forward node and what it may emit.
pub struct RuleCtx<'a> {
    node: &'a NodeProto,
    b: &'a mut GraphBuilder,
    shapes: &'a mut ShapeMap,
    grad_outputs: Vec<Option<String>>,
    needs: Vec<bool>,
    grads: Vec<Option<String>>,
    prefix: String,
}

impl<'a> RuleCtx<'a> {
    pub(crate) fn new(
        node: &'a NodeProto,
        b: &'a mut GraphBuilder,
        shapes: &'a mut ShapeMap,
        grad_outputs: Vec<Option<String>>,
        needs: Vec<bool>,
    ) -> Self {
        let prefix = format!("{}_grad", node.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "node".into()));
        let n = node.input.len();
        RuleCtx { node, b, shapes, grad_outputs, needs, grads: vec![None; n], prefix }
    }

    pub(crate) fn into_grads(self) -> Vec<Option<String>> {
        self.grads
    }

    /// The forward node.
    pub fn node(&self) -> &NodeProto {
        self.node
    }
    /// The forward node's op type.
    pub fn op_type(&self) -> &str {
        self.node.op_type.as_deref().unwrap_or("")
    }
    /// `I(i)`: the name of input `i` (`""` when an optional input is absent).
    pub fn input(&self, i: usize) -> &str {
        self.node.input.get(i).map(String::as_str).unwrap_or("")
    }
    /// True when input `i` is present.
    pub fn has_input(&self, i: usize) -> bool {
        !self.input(i).is_empty()
    }
    /// Number of inputs (including absent optional ones).
    pub fn num_inputs(&self) -> usize {
        self.node.input.len()
    }
    /// `O(i)`: the name of output `i`.
    pub fn output(&self, i: usize) -> &str {
        self.node.output.get(i).map(String::as_str).unwrap_or("")
    }
    /// `GO(i)`: the gradient of the loss with respect to output `i`, if any flows back.
    pub fn grad_output(&self, i: usize) -> Option<String> {
        self.grad_outputs.get(i).cloned().flatten()
    }
    /// `GO(0)`, which the engine guarantees for single-output ops.
    pub fn grad_out(&self) -> String {
        self.grad_output(0).expect("the engine calls a rule only when an output gradient exists")
    }
    /// True when the gradient of input `i` is needed (it leads from a parameter).
    pub fn needs_grad(&self, i: usize) -> bool {
        self.needs.get(i).copied().unwrap_or(false)
    }
    /// Records `GI(i)`. The value must have input `i`'s shape.
    pub fn set_grad(&mut self, i: usize, value: String) {
        self.grads[i] = Some(value);
    }

    /// An int attribute or its default.
    pub fn attr_int(&self, name: &str, default: i64) -> i64 {
        attr_int(self.node, name, default)
    }
    /// A float attribute or its default.
    pub fn attr_float(&self, name: &str, default: f32) -> f32 {
        attr_float(self.node, name, default)
    }
    /// An ints attribute, if present.
    pub fn attr_ints(&self, name: &str) -> Option<Vec<i64>> {
        attr_ints(self.node, name)
    }
    /// A string attribute, if present.
    pub fn attr_str(&self, name: &str) -> Option<String> {
        attr_str(self.node, name)
    }

    /// Inferred types of the graph's values.
    pub fn shapes(&self) -> &ShapeMap {
        self.shapes
    }
    /// The element type of `value` (float when unknown).
    pub fn dtype(&self, value: &str) -> DataType {
        self.shapes.dtype(value).unwrap_or(DataType::Float)
    }
    /// The dims of `value`, if known.
    pub fn dims(&self, value: &str) -> Option<Vec<Dim>> {
        self.shapes.dims(value).map(|d| d.to_vec())
    }
    /// The rank of `value`, if known.
    pub fn rank(&self, value: &str) -> Option<usize> {
        self.shapes.dims(value).map(|d| d.len())
    }
    /// An int64 constant input, if `value` is one.
    pub fn const_input(&self, value: &str) -> Option<Vec<i64>> {
        self.shapes.const_i64s(value)
    }

    /// An error saying this node's gradient is not supported, and why.
    pub fn unsupported(&self, reason: impl Into<String>) -> AutodiffError {
        AutodiffError::Unsupported {
            op: self.op_type().to_string(),
            node: self.node.name.clone().unwrap_or_default(),
            reason: reason.into(),
        }
    }

    /// Emits a node with one output, named after the forward node.
    pub fn op(&mut self, op_type: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.ops(op_type, inputs, 1, attrs).pop().expect("one output")
    }

    /// Emits a node with `n` outputs, named after the forward node.
    pub fn ops(&mut self, op_type: &str, inputs: &[&str], n: usize, attrs: &[(&str, Attr)]) -> Vec<String> {
        let base = format!("{}_{}", self.prefix, op_type.to_lowercase());
        let outs = self.b.node_named(&base, op_type, inputs, n, attrs);
        let node = self.b.graph().node.last().expect("just pushed").clone();
        self.shapes.add_node(&node);
        outs
    }

    /// A scalar constant with the element type of `like`.
    pub fn scalar(&mut self, value: f64, like: &str) -> String {
        let dtype = self.dtype(like);
        self.filled(dtype, &[], value)
    }

    /// A constant of `dims` filled with `value`, of the float type `dtype`. Float16 and
    /// bfloat16 constants are written as float32 and cast (the tensor type here holds
    /// float32 and float64 data only); ONNX Runtime folds the cast when it loads.
    pub fn filled(&mut self, dtype: DataType, dims: &[i64], value: f64) -> String {
        let t = Tensor::full(dtype, dims, value);
        let name = self.constant(t);
        self.cast_to(&name, dtype)
    }

    /// `ConstantOfShape(shape)` filled with `value`, of the float type `dtype`.
    pub fn filled_of_shape(&mut self, shape: &str, dtype: DataType, value: f64) -> String {
        let t = Tensor::full(dtype, &[1], value);
        let v = self.op("ConstantOfShape", &[shape], &[("value", Attr::Tensor(t))]);
        self.cast_to(&v, dtype)
    }

    /// `v` cast to `dtype` where `v`'s float32 stands in for a narrower float type.
    fn cast_to(&mut self, v: &str, dtype: DataType) -> String {
        match dtype {
            DataType::Float16 | DataType::Bfloat16 => self.op("Cast", &[v], &[("to", Attr::Int(dtype as i64))]),
            _ => v.to_string(),
        }
    }

    /// A constant tensor.
    pub fn constant(&mut self, t: Tensor) -> String {
        let name = self.b.constant(&format!("{}_const", self.prefix), t);
        let node_free = self.b.graph().initializer.last().expect("just pushed").clone();
        if let Ok(t) = Tensor::from_proto(&node_free) {
            self.shapes.types.insert(
                name.clone(),
                memeguard_onnx::shape::ValueType {
                    dtype: t.data_type(),
                    dims: Some(t.dims.iter().map(|&d| Dim::Known(d)).collect()),
                },
            );
            self.shapes.constants.insert(name.clone(), t);
        }
        name
    }

    /// A 1-D int64 constant (axes, shapes, pads).
    pub fn const_i64s(&mut self, values: &[i64]) -> String {
        self.constant(Tensor::vec_i64(values))
    }

    /// `Shape(value)`.
    pub fn shape_of(&mut self, value: &str) -> String {
        self.op("Shape", &[value], &[])
    }

    /// `ReduceSum(x, axes)` with keepdims as given (axes as an input, opset ≥ 13).
    pub fn reduce_sum(&mut self, x: &str, axes: &[i64], keepdims: bool) -> String {
        let axes = self.const_i64s(axes);
        self.op("ReduceSum", &[x, &axes], &[("keepdims", Attr::Int(keepdims as i64))])
    }

    /// Sums `grad` (shaped like a broadcast result) back to the shape of `to`: the one
    /// place where broadcasting is undone. Static shapes decide it only when they can:
    /// every dim of `to` is a known size, or the same named size as `grad`'s there. Any
    /// other dim (unknown, or a symbol that may be a broadcast 1, like the leading dim of
    /// a `[1, L, D]` position embedding sliced at run time) sends it to the run-time path,
    /// which computes the reduced axes from the `Shape`s of both values.
    pub fn unbroadcast(&mut self, grad: &str, to: &str) -> String {
        let (Some(g_dims), Some(to_dims)) = (self.dims(grad), self.dims(to)) else {
            return self.unbroadcast_dynamic(grad, to);
        };
        if to_dims.len() > g_dims.len() {
            return self.unbroadcast_dynamic(grad, to);
        }
        let lead = g_dims.len() - to_dims.len();
        let decided = to_dims.iter().zip(&g_dims[lead..]).all(|(t, g)| match t {
            Dim::Known(_) => true,
            Dim::Sym(name) => name != "?" && t == g,
        });
        if !decided {
            return self.unbroadcast_dynamic(grad, to);
        }
        let mut out = grad.to_string();
        if lead > 0 {
            out = self.reduce_sum(&out, &(0..lead as i64).collect::<Vec<_>>(), false);
        }
        // A known 1 in `to` against anything but a known 1 in `grad` was broadcast (a
        // sum over an axis that is 1 at run time too is a no-op).
        let ones: Vec<i64> = to_dims
            .iter()
            .enumerate()
            .filter(|(j, d)| **d == Dim::Known(1) && g_dims[lead + j] != Dim::Known(1))
            .map(|(j, _)| j as i64)
            .collect();
        if !ones.is_empty() {
            out = self.reduce_sum(&out, &ones, true);
        }
        out
    }

    fn unbroadcast_dynamic(&mut self, grad: &str, to: &str) -> String {
        // axes = indices where the (left-padded) shape of `to` differs from grad's shape.
        let s_to = self.shape_of(to);
        let s_g = self.shape_of(grad);
        let r_g = self.shape_of(&s_g);
        let r_to = self.shape_of(&s_to);
        let diff = self.op("Sub", &[&r_g, &r_to], &[]);
        let one = self.const_i64s(&[1]);
        let ones = self.op("Expand", &[&one, &diff], &[]);
        let padded = self.op("Concat", &[&ones, &s_to], &[("axis", Attr::Int(0))]);
        let eq = self.op("Equal", &[&padded, &s_g], &[]);
        let ne = self.op("Not", &[&eq], &[]);
        let nz = self.op("NonZero", &[&ne], &[]);
        let flat = self.const_i64s(&[-1]);
        let axes = self.op("Reshape", &[&nz, &flat], &[]);
        let summed =
            self.op("ReduceSum", &[grad, &axes], &[("keepdims", Attr::Int(1)), ("noop_with_empty_axes", Attr::Int(1))]);
        self.op("Reshape", &[&summed, &s_to], &[])
    }
}
