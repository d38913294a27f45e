//! Windows of a tensor: Slice and Pad, each the other's gradient where that is exact.
//! Slice with unit steps is undone by a zero Pad; Pad in constant mode by a Pad with
//! the negated pads (which crops). Strided or reversed slices and Pad's reflect, edge
//! and wrap modes send `GO` back through an index map with a scatter-add.

use std::collections::HashMap;

use memeguard_onnx::{Attr, DataType, Tensor};

use super::indexing::grad_through_index_map;
use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("Slice", slice);
    map.insert("Pad", pad);
}

/// `value` as int64 (Slice takes int32 or int64 indices).
fn as_i64(c: &mut RuleCtx, value: &str) -> String {
    if c.dtype(value) == DataType::Int64 {
        value.to_string()
    } else {
        c.op("Cast", &[value], &[("to", Attr::Int(DataType::Int64 as i64))])
    }
}

/// A Slice start or end (for step 1) made concrete: negative values count from the
/// end, then the result is clamped to `[0, dims]`. Clamping to `dims` first keeps
/// `i64::MAX` ("to the end") from overflowing when `dims` is added.
fn clamp_index(c: &mut RuleCtx, v: &str, dims: &str) -> String {
    let zero = c.const_i64s(&[0]);
    let capped = c.op("Min", &[v, dims], &[]);
    let negative = c.op("Less", &[&capped, &zero], &[]);
    let from_end = c.op("Add", &[&capped, dims], &[]);
    let counted = c.op("Where", &[&negative, &from_end, &capped], &[]);
    c.op("Max", &[&counted, &zero], &[])
}

fn slice(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    if !c.needs_grad(0) {
        return Ok(());
    }
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let inputs: Vec<String> = (0..c.num_inputs()).map(|i| c.input(i).to_string()).collect();
    let unit_steps = !c.has_input(4) || c.const_input(&inputs[4]).is_some_and(|s| s.iter().all(|&v| v == 1));
    if !unit_steps {
        // Strided, reversed or run-time steps: slice the index map the same way.
        let gi = grad_through_index_map(c, &x, &g, |c, iota| {
            let mut args: Vec<&str> = inputs.iter().map(String::as_str).collect();
            args[0] = iota;
            c.op("Slice", &args, &[])
        });
        c.set_grad(0, gi);
        return Ok(());
    }
    // GO sits at [start, end) of each sliced axis: pad it with zeros to the input's size.
    let starts = as_i64(c, &inputs[1]);
    let ends = as_i64(c, &inputs[2]);
    let axes = if c.has_input(3) {
        as_i64(c, &inputs[3])
    } else {
        let (zero, one) = (c.constant(Tensor::scalar_i64(0)), c.constant(Tensor::scalar_i64(1)));
        let n = c.op("Size", &[&starts], &[]);
        c.op("Range", &[&zero, &n, &one], &[])
    };
    let shape = c.shape_of(&x);
    let dims = c.op("Gather", &[&shape, &axes], &[("axis", Attr::Int(0))]);
    let begin = clamp_index(c, &starts, &dims);
    let end = clamp_index(c, &ends, &dims);
    let end = c.op("Max", &[&end, &begin], &[]);
    let after = c.op("Sub", &[&dims, &end], &[]);
    let pads = c.op("Concat", &[&begin, &after], &[("axis", Attr::Int(0))]);
    let gi = c.op("Pad", &[&g, &pads, "", &axes], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn pad(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let pads = c.input(1).to_string();
    let axes = c.input(3).to_string();
    let mode = c.attr_str("mode").unwrap_or_else(|| "constant".into());
    let gi = if mode == "constant" {
        // Padding adds values that do not depend on x; negative pads crop. Pad with the
        // negated pads undoes both (ONNX Pad crops on negative pads).
        let negated = c.op("Neg", &[&pads], &[]);
        c.op("Pad", &[&g, &negated, "", &axes], &[])
    } else {
        let with_mode = [("mode", Attr::Str(mode))];
        grad_through_index_map(c, &x, &g, |c, iota| c.op("Pad", &[iota, &pads, "", &axes], &with_mode))
    };
    if c.needs_grad(2) {
        // The constant value fills every padded position: its gradient is the part of
        // GO that did not come from x.
        let cv = c.input(2).to_string();
        let total = c.op("ReduceSum", &[&g], &[("keepdims", Attr::Int(0))]);
        let from_x = c.op("ReduceSum", &[&gi], &[("keepdims", Attr::Int(0))]);
        let rest = c.op("Sub", &[&total, &from_x], &[]);
        let shape = c.shape_of(&cv);
        let gcv = c.op("Reshape", &[&rest, &shape], &[]);
        c.set_grad(2, gcv);
    }
    if c.needs_grad(0) {
        c.set_grad(0, gi);
    }
    Ok(())
}
