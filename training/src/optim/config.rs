//! What the step graph's optimizer does: the update rule and its constants, gradient
//! clipping and gradient accumulation. Learning rate and weight decay are not here: they
//! enter the graph as scalar inputs each step (see [`super::ScalarInput`]).

use serde::{Deserialize, Serialize};

/// The update rule and its constants (PyTorch's semantics and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerKind {
    /// `torch.optim.SGD` without dampening: weight decay is added to the gradient
    /// (`g + wd·p`), the momentum buffer is `μ·b + g`, Nesterov uses `g + μ·b`.
    Sgd { momentum: f32, nesterov: bool },
    /// `torch.optim.AdamW`: decoupled weight decay `p·(1 − lr·wd)`, bias-corrected moments,
    /// `p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)`.
    AdamW { beta1: f32, beta2: f32, eps: f32 },
}

impl OptimizerKind {
    /// SGD with momentum 0.9, no Nesterov.
    pub fn sgd() -> Self {
        OptimizerKind::Sgd { momentum: 0.9, nesterov: false }
    }

    /// AdamW with β = (0.9, 0.999), ε = 1e-8.
    pub fn adamw() -> Self {
        OptimizerKind::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    /// Short name used in graph metadata and messages.
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerKind::Sgd { .. } => "sgd",
            OptimizerKind::AdamW { .. } => "adamw",
        }
    }
}

/// Everything fixed at graph-build time about the optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    /// Clip the global L2 norm of all trainable gradients to this value
    /// (`torch.nn.utils.clip_grad_norm_`: scale by `min(1, max / (norm + 1e-6))`).
    pub max_grad_norm: Option<f32>,
    /// Average the gradients of this many micro-batches and update on the last one (≥ 1).
    pub accumulation_steps: u32,
}

impl OptimizerConfig {
    /// The rule `kind`, without clipping or accumulation.
    pub fn new(kind: OptimizerKind) -> Self {
        OptimizerConfig { kind, max_grad_norm: None, accumulation_steps: 1 }
    }

    /// The same config with global-norm clipping at `max_norm`.
    pub fn with_clipping(mut self, max_norm: f32) -> Self {
        self.max_grad_norm = Some(max_norm);
        self
    }

    /// The same config accumulating `steps` micro-batches per update.
    pub fn with_accumulation(mut self, steps: u32) -> Self {
        self.accumulation_steps = steps;
        self
    }
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::new(OptimizerKind::adamw())
    }
}
