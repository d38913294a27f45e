//! The contract between graphs that carry state and the runtime that runs them: which
//! graph inputs are state (and which output holds each one's next value), which inputs are
//! per-step scalars, which are data, and which outputs may be fetched.

use memeguard_onnx::DataType;
use memeguard_onnx::proto::ModelProto;

/// A state value as the graph sees it: read from input `name`, its next value written to
/// output `next` (`None` when this graph only reads it, like a frozen parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateIo {
    pub name: String,
    pub next: Option<String>,
}

/// A scalar graph input fed by the runtime each run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScalarInput {
    /// `lr.<group>`: the learning rate of a parameter group (float32).
    LearningRate { group: String },
    /// `weight_decay.<group>`: the weight decay of a parameter group (float32).
    WeightDecay { group: String },
    /// `optim.step`: 1-based count of the optimizer update being applied (float32; AdamW's
    /// bias correction).
    Step,
    /// `optim.apply`: true on the micro-batch that completes a gradient accumulation (bool).
    ApplyUpdate,
    /// `ema.momentum`: the teacher's EMA momentum (float32).
    EmaMomentum,
}

impl ScalarInput {
    /// The graph input's name.
    pub fn name(&self) -> String {
        match self {
            ScalarInput::LearningRate { group } => format!("lr.{group}"),
            ScalarInput::WeightDecay { group } => format!("weight_decay.{group}"),
            ScalarInput::Step => "optim.step".to_string(),
            ScalarInput::ApplyUpdate => "optim.apply".to_string(),
            ScalarInput::EmaMomentum => "ema.momentum".to_string(),
        }
    }

    /// The element type of the rank-0 input.
    pub fn dtype(&self) -> DataType {
        match self {
            ScalarInput::ApplyUpdate => DataType::Bool,
            _ => DataType::Float,
        }
    }
}

/// A graph with state inputs and next-state outputs, ready for the runtime.
#[derive(Debug, Clone)]
pub struct StateGraph {
    pub model: ModelProto,
    /// State read (and possibly updated) by each run, in a fixed order.
    pub state: Vec<StateIo>,
    /// Scalars fed each run.
    pub scalars: Vec<ScalarInput>,
    /// Graph inputs fed from the batch (everything else the forward graph reads).
    pub data_inputs: Vec<String>,
    /// Outputs a caller may fetch to the host (loss, gradient norm, metrics).
    pub reports: Vec<String>,
}
