//! The training runtime: deterministic runs, checkpoint + resume continuing bit-exactly,
//! the teacher EMA update, export of the inference model, and devices.

mod optim_fixtures;

use std::collections::BTreeMap;

use memeguard_onnx::{DataType, GraphBuilder, Tensor, dims, encode_model};
use memeguard_package::Device;
use memeguard_package::onnxruntime::{SessionOptions, session_from_bytes};
use memeguard_training::autodiff::Options;
use memeguard_training::graph_spec::{ModelGraph, Param};
use memeguard_training::optim::{EmaPair, OptimizerConfig, OptimizerKind, build_step_graph, differentiate_step};
use memeguard_training::runtime::{StepHyper, Trainer, TrainerConfig, export_inference};
use optim_fixtures::net::{Net, onehot};
use optim_fixtures::{Fixture, batch, feeds, linear_regression, mlp};
use rand::RngCore;

const D: usize = 3;

fn trainer(fixture: &Fixture, config: &OptimizerConfig, seed: u64) -> Trainer {
    let step = build_step_graph(&fixture.training(), config).unwrap();
    Trainer::new(step, &TrainerConfig { seed, ..TrainerConfig::default() }).unwrap()
}

/// Runs micro-steps `from..to`, each on a batch whose seed comes from the trainer's own
/// generator (so the generator's state matters); returns the losses' bit patterns.
fn run(trainer: &mut Trainer, from: u64, to: u64) -> Vec<u32> {
    (from..to)
        .map(|s| {
            let seed = trainer.rng().next_u64() % 1000;
            let (x, y) = batch(seed, 6, D);
            let lr = 0.05 * (1.0 + s as f32).recip();
            trainer.step(feeds(&x, &y, D), &StepHyper::new(lr, 0.01)).unwrap().loss.to_bits()
        })
        .collect()
}

fn state_bits(trainer: &Trainer) -> BTreeMap<String, Vec<u64>> {
    trainer
        .roles()
        .iter()
        .map(|(n, _)| (n.clone(), trainer.value(n).unwrap().to_f64_vec().iter().map(|v| v.to_bits()).collect()))
        .collect()
}

