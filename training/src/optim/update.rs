//! The update rules as ONNX nodes: for one parameter and its (clipped, averaged) gradient,
//! the candidate next values of the parameter and of its optimizer state. Per-group and
//! per-step scalars are computed once in [`RuleScalars`] and shared by every parameter.

use memeguard_onnx::{DataType, Dim, GraphBuilder, Tensor};

use super::OptimError;
use super::config::OptimizerKind;

/// The scalars one parameter group's updates read, already derived from the step inputs.
#[derive(Debug, Clone)]
pub(crate) enum RuleScalars {
    /// `neg_lr = −lr`, `wd` (absent when no parameter of the group decays), `momentum`.
    Sgd { neg_lr: String, wd: Option<String>, momentum: Option<String>, nesterov: bool },
    /// `neg_step_size = −lr/(1−β₁ᵗ)`, `decay = 1 − lr·wd`, and the shared constants.
    AdamW { neg_step_size: String, decay: Option<String>, shared: AdamShared },
}

/// AdamW scalars shared by all groups.
#[derive(Debug, Clone)]
pub(crate) struct AdamShared {
    beta1: String,
    one_minus_beta1: String,
    beta2: String,
    one_minus_beta2: String,
    eps: String,
    /// `√(1 − β₂ᵗ)`.
    bias_correction2_sqrt: String,
    /// `1 − β₁ᵗ`.
    bias_correction1: String,
}

/// A rank-0 float32 constant.
pub(crate) fn scalar(b: &mut GraphBuilder, base: &str, v: f32) -> String {
    b.constant(base, Tensor::scalar_f32(v))
}

/// The per-step scalars AdamW shares across groups: constants and bias corrections from `step`.
/// With `grad_scale` (the clipping coefficient c), the moments' input weights become
/// `(1−β₁)·c` and `(1−β₂)·c²`, so that `g` need not be scaled first: the same update as on
/// `c·g` up to rounding, one pass over every gradient fewer.
pub(crate) fn adam_shared(
    b: &mut GraphBuilder,
    kind: &OptimizerKind,
    step: &str,
    grad_scale: Option<&str>,
) -> Option<AdamShared> {
    let OptimizerKind::AdamW { beta1, beta2, eps } = *kind else { return None };
    let one = scalar(b, "adamw.one", 1.0);
    let beta1_c = scalar(b, "adamw.beta1", beta1);
    let beta2_c = scalar(b, "adamw.beta2", beta2);
    let pow1 = b.op("Pow", &[&beta1_c, step], &[]);
    let bias_correction1 = b.op("Sub", &[&one, &pow1], &[]);
    let pow2 = b.op("Pow", &[&beta2_c, step], &[]);
    let bc2 = b.op("Sub", &[&one, &pow2], &[]);
    let bias_correction2_sqrt = b.op("Sqrt", &[&bc2], &[]);
    let mut one_minus_beta1 = scalar(b, "adamw.one_minus_beta1", 1.0 - beta1);
    let mut one_minus_beta2 = scalar(b, "adamw.one_minus_beta2", 1.0 - beta2);
    if let Some(c) = grad_scale {
        one_minus_beta1 = b.op("Mul", &[&one_minus_beta1, c], &[]);
        let c2 = b.op("Mul", &[c, c], &[]);
        one_minus_beta2 = b.op("Mul", &[&one_minus_beta2, &c2], &[]);
    }
    Some(AdamShared {
        one_minus_beta1,
        one_minus_beta2,
        eps: scalar(b, "adamw.eps", eps),
        beta1: beta1_c,
        beta2: beta2_c,
        bias_correction1,
        bias_correction2_sqrt,
    })
}

/// Derives one group's scalars from its `lr` and (optional) `wd` inputs.
pub(crate) fn group_scalars(
    b: &mut GraphBuilder,
    kind: &OptimizerKind,
    lr: &str,
    wd: Option<&str>,
    adam: Option<&AdamShared>,
) -> RuleScalars {
    match *kind {
        OptimizerKind::Sgd { momentum, nesterov } => {
            let neg_lr = b.op("Neg", &[lr], &[]);
            let momentum = (momentum != 0.0).then(|| scalar(b, "sgd.momentum", momentum));
            RuleScalars::Sgd { neg_lr, wd: wd.map(str::to_string), momentum, nesterov }
        }
        OptimizerKind::AdamW { .. } => {
            let shared = adam.expect("AdamW scalars are built before the groups").clone();
            let step_size = b.op("Div", &[lr, &shared.bias_correction1], &[]);
            let neg_step_size = b.op("Neg", &[&step_size], &[]);
            let decay = wd.map(|wd| {
                let one = scalar(b, "adamw.one", 1.0);
                let lr_wd = b.op("Mul", &[lr, wd], &[]);
                b.op("Sub", &[&one, &lr_wd], &[])
            });
            RuleScalars::AdamW { neg_step_size, decay, shared }
        }
    }
}

/// One parameter's update: the candidate next parameter and, for each optimizer state
/// value (declared here as a graph input `<param>.<state>`), its candidate next value.
pub(crate) struct ParamUpdate {
    pub param_next: String,
    /// (state input name, candidate next value)
    pub state: Vec<(String, String)>,
}

