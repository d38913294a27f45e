//! Conv (any spatial rank; strides, pads, auto_pad, dilations, groups including
//! depthwise; with or without bias).
//!
//! For `Y = Conv(X, W, B)`:
//! - `dX = ConvTranspose(dY, W)` with the same geometry, fitted to X's size; for
//!   stride 1, dilation 1, one group and pads ≤ k − 1 instead `Conv(dY, W')` with W's
//!   channels swapped and its kernel flipped, pads `k − 1 − p` (faster on CPU), or,
//!   where the weight outweighs the activations, with dY and the result flipped;
//! - `dW` is itself a convolution: batch and channel axes swap roles, and strides and
//!   dilations trade places (`dW[m,c,a] = Σ_n Σ_i dY[n,m,i] · Xpad[n,c,s·i + d·a]`).
//!   Groups are folded into the batch axis so one grouped Conv serves every group.
//!   For a 1×1 kernel without pads and one group, a batched MatMul of dY with X
//!   (strided-sliced) summed over the batch instead;
//! - `dB = ReduceSum(dY)` over the batch and spatial axes.
//!
//! `Y = ConvTranspose(X, W, B)` is the adjoint of `Conv(·, W)` with the same geometry
//! (pads worked out from `output_shape` or a `SAME` auto_pad where given),
//! so `dX = Conv(dY, W)` (strides, pads, dilations, group; `output_padding` only adds
//! rows no input reaches), and `dW` is Conv's weight gradient with the roles of input
//! and output gradient swapped: `weight_grad(dY, X)`.
//!
//! Only standard ops whose kernels ONNX Runtime has on CPU and CUDA: Conv,
//! ConvTranspose, Transpose, Reshape, Slice, Concat, Shape, Pad, Sub, ReduceSum, MatMul.

use std::collections::HashMap;

use memeguard_onnx::{Attr, Dim};

use super::window::{Window, shape_tail, transpose_to_input};
use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("Conv", conv);
    map.insert("ConvTranspose", conv_transpose);
}

fn conv(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let dy = c.grad_out();
    let (x, w) = (c.input(0).to_string(), c.input(1).to_string());
    let kernel = kernel_of(c, &w)?;
    let win = Window::resolve(c, &x, kernel)?;
    let group = c.attr_int("group", 1);
    if c.needs_grad(0) {
        let dx = if flip_applies(&win, group) {
            input_grad_by_flipped_conv(c, &dy, &w, &x, &win)
        } else {
            transpose_to_input(c, &dy, &w, group, &win, &x)
        };
        c.set_grad(0, dx);
    }
    if c.needs_grad(1) {
        let dw = if pointwise_applies(&win, group) {
            pointwise_weight_grad(c, &x, &dy, &w, &win)
        } else {
            weight_grad(c, &x, &dy, group, &win)
        };
        c.set_grad(1, dw);
    }
    set_bias_grad(c, &dy, &win);
    Ok(())
}

/// Stride 1, dilation 1, one group, and pads no larger than `k − 1` on every axis: then
/// `dX` is a plain Conv of `dY` (ONNX Runtime's Conv is markedly faster than its
/// ConvTranspose on CPU) and its size is exactly X's, symbolic sizes included.
fn flip_applies(win: &Window, group: i64) -> bool {
    group == 1
        && win.strides.iter().all(|s| *s == 1)
        && win.dilations.iter().all(|d| *d == 1)
        && (0..win.spatial()).all(|i| win.pads_begin[i] < win.kernel[i] && win.pads_end[i] < win.kernel[i])
}

