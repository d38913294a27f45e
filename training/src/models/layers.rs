//! Basic layers written into a [`Net`]: linear, convolution, batch and layer
//! normalisation, activations, dropout, pooling, L2 normalisation.
//!
//! Every layer uses only default-domain ONNX ops that the autodiff has gradient
//! rules for. Linear weights are stored `[in, out]` (the transpose of PyTorch's
//! `[out, in]`) so a plain `MatMul` applies them to inputs of any rank; convolution
//! weights keep PyTorch's `[out, in, kh, kw]`.

use memeguard_onnx::Attr;

use crate::models::init::Init;
use crate::models::net::{Net, TrainBatchNorm};

/// PyTorch's default batch-norm momentum (weight of the new batch statistic).
pub const BATCH_NORM_MOMENTUM: f32 = 0.1;
/// PyTorch's default batch-norm epsilon.
pub const BATCH_NORM_EPS: f32 = 1e-5;

/// `x · W + b` over the last axis of `x` (any rank). Weight `{name}.weight` `[in, out]`
/// with truncated normal σ = 0.02, bias `{name}.bias` zero.
pub fn linear(net: &mut Net, name: &str, x: &str, in_dim: usize, out_dim: usize, bias: bool) -> String {
    let w = net.param(&format!("{name}.weight"), &[in_dim as i64, out_dim as i64], Init::TRUNC_002, true);
    let y = net.b.op("MatMul", &[x, &w], &[]);
    if !bias {
        return y;
    }
    let b = net.param(&format!("{name}.bias"), &[out_dim as i64], Init::Zeros, false);
    net.b.op("Add", &[&y, &b], &[])
}

/// A 2-D convolution's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
}

/// Convolution of NCHW `x`: weight `{name}.weight` `[out, in, k, k]` initialised by
/// `init`, optional zero bias `{name}.bias`.
pub fn conv2d(net: &mut Net, name: &str, x: &str, conv: Conv2d, init: Init) -> String {
    let k = conv.kernel as i64;
    let w =
        net.param(&format!("{name}.weight"), &[conv.out_channels as i64, conv.in_channels as i64, k, k], init, true);
    let mut inputs = vec![x.to_string(), w];
    if conv.bias {
        inputs.push(net.param(&format!("{name}.bias"), &[conv.out_channels as i64], Init::Zeros, false));
    }
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let (s, p) = (conv.stride as i64, conv.padding as i64);
    net.b.op(
        "Conv",
        &inputs,
        &[
            ("kernel_shape", Attr::Ints(vec![k, k])),
            ("strides", Attr::Ints(vec![s, s])),
            ("pads", Attr::Ints(vec![p, p, p, p])),
        ],
    )
}

/// Batch normalisation over the channels of NCHW `x`: `{name}.weight` (γ = 1),
/// `{name}.bias` (β = 0), buffers `{name}.running_mean` (0) and `{name}.running_var` (1).
/// `Infer`: normalises with the running statistics. `Train`: with the batch
/// statistics, and records the updated running statistics (see [`TrainBatchNorm`]).
pub fn batch_norm2d(net: &mut Net, name: &str, x: &str, channels: usize) -> String {
    let c = channels as i64;
    let gamma = net.param(&format!("{name}.weight"), &[c], Init::Ones, false);
    let beta = net.param(&format!("{name}.bias"), &[c], Init::Zeros, false);
    let mean = net.buffer(&format!("{name}.running_mean"), &[c], Init::Zeros);
    let var = net.buffer(&format!("{name}.running_var"), &[c], Init::Ones);
    let eps = ("epsilon", Attr::Float(BATCH_NORM_EPS));
    if !net.training() {
        return net.b.op("BatchNormalization", &[x, &gamma, &beta, &mean, &var], &[eps]);
    }
    // With shared weights a second use continues from the first use's update.
    let (old_mean, old_var) = (net.buffer_current(&mean), net.buffer_current(&var));
    match net.train_batch_norm {
        TrainBatchNorm::Fused => {
            let outs = net.b.node(
                "BatchNormalization",
                &[x, &gamma, &beta, &old_mean, &old_var],
                3,
                &[eps, ("momentum", Attr::Float(1.0 - BATCH_NORM_MOMENTUM)), ("training_mode", Attr::Int(1))],
            );
            net.set_buffer_update(&mean, &outs[1]);
            net.set_buffer_update(&var, &outs[2]);
            outs[0].clone()
        }
        TrainBatchNorm::Decomposed => {
            let (y, new_mean, new_var) = batch_norm2d_decomposed(net, x, [&gamma, &beta, &old_mean, &old_var]);
            net.set_buffer_update(&mean, &new_mean);
            net.set_buffer_update(&var, &new_var);
            y
        }
    }
}

