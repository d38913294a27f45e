//! What training needs to know about a forward graph besides its nodes: which
//! initializers are parameters (trainable or frozen, with or without weight decay)
//! and which are buffers (state the forward pass updates, like batch-norm running
//! statistics). Models produce a [`ModelGraph`]; autodiff, optimizers and the runtime
//! consume it. It lives apart from all of them so none depends on another for it.

use memeguard_onnx::proto::ModelProto;

/// Whether a graph is built for training or for inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Batch norm normalises with batch statistics and updates running statistics;
    /// dropout is active.
    #[default]
    Train,
    /// Batch norm uses running statistics; dropout is removed. Exported packages use this.
    Infer,
}

/// One parameter: an initializer of the forward graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Initializer name (unique in the graph), e.g. `image.layer1.0.conv1.weight`.
    pub name: String,
    /// False for frozen parameters (no gradient, no update).
    pub trainable: bool,
    /// False for biases and normalisation weights: excluded from weight decay.
    pub weight_decay: bool,
    /// Parameter group (e.g. `encoder`, `head`) for per-group learning rates.
    pub group: String,
}

/// State that the forward pass updates in training mode (not by gradient).
#[derive(Debug, Clone, PartialEq)]
pub struct Buffer {
    /// Initializer holding the current value, e.g. `...bn1.running_mean`.
    pub name: String,
    /// Graph value holding the new value after a training step (declared as a graph
    /// output in [`Mode::Train`] graphs). Empty in [`Mode::Infer`] graphs.
    pub updated: String,
}

/// A forward graph plus its parameters and buffers.
#[derive(Debug, Clone)]
pub struct ModelGraph {
    /// Parameters and buffers are initializers of this model.
    pub model: ModelProto,
    pub params: Vec<Param>,
    pub buffers: Vec<Buffer>,
}

impl ModelGraph {
    /// Names of the trainable parameters, in graph order.
    pub fn trainable(&self) -> Vec<String> {
        self.params.iter().filter(|p| p.trainable).map(|p| p.name.clone()).collect()
    }

    /// Total number of parameter elements (trainable and frozen; buffers excluded).
    pub fn parameter_count(&self) -> u64 {
        let Some(graph) = self.model.graph.as_ref() else { return 0 };
        self.params
            .iter()
            .filter_map(|p| graph.initializer.iter().find(|t| t.name.as_deref() == Some(p.name.as_str())))
            .map(|t| t.dims.iter().product::<i64>() as u64)
            .sum()
    }
}
