//! Reverse-mode automatic differentiation of ONNX graphs into standard ONNX ops.
//!
//! [`differentiate`] takes a forward graph with a scalar loss and the names of the
//! values to differentiate with respect to (trainable initializers or inputs), and
//! appends gradient nodes made only of default-domain ONNX ops. Each op's rule lives
//! in `rules/` (one file per op family) and is written with the small vocabulary of
//! [`RuleCtx`]: inputs `I(i)`, outputs `O(i)`, output gradients `GO(i)`, "is this
//! input's gradient needed?", and the shared [`RuleCtx::unbroadcast`].
//!
//! Graphs as exporters write them are accepted: a graph at an older opset (13–19) is
//! first brought to opset 20 (`memeguard_onnx::upgrade`), shapes declared in the file
//! fill in what inference cannot work out, and where a size is known only at run time
//! (a `[1, L, D]` position embedding sliced to the input's length) the rules read it
//! with `Shape` instead of guessing. Float16 and bfloat16 graphs get the seed, zeros and
//! every constant in their own type (a float32 fill cast to it).

mod backward;
mod context;
pub mod gradcheck;
mod registry;
pub mod rules;

pub use backward::{Differentiated, Options, differentiate, differentiate_with};
pub use context::RuleCtx;
pub use registry::{Rule, has_rule, missing_rules, supported_ops};

/// Errors building a gradient graph.
#[derive(Debug, thiserror::Error)]
pub enum AutodiffError {
    #[error("no gradient rule for op `{op}` (node `{node}`); supported ops: see `memeguard-train models --ops`")]
    NoRule { op: String, node: String },
    #[error("gradient of op `{op}` (node `{node}`) is not supported: {reason}")]
    Unsupported { op: String, node: String, reason: String },
    #[error("the loss `{0}` is not a value of the graph")]
    LossNotFound(String),
    #[error("the loss `{name}` must be a floating-point scalar, but it has {what}")]
    LossNotScalar { name: String, what: String },
    #[error("cannot differentiate with respect to `{0}`: it is not an input, initializer or value of the graph")]
    WrtNotFound(String),
    #[error("cannot bring the graph to the opset its gradient is written in: {0}")]
    Upgrade(#[from] memeguard_onnx::upgrade::UpgradeError),
    #[error("cannot differentiate with respect to `{name}`: its element type {dtype:?} is not floating point")]
    WrtNotFloat { name: String, dtype: memeguard_onnx::DataType },
}
