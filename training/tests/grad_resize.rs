//! Finite-difference checks of Resize over one, two or three spatial axes: nearest (each
//! `nearest_mode`), linear and cubic, with the coordinate modes PyTorch exports
//! (half_pixel, align_corners, asymmetric, pytorch_half_pixel), by scales and by sizes,
//! up and down. Resize is linear in X, so central differences are exact up to rounding.
//! What the separable construction does not cover is refused.

mod common;
use common::*;
use memeguard_onnx::{Attr, DataType, GraphBuilder, Tensor, dims};
use memeguard_training::autodiff::differentiate;
use memeguard_training::autodiff::gradcheck::{GradCheck, check};

/// Resize `x` by constant `scales` or `sizes` (one per axis) with `attrs`.
fn resize<const R: usize>(
    scales: Option<[f32; R]>,
    sizes: Option<[i64; R]>,
    attrs: Vec<(&'static str, Attr)>,
) -> impl Fn(&mut GraphBuilder, &[String]) -> String {
    move |b, n| match (scales, sizes) {
        (Some(s), _) => {
            let s = b.initializer("scales", &Tensor::f32(vec![R as i64], s.to_vec()));
            b.op("Resize", &[&n[0], "", &s], &attrs)
        }
        (_, Some(z)) => {
            let z = b.const_i64s("sizes", &z);
            b.op("Resize", &[&n[0], "", "", &z], &attrs)
        }
        _ => unreachable!("scales or sizes"),
    }
}

fn mode(m: &str, coord: &str) -> Vec<(&'static str, Attr)> {
    vec![("mode", Attr::Str(m.into())), ("coordinate_transformation_mode", Attr::Str(coord.into()))]
}

#[test]
fn linear_and_cubic_in_each_coordinate_mode() {
    let ins = [x("x", &[1, 2, 3, 4], values(24, 1, 0.1, 1.0))];
    for m in ["linear", "cubic"] {
        for coord in ["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"] {
            eprintln!("{m} {coord}");
            check_grad(&ins, &resize(Some([1.0, 1.0, 2.0, 1.5]), None, mode(m, coord)));
            check_grad(&ins, &resize(None, Some([1, 2, 5, 7]), mode(m, coord)));
            check_grad(&ins, &resize(None, Some([1, 2, 2, 3]), mode(m, coord)));
        }
    }
}

#[test]
fn nearest_in_each_rounding_and_coordinate_mode() {
    let ins = [x("x", &[2, 1, 3, 4], values(24, 2, 0.1, 1.0))];
    for coord in ["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"] {
        for nearest in ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"] {
            let mut attrs = mode("nearest", coord);
            attrs.push(("nearest_mode", Attr::Str(nearest.into())));
            eprintln!("nearest {coord} {nearest}");
            check_grad(&ins, &resize(Some([1.0, 1.0, 2.0, 2.0]), None, attrs.clone()));
            check_grad(&ins, &resize(None, Some([2, 1, 5, 3]), attrs));
        }
    }
}

/// One spatial axis (`[N, C, L]`) and three (`[N, C, D, H, W]`).
#[test]
fn one_and_three_spatial_axes() {
    // (ONNX Runtime's cubic mode takes 2-D spatial inputs only.)
    let ins = [x("x", &[2, 2, 5], values(20, 9, 0.1, 1.0))];
    for m in ["nearest", "linear"] {
        check_grad(&ins, &resize(Some([1.0, 1.0, 1.6]), None, mode(m, "half_pixel")));
        check_grad(&ins, &resize(None, Some([2, 2, 3]), mode(m, "align_corners")));
    }
    let ins = [x("x", &[1, 2, 2, 3, 2], values(24, 10, 0.1, 1.0))];
    for m in ["nearest", "linear"] {
        check_grad(&ins, &resize(Some([1.0, 1.0, 2.0, 1.5, 1.0]), None, mode(m, "asymmetric")));
        check_grad(&ins, &resize(None, Some([1, 2, 3, 4, 3]), mode(m, "pytorch_half_pixel")));
    }
}

