//! The optimizer nodes against a naive f64 Rust reference of torch's SGD and AdamW (with
//! parameter groups, weight-decay masks, global-norm clipping and gradient accumulation),
//! run step by step in ONNX Runtime on linear regression with a hand-written gradient.

mod optim_fixtures;

use memeguard_training::optim::{OptimizerConfig, OptimizerKind, build_step_graph};
use memeguard_training::runtime::{StepHyper, Trainer, TrainerConfig};
use optim_fixtures::{batch, feeds, linear_regression};

const D: usize = 3;
const N: usize = 8;

/// One parameter of the reference with its optimizer state.
#[derive(Clone)]
struct RefParam {
    value: Vec<f64>,
    decays: bool,
    group: &'static str,
    m: Vec<f64>,
    v: Vec<f64>,
    acc: Vec<f64>,
}

impl RefParam {
    fn new(value: Vec<f64>, decays: bool, group: &'static str) -> Self {
        let n = value.len();
        RefParam { value, decays, group, m: vec![0.0; n], v: vec![0.0; n], acc: vec![0.0; n] }
    }
}

/// Loss and gradients of mean((x·w + b − y)²).
fn linreg(w: &[f64], b: f64, x: &[f32], y: &[f32]) -> (f64, Vec<f64>, Vec<f64>) {
    let n = y.len();
    let mut loss = 0.0;
    let mut gw = vec![0.0; w.len()];
    let mut gb = 0.0;
    for i in 0..n {
        let pred: f64 = (0..w.len()).map(|j| x[i * w.len() + j] as f64 * w[j]).sum::<f64>() + b;
        let r = pred - y[i] as f64;
        loss += r * r / n as f64;
        for j in 0..w.len() {
            gw[j] += 2.0 * r * x[i * w.len() + j] as f64 / n as f64;
        }
        gb += 2.0 * r / n as f64;
    }
    (loss, gw, vec![gb])
}

struct Reference {
    params: Vec<RefParam>,
    config: OptimizerConfig,
    step: u64,
    micro: u64,
}

impl Reference {
    /// One micro-batch; returns (loss, grad norm if clipping and applied).
    // Index loops on purpose: the reference reads like the update formulas it checks.
    #[allow(clippy::needless_range_loop)]
    fn micro_step(&mut self, x: &[f32], y: &[f32], hyper: &StepHyper) -> (f64, Option<f64>) {
        let (loss, gw, gb) = linreg(&self.params[0].value, self.params[1].value[0], x, y);
        let mut grads = vec![gw, gb];
        self.micro += 1;
        let k = self.config.accumulation_steps as u64;
        if k > 1 {
            for (p, g) in self.params.iter_mut().zip(&mut grads) {
                for (a, gi) in p.acc.iter_mut().zip(g.iter()) {
                    *a += gi;
                }
            }
            if !self.micro.is_multiple_of(k) {
                return (loss, None);
            }
            for (p, g) in self.params.iter_mut().zip(&mut grads) {
                for (gi, a) in g.iter_mut().zip(p.acc.iter_mut()) {
                    *gi = *a / k as f64;
                    *a = 0.0;
                }
            }
        }
        let mut norm = None;
        if let Some(max) = self.config.max_grad_norm {
            let total: f64 = grads.iter().flatten().map(|g| g * g).sum::<f64>().sqrt();
            let coef = (max as f64 / (total + 1e-6)).min(1.0);
            grads.iter_mut().flatten().for_each(|g| *g *= coef);
            norm = Some(total);
        }
        self.step += 1;
        let t = self.step as f64;
        for (p, g) in self.params.iter_mut().zip(&grads) {
            let h = hyper.group(p.group);
            let (lr, wd) = (h.lr as f64, if p.decays { h.weight_decay as f64 } else { 0.0 });
            match self.config.kind {
                OptimizerKind::Sgd { momentum, nesterov } => {
                    let mu = momentum as f64;
                    for i in 0..p.value.len() {
                        let gi = g[i] + wd * p.value[i];
                        let d = if mu != 0.0 {
                            p.m[i] = mu * p.m[i] + gi;
                            if nesterov { gi + mu * p.m[i] } else { p.m[i] }
                        } else {
                            gi
                        };
                        p.value[i] -= lr * d;
                    }
                }
                OptimizerKind::AdamW { beta1, beta2, eps } => {
                    let (b1, b2, eps) = (beta1 as f64, beta2 as f64, eps as f64);
                    let bc1 = 1.0 - b1.powf(t);
                    let bc2 = 1.0 - b2.powf(t);
                    for i in 0..p.value.len() {
                        p.value[i] *= 1.0 - lr * wd;
                        p.m[i] = b1 * p.m[i] + (1.0 - b1) * g[i];
                        p.v[i] = b2 * p.v[i] + (1.0 - b2) * g[i] * g[i];
                        let denom = p.v[i].sqrt() / bc2.sqrt() + eps;
                        p.value[i] -= lr / bc1 * p.m[i] / denom;
                    }
                }
            }
        }
        (loss, norm)
    }
}