#[test]
fn resumed_runs_continue_bit_exactly_as_uninterrupted_ones() {
    let cases: Vec<(Fixture, OptimizerConfig)> = vec![
        (mlp(D, 5, 3), OptimizerConfig::new(OptimizerKind::adamw()).with_clipping(0.5).with_accumulation(3)),
        (
            linear_regression(&[0.2, -0.1, 0.4], 0.3, true),
            OptimizerConfig::new(OptimizerKind::Sgd { momentum: 0.9, nesterov: true }),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (fixture, config)) in cases.iter().enumerate() {
        let mut whole = trainer(fixture, config, 11);
        let all = run(&mut whole, 0, 10);

        // Same seed, fresh trainer: the same run (determinism on CPU).
        let mut first = trainer(fixture, config, 11);
        let head = run(&mut first, 0, 4);
        assert_eq!(head, all[..4], "case {i}: two runs with one seed differ");
        // Stop at micro-step 4 (mid-accumulation for the first case) and resume elsewhere.
        let path = dir.path().join(format!("ckpt{i}.safetensors"));
        first.save_checkpoint(&path, &BTreeMap::from([("data.position".to_string(), "4".to_string())])).unwrap();
        drop(first);
        let mut resumed = trainer(fixture, config, 999);
        let extra = resumed.resume(&path).unwrap();
        assert_eq!(extra.get("data.position").map(String::as_str), Some("4"));
        assert_eq!(resumed.micro_step(), 4);
        let tail = run(&mut resumed, 4, 10);
        assert_eq!(tail, all[4..], "case {i}: the resumed run's losses differ");
        assert_eq!(state_bits(&resumed), state_bits(&whole), "case {i}: final state differs");
        assert_eq!(resumed.optimizer_step(), whole.optimizer_step());
    }
}

/// A classifier with two dropout layers, one seeded and one not (the runtime seeds it).
fn dropout_classifier() -> (ModelGraph, String) {
    let mut net = Net::new("dropout_classifier");
    let x = net.g.input("features", DataType::Float, &dims!["batch", 6]);
    let h = net.linear("fc1", &x, 6, 16);
    let h = net.g.op("Relu", &[&h], &[]);
    let h = net.dropout(&h, 0.3, Some(11));
    let h = net.linear("fc2", &h, 16, 16);
    let h = net.g.op("Tanh", &[&h], &[]);
    let h = net.dropout(&h, 0.2, None);
    let logits = net.linear("head", &h, 16, 3);
    let loss = net.cross_entropy(&logits, 3);
    net.finish(loss)
}

#[test]
fn resumed_runs_with_dropout_draw_the_same_masks_as_uninterrupted_ones() {
    let (model, loss) = dropout_classifier();
    let config = OptimizerConfig::new(OptimizerKind::adamw()).with_accumulation(2);
    let new_trainer = |seed| {
        let step = differentiate_step(&model, &loss, &config, &Options::default()).unwrap();
        Trainer::new(step, &TrainerConfig { seed, ..TrainerConfig::default() }).unwrap()
    };
    let run = |trainer: &mut Trainer, steps: usize| -> Vec<u32> {
        (0..steps)
            .map(|_| {
                let seed = trainer.rng().next_u64() % 1000;
                let batch = vec![
                    ("features".to_string(), Tensor::f32(vec![8, 6], optim_fixtures::values(seed, 48))),
                    ("onehot".to_string(), onehot(8, 3)),
                ];
                trainer.step(batch, &StepHyper::new(0.01, 0.0)).unwrap().loss.to_bits()
            })
            .collect()
    };
    let mut whole = new_trainer(21);
    let all = run(&mut whole, 9);
    assert_eq!(run(&mut new_trainer(21), 9), all, "one seed, one run");
    assert_ne!(run(&mut new_trainer(22), 9), all, "another seed, other masks and batches");

    let mut first = new_trainer(21);
    assert_eq!(run(&mut first, 5), all[..5]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropout.safetensors");
    first.save_checkpoint(&path, &BTreeMap::new()).unwrap();
    let mut resumed = new_trainer(5);
    resumed.resume(&path).unwrap();
    assert_eq!(run(&mut resumed, 4), all[5..], "masks after resume continue the uninterrupted run's");
    assert_eq!(state_bits(&resumed), state_bits(&whole));
}

#[test]
fn a_checkpoint_of_another_optimizer_is_refused() {
    let fixture = mlp(D, 4, 1);
    let sgd = trainer(&fixture, &OptimizerConfig::new(OptimizerKind::sgd()), 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sgd.safetensors");
    sgd.save_checkpoint(&path, &BTreeMap::new()).unwrap();
    let mut adamw = trainer(&fixture, &OptimizerConfig::new(OptimizerKind::adamw()), 0);
    let err = adamw.resume(&path).unwrap_err().to_string();
    assert!(err.contains("exp_avg") || err.contains("momentum"), "{err}");
}

#[test]
fn ema_moves_teachers_towards_students() {
    let mut fixture = mlp(D, 4, 2);
    // Teacher copies of the student's weights: frozen parameters of the same step graph.
    let graph = fixture.model.graph.as_mut().unwrap();
    let mut pairs = Vec::new();
    for name in ["w1", "w2"] {
        let init = graph.initializer.iter().find(|t| t.name.as_deref() == Some(name)).unwrap().clone();
        let mut teacher = Tensor::from_proto(&init).unwrap();
        if let memeguard_onnx::TensorData::F32(v) = &mut teacher.data {
            v.iter_mut().for_each(|x| *x = -*x + 0.5);
        }
        let teacher_name = format!("teacher.{name}");
        graph.initializer.push(teacher.to_proto(&teacher_name));
        fixture.params.push(Param {
            name: teacher_name.clone(),
            trainable: false,
            weight_decay: false,
            group: "teacher".into(),
        });
        pairs.push(EmaPair { teacher: teacher_name, student: name.into(), dims: teacher.dims.clone() });
    }
    let mut trainer = trainer(&fixture, &OptimizerConfig::new(OptimizerKind::adamw()), 0);
    trainer.attach_ema(&pairs).unwrap();
    for s in 0..3 {
        let (x, y) = batch(s, 6, D);
        trainer.step(feeds(&x, &y, D), &StepHyper::new(0.01, 0.0)).unwrap();
        let before: Vec<_> =
            pairs.iter().map(|p| (trainer.value(&p.teacher).unwrap(), trainer.value(&p.student).unwrap())).collect();
        let m = 0.9f32;
        trainer.ema_update(m).unwrap();
        for (pair, (t, st)) in pairs.iter().zip(before) {
            let got = trainer.value(&pair.teacher).unwrap();
            let want: Vec<f32> =
                t.as_f32().unwrap().iter().zip(st.as_f32().unwrap()).map(|(t, s)| t * m + s * (1.0 - m)).collect();
            assert_eq!(got.as_f32().unwrap(), &want[..], "step {s}: {}", pair.teacher);
            // The student is read, not written.
            assert_eq!(trainer.value(&pair.student).unwrap(), st);
        }
    }
    let bad = [EmaPair { teacher: "teacher.w1".into(), student: "w2".into(), dims: vec![D as i64, 4] }];
    assert!(trainer.attach_ema(&bad).unwrap_err().to_string().contains("w2"));
}

/// The inference build of linear regression: pred = x·w + b (same initializer names).
fn linreg_inference(extra_param: bool) -> ModelGraph {
    let mut g = GraphBuilder::new("linreg_infer");
    let x = g.input("x", DataType::Float, &dims!["batch", D as i64]);
    let w = g.initializer("w", &Tensor::f32(vec![D as i64, 1], vec![0.0; D]));
    let b = g.initializer("b", &Tensor::f32(vec![1], vec![0.0]));
    let xw = g.op("MatMul", &[&x, &w], &[]);
    let pred = g.op("Add", &[&xw, &b], &[]);
    let mut params = vec![optim_fixtures::param("w", true, "body"), optim_fixtures::param("b", false, "head")];
    if extra_param {
        let e = g.initializer("extra", &Tensor::scalar_f32(1.0));
        params.push(optim_fixtures::param(&e, true, "body"));
    }
    g.named_output(&pred, "pred", DataType::Float, &dims!["batch", 1]);
    ModelGraph { model: g.build(), params, buffers: Vec::new() }
}

#[test]
fn export_substitutes_trained_values_into_the_inference_graph() {
    let fixture = linear_regression(&[0.2, -0.1, 0.4], 0.3, true);
    let mut trainer = trainer(&fixture, &OptimizerConfig::new(OptimizerKind::adamw()), 0);
    run(&mut trainer, 0, 5);
    let values = trainer.model_values().unwrap();
    assert!(values.contains_key("x_mean") && !values.contains_key("w.exp_avg"), "parameters and buffers only");
    let model = export_inference(&linreg_inference(false), &values).unwrap();

    let (x, _) = batch(77, 4, D);
    let mut session = session_from_bytes(&encode_model(&model), &SessionOptions::default()).unwrap();
    let input = ndarray::Array2::from_shape_vec((4, D), x.clone()).unwrap();
    let outputs = session.run(ort::inputs!["x" => ort::value::TensorRef::from_array_view(&input).unwrap()]).unwrap();
    let (_, pred) = outputs["pred"].try_extract_tensor::<f32>().unwrap();
    let w = trainer.value("w").unwrap().to_f64_vec();
    let b = trainer.value("b").unwrap().to_f64_vec()[0];
    assert!(w.iter().any(|&v| ![0.2f32 as f64, -0.1f32 as f64, 0.4f32 as f64].contains(&v)), "training changed w");
    for i in 0..4 {
        let want: f64 = (0..D).map(|j| x[i * D + j] as f64 * w[j]).sum::<f64>() + b;
        assert!((pred[i] as f64 - want).abs() < 1e-5, "row {i}: {} vs {want}", pred[i]);
    }

    // Every parameter must find a value of its shape.
    let err = export_inference(&linreg_inference(true), &values).unwrap_err().to_string();
    assert!(err.contains("`extra` has no trained value"), "{err}");
    let mut wrong = values.clone();
    wrong.insert("b".into(), Tensor::f32(vec![2], vec![0.0, 0.0]));
    let err = export_inference(&linreg_inference(false), &wrong).unwrap_err().to_string();
    assert!(err.contains("`b`"), "{err}");
}

#[test]
fn set_value_keeps_type_and_shape() {
    let fixture = mlp(D, 4, 0);
    let mut trainer = trainer(&fixture, &OptimizerConfig::default(), 0);
    trainer.set_value("b2", &Tensor::f32(vec![1], vec![3.0])).unwrap();
    assert_eq!(trainer.value("b2").unwrap(), Tensor::f32(vec![1], vec![3.0]));
    assert!(trainer.set_value("b2", &Tensor::f32(vec![2], vec![3.0, 1.0])).unwrap_err().to_string().contains("`b2`"));
    assert!(trainer.set_value("nope", &Tensor::scalar_f32(0.0)).is_err());
}

/// CUDA where this machine's ONNX Runtime has no CUDA provider: a clear error. Where it
/// has one, the same run on CUDA matches the CPU run. With `MEMEGUARD_REQUIRE_CUDA=1` (a
/// GPU machine) the error branch fails the test: the run must really happen on CUDA.
#[test]
fn cuda_is_a_clear_error_where_unavailable_and_matches_cpu_where_available() {
    let require_cuda = matches!(std::env::var("MEMEGUARD_REQUIRE_CUDA").as_deref(), Ok("1" | "true" | "yes"));
    let fixture = mlp(D, 4, 5);
    let config = OptimizerConfig::new(OptimizerKind::adamw()).with_clipping(1.0);
    let step = build_step_graph(&fixture.training(), &config).unwrap();
    let library = memeguard_package::onnxruntime::library_path().unwrap();
    let has_cuda_provider = library.parent().is_some_and(|d| d.join("libonnxruntime_providers_cuda.so").exists());
    match Trainer::new(step, &TrainerConfig::on(Device::Cuda(0))) {
        Err(e) => {
            let text = e.to_string();
            eprintln!("CUDA unavailable (provider library present: {has_cuda_provider}): {text}");
            assert!(!require_cuda, "MEMEGUARD_REQUIRE_CUDA is set, but the session could not use CUDA: {text}");
            assert!(text.contains("CUDA was requested (cuda:0)") && text.contains("--device cpu"), "{text}");
        }
        Ok(mut gpu) => {
            assert!(has_cuda_provider, "CUDA worked without a CUDA provider library next to {}", library.display());
            assert_eq!(gpu.device(), Device::Cuda(0), "the trainer's state is not on the GPU");
            let mut cpu = trainer(&fixture, &config, 0);
            let (a, b) = (run(&mut cpu, 0, 5), run(&mut gpu, 0, 5));
            for (c, g) in a.iter().zip(&b) {
                let (c, g) = (f32::from_bits(*c), f32::from_bits(*g));
                assert!((c - g).abs() <= 1e-4 * (1.0 + c.abs()), "cpu {c} vs cuda {g}");
            }
        }
    }
}
