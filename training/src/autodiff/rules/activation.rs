//! Activation functions and (log-)softmax.

use std::collections::HashMap;
use std::f64::consts::PI;

use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("Tanh", tanh);
    map.insert("Sigmoid", sigmoid);
    map.insert("Erf", erf);
    map.insert("Relu", relu);
    map.insert("LeakyRelu", leaky_relu);
    map.insert("Gelu", gelu);
    map.insert("Softmax", softmax);
    map.insert("LogSoftmax", log_softmax);
    map.insert("Softplus", softplus);
    map.insert("Elu", elu);
    map.insert("HardSigmoid", hard_sigmoid);
    map.insert("HardSwish", hard_swish);
    map.insert("Mish", mish);
    map.insert("Selu", selu);
    map.insert("PRelu", prelu);
}

fn tanh(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let y = c.output(0).to_string();
    let y2 = c.op("Mul", &[&y, &y], &[]);
    let one = c.scalar(1.0, &y);
    let d = c.op("Sub", &[&one, &y2], &[]);
    let gi = c.op("Mul", &[&g, &d], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn sigmoid(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let y = c.output(0).to_string();
    let one = c.scalar(1.0, &y);
    let om = c.op("Sub", &[&one, &y], &[]);
    let d = c.op("Mul", &[&y, &om], &[]);
    let gi = c.op("Mul", &[&g, &d], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn erf(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    // d erf(x)/dx = 2/sqrt(pi) * exp(-x^2)
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let x2 = c.op("Mul", &[&x, &x], &[]);
    let n = c.op("Neg", &[&x2], &[]);
    let e = c.op("Exp", &[&n], &[]);
    let k = c.scalar(2.0 / PI.sqrt(), &x);
    let d = c.op("Mul", &[&e, &k], &[]);
    let gi = c.op("Mul", &[&g, &d], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn relu(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let zero = c.scalar(0.0, &x);
    let pos = c.op("Greater", &[&x, &zero], &[]);
    let gi = c.op("Where", &[&pos, &g, &zero], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn leaky_relu(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let alpha = c.attr_float("alpha", 0.01) as f64;
    let zero = c.scalar(0.0, &x);
    let a = c.scalar(alpha, &x);
    let pos = c.op("Greater", &[&x, &zero], &[]);
    let neg = c.op("Mul", &[&g, &a], &[]);
    let gi = c.op("Where", &[&pos, &g, &neg], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn gelu(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let approximate = c.attr_str("approximate").unwrap_or_else(|| "none".into());
    let half = c.scalar(0.5, &x);
    let one = c.scalar(1.0, &x);
    let d = if approximate == "tanh" {
        // y = 0.5x(1+t), t = tanh(k(x + 0.044715x^3)), k = sqrt(2/pi)
        // dy = 0.5(1+t) + 0.5x(1-t^2) k (1 + 3*0.044715 x^2)
        let k = c.scalar((2.0 / PI).sqrt(), &x);
        let a = c.scalar(0.044715, &x);
        let a3 = c.scalar(3.0 * 0.044715, &x);
        let x2 = c.op("Mul", &[&x, &x], &[]);
        let x3 = c.op("Mul", &[&x2, &x], &[]);
        let ax3 = c.op("Mul", &[&x3, &a], &[]);
        let inner = c.op("Add", &[&x, &ax3], &[]);
        let u = c.op("Mul", &[&inner, &k], &[]);
        let t = c.op("Tanh", &[&u], &[]);
        let opt = c.op("Add", &[&one, &t], &[]);
        let left = c.op("Mul", &[&opt, &half], &[]);
        let t2 = c.op("Mul", &[&t, &t], &[]);
        let omt2 = c.op("Sub", &[&one, &t2], &[]);
        let a3x2 = c.op("Mul", &[&x2, &a3], &[]);
        let du = c.op("Add", &[&one, &a3x2], &[]);
        let du = c.op("Mul", &[&du, &k], &[]);
        let r = c.op("Mul", &[&omt2, &du], &[]);
        let r = c.op("Mul", &[&r, &x], &[]);
        let r = c.op("Mul", &[&r, &half], &[]);
        c.op("Add", &[&left, &r], &[])
    } else {
        // dy = Phi(x) + x phi(x), Phi(x) = 0.5(1+erf(x/sqrt2)), phi(x) = exp(-x^2/2)/sqrt(2pi)
        let inv_sqrt2 = c.scalar(std::f64::consts::FRAC_1_SQRT_2, &x);
        let xs = c.op("Mul", &[&x, &inv_sqrt2], &[]);
        let e = c.op("Erf", &[&xs], &[]);
        let ope = c.op("Add", &[&one, &e], &[]);
        let cdf = c.op("Mul", &[&ope, &half], &[]);
        let x2 = c.op("Mul", &[&x, &x], &[]);
        let nh = c.scalar(-0.5, &x);
        let ex = c.op("Mul", &[&x2, &nh], &[]);
        let ex = c.op("Exp", &[&ex], &[]);
        let norm = c.scalar(1.0 / (2.0 * PI).sqrt(), &x);
        let pdf = c.op("Mul", &[&ex, &norm], &[]);
        let xp = c.op("Mul", &[&x, &pdf], &[]);
        c.op("Add", &[&cdf, &xp], &[])
    };
    let gi = c.op("Mul", &[&g, &d], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn softmax(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    // dx = y * (g - sum(g * y, axis))
    let g = c.grad_out();
    let y = c.output(0).to_string();
    let axis = c.attr_int("axis", -1);
    let gy = c.op("Mul", &[&g, &y], &[]);
    let s = c.reduce_sum(&gy, &[axis], true);
    let d = c.op("Sub", &[&g, &s], &[]);
    let gi = c.op("Mul", &[&y, &d], &[]);
    c.set_grad(0, gi);
    Ok(())
}

fn log_softmax(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    // dx = g - exp(y) * sum(g, axis)
    let g = c.grad_out();
    let y = c.output(0).to_string();
    let axis = c.attr_int("axis", -1);
    let s = c.reduce_sum(&g, &[axis], true);
    let p = c.op("Exp", &[&y], &[]);
    let ps = c.op("Mul", &[&p, &s], &[]);
    let gi = c.op("Sub", &[&g, &ps], &[]);
    c.set_grad(0, gi);
    Ok(())
}

/// `y = ln(1 + eˣ)`: `dy/dx = sigmoid(x)`.
fn softplus(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let d = c.op("Sigmoid", &[&x], &[]);
    let gi = c.op("Mul", &[&g, &d], &[]);
    c.set_grad(0, gi);
    Ok(())
}

/// `y = x` for x > 0, else `α(eˣ − 1)`: the slope is 1, or `y + α`.
fn elu(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let (x, y) = (c.input(0).to_string(), c.output(0).to_string());
    let alpha = c.scalar(c.attr_float("alpha", 1.0) as f64, &x);
    let zero = c.scalar(0.0, &x);
    let pos = c.op("Greater", &[&x, &zero], &[]);
    let neg_slope = c.op("Add", &[&y, &alpha], &[]);
    let neg = c.op("Mul", &[&g, &neg_slope], &[]);
    let gi = c.op("Where", &[&pos, &g, &neg], &[]);
    c.set_grad(0, gi);
    Ok(())
}

/// `y = clamp(αx + β, 0, 1)`: slope α strictly inside, 0 where clamped.
fn hard_sigmoid(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let (alpha, beta) = (c.attr_float("alpha", 0.2) as f64, c.attr_float("beta", 0.5) as f64);
    let gi = hard_sigmoid_slope(c, &g, &x, alpha, beta);
    c.set_grad(0, gi);
    Ok(())
}

/// `g · dy/dx` of `clamp(αx + β, 0, 1)`.
fn hard_sigmoid_slope(c: &mut RuleCtx, g: &str, x: &str, alpha: f64, beta: f64) -> String {
    let a = c.scalar(alpha, x);
    let b = c.scalar(beta, x);
    let ax = c.op("Mul", &[x, &a], &[]);
    let z = c.op("Add", &[&ax, &b], &[]);
    let (zero, one) = (c.scalar(0.0, x), c.scalar(1.0, x));
    let above = c.op("Greater", &[&z, &zero], &[]);
    let below = c.op("Less", &[&z, &one], &[]);
    let inside = c.op("And", &[&above, &below], &[]);
    let ga = c.op("Mul", &[g, &a], &[]);
    c.op("Where", &[&inside, &ga, &zero], &[])
}

/// `y = x · hardsigmoid(x)` with α = 1/6, β = 1/2: `dy/dx = hardsigmoid(x) + x·hardsigmoid'(x)`.
fn hard_swish(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let hs = c.op(
        "HardSigmoid",
        &[&x],
        &[("alpha", memeguard_onnx::Attr::Float(1.0 / 6.0)), ("beta", memeguard_onnx::Attr::Float(0.5))],
    );
    let first = c.op("Mul", &[&g, &hs], &[]);
    let gx = c.op("Mul", &[&g, &x], &[]);
    let second = hard_sigmoid_slope(c, &gx, &x, 1.0 / 6.0, 0.5);
    let gi = c.op("Add", &[&first, &second], &[]);
    c.set_grad(0, gi);
    Ok(())
}

/// `y = x·tanh(softplus(x))`: `dy/dx = t + x·(1 − t²)·sigmoid(x)` with `t = tanh(softplus(x))`.
fn mish(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    let sp = c.op("Softplus", &[&x], &[]);
    let t = c.op("Tanh", &[&sp], &[]);
    let t2 = c.op("Mul", &[&t, &t], &[]);
    let one = c.scalar(1.0, &x);
    let sech2 = c.op("Sub", &[&one, &t2], &[]);
    let s = c.op("Sigmoid", &[&x], &[]);
    let r = c.op("Mul", &[&sech2, &s], &[]);
    let r = c.op("Mul", &[&r, &x], &[]);
    let d = c.op("Add", &[&t, &r], &[]);
    let gi = c.op("Mul", &[&g, &d], &[]);
    c.set_grad(0, gi);
    Ok(())
}

/// `y = γx` for x > 0, else `γα(eˣ − 1)`: the slope is γ, or `y + γα`.
fn selu(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let (x, y) = (c.input(0).to_string(), c.output(0).to_string());
    let alpha = c.attr_float("alpha", 1.673_263_2) as f64;
    let gamma = c.attr_float("gamma", 1.050_701) as f64;
    let ga = c.scalar(gamma * alpha, &x);
    let gm = c.scalar(gamma, &x);
    let zero = c.scalar(0.0, &x);
    let pos = c.op("Greater", &[&x, &zero], &[]);
    let neg_slope = c.op("Add", &[&y, &ga], &[]);
    let slope = c.op("Where", &[&pos, &gm, &neg_slope], &[]);
    let gi = c.op("Mul", &[&g, &slope], &[]);
    c.set_grad(0, gi);
    Ok(())
}

/// `y = x` for x > 0, else `slope·x`, the slope broadcasting against x: `dx` is `g` or
/// `g·slope`; `dslope = g·x` where x ≤ 0, summed back to the slope's shape.
fn prelu(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let (x, slope) = (c.input(0).to_string(), c.input(1).to_string());
    let zero = c.scalar(0.0, &x);
    let pos = c.op("Greater", &[&x, &zero], &[]);
    if c.needs_grad(0) {
        let neg = c.op("Mul", &[&g, &slope], &[]);
        let dx = c.op("Where", &[&pos, &g, &neg], &[]);
        let dx = c.unbroadcast(&dx, &x);
        c.set_grad(0, dx);
    }
    if c.needs_grad(1) {
        let gx = c.op("Mul", &[&g, &x], &[]);
        let masked = c.op("Where", &[&pos, &zero, &gx], &[]);
        let ds = c.unbroadcast(&masked, &slope);
        c.set_grad(1, ds);
    }
    Ok(())
}