/// `dX = Conv(dY, W')` with `W'[c, m, a] = W[m, c, k − 1 − a]` (channels swapped, kernel
/// flipped on every spatial axis) and pads `k − 1 − p`. Flipping is a Slice with steps
/// −1, which costs per element moved: where the weight is larger than dY and dX together
/// (late layers: wide channels, few positions; a symbolic batch counts as
/// [`NOMINAL_BATCH`]), the spatial axes of dY and of the result
/// are flipped instead and the kernel kept (`dX = flip(Conv(flip(dY), Wᵀ))`, whose begin
/// and end pads trade places: `k − 1 − p_end`, `k − 1 − p_begin`).
fn input_grad_by_flipped_conv(c: &mut RuleCtx, dy: &str, w: &str, x: &str, win: &Window) -> String {
    let n = win.spatial();
    let wt = c.op("Transpose", &[w], &[("perm", Attr::Ints(swap_first_two(n + 2)))]);
    if win.kernel.iter().all(|k| *k == 1) {
        // Nothing to flip; pads are 0.
        return c.op("Conv", &[dy, &wt], &[]);
    }
    let y = c.output(0).to_string();
    let flip_activations = match (static_numel(c, w), per_sample(c, &y), per_sample(c, x)) {
        (Some(w), Some((ny, y)), Some((nx, x))) => w > ny.or(nx).unwrap_or(NOMINAL_BATCH) * (y + x),
        _ => false,
    };
    let flip = |c: &mut RuleCtx, v: &str| {
        let starts = c.const_i64s(&vec![-1; n]);
        let ends = c.const_i64s(&vec![i64::MIN; n]);
        let axes = c.const_i64s(&win.spatial_axes());
        let steps = c.const_i64s(&vec![-1; n]);
        c.op("Slice", &[v, &starts, &ends, &axes, &steps], &[])
    };
    let (first, second) =
        if flip_activations { (&win.pads_end, &win.pads_begin) } else { (&win.pads_begin, &win.pads_end) };
    let begin = (0..n).map(|i| win.kernel[i] - 1 - first[i]);
    let end = (0..n).map(|i| win.kernel[i] - 1 - second[i]);
    let attrs = [("pads", Attr::Ints(begin.chain(end).collect()))];
    if flip_activations {
        let dyf = flip(c, dy);
        let dxf = c.op("Conv", &[&dyf, &wt], &attrs);
        flip(c, &dxf)
    } else {
        let wf = flip(c, &wt);
        c.op("Conv", &[dy, &wf], &attrs)
    }
}

/// The batch size assumed where it is symbolic, to weigh a weight against activations.
const NOMINAL_BATCH: i64 = 16;

/// `v`'s batch size where static, and its elements per sample where those dims are.
fn per_sample(c: &RuleCtx, v: &str) -> Option<(Option<i64>, i64)> {
    let dims = c.dims(v)?;
    let known = |d: &Dim| if let Dim::Known(v) = d { Some(*v) } else { None };
    let sample = dims.get(1..)?.iter().map(known).product::<Option<i64>>()?;
    Some((dims.first().and_then(known), sample))
}

/// The number of elements of `v`, where its shape is static.
fn static_numel(c: &RuleCtx, v: &str) -> Option<i64> {
    c.dims(v)?.iter().map(|d| if let Dim::Known(v) = d { Some(*v) } else { None }).product()
}

/// A 1×1 kernel (any stride and dilation), no pads, one group: `dW` is a matrix product.
fn pointwise_applies(win: &Window, group: i64) -> bool {
    group == 1 && win.kernel.iter().all(|k| *k == 1) && win.pads().iter().all(|p| *p == 0)
}

/// `dW[m, c] = Σ_n Σ_l dY[n, m, l] · Xs[n, c, l]`, where Xs is X sampled at the stride
/// (a Slice with steps; it has exactly dY's spatial size) and `l` runs over the flattened
/// spatial positions: a batched MatMul `[N, M, L] × [N, L, C]` summed over N, reshaped
/// to W's shape.
fn pointwise_weight_grad(c: &mut RuleCtx, x: &str, dy: &str, w: &str, win: &Window) -> String {
    let n = win.spatial();
    let mut xs = x.to_string();
    if win.strides.iter().any(|s| *s != 1) {
        let starts = c.const_i64s(&vec![0; n]);
        let ends = c.const_i64s(&vec![i64::MAX; n]);
        let axes = c.const_i64s(&win.spatial_axes());
        let steps = c.const_i64s(&win.strides);
        xs = c.op("Slice", &[x, &starts, &ends, &axes, &steps], &[]);
    }
    let flat = c.const_i64s(&[0, 0, -1]);
    let x3 = c.op("Reshape", &[&xs, &flat], &[]);
    let dy3 = c.op("Reshape", &[dy, &flat], &[]);
    let x3t = c.op("Transpose", &[&x3], &[("perm", Attr::Ints(vec![0, 2, 1]))]);
    let per_n = c.op("MatMul", &[&dy3, &x3t], &[]);
    let dw = c.reduce_sum(&per_n, &[0], false);
    let shape = c.shape_of(w);
    c.op("Reshape", &[&dw, &shape], &[])
}

/// `dB = ReduceSum(dY)` over the batch and spatial axes, where a bias is trained.
fn set_bias_grad(c: &mut RuleCtx, dy: &str, win: &Window) {
    if c.has_input(2) && c.needs_grad(2) {
        let mut axes = vec![0];
        axes.extend(win.spatial_axes());
        let db = c.reduce_sum(dy, &axes, false);
        c.set_grad(2, db);
    }
}

