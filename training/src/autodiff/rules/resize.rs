//! Resize of the two spatial axes of `[N, C, H, W]` (nearest, linear or cubic; any
//! coordinate transformation but `tf_crop_and_resize`).
//!
//! These modes act on each spatial axis separately and linearly in X:
//! `Y = A_h · X · A_wᵀ` for each (n, c), with `A_h` the `[H_out, H_in]` matrix of the
//! H-axis interpolation. Each matrix is read off the op itself: the same Resize
//! applied, along one axis only, to an identity matrix `[1, 1, H_in, H_in]` (a scale
//! of 1, or the size kept, leaves the other axis as it is), so every mode, rounding and
//! coordinate rule agrees with the forward by construction. Then
//! `dX = A_hᵀ · dY · A_w`: two MatMuls.

use std::collections::HashMap;

use memeguard_onnx::{Attr, Tensor};

use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("Resize", resize);
}

/// The attributes that decide the interpolation, copied onto the probes.
fn interpolation_attrs(c: &RuleCtx) -> Vec<(&'static str, Attr)> {
    let mut attrs = Vec::new();
    for name in ["mode", "coordinate_transformation_mode", "nearest_mode"] {
        if let Some(v) = c.attr_str(name) {
            attrs.push((name, Attr::Str(v)));
        }
    }
    for name in ["exclude_outside", "antialias"] {
        if c.node().attribute.iter().any(|a| a.name.as_deref() == Some(name)) {
            attrs.push((name, Attr::Int(c.attr_int(name, 0))));
        }
    }
    if c.node().attribute.iter().any(|a| a.name.as_deref() == Some("cubic_coeff_a")) {
        attrs.push(("cubic_coeff_a", Attr::Float(c.attr_float("cubic_coeff_a", -0.75))));
    }
    attrs
}

/// Refuses what the separable construction does not cover, and checks that the batch
/// and channel axes keep their sizes.
fn check_supported(c: &RuleCtx, x: &str) -> Result<(), AutodiffError> {
    let mode = c.attr_str("mode").unwrap_or_else(|| "nearest".into());
    if !matches!(mode.as_str(), "nearest" | "linear" | "cubic") {
        return Err(c.unsupported(format!("mode `{mode}`")));
    }
    if c.attr_str("coordinate_transformation_mode").as_deref() == Some("tf_crop_and_resize") {
        return Err(c.unsupported("coordinate_transformation_mode `tf_crop_and_resize` (its roi and extrapolation)"));
    }
    if c.attr_ints("axes").is_some() {
        return Err(c.unsupported("the `axes` attribute (write scales or sizes for all four axes)"));
    }
    if c.attr_str("keep_aspect_ratio_policy").is_some_and(|p| p != "stretch") {
        return Err(c.unsupported("keep_aspect_ratio_policy other than `stretch`"));
    }
    let dims = c.dims(x).ok_or_else(|| c.unsupported("the input's rank must be known (declare its shape)"))?;
    if dims.len() != 4 {
        return Err(c.unsupported(format!("only [N, C, H, W] inputs (2-D spatial); this one has rank {}", dims.len())));
    }
    let scales = if c.has_input(2) { c.shapes().constants.get(c.input(2)).map(|t| t.to_f64_vec()) } else { None };
    // Sizes may be computed at run time from shapes (`F.interpolate(size=x.shape[2:])`):
    // what shape inference knows of them must show the batch and channels kept.
    let sizes = if c.has_input(3) { c.shapes().dim_values(c.input(3)) } else { None };
    let keeps_batch_and_channels = match (scales, sizes) {
        (Some(s), _) if s.len() == 4 => s[0] == 1.0 && s[1] == 1.0,
        (_, Some(s)) if s.len() == 4 => (0..2).all(|i| dims[i] == s[i] && !memeguard_onnx::shape::is_unknown(&s[i])),
        _ => {
            return Err(c.unsupported(
                "scales must be a constant, or sizes a constant or computed from shapes, of four values",
            ));
        }
    };
    if !keeps_batch_and_channels {
        return Err(c.unsupported("resizing the batch or channel axis"));
    }
    Ok(())
}

fn resize(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let g = c.grad_out();
    let x = c.input(0).to_string();
    check_supported(c, &x)?;
    let a_h = axis_matrix(c, &x, 2);
    let a_w = axis_matrix(c, &x, 3);
    let a_h_t = c.op("Transpose", &[&a_h], &[("perm", Attr::Ints(vec![1, 0]))]);
    let rows = c.op("MatMul", &[&a_h_t, &g], &[]); // [N, C, H_in, W_out]
    let dx = c.op("MatMul", &[&rows, &a_w], &[]); // [N, C, H_in, W_in]
    c.set_grad(0, dx);
    Ok(())
}

/// `[out, in]`: the interpolation matrix of spatial `axis` (2 or 3) of `x`.
fn axis_matrix(c: &mut RuleCtx, x: &str, axis: i64) -> String {
    let dtype = c.dtype(x);
    let shape = c.shape_of(x);
    let (at, after) = (c.const_i64s(&[axis]), c.const_i64s(&[axis + 1]));
    let n = c.op("Slice", &[&shape, &at, &after], &[]);
    let square = c.op("Concat", &[&n, &n], &[("axis", Attr::Int(0))]);
    let zeros = c.filled_of_shape(&square, dtype, 0.0);
    let eye = c.op("EyeLike", &[&zeros], &[]);
    let lead = c.const_i64s(&[0, 1]);
    let eye = c.op("Unsqueeze", &[&eye, &lead], &[]); // [1, 1, n, n]
    // The probe resizes axis 2 as the forward resizes `axis`, and keeps axis 3.
    let (scales, sizes) = if c.has_input(2) && !c.has_input(3) {
        let forward = c.input(2).to_string();
        let s = c.op("Slice", &[&forward, &at, &after], &[]);
        let ones = c.constant(Tensor::f32(vec![2], vec![1.0, 1.0]));
        let one = c.constant(Tensor::f32(vec![1], vec![1.0]));
        let probe = c.op("Concat", &[&ones, &s, &one], &[("axis", Attr::Int(0))]);
        (probe, String::new())
    } else {
        let forward = c.input(3).to_string();
        let s = c.op("Slice", &[&forward, &at, &after], &[]);
        let ones = c.const_i64s(&[1, 1]);
        let probe = c.op("Concat", &[&ones, &s, &n], &[("axis", Attr::Int(0))]);
        (String::new(), probe)
    };
    let attrs = interpolation_attrs(c);
    let r = if sizes.is_empty() {
        c.op("Resize", &[&eye, "", &scales], &attrs)
    } else {
        c.op("Resize", &[&eye, "", "", &sizes], &attrs)
    };
    c.op("Squeeze", &[&r, &lead], &[]) // [out, n]
}
