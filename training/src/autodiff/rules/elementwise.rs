//! Arithmetic with broadcasting and simple unary functions.

use std::collections::HashMap;

use memeguard_onnx::{Attr, DataType};

use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("Add", add);
    map.insert("Sub", sub);
    map.insert("Mul", mul);
    map.insert("Div", div);
    map.insert("Neg", neg);
    map.insert("Pow", pow);
    map.insert("Sqrt", sqrt);
    map.insert("Reciprocal", reciprocal);
    map.insert("Exp", exp);
    map.insert("Log", log);
    map.insert("Abs", abs);
    map.insert("Identity", identity);
    map.insert("Cast", cast);
    map.insert("CastLike", cast_like);
    map.insert("Clip", clip);
    map.insert("Min", min_max);
    map.insert("Max", min_max);
    map.insert("Where", where_);
    map.insert("Sum", sum);
    map.insert("Mean", mean);
    map.insert("Sin", sin);
    map.insert("Cos", cos);
}

fn add(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    for i in 0..2 {
        if c.needs_grad(i) {
            let x = c.input(i).to_string();
            let gi = c.unbroadcast(&g, &x);
            c.set_grad(i, gi);
        }
    }
    Ok(())
}

fn sum(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    for i in 0..c.num_inputs() {
        if c.needs_grad(i) {
            let x = c.input(i).to_string();
            let gi = c.unbroadcast(&g, &x);
            c.set_grad(i, gi);
        }
    }
    Ok(())
}

/// `Mean(x₁..xₙ)`: each input gets `GO / n`, summed back over its broadcast axes.
fn mean(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let n = c.scalar(c.num_inputs() as f64, &g);
    let share = c.op("Div", &[&g, &n], &[]);
    for i in 0..c.num_inputs() {
        if c.needs_grad(i) {
            let x = c.input(i).to_string();
            let gi = c.unbroadcast(&share, &x);
            c.set_grad(i, gi);
        }
    }
    Ok(())
}

