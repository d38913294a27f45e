//! Normalisation: BatchNormalization (training mode on batch statistics, and inference
//! mode on running statistics), LayerNormalization, InstanceNormalization,
//! GroupNormalization (opset 18's per-group and opset 21's per-channel scale and bias)
//! and LpNormalization (p = 1, 2).
//!
//! With batch statistics, `x̂ = (x − μ)·σ⁻¹` over a set of axes and `y = γ·x̂ + β`:
//! `dx = σ⁻¹·(g − mean(g) − x̂·mean(g·x̂))` with `g = γ·dy` and the means over the
//! normalised axes, because μ and σ depend on x. The running statistics BatchNorm
//! outputs in training mode are buffers: no gradient flows through them.

use std::collections::HashMap;

use memeguard_onnx::Attr;

use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("BatchNormalization", batch_norm);
    map.insert("LayerNormalization", layer_norm);
    map.insert("InstanceNormalization", instance_norm);
    map.insert("GroupNormalization", group_norm);
    map.insert("LpNormalization", lp_norm);
}

fn reduce(c: &mut RuleCtx, op: &str, x: &str, axes: &[i64], keepdims: bool) -> String {
    let axes = c.const_i64s(axes);
    c.op(op, &[x, &axes], &[("keepdims", Attr::Int(keepdims as i64))])
}

/// `1 / sqrt(var + eps)`.
fn inv_std(c: &mut RuleCtx, var: &str) -> String {
    let eps = c.scalar(c.attr_float("epsilon", 1e-5) as f64, var);
    let v = c.op("Add", &[var, &eps], &[]);
    let s = c.op("Sqrt", &[&v], &[]);
    c.op("Reciprocal", &[&s], &[])
}

/// Mean and `1/σ` of `x` over `axes` (kept as 1s), population variance.
fn moments(c: &mut RuleCtx, x: &str, axes: &[i64]) -> (String, String) {
    let mean = reduce(c, "ReduceMean", x, axes, true);
    let centred = c.op("Sub", &[x, &mean], &[]);
    let sq = c.op("Mul", &[&centred, &centred], &[]);
    let var = reduce(c, "ReduceMean", &sq, axes, true);
    (mean, inv_std(c, &var))
}

/// `σ⁻¹·(g − mean(g) − x̂·mean(g·x̂))`: the input gradient of a normalisation over `axes`.
fn normalised_input_grad(c: &mut RuleCtx, g: &str, xhat: &str, inv: &str, axes: &[i64]) -> String {
    let m1 = reduce(c, "ReduceMean", g, axes, true);
    let gx = c.op("Mul", &[g, xhat], &[]);
    let m2 = reduce(c, "ReduceMean", &gx, axes, true);
    let t = c.op("Mul", &[xhat, &m2], &[]);
    let d = c.op("Sub", &[g, &m1], &[]);
    let d = c.op("Sub", &[&d, &t], &[]);
    c.op("Mul", &[&d, inv], &[])
}

