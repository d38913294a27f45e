//! Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceL2, ReduceSumSquare,
//! ReduceLogSumExp, ReduceProd, ReduceL1. They share one helper that brings a reduced value back to the
//! input's shape.

use std::collections::HashMap;

use memeguard_onnx::Attr;

use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("ReduceSum", reduce_sum);
    map.insert("ReduceMean", reduce_mean);
    map.insert("ReduceMax", reduce_extreme);
    map.insert("ReduceMin", reduce_extreme);
    map.insert("ReduceL2", reduce_l2);
    map.insert("ReduceSumSquare", reduce_sum_square);
    map.insert("ReduceLogSumExp", reduce_log_sum_exp);
    map.insert("ReduceProd", reduce_prod);
    map.insert("ReduceL1", reduce_l1);
}

/// The reduced axes (normalised, sorted), or `None` for "all axes".
fn reduced_axes(c: &RuleCtx) -> Result<Option<Vec<i64>>, AutodiffError> {
    let axes = match c.attr_ints("axes") {
        Some(a) if !a.is_empty() => Some(a),
        _ if c.has_input(1) => {
            let name = c.input(1).to_string();
            Some(c.const_input(&name).ok_or_else(|| c.unsupported("the axes input must be a constant"))?)
        }
        _ => None,
    };
    let Some(axes) = axes.filter(|a| !a.is_empty()) else {
        if c.attr_int("noop_with_empty_axes", 0) != 0 {
            return Err(c.unsupported("noop_with_empty_axes=1 with empty axes (an identity) is not supported"));
        }
        return Ok(None);
    };
    // Without a static rank, negative axes stay negative: Unsqueeze (against the input's
    // rank, which is its output's) and ReduceSum read them the same way.
    let x = c.input(0).to_string();
    let Some(rank) = c.rank(&x) else { return Ok(Some(axes)) };
    let mut a: Vec<i64> = axes.iter().map(|&v| if v < 0 { v + rank as i64 } else { v }).collect();
    a.sort_unstable();
    Ok(Some(a))
}

/// Brings `v` (shaped like the reduction's output) to the shape with the reduced axes
/// kept as 1s, so it broadcasts against the input.
fn keepdims_form(c: &mut RuleCtx, v: &str) -> Result<String, AutodiffError> {
    if c.attr_int("keepdims", 1) != 0 {
        return Ok(v.to_string());
    }
    match reduced_axes(c)? {
        Some(axes) => {
            let ax = c.const_i64s(&axes);
            Ok(c.op("Unsqueeze", &[v, &ax], &[]))
        }
        None => {
            // Reduced to a scalar: reshape to all-ones of the input's rank (a rank-0
            // scalar broadcasts the same way when that rank is not known).
            let x = c.input(0).to_string();
            match c.rank(&x) {
                Some(rank) => {
                    let ones = c.const_i64s(&vec![1; rank]);
                    Ok(c.op("Reshape", &[v, &ones], &[]))
                }
                None => Ok(v.to_string()),
            }
        }
    }
}

/// `GO(0)` broadcast to the input's full shape.
fn expanded_grad(c: &mut RuleCtx) -> Result<String, AutodiffError> {
    let g = c.grad_out();
    let g = keepdims_form(c, &g)?;
    let x = c.input(0).to_string();
    let s = c.shape_of(&x);
    Ok(c.op("Expand", &[&g, &s], &[]))
}

/// Number of elements reduced into each output element, as a scalar of x's type.
pub(super) fn reduced_count(c: &mut RuleCtx) -> String {
    let (x, y) = (c.input(0).to_string(), c.output(0).to_string());
    let sx = c.op("Size", &[&x], &[]);
    let sy = c.op("Size", &[&y], &[]);
    let n = c.op("Div", &[&sx, &sy], &[]);
    let to = c.dtype(&x) as i64;
    c.op("Cast", &[&n], &[("to", Attr::Int(to))])
}

fn reduce_sum(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = expanded_grad(c)?;
    c.set_grad(0, g);
    Ok(())
}