fn sin(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let d = c.op("Cos", &[&x], &[]);
    let gi = c.op("Mul", &[&g, &d], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn cos(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let s = c.op("Sin", &[&x], &[]);
    let d = c.op("Mul", &[&g, &s], &[]);
    let gi = c.op("Neg", &[&d], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn sub(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let (a, b) = (c.input(0).to_string(), c.input(1).to_string());
    if c.needs_grad(0) {
        let gi = c.unbroadcast(&g, &a);
        c.set_grad(0, gi);
    }
    if c.needs_grad(1) {
        let n = c.op("Neg", &[&g], &[]);
        let gi = c.unbroadcast(&n, &b);
        c.set_grad(1, gi);
    }
    Ok(())
}

fn mul(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let (a, b) = (c.input(0).to_string(), c.input(1).to_string());
    if c.needs_grad(0) {
        let m = c.op("Mul", &[&g, &b], &[]);
        let gi = c.unbroadcast(&m, &a);
        c.set_grad(0, gi);
    }
    if c.needs_grad(1) {
        let m = c.op("Mul", &[&g, &a], &[]);
        let gi = c.unbroadcast(&m, &b);
        c.set_grad(1, gi);
    }
    Ok(())
}

fn div(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let (a, b, y) = (c.input(0).to_string(), c.input(1).to_string(), c.output(0).to_string());
    if c.needs_grad(0) {
        let d = c.op("Div", &[&g, &b], &[]);
        let gi = c.unbroadcast(&d, &a);
        c.set_grad(0, gi);
    }
    if c.needs_grad(1) {
        // d(a/b)/db = -y/b
        let r = c.op("Div", &[&y, &b], &[]);
        let m = c.op("Mul", &[&g, &r], &[]);
        let n = c.op("Neg", &[&m], &[]);
        let gi = c.unbroadcast(&n, &b);
        c.set_grad(1, gi);
    }
    Ok(())
}

fn neg(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let n = c.op("Neg", &[&g], &[]);
    c.set_grad(0, n);
    Ok(())
}

fn pow(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let (a, e, y) = (c.input(0).to_string(), c.input(1).to_string(), c.output(0).to_string());
    if c.needs_grad(0) {
        // d(a^e)/da = e * a^(e-1); the exponent is cast to a's type if it differs.
        let e = if c.dtype(&e) != c.dtype(&a) {
            let to = c.dtype(&a) as i64;
            c.op("Cast", &[&e], &[("to", Attr::Int(to))])
        } else {
            e.clone()
        };
        let one = c.scalar(1.0, &a);
        let em1 = c.op("Sub", &[&e, &one], &[]);
        let p = c.op("Pow", &[&a, &em1], &[]);
        let d = c.op("Mul", &[&e, &p], &[]);
        let m = c.op("Mul", &[&g, &d], &[]);
        let gi = c.unbroadcast(&m, &a);
        c.set_grad(0, gi);
    }
    if c.needs_grad(1) {
        // d(a^e)/de = a^e * ln(a), taken as 0 where a = 0 (as PyTorch does: the limit
        // for e > 0); negative bases give NaN, as their logarithm does.
        let ln = c.op("Log", &[&a], &[]);
        let d = c.op("Mul", &[&y, &ln], &[]);
        let zero = c.scalar(0.0, &a);
        let at_zero = c.op("Equal", &[&a, &zero], &[]);
        let d = c.op("Where", &[&at_zero, &zero, &d], &[]);
        let m = c.op("Mul", &[&g, &d], &[]);
        let m = if c.dtype(&e) != c.dtype(&y) {
            let to = c.dtype(&e) as i64;
            c.op("Cast", &[&m], &[("to", Attr::Int(to))])
        } else {
            m
        };
        let gi = c.unbroadcast(&m, &e);
        c.set_grad(1, gi);
    }
    Ok(())
}

fn sqrt(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let y = c.output(0).to_string();
    let two = c.scalar(2.0, &y);
    let d = c.op("Mul", &[&y, &two], &[]);
    let gi = c.op("Div", &[&g, &d], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn reciprocal(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let y = c.output(0).to_string();
    let y2 = c.op("Mul", &[&y, &y], &[]);
    let m = c.op("Mul", &[&g, &y2], &[]);
    let gi = c.op("Neg", &[&m], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn exp(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let y = c.output(0).to_string();
    let gi = c.op("Mul", &[&g, &y], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn log(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let a = c.input(0).to_string();
    let gi = c.op("Div", &[&g, &a], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn abs(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let a = c.input(0).to_string();
    let s = c.op("Sign", &[&a], &[]);
    let gi = c.op("Mul", &[&g, &s], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn identity(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    c.set_grad(0, g);
    Ok(())
}

fn cast(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let a = c.input(0).to_string();
    let from = c.dtype(&a);
    if !matches!(from, DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16) {
        return Ok(());
    }
    let g = c.grad_out();
    let gi = c.op("Cast", &[&g], &[("to", Attr::Int(from as i64))]);
    c.set_grad(0, gi);
    Ok(())
}

/// `CastLike(x, like)`: the gradient goes back to `x` in `x`'s type; `like` only gives
/// the type. A plain Cast when that type is known (CastLike is a function op, with no
/// kernel of its own in ONNX Runtime's CUDA provider).
fn cast_like(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let a = c.input(0).to_string();
    let known = c.shapes().dtype(&a);
    if !matches!(c.dtype(&a), DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16) {
        return Ok(());
    }
    let g = c.grad_out();
    let gi = match known {
        Some(t) => c.op("Cast", &[&g], &[("to", Attr::Int(t as i64))]),
        None => c.op("CastLike", &[&g, &a], &[]),
    };
    c.set_grad(0, gi);
    Ok(())
}

fn clip(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    if c.needs_grad(1) || c.needs_grad(2) {
        return Err(c.unsupported("clip bounds that depend on a parameter are not supported"));
    }
    let g = c.grad_out();
    let a = c.input(0).to_string();
    // Gradient passes where min <= a <= max.
    let mut mask: Option<String> = None;
    if c.has_input(1) {
        let lo = c.input(1).to_string();
        mask = Some(c.op("GreaterOrEqual", &[&a, &lo], &[]));
    }
    if c.has_input(2) {
        let hi = c.input(2).to_string();
        let m = c.op("LessOrEqual", &[&a, &hi], &[]);
        mask = Some(match mask {
            Some(prev) => c.op("And", &[&prev, &m], &[]),
            None => m,
        });
    }
    let gi = match mask {
        Some(m) => {
            let zero = c.scalar(0.0, &g);
            c.op("Where", &[&m, &g, &zero], &[])
        }
        None => g,
    };
    c.set_grad(0, gi);
    Ok(())
}

/// The winner takes the gradient; ties go to the first input that reaches the extreme.
fn min_max(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let n = c.num_inputs();
    if n == 1 {
        c.set_grad(0, g);
        return Ok(());
    }
    let y = c.output(0).to_string();
    let zero = c.scalar(0.0, &g);
    // `taken`: where an earlier input already was the extreme.
    let mut taken: Option<String> = None;
    for i in 0..n {
        let x = c.input(i).to_string();
        let hit = c.op("Equal", &[&x, &y], &[]);
        let wins = match &taken {
            Some(t) => {
                let free = c.op("Not", &[t], &[]);
                c.op("And", &[&hit, &free], &[])
            }
            None => hit.clone(),
        };
        if c.needs_grad(i) {
            let w = c.op("Where", &[&wins, &g, &zero], &[]);
            let gi = c.unbroadcast(&w, &x);
            c.set_grad(i, gi);
        }
        if i + 1 < n {
            taken = Some(match taken {
                Some(t) => c.op("Or", &[&t, &hit], &[]),
                None => hit,
            });
        }
    }
    Ok(())
}

fn where_(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let (cond, x, y) = (c.input(0).to_string(), c.input(1).to_string(), c.input(2).to_string());
    let zero = c.scalar(0.0, &g);
    if c.needs_grad(1) {
        let w = c.op("Where", &[&cond, &g, &zero], &[]);
        let gi = c.unbroadcast(&w, &x);
        c.set_grad(1, gi);
    }
    if c.needs_grad(2) {
        let w = c.op("Where", &[&cond, &zero, &g], &[]);
        let gi = c.unbroadcast(&w, &y);
        c.set_grad(2, gi);
    }
    Ok(())
}
