//! The loss builders: forward values against a reference computed in Rust (float64,
//! written directly from the definitions) on tricky inputs — logits of ±100 that would
//! overflow a naive softmax in float32, exact zeros, a zero vector — and gradients
//! against finite differences.

mod common;
mod ort_eval;
use common::*;
use memeguard_onnx::{DataType, Dim, GraphBuilder, Tensor, dims};
use memeguard_training::losses::{self, LossError};

/// A float or int64 input of the forward tests.
enum Feed {
    Float(Vec<i64>, Vec<f64>),
    Int(Vec<i64>, Vec<i64>),
}

/// Builds `loss(inputs)` in `dtype`, runs it once, returns the scalar.
fn forward(dtype: DataType, feeds: &[(&str, Feed)], loss: &dyn Fn(&mut GraphBuilder, &[String]) -> String) -> f64 {
    let mut b = GraphBuilder::new("loss");
    let names: Vec<String> = feeds
        .iter()
        .map(|(n, f)| match f {
            Feed::Float(d, _) => b.input(n, dtype, &d.iter().map(|&v| Dim::Known(v)).collect::<Vec<_>>()),
            Feed::Int(d, _) => b.input(n, DataType::Int64, &d.iter().map(|&v| Dim::Known(v)).collect::<Vec<_>>()),
        })
        .collect();
    let l = loss(&mut b, &names);
    b.output(&l, dtype, &[]);
    let model = b.build();
    let tensors: Vec<(&str, Tensor)> = feeds
        .iter()
        .map(|(n, f)| {
            let t = match f {
                Feed::Float(d, v) if dtype == DataType::Double => Tensor::f64(d.clone(), v.clone()),
                Feed::Float(d, v) => Tensor::f32(d.clone(), v.iter().map(|&x| x as f32).collect()),
                Feed::Int(d, v) => Tensor::i64(d.clone(), v.clone()),
            };
            (*n, t)
        })
        .collect();
    let out = ort_eval::eval(&model, &tensors, &[&l]).remove(0);
    assert!(out.dims.is_empty(), "the loss is a rank-0 scalar, got dims {:?}", out.dims);
    out.to_f64_vec()[0]
}

/// Runs `loss` in float64 and float32 and compares both with `want`.
fn assert_forward(feeds: &[(&str, Feed)], loss: &dyn Fn(&mut GraphBuilder, &[String]) -> String, want: f64) {
    for (dtype, rtol) in [(DataType::Double, 1e-12), (DataType::Float, 2e-6)] {
        let got = forward(dtype, feeds, loss);
        assert!(got.is_finite(), "{dtype:?}: loss is {got}");
        assert!((got - want).abs() <= rtol * want.abs().max(1.0), "{dtype:?}: got {got}, want {want}");
    }
}

/// Every loss uses ops with float64 kernels: the gradient checks must run in float64.
fn check64(ins: &[In], body: &dyn Fn(&mut GraphBuilder, &[String]) -> String) {
    assert_eq!(check_grad(ins, body), Precision::F64);
}

