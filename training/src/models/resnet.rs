//! ResNet in torchvision's layout (v1.5): 7×7 stride-2 stem, 3×3 stride-2 max-pool,
//! four stages of basic blocks (ResNet-18/34) or bottleneck blocks with the stride on
//! the 3×3 convolution (ResNet-50/101), 1×1 projection shortcuts where the shape
//! changes, global average pooling. Parameter names follow torchvision
//! (`{prefix}.layer1.0.conv1.weight`, `{prefix}.layer2.0.downsample.0.weight`), so
//! checkpoints map one to one (linear weights aside, see [`crate::models::layers`]).

use serde::{Deserialize, Serialize};

use crate::models::init::Init;
use crate::models::layers::{Conv2d, batch_norm2d, conv2d, global_avg_pool, max_pool, relu};
use crate::models::net::Net;

/// The residual block type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    /// Two 3×3 convolutions (ResNet-18/34); expansion 1.
    Basic,
    /// 1×1 → 3×3 (strided) → 1×1 convolutions (ResNet-50/101); expansion 4.
    Bottleneck,
}

impl Block {
    /// Output channels per unit of stage width.
    pub fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

/// A ResNet's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetConfig {
    pub block: Block,
    /// Blocks per stage (four stages).
    pub layers: [usize; 4],
    /// Stem channels and width of the first stage (64 in the standard models);
    /// stage i has width `width · 2^i`.
    pub width: usize,
    /// Square input side the model is meant for. A ResNet accepts any size; this is
    /// what the data pipeline resizes to.
    pub image_size: usize,
}

impl ResNetConfig {
    /// ResNet-18 (11.7 M parameters with a 1000-class head).
    pub fn resnet18() -> Self {
        ResNetConfig { block: Block::Basic, layers: [2, 2, 2, 2], width: 64, image_size: 224 }
    }
    /// ResNet-34.
    pub fn resnet34() -> Self {
        ResNetConfig { block: Block::Basic, layers: [3, 4, 6, 3], width: 64, image_size: 224 }
    }
    /// ResNet-50 (25.6 M parameters with a 1000-class head).
    pub fn resnet50() -> Self {
        ResNetConfig { block: Block::Bottleneck, layers: [3, 4, 6, 3], width: 64, image_size: 224 }
    }
    /// ResNet-101.
    pub fn resnet101() -> Self {
        ResNetConfig { block: Block::Bottleneck, layers: [3, 4, 23, 3], width: 64, image_size: 224 }
    }
    /// A tiny basic-block ResNet for tests and CPU recipes: one block per stage,
    /// width 8, 32×32 inputs.
    pub fn tiny() -> Self {
        ResNetConfig { block: Block::Basic, layers: [1, 1, 1, 1], width: 8, image_size: 32 }
    }
    /// The same layout at another input size.
    pub fn at_size(mut self, image_size: usize) -> Self {
        self.image_size = image_size;
        self
    }
    /// Width of the pooled features.
    pub fn feature_dim(&self) -> usize {
        self.width * 8 * self.block.expansion()
    }
}

/// Builds the ResNet on NCHW float `pixels` under `prefix`; returns the pooled
/// features `[N, feature_dim]`. Convolutions: Kaiming normal (fan_out), no bias.
pub fn resnet(net: &mut Net, cfg: &ResNetConfig, prefix: &str, pixels: &str) -> String {
    let stem = Conv2d { in_channels: 3, out_channels: cfg.width, kernel: 7, stride: 2, padding: 3, bias: false };
    let mut x = conv2d(net, &format!("{prefix}.conv1"), pixels, stem, Init::KaimingNormalFanOut);
    x = batch_norm2d(net, &format!("{prefix}.bn1"), &x, cfg.width);
    x = relu(net, &x);
    x = max_pool(net, &x, 3, 2, 1);
    let mut in_channels = cfg.width;
    for (stage, &blocks) in cfg.layers.iter().enumerate() {
        let planes = cfg.width << stage;
        for i in 0..blocks {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            let name = format!("{prefix}.layer{}.{i}", stage + 1);
            x = match cfg.block {
                Block::Basic => basic_block(net, &name, &x, in_channels, planes, stride),
                Block::Bottleneck => bottleneck(net, &name, &x, in_channels, planes, stride),
            };
            in_channels = planes * cfg.block.expansion();
        }
    }
    global_avg_pool(net, &x)
}

fn conv_bn(net: &mut Net, name: &str, bn: &str, x: &str, conv: Conv2d) -> String {
    let y = conv2d(net, name, x, conv, Init::KaimingNormalFanOut);
    batch_norm2d(net, bn, &y, conv.out_channels)
}

fn conv(in_channels: usize, out_channels: usize, kernel: usize, stride: usize) -> Conv2d {
    Conv2d { in_channels, out_channels, kernel, stride, padding: kernel / 2, bias: false }
}

/// The identity, or a strided 1×1 convolution + batch norm where the shape changes.
fn shortcut(net: &mut Net, name: &str, x: &str, in_channels: usize, out_channels: usize, stride: usize) -> String {
    if stride == 1 && in_channels == out_channels {
        return x.to_string();
    }
    conv_bn(
        net,
        &format!("{name}.downsample.0"),
        &format!("{name}.downsample.1"),
        x,
        conv(in_channels, out_channels, 1, stride),
    )
}

fn basic_block(net: &mut Net, name: &str, x: &str, in_channels: usize, planes: usize, stride: usize) -> String {
    let mut y = conv_bn(net, &format!("{name}.conv1"), &format!("{name}.bn1"), x, conv(in_channels, planes, 3, stride));
    y = relu(net, &y);
    y = conv_bn(net, &format!("{name}.conv2"), &format!("{name}.bn2"), &y, conv(planes, planes, 3, 1));
    let identity = shortcut(net, name, x, in_channels, planes, stride);
    let sum = net.b.op("Add", &[&y, &identity], &[]);
    relu(net, &sum)
}

fn bottleneck(net: &mut Net, name: &str, x: &str, in_channels: usize, planes: usize, stride: usize) -> String {
    let out_channels = planes * Block::Bottleneck.expansion();
    let mut y = conv_bn(net, &format!("{name}.conv1"), &format!("{name}.bn1"), x, conv(in_channels, planes, 1, 1));
    y = relu(net, &y);
    y = conv_bn(net, &format!("{name}.conv2"), &format!("{name}.bn2"), &y, conv(planes, planes, 3, stride));
    y = relu(net, &y);
    y = conv_bn(net, &format!("{name}.conv3"), &format!("{name}.bn3"), &y, conv(planes, out_channels, 1, 1));
    let identity = shortcut(net, name, x, in_channels, out_channels, stride);
    let sum = net.b.op("Add", &[&y, &identity], &[]);
    relu(net, &sum)
}