/// Training-mode batch norm from standard ops; see [`TrainBatchNorm::Decomposed`].
/// Returns the output and the new running mean and variance.
fn batch_norm2d_decomposed(net: &mut Net, x: &str, [gamma, beta, mean, var]: [&str; 4]) -> (String, String, String) {
    let b = &mut net.b;
    let axes = b.const_i64s("bn_axes", &[0, 2, 3]);
    let batch_mean = b.op("ReduceMean", &[x, &axes], &[("keepdims", Attr::Int(1))]);
    let centred = b.op("Sub", &[x, &batch_mean], &[]);
    let squared = b.op("Mul", &[&centred, &centred], &[]);
    let batch_var = b.op("ReduceMean", &[&squared, &axes], &[("keepdims", Attr::Int(1))]);
    let eps = b.constant("bn_eps", memeguard_onnx::Tensor::scalar_f32(BATCH_NORM_EPS));
    let var_eps = b.op("Add", &[&batch_var, &eps], &[]);
    let std = b.op("Sqrt", &[&var_eps], &[]);
    let normalised = b.op("Div", &[&centred, &std], &[]);
    let channel_axes = b.const_i64s("bn_channel_axes", &[1, 2]);
    let gamma_c11 = b.op("Unsqueeze", &[gamma, &channel_axes], &[]);
    let beta_c11 = b.op("Unsqueeze", &[beta, &channel_axes], &[]);
    let scaled = b.op("Mul", &[&normalised, &gamma_c11], &[]);
    let y = b.op("Add", &[&scaled, &beta_c11], &[]);

    // Running statistics, as PyTorch: new = (1 − m)·old + m·batch, with the unbiased
    // variance (n / (n − 1)) where n = N·H·W values per channel.
    let flat = b.const_i64s("bn_flat", &[-1]);
    let mean_c = b.op("Reshape", &[&batch_mean, &flat], &[]);
    let var_c = b.op("Reshape", &[&batch_var, &flat], &[]);
    let size = b.op("Size", &[x], &[]);
    let size_f = b.op("Cast", &[&size], &[("to", Attr::Int(memeguard_onnx::DataType::Float as i64))]);
    let channels = b.op("Size", &[gamma], &[]);
    let channels_f = b.op("Cast", &[&channels], &[("to", Attr::Int(memeguard_onnx::DataType::Float as i64))]);
    let n = b.op("Div", &[&size_f, &channels_f], &[]);
    let one = b.constant("bn_one", memeguard_onnx::Tensor::scalar_f32(1.0));
    let n_minus_1 = b.op("Sub", &[&n, &one], &[]);
    // max(n − 1, 1): a batch with one value per channel keeps its (zero) variance
    // instead of dividing by zero.
    let n_minus_1 = b.op("Max", &[&n_minus_1, &one], &[]);
    let correction = b.op("Div", &[&n, &n_minus_1], &[]);
    let unbiased = b.op("Mul", &[&var_c, &correction], &[]);
    let keep = b.constant("bn_keep", memeguard_onnx::Tensor::scalar_f32(1.0 - BATCH_NORM_MOMENTUM));
    let take = b.constant("bn_take", memeguard_onnx::Tensor::scalar_f32(BATCH_NORM_MOMENTUM));
    let new_mean = running_update(b, mean, &mean_c, &keep, &take);
    let new_var = running_update(b, var, &unbiased, &keep, &take);
    (y, new_mean, new_var)
}

