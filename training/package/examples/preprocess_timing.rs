//! Times the shared preprocessing and a placeholder-package batch (a benchmark, not a test).
//!
//!     cargo run --release -p memeguard-package --example preprocess_timing
//!
//! Figures go to docs/benchmarks.md with the machine they were measured on.

mod common;

use std::io::Cursor;

use common::time_ms;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use memeguard_package::{ImageLimits, PackageSession, Preprocessor, SessionOptions, write_placeholder_package};

fn photo(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x % 251) as u8, (y % 241) as u8, ((x * 7 + y * 3) % 256) as u8])
    }))
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encoding an in-memory image");
    out.into_inner()
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pkg = write_placeholder_package(&dir.path().join("placeholder/0.0.0")).expect("the placeholder package");
    let pre = Preprocessor::for_package(&pkg);
    let limits = ImageLimits::default();
    let text = "when you finally understand the homework after the exam and nobody believes you";

    println!("| step | input | ms per item |");
    println!("| --- | --- | --- |");
    for (label, bytes) in [
        ("JPEG 4000x3000", encode(&photo(4000, 3000), ImageFormat::Jpeg)),
        ("JPEG 1200x1200", encode(&photo(1200, 1200), ImageFormat::Jpeg)),
        ("PNG 1080x1080", encode(&photo(1080, 1080), ImageFormat::Png)),
    ] {
        let ms = time_ms(10, || {
            pre.prepare_bytes(&bytes, text, &limits).expect("a valid image");
        });
        println!("| decode + letterbox 224 + tokenise | {label} | {ms:.1} |");
    }
    let tokenizer = &pkg.tokenizer;
    let ms = time_ms(1000, || {
        tokenizer.encode(text, 32);
    });
    println!("| tokenise only | 13 words, max_length 32 | {ms:.3} |");

    let item = pre.prepare_bytes(&encode(&photo(640, 480), ImageFormat::Png), text, &limits).expect("a valid image");
    let mut session =
        PackageSession::new(&pkg, &SessionOptions::default()).expect("ONNX Runtime (run `make onnxruntime`)");
    for batch in [1usize, 16] {
        let inputs = pre.collate(&vec![item.clone(); batch]);
        let ms = time_ms(50, || {
            session.score(&inputs).expect("scoring");
        }) / batch as f64;
        println!("| placeholder model, ONNX Runtime CPU | batch {batch} at 224x224 | {ms:.3} |");
    }
}
