//! A small builder over the ONNX protobuf types: inputs, initializers, nodes with
//! attributes, unique value names, outputs with symbolic shapes, and the model
//! header (opset and IR version set explicitly).

use std::collections::{HashMap, HashSet};

use crate::proto::{
    self, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType, tensor_proto::DataType,
    tensor_shape_proto, type_proto,
};
use crate::tensor::Tensor;
use crate::{IR_VERSION, OPSET_VERSION, PRODUCER_NAME};

/// One dimension of a declared shape: a fixed size or a symbolic name (`"batch"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    Known(i64),
    Sym(String),
}

impl From<i64> for Dim {
    fn from(v: i64) -> Self {
        Dim::Known(v)
    }
}
impl From<&str> for Dim {
    fn from(v: &str) -> Self {
        Dim::Sym(v.to_string())
    }
}

/// Shorthand for a list of dims: `dims![ "batch", 3, 224, 224 ]`.
#[macro_export]
macro_rules! dims {
    // Not `vec![…]`: callers borrow it as `&[Dim]`, which clippy would flag at each site.
    ($($d:expr),* $(,)?) => { ::std::vec::Vec::<$crate::Dim>::from([$($crate::Dim::from($d)),*]) };
}

/// A node attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Str(String),
    Strings(Vec<String>),
    Tensor(Tensor),
}

impl Attr {
    /// Converts to an `AttributeProto` named `name`.
    pub fn to_proto(&self, name: &str) -> AttributeProto {
        let mut a = AttributeProto { name: Some(name.to_string()), ..Default::default() };
        match self {
            Attr::Int(v) => {
                a.r#type = Some(AttributeType::Int as i32);
                a.i = Some(*v);
            }
            Attr::Float(v) => {
                a.r#type = Some(AttributeType::Float as i32);
                a.f = Some(*v);
            }
            Attr::Ints(v) => {
                a.r#type = Some(AttributeType::Ints as i32);
                a.ints = v.clone();
            }
            Attr::Floats(v) => {
                a.r#type = Some(AttributeType::Floats as i32);
                a.floats = v.clone();
            }
            Attr::Str(v) => {
                a.r#type = Some(AttributeType::String as i32);
                a.s = Some(v.as_bytes().to_vec());
            }
            Attr::Strings(v) => {
                a.r#type = Some(AttributeType::Strings as i32);
                a.strings = v.iter().map(|s| s.as_bytes().to_vec()).collect();
            }
            Attr::Tensor(t) => {
                a.r#type = Some(AttributeType::Tensor as i32);
                a.t = Some(t.to_proto(""));
            }
        }
        a
    }
}

/// Builds a `TypeProto` for a tensor of `dtype` with `dims`.
pub fn tensor_type(dtype: DataType, dims: &[Dim]) -> TypeProto {
    let shape = TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| tensor_shape_proto::Dimension {
                value: Some(match d {
                    Dim::Known(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                    Dim::Sym(s) => tensor_shape_proto::dimension::Value::DimParam(s.clone()),
                }),
                ..Default::default()
            })
            .collect(),
    };
    TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: Some(dtype as i32),
            shape: Some(shape),
        })),
        ..Default::default()
    }
}

/// Builds a `ValueInfoProto`.
pub fn value_info(name: &str, dtype: DataType, dims: &[Dim]) -> ValueInfoProto {
    ValueInfoProto { name: Some(name.to_string()), r#type: Some(tensor_type(dtype, dims)), ..Default::default() }
}

/// Builds an ONNX graph step by step. Every value name it hands out is unique.
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    graph: GraphProto,
    used: HashSet<String>,
    counters: HashMap<String, usize>,
    metadata: Vec<(String, String)>,
}

impl GraphBuilder {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> Self {
        GraphBuilder {
            graph: GraphProto { name: Some(name.to_string()), ..Default::default() },
            used: HashSet::new(),
            counters: HashMap::new(),
            metadata: Vec::new(),
        }
    }

    /// Continues building on the graph of an existing model (for example to append a
    /// loss, gradients or an optimizer). Existing names stay reserved.
    pub fn from_model(model: &ModelProto) -> Self {
        let graph = model.graph.clone().unwrap_or_default();
        let mut b = GraphBuilder::new(graph.name.as_deref().unwrap_or("graph"));
        b.graph = graph;
        let g = &b.graph;
        let mut names: Vec<String> = Vec::new();
        names.extend(g.input.iter().filter_map(|v| v.name.clone()));
        names.extend(g.output.iter().filter_map(|v| v.name.clone()));
        names.extend(g.initializer.iter().filter_map(|t| t.name.clone()));
        for n in &g.node {
            names.extend(n.output.iter().cloned());
            names.extend(n.name.iter().cloned());
        }
        b.used.extend(names);
        b.metadata = model
            .metadata_props
            .iter()
            .map(|e| (e.key.clone().unwrap_or_default(), e.value.clone().unwrap_or_default()))
            .collect();
        b
    }