fn batch_norm(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let Some(dy) = c.grad_output(0) else {
        return Ok(()); // only the running statistics (buffers) were used
    };
    let x = c.input(0).to_string();
    let rank = c.rank(&x).ok_or_else(|| c.unsupported("the input's rank must be known (declare its shape)"))?;
    if rank < 2 {
        return Err(c.unsupported(format!("the input must be [N, C, ...], but it has rank {rank}")));
    }
    let scale = c.input(1).to_string();
    // Statistics are per channel: reduce over N and the spatial axes; [C] values
    // broadcast against X as [C, 1, ...].
    let mut axes = vec![0];
    axes.extend(2..rank as i64);
    let channel_axes: Vec<i64> = (1..rank as i64 - 1).collect();
    let per_channel = |c: &mut RuleCtx, v: &str| -> String {
        if channel_axes.is_empty() {
            return v.to_string();
        }
        let ax = c.const_i64s(&channel_axes);
        c.op("Unsqueeze", &[v, &ax], &[])
    };
    let gamma = per_channel(c, &scale);
    if c.attr_int("training_mode", 0) != 0 {
        let (mean, inv) = moments(c, &x, &axes);
        let centred = c.op("Sub", &[&x, &mean], &[]);
        let xhat = c.op("Mul", &[&centred, &inv], &[]);
        if c.needs_grad(0) {
            let g = c.op("Mul", &[&dy, &gamma], &[]);
            let dx = normalised_input_grad(c, &g, &xhat, &inv, &axes);
            c.set_grad(0, dx);
        }
        if c.needs_grad(1) {
            let p = c.op("Mul", &[&dy, &xhat], &[]);
            let ds = c.reduce_sum(&p, &axes, false);
            c.set_grad(1, ds);
        }
        if c.needs_grad(2) {
            let db = c.reduce_sum(&dy, &axes, false);
            c.set_grad(2, db);
        }
        // input_mean / input_var only feed the running statistics: no gradient.
        return Ok(());
    }

    // Inference: y = γ·(x − mean)·inv + β with inv = 1/sqrt(var + eps), an affine map.
    let (mean, var) = (c.input(3).to_string(), c.input(4).to_string());
    let inv = inv_std(c, &var); // [C]
    let inv_b = per_channel(c, &inv);
    if c.needs_grad(0) {
        let k = c.op("Mul", &[&gamma, &inv_b], &[]);
        let dx = c.op("Mul", &[&dy, &k], &[]);
        c.set_grad(0, dx);
    }
    let sum_dy = if c.needs_grad(2) || c.needs_grad(3) { Some(c.reduce_sum(&dy, &axes, false)) } else { None }; // [C]
    let sum_dy_xhat = if c.needs_grad(1) || c.needs_grad(4) {
        let mean_b = per_channel(c, &mean);
        let centred = c.op("Sub", &[&x, &mean_b], &[]);
        let xhat = c.op("Mul", &[&centred, &inv_b], &[]);
        let p = c.op("Mul", &[&dy, &xhat], &[]);
        Some(c.reduce_sum(&p, &axes, false))
    } else {
        None
    };
    if c.needs_grad(1) {
        c.set_grad(1, sum_dy_xhat.clone().expect("computed when needed"));
    }
    if c.needs_grad(2) {
        c.set_grad(2, sum_dy.clone().expect("computed when needed"));
    }
    if c.needs_grad(3) {
        // d/dmean = −Σdy·γ·inv
        let k = c.op("Mul", &[&scale, &inv], &[]);
        let p = c.op("Mul", &[&sum_dy.expect("computed when needed"), &k], &[]);
        let dm = c.op("Neg", &[&p], &[]);
        c.set_grad(3, dm);
    }
    if c.needs_grad(4) {
        // d/dvar = −½·γ·inv²·Σ(dy·x̂)
        let half = c.scalar(-0.5, &var);
        let inv2 = c.op("Mul", &[&inv, &inv], &[]);
        let k = c.op("Mul", &[&scale, &inv2], &[]);
        let k = c.op("Mul", &[&k, &half], &[]);
        let dv = c.op("Mul", &[&sum_dy_xhat.expect("computed when needed"), &k], &[]);
        c.set_grad(4, dv);
    }
    Ok(())
}

