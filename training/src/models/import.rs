//! Importing a user's ONNX encoder (for example a CLIP image or text tower exported
//! from another framework) into a [`Net`], so our heads can be attached and the
//! whole graph trained or finetuned by our autodiff.
//!
//! Loading validates what embedding into our opset-20, default-domain graphs needs:
//! a default-domain opset from 13 to 20 (older reductions with an `axes` attribute
//! are rewritten to take axes as an input, as opset 18 wants), no other domains, no
//! control-flow subgraphs, no ops whose meaning changed before opset 20. External
//! weight files (`.onnx.data`) are read in by [`memeguard_onnx::load_model`].
//! [`ImportedEncoder::into_output`] keeps what one output needs (one tower of a joint
//! export). Attaching copies the nodes under a name prefix, turns its float32
//! initializers into parameters (trainable or frozen), and, when it is to be trained,
//! first checks that every op on a path from a parameter to an output has a gradient
//! rule, reporting all that don't at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use memeguard_onnx::builder::{value_dims, value_dtype};
use memeguard_onnx::proto::{ModelProto, TensorProto};
use memeguard_onnx::{DataType, Dim, OPSET_VERSION};

use crate::models::net::{Net, Weights};

/// Oldest default-domain opset we import: from 13 on, Split/Squeeze/Unsqueeze/ReduceSum
/// take their axes as inputs as they do at opset 20.
pub const MIN_IMPORT_OPSET: i64 = 13;

/// Ops whose outputs carry no gradient (shapes, indices, booleans): they need no rule
/// and stop gradient paths. The autodiff's own list, so the two cannot disagree.
const NON_DIFFERENTIABLE: &[&str] = crate::autodiff::rules::nondiff::NO_GRADIENT;

/// Whether the autodiff can differentiate through `op_type`: the one place import
/// asks this.
pub fn has_gradient_rule(op_type: &str) -> bool {
    crate::autodiff::has_rule(op_type)
}

/// Why an encoder cannot be imported or attached.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Io(#[from] memeguard_onnx::IoError),
    #[error("{source_name}: {problem}")]
    Unsupported { source_name: String, problem: String },
    #[error(
        "{source_name} is to be trained, but these ops have no gradient rule: {}.\n\
         Import it frozen (trainable = false), or re-export the encoder without them.",
        .missing.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ")
    )]
    MissingGradientRules { source_name: String, missing: Vec<MissingRule> },
    #[error("{source_name}: {problem}")]
    Inputs { source_name: String, problem: String },
}

/// An op type without a gradient rule, how often it occurs on gradient paths, and one
/// node that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingRule {
    pub op_type: String,
    pub count: usize,
    pub example_node: String,
}

impl std::fmt::Display for MissingRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}×, e.g. node `{}`)", self.op_type, self.count, self.example_node)
    }
}

/// A graph input or output of the imported encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueSummary {
    pub name: String,
    pub dtype: Option<DataType>,
    pub dims: Option<Vec<Dim>>,
}

/// A float32 initializer that becomes a parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedParam {
    pub name: String,
    pub dims: Vec<i64>,
}

/// An encoder loaded from ONNX and checked for embedding into our graphs.
#[derive(Debug, Clone)]
pub struct ImportedEncoder {
    /// Where it came from (for messages).
    pub source_name: String,
    model: ModelProto,
}

