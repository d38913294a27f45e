//! The shared building context: one [`GraphBuilder`], the build mode, and the
//! parameters and buffers registered so far. Layers write into a `Net` under name
//! prefixes, so several encoders and heads compose into one graph
//! (`image.layer1.0.conv1.weight`, `text.blocks.0.attn.qkv.weight`, `head.fc1.weight`).

use std::collections::HashMap;

use memeguard_onnx::proto::TensorProto;
use memeguard_onnx::{DataType, Dim, GraphBuilder, Tensor};

use crate::graph_spec::{Buffer, Mode, ModelGraph, Param};
use crate::models::init::{self, Init};

/// Metadata key set on graphs whose parameters carry shapes but no values.
pub const HOLLOW_METADATA_KEY: &str = "memeguard.weights";
/// Metadata key recording the build mode (`train` or `infer`).
pub const MODE_METADATA_KEY: &str = "memeguard.mode";

/// Where parameter values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// Initialised as the references do, from this seed ([`init`]).
    Random { seed: u64 },
    /// Shapes only: parameter initializers get their dims and element type but no
    /// data, and the model's metadata says `memeguard.weights = hollow`. Such a graph
    /// is for counting, inspection and `check_model`, or for filling in trained
    /// values (export); ONNX Runtime cannot run it as is. Building ViT-B/16 this way
    /// takes milliseconds instead of drawing 86 M random numbers.
    Hollow,
}

/// How batch normalisation is expressed in [`Mode::Train`] graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainBatchNorm {
    /// Batch statistics with standard elementwise and reduction ops
    /// (`ReduceMean`, `Sub`, `Mul`, `Sqrt`, `Div`...), running statistics updated as in
    /// PyTorch (momentum 0.1, unbiased variance for `running_var`). The default:
    /// ONNX Runtime's CUDA kernel refuses `BatchNormalization` with
    /// `training_mode=1` at opset ≥ 14 ("Training mode does not support BN opset 14
    /// (or higher) yet", onnxruntime/core/providers/cuda/nn/batch_norm.h), so only
    /// this form trains on the GPU.
    #[default]
    Decomposed,
    /// One `BatchNormalization` node with `training_mode=1`, its running mean/var
    /// outputs as the updates. CPU only (see above); its running variance is the
    /// population variance of the batch, unlike PyTorch.
    Fused,
}

/// A value to declare as a graph output under a stable name.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphOutput {
    /// The graph value produced by the model.
    pub value: String,
    /// The output's name in the finished graph (e.g. `probability`).
    pub name: String,
    pub dtype: DataType,
    pub dims: Vec<Dim>,
}

impl GraphOutput {
    /// A float32 output.
    pub fn f32(value: &str, name: &str, dims: Vec<Dim>) -> Self {
        GraphOutput { value: value.to_string(), name: name.to_string(), dtype: DataType::Float, dims }
    }
}

/// The building context shared by every layer of one graph.
#[derive(Debug, Clone)]
pub struct Net {
    /// The graph under construction. Layers add nodes through it directly.
    pub b: GraphBuilder,
    /// Train or Infer: decides batch-norm statistics and whether dropout exists.
    pub mode: Mode,
    /// How batch norm is written in `Train` graphs.
    pub train_batch_norm: TrainBatchNorm,
    weights: Weights,
    params: Vec<Param>,
    buffers: Vec<Buffer>,
    /// Shape of every parameter and buffer registered here.
    shapes: HashMap<String, Vec<i64>>,
    /// The latest value of each buffer updated so far in this graph.
    buffer_updates: HashMap<String, String>,
    share_weights: bool,
    dropout_count: u64,
}

impl Net {
    /// An empty graph `name` whose parameters are initialised from `seed`.
    pub fn new(name: &str, mode: Mode, seed: u64) -> Self {
        Self::with_weights(name, mode, Weights::Random { seed })
    }

