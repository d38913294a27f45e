//! Structure of generated step graphs: standard ops only, accepted by the official ONNX
//! checker and by ONNX Runtime, the documented state inputs/outputs, buffers updated by the
//! forward pass, and clear errors for bad input.

mod optim_fixtures;

use memeguard_onnx::{Tensor, check_model, save_model};
use memeguard_training::graph_spec::Param;
use memeguard_training::optim::{OptimError, OptimizerConfig, OptimizerKind, StateRole, build_step_graph};
use memeguard_training::runtime::{StepHyper, Trainer, TrainerConfig};
use optim_fixtures::{batch, feeds, linear_regression, mlp};

fn configs() -> Vec<OptimizerConfig> {
    vec![
        OptimizerConfig::new(OptimizerKind::sgd()),
        OptimizerConfig::new(OptimizerKind::Sgd { momentum: 0.9, nesterov: true }).with_accumulation(2),
        OptimizerConfig::new(OptimizerKind::Sgd { momentum: 0.0, nesterov: false }),
        OptimizerConfig::new(OptimizerKind::adamw()),
        OptimizerConfig::new(OptimizerKind::adamw()).with_clipping(1.0).with_accumulation(4),
    ]
}

#[test]
fn step_graphs_use_only_default_domain_ops_and_pass_the_onnx_checker() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, config) in configs().into_iter().enumerate() {
        let fixture = linear_regression(&[0.1, 0.2, 0.3], 0.0, true);
        let step = build_step_graph(&fixture.training(), &config).unwrap();
        check_model(&step.graph.model, true).unwrap();
        let graph = step.graph.model.graph.as_ref().unwrap();
        for node in &graph.node {
            assert!(
                node.domain.as_deref().unwrap_or("").is_empty(),
                "{config:?}: node {:?} has domain {:?}",
                node.name,
                node.domain
            );
        }
        let path = dir.path().join(format!("step{i}.onnx"));
        save_model(&step.graph.model, &path).unwrap();
        paths.push(path.display().to_string());
        // And ONNX Runtime loads and runs it.
        let mut trainer = Trainer::new(step, &TrainerConfig::default()).unwrap();
        let (x, y) = batch(1, 4, 3);
        trainer.step(feeds(&x, &y, 3), &StepHyper::new(0.1, 0.01)).unwrap();
    }
    // The official checker with shape inference, all graphs in one Python process.
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let script = "import sys, onnx\nfor p in sys.argv[1:]:\n    onnx.checker.check_model(onnx.load(p), full_check=True)\nprint('ok')";
    let out = memeguard_onnx::pycheck::run_python(script, &args).unwrap();
    assert_eq!(out.trim(), "ok");
}

#[test]
fn state_inputs_and_outputs_follow_the_documented_names() {
    let mut fixture = linear_regression(&[0.1, 0.2, 0.3], 0.0, true);
    // A frozen parameter is state the step reads but never writes.
    fixture.params.push(Param { name: "two".into(), trainable: false, weight_decay: false, group: "body".into() });
    let config = OptimizerConfig::new(OptimizerKind::adamw()).with_clipping(1.0).with_accumulation(2);
    let step = build_step_graph(&fixture.training(), &config).unwrap();
    let graph = step.graph.model.graph.as_ref().unwrap();
    let inputs: Vec<&str> = graph.input.iter().filter_map(|v| v.name.as_deref()).collect();
    let outputs: Vec<&str> = graph.output.iter().filter_map(|v| v.name.as_deref()).collect();
    for name in [
        "x",
        "y",
        "w",
        "b",
        "two",
        "x_mean",
        "w.exp_avg",
        "w.exp_avg_sq",
        "b.exp_avg",
        "w.grad_accum",
        "lr.body",
        "lr.head",
        "weight_decay.body",
        "optim.step",
        "optim.apply",
    ] {
        assert!(inputs.contains(&name), "input {name} missing from {inputs:?}");
    }
    // `b` is in group `head` without weight decay: no decay input for that group.
    assert!(!inputs.contains(&"weight_decay.head"));
    assert!(
        graph.initializer.iter().all(|t| !["w", "b", "two", "x_mean"].contains(&t.name.as_deref().unwrap())),
        "state is no longer an initializer"
    );
    for name in [
        "w.next",
        "b.next",
        "w.exp_avg.next",
        "w.exp_avg_sq.next",
        "w.grad_accum.next",
        "optim.grad_norm",
        step.loss.as_str(),
    ] {
        assert!(outputs.contains(&name), "output {name} missing from {outputs:?}");
    }
    assert!(!outputs.contains(&"two.next"));
    let io = |n: &str| step.graph.state.iter().find(|s| s.name == n).unwrap().next.clone();
    assert_eq!(io("two"), None);
    assert_eq!(io("x_mean").as_deref(), Some(fixture.buffers[0].updated.as_str()));
    assert_eq!(step.graph.data_inputs, vec!["x".to_string(), "y".to_string()]);
    assert_eq!(step.groups, vec!["body".to_string(), "head".to_string()]);
    assert_eq!(step.slot("w.exp_avg").unwrap().role, StateRole::OptimizerState { param: "w".into() });
    assert_eq!(step.slot("two").unwrap().role, StateRole::Parameter { trainable: false, group: "body".into() });
    assert_eq!(step.slot("w.exp_avg").unwrap().initial, Tensor::f32(vec![3, 1], vec![0.0; 3]));
}

