//! Gradient transformations before the update: averaging accumulated micro-batch
//! gradients and global-norm clipping.

use memeguard_onnx::{Attr, GraphBuilder};

use super::OptimError;
use super::update::scalar;

/// Name of the reported gradient norm (before clipping).
pub const GRAD_NORM: &str = "optim.grad_norm";

/// Scales every gradient by `min(1, max_norm / (‖g‖ + 1e-6))`, where ‖g‖ is the L2 norm of
/// all gradients together (`torch.nn.utils.clip_grad_norm_`). Returns the clipped
/// gradients (same order) and the norm, computed into [`GRAD_NORM`].
pub(crate) fn clip_global_norm(
    b: &mut GraphBuilder,
    grads: &[String],
    max_norm: f32,
) -> Result<(Vec<String>, String), OptimError> {
    let (coef, norm) = clip_coefficient(b, grads, max_norm)?;
    let clipped = grads.iter().map(|g| b.op("Mul", &[g, &coef], &[])).collect();
    Ok((clipped, norm))
}

/// The clipping coefficient `min(1, max_norm / (‖g‖ + 1e-6))` (a scalar) and the norm
/// ([`GRAD_NORM`]), for an update that folds the scaling into its own scalars.
pub(crate) fn clip_coefficient(
    b: &mut GraphBuilder,
    grads: &[String],
    max_norm: f32,
) -> Result<(String, String), OptimError> {
    if !(max_norm > 0.0 && max_norm.is_finite()) {
        return Err(OptimError::InvalidConfig(format!("max_grad_norm must be a positive number, got {max_norm}")));
    }
    if b.is_used(GRAD_NORM) {
        return Err(OptimError::NameClash { name: GRAD_NORM.to_string() });
    }
    let squares: Vec<String> =
        grads.iter().map(|g| b.op("ReduceSumSquare", &[g], &[("keepdims", Attr::Int(0))])).collect();
    let refs: Vec<&str> = squares.iter().map(String::as_str).collect();
    let total = b.op("Sum", &refs, &[]);
    b.node_with_outputs("Sqrt", &[&total], &[GRAD_NORM], &[]);
    let eps = scalar(b, "clip.eps", 1e-6);
    let max = scalar(b, "clip.max_norm", max_norm);
    let one = scalar(b, "clip.one", 1.0);
    let denom = b.op("Add", &[GRAD_NORM, &eps], &[]);
    let ratio = b.op("Div", &[&max, &denom], &[]);
    let coef = b.op("Min", &[&ratio, &one], &[]);
    Ok((coef, GRAD_NORM.to_string()))
}

/// The scalars gradient accumulation shares across parameters.
pub(crate) struct Accumulation {
    /// The `optim.apply` input.
    pub apply: String,
    steps: String,
    zero: String,
}

impl Accumulation {
    /// Constants for averaging over `steps` micro-batches, gated by the input `apply`.
    pub fn new(b: &mut GraphBuilder, apply: &str, steps: u32) -> Self {
        Accumulation {
            apply: apply.to_string(),
            steps: scalar(b, "accum.steps", steps as f32),
            zero: scalar(b, "accum.zero", 0.0),
        }
    }

    /// Adds `grad` to `accumulator`; returns the averaged gradient `(acc + g) / k` and the
    /// accumulator's next value (`0` on the applying micro-batch, else `acc + g`).
    pub fn accumulate(&self, b: &mut GraphBuilder, accumulator: &str, grad: &str) -> (String, String) {
        let sum = b.op("Add", &[accumulator, grad], &[]);
        let mean = b.op("Div", &[&sum, &self.steps], &[]);
        let accumulator_next = b.op("Where", &[&self.apply, &self.zero, &sum], &[]);
        (mean, accumulator_next)
    }
}