    /// An empty graph whose parameters will carry shapes only ([`Weights::Hollow`]).
    pub fn hollow(name: &str, mode: Mode) -> Self {
        Self::with_weights(name, mode, Weights::Hollow)
    }

    /// An empty graph with the given weight source.
    pub fn with_weights(name: &str, mode: Mode, weights: Weights) -> Self {
        Net {
            b: GraphBuilder::new(name),
            mode,
            train_batch_norm: TrainBatchNorm::default(),
            weights,
            params: Vec::new(),
            buffers: Vec::new(),
            shapes: HashMap::new(),
            buffer_updates: HashMap::new(),
            share_weights: false,
            dropout_count: 0,
        }
    }

    /// Where parameter values come from.
    pub fn weights(&self) -> Weights {
        self.weights
    }

    /// True in [`Mode::Train`].
    pub fn training(&self) -> bool {
        self.mode == Mode::Train
    }

    /// The parameters registered so far.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The buffers registered so far.
    pub fn buffers(&self) -> &[Buffer] {
        &self.buffers
    }

    /// With sharing on, building a layer whose parameter names already exist reuses
    /// those parameters (and buffers) instead of failing: the same encoder applied to
    /// several inputs in one graph (DINO's student on global and local crops). Their
    /// gradients then sum over the uses, and batch-norm running statistics are
    /// updated once per use, in build order, as sequential forward passes would.
    pub fn set_weight_sharing(&mut self, on: bool) {
        self.share_weights = on;
    }

    /// The existing parameter or buffer `name` when weight sharing allows reusing it.
    fn reuse(&self, name: &str, shape: &[i64]) -> Option<String> {
        let existing = self.shapes.get(name)?;
        assert!(
            self.share_weights,
            "graph name `{name}` is registered twice: give each encoder and head its own prefix"
        );
        assert_eq!(existing.as_slice(), shape, "shared parameter `{name}` is used with two shapes");
        Some(name.to_string())
    }

    /// Adds a float32 initializer `name` of `shape` filled by `init` (or hollow).
    fn float_initializer(&mut self, name: &str, shape: &[i64], init: Init) -> String {
        assert!(
            !self.b.is_used(name),
            "graph name `{name}` is registered twice: give each encoder and head its own prefix"
        );
        self.shapes.insert(name.to_string(), shape.to_vec());
        match self.weights {
            Weights::Random { seed } => {
                let data = init::generate(init, shape, seed, name);
                self.b.initializer(name, &Tensor::f32(shape.to_vec(), data))
            }
            Weights::Hollow => {
                let name = self.b.unique(name);
                self.b.graph_mut().initializer.push(TensorProto {
                    dims: shape.to_vec(),
                    data_type: Some(DataType::Float as i32),
                    name: Some(name.clone()),
                    ..Default::default()
                });
                name
            }
        }
    }

    /// Registers a trainable float32 parameter and returns its name (= `name`).
    /// `weight_decay` is false for biases and normalisation weights.
    pub fn param(&mut self, name: &str, shape: &[i64], init: Init, weight_decay: bool) -> String {
        if let Some(existing) = self.reuse(name, shape) {
            return existing;
        }
        let name = self.float_initializer(name, shape, init);
        self.push_param(&name, true, weight_decay);
        name
    }

    /// Registers a parameter whose value stays fixed (not trained), e.g. DINO's
    /// weight-norm magnitude.
    pub fn frozen_param(&mut self, name: &str, shape: &[i64], init: Init) -> String {
        if let Some(existing) = self.reuse(name, shape) {
            return existing;
        }
        let name = self.float_initializer(name, shape, init);
        self.push_param(&name, false, false);
        name
    }

