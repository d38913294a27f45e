//! A small builder of benchmark and test networks: parameters with a deterministic
//! initialisation, linear layers, conv-BN-ReLU, layer norm, pre-norm transformer blocks and
//! the shared cross-entropy. Used by the optimizer tests and by `benches/step.rs`.
#![allow(dead_code)]

use memeguard_onnx::testing::Lcg;
use memeguard_onnx::{Attr, DataType, GraphBuilder, Tensor, dims};
use memeguard_training::graph_spec::{Buffer, ModelGraph, Param};
use memeguard_training::losses::soft_cross_entropy;

/// Deterministic values in [-scale, scale).
pub fn uniform(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut rng = Lcg(seed.wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(1));
    (0..n).map(|_| rng.uniform() * scale).collect()
}

/// A forward graph under construction with its parameter and buffer lists.
pub struct Net {
    pub g: GraphBuilder,
    pub params: Vec<Param>,
    pub buffers: Vec<Buffer>,
    seed: u64,
}

impl Net {
    pub fn new(name: &str) -> Self {
        Net { g: GraphBuilder::new(name), params: Vec::new(), buffers: Vec::new(), seed: 1 }
    }

    /// A parameter initialised uniformly in ±1/√fan_in (or to `fill`).
    pub fn param(&mut self, name: &str, dims: &[i64], fan_in: Option<i64>, fill: f32, decay: bool) -> String {
        let n = dims.iter().product::<i64>() as usize;
        self.seed += 1;
        let data = match fan_in {
            Some(f) => uniform(self.seed, n, 1.0 / (f as f32).sqrt()),
            None => vec![fill; n],
        };
        let name = self.g.initializer(name, &Tensor::f32(dims.to_vec(), data));
        self.params.push(Param { name: name.clone(), trainable: true, weight_decay: decay, group: "all".into() });
        name
    }

    pub fn linear(&mut self, name: &str, x: &str, d_in: i64, d_out: i64) -> String {
        let w = self.param(&format!("{name}.weight"), &[d_in, d_out], Some(d_in), 0.0, true);
        let b = self.param(&format!("{name}.bias"), &[d_out], None, 0.0, false);
        let y = self.g.op("MatMul", &[x, &w], &[]);
        self.g.op("Add", &[&y, &b], &[])
    }

    pub fn layer_norm(&mut self, name: &str, x: &str, d: i64) -> String {
        let scale = self.param(&format!("{name}.weight"), &[d], None, 1.0, false);
        let bias = self.param(&format!("{name}.bias"), &[d], None, 0.0, false);
        self.g.op("LayerNormalization", &[x, &scale, &bias], &[("axis", Attr::Int(-1))])
    }

    /// Conv (no bias) → BatchNormalization (training mode, running statistics) → Relu.
    pub fn conv_bn_relu(&mut self, name: &str, x: &str, c_in: i64, c_out: i64, stride: i64) -> String {
        let w = self.param(&format!("{name}.conv.weight"), &[c_out, c_in, 3, 3], Some(c_in * 9), 0.0, true);
        let y = self.g.op(
            "Conv",
            &[x, &w],
            &[("pads", Attr::Ints(vec![1, 1, 1, 1])), ("strides", Attr::Ints(vec![stride, stride]))],
        );
        let scale = self.param(&format!("{name}.bn.weight"), &[c_out], None, 1.0, false);
        let bias = self.param(&format!("{name}.bn.bias"), &[c_out], None, 0.0, false);
        let mean = self
            .g
            .initializer(&format!("{name}.bn.running_mean"), &Tensor::f32(vec![c_out], vec![0.0; c_out as usize]));
        let var =
            self.g.initializer(&format!("{name}.bn.running_var"), &Tensor::f32(vec![c_out], vec![1.0; c_out as usize]));
        let out = self.g.node(
            "BatchNormalization",
            &[&y, &scale, &bias, &mean, &var],
            3,
            &[("training_mode", Attr::Int(1)), ("momentum", Attr::Float(0.9))],
        );
        self.buffers.push(Buffer { name: mean, updated: out[1].clone() });
        self.buffers.push(Buffer { name: var, updated: out[2].clone() });
        self.g.op("Relu", &[&out[0]], &[])
    }

