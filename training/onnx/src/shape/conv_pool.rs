//! Sliding windows: `Conv`, `MaxPool`, `AveragePool`, `ConvTranspose`, and the global
//! pools; `Resize`.

use super::{Ctx, Outputs, ValueType, unknown};
use crate::builder::{Dim, attr_int, attr_ints};
use crate::proto::tensor_proto::DataType;

/// Output size of a sliding window (conv, pooling) along one axis.
fn window_out(input: &Dim, kernel: i64, stride: i64, pad_total: i64, dilation: i64, ceil: bool) -> Dim {
    match input {
        Dim::Known(n) => {
            let eff = dilation * (kernel - 1) + 1;
            let span = n + pad_total - eff;
            let out = if ceil { (span + stride - 1) / stride + 1 } else { span / stride + 1 };
            Dim::Known(out)
        }
        _ => unknown(),
    }
}

/// `Conv`, `MaxPool`, `AveragePool`: `[N, C, spatial…]` with each spatial size from the
/// window (or `SAME` padding); `MaxPool`'s optional indices are int64 of that shape.
pub(super) fn window(c: &Ctx) -> Outputs {
    let node = c.node;
    let w = c.input(1).and_then(|t| t.dims.clone());
    let dims = c.dims0.as_ref().filter(|d| d.len() >= 3).map(|d| {
        let spatial = d.len() - 2;
        let kernel: Vec<i64> = attr_ints(node, "kernel_shape").unwrap_or_else(|| {
            w.as_ref()
                .map(|w| w[2..].iter().map(|x| if let Dim::Known(v) = x { *v } else { 1 }).collect())
                .unwrap_or_else(|| vec![1; spatial])
        });
        let strides = attr_ints(node, "strides").unwrap_or_else(|| vec![1; spatial]);
        let dil = attr_ints(node, "dilations").unwrap_or_else(|| vec![1; spatial]);
        let pads = attr_ints(node, "pads").unwrap_or_else(|| vec![0; 2 * spatial]);
        let ceil = attr_int(node, "ceil_mode", 0) != 0;
        let auto_pad = crate::builder::attr_str(node, "auto_pad").unwrap_or_default();
        let mut out = vec![d[0].clone()];
        out.push(if c.op == "Conv" { w.as_ref().map(|w| w[0].clone()).unwrap_or_else(unknown) } else { d[1].clone() });
        for i in 0..spatial {
            out.push(if auto_pad.starts_with("SAME") {
                match &d[2 + i] {
                    Dim::Known(n) => Dim::Known((n + strides[i] - 1) / strides[i]),
                    _ => unknown(),
                }
            } else {
                window_out(&d[2 + i], kernel[i], strides[i], pads[i] + pads[i + spatial], dil[i], ceil)
            });
        }
        out
    });
    let mut v = vec![c.same(dims)];
    if c.op == "MaxPool" && c.n_out > 1 {
        v.push(v[0].clone().map(|t| ValueType { dtype: DataType::Int64, ..t }));
    }
    v
}

/// `ConvTranspose`: out = stride·(in − 1) + output_padding + dilation·(k − 1) + 1 − pads,
/// or `output_shape` when given; channels = W[1]·group.
pub(super) fn conv_transpose(c: &Ctx) -> Outputs {
    let node = c.node;
    let known = |x: &Dim| if let Dim::Known(v) = x { Some(*v) } else { None };
    let w = c.input(1).and_then(|t| t.dims.clone());
    let dims = c.dims0.as_ref().filter(|d| d.len() >= 3).map(|d| {
        let spatial = d.len() - 2;
        let kernel: Option<Vec<i64>> = attr_ints(node, "kernel_shape")
            .or_else(|| w.as_ref().filter(|w| w.len() == d.len()).and_then(|w| w[2..].iter().map(known).collect()));
        let strides = attr_ints(node, "strides").unwrap_or_else(|| vec![1; spatial]);
        let dil = attr_ints(node, "dilations").unwrap_or_else(|| vec![1; spatial]);
        let out_pad = attr_ints(node, "output_padding").unwrap_or_else(|| vec![0; spatial]);
        let auto_pad = crate::builder::attr_str(node, "auto_pad").unwrap_or_default();
        let pads = match attr_ints(node, "pads") {
            Some(p) if auto_pad.is_empty() || auto_pad == "NOTSET" => p,
            _ => vec![0; 2 * spatial],
        };
        let explicit = attr_ints(node, "output_shape");
        let group = attr_int(node, "group", 1);
        let mut out = vec![d[0].clone()];
        out.push(
            w.as_ref().and_then(|w| w.get(1)).and_then(known).map(|c| Dim::Known(c * group)).unwrap_or_else(unknown),
        );
        for i in 0..spatial {
            out.push(match (&explicit, known(&d[2 + i]), &kernel) {
                (Some(s), _, _) => Dim::Known(s[s.len() - spatial + i]),
                (None, Some(n), _) if auto_pad.starts_with("SAME") => Dim::Known(n * strides[i]),
                (None, Some(n), Some(k)) => Dim::Known(
                    strides[i] * (n - 1) + out_pad[i] + dil[i] * (k[i] - 1) + 1 - pads[i] - pads[i + spatial],
                ),
                _ => unknown(),
            });
        }
        out
    });
    vec![c.same(dims)]
}

/// `GlobalAveragePool`, `GlobalMaxPool`: every spatial size becomes 1.
pub(super) fn global_pool(c: &Ctx) -> Outputs {
    vec![
        c.same(
            c.dims0
                .as_ref()
                .map(|d| d.iter().enumerate().map(|(i, x)| if i >= 2 { Dim::Known(1) } else { x.clone() }).collect()),
        ),
    ]
}

/// `Resize`: the input's rank; each size from `sizes` (a constant, or computed from
/// shapes), or `floor(size · scale)`
/// from constant `scales`, unknown where neither tells.
pub(super) fn resize(c: &Ctx) -> Outputs {
    let name = |i: usize| c.node.input.get(i).filter(|s| !s.is_empty());
    let sizes = name(3).and_then(|n| c.map.dim_values(n));
    let scales = name(2).and_then(|n| c.map.constants.get(n)).map(|t| t.to_f64_vec());
    let dims = c.dims0.as_ref().map(|d| {
        let rank = d.len();
        d.iter()
            .enumerate()
            .map(|(i, x)| match (&sizes, &scales, x) {
                (Some(s), _, _) if s.len() == rank => s[i].clone(),
                (None, Some(s), Dim::Known(n)) if s.len() == rank => Dim::Known((*n as f64 * s[i]).floor() as i64),
                (None, Some(s), _) if s.len() == rank && s[i] == 1.0 => x.clone(),
                _ => unknown(),
            })
            .collect()
    });
    vec![c.same(dims)]
}
