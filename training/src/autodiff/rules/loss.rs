//! The loss ops exporters write for `F.cross_entropy` and `F.nll_loss`:
//! SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss (class axis 1, optional class
//! weights, `ignore_index`, reductions none / sum / mean).
//!
//! Both pick one class per sample: with `w_i` the weight of sample i's class (0 when its
//! label is `ignore_index`), `loss_i = −w_i · logp[i, label_i]`. So
//! `d loss_i / d logp = −w_i · onehot(label_i)`, scaled by `GO_i` (none), `GO` (sum) or
//! `GO / Σ w_i` (mean); through the softmax, `d/d scores = (softmax − onehot) · that`.
//! Trained class weights get their gradient too (rarely needed: exporters write them
//! as constants, but import makes every float initializer a parameter).

use std::collections::HashMap;

use memeguard_onnx::builder::attribute;
use memeguard_onnx::{Attr, DataType, Tensor};

use crate::autodiff::{AutodiffError, Rule, RuleCtx};

pub(crate) fn register(map: &mut HashMap<&'static str, Rule>) {
    map.insert("SoftmaxCrossEntropyLoss", softmax_cross_entropy);
    map.insert("NegativeLogLikelihoodLoss", negative_log_likelihood);
}

/// What both losses share: the one-hot of the labels and each sample's factor.
struct Picked {
    /// `[N, C, d…]`, 1 at each sample's label (nothing for ignored samples).
    onehot: String,
    /// `[N, 1, d…]` or a scalar: what `d loss / d logp[i, label_i]` is, negated.
    factor: String,
    /// The labels as int64, ignored ones replaced by 0: `[N, d…]`.
    labels: String,
    /// 1 for samples that count, 0 for ignored ones (none without `ignore_index`).
    kept: Option<String>,
    /// `Σ w_i` (the mean's denominator; None for none / sum).
    total: Option<String>,
}

/// Reads labels, weights, `ignore_index` and the reduction, and builds [`Picked`] for a
/// scores / log-probabilities input `x` of rank ≥ 2.
fn picked(c: &mut RuleCtx, x: &str, go: &str) -> Result<Picked, AutodiffError> {
    let rank = c.rank(x);
    if let Some(rank) = rank.filter(|&r| r < 2) {
        return Err(c.unsupported(format!("the scores must be [N, C, ...], but they have rank {rank}")));
    }
    let reduction = c.attr_str("reduction").unwrap_or_else(|| "mean".into());
    if !matches!(reduction.as_str(), "none" | "sum" | "mean") {
        return Err(c.unsupported(format!("reduction `{reduction}`")));
    }
    let labels = c.input(1).to_string();
    let labels = if c.dtype(&labels) == DataType::Int64 {
        labels
    } else {
        c.op("Cast", &[&labels], &[("to", Attr::Int(DataType::Int64 as i64))])
    };
    let float = c.dtype(x) as i64;

    // Ignored samples: weight 0, and a label of 0 so indexing stays in range.
    let ignore = attribute(c.node(), "ignore_index").and_then(|a| a.i);
    let (labels, kept) = match ignore {
        Some(ii) => {
            let ii = c.constant(Tensor::scalar_i64(ii));
            let ignored = c.op("Equal", &[&labels, &ii], &[]);
            let zero = c.constant(Tensor::scalar_i64(0));
            let safe = c.op("Where", &[&ignored, &zero, &labels], &[]);
            let kept = c.op("Not", &[&ignored], &[]);
            (safe, Some(c.op("Cast", &[&kept], &[("to", Attr::Int(float))])))
        }
        None => (labels, None),
    };
    // w_i: the class weight of each sample (times `kept`), or `kept`, or 1 (None).
    let weight = if c.has_input(2) {
        let w = c.input(2).to_string();
        let w_i = c.op("Gather", &[&w, &labels], &[]);
        Some(match &kept {
            Some(k) => c.op("Mul", &[&w_i, k], &[]),
            None => w_i,
        })
    } else {
        kept.clone()
    };

    // onehot = (classes reshaped to [1, C, 1, …]) == (labels unsqueezed at axis 1).
    let shape = c.shape_of(x);
    let one_idx = c.constant(Tensor::scalar_i64(1));
    let classes = c.op("Gather", &[&shape, &one_idx], &[]);
    let (zero, one) = (c.constant(Tensor::scalar_i64(0)), c.constant(Tensor::scalar_i64(1)));
    let range = c.op("Range", &[&zero, &classes, &one], &[]);
    let along = match rank {
        Some(rank) => {
            let mut along = vec![1i64; rank];
            along[1] = -1;
            c.const_i64s(&along)
        }
        None => {
            // [1, -1] then a 1 for each of the labels' dims after the first.
            let labels_shape = c.shape_of(&labels);
            let (from, to) = (c.const_i64s(&[1]), c.const_i64s(&[i64::MAX]));
            let trailing = c.op("Slice", &[&labels_shape, &from, &to], &[]);
            let n = c.shape_of(&trailing);
            let ones = c.op("ConstantOfShape", &[&n], &[("value", Attr::Tensor(Tensor::vec_i64(&[1])))]);
            let head = c.const_i64s(&[1, -1]);
            c.op("Concat", &[&head, &ones], &[("axis", Attr::Int(0))])
        }
    };
    let range = c.op("Reshape", &[&range, &along], &[]);
    let axis1 = c.const_i64s(&[1]);
    let labels1 = c.op("Unsqueeze", &[&labels, &axis1], &[]);
    let hit = c.op("Equal", &[&range, &labels1], &[]);
    let onehot = c.op("Cast", &[&hit], &[("to", Attr::Int(float))]);

    // The factor: GO_i·w_i (none), GO·w_i (sum), GO·w_i / Σw (mean).
    let per_sample = match reduction.as_str() {
        "none" => Some(match &weight {
            Some(w) => c.op("Mul", &[go, w], &[]),
            None => go.to_string(),
        }),
        _ => weight.clone(),
    };
    let total = (reduction == "mean").then(|| match &weight {
        Some(w) => c.op("ReduceSum", &[w], &[("keepdims", Attr::Int(0))]),
        None => {
            let n = c.op("Size", &[&labels], &[]);
            c.op("Cast", &[&n], &[("to", Attr::Int(float))])
        }
    });
    let scale = match reduction.as_str() {
        "none" => None,
        "sum" => Some(go.to_string()),
        _ => Some(c.op("Div", &[go, total.as_deref().expect("mean has a total")], &[])),
    };
    let factor = match (per_sample, scale) {
        (Some(p), scale) => {
            let p = c.op("Unsqueeze", &[&p, &axis1], &[]);
            match scale {
                Some(s) => c.op("Mul", &[&p, &s], &[]),
                None => p,
            }
        }
        (None, Some(s)) => s,
        (None, None) => unreachable!("reduction none always has a per-sample factor"),
    };
    Ok(Picked { onehot, factor, labels, kept, total })
}