fn layer_norm(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    if c.grad_output(1).is_some() || c.grad_output(2).is_some() {
        return Err(c.unsupported("gradients through the Mean / InvStdDev outputs"));
    }
    let dy = c.grad_out();
    let x = c.input(0).to_string();
    let axis = c.attr_int("axis", -1);
    // The normalised axes run from `axis` to the last one: counted from the end, they
    // need no rank.
    let axes: Vec<i64> = match c.rank(&x) {
        Some(rank) => {
            let rank = rank as i64;
            let axis = if axis < 0 { axis + rank } else { axis };
            if !(0..rank).contains(&axis) {
                return Err(c.unsupported(format!("axis {axis} out of range for rank {rank}")));
            }
            (axis..rank).collect()
        }
        None if axis < 0 => (axis..0).collect(),
        None => {
            return Err(c.unsupported(format!(
                "axis {axis} counts from the front, and the input's rank is unknown (declare its shape)"
            )));
        }
    };
    // Reuse the forward's statistics when it returns them in X's own type (their
    // stash type is float, so a double X recomputes them in double).
    let (m, s) = (c.output(1).to_string(), c.output(2).to_string());
    let (mean, inv) = if !m.is_empty() && !s.is_empty() && c.dtype(&m) == c.dtype(&x) && c.dtype(&s) == c.dtype(&x) {
        (m, s)
    } else {
        moments(c, &x, &axes)
    };
    let centred = c.op("Sub", &[&x, &mean], &[]);
    let xhat = c.op("Mul", &[&centred, &inv], &[]);
    let scale = c.input(1).to_string();
    if c.needs_grad(0) {
        let g = c.op("Mul", &[&dy, &scale], &[]);
        let dx = normalised_input_grad(c, &g, &xhat, &inv, &axes);
        c.set_grad(0, dx);
    }
    if c.needs_grad(1) {
        let p = c.op("Mul", &[&dy, &xhat], &[]);
        let ds = c.unbroadcast(&p, &scale);
        c.set_grad(1, ds);
    }
    if c.has_input(2) && c.needs_grad(2) {
        let bias = c.input(2).to_string();
        let db = c.unbroadcast(&dy, &bias);
        c.set_grad(2, db);
    }
    Ok(())
}

/// `[C]` → `[C, 1, …]` against a `[N, C, spatial…]` value of rank `rank`.
fn channel_column(c: &mut RuleCtx, v: &str, rank: usize) -> String {
    if rank <= 2 {
        return v.to_string();
    }
    let ax = c.const_i64s(&(1..rank as i64 - 1).collect::<Vec<_>>());
    c.op("Unsqueeze", &[v, &ax], &[])
}

/// Normalised over the spatial axes of each (sample, channel); `scale` and `B` are `[C]`.
fn instance_norm(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let dy = c.grad_out();
    let x = c.input(0).to_string();
    let rank = c.rank(&x).ok_or_else(|| c.unsupported("the input's rank must be known (declare its shape)"))?;
    if rank < 3 {
        return Err(c.unsupported(format!("the input must be [N, C, spatial...], but it has rank {rank}")));
    }
    let axes: Vec<i64> = (2..rank as i64).collect();
    let (mean, inv) = moments(c, &x, &axes);
    let centred = c.op("Sub", &[&x, &mean], &[]);
    let xhat = c.op("Mul", &[&centred, &inv], &[]);
    let scale = c.input(1).to_string();
    let mut outer = vec![0];
    outer.extend(&axes);
    if c.needs_grad(0) {
        let gamma = channel_column(c, &scale, rank);
        let g = c.op("Mul", &[&dy, &gamma], &[]);
        let dx = normalised_input_grad(c, &g, &xhat, &inv, &axes);
        c.set_grad(0, dx);
    }
    if c.needs_grad(1) {
        let p = c.op("Mul", &[&dy, &xhat], &[]);
        let ds = c.reduce_sum(&p, &outer, false);
        c.set_grad(1, ds);
    }
    if c.needs_grad(2) {
        let db = c.reduce_sum(&dy, &outer, false);
        c.set_grad(2, db);
    }
    Ok(())
}