/// log Σ exp(row), shifted by the row's max.
fn log_sum_exp(row: &[f64]) -> f64 {
    let m = row.iter().cloned().fold(f64::MIN, f64::max);
    m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

const TRICKY_LOGITS: [f64; 12] = [100.0, -100.0, 0.0, -100.0, 100.0, 50.0, 0.0, 0.0, 0.0, 1.5, -2.0, 0.3];

#[test]
fn cross_entropy_hard_targets_forward() {
    // Row 0's label has probability e^-200: it underflows to 0 in a softmax (f32 and
    // f64), so softmax followed by log would give an infinite loss.
    let labels = [1i64, 2, 1, 2];
    let want = (0..4)
        .map(|i| log_sum_exp(&TRICKY_LOGITS[3 * i..3 * i + 3]) - TRICKY_LOGITS[3 * i + labels[i] as usize])
        .sum::<f64>()
        / 4.0;
    let feeds =
        [("logits", Feed::Float(vec![4, 3], TRICKY_LOGITS.to_vec())), ("labels", Feed::Int(vec![4], labels.to_vec()))];
    assert_forward(&feeds, &|b, n| losses::cross_entropy(b, &n[0], &n[1]).unwrap(), want);
    // Token-level logits [2, 2, 3]: the mean runs over both leading axes.
    let feeds = [
        ("logits", Feed::Float(vec![2, 2, 3], TRICKY_LOGITS.to_vec())),
        ("labels", Feed::Int(vec![2, 2], labels.to_vec())),
    ];
    assert_forward(&feeds, &|b, n| losses::cross_entropy(b, &n[0], &n[1]).unwrap(), want);
}

#[test]
fn cross_entropy_soft_targets_forward() {
    let p = [0.7, 0.2, 0.1, 0.0, 0.5, 0.5, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 0.05, 0.05, 0.9];
    let want = (0..4)
        .map(|i| {
            let row = &TRICKY_LOGITS[3 * i..3 * i + 3];
            let lse = log_sum_exp(row);
            -(0..3).map(|c| p[3 * i + c] * (row[c] - lse)).sum::<f64>()
        })
        .sum::<f64>()
        / 4.0;
    let feeds =
        [("logits", Feed::Float(vec![4, 3], TRICKY_LOGITS.to_vec())), ("p", Feed::Float(vec![4, 3], p.to_vec()))];
    assert_forward(&feeds, &|b, n| losses::soft_cross_entropy(b, &n[0], &n[1]).unwrap(), want);
}

#[test]
fn bce_with_logits_forward_with_and_without_pos_weight() {
    let y = [1.0, 0.0, 0.3, 1.0, 1.0, 0.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.2];
    let pw = [2.0, 0.5, 3.0];
    let reference = |with_pw: bool| {
        (0..12)
            .map(|i| {
                let (x, t) = (TRICKY_LOGITS[i], y[i]);
                // −[p·y·log σ(x) + (1 − y)·log(1 − σ(x))], log σ(x) = −softplus(−x).
                let p = if with_pw { pw[i % 3] } else { 1.0 };
                p * t * softplus(-x) + (1.0 - t) * softplus(x)
            })
            .sum::<f64>()
            / 12.0
    };
    let feeds = [("x", Feed::Float(vec![4, 3], TRICKY_LOGITS.to_vec())), ("y", Feed::Float(vec![4, 3], y.to_vec()))];
    assert_forward(&feeds, &|b, n| losses::bce_with_logits(b, &n[0], &n[1], None).unwrap(), reference(false));
    let feeds = [
        ("x", Feed::Float(vec![4, 3], TRICKY_LOGITS.to_vec())),
        ("y", Feed::Float(vec![4, 3], y.to_vec())),
        ("pw", Feed::Float(vec![3], pw.to_vec())),
    ];
    assert_forward(&feeds, &|b, n| losses::bce_with_logits(b, &n[0], &n[1], Some(&n[2])).unwrap(), reference(true));
}

#[test]
fn cosine_loss_forward_including_zero_and_opposite_vectors() {
    let a = [1.0, 2.0, -3.0, 0.5, 0.0, 0.0, 0.0, 0.0, 4.0, -1.0, 2.0, 100.0];
    let bv = [-2.0, -4.0, 6.0, -1.0, 1.0, -1.0, 2.0, 0.3, 3.0, 0.5, 2.5, -50.0];
    let eps = losses::DEFAULT_COSINE_EPS;
    let rows: Vec<f64> = (0..3)
        .map(|i| {
            let (u, v) = (&a[4 * i..4 * i + 4], &bv[4 * i..4 * i + 4]);
            let dot: f64 = u.iter().zip(v).map(|(p, q)| p * q).sum();
            let nu = (u.iter().map(|p| p * p).sum::<f64>() + eps * eps).sqrt();
            let nv = (v.iter().map(|p| p * p).sum::<f64>() + eps * eps).sqrt();
            2.0 - 2.0 * dot / (nu * nv)
        })
        .collect();
    // Row 0 is exactly opposite (loss 4), row 1 has a zero vector (loss 2).
    assert!((rows[0] - 4.0).abs() < 1e-12 && (rows[1] - 2.0).abs() < 1e-12, "{rows:?}");
    let want = rows.iter().sum::<f64>() / 3.0;
    let feeds = [("a", Feed::Float(vec![3, 4], a.to_vec())), ("b", Feed::Float(vec![3, 4], bv.to_vec()))];
    assert_forward(&feeds, &|b, n| losses::cosine_loss(b, &n[0], &n[1], eps).unwrap(), want);
}

#[test]
fn cross_entropy_gradients() {
    // Large logits included: the gradient saturates but stays finite and exact.
    let mut logits = values(12, 100, 0.1, 3.0);
    logits[0] = 30.0;
    logits[4] = -30.0;
    let ins = [x("logits", &[4, 3], logits.clone()), int("labels", &[4], vec![0, 2, 1, 1])];
    check64(&ins, &|b, n| losses::cross_entropy(b, &n[0], &n[1]).unwrap());
    let ins = [x("logits", &[2, 2, 3], logits.clone()), int("labels", &[2, 2], vec![2, 0, 1, 1])];
    check64(&ins, &|b, n| losses::cross_entropy(b, &n[0], &n[1]).unwrap());
    let p = positive(12, 101, 0.1, 1.0);
    let ins = [x("logits", &[4, 3], logits), x("p", &[4, 3], p)];
    check64(&ins, &|b, n| losses::soft_cross_entropy(b, &n[0], &n[1]).unwrap());
}

#[test]
fn bce_gradients_including_exactly_zero_logits() {
    // Logits of exactly 0 (a zero-initialised head): the slope there is σ(0) − y.
    let mut logits = values(12, 110, 0.2, 4.0);
    logits[1] = 0.0;
    logits[7] = 0.0;
    let y = positive(12, 111, 0.0, 1.0);
    let ins = [x("x", &[4, 3], logits.clone()), x("y", &[4, 3], y.clone())];
    check64(&ins, &|b, n| losses::bce_with_logits(b, &n[0], &n[1], None).unwrap());
    let ins = [x("x", &[4, 3], logits), x("y", &[4, 3], y), x("pw", &[3], vec![2.0, 0.5, 1.5])];
    check64(&ins, &|b, n| losses::bce_with_logits(b, &n[0], &n[1], Some(&n[2])).unwrap());
}

#[test]
fn bce_slope_at_zero_is_exact() {
    // d/dx mean(ℓ) at x = 0 is (σ(0) − y)/n = (0.5 − y)/n, exactly, from the rules.
    let mut b = GraphBuilder::new("bce0");
    let xv = b.input("x", DataType::Double, &dims![4]);
    let yv = b.input("y", DataType::Double, &dims![4]);
    let l = losses::bce_with_logits(&mut b, &xv, &yv, None).unwrap();
    b.output(&l, DataType::Double, &[]);
    let d = memeguard_training::autodiff::differentiate(&b.build(), &l, &["x".to_string()]).unwrap();
    let mut gb = GraphBuilder::from_model(&d.model);
    gb.output(&d.grads["x"], DataType::Double, &dims![4]);
    let y = [0.0, 1.0, 0.25, 0.5];
    let feeds = [("x", Tensor::f64(vec![4], vec![0.0; 4])), ("y", Tensor::f64(vec![4], y.to_vec()))];
    let g = ort_eval::eval(&gb.build(), &feeds, &[&d.grads["x"]]).remove(0).to_f64_vec();
    for i in 0..4 {
        assert_eq!(g[i], (0.5 - y[i]) / 4.0, "slope at 0 for y = {}", y[i]);
    }
}

#[test]
fn cosine_loss_gradients() {
    let ins = [x("a", &[3, 4], values(12, 120, 0.1, 2.0)), x("b", &[3, 4], values(12, 121, 0.1, 2.0))];
    check64(&ins, &|b, n| losses::cosine_loss(b, &n[0], &n[1], losses::DEFAULT_COSINE_EPS).unwrap());
}

#[test]
fn integer_logits_are_a_clear_error() {
    let mut b = GraphBuilder::new("bad");
    let xv = b.input("x", DataType::Int64, &dims![2, 3]);
    let yv = b.input("y", DataType::Int64, &dims![2]);
    let err = losses::cross_entropy(&mut b, &xv, &yv).unwrap_err();
    assert!(matches!(err, LossError::NotFloat { .. }), "{err}");
    let err = losses::cosine_loss(&mut b, "missing", &xv, 1e-12).unwrap_err();
    assert!(matches!(err, LossError::UnknownValue(_)), "{err}");
}