    /// The graph built so far.
    pub fn graph(&self) -> &GraphProto {
        &self.graph
    }

    /// Mutable access for passes that rewrite the graph in place.
    pub fn graph_mut(&mut self) -> &mut GraphProto {
        &mut self.graph
    }

    /// True when `name` is already used by a value, initializer or node.
    pub fn is_used(&self, name: &str) -> bool {
        self.used.contains(name)
    }

    /// Reserves and returns a fresh name starting with `base` (`base`, `base_1`, ...).
    pub fn unique(&mut self, base: &str) -> String {
        let base = if base.is_empty() { "v" } else { base };
        if !self.used.contains(base) {
            self.used.insert(base.to_string());
            return base.to_string();
        }
        let counter = self.counters.entry(base.to_string()).or_insert(0);
        loop {
            *counter += 1;
            let candidate = format!("{base}_{counter}");
            if !self.used.contains(&candidate) {
                self.used.insert(candidate.clone());
                return candidate;
            }
        }
    }

    fn reserve_exact(&mut self, name: &str) -> String {
        assert!(self.used.insert(name.to_string()), "graph value name `{name}` is already used");
        name.to_string()
    }

    /// Declares a graph input with exactly this name.
    pub fn input(&mut self, name: &str, dtype: DataType, dims: &[Dim]) -> String {
        let name = self.reserve_exact(name);
        self.graph.input.push(value_info(&name, dtype, dims));
        name
    }

    /// Adds an initializer with exactly this name (parameters keep their names).
    pub fn initializer(&mut self, name: &str, tensor: &Tensor) -> String {
        let name = self.reserve_exact(name);
        self.graph.initializer.push(tensor.to_proto(&name));
        name
    }

    /// Adds a constant as an initializer under a fresh name derived from `base`.
    pub fn constant(&mut self, base: &str, tensor: Tensor) -> String {
        let name = self.unique(base);
        self.graph.initializer.push(tensor.to_proto(&name));
        name
    }

    /// A 1-D int64 constant (axes, shapes, pads given as inputs).
    pub fn const_i64s(&mut self, base: &str, values: &[i64]) -> String {
        self.constant(base, Tensor::vec_i64(values))
    }

    /// Appends a node; returns the names of its `n_outputs` outputs. Inputs that are
    /// optional and absent are passed as `""`.
    pub fn node(&mut self, op_type: &str, inputs: &[&str], n_outputs: usize, attrs: &[(&str, Attr)]) -> Vec<String> {
        let node_name = self.unique(&op_type.to_lowercase());
        let outputs: Vec<String> = if n_outputs == 1 {
            vec![self.unique(&format!("{node_name}_out"))]
        } else {
            (0..n_outputs).map(|i| self.unique(&format!("{node_name}_out{i}"))).collect()
        };
        self.push_node(&node_name, op_type, inputs, &outputs, attrs);
        outputs
    }

    /// Like [`GraphBuilder::node`], but the node and its outputs are named from `base`
    /// (for example `<forward node>_grad_mul`), so generated graphs stay readable.
    pub fn node_named(
        &mut self,
        base: &str,
        op_type: &str,
        inputs: &[&str],
        n_outputs: usize,
        attrs: &[(&str, Attr)],
    ) -> Vec<String> {
        let node_name = self.unique(base);
        let outputs: Vec<String> = if n_outputs == 1 {
            vec![self.unique(&format!("{node_name}_out"))]
        } else {
            (0..n_outputs).map(|i| self.unique(&format!("{node_name}_out{i}"))).collect()
        };
        self.push_node(&node_name, op_type, inputs, &outputs, attrs);
        outputs
    }

    /// Appends a node with one output and returns that output's name.
    pub fn op(&mut self, op_type: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.node(op_type, inputs, 1, attrs).pop().expect("one output")
    }