/// The kernel's spatial size: `kernel_shape`, or the weight's static dims after the first two.
fn kernel_of(c: &RuleCtx, w: &str) -> Result<Vec<i64>, AutodiffError> {
    if let Some(k) = c.attr_ints("kernel_shape") {
        return Ok(k);
    }
    c.dims(w)
        .and_then(|d| {
            d.get(2..).map(|k| k.iter().map(|v| if let Dim::Known(v) = v { Some(*v) } else { None }).collect())
        })
        .flatten()
        .ok_or_else(|| c.unsupported("the kernel size must be static (a `kernel_shape` or a weight of known shape)"))
}

/// `[0, 1, 2, ...]` with the first two axes swapped.
fn swap_first_two(rank: usize) -> Vec<i64> {
    let mut perm: Vec<i64> = (0..rank as i64).collect();
    perm.swap(0, 1);
    perm
}

/// `[N, C, S...]` → `[N, g, C/g, S...]`.
fn split_channels(c: &mut RuleCtx, v: &str, group: i64) -> String {
    let s = c.shape_of(v);
    let (zero, one) = (c.const_i64s(&[0]), c.const_i64s(&[1]));
    let batch = c.op("Slice", &[&s, &zero, &one], &[]);
    let groups = c.const_i64s(&[group, -1]);
    let rest = shape_tail(c, v, 2);
    let target = c.op("Concat", &[&batch, &groups, &rest], &[("axis", Attr::Int(0))]);
    c.op("Reshape", &[v, &target], &[])
}

/// `dW = Transpose(Conv(X', dY', strides = dilations, dilations = strides))` where X' and
/// dY' have batch and channels swapped (`[C/g, g·N, S]` and `[M, N, So]` with groups).
fn weight_grad(c: &mut RuleCtx, x: &str, dy: &str, group: i64, win: &Window) -> String {
    let rank = win.spatial() + 2;
    let swap = swap_first_two(rank);
    let (xt, dyt) = if group == 1 {
        let xt = c.op("Transpose", &[x], &[("perm", Attr::Ints(swap.clone()))]);
        let dyt = c.op("Transpose", &[dy], &[("perm", Attr::Ints(swap.clone()))]);
        (xt, dyt)
    } else {
        // X: [N, g, C/g, S] → [C/g, g, N, S] → [C/g, g·N, S]: input channel j·N + n.
        let xs = split_channels(c, x, group);
        let mut perm = vec![2, 1, 0];
        perm.extend(3..rank as i64 + 1);
        let xt = c.op("Transpose", &[&xs], &[("perm", Attr::Ints(perm))]);
        let head = c.const_i64s(&[0, -1]);
        let tail = shape_tail(c, x, 2);
        let target = c.op("Concat", &[&head, &tail], &[("axis", Attr::Int(0))]);
        let xt = c.op("Reshape", &[&xt, &target], &[]);
        // dY: [N, g, M/g, So] → [g, M/g, N, So] → [M, N, So]: output channel j·M/g + m.
        let ds = split_channels(c, dy, group);
        let mut perm = vec![1, 2, 0];
        perm.extend(3..rank as i64 + 1);
        let dyt = c.op("Transpose", &[&ds], &[("perm", Attr::Ints(perm))]);
        let s = c.shape_of(dy);
        let (zero, one) = (c.const_i64s(&[0]), c.const_i64s(&[1]));
        let batch = c.op("Slice", &[&s, &zero, &one], &[]);
        let all = c.const_i64s(&[-1]);
        let tail = shape_tail(c, dy, 2);
        let target = c.op("Concat", &[&all, &batch, &tail], &[("axis", Attr::Int(0))]);
        let dyt = c.op("Reshape", &[&dyt, &target], &[]);
        (xt, dyt)
    };
    // With end pad `p − r` the result is exactly the kernel's size. Where `p − r < 0`, or
    // `r` is unknown (symbolic sizes), pad less and slice the surplus rows off instead.
    let (pads_end, slice) = match win.remainders() {
        Some(r) => {
            let ends: Vec<i64> = win.pads_end.iter().zip(&r).map(|(p, r)| p - r).collect();
            let slice = ends.iter().any(|e| *e < 0);
            (ends.into_iter().map(|e| e.max(0)).collect(), slice)
        }
        None => (win.pads_end.clone(), true),
    };
    let pads = [win.pads_begin.clone(), pads_end].concat();
    let attrs = [
        ("strides", Attr::Ints(win.dilations.clone())),
        ("dilations", Attr::Ints(win.strides.clone())),
        ("pads", Attr::Ints(pads)),
        ("group", Attr::Int(group)),
    ];
    let mut dw = c.op("Conv", &[&xt, &dyt], &attrs);
    if slice {
        let starts = c.const_i64s(&vec![0; win.spatial()]);
        let ends = c.const_i64s(&win.kernel);
        let axes = c.const_i64s(&win.spatial_axes());
        dw = c.op("Slice", &[&dw, &starts, &ends, &axes], &[]);
    }
    c.op("Transpose", &[&dw], &[("perm", Attr::Ints(swap))])
}

