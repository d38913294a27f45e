//! Indexing: Gather, GatherElements and GatherND, whose gradients scatter-add `GO` back into a
//! zero tensor (repeated indices accumulate), and the shared helpers other data
//! movement rules use to send a gradient back through an index map; ScatterND and
//! ScatterElements (the gradient of the overwritten positions is cut out of `GO`, the
//! updates' gradient is gathered from it), and TopK (its values' gradient is scattered
//! back to where they were taken from).

use std::collections::HashMap;

use memeguard_onnx::{Attr, Tensor};

use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("Gather", gather);
    map.insert("GatherElements", gather_elements);
    map.insert("GatherND", gather_nd);
    map.insert("ScatterND", scatter_nd);
    map.insert("ScatterElements", scatter_elements);
    map.insert("TopK", top_k);
}

/// Zeros with the shape and element type of `like` (a float value).
pub(super) fn zeros_like(c: &mut RuleCtx, like: &str) -> String {
    let dtype = c.dtype(like);
    let shape = c.shape_of(like);
    c.filled_of_shape(&shape, dtype, 0.0)
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

/// `y = GatherND(x, idx, batch_dims = b)`: `dx = ScatterND(0, idx', GO, add)`, where
/// `idx'` spells out the batch coordinates ScatterND has no `batch_dims` for: for
/// `idx` of shape `[B₁…B_b, Q…, k]`, each batch axis j contributes `iota(B_j)` broadcast
/// to `[B₁…B_b, Q…, 1]`, concatenated before the `k` given coordinates.
fn gather_nd(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    if !c.needs_grad(0) {
        return Ok(());
    }
    let g = c.grad_out();
    let (x, idx) = (c.input(0).to_string(), c.input(1).to_string());
    let b = c.attr_int("batch_dims", 0);
    let idx = if c.dtype(&idx) == memeguard_onnx::DataType::Int64 {
        idx
    } else {
        c.op("Cast", &[&idx], &[("to", Attr::Int(memeguard_onnx::DataType::Int64 as i64))])
    };
    let full = if b == 0 {
        idx
    } else {
        let r =
            c.rank(&idx).ok_or_else(|| c.unsupported("with batch_dims > 0, the rank of the indices must be known"))?;
        if b < 0 || b as usize >= r {
            return Err(c.unsupported(format!("batch_dims {b} with indices of rank {r}")));
        }
        // The shape every coordinate column takes: idx's shape with its last dim 1.
        let shape = c.shape_of(&idx);
        let (lo, last) = (c.const_i64s(&[0]), c.const_i64s(&[-1]));
        let lead = c.op("Slice", &[&shape, &lo, &last], &[]);
        let one = c.const_i64s(&[1]);
        let column = c.op("Concat", &[&lead, &one], &[("axis", Attr::Int(0))]);
        let (zero, step) = (c.constant(Tensor::scalar_i64(0)), c.constant(Tensor::scalar_i64(1)));
        let mut parts = Vec::new();
        for j in 0..b as usize {
            let at = c.constant(Tensor::scalar_i64(j as i64));
            let n = c.op("Gather", &[&shape, &at], &[]);
            let iota = c.op("Range", &[&zero, &n, &step], &[]);
            let mut along = vec![1i64; r];
            along[j] = -1;
            let along = c.const_i64s(&along);
            let iota = c.op("Reshape", &[&iota, &along], &[]);
            parts.push(c.op("Expand", &[&iota, &column], &[]));
        }
        parts.push(idx);
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        c.op("Concat", &refs, &[("axis", Attr::Int(-1))])
    };
    let zeros = zeros_like(c, &x);
    let gi = c.op("ScatterND", &[&zeros, &full, &g], &[("reduction", Attr::Str("add".into()))]);
    c.set_grad(0, gi);
    Ok(())
}

/// The scatter's `reduction`: `none` and `add` have gradients; `mul`, `max` and `min`
/// are refused.
fn scatter_reduction(c: &RuleCtx) -> Result<bool, AutodiffError> {
    match c.attr_str("reduction").as_deref() {
        None | Some("none") => Ok(false),
        Some("add") => Ok(true),
        Some(other) => Err(c.unsupported(format!("reduction `{other}` (only `none` and `add` have gradients here)"))),
    }
}

/// `y = ScatterND(data, idx, updates)`: with `reduction = none` the overwritten
/// positions take no gradient back to `data` (`ScatterND(GO, idx, 0)`), and with `add`
/// all of `GO` does; `dupdates = GatherND(GO, idx)` either way.
fn scatter_nd(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let add = scatter_reduction(c)?;
    let g = c.grad_out();
    let (idx, updates) = (c.input(1).to_string(), c.input(2).to_string());
    if c.needs_grad(0) {
        let dd = if add {
            g.clone()
        } else {
            let zeros = zeros_like(c, &updates);
            c.op("ScatterND", &[&g, &idx, &zeros], &[])
        };
        c.set_grad(0, dd);
    }
    if c.needs_grad(2) {
        let du = c.op("GatherND", &[&g, &idx], &[]);
        c.set_grad(2, du);
    }
    Ok(())
}

/// `y = ScatterElements(data, idx, updates, axis)`: as ScatterND, with
/// `dupdates = GatherElements(GO, idx, axis)`.
fn scatter_elements(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let add = scatter_reduction(c)?;
    let g = c.grad_out();
    let (idx, updates) = (c.input(1).to_string(), c.input(2).to_string());
    let axis = Attr::Int(c.attr_int("axis", 0));
    if c.needs_grad(0) {
        let dd = if add {
            g.clone()
        } else {
            let zeros = zeros_like(c, &updates);
            c.op("ScatterElements", &[&g, &idx, &zeros], &[("axis", axis.clone())])
        };
        c.set_grad(0, dd);
    }
    if c.needs_grad(2) {
        let du = c.op("GatherElements", &[&g, &idx], &[("axis", axis)]);
        c.set_grad(2, du);
    }
    Ok(())
}

/// `(values, indices) = TopK(x, k, axis)`: the values' gradient goes back to the
/// positions they were taken from, `ScatterElements(0, indices, GO(0), axis)` (the k
/// indices along an axis are distinct). The indices have no gradient.
fn top_k(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let Some(g) = c.grad_output(0) else {
        return Ok(());
    };
    let x = c.input(0).to_string();
    let indices = c.output(1).to_string();
    if indices.is_empty() {
        return Err(c.unsupported("the indices output is needed to route the gradient (it has no name)"));
    }
    let zeros = zeros_like(c, &x);
    let dx = c.op("ScatterElements", &[&zeros, &indices, &g], &[("axis", Attr::Int(c.attr_int("axis", -1)))]);
    c.set_grad(0, dx);
    Ok(())
}
