//! Helpers shared by the package tests: tiny packages and images encoded in memory.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};
use memeguard_package::manifest::{Architecture, ImageSpec, MANIFEST_FORMAT_VERSION, Manifest, ResizeRule, TextSpec};
use memeguard_package::{ModelPackage, TextTokenizer, placeholder_model, write_package};

pub const SIZE: u32 = 8;
pub const MAX_LENGTH: usize = 6;

pub fn texts() -> Vec<String> {
    ["when you see it", "this meme is fine", "see you later", "it is what it is", "fine, see it"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

pub fn tokenizer() -> TextTokenizer {
    TextTokenizer::train_wordpiece(&texts(), 60).unwrap()
}

pub fn manifest(resize: ResizeRule) -> Manifest {
    manifest_with(ImageSpec::new(SIZE, resize))
}

pub fn manifest_with(image: ImageSpec) -> Manifest {
    Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        name: "tiny".into(),
        version: "1.0.0".into(),
        created_at: "2025-01-02T03:04:05Z".into(),
        description: "a tiny test package".into(),
        placeholder: true,
        architecture: Architecture {
            image_encoder: "grid".into(),
            text_encoder: "mean".into(),
            fusion: "mlp".into(),
            parameters: 0,
        },
        pretraining: "none".into(),
        image,
        text: TextSpec { max_length: MAX_LENGTH },
        threshold: 0.5,
        metrics: serde_json::json!({ "dev": { "auroc": 0.5 } }),
        data: serde_json::json!({}),
        opset: 0,
        ir_version: 0,
        files: Default::default(),
    }
}

/// A valid tiny package (the placeholder graph at 8×8 pixels, 6 tokens) in `dir`.
pub fn tiny_package(dir: &Path, resize: ResizeRule) -> ModelPackage {
    tiny_package_with(dir, ImageSpec::new(SIZE, resize))
}

/// [`tiny_package`] with any image spec of side [`SIZE`].
pub fn tiny_package_with(dir: &Path, image: ImageSpec) -> ModelPackage {
    let tokenizer = tokenizer();
    let model = placeholder_model(SIZE, MAX_LENGTH, tokenizer.vocab_size());
    write_package(dir, manifest_with(image), &model, &tokenizer).unwrap()
}

pub fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A picture with four coloured quadrants (red, green / blue, yellow), `w`×`h`.
pub fn quadrants(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| match (x < w / 2, y < h / 2) {
        (true, true) => image::Rgb([255, 0, 0]),
        (false, true) => image::Rgb([0, 255, 0]),
        (true, false) => image::Rgb([0, 0, 255]),
        (false, false) => image::Rgb([255, 255, 0]),
    })
}

pub fn lossless_webp(image: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .encode(image.as_raw(), image.width(), image.height(), image::ExtendedColorType::Rgba8)
        .unwrap();
    out
}

pub fn two_frame_gif(first: &RgbaImage, second: &RgbaImage) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
        encoder.encode_frames(vec![image::Frame::new(first.clone()), image::Frame::new(second.clone())]).unwrap();
    }
    out
}

/// A JPEG of `image` with an EXIF APP1 segment carrying `orientation` (1..=8) inserted
/// right after the start-of-image marker.
pub fn jpeg_with_orientation(image: &RgbImage, orientation: u16) -> Vec<u8> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 100).encode_image(image).unwrap();
    // TIFF header (little endian), one IFD with one entry: 0x0112 Orientation, SHORT, 1 value.
    let mut exif = b"Exif\0\0II*\0".to_vec();
    exif.extend_from_slice(&8u32.to_le_bytes());
    exif.extend_from_slice(&1u16.to_le_bytes());
    exif.extend_from_slice(&0x0112u16.to_le_bytes());
    exif.extend_from_slice(&3u16.to_le_bytes());
    exif.extend_from_slice(&1u32.to_le_bytes());
    exif.extend_from_slice(&orientation.to_le_bytes());
    exif.extend_from_slice(&[0, 0]);
    exif.extend_from_slice(&0u32.to_le_bytes());
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&exif);
    out.extend_from_slice(&jpeg[2..]);
    out
}