    /// Registers an initializer given as a protobuf tensor (imported weights) as a
    /// parameter. The tensor's own name is replaced by `name`.
    pub fn param_from_proto(
        &mut self,
        name: &str,
        mut tensor: TensorProto,
        trainable: bool,
        weight_decay: bool,
    ) -> String {
        assert!(!self.b.is_used(name), "graph name `{name}` is registered twice");
        let name = self.b.unique(name);
        tensor.name = Some(name.clone());
        self.shapes.insert(name.clone(), tensor.dims.clone());
        self.b.graph_mut().initializer.push(tensor);
        self.push_param(&name, trainable, weight_decay);
        name
    }

    fn push_param(&mut self, name: &str, trainable: bool, weight_decay: bool) {
        let group = name.split('.').next().unwrap_or(name).to_string();
        self.params.push(Param { name: name.to_string(), trainable, weight_decay, group });
    }

    /// Registers a buffer (state updated by the forward pass in training, e.g. batch
    /// norm running statistics) and returns its name.
    pub fn buffer(&mut self, name: &str, shape: &[i64], init: Init) -> String {
        if let Some(existing) = self.reuse(name, shape) {
            return existing;
        }
        let name = self.float_initializer(name, shape, init);
        self.buffers.push(Buffer { name: name.clone(), updated: String::new() });
        name
    }

    /// The current value of `buffer` at this point of the graph: its latest update,
    /// or the initializer when nothing has updated it yet.
    pub fn buffer_current(&self, buffer: &str) -> String {
        self.buffer_updates.get(buffer).cloned().unwrap_or_else(|| buffer.to_string())
    }

    /// Records `value` as the new value of `buffer`. The last update becomes the
    /// graph output `<buffer>.updated` when the graph is finished.
    pub fn set_buffer_update(&mut self, buffer: &str, value: &str) {
        assert!(self.buffers.iter().any(|b| b.name == buffer), "buffer `{buffer}` is updated before it is registered");
        self.buffer_updates.insert(buffer.to_string(), value.to_string());
    }

    /// A float32 constant (not a parameter) under a fresh name derived from `base`.
    pub fn const_f32(&mut self, base: &str, dims: &[i64], values: Vec<f32>) -> String {
        self.b.constant(base, Tensor::f32(dims.to_vec(), values))
    }

    /// A float32 scalar constant.
    pub fn scalar_f32(&mut self, base: &str, value: f32) -> String {
        self.b.constant(base, Tensor::scalar_f32(value))
    }

    /// A 1-D int64 constant (axes, shapes).
    pub fn const_i64s(&mut self, base: &str, values: &[i64]) -> String {
        self.b.const_i64s(base, values)
    }

    /// Marks every parameter whose name starts with `prefix` trainable or frozen;
    /// returns how many matched.
    pub fn set_trainable(&mut self, prefix: &str, trainable: bool) -> usize {
        let mut n = 0;
        for p in self.params.iter_mut().filter(|p| p.name.starts_with(prefix)) {
            p.trainable = trainable;
            n += 1;
        }
        n
    }

    /// A seed for the next Dropout node: derived from the model seed and a counter,
    /// so masks are reproducible for a seed.
    pub fn next_dropout_seed(&mut self) -> i64 {
        self.dropout_count += 1;
        let seed = match self.weights {
            Weights::Random { seed } => seed,
            Weights::Hollow => 0,
        };
        // ONNX Runtime reads the attribute as int64; keep it positive and non-zero.
        (init::stream_seed(seed, &format!("dropout.{}", self.dropout_count)) >> 2) as i64 + 1
    }

