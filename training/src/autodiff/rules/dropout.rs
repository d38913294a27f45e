//! Dropout. In training mode `y = x · mask / (1 − ratio)`, so `dx = GO · mask / (1 − ratio)`
//! with the **same** mask the forward pass drew.
//!
//! Convention: a Dropout node that can run in training mode must expose its mask as
//! its second output (`Dropout(x, ratio, training_mode) -> (y, mask)`); the rule reads
//! that output instead of drawing a new mask. A node in training mode without it is
//! an error that says so. Without a `training_mode` input, or with a constant `false`,
//! Dropout is the identity (inference) and so is its gradient. A `training_mode` fed
//! at run time selects between the two inside the graph.

use std::collections::HashMap;

use memeguard_onnx::{Attr, TensorData};

use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("Dropout", dropout);
}

/// What is known about `training_mode` before run time.
enum Mode {
    Inference,
    Training,
    /// Decided by a value fed at run time.
    AtRunTime(String),
}

fn mode(c: &RuleCtx) -> Mode {
    if !c.has_input(2) {
        return Mode::Inference;
    }
    let t = c.input(2).to_string();
    match c.shapes().constants.get(&t).map(|t| &t.data) {
        Some(TensorData::Bool(v)) if v.iter().all(|&b| !b) => Mode::Inference,
        Some(TensorData::Bool(_)) => Mode::Training,
        _ => Mode::AtRunTime(t),
    }
}

fn dropout(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let training = match mode(c) {
        Mode::Inference => {
            c.set_grad(0, g);
            return Ok(());
        }
        Mode::Training => None,
        Mode::AtRunTime(t) => Some(t),
    };
    let mask = c.output(1).to_string();
    if mask.is_empty() {
        return Err(c.unsupported(
            "in training mode the node must expose its mask as its second output (y, mask), \
             so the gradient reuses the forward pass's mask; build it with two outputs",
        ));
    }
    if c.needs_grad(1) {
        return Err(c.unsupported("a dropout ratio that depends on a parameter is not supported"));
    }
    let x = c.input(0).to_string();
    let dtype = c.dtype(&x) as i64;
    // scale = 1 / (1 - ratio), ratio defaulting to 0.5 (ONNX) and cast to x's type.
    let one = c.scalar(1.0, &x);
    let ratio = if c.has_input(1) {
        let r = c.input(1).to_string();
        if c.dtype(&r) as i64 == dtype { r } else { c.op("Cast", &[&r], &[("to", Attr::Int(dtype))]) }
    } else {
        c.scalar(0.5, &x)
    };
    let keep = c.op("Sub", &[&one, &ratio], &[]);
    let scale = c.op("Div", &[&one, &keep], &[]);
    // In inference the mask is all true and nothing is rescaled.
    let scale = match training {
        Some(t) => c.op("Where", &[&t, &scale, &one], &[]),
        None => scale,
    };
    let kept = c.op("Cast", &[&mask], &[("to", Attr::Int(dtype))]);
    let kept = c.op("Mul", &[&kept, &scale], &[]);
    let gi = c.op("Mul", &[&g, &kept], &[]);
    c.set_grad(0, gi);
    Ok(())
}
