//! Structural validation of a model, the checks of `onnx.checker` that matter for the
//! graphs we build: header versions, SSA form in topological order, every value
//! defined before use, typed and shaped graph inputs/outputs, standard domains only,
//! and axes written the way the imported opset wants them (an attribute before the
//! opset that made them an input, an input from then on).

use std::collections::HashSet;

use crate::builder::{value_dims, value_dtype};
use crate::proto::{ModelProto, NodeProto};
use crate::upgrade::{axes_input_since, default_opset};
use crate::{IR_VERSION, OPSET_VERSION};

/// Highest versions ONNX Runtime 1.31 accepts.
pub const MAX_RUNTIME_IR_VERSION: i64 = 13;
/// Highest default-domain opset ONNX Runtime 1.31 accepts.
pub const MAX_RUNTIME_OPSET: i64 = 26;

/// Everything wrong with a model, one message per problem.
#[derive(Debug, thiserror::Error)]
#[error("invalid ONNX model:\n  {}", .problems.join("\n  "))]
pub struct CheckError {
    pub problems: Vec<String>,
}

/// Validates `model`. With `standard_only`, any node outside the default ONNX domain
/// (for example `com.microsoft`) is a problem too.
pub fn check_model(model: &ModelProto, standard_only: bool) -> Result<(), CheckError> {
    let mut problems = Vec::new();
    match model.ir_version {
        None => problems.push("ir_version is not set".to_string()),
        Some(v) if v > MAX_RUNTIME_IR_VERSION => problems
            .push(format!("ir_version {v} is above {MAX_RUNTIME_IR_VERSION}, the most ONNX Runtime 1.31 accepts")),
        _ => {}
    }
    let opset = default_opset(model);
    match opset {
        None => problems.push("no default-domain opset is imported".to_string()),
        Some(v) if v > MAX_RUNTIME_OPSET => {
            problems.push(format!("opset {v} is above {MAX_RUNTIME_OPSET}, the most ONNX Runtime 1.31 accepts"))
        }
        _ => {}
    }
    let Some(graph) = model.graph.as_ref() else {
        problems.push("model has no graph".to_string());
        return Err(CheckError { problems });
    };
    let mut defined: HashSet<&str> = HashSet::new();
    for v in &graph.input {
        let name = v.name.as_deref().unwrap_or("");
        if value_dtype(v).is_none() {
            problems.push(format!("graph input `{name}` has no tensor element type"));
        }
        if !defined.insert(name) {
            problems.push(format!("graph input `{name}` is declared twice"));
        }
    }
    for t in &graph.initializer {
        let name = t.name.as_deref().unwrap_or("");
        if name.is_empty() {
            problems.push("an initializer has no name".to_string());
        }
        // An initializer may also be a graph input (an overridable default).
        if !defined.insert(name) && !graph.input.iter().any(|v| v.name.as_deref() == Some(name)) {
            problems.push(format!("initializer `{name}` is defined twice"));
        }
    }
    for (i, node) in graph.node.iter().enumerate() {
        let op = node.op_type.as_deref().unwrap_or("");
        let label = format!("node {i} `{}` ({op})", node.name.as_deref().unwrap_or(""));
        if op.is_empty() {
            problems.push(format!("{label} has no op_type"));
        }
        let domain = node.domain.as_deref().unwrap_or("");
        if standard_only && !(domain.is_empty() || domain == "ai.onnx") {
            problems.push(format!("{label} uses domain `{domain}`; only the default ONNX domain is allowed"));
        }
        if let Some(opset) = opset.filter(|_| domain.is_empty() || domain == "ai.onnx") {
            problems.extend(opset_form_problems(node, op, opset, &label));
        }
        for input in &node.input {
            if !input.is_empty() && !defined.contains(input.as_str()) {
                problems.push(format!("{label} reads `{input}`, which is not defined before it"));
            }
        }
        for output in &node.output {
            if output.is_empty() {
                continue;
            }
            if !defined.insert(output.as_str()) {
                problems.push(format!("{label} writes `{output}`, which is already defined (graphs are SSA)"));
            }
        }
    }
    for v in &graph.output {
        let name = v.name.as_deref().unwrap_or("");
        if !defined.contains(name) {
            problems.push(format!("graph output `{name}` is never produced"));
        }
        if value_dtype(v).is_none() {
            problems.push(format!("graph output `{name}` has no tensor element type"));
        }
        if value_dims(v).is_none() {
            problems.push(format!("graph output `{name}` has no shape"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(CheckError { problems }) }
}

/// What `onnx.checker` refuses in how `node` is written for `opset`: axes as an
/// attribute where the opset wants an input, or as an input before the opset has one.
fn opset_form_problems(node: &NodeProto, op: &str, opset: i64, label: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some((attr, since)) = axes_input_since(op) {
        let has_attr = node.attribute.iter().any(|a| a.name.as_deref() == Some(attr));
        if opset >= since && has_attr {
            problems.push(format!(
                "{label} has an `{attr}` attribute, which opset {opset} does not have (from opset {since} it is an input)"
            ));
        }
        if opset < since && node.input.len() > 1 {
            problems.push(format!(
                "{label} takes `{attr}` as an input, which needs opset {since} (the model imports {opset})"
            ));
        }
    }
    if op == "Split"
        && opset >= 18
        && node.input.get(1).is_none_or(|s| s.is_empty())
        && !node.attribute.iter().any(|a| a.name.as_deref() == Some("num_outputs"))
    {
        problems.push(format!("{label} needs a `split` input or a `num_outputs` attribute at opset {opset}"));
    }
    problems
}

/// The `domain::op_type` of every node outside the default ONNX domain (empty when the
/// graph uses standard ops only).
pub fn foreign_ops(model: &ModelProto) -> Vec<String> {
    let mut out: Vec<String> = model
        .graph
        .iter()
        .flat_map(|g| g.node.iter())
        .filter(|n| !matches!(n.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .map(|n| format!("{}::{}", n.domain.as_deref().unwrap_or(""), n.op_type.as_deref().unwrap_or("")))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The versions every graph we build uses, for messages and manifests.
pub fn versions() -> (i64, i64) {
    (IR_VERSION, OPSET_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataType, GraphBuilder, dims};

    #[test]
    fn a_built_graph_passes() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DataType::Float, &dims!["n", 3]);
        let y = b.op("Relu", &[&x], &[]);
        b.output(&y, DataType::Float, &dims!["n", 3]);
        check_model(&b.build(), true).unwrap();
    }

    /// The same refusals as `onnx.checker` (checked by hand with onnx 1.23: "Unrecognized
    /// attribute: axes for operator ReduceMean", "has input size 2 not in range").
    #[test]
    fn axes_must_take_the_form_of_the_imported_opset() {
        use crate::Attr;
        let build = |opset: i64, f: &dyn Fn(&mut GraphBuilder, &str) -> String| {
            let mut b = GraphBuilder::new("g");
            let x = b.input("x", DataType::Float, &dims![2, 3]);
            let y = f(&mut b, &x);
            b.output(&y, DataType::Float, &dims![]);
            let mut m = b.build();
            m.opset_import[0].version = Some(opset);
            m
        };
        let attr_mean = |b: &mut GraphBuilder, x: &str| b.op("ReduceMean", &[x], &[("axes", Attr::Ints(vec![1]))]);
        let input_mean = |b: &mut GraphBuilder, x: &str| {
            let a = b.const_i64s("a", &[1]);
            b.op("ReduceMean", &[x, &a], &[])
        };
        let attr_sum = |b: &mut GraphBuilder, x: &str| b.op("ReduceSum", &[x], &[("axes", Attr::Ints(vec![1]))]);
        let input_sum = |b: &mut GraphBuilder, x: &str| {
            let a = b.const_i64s("a", &[1]);
            b.op("ReduceSum", &[x, &a], &[])
        };
        check_model(&build(17, &attr_mean), true).unwrap();
        check_model(&build(18, &input_mean), true).unwrap();
        check_model(&build(13, &input_sum), true).unwrap();
        let err = check_model(&build(20, &attr_mean), true).unwrap_err().to_string();
        assert!(err.contains("`axes` attribute, which opset 20 does not have"), "{err}");
        let err = check_model(&build(17, &input_mean), true).unwrap_err().to_string();
        assert!(err.contains("needs opset 18 (the model imports 17)"), "{err}");
        let err = check_model(&build(13, &attr_sum), true).unwrap_err().to_string();
        assert!(err.contains("`axes` attribute, which opset 13 does not have"), "{err}");
        let err = check_model(&build(12, &input_sum), true).unwrap_err().to_string();
        assert!(err.contains("needs opset 13"), "{err}");
        let split = |b: &mut GraphBuilder, x: &str| b.node("Split", &[x], 1, &[("axis", Attr::Int(0))]).remove(0);
        check_model(&build(17, &split), true).unwrap();
        let err = check_model(&build(18, &split), true).unwrap_err().to_string();
        assert!(err.contains("`num_outputs`"), "{err}");
    }

    #[test]
    fn undefined_inputs_foreign_domains_and_missing_outputs_are_reported() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DataType::Float, &dims![3]);
        let y = b.op("Add", &[&x, "nowhere"], &[]);
        b.output("missing", DataType::Float, &dims![3]);
        b.output(&y, DataType::Float, &dims![3]);
        let mut m = b.build();
        m.graph.as_mut().unwrap().node[0].domain = Some("com.microsoft".into());
        m.ir_version = Some(14);
        let err = check_model(&m, true).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`nowhere`"), "{text}");
        assert!(text.contains("com.microsoft"), "{text}");
        assert!(text.contains("`missing` is never produced"), "{text}");
        assert!(text.contains("ir_version 14"), "{text}");
    }
}
