//! Graph inputs in the model-package contract (docs/architecture.md): `pixel_values` uint8
//! `[N, H, W, 3]` RGB, normalised inside the graph with the manifest's `image.mean` /
//! `image.std`, and the tokenizer's `input_ids` and `attention_mask` int64 `[N, L]`.

use memeguard_onnx::{Attr, DataType, Dim, dims};
use memeguard_package::ImageSpec;

use crate::models::net::Net;

/// The image input's name in packaged models.
pub const PIXEL_VALUES: &str = "pixel_values";
/// The token ids input's name.
pub const INPUT_IDS: &str = "input_ids";
/// The attention mask input's name.
pub const ATTENTION_MASK: &str = "attention_mask";
/// Symbolic batch dimension of every input and output.
pub const BATCH: &str = "batch";
/// Symbolic text length dimension.
pub const SEQUENCE: &str = "sequence";

/// ImageNet channel means (RGB), as torchvision normalises.
pub const IMAGENET_MEAN: [f32; 3] = memeguard_package::manifest::IMAGENET_MEAN;
/// ImageNet channel standard deviations (RGB).
pub const IMAGENET_STD: [f32; 3] = memeguard_package::manifest::IMAGENET_STD;

/// Declares the uint8 `[N, size, size, 3]` input `name` and returns the float NCHW
/// image normalised with the ImageNet statistics: `(x / 255 − mean) / std`.
pub fn image_input_named(net: &mut Net, name: &str, size: usize) -> String {
    let pixels =
        net.b.input(name, DataType::Uint8, &[Dim::from(BATCH), (size as i64).into(), (size as i64).into(), 3.into()]);
    normalise_pixels(net, &pixels)
}

/// [`image_input_named`] with the package name `pixel_values`.
pub fn image_input(net: &mut Net, size: usize) -> String {
    image_input_named(net, PIXEL_VALUES, size)
}

/// Declares `pixel_values` for a package's image spec (uint8 `[N, size, size, 3]`) and
/// returns the float NCHW image normalised with the spec's `mean` / `std`.
pub fn image_input_for(net: &mut Net, spec: &ImageSpec) -> String {
    let size = i64::from(spec.size);
    let pixels = net.b.input(PIXEL_VALUES, DataType::Uint8, &[Dim::from(BATCH), size.into(), size.into(), 3.into()]);
    normalise_pixels_with(net, &pixels, spec.mean, spec.std)
}

/// uint8 NHWC RGB → float NCHW normalised with the ImageNet statistics.
pub fn normalise_pixels(net: &mut Net, pixels: &str) -> String {
    normalise_pixels_with(net, pixels, IMAGENET_MEAN, IMAGENET_STD)
}

/// uint8 NHWC RGB → float NCHW `(x / 255 − mean) / std` per channel (RGB order), the
/// normalisation a package's manifest records in `image.mean` / `image.std`.
pub fn normalise_pixels_with(net: &mut Net, pixels: &str, mean: [f32; 3], std: [f32; 3]) -> String {
    let x = net.b.op("Cast", &[pixels], &[("to", Attr::Int(DataType::Float as i64))]);
    let x = net.b.op("Transpose", &[&x], &[("perm", Attr::Ints(vec![0, 3, 1, 2]))]);
    // One multiply-add: x·(1 / (255·std)) − mean / std.
    let scale: Vec<f32> = std.iter().map(|s| 1.0 / (255.0 * s)).collect();
    let shift: Vec<f32> = mean.iter().zip(std).map(|(m, s)| m / s).collect();
    let scale = net.const_f32("pixel_scale", &[1, 3, 1, 1], scale);
    let shift = net.const_f32("pixel_shift", &[1, 3, 1, 1], shift);
    let x = net.b.op("Mul", &[&x, &scale], &[]);
    net.b.op("Sub", &[&x, &shift], &[])
}

/// Declares `input_ids` and `attention_mask` (int64 `[N, L]`) and returns their names.
pub fn text_inputs(net: &mut Net) -> (String, String) {
    let shape: Vec<Dim> = dims![BATCH, SEQUENCE];
    let ids = net.b.input(INPUT_IDS, DataType::Int64, &shape);
    let mask = net.b.input(ATTENTION_MASK, DataType::Int64, &shape);
    (ids, mask)
}
