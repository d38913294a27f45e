//! Fused loss ops: `SoftmaxCrossEntropyLoss` and `NegativeLogLikelihoodLoss`.

use super::{Ctx, Outputs};

/// The loss: `[N, d…]` without reduction, else a scalar; then the log-probabilities.
pub(super) fn cross_entropy(c: &Ctx) -> Outputs {
    let none = crate::builder::attr_str(c.node, "reduction").as_deref() == Some("none");
    let loss = if none {
        c.dims0.as_ref().filter(|d| d.len() >= 2).map(|d| {
            let mut d = d.clone();
            d.remove(1);
            d
        })
    } else {
        Some(vec![])
    };
    vec![c.same(loss), c.same(c.dims0.clone())]
}