/// The optimizer-state values a rule keeps per parameter, by name suffix.
fn state_suffixes(rule: &RuleScalars) -> &'static [&'static str] {
    match rule {
        RuleScalars::Sgd { momentum: Some(_), .. } => &["momentum"],
        RuleScalars::Sgd { momentum: None, .. } => &[],
        RuleScalars::AdamW { .. } => &["exp_avg", "exp_avg_sq"],
    }
}

/// Declares the state input `<param>.<suffix>` with the parameter's shape.
fn state_input(b: &mut GraphBuilder, param: &str, suffix: &str, dims: &[i64]) -> Result<String, OptimError> {
    let name = format!("{param}.{suffix}");
    if b.is_used(&name) {
        return Err(OptimError::NameClash { name });
    }
    let dims: Vec<Dim> = dims.iter().map(|&d| Dim::Known(d)).collect();
    Ok(b.input(&name, DataType::Float, &dims))
}

/// Declares the optimizer-state inputs of `param` (shape `dims`) that `rule` keeps, in the
/// order [`update_values`] takes them.
pub(crate) fn declare_state(
    b: &mut GraphBuilder,
    rule: &RuleScalars,
    param: &str,
    dims: &[i64],
) -> Result<Vec<String>, OptimError> {
    state_suffixes(rule).iter().map(|suffix| state_input(b, param, suffix, dims)).collect()
}

/// Appends the update of `param` (shape `dims`) by gradient `grad`. `decays` is the
/// parameter's weight-decay mask; the group's scalars say how much.
pub(crate) fn emit_update(
    b: &mut GraphBuilder,
    rule: &RuleScalars,
    param: &str,
    grad: &str,
    dims: &[i64],
    decays: bool,
) -> Result<ParamUpdate, OptimError> {
    let state = declare_state(b, rule, param, dims)?;
    let (param_next, state_next) = update_values(b, rule, param, grad, &state, decays);
    Ok(ParamUpdate { param_next, state: state.into_iter().zip(state_next).collect() })
}

/// The update's arithmetic on values of any (matching) shape: `param`, its gradient and
/// its state values (as [`declare_state`] orders them). Returns the candidate next
/// parameter and next state values. Element-wise only, so it computes the same numbers
/// on one parameter or on several flattened and concatenated.
pub(crate) fn update_values(
    b: &mut GraphBuilder,
    rule: &RuleScalars,
    param: &str,
    grad: &str,
    state: &[String],
    decays: bool,
) -> (String, Vec<String>) {
    match rule {
        RuleScalars::Sgd { neg_lr, wd, momentum, nesterov } => {
            // g ← g + wd·p (L2 decay through the gradient, as torch.optim.SGD)
            let g = match wd.as_deref().filter(|_| decays) {
                Some(wd) => {
                    let wd_p = b.op("Mul", &[param, wd], &[]);
                    b.op("Add", &[grad, &wd_p], &[])
                }
                None => grad.to_string(),
            };
            let mut state_next = Vec::new();
            let direction = match momentum {
                Some(mu) => {
                    let buf = &state[0];
                    let mu_buf = b.op("Mul", &[buf, mu], &[]);
                    let buf_next = b.op("Add", &[&mu_buf, &g], &[]);
                    state_next.push(buf_next.clone());
                    if *nesterov {
                        let mu_next = b.op("Mul", &[&buf_next, mu], &[]);
                        b.op("Add", &[&g, &mu_next], &[])
                    } else {
                        buf_next
                    }
                }
                None => g,
            };
            let step = b.op("Mul", &[&direction, neg_lr], &[]);
            let param_next = b.op("Add", &[param, &step], &[]);
            (param_next, state_next)
        }
        RuleScalars::AdamW { neg_step_size, decay, shared: s } => {
            let (m, v) = (&state[0], &state[1]);
            // m ← β₁·m + (1−β₁)·g
            let m_old = b.op("Mul", &[m, &s.beta1], &[]);
            let m_new = b.op("Mul", &[grad, &s.one_minus_beta1], &[]);
            let m_next = b.op("Add", &[&m_old, &m_new], &[]);
            // v ← β₂·v + (1−β₂)·g²
            let g2 = b.op("Mul", &[grad, grad], &[]);
            let v_old = b.op("Mul", &[v, &s.beta2], &[]);
            let v_new = b.op("Mul", &[&g2, &s.one_minus_beta2], &[]);
            let v_next = b.op("Add", &[&v_old, &v_new], &[]);
            // p ← p·(1 − lr·wd) − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)
            let sqrt_v = b.op("Sqrt", &[&v_next], &[]);
            let corrected = b.op("Div", &[&sqrt_v, &s.bias_correction2_sqrt], &[]);
            let denom = b.op("Add", &[&corrected, &s.eps], &[]);
            let ratio = b.op("Div", &[&m_next, &denom], &[]);
            let step = b.op("Mul", &[&ratio, neg_step_size], &[]);
            let decayed = match decay.as_deref().filter(|_| decays) {
                Some(decay) => b.op("Mul", &[param, decay], &[]),
                None => param.to_string(),
            };
            let param_next = b.op("Add", &[&decayed, &step], &[]);
            (param_next, vec![m_next, v_next])
        }
    }
}
