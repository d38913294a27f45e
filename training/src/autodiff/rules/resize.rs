//! Resize of the spatial axes of `[N, C, spatial…]` (one to three of them; nearest,
//! linear or cubic; any coordinate transformation but `tf_crop_and_resize`).
//!
//! These modes act on each spatial axis separately and linearly in X: in 2-D,
//! `Y = A_h · X · A_wᵀ` for each (n, c), with `A_h` the `[H_out, H_in]` matrix of the
//! H-axis interpolation. Each matrix is read off the op itself: the same Resize
//! applied, along one axis only, to an identity matrix (a scale of 1, or the size
//! kept, leaves the other axis as it is), so every mode, rounding and coordinate rule
//! agrees with the forward by construction. Then `dX = A_hᵀ · dY · A_w`, written as
//! one Einsum for any number of spatial axes.

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
        return Err(c.unsupported("the `axes` attribute (write scales or sizes for every axis)"));
    }
    if c.attr_str("keep_aspect_ratio_policy").is_some_and(|p| p != "stretch") {
        return Err(c.unsupported("keep_aspect_ratio_policy other than `stretch`"));
    }
    let dims = c.dims(x).ok_or_else(|| c.unsupported("the input's rank must be known (declare its shape)"))?;
    let rank = dims.len();
    if !(3..=5).contains(&rank) {
        return Err(
            c.unsupported(format!("only [N, C, spatial…] with 1 to 3 spatial axes; this input has rank {rank}"))
        );
    }
    let scales = if c.has_input(2) { c.shapes().constants.get(c.input(2)).map(|t| t.to_f64_vec()) } else { None };
    // Sizes may be computed at run time from shapes (`F.interpolate(size=x.shape[2:])`):
    // what shape inference knows of them must show the batch and channels kept.
    let sizes = if c.has_input(3) { c.shapes().dim_values(c.input(3)) } else { None };
    let keeps_batch_and_channels = match (scales, sizes) {
        (Some(s), _) if s.len() == rank => s[0] == 1.0 && s[1] == 1.0,
        (_, Some(s)) if s.len() == rank => (0..2).all(|i| dims[i] == s[i] && !memeguard_onnx::shape::is_unknown(&s[i])),
        _ => {
            return Err(
                c.unsupported("scales must be a constant, or sizes a constant or computed from shapes, one per axis")
            );
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
    let rank = c.rank(&x).expect("checked above");
    let spatial = rank - 2;
    // dX[n, c, x, y, z] = Σ dY[n, c, u, v, w] · A₂[u, x] · A₃[v, y] · A₄[w, z]
    let (outs, ins) = (&"uvw"[..spatial], &"xyz"[..spatial]);
    let mut inputs = vec![g];
    let mut terms = vec![format!("nc{outs}")];
    for (i, axis) in (2..rank as i64).enumerate() {
        inputs.push(axis_matrix(c, &x, axis, rank));
        terms.push(format!("{}{}", &outs[i..i + 1], &ins[i..i + 1]));
    }
    let equation = format!("{}->nc{ins}", terms.join(","));
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let dx = c.op("Einsum", &refs, &[("equation", Attr::Str(equation))]);
    c.set_grad(0, dx);
    Ok(())
}

/// `[out, in]`: the interpolation matrix of spatial `axis` of `x` (rank `rank`). The
/// probe holds an identity in two axes and resizes the first of them as the forward
/// resizes `axis`: `[1, 1, n, n, 1…]` (resizing axis 2) for two or three spatial axes,
/// `[1, n, n]` (resizing axis 2, the identity's other index on the channel axis) for one.
fn axis_matrix(c: &mut RuleCtx, x: &str, axis: i64, rank: usize) -> String {
    let dtype = c.dtype(x);
    let shape = c.shape_of(x);
    let (at, after) = (c.const_i64s(&[axis]), c.const_i64s(&[axis + 1]));
    let n = c.op("Slice", &[&shape, &at, &after], &[]);
    let square = c.op("Concat", &[&n, &n], &[("axis", Attr::Int(0))]);
    let zeros = c.filled_of_shape(&square, dtype, 0.0);
    let eye = c.op("EyeLike", &[&zeros], &[]);
    let padding: Vec<i64> = match rank {
        3 => vec![0],
        4 => vec![0, 1],
        _ => vec![0, 1, 4],
    };
    let padding = c.const_i64s(&padding);
    let probe = c.op("Unsqueeze", &[&eye, &padding], &[]);
    let trailing = rank.saturating_sub(4);
    let (scales, sizes) = if c.has_input(2) && !c.has_input(3) {
        let forward = c.input(2).to_string();
        let s = c.op("Slice", &[&forward, &at, &after], &[]);
        let before = c.constant(Tensor::f32(vec![2], vec![1.0, 1.0]));
        let after_ones = c.constant(Tensor::f32(vec![rank as i64 - 3], vec![1.0; rank - 3]));
        let probe_scales = c.op("Concat", &[&before, &s, &after_ones], &[("axis", Attr::Int(0))]);
        (probe_scales, String::new())
    } else {
        let forward = c.input(3).to_string();
        let s = c.op("Slice", &[&forward, &at, &after], &[]);
        let probe_sizes = if rank == 3 {
            let one = c.const_i64s(&[1]);
            c.op("Concat", &[&one, &n, &s], &[("axis", Attr::Int(0))])
        } else {
            let ones = c.const_i64s(&[1, 1]);
            let rest = c.const_i64s(&vec![1; trailing]);
            c.op("Concat", &[&ones, &s, &n, &rest], &[("axis", Attr::Int(0))])
        };
        (String::new(), probe_sizes)
    };
    let attrs = interpolation_attrs(c);
    let r = if sizes.is_empty() {
        c.op("Resize", &[&probe, "", &scales], &attrs)
    } else {
        c.op("Resize", &[&probe, "", "", &sizes], &attrs)
    };
    let m = c.op("Squeeze", &[&r, &padding], &[]);
    if rank == 3 {
        c.op("Transpose", &[&m], &[("perm", Attr::Ints(vec![1, 0]))]) // [n, out] → [out, n]
    } else {
        m
    }
}