impl ImportedEncoder {
    /// Loads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ImportError> {
        let model = memeguard_onnx::load_model(path)?;
        Self::from_model(model, &path.display().to_string())
    }

    /// Checks `model` (named `source_name` in messages) and brings older reductions
    /// to opset-20 form.
    pub fn from_model(mut model: ModelProto, source_name: &str) -> Result<Self, ImportError> {
        let fail = |problem: String| ImportError::Unsupported { source_name: source_name.to_string(), problem };
        let opset = model
            .opset_import
            .iter()
            .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
            .and_then(|o| o.version)
            .ok_or_else(|| fail("imports no default-domain opset".into()))?;
        if !(MIN_IMPORT_OPSET..=OPSET_VERSION).contains(&opset) {
            return Err(fail(format!(
                "uses opset {opset}; import takes opsets {MIN_IMPORT_OPSET} to {OPSET_VERSION} (re-export it with \
                 opset 17 or {OPSET_VERSION}, e.g. torch.onnx.export(..., opset_version={OPSET_VERSION}))"
            )));
        }
        let graph = model.graph.as_mut().ok_or_else(|| fail("has no graph".into()))?;
        let mut problems = Vec::new();
        for node in &graph.node {
            let op = node.op_type.as_deref().unwrap_or("");
            let label = format!("node `{}` ({op})", node.name.as_deref().unwrap_or(""));
            let domain = node.domain.as_deref().unwrap_or("");
            if !(domain.is_empty() || domain == "ai.onnx") {
                problems.push(format!("{label} is in domain `{domain}`; only standard ONNX ops can be imported"));
            }
            if node.attribute.iter().any(|a| a.g.is_some() || !a.graphs.is_empty()) {
                problems.push(format!("{label} has a subgraph (control flow), which import does not support"));
            }
            let changed_meaning = match op {
                "GridSample" | "DFT" => opset < 20,
                "RoiAlign" => opset < 16,
                _ => false,
            };
            if changed_meaning {
                problems.push(format!("{label} changed meaning between opset {opset} and {OPSET_VERSION}"));
            }
        }
        // A model that did not come through `load_model` (bytes, not a file) has no
        // folder to read external data from: one message, not one per initializer.
        let external = graph.initializer.iter().filter(|t| memeguard_onnx::io::is_external(t)).count();
        if external > 0 {
            problems.push(format!(
                "{external} initializer(s) are stored in an external data file; load the model from its file \
                 (the .onnx.data file beside it) so they are read in"
            ));
        }
        if !problems.is_empty() {
            return Err(fail(problems.join("; ")));
        }
        memeguard_onnx::upgrade::upgrade_graph(graph, opset).map_err(|e| fail(e.to_string()))?;
        Ok(ImportedEncoder { source_name: source_name.to_string(), model })
    }

    /// The encoder cut down to what computes `output` (`None`: its only output): the
    /// nodes, initializers and inputs `output` depends on. A joint two-tower export
    /// picked by `#image_embeds` keeps the image tower alone, so the text tower's
    /// inputs are not needed.
    pub fn into_output(mut self, output: Option<&str>) -> Result<Self, ImportError> {
        let fail = |problem: String| ImportError::Unsupported { source_name: self.source_name.clone(), problem };
        let names: Vec<String> = self.outputs().into_iter().map(|v| v.name).collect();
        let chosen = match output {
            Some(o) if names.iter().any(|n| n == o) => o.to_string(),
            Some(o) => {
                return Err(fail(format!("has no output `{o}` (its outputs: {})", names.join(", "))));
            }
            None if names.len() == 1 => names[0].clone(),
            None => {
                return Err(fail(format!(
                    "has {} outputs ({}): name the one with the features, e.g. onnx:FILE#{}",
                    names.len(),
                    names.join(", "),
                    names.first().map(String::as_str).unwrap_or("OUTPUT")
                )));
            }
        };
        let graph = self.model.graph.as_mut().expect("checked on load");
        let mut needed: HashSet<String> = HashSet::from([chosen.clone()]);
        let mut keep = vec![false; graph.node.len()];
        for (i, node) in graph.node.iter().enumerate().rev() {
            if node.output.iter().any(|o| needed.contains(o)) {
                keep[i] = true;
                needed.extend(node.input.iter().filter(|v| !v.is_empty()).cloned());
            }
        }
        let mut flags = keep.into_iter();
        graph.node.retain(|_| flags.next().unwrap_or(false));
        let is_needed = |name: &Option<String>| name.as_ref().is_some_and(|n| needed.contains(n));
        graph.initializer.retain(|t| is_needed(&t.name));
        graph.input.retain(|v| is_needed(&v.name));
        graph.value_info.retain(|v| is_needed(&v.name));
        graph.output.retain(|v| v.name.as_deref() == Some(chosen.as_str()));
        Ok(self)
    }

    /// The width `D` of the (only) output, which must be declared `[N, D]` with `D`
    /// known: the features a head attaches to.
    pub fn feature_dim(&self) -> Result<usize, ImportError> {
        let fail = |problem: String| ImportError::Unsupported { source_name: self.source_name.clone(), problem };
        let outputs = self.outputs();
        let [out] = outputs.as_slice() else {
            return Err(fail(format!("has {} outputs; pick the features with #OUTPUT", outputs.len())));
        };
        match out.dims.as_deref() {
            Some([_, Dim::Known(d)]) if *d > 0 => Ok(*d as usize),
            Some(dims) => Err(fail(format!(
                "output `{}` is declared {}: features must be [N, D] with D known (pick a pooled or \
                 projected output, e.g. image_embeds / text_embeds, not last_hidden_state)",
                out.name,
                describe_dims(dims)
            ))),
            None => Err(fail(format!(
                "output `{}` declares no shape, so its feature width is unknown; re-export it with shapes",
                out.name
            ))),
        }
    }

    fn graph(&self) -> &memeguard_onnx::proto::GraphProto {
        self.model.graph.as_ref().expect("checked on load")
    }

    fn initializer_names(&self) -> HashSet<&str> {
        self.graph().initializer.iter().filter_map(|t| t.name.as_deref()).collect()
    }

    /// The encoder's real inputs (initializers listed as inputs, as old exporters do,
    /// are not inputs).
    pub fn inputs(&self) -> Vec<ValueSummary> {
        let inits = self.initializer_names();
        self.graph().input.iter().filter(|v| !inits.contains(v.name.as_deref().unwrap_or(""))).map(summary).collect()
    }

    /// The encoder's outputs.
    pub fn outputs(&self) -> Vec<ValueSummary> {
        self.graph().output.iter().map(summary).collect()
    }

    /// The initializers that become parameters: float32 with more than one element.
    /// Scalars and integer tensors stay constants.
    pub fn parameters(&self) -> Vec<ImportedParam> {
        self.graph()
            .initializer
            .iter()
            .filter(|t| is_parameter(t))
            .map(|t| ImportedParam { name: t.name.clone().unwrap_or_default(), dims: t.dims.clone() })
            .collect()
    }

    /// Op types on a path from a parameter to an output that have no gradient rule
    /// ([`has_gradient_rule`]), most frequent first.
    pub fn ops_without_gradient_rule(&self) -> Vec<MissingRule> {
        let graph = self.graph();
        // Values that depend on a parameter through differentiable ops.
        let mut from_params: HashSet<&str> =
            graph.initializer.iter().filter(|t| is_parameter(t)).filter_map(|t| t.name.as_deref()).collect();
        let mut differentiated = vec![false; graph.node.len()];
        for (i, node) in graph.node.iter().enumerate() {
            let op = node.op_type.as_deref().unwrap_or("");
            if NON_DIFFERENTIABLE.contains(&op) || !node.input.iter().any(|v| from_params.contains(v.as_str())) {
                continue;
            }
            differentiated[i] = true;
            from_params.extend(node.output.iter().map(String::as_str));
        }
        // Of those nodes, the ones an output depends on.
        let mut to_outputs: HashSet<&str> = graph.output.iter().filter_map(|v| v.name.as_deref()).collect();
        let mut needed = vec![false; graph.node.len()];
        for (i, node) in graph.node.iter().enumerate().rev() {
            if node.output.iter().any(|v| to_outputs.contains(v.as_str())) {
                needed[i] = differentiated[i];
                to_outputs.extend(node.input.iter().map(String::as_str));
            }
        }
        let mut missing: BTreeMap<String, MissingRule> = BTreeMap::new();
        for (i, node) in graph.node.iter().enumerate() {
            let op = node.op_type.clone().unwrap_or_default();
            if needed[i] && !has_gradient_rule(&op) {
                let entry = missing.entry(op.clone()).or_insert_with(|| MissingRule {
                    op_type: op,
                    count: 0,
                    example_node: node.name.clone().unwrap_or_default(),
                });
                entry.count += 1;
            }
        }
        let mut missing: Vec<MissingRule> = missing.into_values().collect();
        missing.sort_by(|a, b| b.count.cmp(&a.count).then(a.op_type.cmp(&b.op_type)));
        missing
    }

    /// Copies the encoder into `net` under `prefix`. `inputs` maps each of the
    /// encoder's input names to a value of `net`. Its parameters are registered as
    /// `{prefix}.{initializer name}`, trainable or frozen (weight decay on tensors of
    /// rank ≥ 2 only, i.e. not on biases and norm weights); in a
    /// [`Weights::Hollow`] net they carry shapes only. Returns the encoder's output names
    /// mapped to their values in `net`.
    pub fn attach(
        &self,
        net: &mut Net,
        prefix: &str,
        inputs: &[(&str, &str)],
        trainable: bool,
    ) -> Result<BTreeMap<String, String>, ImportError> {
        self.attach_training(net, prefix, inputs, &|_| trainable)
    }

    /// The graph as loaded (after [`ImportedEncoder::into_output`]).
    pub fn graph_proto(&self) -> &memeguard_onnx::proto::GraphProto {
        self.graph()
    }

    /// [`ImportedEncoder::attach`] with the parameters for which `trains(initializer
    /// name)` holds trainable and the others frozen (`trainable = "last:N"`).
    pub fn attach_training(
        &self,
        net: &mut Net,
        prefix: &str,
        inputs: &[(&str, &str)],
        trains: &dyn Fn(&str) -> bool,
    ) -> Result<BTreeMap<String, String>, ImportError> {
        let any_trains = self.parameters().iter().any(|p| trains(&p.name));
        if any_trains {
            let missing = self.ops_without_gradient_rule();
            if !missing.is_empty() {
                return Err(ImportError::MissingGradientRules { source_name: self.source_name.clone(), missing });
            }
        }
        let input_error = |problem: String| ImportError::Inputs { source_name: self.source_name.clone(), problem };
        let expected: Vec<String> = self.inputs().into_iter().map(|v| v.name).collect();
        let mut renamed: HashMap<String, String> = HashMap::new();
        for (theirs, ours) in inputs {
            if !expected.iter().any(|e| e == theirs) {
                return Err(input_error(format!("has no input `{theirs}` (its inputs: {})", expected.join(", "))));
            }
            renamed.insert(theirs.to_string(), ours.to_string());
        }
        let unmapped: Vec<&str> = expected.iter().filter(|e| !renamed.contains_key(*e)).map(String::as_str).collect();
        if !unmapped.is_empty() {
            return Err(input_error(format!("inputs not connected: {}", unmapped.join(", "))));
        }

        let graph = self.graph();
        for t in &graph.initializer {
            let name = t.name.clone().unwrap_or_default();
            let ours = if is_parameter(t) {
                let weight_decay = t.dims.len() >= 2;
                // A hollow graph (e.g. the inference graph trained values are filled
                // into) gets shapes only: no second copy of the weights.
                let value = if net.weights() == Weights::Hollow {
                    TensorProto { dims: t.dims.clone(), data_type: t.data_type, ..Default::default() }
                } else {
                    t.clone()
                };
                net.param_from_proto(&format!("{prefix}.{name}"), value, trains(&name), weight_decay)
            } else {
                let ours = net.b.unique(&format!("{prefix}.{name}"));
                let mut copy = t.clone();
                copy.name = Some(ours.clone());
                net.b.graph_mut().initializer.push(copy);
                ours
            };
            renamed.insert(name, ours);
        }
        for node in &graph.node {
            let mut copy = node.clone();
            for input in copy.input.iter_mut().filter(|i| !i.is_empty()) {
                *input = renamed.get(input.as_str()).cloned().ok_or_else(|| ImportError::Unsupported {
                    source_name: self.source_name.clone(),
                    problem: format!(
                        "node `{}` reads `{input}`, which nothing defines before it",
                        node.name.as_deref().unwrap_or("")
                    ),
                })?;
            }
            for output in copy.output.iter_mut().filter(|o| !o.is_empty()) {
                let ours = net.b.unique(&format!("{prefix}.{output}"));
                renamed.insert(output.clone(), ours.clone());
                *output = ours;
            }
            let base = node.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| node.op_type().to_lowercase());
            copy.name = Some(net.b.unique(&format!("{prefix}.{base}")));
            copy.domain = Some(String::new());
            net.b.graph_mut().node.push(copy);
        }
        // What the file declares about its values (ranks, known dims) helps shape
        // inference through ops it cannot see through (run-time reshapes); symbolic
        // dims are dropped, since the exporter's names mean nothing in our graph.
        for declared in &graph.value_info {
            let Some(ours) = declared.name.as_deref().and_then(|n| renamed.get(n)) else { continue };
            let mut copy = declared.clone();
            copy.name = Some(ours.clone());
            forget_symbolic_dims(&mut copy);
            net.b.graph_mut().value_info.push(copy);
        }
        let mut outputs = BTreeMap::new();
        for out in graph.output.iter().filter_map(|v| v.name.as_deref()) {
            let ours = renamed.get(out).cloned().ok_or_else(|| ImportError::Unsupported {
                source_name: self.source_name.clone(),
                problem: format!("output `{out}` is never produced"),
            })?;
            outputs.insert(out.to_string(), ours);
        }
        Ok(outputs)
    }
}

fn forget_symbolic_dims(v: &mut memeguard_onnx::proto::ValueInfoProto) {
    use memeguard_onnx::proto::{tensor_shape_proto::dimension::Value, type_proto};
    if let Some(type_proto::Value::TensorType(t)) = v.r#type.as_mut().and_then(|t| t.value.as_mut())
        && let Some(shape) = t.shape.as_mut()
    {
        for d in &mut shape.dim {
            if matches!(d.value, Some(Value::DimParam(_))) {
                d.value = None;
            }
        }
    }
}

/// `[batch, 3, 224, 224]`-style text for messages.
pub fn describe_dims(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Known(n) => n.to_string(),
            Dim::Sym(s) => s.clone(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn summary(v: &memeguard_onnx::proto::ValueInfoProto) -> ValueSummary {
    ValueSummary { name: v.name.clone().unwrap_or_default(), dtype: value_dtype(v), dims: value_dims(v) }
}

fn is_parameter(t: &TensorProto) -> bool {
    t.data_type == Some(DataType::Float as i32) && t.dims.iter().product::<i64>() > 1
}
