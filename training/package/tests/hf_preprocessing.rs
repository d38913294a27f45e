//! The resize against two references: (a) the `image` crate's triangle filter that did
//! the resizing before `fast_image_resize` (bilinear must stay within one level of it),
//! and (b) transformers' (Pillow) `CLIPImageProcessor` outputs committed in
//! `training/tests/fixtures/hf/clip-tiny/` (mean |Δ| ≤ 0.02 normalised units per image).
//!
//! Run with `--nocapture` to see the measured differences.

use std::path::PathBuf;

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use memeguard_package::resize::{LETTERBOX_FILL, letterbox_dims};
use memeguard_package::{
    HfTokenizer, ImageLimits, ImageSpec, Preprocessor, ResizeFilter, ResizeRule, TextSpec, resize_for_model,
};
use safetensors::{Dtype, SafeTensors};

fn fixture(model: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hf").join(model);
    // Committed fixtures: their absence is a broken checkout, never a reason to skip.
    assert!(dir.is_dir(), "fixture folder {} is missing", dir.display());
    dir
}

/// The resize as it was before `fast_image_resize` (version 1's three rules, `image`'s
/// antialiased triangle filter), kept here as the reference.
fn old_resize_for_model(img: &RgbImage, size: u32, rule: ResizeRule) -> RgbImage {
    let resample = |img: &RgbImage, w: u32, h: u32| {
        if img.dimensions() == (w, h) { img.clone() } else { imageops::resize(img, w, h, FilterType::Triangle) }
    };
    let (w, h) = img.dimensions();
    match rule {
        ResizeRule::Stretch => resample(img, size, size),
        ResizeRule::ShorterSideCenterCrop => {
            let side = w.min(h);
            let crop = imageops::crop_imm(img, (w - side) / 2, (h - side) / 2, side, side).to_image();
            resample(&crop, size, size)
        }
        ResizeRule::Letterbox => {
            let (nw, nh) = letterbox_dims(w, h, size);
            let scaled = resample(img, nw, nh);
            let mut canvas = RgbImage::from_pixel(size, size, LETTERBOX_FILL);
            imageops::replace(&mut canvas, &scaled, i64::from((size - nw) / 2), i64::from((size - nh) / 2));
            canvas
        }
        ResizeRule::ScaleShorterSideThenCenterCrop => unreachable!("not a version 1 rule"),
    }
}

/// Detail at every scale: gradients, a checkerboard and pseudo-random noise.
fn busy_picture(w: u32, h: u32) -> RgbImage {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state % 61) as i32 - 30;
        let check = if (x / 3 + y / 3) % 2 == 0 { 200 } else { 0 };
        let px = |v: i32| (v + noise).clamp(0, 255) as u8;
        Rgb([px((x * 255 / w.max(2)) as i32), px((y * 255 / h.max(2)) as i32), px(check)])
    })
}

#[test]
fn bilinear_matches_the_previous_image_crate_resize_within_one_level() {
    let mut worst = 0;
    for (w, h, size) in [(500, 500, 64), (640, 480, 224), (37, 91, 32), (300, 40, 64), (5, 3, 4), (3, 3, 7), (9, 9, 9)]
    {
        let img = busy_picture(w, h);
        for rule in [ResizeRule::Stretch, ResizeRule::ShorterSideCenterCrop, ResizeRule::Letterbox] {
            let old = old_resize_for_model(&img, size, rule);
            let new = resize_for_model(&img, size, rule, ResizeFilter::Bilinear);
            assert_eq!(old.dimensions(), new.dimensions());
            let diff = old.as_raw().iter().zip(new.as_raw()).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
            assert!(diff <= 1, "{w}×{h} -> {size} {rule}: differs by {diff} levels");
            worst = worst.max(diff);
        }
    }
    println!("largest difference from the image crate's triangle filter: {worst} level(s)");
}

fn tensor_f32(tensors: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let view = tensors.tensor(name).unwrap_or_else(|e| panic!("{name} not in reference.safetensors: {e}"));
    assert_eq!(view.dtype(), Dtype::F32, "{name}");
    let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    (view.shape().to_vec(), values)
}

#[test]
fn clip_preprocessing_matches_transformers_clip_image_processor() {
    let dir = fixture("clip-tiny");
    let spec = ImageSpec::from_hf_preprocessor_config(&dir.join("preprocessor_config.json")).unwrap();
    assert_eq!(spec, ImageSpec::clip(32), "the fixture is CLIP's preprocessing at 32 px");
    let hf = HfTokenizer::load(&dir).unwrap();
    let pre = Preprocessor::new(spec, TextSpec { max_length: hf.max_length }, hf.tokenizer);

    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let reference = SafeTensors::deserialize(&bytes).unwrap();
    let size = spec.size as usize;
    for name in ["square", "landscape", "portrait", "banner"] {
        let png = std::fs::read(dir.join("images").join(format!("{name}.png"))).unwrap();
        let item = pre.prepare_bytes(&png, "", &ImageLimits::default()).unwrap();
        let (shape, want) = tensor_f32(&reference, &format!("pixel_values.{name}"));
        assert_eq!(shape, [1, 3, size, size], "{name}");
        // Our pixels are HWC bytes; the reference is CHW, normalised as the graph will.
        let mut total = 0.0f64;
        let mut largest = 0.0f64;
        for c in 0..3 {
            for y in 0..size {
                for x in 0..size {
                    let byte = f64::from(item.pixels[(y * size + x) * 3 + c]);
                    let ours = (byte / 255.0 - f64::from(spec.mean[c])) / f64::from(spec.std[c]);
                    let delta = (ours - f64::from(want[(c * size + y) * size + x])).abs();
                    total += delta;
                    largest = largest.max(delta);
                }
            }
        }
        let mean = total / (3 * size * size) as f64;
        println!("{name}: mean |Δ| {mean:.5}, max |Δ| {largest:.5} (normalised units)");
        assert!(mean <= 0.02, "{name}: mean |Δ| {mean} > 0.02 against CLIPImageProcessor");
    }
}
