//! Finite-difference checks of BatchNormalization (training mode on batch statistics,
//! inference mode on running statistics), LayerNormalization, InstanceNormalization,
//! GroupNormalization (opset 18's per-group and opset 21's per-channel parameters) and
//! LpNormalization.

mod common;
use common::*;
use memeguard_onnx::{Attr, DataType, GraphBuilder, Tensor};
use memeguard_training::autodiff::differentiate;
use memeguard_training::autodiff::gradcheck::{GradCheck, check};

fn numel(d: &[i64]) -> usize {
    d.iter().product::<i64>() as usize
}

/// BatchNorm inputs for `x` of dims `xd`: scale and bias differentiated, running
/// statistics as given (`stats_wrt`: differentiated too).
fn bn_inputs(xd: &[i64], seed: u64, stats_wrt: bool) -> Vec<In> {
    let c = xd[1];
    let stat = |name, data| if stats_wrt { x(name, &[c], data) } else { fixed(name, &[c], data) };
    vec![
        x("x", xd, values(numel(xd), seed, 0.1, 2.0)),
        x("scale", &[c], values(c as usize, seed + 1, 0.5, 1.5)),
        x("bias", &[c], values(c as usize, seed + 2, 0.1, 1.0)),
        stat("mean", values(c as usize, seed + 3, 0.0, 0.5)),
        stat("var", positive(c as usize, seed + 4, 0.5, 1.5)),
    ]
}

#[test]
fn batch_norm_training_mode_uses_batch_statistics() {
    for xd in [vec![3, 2, 3, 2], vec![4, 3], vec![2, 2, 5]] {
        let ins = bn_inputs(&xd, 10, false);
        let attrs =
            vec![("training_mode", Attr::Int(1)), ("epsilon", Attr::Float(1e-3)), ("momentum", Attr::Float(0.8))];
        // All three outputs, as a training graph has them; only Y is differentiated.
        let precision = check_grad(&ins, &move |b: &mut GraphBuilder, n: &[String]| {
            let refs: Vec<&str> = n.iter().map(String::as_str).collect();
            b.node("BatchNormalization", &refs, 3, &attrs).remove(0)
        });
        assert_eq!(precision, Precision::F64, "ONNX Runtime's CPU BatchNormalization runs float64");
    }
}

#[test]
fn batch_norm_running_statistics_get_no_gradient() {
    // A loss on the updated running mean alone: its gradient with respect to X is zero
    // by decree (buffers), not the momentum-weighted batch mean's derivative.
    let mut b = GraphBuilder::new("bn");
    let names: Vec<String> = ["x", "scale", "bias", "mean", "var"]
        .iter()
        .map(|n| {
            let dims = if *n == "x" { vec![2.into(), 3.into(), 2.into()] } else { vec![3.into()] };
            b.input(n, DataType::Double, &dims)
        })
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let outs = b.node("BatchNormalization", &refs, 3, &[("training_mode", Attr::Int(1))]);
    let axes = b.const_i64s("axes", &[0]);
    let loss = b.op("ReduceSum", &[&outs[1], &axes], &[("keepdims", Attr::Int(0))]);
    let d = differentiate(&b.build(), &loss, &["x".to_string(), "scale".to_string()]).expect("differentiates");
    let g = d.model.graph.as_ref().expect("graph");
    // Both gradients are the engine's zero fill: no node of the rule was emitted.
    assert!(g.node.iter().all(|n| !n.name.as_deref().unwrap_or("").contains("batchnormalization_grad")));
    for w in ["x", "scale"] {
        let grad = &d.grads[w];
        let producer = g.node.iter().find(|n| n.output.contains(grad)).expect("produced");
        assert_eq!(producer.op_type.as_deref(), Some("ConstantOfShape"));
    }
}

#[test]
fn batch_norm_inference_mode_is_an_affine_map() {
    for xd in [vec![2, 3, 2, 2], vec![3, 2]] {
        let ins = bn_inputs(&xd, 30, true);
        let precision = check_grad(&ins, &one("BatchNormalization", vec![("epsilon", Attr::Float(1e-2))]));
        assert_eq!(precision, Precision::F64);
    }
}

