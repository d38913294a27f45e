//! Binary cross-entropy from logits.

use memeguard_onnx::GraphBuilder;

use super::{LossError, float_type, mean_all, scalar};

/// Mean binary cross-entropy of `logits` against `targets` (same shape, values in
/// `[0, 1]`), with an optional `pos_weight` (broadcast against the logits, e.g. one
/// weight per class `[C]`) that scales the loss of positive targets, as in PyTorch's
/// `BCEWithLogitsLoss`.
///
/// Per element, with `w = 1 + (pos_weight − 1)·y`:
/// `ℓ = (1 − y)·x + w·softplus(−x)`, which for `w = 1` is the familiar stable form
/// `max(x, 0) − x·y + log(1 + exp(−|x|))`. It is computed as
/// `x·(1 − y − w/2) + w·(|x|/2 + log(1 + exp(−|x|)))`, using `max(x, 0) = (x + |x|)/2`:
/// `exp` only sees `−|x| ≤ 0` (no overflow for logits of any size), and the only kink,
/// `|x|` at 0, enters through `a/2 + log(1 + e^(−a))`, whose slope at `a = 0` is 0, so
/// the gradient is exact at `x = 0` too (`max` and `|x|` separately would give a wrong
/// one-sided slope there, which matters for a zero-initialised head).
pub fn bce_with_logits(
    b: &mut GraphBuilder,
    logits: &str,
    targets: &str,
    pos_weight: Option<&str>,
) -> Result<String, LossError> {
    let dtype = float_type(b, logits)?;
    let one = scalar(b, "bce_one", dtype, 1.0);
    let half = scalar(b, "bce_half", dtype, 0.5);
    let w = match pos_weight {
        Some(p) => {
            let pm1 = b.op("Sub", &[p, &one], &[]);
            let scaled = b.op("Mul", &[&pm1, targets], &[]);
            Some(b.op("Add", &[&one, &scaled], &[]))
        }
        None => None,
    };
    // Linear part: x·(1 − y − w/2).
    let half_w = match &w {
        Some(w) => b.op("Mul", &[w, &half], &[]),
        None => half.clone(),
    };
    let one_minus_y = b.op("Sub", &[&one, targets], &[]);
    let slope = b.op("Sub", &[&one_minus_y, &half_w], &[]);
    let linear = b.op("Mul", &[logits, &slope], &[]);
    // Smooth part: |x|/2 + log(1 + exp(−|x|)), times w.
    let a = b.op("Abs", &[logits], &[]);
    let neg_a = b.op("Neg", &[&a], &[]);
    let e = b.op("Exp", &[&neg_a], &[]);
    let one_plus = b.op("Add", &[&one, &e], &[]);
    let log = b.op("Log", &[&one_plus], &[]);
    let half_a = b.op("Mul", &[&a, &half], &[]);
    let smooth = b.op("Add", &[&half_a, &log], &[]);
    let smooth = match &w {
        Some(w) => b.op("Mul", &[w, &smooth], &[]),
        None => smooth,
    };
    let per_element = b.op("Add", &[&linear, &smooth], &[]);
    Ok(mean_all(b, &per_element))
}
