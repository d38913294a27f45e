//! Bringing a graph written for an older default-domain opset up to [`OPSET_VERSION`],
//! so nodes we append (reductions with axes as an input, opset-20 semantics) and nodes
//! an exporter wrote agree on one opset.
//!
//! Only the changes between opset [`MIN_UPGRADE_OPSET`] and [`OPSET_VERSION`] that
//! alter how a node is written are rewritten: attributes that became inputs, `Split`'s
//! `num_outputs`, and the defaults and names that changed under `GridSample`, `RoiAlign`
//! and `BatchNormalization`. Ops whose meaning changed in a way no local rewrite keeps
//! (`DFT`) are refused, naming the node. Graphs already at a newer opset are left alone.

use std::collections::HashSet;

use crate::OPSET_VERSION;
use crate::builder::{Attr, attr_str};
use crate::proto::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto};
use crate::tensor::Tensor;

/// The oldest default-domain opset [`upgrade_opset`] takes: from 13 on, Softmax works
/// on one axis and Split/Squeeze/Unsqueeze/ReduceSum take their axes as inputs.
pub const MIN_UPGRADE_OPSET: i64 = 13;

/// Ops whose axes (`split` for Split) moved from an attribute to an input, with the
/// attribute's name and the opset from which the input form is the only one.
pub const AXES_BECAME_INPUT: &[(&str, &str, i64)] = &[
    ("ReduceSum", "axes", 13),
    ("Squeeze", "axes", 13),
    ("Unsqueeze", "axes", 13),
    ("Split", "split", 13),
    ("ReduceMean", "axes", 18),
    ("ReduceMax", "axes", 18),
    ("ReduceMin", "axes", 18),
    ("ReduceProd", "axes", 18),
    ("ReduceL1", "axes", 18),
    ("ReduceL2", "axes", 18),
    ("ReduceLogSum", "axes", 18),
    ("ReduceLogSumExp", "axes", 18),
    ("ReduceSumSquare", "axes", 18),
];

/// For an op whose axes became an input: the attribute's name and the opset from which
/// only the input is valid.
pub fn axes_input_since(op_type: &str) -> Option<(&'static str, i64)> {
    AXES_BECAME_INPUT.iter().find(|(op, _, _)| *op == op_type).map(|&(_, attr, since)| (attr, since))
}

/// Why a graph cannot be upgraded.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("the model imports no default-domain opset")]
    NoDefaultOpset,
    #[error(
        "opset {0} is older than {MIN_UPGRADE_OPSET}, the oldest that can be brought to opset {OPSET_VERSION}; \
         re-export it with opset 17 or {OPSET_VERSION}"
    )]
    TooOld(i64),
    #[error("node `{node}` ({op}) cannot be brought from opset {from} to {OPSET_VERSION}: {reason}")]
    Node { node: String, op: String, from: i64, reason: String },
}

/// The model's default-domain opset version, if it imports one.
pub fn default_opset(model: &ModelProto) -> Option<i64> {
    model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
}

/// Brings `model` to opset [`OPSET_VERSION`] in place (nodes rewritten, the default-domain
/// import raised). A model at [`OPSET_VERSION`] or newer is left as it is.
pub fn upgrade_opset(model: &mut ModelProto) -> Result<(), UpgradeError> {
    let from = default_opset(model).ok_or(UpgradeError::NoDefaultOpset)?;
    if from >= OPSET_VERSION {
        return Ok(());
    }
    if let Some(graph) = model.graph.as_mut() {
        upgrade_graph(graph, from)?;
    }
    model.opset_import.retain(|o| !matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")));
    model.opset_import.insert(0, OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET_VERSION) });
    Ok(())
}