#[test]
fn layer_norm_axes_scale_and_bias() {
    let cases: Vec<(Vec<i64>, i64, Vec<i64>, bool)> = vec![
        (vec![3, 5], -1, vec![5], true),
        (vec![2, 3, 4], -1, vec![4], true),
        (vec![2, 3, 4], 1, vec![3, 4], true),
        (vec![2, 3, 4], -2, vec![3, 4], false),
        (vec![2, 3, 4], 0, vec![2, 3, 4], true),
        // Scale broadcast over the normalised axes.
        (vec![2, 3, 4], 1, vec![1, 4], true),
    ];
    for (i, (xd, axis, sd, bias)) in cases.into_iter().enumerate() {
        let mut ins = vec![
            x("x", &xd, values(numel(&xd), 40 + i as u64, 0.1, 2.0)),
            x("scale", &sd, values(numel(&sd), 50 + i as u64, 0.5, 1.5)),
        ];
        if bias {
            ins.push(x("bias", &sd, values(numel(&sd), 60 + i as u64, 0.1, 1.0)));
        }
        let attrs = vec![("axis", Attr::Int(axis)), ("epsilon", Attr::Float(1e-3))];
        let precision = check_grad(&ins, &one("LayerNormalization", attrs));
        assert_eq!(precision, Precision::F64, "case {i}");
    }
}

/// With float32 X the forward's Mean and InvStdDev outputs have X's type and are reused.
#[test]
fn layer_norm_reuses_its_mean_and_inv_std_outputs() {
    let xd = [2, 3, 4];
    let ins = [
        x("x", &xd, values(24, 70, 0.1, 2.0)),
        x("scale", &[4], values(4, 71, 0.5, 1.5)),
        x("bias", &[4], values(4, 72, 0.1, 1.0)),
    ];
    let body = |b: &mut GraphBuilder, n: &[String]| {
        let refs: Vec<&str> = n.iter().map(String::as_str).collect();
        b.node("LayerNormalization", &refs, 3, &[("axis", Attr::Int(-1))]).remove(0)
    };
    let (model, y) = graph(DataType::Float, &ins, &body);
    let feeds: Vec<(String, Tensor)> = ins
        .iter()
        .map(|i| (i.name.to_string(), Tensor::f32(i.dims.clone(), i.data.iter().map(|&v| v as f32).collect())))
        .collect();
    check(&GradCheck::f32(model.clone(), &y, feeds, &["x", "scale", "bias"])).unwrap_or_else(|e| panic!("{e}"));

    // The gradient reads the forward's statistics instead of recomputing them.
    let ln =
        model.graph.as_ref().expect("graph").node.iter().find(|n| n.op_type.as_deref() == Some("LayerNormalization"));
    let inv_std = ln.expect("ln").output[2].clone();
    let mut b = GraphBuilder::from_model(&model);
    let axes = b.const_i64s("axes", &[0, 1, 2]);
    let loss = b.op("ReduceSum", &[&y, &axes], &[("keepdims", Attr::Int(0))]);
    let d = differentiate(&b.build(), &loss, &["x".to_string()]).expect("differentiates");
    let g = d.model.graph.as_ref().expect("graph");
    assert!(g.node.iter().any(|n| n.name.as_deref().unwrap_or("").contains("_grad") && n.input.contains(&inv_std)));
    assert!(
        !g.node.iter().any(|n| n.op_type.as_deref() == Some("ReduceMean") && n.input.first() == Some(&"x".to_string()))
    );
}

/// `Reshape(x, target)` with `target` fed at run time: the rank is unknown statically,
/// as after ops shape inference cannot follow.
#[test]
fn layer_norm_of_an_input_of_unknown_rank() {
    use memeguard_onnx::dims;
    for (axis, sd) in [(-1, vec![4]), (-2, vec![3, 4])] {
        let mut b = GraphBuilder::new("g");
        let x = b.input("x", DataType::Double, &dims![2, 3, 4]);
        let target = b.input("target", DataType::Int64, &dims!["n"]);
        let s = b.input("s", DataType::Double, &sd.iter().map(|&d| d.into()).collect::<Vec<_>>());
        let r = b.op("Reshape", &[&x, &target], &[]);
        let y = b.op("LayerNormalization", &[&r, &s], &[("axis", Attr::Int(axis))]);
        let feeds = vec![
            ("x".to_string(), Tensor::f64(vec![2, 3, 4], values(24, 61, 0.1, 2.0))),
            ("target".to_string(), Tensor::i64(vec![3], vec![2, 3, 4])),
            ("s".to_string(), Tensor::f64(sd.clone(), values(numel(&sd), 62, 0.5, 1.5))),
        ];
        check(&GradCheck::f64(b.build(), &y, feeds, &["x", "s"])).unwrap_or_else(|e| panic!("axis {axis}: {e}"));
    }
}

