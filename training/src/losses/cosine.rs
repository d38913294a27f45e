//! `2 − 2·cos(a, b)`: the squared distance of L2-normalised vectors (BYOL, SimSiam).

use memeguard_onnx::{Attr, DataType, GraphBuilder};

use super::{LossError, float_type, mean_all, scalar};

/// Default `eps` of [`cosine_loss`] (PyTorch's `F.normalize` default).
pub const DEFAULT_COSINE_EPS: f64 = 1e-12;

/// `v / sqrt(Σ v² + eps²)` along the last axis: L2 normalisation that stays finite
/// (and differentiable) for a zero vector.
fn normalize(b: &mut GraphBuilder, v: &str, dtype: DataType, eps: f64) -> String {
    let last = b.const_i64s("cos_last_axis", &[-1]);
    let sq = b.op("ReduceSumSquare", &[v, &last], &[("keepdims", Attr::Int(1))]);
    let eps2 = scalar(b, "cos_eps2", dtype, eps * eps);
    let sq = b.op("Add", &[&sq, &eps2], &[]);
    let norm = b.op("Sqrt", &[&sq], &[]);
    b.op("Div", &[v, &norm], &[])
}

/// Mean over all leading positions of `2 − 2·cos(a, b)`, the cosine taken along the
/// last axis of `a` and `b` (same shape `[.., D]`). Each vector is normalised by
/// `sqrt(|v|² + eps²)`; pass [`DEFAULT_COSINE_EPS`] unless you need another floor. To
/// stop the gradient through one side (a target network), name it in the autodiff's
/// `Options::stop_gradient`.
pub fn cosine_loss(b: &mut GraphBuilder, a: &str, bv: &str, eps: f64) -> Result<String, LossError> {
    let dtype = float_type(b, a)?;
    let an = normalize(b, a, dtype, eps);
    let bn = normalize(b, bv, dtype, eps);
    let prod = b.op("Mul", &[&an, &bn], &[]);
    let last = b.const_i64s("cos_last_axis", &[-1]);
    let cos = b.op("ReduceSum", &[&prod, &last], &[("keepdims", Attr::Int(0))]);
    let mean_cos = mean_all(b, &cos);
    let two = scalar(b, "cos_two", dtype, 2.0);
    let twice = b.op("Mul", &[&mean_cos, &two], &[]);
    Ok(b.op("Sub", &[&two, &twice], &[]))
}
