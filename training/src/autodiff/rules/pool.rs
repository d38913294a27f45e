//! Pooling: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
//!
//! - MaxPool routes each output's gradient to its argmax: the forward node's `Indices`
//!   output where it has one, else a second MaxPool that returns them; the gradients are
//!   scattered (added, since overlapping windows can share an argmax) into a flat zero
//!   tensor with `ScatterElements(reduction = "add")`.
//! - AveragePool divides each output's gradient by its window's divisor and spreads it
//!   over the window with a `ConvTranspose` of a ones kernel, channels folded into the
//!   batch axis so no static channel count is needed.
//! - GlobalAveragePool broadcasts the gradient back and divides by the spatial size.
//! - GlobalMaxPool sends each channel's gradient to its maximum (ties share it).

use std::collections::HashMap;

use memeguard_onnx::Attr;

use super::reduce::reduced_count;
use super::window::{Window, shape_tail, transpose_to_input};
use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("MaxPool", max_pool);
    map.insert("AveragePool", average_pool);
    map.insert("GlobalAveragePool", global_average_pool);
    map.insert("GlobalMaxPool", global_max_pool);
}

/// The window attributes of the current pooling node, for emitting a twin of it.
fn window_attrs(c: &RuleCtx) -> Vec<(&'static str, Attr)> {
    let mut attrs = Vec::new();
    for name in ["kernel_shape", "strides", "pads", "dilations"] {
        if let Some(v) = c.attr_ints(name) {
            attrs.push((name, Attr::Ints(v)));
        }
    }
    if let Some(v) = c.attr_str("auto_pad") {
        attrs.push(("auto_pad", Attr::Str(v)));
    }
    attrs.push(("ceil_mode", Attr::Int(c.attr_int("ceil_mode", 0))));
    attrs
}

fn max_pool(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let Some(dy) = c.grad_output(0) else {
        return Ok(()); // Indices carry no gradient.
    };
    let x = c.input(0).to_string();
    // Indices are flat positions in X (batch and channel included) in row-major order;
    // a column-major `storage_order` needs a row-major twin.
    let indices = if !c.output(1).is_empty() && c.attr_int("storage_order", 0) == 0 {
        c.output(1).to_string()
    } else {
        let mut attrs = window_attrs(c);
        attrs.push(("storage_order", Attr::Int(0)));
        c.ops("MaxPool", &[&x], 2, &attrs).remove(1)
    };
    // Every window maximum sends its gradient back to the position it came from.
    let dx = super::indexing::scatter_add_flat(c, &x, &indices, &dy);
    c.set_grad(0, dx);
    Ok(())
}

fn average_pool(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let dy = c.grad_out();
    let x = c.input(0).to_string();
    let kernel = c.attr_ints("kernel_shape").ok_or_else(|| c.unsupported("`kernel_shape` is required"))?;
    let win = Window::resolve(c, &x, kernel.clone())?;
    if c.attr_int("ceil_mode", 0) != 0 && win.remainders().is_none_or(|r| r.iter().any(|&v| v != 0)) {
        // With a partial last window the divisor follows ONNX Runtime's clipping rules.
        return Err(c.unsupported("ceil_mode=1 is supported only where it adds no partial window (static sizes)"));
    }
    let dtype = c.dtype(&x);
    let taps: i64 = kernel.iter().product();
    let taps_value = c.scalar(taps as f64, &x);
    let pads_at_border = win.pads().iter().any(|&p| p != 0);
    let share = if c.attr_int("count_include_pad", 0) == 0 && pads_at_border {
        // Windows at the border divide by their count of real inputs: K × the
        // include-pad average of ones over the same windows.
        let sizes = shape_tail(c, &x, 2);
        let ones_head = c.const_i64s(&[1, 1]);
        let ones_shape = c.op("Concat", &[&ones_head, &sizes], &[("axis", Attr::Int(0))]);
        let ones = c.filled_of_shape(&ones_shape, dtype, 1.0);
        let mut attrs = window_attrs(c);
        attrs.push(("count_include_pad", Attr::Int(1)));
        let fraction = c.op("AveragePool", &[&ones], &attrs);
        let counts = c.op("Mul", &[&fraction, &taps_value], &[]);
        c.op("Div", &[&dy, &counts], &[])
    } else {
        c.op("Div", &[&dy, &taps_value], &[])
    };
    // [N, C, So] → [N·C, 1, So], spread with a ones kernel, back to X's shape.
    let mut fold = vec![-1, 1];
    fold.extend(vec![0; win.spatial()]);
    let fold = c.const_i64s(&fold);
    let folded = c.op("Reshape", &[&share, &fold], &[]);
    let mut kdims = vec![1, 1];
    kdims.extend(&kernel);
    let ones_kernel = c.filled(dtype, &kdims, 1.0);
    let spread = transpose_to_input(c, &folded, &ones_kernel, 1, &win, &x);
    let shape = c.shape_of(&x);
    let dx = c.op("Reshape", &[&spread, &shape], &[]);
    c.set_grad(0, dx);
    Ok(())
}

fn global_average_pool(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let dy = c.grad_out();
    let x = c.input(0).to_string();
    let shape = c.shape_of(&x);
    let spread = c.op("Expand", &[&dy, &shape], &[]);
    let count = reduced_count(c);
    let dx = c.op("Div", &[&spread, &count], &[]);
    c.set_grad(0, dx);
    Ok(())
}

fn global_max_pool(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let dy = c.grad_out();
    let (x, y) = (c.input(0).to_string(), c.output(0).to_string());
    let rank = c.rank(&x).ok_or_else(|| c.unsupported("the input's rank must be known (declare its shape)"))?;
    let hit = c.op("Equal", &[&x, &y], &[]);
    let mask = c.op("Cast", &[&hit], &[("to", Attr::Int(c.dtype(&x) as i64))]);
    let count = c.reduce_sum(&mask, &(2..rank as i64).collect::<Vec<_>>(), true);
    let share = c.op("Div", &[&mask, &count], &[]);
    let dx = c.op("Mul", &[&dy, &share], &[]);
    c.set_grad(0, dx);
    Ok(())
}
