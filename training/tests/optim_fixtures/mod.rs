//! Small training graphs with hand-written gradients, for the optimizer and runtime tests
//! (they do not depend on autodiff): linear regression with a buffer, and a tanh MLP.
#![allow(dead_code)]

use std::collections::BTreeMap;

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{Attr, DataType, GraphBuilder, Tensor, dims};
use memeguard_training::graph_spec::{Buffer, ModelGraph, Param};
use memeguard_training::optim::TrainingGraph;

/// A forward graph with loss and gradient nodes, plus its parameter and buffer lists.
pub struct Fixture {
    pub model: ModelProto,
    pub loss: String,
    pub grads: BTreeMap<String, String>,
    pub params: Vec<Param>,
    pub buffers: Vec<Buffer>,
}

impl Fixture {
    pub fn training(&self) -> TrainingGraph<'_> {
        TrainingGraph {
            model: &self.model,
            loss: &self.loss,
            grads: &self.grads,
            params: &self.params,
            buffers: &self.buffers,
        }
    }
}

pub fn param(name: &str, weight_decay: bool, group: &str) -> Param {
    Param { name: name.into(), trainable: true, weight_decay, group: group.into() }
}

/// Deterministic values in [-1, 1).
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A batch for a model with `d` features: x [n, d], y [n, 1].
pub fn batch(seed: u64, n: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
    (values(seed, n * d), values(seed + 1000, n))
}

pub fn feeds(x: &[f32], y: &[f32], d: usize) -> Vec<(String, Tensor)> {
    let n = y.len() as i64;
    vec![("x".into(), Tensor::f32(vec![n, d as i64], x.to_vec())), ("y".into(), Tensor::f32(vec![n, 1], y.to_vec()))]
}

/// Scalar batch size N as a float, computed in the graph (the batch is dynamic).
fn batch_size(g: &mut GraphBuilder, x: &str) -> String {
    let shape = g.op("Shape", &[x], &[("start", Attr::Int(0)), ("end", Attr::Int(1))]);
    let n = g.op("Cast", &[&shape], &[("to", Attr::Int(DataType::Float as i64))]);
    let axes = g.const_i64s("axes0", &[0]);
    g.op("Squeeze", &[&n, &axes], &[])
}

/// pred = x·w + b, loss = mean((pred − y)²); w [d,1] in group `body` (decayed), b [1] in
/// group `head` (not decayed). With `with_buffer`, also `x_mean` [d] ← 0.9·x_mean + 0.1·mean(x).
pub fn linear_regression(w: &[f32], b: f32, with_buffer: bool) -> Fixture {
    let d = w.len() as i64;
    let mut g = GraphBuilder::new("linreg");
    let x = g.input("x", DataType::Float, &dims!["batch", d]);
    let y = g.input("y", DataType::Float, &dims!["batch", 1]);
    let w = g.initializer("w", &Tensor::f32(vec![d, 1], w.to_vec()));
    let b = g.initializer("b", &Tensor::f32(vec![1], vec![b]));
    let xw = g.op("MatMul", &[&x, &w], &[]);
    let pred = g.op("Add", &[&xw, &b], &[]);
    let r = g.op("Sub", &[&pred, &y], &[]);
    let r2 = g.op("Mul", &[&r, &r], &[]);
    let loss = g.op("ReduceMean", &[&r2], &[("keepdims", Attr::Int(0))]);
    // d loss / d pred = 2 r / N
    let n = batch_size(&mut g, &x);
    let two = g.constant("two", Tensor::scalar_f32(2.0));
    let two_r = g.op("Mul", &[&r, &two], &[]);
    let dpred = g.op("Div", &[&two_r, &n], &[]);
    let xt = g.op("Transpose", &[&x], &[("perm", Attr::Ints(vec![1, 0]))]);
    let w_grad = g.op("MatMul", &[&xt, &dpred], &[]);
    let axes = g.const_i64s("axes", &[0]);
    let b_grad_2d = g.op("ReduceSum", &[&dpred, &axes], &[("keepdims", Attr::Int(0))]);
    let b_grad = g.op("Identity", &[&b_grad_2d], &[]);
    let mut buffers = Vec::new();
    if with_buffer {
        let running = g.initializer("x_mean", &Tensor::f32(vec![d], vec![0.0; d as usize]));
        let mean = g.op("ReduceMean", &[&x, &axes], &[("keepdims", Attr::Int(0))]);
        let keep = g.constant("keep", Tensor::scalar_f32(0.9));
        let take = g.constant("take", Tensor::scalar_f32(0.1));
        let kept = g.op("Mul", &[&running, &keep], &[]);
        let taken = g.op("Mul", &[&mean, &take], &[]);
        let updated = g.op("Add", &[&kept, &taken], &[]);
        buffers.push(Buffer { name: running, updated });
    }
    Fixture {
        model: g.build(),
        loss,
        grads: BTreeMap::from([("w".to_string(), w_grad), ("b".to_string(), b_grad)]),
        params: vec![param("w", true, "body"), param("b", false, "head")],
        buffers,
    }
}