#[test]
fn instance_norm_scale_and_bias() {
    for (i, xd) in [vec![2, 3, 4, 2], vec![2, 2, 5]].into_iter().enumerate() {
        let ch = xd[1] as usize;
        let ins = [
            x("x", &xd, values(numel(&xd), 80 + i as u64, 0.1, 2.0)),
            x("scale", &[xd[1]], values(ch, 81, 0.5, 1.5)),
            x("bias", &[xd[1]], values(ch, 82, 0.1, 1.0)),
        ];
        check_grad(&ins, &one("InstanceNormalization", vec![("epsilon", Attr::Float(1e-3))]));
    }
}

/// Checks at a given default-domain opset (GroupNormalization-21 takes per-channel
/// scale and bias), in float64 where ONNX Runtime has the kernels, else float32.
fn check_at_opset(opset: i64, ins: &[In], body: &dyn Fn(&mut GraphBuilder, &[String]) -> String) {
    let wrt: Vec<&str> = ins.iter().filter(|i| i.wrt).map(|i| i.name).collect();
    let run = |dtype: DataType| {
        let (mut model, y) = graph(dtype, ins, body);
        model.opset_import[0].version = Some(opset);
        if opset >= 21 {
            model.ir_version = Some(10); // opset 21 came with IR version 10
        }
        let feeds: Vec<(String, Tensor)> = ins
            .iter()
            .map(|i| {
                let t = match dtype {
                    DataType::Double => Tensor::f64(i.dims.clone(), i.data.clone()),
                    _ => Tensor::f32(i.dims.clone(), i.data.iter().map(|&v| v as f32).collect()),
                };
                (i.name.to_string(), t)
            })
            .collect();
        let spec = if dtype == DataType::Double { GradCheck::f64 } else { GradCheck::f32 };
        check(&spec(model, &y, feeds, &wrt))
    };
    match run(DataType::Double) {
        Ok(r) => eprintln!("opset {opset}, f64: max abs error {:.3e}", r.max_abs_err),
        Err(e) if e.contains("NOT_IMPLEMENTED") || e.contains("Could not find an implementation") => {
            let r = run(DataType::Float).unwrap_or_else(|e| panic!("opset {opset}, float32: {e}"));
            eprintln!("opset {opset}, f32: max abs error {:.3e}", r.max_abs_err);
        }
        Err(e) => panic!("opset {opset}, float64: {e}"),
    }
}

/// Opset 18's GroupNormalization scales and shifts per group (`[G]`), opset 21's per
/// channel (`[C]`).
#[test]
fn group_norm_per_group_and_per_channel() {
    for (i, (xd, groups)) in
        [(vec![2, 4, 3, 2], 2), (vec![2, 6, 4], 3), (vec![1, 4, 3], 4), (vec![2, 3, 4], 1)].into_iter().enumerate()
    {
        for (opset, params) in [(18, groups), (21, xd[1])] {
            let ins = [
                x("x", &xd, values(numel(&xd), 90 + i as u64, 0.1, 2.0)),
                x("scale", &[params], values(params as usize, 91, 0.5, 1.5)),
                x("bias", &[params], values(params as usize, 92, 0.1, 1.0)),
            ];
            let mut attrs = vec![("num_groups", Attr::Int(groups)), ("epsilon", Attr::Float(1e-3))];
            if opset >= 21 {
                // Opset 21 computes the statistics in float32 unless told otherwise, which
                // would drown float64 finite differences in rounding noise.
                attrs.push(("stash_type", Attr::Int(DataType::Double as i64)));
            }
            check_at_opset(opset, &ins, &one("GroupNormalization", attrs));
        }
    }
}

#[test]
fn lp_normalization_p1_and_p2() {
    for p in [1, 2] {
        for axis in [-1, 0, 1] {
            let ins = [x("a", &[3, 4], values(12, 95 + p as u64, 0.2, 2.0))];
            check_grad(&ins, &one("LpNormalization", vec![("p", Attr::Int(p)), ("axis", Attr::Int(axis))]));
        }
    }
}
