//! Graphs written for an older opset (PyTorch's TorchScript exporter writes opset 17:
//! LayerNormalization, reductions with an `axes` attribute) are brought to opset 20
//! before they are differentiated, so the gradient nodes, the optimizer and the forward
//! nodes form one model that the ONNX checker and ONNX Runtime accept.

mod common;
use common::*;
use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::upgrade::default_opset;
use memeguard_onnx::{Attr, DataType, GraphBuilder, OPSET_VERSION, Tensor, check_model, dims};
use memeguard_training::autodiff::{self, differentiate};
use memeguard_training::graph_spec::{ModelGraph, Param};
use memeguard_training::optim::{OptimizerConfig, OptimizerKind, differentiate_step};
use memeguard_training::runtime::{StepHyper, Trainer, TrainerConfig};

/// x [batch, 4] → MatMul → LayerNormalization → ReduceMean(axes=[1]) as an opset-17
/// exporter writes it; loss = mean of that.
fn opset17_forward() -> (ModelProto, String) {
    let mut b = GraphBuilder::new("old");
    let x = b.input("x", DataType::Float, &dims!["batch", 4]);
    let w = b.initializer("w", &Tensor::f32(vec![4, 6], values(24, 1, 0.1, 1.0).iter().map(|&v| v as f32).collect()));
    let s = b.initializer("s", &Tensor::f32(vec![6], vec![1.0; 6]));
    let bias = b.initializer("bias", &Tensor::f32(vec![6], vec![0.1; 6]));
    let h = b.op("MatMul", &[&x, &w], &[]);
    let n = b.op("LayerNormalization", &[&h, &s, &bias], &[("axis", Attr::Int(-1))]);
    let sq = b.op("Mul", &[&n, &h], &[]);
    let r = b.op("ReduceMean", &[&sq], &[("axes", Attr::Ints(vec![1])), ("keepdims", Attr::Int(0))]);
    let loss = b.op("ReduceMean", &[&r], &[("keepdims", Attr::Int(0))]);
    b.output(&loss, DataType::Float, &[]);
    let mut m = b.build();
    m.opset_import[0].version = Some(17);
    check_model(&m, true).expect("a valid opset-17 model");
    (m, loss)
}

#[test]
fn an_opset_17_graph_is_differentiated_at_opset_20() {
    let (m, loss) = opset17_forward();
    let d = differentiate(&m, &loss, &["w".to_string(), "s".to_string()]).unwrap();
    assert_eq!(default_opset(&d.model), Some(OPSET_VERSION));
    check_model(&d.model, true).unwrap();
}

#[test]
fn its_step_graph_passes_both_checkers_and_trains() {
    let (m, loss) = opset17_forward();
    let p = |name: &str| Param { name: name.into(), trainable: true, weight_decay: false, group: "all".into() };
    let graph = ModelGraph { model: m, params: vec![p("w"), p("s"), p("bias")], buffers: Vec::new() };
    let config = OptimizerConfig::new(OptimizerKind::sgd());
    let step = differentiate_step(&graph, &loss, &config, &autodiff::Options::default()).unwrap();
    assert_eq!(default_opset(&step.graph.model), Some(OPSET_VERSION));
    check_model(&step.graph.model, true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("step.onnx");
    memeguard_onnx::save_model(&step.graph.model, &path).unwrap();
    let script = "import sys, onnx\nonnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)\nprint('ok')";
    let out = memeguard_onnx::pycheck::run_python(script, &[&path.display().to_string()]).unwrap();
    assert_eq!(out.trim(), "ok");
    let mut trainer = Trainer::new(step, &TrainerConfig::default()).unwrap();
    let x = Tensor::f32(vec![3, 4], values(12, 2, 0.1, 1.0).iter().map(|&v| v as f32).collect());
    let first = trainer.step(vec![("x".into(), x.clone())], &StepHyper::new(0.1, 0.0)).unwrap().loss;
    let second = trainer.step(vec![("x".into(), x)], &StepHyper::new(0.1, 0.0)).unwrap().loss;
    assert!(first.is_finite() && second < first, "loss {first} then {second}");
}

#[test]
fn layer_norm_of_an_opset_17_graph_matches_finite_differences() {
    use memeguard_training::autodiff::gradcheck::{GradCheck, check};
    let mut b = GraphBuilder::new("old");
    let x = b.input("x", DataType::Double, &dims![3, 5]);
    let s = b.input("s", DataType::Double, &dims![5]);
    let n = b.op("LayerNormalization", &[&x, &s], &[]);
    let r = b.op("ReduceSumSquare", &[&n], &[("axes", Attr::Ints(vec![0]))]);
    b.output_unshaped(&r, DataType::Double);
    let mut m = b.build();
    m.opset_import[0].version = Some(17);
    let feeds = vec![
        ("x".to_string(), Tensor::f64(vec![3, 5], values(15, 3, 0.1, 2.0))),
        ("s".to_string(), Tensor::f64(vec![5], values(5, 4, 0.5, 1.5))),
    ];
    check(&GradCheck::f64(m, &r, feeds, &["x", "s"])).unwrap();
}

/// Our `check_model` and `onnx.checker` agree on how axes must be written per opset.
#[test]
fn check_model_refuses_what_the_onnx_checker_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for opset in [12, 13, 17, 18, 20] {
        for (op, as_input) in [
            ("ReduceSum", false),
            ("ReduceSum", true),
            ("ReduceMean", false),
            ("ReduceMean", true),
            ("Unsqueeze", true),
            ("Unsqueeze", false),
        ] {
            let mut b = GraphBuilder::new("g");
            let x = b.input("x", DataType::Float, &dims![2, 3]);
            let y = if as_input {
                let a = b.const_i64s("axes", &[1]);
                b.op(op, &[&x, &a], &[])
            } else {
                b.op(op, &[&x], &[("axes", Attr::Ints(vec![1]))])
            };
            b.output_unshaped(&y, DataType::Float);
            let mut m = b.build();
            m.opset_import[0].version = Some(opset);
            m.graph.as_mut().unwrap().output[0] = memeguard_onnx::builder::value_info(&y, DataType::Float, &[]);
            let ours = check_model(&m, true).is_ok();
            let path = dir.path().join(format!("{op}-{opset}-{as_input}.onnx"));
            memeguard_onnx::save_model(&m, &path).unwrap();
            cases.push((path.display().to_string(), ours));
        }
    }
    let script = "import sys, onnx\nfor p in sys.argv[1:]:\n    try:\n        onnx.checker.check_model(onnx.load(p))\n        print('ok')\n    except Exception:\n        print('refused')";
    let args: Vec<&str> = cases.iter().map(|(p, _)| p.as_str()).collect();
    let out = memeguard_onnx::pycheck::run_python(script, &args).unwrap();
    let theirs: Vec<bool> = out.lines().map(|l| l == "ok").collect();
    let disagree: Vec<String> = cases
        .iter()
        .zip(&theirs)
        .filter(|((_, ours), theirs)| ours != *theirs)
        .map(|((p, ours), theirs)| format!("{p}: ours {ours}, onnx.checker {theirs}"))
        .collect();
    assert_eq!(theirs.len(), cases.len());
    assert!(theirs.contains(&true) && theirs.contains(&false), "both verdicts occur: {theirs:?}");
    assert!(disagree.is_empty(), "{disagree:#?}");
}