/// Rewrites the nodes of `graph` (and of its subgraphs), written for opset `from`, into
/// their [`OPSET_VERSION`] form. The caller records the new opset on the model.
pub fn upgrade_graph(graph: &mut GraphProto, from: i64) -> Result<(), UpgradeError> {
    if from >= OPSET_VERSION {
        return Ok(());
    }
    if from < MIN_UPGRADE_OPSET {
        return Err(UpgradeError::TooOld(from));
    }
    let mut names = Names::of(graph);
    // Values read by some node or returned by the graph (BatchNormalization's dropped
    // outputs must be unused).
    let read: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .chain(graph.output.iter().filter_map(|v| v.name.clone()))
        .collect();
    let mut new_inits = Vec::new();
    for (i, node) in graph.node.iter_mut().enumerate() {
        for a in node.attribute.iter_mut() {
            if let Some(g) = a.g.as_mut() {
                upgrade_graph(g, from)?;
            }
            for g in a.graphs.iter_mut() {
                upgrade_graph(g, from)?;
            }
        }
        let op = node.op_type.clone().unwrap_or_default();
        let fail = |node: &NodeProto, reason: &str| UpgradeError::Node {
            node: node.name.clone().unwrap_or_default(),
            op: op.clone(),
            from,
            reason: reason.to_string(),
        };
        if let Some((attr, _)) = axes_input_since(&op).filter(|&(_, since)| from < since)
            && let Some(pos) = node.attribute.iter().position(|a| a.name.as_deref() == Some(attr))
        {
            let values = node.attribute.remove(pos).ints;
            let name = names.fresh(&format!("{}_{attr}", node.name.clone().unwrap_or_else(|| format!("node{i}"))));
            new_inits.push(Tensor::vec_i64(&values).to_proto(&name));
            node.input.truncate(1);
            node.input.push(name);
        }
        match op.as_str() {
            // Split-18 wants the split sizes or `num_outputs`; before, equal parts were implied.
            "Split" if from < 18 => {
                let has_sizes = node.input.get(1).is_some_and(|s| !s.is_empty());
                if !has_sizes && !node.attribute.iter().any(|a| a.name.as_deref() == Some("num_outputs")) {
                    node.attribute.push(Attr::Int(node.output.len() as i64).to_proto("num_outputs"));
                }
            }
            // GridSample-20 renamed its modes (and takes N-d input); the defaults agree.
            "GridSample" if from < 20 => {
                if let Some(a) = node.attribute.iter_mut().find(|a| a.name.as_deref() == Some("mode")) {
                    let renamed: Option<&[u8]> = match a.s.as_deref() {
                        Some(b"bilinear") => Some(b"linear"),
                        Some(b"bicubic") => Some(b"cubic"),
                        _ => None,
                    };
                    if let Some(r) = renamed {
                        a.s = Some(r.to_vec());
                    }
                }
            }
            // RoiAlign-10 sampled like `output_half_pixel`; RoiAlign-16's default is `half_pixel`.
            "RoiAlign" if from < 16 && attr_str(node, "coordinate_transformation_mode").is_none() => {
                node.attribute.push(Attr::Str("output_half_pixel".into()).to_proto("coordinate_transformation_mode"));
            }
            // BatchNormalization-9 trained when it had more than one output (the last two
            // being saved statistics); from 14, `training_mode` says so and three remain.
            "BatchNormalization" if from < 14 && node.output.len() > 1 => {
                if node.output.iter().skip(3).any(|o| !o.is_empty() && read.contains(o)) {
                    return Err(fail(node, "its saved mean / saved variance outputs are used; opset 14 removed them"));
                }
                node.output.truncate(3);
                node.attribute.retain(|a| a.name.as_deref() != Some("training_mode"));
                node.attribute.push(Attr::Int(1).to_proto("training_mode"));
            }
            "DFT" if from < 20 => {
                return Err(fail(node, "DFT's axis became an input and its onesided output changed at opset 20"));
            }
            _ => {}
        }
    }
    graph.initializer.extend(new_inits);
    Ok(())
}

/// The names a graph already uses, to make new ones unique.
struct Names(HashSet<String>);

