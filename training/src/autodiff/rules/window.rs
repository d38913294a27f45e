//! Sliding-window geometry shared by the Conv and pooling rules, and the one
//! construction that sends a window-shaped gradient back onto the input: a
//! `ConvTranspose` whose output is fitted to the input's spatial size.

use memeguard_onnx::{Attr, Dim};

use crate::autodiff::{AutodiffError, RuleCtx};

/// The geometry of a Conv or pooling node with `auto_pad` resolved into explicit pads.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub kernel: Vec<i64>,
    pub strides: Vec<i64>,
    pub dilations: Vec<i64>,
    pub pads_begin: Vec<i64>,
    pub pads_end: Vec<i64>,
    /// The input's spatial sizes, where static.
    pub input: Vec<Option<i64>>,
}

impl Window {
    /// Reads the current node's geometry for input `x` (`[N, C, spatial...]`) and `kernel`.
    pub fn resolve(c: &RuleCtx, x: &str, kernel: Vec<i64>) -> Result<Window, AutodiffError> {
        let dims = c.dims(x).ok_or_else(|| c.unsupported("the input's rank must be known (declare its shape)"))?;
        if dims.len() < 3 {
            return Err(c.unsupported(format!("the input must be [N, C, spatial...], but it has rank {}", dims.len())));
        }
        let n = dims.len() - 2;
        let per_axis = |name: &str, len: usize| -> Result<Vec<i64>, AutodiffError> {
            let v = c.attr_ints(name).unwrap_or_else(|| vec![if name == "pads" { 0 } else { 1 }; len]);
            if v.len() != len {
                return Err(c.unsupported(format!("`{name}` has {} values for {n} spatial axes", v.len())));
            }
            Ok(v)
        };
        if kernel.len() != n {
            return Err(c.unsupported(format!("a kernel of {} axes over {n} spatial axes", kernel.len())));
        }
        let strides = per_axis("strides", n)?;
        let dilations = per_axis("dilations", n)?;
        let input: Vec<Option<i64>> =
            dims[2..].iter().map(|d| if let Dim::Known(v) = d { Some(*v) } else { None }).collect();
        let auto_pad = c.attr_str("auto_pad").unwrap_or_default();
        let pads = match auto_pad.as_str() {
            "" | "NOTSET" => per_axis("pads", 2 * n)?,
            "VALID" => vec![0; 2 * n],
            "SAME_UPPER" | "SAME_LOWER" => {
                // Total padding keeps ceil(in / stride) outputs; the odd one goes at the end
                // (UPPER) or the beginning (LOWER), as ONNX Runtime does.
                let mut begin = Vec::with_capacity(n);
                let mut end = Vec::with_capacity(n);
                for i in 0..n {
                    let h = input[i]
                        .ok_or_else(|| c.unsupported(format!("auto_pad={auto_pad} needs static spatial sizes")))?;
                    let eff = dilations[i] * (kernel[i] - 1) + 1;
                    let total = (((h + strides[i] - 1) / strides[i] - 1) * strides[i] + eff - h).max(0);
                    let small = total / 2;
                    let (b, e) = if auto_pad == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
                    begin.push(b);
                    end.push(e);
                }
                begin.extend(end);
                begin
            }
            other => return Err(c.unsupported(format!("unknown auto_pad `{other}`"))),
        };
        Ok(Window { kernel, strides, dilations, pads_begin: pads[..n].to_vec(), pads_end: pads[n..].to_vec(), input })
    }

    /// Number of spatial axes.
    pub fn spatial(&self) -> usize {
        self.kernel.len()
    }

    /// `pads` in ONNX order: all begins, then all ends.
    pub fn pads(&self) -> Vec<i64> {
        [self.pads_begin.clone(), self.pads_end.clone()].concat()
    }

    /// Per axis, `(in + pads − effective kernel) mod stride`: the trailing padded rows no
    /// window reaches (with floor rounding). `None` when a spatial size is symbolic.
    pub fn remainders(&self) -> Option<Vec<i64>> {
        (0..self.spatial())
            .map(|i| {
                let eff = self.dilations[i] * (self.kernel[i] - 1) + 1;
                let span = self.input[i]? + self.pads_begin[i] + self.pads_end[i] - eff;
                Some(span.rem_euclid(self.strides[i]))
            })
            .collect()
    }

    /// Axes `[2, rank)` of a `[N, C, spatial...]` value.
    pub fn spatial_axes(&self) -> Vec<i64> {
        (2..2 + self.spatial() as i64).collect()
    }
}

/// `Slice(Shape(v))[from..]`: the trailing part of `v`'s shape, computed at run time.
pub(crate) fn shape_tail(c: &mut RuleCtx, v: &str, from: i64) -> String {
    let s = c.shape_of(v);
    let start = c.const_i64s(&[from]);
    let end = c.const_i64s(&[i64::MAX]);
    c.op("Slice", &[&s, &start, &end], &[])
}

/// The adjoint of a window op's gather: `ConvTranspose(dy, w)` with the window's strides,
/// dilations, pads and `group`, its spatial size fitted to `x`'s. With static sizes the
/// fit is the `output_padding` (the remainder rows); otherwise the end of the result is
/// cropped or zero-padded to `Shape(x)` at run time.
pub(crate) fn transpose_to_input(c: &mut RuleCtx, dy: &str, w: &str, group: i64, win: &Window, x: &str) -> String {
    let common = [
        ("strides", Attr::Ints(win.strides.clone())),
        ("dilations", Attr::Ints(win.dilations.clone())),
        ("group", Attr::Int(group)),
    ];
    if let Some(r) = win.remainders() {
        let mut attrs = common.to_vec();
        attrs.push(("pads", Attr::Ints(win.pads())));
        attrs.push(("output_padding", Attr::Ints(r)));
        return c.op("ConvTranspose", &[dy, w], &attrs);
    }
    // Without end pads the result has `in + pad_end − remainder` rows: crop to `in`,
    // then zero-pad whatever is still missing (rows no window reached).
    let n = win.spatial();
    let mut attrs = common.to_vec();
    attrs.push(("pads", Attr::Ints([win.pads_begin.clone(), vec![0; n]].concat())));
    let full = c.op("ConvTranspose", &[dy, w], &attrs);
    let want = shape_tail(c, x, 2);
    let starts = c.const_i64s(&vec![0; n]);
    let axes = c.const_i64s(&win.spatial_axes());
    let cropped = c.op("Slice", &[&full, &starts, &want, &axes], &[]);
    let have = shape_tail(c, &cropped, 2);
    let missing = c.op("Sub", &[&want, &have], &[]);
    let no_pads = c.const_i64s(&vec![0; n + 4]);
    let pads = c.op("Concat", &[&no_pads, &missing], &[("axis", Attr::Int(0))]);
    c.op("Pad", &[&cropped, &pads], &[])
}
