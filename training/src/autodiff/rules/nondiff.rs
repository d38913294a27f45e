//! Ops through which no gradient flows (shapes, comparisons, constants, indices).
//! Registering them lets graphs that use them be differentiated; their outputs are
//! integers or booleans, or constants, so their inputs receive no gradient.

use std::collections::HashMap;

use crate::autodiff::{AutodiffError, Rule, RuleCtx};

/// The ops registered here: their inputs never receive a gradient through them.
pub const NO_GRADIENT: &[&str] = &[
    "Shape",
    "Size",
    "ConstantOfShape",
    "Constant",
    "Equal",
    "Less",
    "LessOrEqual",
    "Greater",
    "GreaterOrEqual",
    "Not",
    "And",
    "Or",
    "Xor",
    "NonZero",
    "ArgMax",
    "ArgMin",
    "Range",
    "Sign",
    "Floor",
    "Ceil",
    "Round",
    "IsNaN",
    "IsInf",
    "EyeLike",
    "RandomNormalLike",
    "RandomUniformLike",
];

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    for op in NO_GRADIENT {
        map.insert(op, no_gradient);
    }
}

fn no_gradient(_: &mut RuleCtx) -> Result<(), AutodiffError> {
    Ok(())
}
