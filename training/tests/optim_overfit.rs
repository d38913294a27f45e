//! End to end through autodiff: a small MLP classifier (cross-entropy on LogSoftmax)
//! differentiated by `autodiff`, updated by the optimizer nodes, overfits one fixed batch to
//! near-zero loss with AdamW and with SGD.

mod optim_fixtures;

use memeguard_onnx::Tensor;
use memeguard_training::autodiff::Options;
use memeguard_training::optim::{OptimizerConfig, OptimizerKind, differentiate_step};
use memeguard_training::runtime::{StepHyper, Trainer, TrainerConfig};
use optim_fixtures::{mlp_classifier, values};

const N: usize = 16;
const D: usize = 4;
const C: usize = 3;

fn fixed_batch() -> Vec<(String, Tensor)> {
    let x = values(10, N * D);
    let labels: Vec<usize> = values(11, N).iter().map(|v| (((v + 1.0) / 2.0 * C as f32) as usize).min(C - 1)).collect();
    let mut onehot = vec![0.0f32; N * C];
    for (i, &l) in labels.iter().enumerate() {
        onehot[i * C + l] = 1.0;
    }
    vec![
        ("x".into(), Tensor::f32(vec![N as i64, D as i64], x)),
        ("onehot".into(), Tensor::f32(vec![N as i64, C as i64], onehot)),
    ]
}

fn overfit(config: OptimizerConfig, hyper: StepHyper, steps: usize) -> (f32, f32) {
    let (model, loss) = mlp_classifier(D, 32, C);
    let step = differentiate_step(&model, &loss, &config, &Options::default()).unwrap();
    let mut trainer = Trainer::new(step, &TrainerConfig::default()).unwrap();
    let first = trainer.step(fixed_batch(), &hyper).unwrap().loss;
    let mut last = first;
    for _ in 1..steps {
        last = trainer.step(fixed_batch(), &hyper).unwrap().loss;
    }
    (first, last)
}

#[test]
fn mlp_overfits_a_fixed_batch_with_adamw() {
    let (first, last) =
        overfit(OptimizerConfig::new(OptimizerKind::adamw()).with_clipping(5.0), StepHyper::new(0.02, 1e-4), 300);
    assert!(first > 0.5, "starts near chance: {first}");
    assert!(last < 0.01, "AdamW: loss {first} → {last}");
}

#[test]
fn mlp_overfits_a_fixed_batch_with_sgd() {
    let (first, last) = overfit(
        OptimizerConfig::new(OptimizerKind::Sgd { momentum: 0.9, nesterov: true }),
        StepHyper::new(0.2, 1e-4),
        400,
    );
    assert!(first > 0.5, "starts near chance: {first}");
    assert!(last < 0.01, "SGD: loss {first} → {last}");
}
