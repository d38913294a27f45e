//! MatMul (batched, broadcast, 1-D operands) and Gemm (all trans/alpha/beta).

use std::collections::HashMap;

use memeguard_onnx::Attr;

use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("MatMul", matmul);
    map.insert("Gemm", gemm);
}

/// Swaps the last two axes of a value of rank `rank`.
fn transpose_last2(c: &mut RuleCtx, x: &str, rank: usize) -> String {
    let mut perm: Vec<i64> = (0..rank as i64).collect();
    perm.swap(rank - 2, rank - 1);
    c.op("Transpose", &[x], &[("perm", Attr::Ints(perm))])
}

fn matmul(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let (a, b) = (c.input(0).to_string(), c.input(1).to_string());
    let (Some(ra), Some(rb)) = (c.rank(&a), c.rank(&b)) else {
        return Err(c.unsupported("operand ranks must be known (declare input shapes)"));
    };
    if ra == 1 && rb == 1 {
        // A dot product: the output gradient is a scalar.
        if c.needs_grad(0) {
            let ga = c.op("Mul", &[&g, &b], &[]);
            c.set_grad(0, ga);
        }
        if c.needs_grad(1) {
            let gb = c.op("Mul", &[&g, &a], &[]);
            c.set_grad(1, gb);
        }
        return Ok(());
    }
    // Promote 1-D operands to matrices the way MatMul does, and the output gradient with them.
    let (a2, g) = if ra == 1 {
        let ax = c.const_i64s(&[0]);
        let ax2 = c.const_i64s(&[-2]);
        (c.op("Unsqueeze", &[&a, &ax], &[]), c.op("Unsqueeze", &[&g, &ax2], &[]))
    } else {
        (a.clone(), g)
    };
    let (b2, g) = if rb == 1 {
        let ax = c.const_i64s(&[1]);
        let axg = c.const_i64s(&[-1]);
        (c.op("Unsqueeze", &[&b, &ax], &[]), c.op("Unsqueeze", &[&g, &axg], &[]))
    } else {
        (b.clone(), g)
    };
    let (ra2, rb2) = (ra.max(2), rb.max(2));
    let rg = ra2.max(rb2);
    if c.needs_grad(0) {
        let bt = transpose_last2(c, &b2, rb2);
        let ga = c.op("MatMul", &[&g, &bt], &[]);
        let ga = if ra == 1 {
            // [.., 1, K] -> sum batch axes -> [K]
            let axes: Vec<i64> = (0..rg as i64 - 1).collect();
            c.reduce_sum(&ga, &axes, false)
        } else {
            c.unbroadcast(&ga, &a)
        };
        c.set_grad(0, ga);
    }
    if c.needs_grad(1) {
        let at = transpose_last2(c, &a2, ra2);
        let gb = c.op("MatMul", &[&at, &g], &[]);
        let gb = if rb == 1 {
            let mut axes: Vec<i64> = (0..rg as i64 - 2).collect();
            axes.push(rg as i64 - 1);
            c.reduce_sum(&gb, &axes, false)
        } else {
            c.unbroadcast(&gb, &b)
        };
        c.set_grad(1, gb);
    }
    Ok(())
}

fn gemm(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    // Y = alpha * op(A) op(B) + beta * C
    let g = c.grad_out();
    let (a, b) = (c.input(0).to_string(), c.input(1).to_string());
    let alpha = c.attr_float("alpha", 1.0);
    let beta = c.attr_float("beta", 1.0);
    let ta = c.attr_int("transA", 0) != 0;
    let tb = c.attr_int("transB", 0) != 0;
    if c.needs_grad(0) {
        // d op(A) = alpha * G op(B)^T; op(B)^T = B when transB else B^T.
        let d = c.op(
            "Gemm",
            &[&g, &b],
            &[("alpha", Attr::Float(alpha)), ("transA", Attr::Int(0)), ("transB", Attr::Int((!tb) as i64))],
        );
        let ga = if ta { c.op("Transpose", &[&d], &[("perm", Attr::Ints(vec![1, 0]))]) } else { d };
        c.set_grad(0, ga);
    }
    if c.needs_grad(1) {
        // d op(B) = alpha * op(A)^T G; op(A)^T = A when transA else A^T.
        let d = c.op(
            "Gemm",
            &[&a, &g],
            &[("alpha", Attr::Float(alpha)), ("transA", Attr::Int((!ta) as i64)), ("transB", Attr::Int(0))],
        );
        let gb = if tb { c.op("Transpose", &[&d], &[("perm", Attr::Ints(vec![1, 0]))]) } else { d };
        c.set_grad(1, gb);
    }
    if c.has_input(2) && c.needs_grad(2) {
        let cc = c.input(2).to_string();
        let scaled = if beta == 1.0 {
            g
        } else {
            let k = c.scalar(beta as f64, &g);
            c.op("Mul", &[&g, &k], &[])
        };
        let gc = c.unbroadcast(&scaled, &cc);
        c.set_grad(2, gc);
    }
    Ok(())
}
