//! Structural validation of a model, the checks of `onnx.checker` that matter for the
//! graphs we build: header versions, SSA form in topological order, every value
//! defined before use, typed and shaped graph inputs/outputs, standard domains only.

use std::collections::HashSet;

use crate::builder::{value_dims, value_dtype};
use crate::proto::ModelProto;
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
        Some(v) if v > MAX_RUNTIME_IR_VERSION => {
            problems.push(format!("ir_version {v} is above {MAX_RUNTIME_IR_VERSION}, the most ONNX Runtime 1.31 accepts"))
        }
        _ => {}
    }
    let default_opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.as_deref().unwrap_or("").is_empty() || o.domain.as_deref() == Some("ai.onnx"));
    match default_opset.and_then(|o| o.version) {
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
    use crate::{dims, DataType, GraphBuilder};

    #[test]
    fn a_built_graph_passes() {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DataType::Float, &dims!["n", 3]);
        let y = b.op("Relu", &[&x], &[]);
        b.output(&y, DataType::Float, &dims!["n", 3]);
        check_model(&b.build(), true).unwrap();
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
