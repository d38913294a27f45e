//! Masks and running sums: Trilu and CumSum. Both are linear, so their gradient is
//! their adjoint: Trilu masks the gradient the same way; CumSum's adjoint is a cumulative
//! sum in the other direction (with the same exclusiveness).

use std::collections::HashMap;

use memeguard_onnx::Attr;

use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("Trilu", trilu);
    map.insert("CumSum", cum_sum);
}

fn trilu(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    if c.needs_grad(1) {
        return Err(c.unsupported("the diagonal offset k is an integer: it has no gradient"));
    }
    let g = c.grad_out();
    let upper = c.attr_int("upper", 1);
    let k = c.input(1).to_string();
    let inputs: Vec<&str> = if k.is_empty() { vec![&g] } else { vec![&g, &k] };
    let gi = c.op("Trilu", &inputs, &[("upper", Attr::Int(upper))]);
    c.set_grad(0, gi);
    Ok(())
}

fn cum_sum(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let axis = c.input(1).to_string();
    let exclusive = c.attr_int("exclusive", 0);
    let reverse = c.attr_int("reverse", 0);
    let gi = c.op(
        "CumSum",
        &[&g, &axis],
        &[("exclusive", Attr::Int(exclusive)), ("reverse", Attr::Int(1 - reverse.clamp(0, 1)))],
    );
    c.set_grad(0, gi);
    Ok(())
}