fn conv_transpose(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let dy = c.grad_out();
    let (x, w, y) = (c.input(0).to_string(), c.input(1).to_string(), c.output(0).to_string());
    let kernel = kernel_of(c, &w)?;
    let auto_pad = c.attr_str("auto_pad").unwrap_or_default();
    // The geometry of the Conv that this node is the adjoint of: its input is Y.
    let win = if c.attr_ints("output_shape").is_some() || auto_pad.starts_with("SAME") {
        transpose_window(c, &x, kernel, &auto_pad)?
    } else if matches!(auto_pad.as_str(), "" | "NOTSET" | "VALID") {
        if c.rank(&y).is_some() { Window::resolve(c, &y, kernel)? } else { Window::resolve(c, &dy, kernel)? }
    } else {
        return Err(c.unsupported(format!("unknown auto_pad `{auto_pad}`")));
    };
    let group = c.attr_int("group", 1);
    if c.needs_grad(0) {
        let attrs = [
            ("strides", Attr::Ints(win.strides.clone())),
            ("dilations", Attr::Ints(win.dilations.clone())),
            ("pads", Attr::Ints(win.pads())),
            ("group", Attr::Int(group)),
        ];
        let dx = c.op("Conv", &[&dy, &w], &attrs);
        c.set_grad(0, dx);
    }
    if c.needs_grad(1) {
        let dw = weight_grad(c, &dy, &x, group, &win);
        c.set_grad(1, dw);
    }
    set_bias_grad(c, &dy, &win);
    Ok(())
}

/// The pads ONNX Runtime works out for a ConvTranspose with `output_shape` or a `SAME`
/// auto_pad, as a Window over Y. Per axis the total is
/// `stride·(in − 1) + output_padding + dilation·(k − 1) + 1 − out`, split with the odd
/// one at the end for `SAME_UPPER` and at the start otherwise. Needs X's spatial sizes
/// statically.
fn transpose_window(c: &RuleCtx, x: &str, kernel: Vec<i64>, auto_pad: &str) -> Result<Window, AutodiffError> {
    let dims = c.dims(x).ok_or_else(|| c.unsupported("the input's rank must be known (declare its shape)"))?;
    let n = kernel.len();
    if dims.len() != n + 2 {
        return Err(c.unsupported(format!("a kernel of {n} axes over an input of rank {}", dims.len())));
    }
    let input: Vec<i64> = dims[2..]
        .iter()
        .map(|d| if let Dim::Known(v) = d { Some(*v) } else { None })
        .collect::<Option<_>>()
        .ok_or_else(|| c.unsupported("`output_shape` or a SAME auto_pad needs static spatial sizes"))?;
    let per_axis = |name: &str, default: i64| c.attr_ints(name).unwrap_or_else(|| vec![default; n]);
    let (strides, dilations, out_pad) =
        (per_axis("strides", 1), per_axis("dilations", 1), per_axis("output_padding", 0));
    let out: Vec<i64> = match c.attr_ints("output_shape") {
        Some(s) if s.len() >= n => s[s.len() - n..].to_vec(),
        Some(s) => return Err(c.unsupported(format!("`output_shape` {s:?} for {n} spatial axes"))),
        None => input.iter().zip(&strides).map(|(i, s)| i * s).collect(),
    };
    let (mut begin, mut end) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let total = strides[i] * (input[i] - 1) + out_pad[i] + dilations[i] * (kernel[i] - 1) + 1 - out[i];
        let total = total.max(0);
        let (b, e) =
            if auto_pad == "SAME_UPPER" { (total / 2, total - total / 2) } else { (total - total / 2, total / 2) };
        begin.push(b);
        end.push(e);
    }
    Ok(Window {
        kernel,
        strides,
        dilations,
        pads_begin: begin,
        pads_end: end,
        input: out.into_iter().map(Some).collect(),
    })
}
