//! Finite-difference checks of Conv and pooling gradients: strides, pads (including the
//! `pad − remainder < 0` case), dilations, groups and depthwise, auto_pad, symbolic
//! spatial sizes; MaxPool with and without its Indices output; AveragePool both ways of
//! counting the padding; GlobalAveragePool and GlobalMaxPool; ConvTranspose with strides,
//! pads, output_padding, output_shape, SAME auto_pad, dilations and groups; the faster
//! formulations chosen per node (dX as a flipped-kernel Conv for stride 1, dW as a
//! MatMul for 1×1 kernels), which nodes take them, and with symbolic sizes. ONNX
//! Runtime's CPU Conv, ConvTranspose and AveragePool are float32-only, so those run in
//! float32, with tolerances fit for ops that are linear in each input.

mod common;
use common::*;
use memeguard_onnx::{Attr, DataType, GraphBuilder, Tensor, dims};
use memeguard_training::autodiff::gradcheck::{GradCheck, check};
use memeguard_training::autodiff::{AutodiffError, differentiate};

fn numel(d: &[i64]) -> usize {
    d.iter().product::<i64>() as usize
}

/// One Conv case: input dims, weight dims, attributes, with or without bias.
struct ConvCase {
    x: Vec<i64>,
    w: Vec<i64>,
    attrs: Vec<(&'static str, Attr)>,
    bias: bool,
}

fn conv_case(x: &[i64], w: &[i64], attrs: Vec<(&'static str, Attr)>, bias: bool) -> ConvCase {
    ConvCase { x: x.to_vec(), w: w.to_vec(), attrs, bias }
}

fn conv_cases() -> Vec<ConvCase> {
    let ints = |v: &[i64]| Attr::Ints(v.to_vec());
    vec![
        // 3×3, stride 1, pad 1.
        conv_case(&[2, 2, 5, 5], &[3, 2, 3, 3], vec![("pads", ints(&[1, 1, 1, 1]))], true),
        // Stride 2 with a remainder row covered by the end pad (r = 1 ≤ p = 1).
        conv_case(&[1, 2, 6, 6], &[2, 2, 3, 3], vec![("strides", ints(&[2, 2])), ("pads", ints(&[1, 1, 1, 1]))], true),
        // Stride 2, no pads, remainder 1: p − r < 0 (the weight gradient is sliced).
        conv_case(&[2, 1, 6, 7], &[2, 1, 3, 3], vec![("strides", ints(&[2, 2]))], false),
        // Stride 3, asymmetric pads, non-square kernel.
        conv_case(&[1, 2, 8, 7], &[2, 2, 2, 3], vec![("strides", ints(&[3, 2])), ("pads", ints(&[0, 1, 2, 0]))], true),
        // Dilation 2 with stride 2.
        conv_case(
            &[1, 2, 9, 8],
            &[3, 2, 3, 2],
            vec![("dilations", ints(&[2, 2])), ("strides", ints(&[2, 1])), ("pads", ints(&[1, 0, 1, 1]))],
            true,
        ),
        // Two groups.
        conv_case(&[2, 4, 5, 5], &[6, 2, 3, 3], vec![("group", Attr::Int(2)), ("pads", ints(&[1, 1, 1, 1]))], true),
        // Depthwise (groups = channels), stride 2.
        conv_case(
            &[2, 3, 6, 6],
            &[3, 1, 3, 3],
            vec![("group", Attr::Int(3)), ("strides", ints(&[2, 2])), ("pads", ints(&[1, 1, 1, 1]))],
            false,
        ),
        // Depthwise with a channel multiplier and dilation.
        conv_case(
            &[1, 2, 7, 7],
            &[4, 1, 2, 2],
            vec![("group", Attr::Int(2)), ("dilations", ints(&[2, 2])), ("strides", ints(&[2, 2]))],
            true,
        ),
        // auto_pad.
        conv_case(
            &[1, 2, 7, 6],
            &[2, 2, 3, 3],
            vec![("auto_pad", Attr::Str("SAME_UPPER".into())), ("strides", ints(&[2, 2]))],
            true,
        ),
        conv_case(
            &[1, 2, 6, 6],
            &[2, 2, 2, 2],
            vec![("auto_pad", Attr::Str("SAME_LOWER".into())), ("strides", ints(&[1, 1]))],
            false,
        ),
        conv_case(
            &[1, 2, 5, 6],
            &[2, 2, 3, 3],
            vec![("auto_pad", Attr::Str("VALID".into())), ("strides", ints(&[2, 2]))],
            true,
        ),
        // 1-D and 3-D.
        conv_case(&[2, 2, 9], &[3, 2, 3], vec![("strides", ints(&[2])), ("pads", ints(&[1, 0]))], true),
        conv_case(&[1, 2, 4, 4, 3], &[2, 2, 2, 3, 2], vec![("pads", ints(&[1, 0, 1, 0, 1, 0]))], true),
    ]
}

fn conv_inputs(case: &ConvCase, seed: u64) -> Vec<In> {
    let mut ins = vec![
        x("x", &case.x, values(numel(&case.x), seed, 0.1, 1.0)),
        x("w", &case.w, values(numel(&case.w), seed + 1, 0.1, 1.0)),
    ];
    if case.bias {
        ins.push(x("b", &[case.w[0]], values(case.w[0] as usize, seed + 2, 0.1, 1.0)));
    }
    ins
}

/// Float32 check settings for ops that are linear in each input (Conv, AveragePool):
/// central differences are then exact for any step, so a large step divides the float32
/// rounding noise of the loss (~1e-5 here) by much more, and the tolerances can be 20×
/// tighter than the defaults, which must also absorb curvature.
fn linear(spec: GradCheck) -> GradCheck {
    GradCheck { eps: 0.5, rtol: 1e-3, atol: 1e-4, ..spec }
}

fn check_linear_f32(label: &str, ins: &[In], body: &dyn Fn(&mut GraphBuilder, &[String]) -> String) {
    let wrt: Vec<&str> = ins.iter().filter(|i| i.wrt).map(|i| i.name).collect();
    let (model, y) = graph(DataType::Float, ins, body);
    let feeds = ins.iter().map(|i| (i.name.to_string(), Tensor::f32(i.dims.clone(), f32s(&i.data)))).collect();
    let report = check(&linear(GradCheck::f32(model, &y, feeds, &wrt))).unwrap_or_else(|e| panic!("{label}: {e}"));
    eprintln!("{label}: f32 check, max abs error {:.3e}", report.max_abs_err);
}

#[test]
fn conv_has_no_float64_kernel_so_checks_run_in_float32() {
    let case = &conv_cases()[1];
    assert_eq!(check_grad(&conv_inputs(case, 90), &one("Conv", case.attrs.clone())), Precision::F32);
}

#[test]
fn conv_strides_pads_dilations_groups() {
    for (i, case) in conv_cases().into_iter().enumerate() {
        let ins = conv_inputs(&case, 100 + 3 * i as u64);
        check_linear_f32(&format!("conv case {i}"), &ins, &one("Conv", case.attrs.clone()));
    }
}

/// Symbolic spatial sizes: the input gradient is fitted to `Shape(X)` at run time and
/// the weight gradient sliced to the kernel.
#[test]
fn conv_with_symbolic_spatial_sizes() {
    let cases = [
        (vec![2, 2, 7, 6], vec![3, 2, 3, 3], vec![2, 2], vec![0, 1, 0, 1], 1),
        (vec![1, 2, 6, 6], vec![2, 2, 3, 3], vec![2, 2], vec![1, 1, 1, 1], 1),
        (vec![1, 4, 6, 5], vec![4, 2, 2, 2], vec![3, 2], vec![1, 0, 0, 0], 2),
    ];
    for (i, (xd, wd, strides, pads, group)) in cases.into_iter().enumerate() {
        let mut b = GraphBuilder::new("symbolic");
        let xn = b.input("x", DataType::Float, &dims!["n", xd[1], "h", "w"]);
        let wn = b.input("w", DataType::Float, &dims![wd[0], wd[1], wd[2], wd[3]]);
        let attrs = [("strides", Attr::Ints(strides)), ("pads", Attr::Ints(pads)), ("group", Attr::Int(group))];
        let y = b.op("Conv", &[&xn, &wn], &attrs);
        let feeds = vec![
            ("x".to_string(), Tensor::f32(xd.clone(), f32s(&values(numel(&xd), 300 + i as u64, 0.1, 1.0)))),
            ("w".to_string(), Tensor::f32(wd.clone(), f32s(&values(numel(&wd), 310 + i as u64, 0.1, 1.0)))),
        ];
        let spec = linear(GradCheck::f32(b.build(), &y, feeds, &["x", "w"]));
        check(&spec).unwrap_or_else(|e| panic!("case {i}: {e}"));
    }
}

/// The op types of the gradient nodes autodiff writes for one Conv node of `case`
/// (with respect to X and W), after the forward Conv.
fn grad_ops(case: &ConvCase) -> Vec<String> {
    let mut b = GraphBuilder::new("ops");
    let xn = b.input("x", DataType::Float, &case.x.iter().map(|d| (*d).into()).collect::<Vec<_>>());
    let wn = b.input("w", DataType::Float, &case.w.iter().map(|d| (*d).into()).collect::<Vec<_>>());
    let y = b.op("Conv", &[&xn, &wn], &case.attrs);
    let axes = b.const_i64s("axes", &(0..case.x.len() as i64).collect::<Vec<_>>());
    let loss = b.op("ReduceSum", &[&y, &axes], &[("keepdims", Attr::Int(0))]);
    let d = differentiate(&b.build(), &loss, &["x".to_string(), "w".to_string()]).expect("differentiable");
    let graph = d.model.graph.expect("a graph");
    let forward = graph.node.iter().position(|n| n.op_type.as_deref() == Some("Conv")).expect("the forward Conv");
    graph.node[forward + 1..].iter().filter_map(|n| n.op_type.clone()).collect()
}

/// The formulations chosen per node: stride-1 convolutions (one group, dilation 1, pads
/// ≤ k − 1) take dX as a Conv with the flipped kernel; 1×1 kernels without pads take dW
/// as a MatMul; everything else keeps ConvTranspose and the batch-as-channels Conv.
fn fast_path_cases() -> Vec<(&'static str, ConvCase, bool, bool)> {
    let ints = |v: &[i64]| Attr::Ints(v.to_vec());
    vec![
        // (label, case, dX by a flipped Conv, dW by MatMul)
        ("3×3 s1 p1", conv_case(&[3, 2, 5, 7], &[4, 2, 3, 3], vec![("pads", ints(&[1, 1, 1, 1]))], true), true, false),
        ("3×3 s1 p0", conv_case(&[2, 3, 6, 5], &[2, 3, 3, 3], vec![], false), true, false),
        (
            "3×3 s1 asymmetric pads",
            conv_case(&[2, 2, 6, 5], &[3, 2, 3, 3], vec![("pads", ints(&[0, 2, 1, 0]))], true),
            true,
            false,
        ),
        (
            "2×3 s1 asymmetric pads",
            conv_case(&[2, 2, 5, 6], &[3, 2, 2, 3], vec![("pads", ints(&[1, 0, 0, 2]))], false),
            true,
            false,
        ),
        // Weights larger than dY and dX together: the activations are flipped instead.
        (
            "3×3 s1 p1, activations flipped",
            conv_case(&[2, 8, 3, 2], &[8, 8, 3, 3], vec![("pads", ints(&[1, 1, 1, 1]))], true),
            true,
            false,
        ),
        (
            "3×2 s1 asymmetric pads, activations flipped",
            conv_case(&[2, 6, 3, 4], &[16, 6, 3, 2], vec![("pads", ints(&[0, 1, 2, 0]))], false),
            true,
            false,
        ),
        ("1-D k3 s1", conv_case(&[2, 2, 9], &[3, 2, 3], vec![("pads", ints(&[2, 1]))], true), true, false),
        ("1×1 s1", conv_case(&[2, 3, 5, 4], &[4, 3, 1, 1], vec![], true), true, true),
        ("1×1 s2", conv_case(&[3, 4, 7, 6], &[5, 4, 1, 1], vec![("strides", ints(&[2, 2]))], false), false, true),
        ("1×1 s(2,3)", conv_case(&[2, 3, 6, 8], &[2, 3, 1, 1], vec![("strides", ints(&[2, 3]))], true), false, true),
        // Not taken: pads beyond k − 1, groups, stride 2, dilation.
        ("1×1 s1 p1", conv_case(&[2, 2, 4, 3], &[3, 2, 1, 1], vec![("pads", ints(&[1, 1, 1, 1]))], true), false, false),
        (
            "3×3 s1 2 groups",
            conv_case(
                &[2, 4, 5, 5],
                &[4, 2, 3, 3],
                vec![("group", Attr::Int(2)), ("pads", ints(&[1, 1, 1, 1]))],
                false,
            ),
            false,
            false,
        ),
        (
            "3×3 s2",
            conv_case(
                &[2, 2, 7, 6],
                &[3, 2, 3, 3],
                vec![("strides", ints(&[2, 2])), ("pads", ints(&[1, 1, 1, 1]))],
                true,
            ),
            false,
            false,
        ),
        (
            "3×3 s1 d2",
            conv_case(
                &[1, 2, 8, 7],
                &[2, 2, 3, 3],
                vec![("dilations", ints(&[2, 2])), ("pads", ints(&[2, 2, 2, 2]))],
                true,
            ),
            false,
            false,
        ),
    ]
}

#[test]
fn conv_fast_gradient_paths_are_chosen_per_node() {
    for (label, case, flipped, matmul) in fast_path_cases() {
        let ops = grad_ops(&case);
        assert_eq!(!ops.iter().any(|o| o == "ConvTranspose"), flipped, "{label}: dX ops {ops:?}");
        assert_eq!(ops.iter().any(|o| o == "MatMul"), matmul, "{label}: dW ops {ops:?}");
        // dW by MatMul leaves no Conv; dX by a flipped Conv is then the only one.
        let convs = ops.iter().filter(|o| *o == "Conv").count();
        assert_eq!(convs, flipped as usize + !matmul as usize, "{label}: {ops:?}");
        // Which side is flipped: dY and dX where the weight is the larger, else the weight.
        let slices = ops.iter().filter(|o| *o == "Slice").count();
        if label.ends_with("activations flipped") {
            assert_eq!(slices, 2, "{label}: {ops:?}");
        } else if flipped && case.w[2..].iter().any(|k| *k > 1) {
            assert_eq!(slices, 1, "{label}: {ops:?}");
        }
    }
}

#[test]
fn conv_fast_gradient_paths_match_finite_differences() {
    for (i, (label, case, _, _)) in fast_path_cases().into_iter().enumerate() {
        let ins = conv_inputs(&case, 700 + 3 * i as u64);
        check_linear_f32(label, &ins, &one("Conv", case.attrs.clone()));
    }
}

/// The fast paths with symbolic batch and spatial sizes (the flipped Conv gives X's size
/// exactly; the strided Slice gives dY's).
#[test]
fn conv_fast_gradient_paths_with_symbolic_sizes() {
    let cases = [
        (vec![2, 3, 5, 7], vec![4, 3, 3, 3], vec![1, 1], vec![1, 1, 1, 1]),
        (vec![3, 2, 6, 5], vec![3, 2, 3, 2], vec![1, 1], vec![0, 1, 2, 0]),
        (vec![2, 4, 7, 6], vec![3, 4, 1, 1], vec![2, 2], vec![0, 0, 0, 0]),
        (vec![3, 2, 5, 4], vec![4, 2, 1, 1], vec![1, 1], vec![0, 0, 0, 0]),
    ];
    for (i, (xd, wd, strides, pads)) in cases.into_iter().enumerate() {
        let mut b = GraphBuilder::new("symbolic");
        let xn = b.input("x", DataType::Float, &dims!["n", xd[1], "h", "w"]);
        let wn = b.input("w", DataType::Float, &dims![wd[0], wd[1], wd[2], wd[3]]);
        let attrs = [("strides", Attr::Ints(strides)), ("pads", Attr::Ints(pads))];
        let y = b.op("Conv", &[&xn, &wn], &attrs);
        let feeds = vec![
            ("x".to_string(), Tensor::f32(xd.clone(), f32s(&values(numel(&xd), 800 + i as u64, 0.1, 1.0)))),
            ("w".to_string(), Tensor::f32(wd.clone(), f32s(&values(numel(&wd), 810 + i as u64, 0.1, 1.0)))),
        ];
        let spec = linear(GradCheck::f32(b.build(), &y, feeds, &["x", "w"]));
        check(&spec).unwrap_or_else(|e| panic!("case {i}: {e}"));
    }
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Shuffled values on a grid with spacing `step`: no ties, and no two values closer
/// than `step`, so a finite-difference step never changes which element is the max.
fn distinct(n: usize, seed: u64, step: f64) -> Vec<f64> {
    let order = values(n, seed, 0.0, 1.0);
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| order[a].partial_cmp(&order[b]).expect("finite"));
    let mut out = vec![0.0; n];
    for (rank, &i) in idx.iter().enumerate() {
        out[i] = (rank as f64 - n as f64 / 2.0) * step;
    }
    out
}

/// Input dims and the pooling node's attributes.
type PoolCase = (Vec<i64>, Vec<(&'static str, Attr)>);

#[test]
fn max_pool_with_and_without_indices() {
    let ints = |v: &[i64]| Attr::Ints(v.to_vec());
    let cases: Vec<PoolCase> = vec![
        (vec![2, 2, 4, 4], vec![("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))]),
        // Overlapping windows: one input can be the max of several outputs.
        (
            vec![1, 2, 7, 7],
            vec![("kernel_shape", ints(&[3, 3])), ("strides", ints(&[2, 2])), ("pads", ints(&[1, 1, 1, 1]))],
        ),
        (
            vec![1, 2, 6, 7],
            vec![("kernel_shape", ints(&[3, 2])), ("strides", ints(&[2, 2])), ("ceil_mode", Attr::Int(1))],
        ),
        (
            vec![1, 1, 7, 7],
            vec![("kernel_shape", ints(&[2, 2])), ("dilations", ints(&[2, 2])), ("pads", ints(&[0, 1, 1, 0]))],
        ),
        (vec![1, 2, 5, 5], vec![("kernel_shape", ints(&[3, 3])), ("auto_pad", Attr::Str("SAME_UPPER".into()))]),
        (vec![2, 3, 8], vec![("kernel_shape", ints(&[3])), ("strides", ints(&[2]))]),
    ];
    for (i, (xd, attrs)) in cases.into_iter().enumerate() {
        let ins = [x("x", &xd, distinct(numel(&xd), 400 + i as u64, 0.05))];
        // Without Indices: the rule rebuilds them. MaxPool and ScatterElements run float64.
        assert_eq!(check_grad(&ins, &one("MaxPool", attrs.clone())), Precision::F64, "case {i}");
        // With Indices (row-major and column-major storage).
        // (Column-major storage is defined for 2-D pooling only.)
        for order in if xd.len() == 4 { vec![0, 1] } else { vec![0] } {
            let mut a = attrs.clone();
            a.push(("storage_order", Attr::Int(order)));
            check_grad(&ins, &move |b: &mut GraphBuilder, n: &[String]| b.node("MaxPool", &[&n[0]], 2, &a).remove(0));
        }
    }
}

#[test]
fn average_pool_counting_pads_both_ways() {
    let ints = |v: &[i64]| Attr::Ints(v.to_vec());
    let geometries: Vec<PoolCase> = vec![
        (vec![2, 2, 4, 4], vec![("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))]),
        (
            vec![1, 2, 7, 6],
            vec![("kernel_shape", ints(&[3, 3])), ("strides", ints(&[2, 2])), ("pads", ints(&[1, 1, 1, 1]))],
        ),
        (
            vec![1, 2, 6, 6],
            vec![("kernel_shape", ints(&[3, 2])), ("strides", ints(&[1, 2])), ("pads", ints(&[2, 0, 0, 1]))],
        ),
        (
            vec![1, 1, 7, 7],
            vec![("kernel_shape", ints(&[2, 2])), ("dilations", ints(&[2, 2])), ("pads", ints(&[1, 1, 1, 1]))],
        ),
        (
            vec![1, 2, 5, 6],
            vec![
                ("kernel_shape", ints(&[3, 3])),
                ("auto_pad", Attr::Str("SAME_LOWER".into())),
                ("strides", ints(&[2, 2])),
            ],
        ),
        // ceil_mode where it adds no partial window.
        (
            vec![1, 1, 5, 5],
            vec![("kernel_shape", ints(&[3, 3])), ("strides", ints(&[2, 2])), ("ceil_mode", Attr::Int(1))],
        ),
        (vec![2, 2, 7], vec![("kernel_shape", ints(&[3])), ("strides", ints(&[2])), ("pads", ints(&[1, 1]))]),
    ];
    for (i, (xd, attrs)) in geometries.into_iter().enumerate() {
        for include in [0, 1] {
            let mut a = attrs.clone();
            a.push(("count_include_pad", Attr::Int(include)));
            let ins = [x("x", &xd, values(numel(&xd), 500 + i as u64, 0.1, 1.0))];
            check_linear_f32(
                &format!("average pool case {i}, count_include_pad={include}"),
                &ins,
                &one("AveragePool", a),
            );
        }
    }
}

#[test]
fn average_pool_with_a_partial_ceil_window_is_a_clear_error() {
    let mut b = GraphBuilder::new("ceil");
    let xn = b.input("x", DataType::Float, &dims![1, 1, 6, 6]);
    let attrs =
        [("kernel_shape", Attr::Ints(vec![3, 3])), ("strides", Attr::Ints(vec![2, 2])), ("ceil_mode", Attr::Int(1))];
    let y = b.op("AveragePool", &[&xn], &attrs);
    let axes = b.const_i64s("axes", &[0, 1, 2, 3]);
    let loss = b.op("ReduceSum", &[&y, &axes], &[("keepdims", Attr::Int(0))]);
    let err = differentiate(&b.build(), &loss, &["x".to_string()]).unwrap_err();
    assert!(matches!(err, AutodiffError::Unsupported { ref reason, .. } if reason.contains("ceil_mode")), "{err}");
}

#[test]
fn global_average_pool() {
    for xd in [vec![2, 3, 4, 5], vec![1, 2, 3], vec![2, 2, 2, 3, 2]] {
        let ins = [x("x", &xd, values(numel(&xd), 600, 0.1, 1.0))];
        check_grad(&ins, &one("GlobalAveragePool", vec![]));
    }
}

/// Input dims, weight dims, attributes.
type ConvTransposeCase = (Vec<i64>, Vec<i64>, Vec<(&'static str, Attr)>);

/// ConvTranspose: `W` is `[C_in, C_out / group, k…]`.
#[test]
fn conv_transpose_strides_pads_output_padding_groups() {
    let ints = |v: &[i64]| Attr::Ints(v.to_vec());
    let cases: Vec<ConvTransposeCase> = vec![
        (vec![2, 3, 4, 4], vec![3, 2, 3, 3], vec![]),
        (vec![1, 2, 3, 4], vec![2, 3, 3, 2], vec![("strides", ints(&[2, 2])), ("pads", ints(&[1, 0, 1, 1]))]),
        (
            vec![1, 2, 3, 3],
            vec![2, 2, 3, 3],
            vec![("strides", ints(&[2, 3])), ("output_padding", ints(&[1, 2])), ("pads", ints(&[1, 1, 0, 0]))],
        ),
        (vec![2, 4, 3, 3], vec![4, 1, 2, 2], vec![("strides", ints(&[2, 2])), ("group", Attr::Int(2))]),
        (vec![1, 2, 4, 3], vec![2, 2, 2, 2], vec![("dilations", ints(&[2, 1])), ("pads", ints(&[0, 1, 1, 0]))]),
        (vec![1, 2, 5], vec![2, 3, 3], vec![("strides", ints(&[2])), ("output_padding", ints(&[1]))]),
    ];
    for (i, (xd, wd, attrs)) in cases.into_iter().enumerate() {
        let group = attrs.iter().find(|(n, _)| *n == "group").map(|_| 2).unwrap_or(1);
        let out_channels = wd[1] * group;
        let ins = [
            x("x", &xd, values(numel(&xd), 400 + i as u64, 0.1, 1.0)),
            x("w", &wd, values(numel(&wd), 410 + i as u64, 0.1, 1.0)),
            x("b", &[out_channels], values(out_channels as usize, 420 + i as u64, 0.1, 1.0)),
        ];
        check_linear_f32(&format!("conv transpose case {i}"), &ins, &one("ConvTranspose", attrs));
    }
}

/// `output_shape` and the SAME auto_pads: the pads ONNX Runtime works out from them.
#[test]
fn conv_transpose_with_output_shape_or_same_padding() {
    let ints = |v: &[i64]| Attr::Ints(v.to_vec());
    let cases: Vec<ConvTransposeCase> = vec![
        (vec![1, 2, 3, 3], vec![2, 2, 3, 3], vec![("strides", ints(&[2, 2])), ("output_shape", ints(&[6, 5]))]),
        (vec![1, 2, 3, 4], vec![2, 1, 2, 3], vec![("strides", ints(&[2, 1])), ("output_shape", ints(&[5, 6]))]),
        (
            vec![1, 2, 3, 3],
            vec![2, 2, 3, 3],
            vec![("strides", ints(&[2, 2])), ("auto_pad", Attr::Str("SAME_UPPER".into()))],
        ),
        (
            vec![1, 2, 3, 3],
            vec![2, 2, 2, 2],
            vec![("strides", ints(&[2, 2])), ("auto_pad", Attr::Str("SAME_LOWER".into()))],
        ),
        (
            vec![1, 2, 4, 3],
            vec![2, 2, 3, 2],
            vec![("strides", ints(&[1, 2])), ("auto_pad", Attr::Str("SAME_UPPER".into()))],
        ),
    ];
    for (i, (xd, wd, attrs)) in cases.into_iter().enumerate() {
        let ins = [
            x("x", &xd, values(numel(&xd), 430 + i as u64, 0.1, 1.0)),
            x("w", &wd, values(numel(&wd), 440 + i as u64, 0.1, 1.0)),
        ];
        check_linear_f32(&format!("conv transpose output_shape/SAME case {i}"), &ins, &one("ConvTranspose", attrs));
    }
}

/// Each channel's gradient goes to its maximum; distinct values keep the argmax fixed.
#[test]
fn global_max_pool() {
    check_grad(&[x("a", &[2, 3, 2, 3], distinct(36, 71, 0.1))], &one("GlobalMaxPool", vec![]));
    check_grad(&[x("a", &[2, 2, 5], distinct(20, 72, 0.1))], &one("GlobalMaxPool", vec![]));
}