    /// Appends a node whose outputs get exactly the given names (reserved here;
    /// `""` marks an unused optional output).
    pub fn node_with_outputs(&mut self, op_type: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, Attr)]) {
        let node_name = self.unique(&op_type.to_lowercase());
        let outputs: Vec<String> =
            outputs.iter().map(|o| if o.is_empty() { String::new() } else { self.reserve_exact(o) }).collect();
        self.push_node(&node_name, op_type, inputs, &outputs, attrs);
    }

    /// Appends a node writing to names already reserved with [`GraphBuilder::unique`].
    pub fn node_into(&mut self, op_type: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, Attr)]) {
        for o in outputs {
            assert!(o.is_empty() || self.used.contains(*o), "output `{o}` was not reserved with unique()");
        }
        let node_name = self.unique(&op_type.to_lowercase());
        let outputs: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
        self.push_node(&node_name, op_type, inputs, &outputs, attrs);
    }

    fn push_node(
        &mut self,
        node_name: &str,
        op_type: &str,
        inputs: &[&str],
        outputs: &[String],
        attrs: &[(&str, Attr)],
    ) {
        self.graph.node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.to_vec(),
            name: Some(node_name.to_string()),
            op_type: Some(op_type.to_string()),
            domain: Some(String::new()),
            attribute: attrs.iter().map(|(k, v)| v.to_proto(k)).collect(),
            ..Default::default()
        });
    }

    /// Declares `value` (already produced by a node or an input) a graph output.
    pub fn output(&mut self, value: &str, dtype: DataType, dims: &[Dim]) {
        self.graph.output.push(value_info(value, dtype, dims));
    }

    /// Declares `value` a graph output with an element type but no shape (ONNX Runtime
    /// accepts this; use [`GraphBuilder::output`] for graphs that `onnx.checker` must accept).
    pub fn output_unshaped(&mut self, value: &str, dtype: DataType) {
        let mut info = value_info(value, dtype, &[]);
        if let Some(type_proto::Value::TensorType(t)) = info.r#type.as_mut().and_then(|t| t.value.as_mut()) {
            t.shape = None;
        }
        self.graph.output.push(info);
    }

    /// Renames the value `from` to `to` through an `Identity` node and declares `to` an
    /// output: graph outputs get stable, documented names.
    pub fn named_output(&mut self, from: &str, to: &str, dtype: DataType, dims: &[Dim]) {
        self.node_with_outputs("Identity", &[from], &[to], &[]);
        self.output(to, dtype, dims);
    }

    /// Adds a `metadata_props` entry to the model.
    pub fn metadata(&mut self, key: &str, value: &str) {
        self.metadata.retain(|(k, _)| k != key);
        self.metadata.push((key.to_string(), value.to_string()));
    }

    /// Finishes the model with the default-domain opset and IR version set explicitly.
    pub fn build(self) -> ModelProto {
        ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET_VERSION) }],
            producer_name: Some(PRODUCER_NAME.to_string()),
            producer_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            graph: Some(self.graph),
            metadata_props: self
                .metadata
                .into_iter()
                .map(|(k, v)| StringStringEntryProto { key: Some(k), value: Some(v) })
                .collect(),
            ..Default::default()
        }
    }
}

/// Reads the named attribute of a node, if present.
pub fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name.as_deref() == Some(name))
}

/// An int attribute or `default`.
pub fn attr_int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attribute(node, name).and_then(|a| a.i).unwrap_or(default)
}

/// A float attribute or `default`.
pub fn attr_float(node: &NodeProto, name: &str, default: f32) -> f32 {
    attribute(node, name).and_then(|a| a.f).unwrap_or(default)
}

/// An ints attribute, if present.
pub fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attribute(node, name).map(|a| a.ints.clone())
}

/// A string attribute, if present.
pub fn attr_str(node: &NodeProto, name: &str) -> Option<String> {
    attribute(node, name).and_then(|a| a.s.as_ref()).map(|s| String::from_utf8_lossy(s).into_owned())
}

/// Reads the dims of a `ValueInfoProto` tensor type, `None` if it has no shape.
pub fn value_dims(v: &ValueInfoProto) -> Option<Vec<Dim>> {
    match v.r#type.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(t) => Some(
            t.shape
                .as_ref()?
                .dim
                .iter()
                .map(|d| match &d.value {
                    Some(tensor_shape_proto::dimension::Value::DimValue(v)) => Dim::Known(*v),
                    Some(tensor_shape_proto::dimension::Value::DimParam(s)) => Dim::Sym(s.clone()),
                    None => Dim::Sym("?".to_string()),
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Reads the element type of a `ValueInfoProto` tensor type.
pub fn value_dtype(v: &ValueInfoProto) -> Option<DataType> {
    match v.r#type.as_ref()?.value.as_ref()? {
        type_proto::Value::TensorType(t) => DataType::try_from(t.elem_type?).ok(),
        _ => None,
    }
}

/// Re-exported so callers can name the proto module through the builder.
pub use proto::tensor_proto::DataType as ElemType;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_header_is_explicit() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DataType::Float, &dims!["batch", 4]);
        let a = b.op("Relu", &[&x], &[]);
        let c = b.op("Relu", &[&a], &[]);
        assert_ne!(a, c);
        assert_eq!(b.unique("x"), "x_1");
        b.output(&c, DataType::Float, &dims!["batch", 4]);
        let m = b.build();
        assert_eq!(m.ir_version, Some(IR_VERSION));
        assert_eq!(m.opset_import[0].version, Some(OPSET_VERSION));
        assert_eq!(m.graph.unwrap().node.len(), 2);
    }

    #[test]
    fn from_model_keeps_names_reserved() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DataType::Float, &dims![2]);
        let y = b.op("Neg", &[&x], &[]);
        b.output(&y, DataType::Float, &dims![2]);
        let m = b.build();
        let mut b2 = GraphBuilder::from_model(&m);
        assert!(b2.is_used(&y));
        let z = b2.op("Neg", &[&y], &[]);
        assert_ne!(z, y);
    }
}
