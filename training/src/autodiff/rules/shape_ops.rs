//! Ops that only rearrange or replicate elements: Reshape, Flatten, Squeeze,
//! Unsqueeze, Transpose, Concat, Split, Expand, Tile. Shapes are taken at run time
//! (`Shape`) so symbolic batch sizes work; static ranks are used only where an
//! attribute needs them (axes lists, permutations).

use std::collections::HashMap;

use memeguard_onnx::{Attr, DataType};

use super::indexing::zeros_like;
use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    for op in ["Reshape", "Flatten", "Squeeze", "Unsqueeze"] {
        map.insert(op, reshape_back);
    }
    map.insert("Transpose", transpose);
    map.insert("Concat", concat);
    map.insert("Split", split);
    map.insert("Expand", expand);
    map.insert("Tile", tile);
}

/// Ops that keep every element in order: the gradient is `GO` reshaped to the input's shape.
fn reshape_back(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let shape = c.shape_of(&x);
    let gi = c.op("Reshape", &[&g, &shape], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn transpose(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let perm = match c.attr_ints("perm") {
        Some(p) => p,
        None => {
            let rank = c.rank(&x).ok_or_else(|| c.unsupported("without `perm`, the input rank must be known"))?;
            (0..rank as i64).rev().collect()
        }
    };
    let mut inverse = vec![0i64; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        let p = usize::try_from(p)
            .ok()
            .filter(|&p| p < perm.len())
            .ok_or_else(|| c.unsupported(format!("invalid perm {perm:?}")))?;
        inverse[p] = i as i64;
    }
    let gi = c.op("Transpose", &[&g], &[("perm", Attr::Ints(inverse))]);
    c.set_grad(0, gi);
    Ok(())
}

/// The size of `value` along `axis` as a 1-element int64 vector (negative axes allowed).
fn size_along(c: &mut RuleCtx, value: &str, axis: i64) -> String {
    let shape = c.shape_of(value);
    let at = c.const_i64s(&[axis]);
    c.op("Gather", &[&shape, &at], &[("axis", Attr::Int(0))])
}

/// `GO` is split back into the pieces the inputs contributed, sized at run time.
fn concat(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let axis = c.attr_int("axis", 0);
    let n = c.num_inputs();
    if n == 1 {
        c.set_grad(0, g);
        return Ok(());
    }
    let inputs: Vec<String> = (0..n).map(|i| c.input(i).to_string()).collect();
    let sizes: Vec<String> = inputs.iter().map(|x| size_along(c, x, axis)).collect();
    let size_refs: Vec<&str> = sizes.iter().map(String::as_str).collect();
    let split = c.op("Concat", &size_refs, &[("axis", Attr::Int(0))]);
    let parts = c.ops("Split", &[&g, &split], n, &[("axis", Attr::Int(axis))]);
    for (i, part) in parts.into_iter().enumerate() {
        if c.needs_grad(i) {
            c.set_grad(i, part);
        }
    }
    Ok(())
}

/// The output gradients are concatenated back; an output with no gradient (unused)
/// contributes zeros of its shape.
fn split(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let axis = c.attr_int("axis", 0);
    let n = c.node().output.len();
    let mut parts = Vec::with_capacity(n);
    for i in 0..n {
        let part = match c.grad_output(i) {
            Some(g) => g,
            None => {
                let o = c.output(i).to_string();
                if o.is_empty() {
                    return Err(c.unsupported(format!("output {i} is omitted, so its size is unknown")));
                }
                zeros_like(c, &o)
            }
        };
        parts.push(part);
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let gi = c.op("Concat", &refs, &[("axis", Attr::Int(axis))]);
    c.set_grad(0, gi);
    Ok(())
}

/// Expand broadcasts: the shared `unbroadcast` sums it back.
fn expand(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let gi = c.unbroadcast(&g, &x);
    c.set_grad(0, gi);
    Ok(())
}

/// `y = Tile(x, r)` with `x` of shape `d`: along each axis `y` is `r_k` copies of `x`
/// laid end to end, so `GO` reshaped to `[r_0, d_0, r_1, d_1, ...]` and summed over the
/// `r` axes is the gradient. The interleaved shape is built at run time.
fn tile(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let (x, repeats) = (c.input(0).to_string(), c.input(1).to_string());
    let rank = c.rank(&x).ok_or_else(|| c.unsupported("the input rank must be known"))?;
    if rank == 0 {
        c.set_grad(0, g);
        return Ok(());
    }
    let repeats = if c.dtype(&repeats) == DataType::Int64 {
        repeats
    } else {
        c.op("Cast", &[&repeats], &[("to", Attr::Int(DataType::Int64 as i64))])
    };
    let shape = c.shape_of(&x);
    let axis1 = c.const_i64s(&[1]);
    let r_col = c.op("Unsqueeze", &[&repeats, &axis1], &[]);
    let d_col = c.op("Unsqueeze", &[&shape, &axis1], &[]);
    let pairs = c.op("Concat", &[&r_col, &d_col], &[("axis", Attr::Int(1))]);
    let flat = c.const_i64s(&[-1]);
    let interleaved = c.op("Reshape", &[&pairs, &flat], &[]);
    let blocks = c.op("Reshape", &[&g, &interleaved], &[]);
    let repeat_axes: Vec<i64> = (0..rank as i64).map(|k| 2 * k).collect();
    let gi = c.reduce_sum(&blocks, &repeat_axes, false);
    c.set_grad(0, gi);
    Ok(())
}