fn reduce_mean(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = expanded_grad(c)?;
    let n = reduced_count(c);
    let gi = c.op("Div", &[&g, &n], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn reduce_extreme(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    // The gradient goes to the extreme element(s); ties share it equally.
    let x = c.input(0).to_string();
    let y = c.output(0).to_string();
    let yk = keepdims_form(c, &y)?;
    let hit = c.op("Equal", &[&x, &yk], &[]);
    let to = c.dtype(&x) as i64;
    let mask = c.op("Cast", &[&hit], &[("to", Attr::Int(to))]);
    let count = match reduced_axes(c)? {
        Some(axes) => c.reduce_sum(&mask, &axes, true),
        None => c.op("ReduceSum", &[&mask], &[("keepdims", Attr::Int(1))]),
    };
    let g = expanded_grad(c)?;
    let share = c.op("Div", &[&mask, &count], &[]);
    let gi = c.op("Mul", &[&g, &share], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn reduce_l2(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    // y = sqrt(sum x^2): dx = g * x / y
    let x = c.input(0).to_string();
    let y = c.output(0).to_string();
    let yk = keepdims_form(c, &y)?;
    let g = expanded_grad(c)?;
    let r = c.op("Div", &[&x, &yk], &[]);
    let gi = c.op("Mul", &[&g, &r], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn reduce_sum_square(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let x = c.input(0).to_string();
    let g = expanded_grad(c)?;
    let two = c.scalar(2.0, &x);
    let tx = c.op("Mul", &[&x, &two], &[]);
    let gi = c.op("Mul", &[&g, &tx], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn reduce_log_sum_exp(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    // dx = g * exp(x - y)
    let x = c.input(0).to_string();
    let y = c.output(0).to_string();
    let yk = keepdims_form(c, &y)?;
    let g = expanded_grad(c)?;
    let d = c.op("Sub", &[&x, &yk], &[]);
    let p = c.op("Exp", &[&d], &[]);
    let gi = c.op("Mul", &[&g, &p], &[]);
    c.set_grad(0, gi);
    Ok(())
}

/// `y = Πx`: `dx = g·Π_{j≠i} x_j`. With no zero in a reduction that is `y / x`; with
/// exactly one, the zero element gets the product of the others and the rest get 0;
/// with more, every element gets 0. No division by a zero.
fn reduce_prod(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let x = c.input(0).to_string();
    let y = c.output(0).to_string();
    let yk = keepdims_form(c, &y)?;
    let g = expanded_grad(c)?;
    let zero = c.scalar(0.0, &x);
    let one = c.scalar(1.0, &x);
    let is_zero = c.op("Equal", &[&x, &zero], &[]);
    // The product of the non-zero elements, and how many zeros each reduction holds.
    let safe = c.op("Where", &[&is_zero, &one, &x], &[]);
    let axes_input = reduced_axes(c)?;
    let (nonzero_prod, zeros) = match &axes_input {
        Some(axes) => {
            let ax = c.const_i64s(axes);
            let p = c.op("ReduceProd", &[&safe, &ax], &[("keepdims", Attr::Int(1))]);
            let to = c.dtype(&x) as i64;
            let zf = c.op("Cast", &[&is_zero], &[("to", Attr::Int(to))]);
            let n = c.op("ReduceSum", &[&zf, &ax], &[("keepdims", Attr::Int(1))]);
            (p, n)
        }
        None => {
            let p = c.op("ReduceProd", &[&safe], &[("keepdims", Attr::Int(1))]);
            let to = c.dtype(&x) as i64;
            let zf = c.op("Cast", &[&is_zero], &[("to", Attr::Int(to))]);
            let n = c.op("ReduceSum", &[&zf], &[("keepdims", Attr::Int(1))]);
            (p, n)
        }
    };
    // No zero: y / x. One zero: the others' product at the zero, 0 elsewhere. More: 0.
    let ratio = c.op("Div", &[&yk, &safe], &[]);
    let no_zero = c.op("Equal", &[&zeros, &zero], &[]);
    let one_zero = c.op("Equal", &[&zeros, &one], &[]);
    let at_zero = c.op("And", &[&one_zero, &is_zero], &[]);
    let d = c.op("Where", &[&at_zero, &nonzero_prod, &zero], &[]);
    let d = c.op("Where", &[&no_zero, &ratio, &d], &[]);
    let gi = c.op("Mul", &[&g, &d], &[]);
    c.set_grad(0, gi);
    Ok(())
}

/// `y = Σ|x|`: `dx = g·sign(x)`.
fn reduce_l1(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let x = c.input(0).to_string();
    let g = expanded_grad(c)?;
    let s = c.op("Sign", &[&x], &[]);
    let gi = c.op("Mul", &[&g, &s], &[]);
    c.set_grad(0, gi);
    Ok(())
}
