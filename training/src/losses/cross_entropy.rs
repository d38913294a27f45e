//! Cross-entropy from logits, with hard (class index) or soft (probability) targets.

use memeguard_onnx::{Attr, GraphBuilder};

use super::{LossError, float_type, mean_all};

/// Mean cross-entropy of `logits` `[.., C]` against class indices `labels` (int64
/// `[..]`, each in `0..C`): `−mean(log_softmax(logits)[label])`. The log-probability of
/// the label is picked with `GatherElements`, so no one-hot tensor is built.
pub fn cross_entropy(b: &mut GraphBuilder, logits: &str, labels: &str) -> Result<String, LossError> {
    float_type(b, logits)?;
    let log_p = b.op("LogSoftmax", &[logits], &[("axis", Attr::Int(-1))]);
    let last = b.const_i64s("ce_class_axis", &[-1]);
    let index = b.op("Unsqueeze", &[labels, &last], &[]);
    let picked = b.op("GatherElements", &[&log_p, &index], &[("axis", Attr::Int(-1))]);
    let mean = mean_all(b, &picked);
    Ok(b.op("Neg", &[&mean], &[]))
}

/// Mean cross-entropy of `logits` `[.., C]` against class probabilities `targets`
/// `[.., C]` (rows summing to 1): `−mean(Σ_c targets · log_softmax(logits))`.
pub fn soft_cross_entropy(b: &mut GraphBuilder, logits: &str, targets: &str) -> Result<String, LossError> {
    float_type(b, logits)?;
    let log_p = b.op("LogSoftmax", &[logits], &[("axis", Attr::Int(-1))]);
    let weighted = b.op("Mul", &[targets, &log_p], &[]);
    let last = b.const_i64s("ce_class_axis", &[-1]);
    let per_row = b.op("ReduceSum", &[&weighted, &last], &[("keepdims", Attr::Int(0))]);
    let mean = mean_all(b, &per_row);
    Ok(b.op("Neg", &[&mean], &[]))
}
