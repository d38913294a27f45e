//! The map from ONNX `op_type` to its gradient rule.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{AutodiffError, RuleCtx, rules};

/// A gradient rule: reads `GO(i)` and forward values, emits nodes, sets `GI(i)`.
pub type Rule = fn(&mut RuleCtx) -> Result<(), AutodiffError>;

fn registry() -> &'static HashMap<&'static str, Rule> {
    static REGISTRY: OnceLock<HashMap<&'static str, Rule>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut map = HashMap::new();
        rules::register_all(&mut map);
        map
    })
}

/// The rule for `op_type`, if there is one.
pub(crate) fn rule(op_type: &str) -> Option<Rule> {
    registry().get(op_type).copied()
}

/// True when `op_type` has a gradient rule.
pub fn has_rule(op_type: &str) -> bool {
    registry().contains_key(op_type)
}

/// Every op type with a gradient rule, sorted.
pub fn supported_ops() -> Vec<&'static str> {
    let mut ops: Vec<_> = registry().keys().copied().collect();
    ops.sort_unstable();
    ops
}

/// The op types of `model` that have no gradient rule (sorted, deduplicated).
pub fn missing_rules(model: &memeguard_onnx::proto::ModelProto) -> Vec<String> {
    let mut missing: Vec<String> = model
        .graph
        .iter()
        .flat_map(|g| g.node.iter())
        .filter_map(|n| n.op_type.clone())
        .filter(|op| !has_rule(op))
        .collect();
    missing.sort();
    missing.dedup();
    missing
}