#[test]
fn buffers_follow_the_forward_pass_and_frozen_parameters_stay() {
    let fixture = linear_regression(&[0.1, 0.2, 0.3], 0.0, true);
    let step = build_step_graph(&fixture.training(), &OptimizerConfig::new(OptimizerKind::sgd()).with_accumulation(2))
        .unwrap();
    let mut trainer = Trainer::new(step, &TrainerConfig::default()).unwrap();
    let mut running = [0.0f64; 3];
    for s in 0..3 {
        let (x, y) = batch(s, 5, 3);
        trainer.step(feeds(&x, &y, 3), &StepHyper::new(0.1, 0.0)).unwrap();
        // Buffers update on every micro-batch, also those that do not apply an update.
        for (j, r) in running.iter_mut().enumerate() {
            let mean = (0..5).map(|i| x[i * 3 + j] as f64).sum::<f64>() / 5.0;
            *r = 0.9 * *r + 0.1 * mean;
        }
        let got = trainer.value("x_mean").unwrap().to_f64_vec();
        for (g, w) in got.iter().zip(&running) {
            assert!((g - w).abs() < 1e-6, "step {s}: {got:?} vs {running:?}");
        }
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let config = OptimizerConfig::new(OptimizerKind::adamw());
    let mut fixture = mlp(2, 3, 0);
    fixture.grads.remove("w2");
    let err = build_step_graph(&fixture.training(), &config).unwrap_err();
    assert!(matches!(&err, OptimError::MissingGradient { param } if param == "w2"), "{err}");

    let mut fixture = mlp(2, 3, 0);
    fixture.params.push(optim_fixtures::param("nowhere", true, "body"));
    let err = build_step_graph(&fixture.training(), &config).unwrap_err();
    assert!(err.to_string().contains("`nowhere` is not an initializer"), "{err}");

    let fixture = mlp(2, 3, 0);
    let err = build_step_graph(&fixture.training(), &config.with_accumulation(0)).unwrap_err();
    assert!(err.to_string().contains("accumulation_steps"), "{err}");
    let err = build_step_graph(&fixture.training(), &config.with_clipping(-1.0)).unwrap_err();
    assert!(err.to_string().contains("max_grad_norm"), "{err}");

    let mut fixture = mlp(2, 3, 0);
    fixture.grads.insert("w1".into(), "no_such_value".into());
    let err = build_step_graph(&fixture.training(), &config).unwrap_err();
    assert!(err.to_string().contains("no_such_value"), "{err}");

    let mut fixture = mlp(2, 3, 0);
    fixture.loss = "missing_loss".into();
    let err = build_step_graph(&fixture.training(), &config).unwrap_err();
    assert!(err.to_string().contains("missing_loss"), "{err}");
}

#[test]
fn a_batch_with_wrong_inputs_is_refused_before_running() {
    let fixture = mlp(2, 3, 0);
    let step = build_step_graph(&fixture.training(), &OptimizerConfig::default()).unwrap();
    let mut trainer = Trainer::new(step, &TrainerConfig::default()).unwrap();
    let (x, y) = batch(0, 4, 2);
    let mut bad = feeds(&x, &y, 2);
    bad.pop();
    assert!(trainer.step(bad, &StepHyper::new(0.1, 0.0)).unwrap_err().to_string().contains("lacks the data input `y`"));
    let mut bad = feeds(&x, &y, 2);
    bad.push(("z".into(), Tensor::scalar_f32(1.0)));
    assert!(trainer.step(bad, &StepHyper::new(0.1, 0.0)).unwrap_err().to_string().contains("`z`"));
    assert_eq!(trainer.micro_step(), 0, "failed steps do not count");
}
