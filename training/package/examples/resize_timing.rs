//! Times the model resize: the `image` crate's filters (how it was done before) against
//! `fast_image_resize` (what `resize_for_model` does now). A benchmark, not a test.
//!
//!     cargo run --release -p memeguard-package --example resize_timing
//!
//! Figures go to docs/benchmarks.md with the machine they were measured on.

mod common;

use std::io::Cursor;

use common::time_ms;
use image::imageops::{self, FilterType};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use memeguard_package::resize::{LETTERBOX_FILL, letterbox_dims, shorter_side_dims};
use memeguard_package::{ImageLimits, ResizeFilter, ResizeRule, decode_image, resize_for_model};

/// A photo-like picture: gradients, texture and noise, encoded and decoded as JPEG.
fn jpeg_photo(w: u32, h: u32) -> RgbImage {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let img = RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state % 41) as u32;
        Rgb([((x * 255 / w) + noise) as u8, ((y * 255 / h) + noise) as u8, (((x / 7 + y / 5) % 2) * 180 + noise) as u8])
    });
    let mut bytes = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img).write_to(&mut bytes, ImageFormat::Jpeg).expect("encoding in memory");
    decode_image(bytes.get_ref(), &ImageLimits::default()).expect("a valid JPEG").image
}

/// The previous implementation: `image`'s resize (Triangle for bilinear, CatmullRom for bicubic).
fn image_crate_resize(img: &RgbImage, size: u32, rule: ResizeRule, filter: ResizeFilter) -> RgbImage {
    let filter = match filter {
        ResizeFilter::Bilinear => FilterType::Triangle,
        ResizeFilter::Bicubic => FilterType::CatmullRom,
    };
    let (w, h) = img.dimensions();
    match rule {
        ResizeRule::Letterbox => {
            let (nw, nh) = letterbox_dims(w, h, size);
            let scaled = imageops::resize(img, nw, nh, filter);
            let mut canvas = RgbImage::from_pixel(size, size, LETTERBOX_FILL);
            imageops::replace(&mut canvas, &scaled, i64::from((size - nw) / 2), i64::from((size - nh) / 2));
            canvas
        }
        ResizeRule::ScaleShorterSideThenCenterCrop => {
            let (nw, nh) = shorter_side_dims(w, h, size);
            let scaled = imageops::resize(img, nw, nh, filter);
            imageops::crop_imm(&scaled, (nw - size) / 2, (nh - size) / 2, size, size).to_image()
        }
        _ => imageops::resize(img, size, size, filter),
    }
}

fn main() {
    println!("| input | resize | image crate (ms) | fast_image_resize (ms) | speed-up |");
    println!("| --- | --- | --- | --- | --- |");
    let cases = [
        ((500, 500), 64, ResizeRule::Letterbox, ResizeFilter::Bilinear, 50),
        ((500, 500), 224, ResizeRule::ScaleShorterSideThenCenterCrop, ResizeFilter::Bicubic, 50),
        ((640, 480), 224, ResizeRule::ScaleShorterSideThenCenterCrop, ResizeFilter::Bicubic, 50),
        ((1200, 1200), 224, ResizeRule::Letterbox, ResizeFilter::Bilinear, 20),
        ((4000, 3000), 224, ResizeRule::Letterbox, ResizeFilter::Bilinear, 5),
        ((4000, 3000), 224, ResizeRule::ScaleShorterSideThenCenterCrop, ResizeFilter::Bicubic, 5),
    ];
    for ((w, h), size, rule, filter, runs) in cases {
        let img = jpeg_photo(w, h);
        let old = time_ms(runs, || {
            std::hint::black_box(image_crate_resize(&img, size, rule, filter));
        });
        let new = time_ms(runs, || {
            std::hint::black_box(resize_for_model(&img, size, rule, filter));
        });
        println!("| JPEG {w}×{h} | {rule} {size}, {filter} | {old:.2} | {new:.2} | {:.1}× |", old / new);
    }
}