fn close(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * (1.0 + want.abs())
}

/// Runs `micro_steps` micro-batches in ONNX Runtime and in the reference; compares the
/// loss, the gradient norm and the parameters after every micro-batch.
fn check(config: OptimizerConfig, hyper: StepHyper, micro_steps: u64) {
    let w0 = [0.5f32, -0.3, 0.8];
    let b0 = 0.1f32;
    let fixture = linear_regression(&w0, b0, false);
    let step = build_step_graph(&fixture.training(), &config).unwrap();
    let mut trainer = Trainer::new(step, &TrainerConfig::default()).unwrap();
    let mut reference = Reference {
        params: vec![
            RefParam::new(w0.iter().map(|&v| v as f64).collect(), true, "body"),
            RefParam::new(vec![b0 as f64], false, "head"),
        ],
        config,
        step: 0,
        micro: 0,
    };
    let tol = 2e-5;
    for s in 0..micro_steps {
        let (x, y) = batch(s, N, D);
        let report = trainer.step(feeds(&x, &y, D), &hyper).unwrap();
        let (want_loss, want_norm) = reference.micro_step(&x, &y, &hyper);
        assert!(close(report.loss as f64, want_loss, tol), "{config:?} step {s}: loss {} vs {want_loss}", report.loss);
        assert_eq!(report.applied, reference.micro.is_multiple_of(config.accumulation_steps as u64));
        if let (Some(got), Some(want)) = (report.grad_norm, want_norm) {
            assert!(close(got as f64, want, tol), "{config:?} step {s}: grad norm {got} vs {want}");
        }
        assert_eq!(report.grad_norm.is_some(), want_norm.is_some(), "grad norm reported on updating steps only");
        for (name, p) in [("w", &reference.params[0]), ("b", &reference.params[1])] {
            let got = trainer.value(name).unwrap().to_f64_vec();
            for (g, w) in got.iter().zip(&p.value) {
                assert!(close(*g, *w, tol), "{config:?} step {s}: {name} = {got:?}, reference {:?}", p.value);
            }
        }
    }
    assert_eq!(trainer.optimizer_step(), reference.step);
}

fn groups() -> StepHyper {
    StepHyper::new(0.1, 0.05).with_group("head", 0.05, 0.05)
}

#[test]
fn sgd_with_momentum_weight_decay_and_groups_matches_reference() {
    check(OptimizerConfig::new(OptimizerKind::Sgd { momentum: 0.9, nesterov: false }), groups(), 6);
}

#[test]
fn sgd_nesterov_matches_reference() {
    check(OptimizerConfig::new(OptimizerKind::Sgd { momentum: 0.8, nesterov: true }), groups(), 6);
}

#[test]
fn plain_sgd_matches_reference() {
    check(OptimizerConfig::new(OptimizerKind::Sgd { momentum: 0.0, nesterov: false }), groups(), 4);
}

#[test]
fn adamw_with_groups_and_decoupled_decay_matches_reference() {
    check(OptimizerConfig::new(OptimizerKind::adamw()), StepHyper::new(0.01, 0.1).with_group("head", 0.02, 0.0), 6);
}

#[test]
fn adamw_with_clipping_matches_reference() {
    // max norm 0.05 is far below the gradient norms here, so every update is clipped.
    check(OptimizerConfig::new(OptimizerKind::adamw()).with_clipping(0.05), groups(), 5);
}

#[test]
fn gradient_accumulation_with_sgd_and_with_clipped_adamw_matches_reference() {
    check(OptimizerConfig::new(OptimizerKind::sgd()).with_accumulation(3), groups(), 7);
    check(OptimizerConfig::new(OptimizerKind::adamw()).with_clipping(0.05).with_accumulation(2), groups(), 6);
}
