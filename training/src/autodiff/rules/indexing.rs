//! Indexing: Gather and GatherElements, whose gradients scatter-add `GO` back into a
//! zero tensor (repeated indices accumulate), and the shared helpers other data
//! movement rules use to send a gradient back through an index map.

use std::collections::HashMap;

use memeguard_onnx::{Attr, Tensor};

use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("Gather", gather);
    map.insert("GatherElements", gather_elements);
}

/// Zeros with the shape and element type of `like` (a float value).
pub(super) fn zeros_like(c: &mut RuleCtx, like: &str) -> String {
    let dtype = c.dtype(like);
    let shape = c.shape_of(like);
    c.op("ConstantOfShape", &[&shape], &[("value", Attr::Tensor(Tensor::full(dtype, &[1], 0.0)))])
}

/// Sums `g` into zeros shaped like `x` at the flat (row-major) positions `positions`
/// (any shape with `g`'s element count): the scatter-add that sends a gradient back
/// to where each element came from. Repeated positions accumulate.
pub(crate) fn scatter_add_flat(c: &mut RuleCtx, x: &str, positions: &str, g: &str) -> String {
    let flat = c.const_i64s(&[-1]);
    let positions = c.op("Reshape", &[positions, &flat], &[]);
    let updates = c.op("Reshape", &[g, &flat], &[]);
    let zeros = zeros_like(c, x);
    let zeros = c.op("Reshape", &[&zeros, &flat], &[]);
    let summed = c.op(
        "ScatterElements",
        &[&zeros, &positions, &updates],
        &[("axis", Attr::Int(0)), ("reduction", Attr::Str("add".into()))],
    );
    let shape = c.shape_of(x);
    c.op("Reshape", &[&summed, &shape], &[])
}

/// The gradient of a pure data movement `y = f(x)` (every element of `y` is a copy of
/// one element of `x`), given `index_of` that applies the same movement to a tensor.
/// Applying it to `iota` (each element's flat position in `x`) tells, for every element
/// of `y`, where it came from; `GO` is scatter-added there, so elements copied several
/// times (Pad's reflect/edge modes) collect every contribution.
pub(super) fn grad_through_index_map(
    c: &mut RuleCtx,
    x: &str,
    g: &str,
    index_of: impl FnOnce(&mut RuleCtx, &str) -> String,
) -> String {
    let zero = c.constant(Tensor::scalar_i64(0));
    let one = c.constant(Tensor::scalar_i64(1));
    let size = c.op("Size", &[x], &[]);
    let flat_positions = c.op("Range", &[&zero, &size, &one], &[]);
    let shape = c.shape_of(x);
    let iota = c.op("Reshape", &[&flat_positions, &shape], &[]);
    let source = index_of(c, &iota);
    scatter_add_flat(c, x, &source, g)
}

/// `y = Gather(x, idx, axis)`: `y` has shape `D[..a] + Q + D[a+1..]`. `GO` is reshaped to
/// `D[..a] + [|Q|] + D[a+1..]`, the indices are broadcast to that shape along axis `a`,
/// and ScatterElements with `reduction="add"` sums them into zeros shaped like `x`.
/// When the rank of `x` is not known statically, the pieces of its shape are cut at run
/// time (negative `axis` counts from the end, as ScatterElements' does).
fn gather(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    if !c.needs_grad(0) {
        return Ok(());
    }
    let g = c.grad_out();
    let (x, idx) = (c.input(0).to_string(), c.input(1).to_string());
    let axis = c.attr_int("axis", 0);
    let a = match c.rank(&x) {
        Some(rank) => {
            let rank = rank as i64;
            let a = if axis < 0 { axis + rank } else { axis };
            if !(0..rank).contains(&a) {
                return Err(c.unsupported(format!("axis {axis} is out of range for rank {rank}")));
            }
            a
        }
        None => axis,
    };
    let shape = c.shape_of(&x);
    // Start and end of the dims after the axis (empty when it is the last one).
    let after_start = if a == -1 { i64::MAX } else { a + 1 };
    let (lo, mid, hi) = (c.const_i64s(&[0]), c.const_i64s(&[a]), c.const_i64s(&[after_start]));
    let end = c.const_i64s(&[i64::MAX]);
    let before = c.op("Slice", &[&shape, &lo, &mid], &[]);
    let after = c.op("Slice", &[&shape, &hi, &end], &[]);
    let minus_one = c.const_i64s(&[-1]);
    let target = c.op("Concat", &[&before, &minus_one, &after], &[("axis", Attr::Int(0))]);
    let g2 = c.op("Reshape", &[&g, &target], &[]);
    // The indices as [1, .., 1, -1, 1, .., 1] with the -1 at the axis.
    let along = match c.rank(&x) {
        Some(rank) => {
            let mut along: Vec<i64> = vec![1; rank];
            along[a as usize] = -1;
            c.const_i64s(&along)
        }
        None => {
            let one = Attr::Tensor(Tensor::vec_i64(&[1]));
            let n_before = c.shape_of(&before);
            let ones_before = c.op("ConstantOfShape", &[&n_before], &[("value", one.clone())]);
            let n_after = c.shape_of(&after);
            let ones_after = c.op("ConstantOfShape", &[&n_after], &[("value", one)]);
            c.op("Concat", &[&ones_before, &minus_one, &ones_after], &[("axis", Attr::Int(0))])
        }
    };
    let idx2 = c.op("Reshape", &[&idx, &along], &[]);
    let g2_shape = c.shape_of(&g2);
    let idx3 = c.op("Expand", &[&idx2, &g2_shape], &[]);
    let zeros = zeros_like(c, &x);
    let gi = c.op(
        "ScatterElements",
        &[&zeros, &idx3, &g2],
        &[("axis", Attr::Int(a)), ("reduction", Attr::Str("add".into()))],
    );
    c.set_grad(0, gi);
    Ok(())
}

/// `y = GatherElements(x, idx, axis)`: `dx = ScatterElements(0, idx, GO, axis, add)`.
fn gather_elements(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    if !c.needs_grad(0) {
        return Ok(());
    }
    let g = c.grad_out();
    let (x, idx) = (c.input(0).to_string(), c.input(1).to_string());
    let axis = c.attr_int("axis", 0);
    let zeros = zeros_like(c, &x);
    let gi = c.op(
        "ScatterElements",
        &[&zeros, &idx, &g],
        &[("axis", Attr::Int(axis)), ("reduction", Attr::Str("add".into()))],
    );
    c.set_grad(0, gi);
    Ok(())
}