/// The gradient of the class weights `W` (input 2), given the log-probabilities `logp`:
/// sample i adds `GO · kept_i · (−logp[i, label_i])` to `dW[label_i]` (none / sum), and
/// for the mean `GO · kept_i · (−logp[i, label_i] − loss) / Σ w` (the quotient rule,
/// with `loss` the forward's own output).
fn class_weight_grad(c: &mut RuleCtx, p: &Picked, logp: &str, go: &str) -> String {
    let axis1 = c.const_i64s(&[1]);
    let labels1 = c.op("Unsqueeze", &[&p.labels, &axis1], &[]);
    let picked = c.op("GatherElements", &[logp, &labels1], &[("axis", Attr::Int(1))]);
    let mut term = c.op("Neg", &[&picked], &[]); // [N, 1, d…]
    if let Some(total) = &p.total {
        let loss = c.output(0).to_string();
        let centred = c.op("Sub", &[&term, &loss], &[]);
        let g = c.op("Div", &[go, total], &[]);
        term = c.op("Mul", &[&centred, &g], &[]);
    } else if c.attr_str("reduction").as_deref() == Some("none") {
        let go1 = c.op("Unsqueeze", &[go, &axis1], &[]);
        term = c.op("Mul", &[&term, &go1], &[]);
    } else {
        term = c.op("Mul", &[&term, go], &[]);
    }
    if let Some(kept) = &p.kept {
        let kept1 = c.op("Unsqueeze", &[kept, &axis1], &[]);
        term = c.op("Mul", &[&term, &kept1], &[]);
    }
    let flat = c.const_i64s(&[-1]);
    let index = c.op("Reshape", &[&p.labels, &flat], &[]);
    let updates = c.op("Reshape", &[&term, &flat], &[]);
    let w = c.input(2).to_string();
    let zeros = super::indexing::zeros_like(c, &w);
    c.op(
        "ScatterElements",
        &[&zeros, &index, &updates],
        &[("axis", Attr::Int(0)), ("reduction", Attr::Str("add".into()))],
    )
}

fn softmax_cross_entropy(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let x = c.input(0).to_string();
    let log_prob = match c.output(1) {
        "" => None,
        lp => Some(lp.to_string()),
    };
    let picked_grad = match c.grad_output(0) {
        Some(go) if c.needs_grad(0) || c.needs_grad(2) => Some((picked(c, &x, &go)?, go)),
        _ => None,
    };
    if c.needs_grad(2)
        && let Some((p, go)) = &picked_grad
    {
        let logp = match &log_prob {
            Some(lp) => lp.clone(),
            None => c.op("LogSoftmax", &[&x], &[("axis", Attr::Int(1))]),
        };
        let dw = class_weight_grad(c, p, &logp, go);
        c.set_grad(2, dw);
    }
    if !c.needs_grad(0) {
        return Ok(());
    }
    let softmax = match &log_prob {
        None => c.op("Softmax", &[&x], &[("axis", Attr::Int(1))]),
        Some(lp) => c.op("Exp", &[lp], &[]),
    };
    let mut parts = Vec::new();
    if let Some((p, _)) = &picked_grad {
        let d = c.op("Sub", &[&softmax, &p.onehot], &[]);
        parts.push(c.op("Mul", &[&d, &p.factor], &[]));
    }
    if let Some(g1) = c.grad_output(1) {
        // Through the log-softmax output: g − softmax · Σ_class g.
        let axis1 = c.const_i64s(&[1]);
        let s = c.op("ReduceSum", &[&g1, &axis1], &[("keepdims", Attr::Int(1))]);
        let m = c.op("Mul", &[&softmax, &s], &[]);
        parts.push(c.op("Sub", &[&g1, &m], &[]));
    }
    let gi = match parts.len() {
        1 => parts.remove(0),
        _ => c.op("Add", &[&parts[0], &parts[1]], &[]),
    };
    c.set_grad(0, gi);
    Ok(())
}

fn negative_log_likelihood(c: &mut RuleCtx) -> Result<(), AutodiffError> {
    let x = c.input(0).to_string();
    let go = c.grad_out();
    let p = picked(c, &x, &go)?;
    if c.needs_grad(0) {
        let m = c.op("Mul", &[&p.onehot, &p.factor], &[]);
        let gi = c.op("Neg", &[&m], &[]);
        c.set_grad(0, gi);
    }
    if c.needs_grad(2) {
        let dw = class_weight_grad(c, &p, &x, &go);
        c.set_grad(2, dw);
    }
    Ok(())
}