/// h = tanh(x·w1 + b1), pred = h·w2 + b2, loss = mean((pred − y)²), hand-differentiated.
pub fn mlp(d: usize, hidden: usize, seed: u64) -> Fixture {
    let (d, h) = (d as i64, hidden as i64);
    let scale1 = 1.0 / (d as f32).sqrt();
    let scale2 = 1.0 / (h as f32).sqrt();
    let mut g = GraphBuilder::new("mlp");
    let x = g.input("x", DataType::Float, &dims!["batch", d]);
    let y = g.input("y", DataType::Float, &dims!["batch", 1]);
    let w1 = g.initializer(
        "w1",
        &Tensor::f32(vec![d, h], values(seed, (d * h) as usize).iter().map(|v| v * scale1).collect()),
    );
    let b1 = g.initializer("b1", &Tensor::f32(vec![h], vec![0.0; h as usize]));
    let w2 = g
        .initializer("w2", &Tensor::f32(vec![h, 1], values(seed + 1, h as usize).iter().map(|v| v * scale2).collect()));
    let b2 = g.initializer("b2", &Tensor::f32(vec![1], vec![0.0]));
    let z = g.op("MatMul", &[&x, &w1], &[]);
    let z = g.op("Add", &[&z, &b1], &[]);
    let hid = g.op("Tanh", &[&z], &[]);
    let p = g.op("MatMul", &[&hid, &w2], &[]);
    let pred = g.op("Add", &[&p, &b2], &[]);
    let r = g.op("Sub", &[&pred, &y], &[]);
    let r2 = g.op("Mul", &[&r, &r], &[]);
    let loss = g.op("ReduceMean", &[&r2], &[("keepdims", Attr::Int(0))]);
    let n = batch_size(&mut g, &x);
    let two = g.constant("two", Tensor::scalar_f32(2.0));
    let two_r = g.op("Mul", &[&r, &two], &[]);
    let dpred = g.op("Div", &[&two_r, &n], &[]);
    let axes = g.const_i64s("axes", &[0]);
    let ht = g.op("Transpose", &[&hid], &[("perm", Attr::Ints(vec![1, 0]))]);
    let w2_grad = g.op("MatMul", &[&ht, &dpred], &[]);
    let b2_grad = g.op("ReduceSum", &[&dpred, &axes], &[("keepdims", Attr::Int(0))]);
    let w2t = g.op("Transpose", &[&w2], &[("perm", Attr::Ints(vec![1, 0]))]);
    let dh = g.op("MatMul", &[&dpred, &w2t], &[]);
    let one = g.constant("one", Tensor::scalar_f32(1.0));
    let h2 = g.op("Mul", &[&hid, &hid], &[]);
    let dtanh = g.op("Sub", &[&one, &h2], &[]);
    let dz = g.op("Mul", &[&dh, &dtanh], &[]);
    let xt = g.op("Transpose", &[&x], &[("perm", Attr::Ints(vec![1, 0]))]);
    let w1_grad = g.op("MatMul", &[&xt, &dz], &[]);
    let b1_grad = g.op("ReduceSum", &[&dz, &axes], &[("keepdims", Attr::Int(0))]);
    Fixture {
        model: g.build(),
        loss,
        grads: BTreeMap::from([
            ("w1".to_string(), w1_grad),
            ("b1".to_string(), b1_grad),
            ("w2".to_string(), w2_grad),
            ("b2".to_string(), b2_grad),
        ]),
        params: vec![
            param("w1", true, "body"),
            param("b1", false, "body"),
            param("w2", true, "head"),
            param("b2", false, "head"),
        ],
        buffers: Vec::new(),
    }
}

/// A classifier: logits = relu(x·w1 + b1)·w2 + b2; loss = −mean(Σ onehot · log_softmax(logits)).
/// Its forward graph has no gradient nodes: autodiff differentiates it.
pub fn mlp_classifier(d: usize, hidden: usize, classes: usize) -> (ModelGraph, String) {
    let c = classes;
    let mut g = GraphBuilder::new("mlp_classifier");
    let x = g.input("x", DataType::Float, &dims!["batch", d as i64]);
    let onehot = g.input("onehot", DataType::Float, &dims!["batch", c as i64]);
    let s1 = 1.0 / (d as f32).sqrt();
    let s2 = 1.0 / (hidden as f32).sqrt();
    let w1 = g.initializer(
        "w1",
        &Tensor::f32(vec![d as i64, hidden as i64], values(1, d * hidden).iter().map(|v| v * s1).collect()),
    );
    let b1 = g.initializer("b1", &Tensor::f32(vec![hidden as i64], vec![0.0; hidden]));
    let w2 = g.initializer(
        "w2",
        &Tensor::f32(vec![hidden as i64, c as i64], values(2, hidden * c).iter().map(|v| v * s2).collect()),
    );
    let b2 = g.initializer("b2", &Tensor::f32(vec![c as i64], vec![0.0; c]));
    let h = g.op("MatMul", &[&x, &w1], &[]);
    let h = g.op("Add", &[&h, &b1], &[]);
    let h = g.op("Relu", &[&h], &[]);
    let logits = g.op("Gemm", &[&h, &w2, &b2], &[]);
    let logp = g.op("LogSoftmax", &[&logits], &[("axis", Attr::Int(-1))]);
    let picked = g.op("Mul", &[&onehot, &logp], &[]);
    let axes = g.const_i64s("axes", &[1]);
    let per_row = g.op("ReduceSum", &[&picked, &axes], &[("keepdims", Attr::Int(0))]);
    let mean = g.op("ReduceMean", &[&per_row], &[("keepdims", Attr::Int(0))]);
    let loss = g.op("Neg", &[&mean], &[]);
    let params = vec![
        param("w1", true, "body"),
        param("b1", false, "body"),
        param("w2", true, "head"),
        param("b2", false, "head"),
    ];
    (ModelGraph { model: g.build(), params, buffers: Vec::new() }, loss)
}