fn running_update(b: &mut memeguard_onnx::GraphBuilder, old: &str, batch: &str, keep: &str, take: &str) -> String {
    let old_part = b.op("Mul", &[old, keep], &[]);
    let new_part = b.op("Mul", &[batch, take], &[]);
    b.op("Add", &[&old_part, &new_part], &[])
}

/// Layer normalisation over the last axis: `{name}.weight` (1), `{name}.bias` (0).
pub fn layer_norm(net: &mut Net, name: &str, x: &str, dim: usize, eps: f32) -> String {
    let gamma = net.param(&format!("{name}.weight"), &[dim as i64], Init::Ones, false);
    let beta = net.param(&format!("{name}.bias"), &[dim as i64], Init::Zeros, false);
    net.b.op("LayerNormalization", &[x, &gamma, &beta], &[("axis", Attr::Int(-1)), ("epsilon", Attr::Float(eps))])
}

/// Exact (erf) GELU, as PyTorch's `nn.GELU()`: the opset-20 `Gelu` op.
pub fn gelu(net: &mut Net, x: &str) -> String {
    net.b.op("Gelu", &[x], &[])
}

/// ReLU.
pub fn relu(net: &mut Net, x: &str) -> String {
    net.b.op("Relu", &[x], &[])
}

/// Dropout with probability `ratio`: a `Dropout` node in training mode (its mask as
/// the second output, seeded from the model seed) in `Train` graphs; nothing at all
/// in `Infer` graphs or when `ratio` is 0.
pub fn dropout(net: &mut Net, x: &str, ratio: f32) -> String {
    if !net.training() || ratio <= 0.0 {
        return x.to_string();
    }
    let seed = net.next_dropout_seed();
    let ratio = net.scalar_f32("dropout_ratio", ratio);
    let training = net.b.constant("dropout_training", memeguard_onnx::Tensor::bool(Vec::<i64>::new(), vec![true]));
    let outs = net.b.node("Dropout", &[x, &ratio, &training], 2, &[("seed", Attr::Int(seed))]);
    outs[0].clone()
}

/// Max pooling of NCHW `x`.
pub fn max_pool(net: &mut Net, x: &str, kernel: usize, stride: usize, padding: usize) -> String {
    let (k, s, p) = (kernel as i64, stride as i64, padding as i64);
    net.b.op(
        "MaxPool",
        &[x],
        &[
            ("kernel_shape", Attr::Ints(vec![k, k])),
            ("strides", Attr::Ints(vec![s, s])),
            ("pads", Attr::Ints(vec![p, p, p, p])),
        ],
    )
}

/// Mean over the spatial axes of NCHW `x`: `[N, C]`.
pub fn global_avg_pool(net: &mut Net, x: &str) -> String {
    let axes = net.const_i64s("spatial_axes", &[2, 3]);
    net.b.op("ReduceMean", &[x, &axes], &[("keepdims", Attr::Int(0))])
}

/// `x / max(‖x‖₂, 1e-12)` along the last axis, as PyTorch's `F.normalize`.
pub fn l2_normalize(net: &mut Net, x: &str) -> String {
    let axes = net.const_i64s("l2_axes", &[-1]);
    let norm = net.b.op("ReduceL2", &[x, &axes], &[("keepdims", Attr::Int(1))]);
    let eps = net.scalar_f32("l2_eps", 1e-12);
    let norm = net.b.op("Max", &[&norm, &eps], &[]);
    net.b.op("Div", &[x, &norm], &[])
}