impl Names {
    fn of(graph: &GraphProto) -> Self {
        let mut used: HashSet<String> = graph.initializer.iter().filter_map(|t| t.name.clone()).collect();
        used.extend(graph.node.iter().flat_map(|n| n.output.iter().cloned()));
        used.extend(graph.node.iter().flat_map(|n| n.input.iter().cloned()));
        used.extend(graph.input.iter().chain(&graph.output).chain(&graph.value_info).filter_map(|v| v.name.clone()));
        Names(used)
    }

    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut k = 1;
        while self.0.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        self.0.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::attr_int;
    use crate::check::check_model;
    use crate::{DataType, GraphBuilder, dims};

    /// A graph as an opset-`opset` exporter writes it.
    fn old_model(opset: i64, build: impl FnOnce(&mut GraphBuilder, &str) -> Vec<String>) -> ModelProto {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DataType::Float, &dims![2, 4, 6]);
        for y in build(&mut b, &x) {
            b.output(&y, DataType::Float, &dims![]);
        }
        let mut m = b.build();
        m.opset_import[0].version = Some(opset);
        m
    }

    #[test]
    fn reductions_and_split_take_the_opset_20_form() {
        let mut m = old_model(17, |b, x| {
            let mean = b.op("ReduceMean", &[x], &[("axes", Attr::Ints(vec![-1]))]);
            let max = b.op("ReduceMax", &[x], &[]);
            let parts = b.node("Split", &[x], 2, &[("axis", Attr::Int(1))]);
            vec![mean, max, parts[0].clone(), parts[1].clone()]
        });
        assert!(check_model(&m, true).is_ok(), "the opset-17 form is valid at 17");
        upgrade_opset(&mut m).unwrap();
        assert_eq!(default_opset(&m), Some(OPSET_VERSION));
        let g = m.graph.as_ref().unwrap();
        let mean = &g.node[0];
        assert!(mean.attribute.is_empty());
        assert_eq!(mean.input.len(), 2);
        let axes = g.initializer.iter().find(|t| t.name.as_deref() == Some(mean.input[1].as_str())).unwrap();
        assert_eq!(Tensor::from_proto(axes).unwrap(), Tensor::vec_i64(&[-1]));
        assert_eq!(g.node[1].input.len(), 1, "reduce over all axes needs no axes input");
        assert_eq!(attr_int(&g.node[2], "num_outputs", 0), 2);
        check_model(&m, true).unwrap();
    }

    #[test]
    fn training_batch_norm_of_opset_9_form_gets_training_mode() {
        let mut m = old_model(13, |b, x| {
            let s = b.initializer("s", &Tensor::f32(vec![4], vec![1.0; 4]));
            let outs = b.node("BatchNormalization", &[x, &s, &s, &s, &s], 5, &[]);
            vec![outs[0].clone(), outs[1].clone()]
        });
        upgrade_opset(&mut m).unwrap();
        let bn = &m.graph.as_ref().unwrap().node[0];
        assert_eq!(bn.output.len(), 3);
        assert_eq!(attr_int(bn, "training_mode", 0), 1);
    }

    #[test]
    fn too_old_and_changed_ops_are_refused_by_name() {
        let mut m = old_model(12, |b, x| vec![b.op("Relu", &[x], &[])]);
        assert!(matches!(upgrade_opset(&mut m), Err(UpgradeError::TooOld(12))));
        let mut m = old_model(17, |b, x| vec![b.op("DFT", &[x], &[])]);
        let err = upgrade_opset(&mut m).unwrap_err().to_string();
        assert!(err.contains("(DFT)"), "{err}");
    }

    #[test]
    fn new_names_do_not_clash() {
        let mut m = old_model(17, |b, x| {
            let taken = b.initializer("r_axes", &Tensor::vec_i64(&[0]));
            let y = b.op("Unsqueeze", &[x, &taken], &[]);
            let mut node_out = b.node_named("r", "ReduceL2", &[&y], 1, &[("axes", Attr::Ints(vec![1]))]);
            vec![node_out.remove(0)]
        });
        upgrade_opset(&mut m).unwrap();
        let g = m.graph.as_ref().unwrap();
        let names: Vec<_> = g.initializer.iter().filter_map(|t| t.name.clone()).collect();
        assert_eq!(names.len(), 2);
        assert_ne!(names[0], names[1]);
        check_model(&m, true).unwrap();
    }
}