    /// Pre-norm transformer block on [B, T, D] with `heads` heads.
    pub fn block(&mut self, name: &str, x: &str, d: i64, heads: i64) -> String {
        let dh = d / heads;
        let h = self.layer_norm(&format!("{name}.ln1"), x, d);
        let q = self.linear(&format!("{name}.q"), &h, d, d);
        let k = self.linear(&format!("{name}.k"), &h, d, d);
        let v = self.linear(&format!("{name}.v"), &h, d, d);
        let split = self.g.const_i64s("split_heads", &[0, 0, heads, dh]);
        let q = self.g.op("Reshape", &[&q, &split], &[]);
        let q = self.g.op("Transpose", &[&q], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
        let k = self.g.op("Reshape", &[&k, &split], &[]);
        let k = self.g.op("Transpose", &[&k], &[("perm", Attr::Ints(vec![0, 2, 3, 1]))]);
        let v = self.g.op("Reshape", &[&v, &split], &[]);
        let v = self.g.op("Transpose", &[&v], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
        let scores = self.g.op("MatMul", &[&q, &k], &[]);
        let scale = self.g.constant("attn_scale", Tensor::scalar_f32(1.0 / (dh as f32).sqrt()));
        let scores = self.g.op("Mul", &[&scores, &scale], &[]);
        let attn = self.g.op("Softmax", &[&scores], &[("axis", Attr::Int(-1))]);
        let ctx = self.g.op("MatMul", &[&attn, &v], &[]);
        let ctx = self.g.op("Transpose", &[&ctx], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))]);
        let merge = self.g.const_i64s("merge_heads", &[0, 0, d]);
        let ctx = self.g.op("Reshape", &[&ctx, &merge], &[]);
        let o = self.linear(&format!("{name}.o"), &ctx, d, d);
        let x = self.g.op("Add", &[x, &o], &[]);
        let h = self.layer_norm(&format!("{name}.ln2"), &x, d);
        let h = self.linear(&format!("{name}.fc1"), &h, d, 4 * d);
        let h = self.g.op("Gelu", &[&h], &[]);
        let h = self.linear(&format!("{name}.fc2"), &h, 4 * d, d);
        self.g.op("Add", &[&x, &h], &[])
    }

    /// Mean cross-entropy of `logits` [B, C] against the one-hot input `onehot` (shared loss).
    pub fn cross_entropy(&mut self, logits: &str, classes: i64) -> String {
        let onehot = self.g.input("onehot", DataType::Float, &dims!["batch", classes]);
        soft_cross_entropy(&mut self.g, logits, &onehot).expect("float logits")
    }

    /// Dropout in training mode with probability `ratio` (seeded or not).
    pub fn dropout(&mut self, x: &str, ratio: f32, seed: Option<i64>) -> String {
        let ratio = self.g.constant("dropout_ratio", Tensor::scalar_f32(ratio));
        let training = self.g.constant("dropout_training", Tensor::bool(Vec::<i64>::new(), vec![true]));
        let attrs: Vec<(&str, Attr)> = seed.map(|s| ("seed", Attr::Int(s))).into_iter().collect();
        self.g.node("Dropout", &[x, &ratio, &training], 2, &attrs)[0].clone()
    }

    /// Final layer norm over [B, T, D], mean over tokens, linear head, cross-entropy.
    pub fn token_classifier_loss(&mut self, h: &str, d: i64, classes: i64) -> String {
        let h = self.layer_norm("norm", h, d);
        let axes = self.g.const_i64s("token_axis", &[1]);
        let pooled = self.g.op("ReduceMean", &[&h, &axes], &[("keepdims", Attr::Int(0))]);
        let logits = self.linear("head", &pooled, d, classes);
        self.cross_entropy(&logits, classes)
    }

    pub fn finish(self, loss: String) -> (ModelGraph, String) {
        (ModelGraph { model: self.g.build(), params: self.params, buffers: self.buffers }, loss)
    }
}

/// One-hot rows cycling through the classes: row i has class i mod `classes`.
pub fn onehot(batch: usize, classes: usize) -> Tensor {
    let mut v = vec![0.0; batch * classes];
    for i in 0..batch {
        v[i * classes + i % classes] = 1.0;
    }
    Tensor::f32(vec![batch as i64, classes as i64], v)
}

/// Token embedding (Gather) + position embedding, `blocks` pre-norm transformer blocks with
/// `heads` heads, mean pool, linear head; inputs `input_ids` [B, len] and `onehot`.
pub fn text_classifier(vocab: i64, len: i64, d: i64, heads: i64, blocks: usize, classes: i64) -> (ModelGraph, String) {
    let mut net = Net::new("text_classifier");
    let ids = net.g.input("input_ids", DataType::Int64, &dims!["batch", len]);
    let emb = net.param("token_embed", &[vocab, d], Some(d), 0.0, true);
    let mut h = net.g.op("Gather", &[&emb, &ids], &[("axis", Attr::Int(0))]);
    let pos = net.param("pos_embed", &[1, len, d], Some(d), 0.0, false);
    h = net.g.op("Add", &[&h, &pos], &[]);
    for i in 0..blocks {
        h = net.block(&format!("block{i}"), &h, d, heads);
    }
    let loss = net.token_classifier_loss(&h, d, classes);
    net.finish(loss)
}

/// Conv-BN-ReLU stages on `pixels` [B, channels, hw, hw] (`stages`: output channels and
/// stride of each), global average pool, linear head; batch norm in training mode with its
/// running statistics as buffers. Inputs `pixels` and `onehot`.
pub fn cnn_classifier(channels: i64, hw: i64, stages: &[(i64, i64)], classes: i64) -> (ModelGraph, String) {
    let mut net = Net::new("cnn_classifier");
    let mut h = net.g.input("pixels", DataType::Float, &dims!["batch", channels, hw, hw]);
    let mut c_in = channels;
    for (i, &(c_out, stride)) in stages.iter().enumerate() {
        h = net.conv_bn_relu(&format!("stage{}", i + 1), &h, c_in, c_out, stride);
        c_in = c_out;
    }
    let pooled = net.g.op("GlobalAveragePool", &[&h], &[]);
    let flat = net.g.op("Flatten", &[&pooled], &[("axis", Attr::Int(1))]);
    let logits = net.linear("head", &flat, c_in, classes);
    let loss = net.cross_entropy(&logits, classes);
    net.finish(loss)
}