/// Downsampling with `antialias = 1` is still separable and linear.
#[test]
fn antialiased_linear_downsampling() {
    let ins = [x("x", &[1, 1, 6, 8], values(48, 3, 0.1, 1.0))];
    let mut attrs = mode("linear", "half_pixel");
    attrs.push(("antialias", Attr::Int(1)));
    check_grad(&ins, &resize(None, Some([1, 1, 3, 3]), attrs));
}

/// Attributes, sizes, and a word the refusal must contain.
type RefusedCase = (Vec<(&'static str, Attr)>, [i64; 4], &'static str);

#[test]
fn what_is_not_separable_here_is_refused() {
    let cases: [RefusedCase; 3] = [
        (mode("linear", "tf_crop_and_resize"), [1, 2, 6, 8], "tf_crop_and_resize"),
        (mode("linear", "half_pixel"), [1, 4, 6, 8], "channel"),
        (vec![("mode", Attr::Str("linear".into())), ("axes", Attr::Ints(vec![2, 3]))], [1, 2, 6, 8], "axes"),
    ];
    for (attrs, sizes, want) in cases {
        let mut b = GraphBuilder::new("resize");
        let xn = b.input("x", DataType::Float, &dims![1, 2, 3, 4]);
        let sizes = if want == "axes" { b.const_i64s("sizes", &sizes[2..]) } else { b.const_i64s("sizes", &sizes) };
        let y = b.op("Resize", &[&xn, "", "", &sizes], &attrs);
        let loss = b.op("ReduceSum", &[&y], &[("keepdims", Attr::Int(0))]);
        let err = differentiate(&b.build(), &loss, &["x".to_string()]).unwrap_err();
        assert!(err.to_string().contains(want), "{want}: {err}");
    }
}

/// A decoder step as exporters write it: Resize, then Conv and GroupNormalization, whose
/// rules need the rank the Resize's shape rule keeps.
#[test]
fn resize_then_conv_and_group_norm() {
    let ins = [
        x("x", &[1, 2, 3, 3], values(18, 4, 0.1, 1.0)),
        x("w", &[4, 2, 3, 3], values(72, 5, 0.1, 0.5)),
        x("scale", &[2], values(2, 6, 0.5, 1.5)), // opset 20: GroupNormalization-18, per group
        x("bias", &[2], values(2, 7, 0.1, 1.0)),
    ];
    check_grad(&ins, &|b, n| {
        let s = b.initializer("scales", &Tensor::f32(vec![4], vec![1.0, 1.0, 2.0, 2.0]));
        let attrs = mode("linear", "half_pixel");
        let y = b.op("Resize", &[&n[0], "", &s], &attrs);
        let y = b.op("Conv", &[&y, &n[1]], &[("pads", Attr::Ints(vec![1, 1, 1, 1]))]);
        b.op("GroupNormalization", &[&y, &n[2], &n[3]], &[("num_groups", Attr::Int(2)), ("epsilon", Attr::Float(1e-3))])
    });
}

/// `F.interpolate(x, size=y.shape[2:])` exports sizes computed from another value's
/// shape at run time; shape inference shows they keep the batch and channels.
#[test]
fn sizes_computed_from_a_shape_at_run_time() {
    let mut b = GraphBuilder::new("resize_like");
    let xn = b.input("x", DataType::Float, &dims!["n", 2, 3, 4]);
    let like = b.input("like", DataType::Float, &dims!["n", 2, "h", "w"]);
    let sizes = b.op("Shape", &[&like], &[]);
    let y = b.op("Resize", &[&xn, "", "", &sizes], &mode("linear", "half_pixel"));
    let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
    let feeds = vec![
        ("x".to_string(), Tensor::f32(vec![2, 2, 3, 4], f32s(values(48, 8, 0.1, 1.0)))),
        ("like".to_string(), Tensor::f32(vec![2, 2, 5, 7], vec![0.0; 140])),
    ];
    let report = check(&GradCheck::f32(b.build(), &y, feeds, &["x"])).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("f32 check: max abs error {:.3e}", report.max_abs_err);
}