/// Statistics over each group of `C / G` channels and the spatial axes. Opset 18 writes
/// `scale` and `bias` per group (`[G]`), opset 21 per channel (`[C]`); which one a node
/// has is read from the static sizes (the same thing when `G = C`).
fn group_norm(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let dy = c.grad_out();
    let x = c.input(0).to_string();
    let scale = c.input(1).to_string();
    let groups = c.attr_int("num_groups", 0);
    let dims = c.dims(&x).ok_or_else(|| c.unsupported("the input's rank must be known (declare its shape)"))?;
    let rank = dims.len();
    let channels = match dims.get(1) {
        Some(memeguard_onnx::Dim::Known(v)) if rank >= 3 => *v,
        _ => return Err(c.unsupported("the input must be [N, C, spatial...] with a static channel count")),
    };
    let scale_len = match c.dims(&scale).as_deref() {
        Some([memeguard_onnx::Dim::Known(v)]) => *v,
        _ => return Err(c.unsupported("the scale must be 1-D of static size")),
    };
    if groups <= 0 || channels % groups != 0 {
        return Err(c.unsupported(format!("num_groups {groups} does not divide {channels} channels")));
    }
    let per_group = if scale_len == channels {
        false
    } else if scale_len == groups {
        true
    } else {
        return Err(
            c.unsupported(format!("scale of size {scale_len}: neither {groups} groups nor {channels} channels"))
        );
    };
    // [N, C, S…] → [N, G, C/G · ΠS]: one row per (sample, group).
    let grouped_shape = c.const_i64s(&[0, groups, -1]);
    let xs = c.op("Reshape", &[&x, &grouped_shape], &[]);
    let (mean, inv) = moments(c, &xs, &[2]);
    let centred = c.op("Sub", &[&xs, &mean], &[]);
    let xhat_g = c.op("Mul", &[&centred, &inv], &[]);
    let x_shape = c.shape_of(&x);
    let xhat = c.op("Reshape", &[&xhat_g, &x_shape], &[]);
    // Per-group values [G] as per-channel [C]: each repeated C / G times.
    let to_channels = |c: &mut RuleCtx, v: &str| -> String {
        if !per_group {
            return v.to_string();
        }
        let col = c.const_i64s(&[groups, 1]);
        let v = c.op("Reshape", &[v, &col], &[]);
        let wide = c.const_i64s(&[groups, channels / groups]);
        let v = c.op("Expand", &[&v, &wide], &[]);
        let flat = c.const_i64s(&[channels]);
        c.op("Reshape", &[&v, &flat], &[])
    };
    // Per-channel sums [C] back to per-group [G] where the parameters are per group.
    let to_params = |c: &mut RuleCtx, v: &str| -> String {
        if !per_group {
            return v.to_string();
        }
        let rows = c.const_i64s(&[groups, channels / groups]);
        let v = c.op("Reshape", &[v, &rows], &[]);
        c.reduce_sum(&v, &[1], false)
    };
    let mut outer = vec![0];
    outer.extend(2..rank as i64);
    if c.needs_grad(0) {
        let gamma = to_channels(c, &scale);
        let gamma = channel_column(c, &gamma, rank);
        let g = c.op("Mul", &[&dy, &gamma], &[]);
        let gs = c.op("Reshape", &[&g, &grouped_shape], &[]);
        let dxs = normalised_input_grad(c, &gs, &xhat_g, &inv, &[2]);
        let dx = c.op("Reshape", &[&dxs, &x_shape], &[]);
        c.set_grad(0, dx);
    }
    if c.needs_grad(1) {
        let p = c.op("Mul", &[&dy, &xhat], &[]);
        let ds = c.reduce_sum(&p, &outer, false);
        let ds = to_params(c, &ds);
        c.set_grad(1, ds);
    }
    if c.needs_grad(2) {
        let db = c.reduce_sum(&dy, &outer, false);
        let db = to_params(c, &db);
        c.set_grad(2, db);
    }
    Ok(())
}

/// `y = x / ‖x‖ₚ` along `axis`: `dx = (g − ∂‖x‖·Σ(g·y)) / ‖x‖` with `∂‖x‖ = y` for
/// p = 2 and `sign(x)` for p = 1.
fn lp_norm(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let (x, y) = (c.input(0).to_string(), c.output(0).to_string());
    let axis = c.attr_int("axis", -1);
    let p = c.attr_int("p", 2);
    let (norm_op, slope) = match p {
        1 => ("ReduceL1", c.op("Sign", &[&x], &[])),
        2 => ("ReduceL2", y.clone()),
        other => return Err(c.unsupported(format!("p = {other} (only 1 and 2 are defined)"))),
    };
    let norm = reduce(c, norm_op, &x, &[axis], true);
    let gy = c.op("Mul", &[&g, &y], &[]);
    let s = reduce(c, "ReduceSum", &gy, &[axis], true);
    let t = c.op("Mul", &[&slope, &s], &[]);
    let d = c.op("Sub", &[&g, &t], &[]);
    let dx = c.op("Div", &[&d, &norm], &[]);
    c.set_grad(0, dx);
    Ok(())
}
