//! The multi-tensor update (small parameters updated as one flat vector per group and
//! weight-decay mask) against the per-parameter update, step by step in ONNX Runtime:
//! same losses, same parameters, same optimizer state, for AdamW and SGD (momentum,
//! Nesterov), with clipping, parameter groups and gradient accumulation.

mod optim_fixtures;

use memeguard_onnx::Tensor;
use memeguard_training::autodiff::Options;
use memeguard_training::graph_spec::ModelGraph;
use memeguard_training::optim::{OptimizerConfig, OptimizerKind, StepGraph, UpdateLayout, differentiate_step_with};
use memeguard_training::runtime::{StepHyper, Trainer, TrainerConfig};
use optim_fixtures::net::{onehot, text_classifier};

/// A 2-block text classifier (D 16) whose head is its own parameter group: small 1-D and
/// 2-D parameters of both weight-decay masks, and a larger embedding. The attention's key
/// biases are frozen: softmax is invariant to them, so their gradient is rounding noise,
/// which AdamW's normalisation turns into steps of full size that no two summation orders
/// share.
fn model() -> (ModelGraph, String, Vec<(String, Tensor)>) {
    let (b, len, vocab, classes) = (4usize, 6i64, 50i64, 3i64);
    let (mut model, loss) = text_classifier(vocab, len, 16, 2, 2, classes);
    for p in &mut model.params {
        if p.name.starts_with("head") {
            p.group = "head".into();
        }
        if p.name.ends_with(".k.bias") {
            p.trainable = false;
        }
    }
    let ids: Vec<i64> = (0..b * len as usize).map(|i| ((i * 7) % vocab as usize) as i64).collect();
    let batch = vec![
        ("input_ids".into(), Tensor::i64(vec![b as i64, len], ids)),
        ("onehot".into(), onehot(b, classes as usize)),
    ];
    (model, loss, batch)
}

fn step_graph(model: &ModelGraph, loss: &str, config: &OptimizerConfig, layout: UpdateLayout) -> StepGraph {
    differentiate_step_with(model, loss, config, &Options::default(), layout).unwrap()
}

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let tol = 1e-6 + 1e-5 * x.abs().max(y.abs());
        assert!((x - y).abs() <= tol, "{what}[{i}]: per-parameter {x} vs multi-tensor {y}");
    }
}

fn compare(config: OptimizerConfig, layout: UpdateLayout) {
    let (model, loss, batch) = model();
    let reference = step_graph(&model, &loss, &config, UpdateLayout::PerParameter);
    let multi = step_graph(&model, &loss, &config, layout);
    let nodes = |s: &StepGraph| s.graph.model.graph.as_ref().unwrap().node.len();
    assert!(nodes(&multi) < nodes(&reference), "the multi-tensor graph should have fewer nodes");
    let names = |s: &StepGraph| s.slots.iter().map(|slot| slot.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&reference), names(&multi), "the state (and its order) does not depend on the layout");

    let mut a = Trainer::new(reference, &TrainerConfig::default()).unwrap();
    let mut b = Trainer::new(multi, &TrainerConfig::default()).unwrap();
    let hyper = StepHyper::new(3e-2, 0.1).with_group("head", 1e-2, 0.0);
    for step in 0..6 {
        let ra = a.step(batch.clone(), &hyper).unwrap();
        let rb = b.step(batch.clone(), &hyper).unwrap();
        close(&[ra.loss], &[rb.loss], &format!("loss at step {step}"));
        assert_eq!(ra.applied, rb.applied);
        if let (Some(x), Some(y)) = (ra.grad_norm, rb.grad_norm) {
            close(&[x], &[y], &format!("gradient norm at step {step}"));
        }
        for (name, _) in a.roles() {
            let (x, y) = (a.value(name).unwrap(), b.value(name).unwrap());
            assert_eq!(x.dims, y.dims, "{name}");
            close(x.as_f32().unwrap(), y.as_f32().unwrap(), &format!("{name} after step {step}"));
        }
    }
}

const ALL_SMALL: UpdateLayout = UpdateLayout::MultiTensor { max_elements: 1 << 10 };

#[test]
fn adamw_with_clipping_matches_the_per_parameter_update() {
    compare(OptimizerConfig::new(OptimizerKind::adamw()).with_clipping(0.5), ALL_SMALL);
}

#[test]
fn adamw_under_the_default_layout_matches_the_per_parameter_update() {
    compare(OptimizerConfig::new(OptimizerKind::adamw()).with_clipping(1.0), UpdateLayout::default());
}

#[test]
fn sgd_with_nesterov_and_accumulation_matches_the_per_parameter_update() {
    let kind = OptimizerKind::Sgd { momentum: 0.9, nesterov: true };
    compare(OptimizerConfig::new(kind).with_clipping(0.5).with_accumulation(2), ALL_SMALL);
}

#[test]
fn plain_sgd_matches_the_per_parameter_update() {
    compare(OptimizerConfig::new(OptimizerKind::Sgd { momentum: 0.0, nesterov: false }), ALL_SMALL);
}