    /// Declares the outputs and returns the finished model. In `Train` graphs every
    /// buffer's update is declared as an output too.
    pub fn finish(mut self, outputs: &[GraphOutput]) -> ModelGraph {
        for out in outputs {
            self.b.named_output(&out.value, &out.name, out.dtype, &out.dims);
        }
        if self.mode == Mode::Train {
            for buffer in &mut self.buffers {
                let value = self.buffer_updates.get(&buffer.name);
                let value = value.unwrap_or_else(|| panic!("buffer `{}` has no update in a Train graph", buffer.name));
                buffer.updated = format!("{}.updated", buffer.name);
                self.b.node_with_outputs("Identity", &[value], &[&buffer.updated], &[]);
                let dims: Vec<Dim> = self.shapes[&buffer.name].iter().map(|&d| Dim::Known(d)).collect();
                self.b.output(&buffer.updated, DataType::Float, &dims);
            }
        } else {
            for buffer in &mut self.buffers {
                buffer.updated.clear();
            }
        }
        if self.weights == Weights::Hollow {
            self.b.metadata(HOLLOW_METADATA_KEY, "hollow");
        }
        self.b.metadata(MODE_METADATA_KEY, if self.mode == Mode::Train { "train" } else { "infer" });
        ModelGraph { model: self.b.build(), params: self.params, buffers: self.buffers }
    }
}

/// True when `model` was built with [`Weights::Hollow`] (parameters without values).
pub fn is_hollow(model: &memeguard_onnx::proto::ModelProto) -> bool {
    model
        .metadata_props
        .iter()
        .any(|e| e.key.as_deref() == Some(HOLLOW_METADATA_KEY) && e.value.as_deref() == Some("hollow"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_get_groups_and_hollow_graphs_are_marked() {
        let mut net = Net::hollow("g", Mode::Infer);
        net.param("image.fc.weight", &[4, 3], Init::TRUNC_002, true);
        net.param("head.fc.bias", &[3], Init::Zeros, false);
        assert_eq!(net.params()[0].group, "image");
        assert_eq!(net.params()[1].group, "head");
        assert_eq!(net.set_trainable("image.", false), 1);
        let graph = net.finish(&[]);
        assert!(is_hollow(&graph.model));
        assert_eq!(graph.parameter_count(), 15);
        assert_eq!(graph.trainable(), vec!["head.fc.bias".to_string()]);
        let init = &graph.model.graph.as_ref().unwrap().initializer[0];
        assert!(init.raw_data.is_none() && init.float_data.is_empty());
    }

    #[test]
    fn shared_weights_are_registered_once_and_buffers_chain_their_updates() {
        let mut net = Net::new("g", Mode::Train, 0);
        net.set_weight_sharing(true);
        let a = net.param("enc.w", &[2, 2], Init::Ones, true);
        assert_eq!(net.param("enc.w", &[2, 2], Init::Ones, true), a);
        let m = net.buffer("enc.bn.running_mean", &[2], Init::Zeros);
        assert_eq!(net.buffer_current(&m), m);
        let first = net.b.op("Neg", &[&m], &[]);
        net.set_buffer_update(&m, &first);
        assert_eq!(net.buffer("enc.bn.running_mean", &[2], Init::Zeros), m);
        assert_eq!(net.buffer_current(&m), first);
        let second = net.b.op("Neg", &[&first], &[]);
        net.set_buffer_update(&m, &second);
        let graph = net.finish(&[]);
        assert_eq!(graph.params.len(), 1);
        assert_eq!(graph.buffers[0].updated, "enc.bn.running_mean.updated");
        let g = graph.model.graph.unwrap();
        let identity = g.node.iter().find(|n| n.output[0] == "enc.bn.running_mean.updated").unwrap();
        assert_eq!(identity.input[0], second);
    }

    #[test]
    #[should_panic(expected = "two shapes")]
    fn shared_weights_must_keep_their_shape() {
        let mut net = Net::new("g", Mode::Train, 0);
        net.set_weight_sharing(true);
        net.param("w", &[2], Init::Zeros, false);
        net.param("w", &[3], Init::Zeros, false);
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn duplicate_parameter_names_are_a_programming_error() {
        let mut net = Net::new("g", Mode::Train, 0);
        net.param("a.weight", &[2], Init::Zeros, false);
        net.param("a.weight", &[2], Init::Zeros, false);
    }
}
