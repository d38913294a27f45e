//! A valid package scores image+text pairs end to end: bytes -> shared preprocessing ->
//! ONNX Runtime session -> probabilities, checked against the ONNX reference evaluator.

mod common;

use image::{DynamicImage, ImageFormat as Codec, Rgb, RgbImage, Rgba, RgbaImage};
use memeguard_package::manifest::{ImageSpec, MODEL_FILE, ResizeRule};
use memeguard_package::{ImageLimits, ModelPackage, PackageSession, Preprocessor, ScoreError, SessionOptions, collate};

fn images() -> Vec<(&'static str, Vec<u8>)> {
    let a = RgbImage::from_fn(20, 12, |x, y| Rgb([(x * 12) as u8, (y * 20) as u8, 90]));
    let b = RgbaImage::from_fn(9, 15, |x, y| Rgba([200, (x * 25) as u8, (y * 15) as u8, if x < 3 { 0 } else { 255 }]));
    vec![
        ("png", common::encode(&DynamicImage::ImageRgb8(a.clone()), Codec::Png)),
        ("jpeg", common::encode(&DynamicImage::ImageRgb8(common::quadrants(16, 24)), Codec::Jpeg)),
        ("webp", common::lossless_webp(&b)),
        ("gif", common::two_frame_gif(&b, &DynamicImage::ImageRgb8(a).into_rgba8())),
    ]
}

#[test]
fn a_valid_package_scores_image_and_text_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("tiny/1.0.0");
    common::tiny_package(&dir, ResizeRule::Letterbox);
    let pkg = ModelPackage::open(&dir).unwrap();
    let pre = Preprocessor::for_package(&pkg);
    let mut session = PackageSession::new(&pkg, &SessionOptions::default()).unwrap();
    assert_eq!(session.id(), "tiny@1.0.0");

    let texts = ["when you see it", "this meme is fine", "", "SEE YOU LATER, ALLIGATOR"];
    let items: Vec<_> = images()
        .iter()
        .zip(texts)
        .map(|((_, bytes), text)| pre.prepare_bytes(bytes, text, &ImageLimits::default()).unwrap())
        .collect();
    let batch = pre.collate(&items);
    assert_eq!(batch.pixel_values.shape(), &[4, 8, 8, 3]);
    assert_eq!(batch.input_ids.shape(), &[4, 6]);
    let scores = session.score(&batch).unwrap();
    assert_eq!(scores.len(), 4);
    assert!(scores.iter().all(|p| *p > 0.0 && *p < 1.0), "{scores:?}");

    // One at a time gives the same as the batch.
    for (item, batched) in items.iter().zip(&scores) {
        let single = session.score(&collate(std::slice::from_ref(item), 8, 6)).unwrap();
        assert!((single[0] - batched).abs() < 1e-6, "{single:?} vs {batched}");
    }

    // Both modalities matter: change only the text, then only the image.
    let mut other_text = items[0].clone();
    other_text.ids = pre.prepare_bytes(&images()[0].1, "fine fine fine", &ImageLimits::default()).unwrap().ids;
    let mut other_image = items[0].clone();
    other_image.pixels = items[1].pixels.clone();
    let varied = session.score(&pre.collate(&[items[0].clone(), other_text, other_image])).unwrap();
    assert!((varied[0] - varied[1]).abs() > 1e-4, "text is ignored: {varied:?}");
    assert!((varied[0] - varied[2]).abs() > 1e-4, "image is ignored: {varied:?}");

    // The ONNX reference evaluator (Python onnx) computes the same probabilities.
    let reference = reference_probabilities(&dir.join(MODEL_FILE), &batch);
    for (got, want) in scores.iter().zip(&reference) {
        assert!((got - want).abs() < 1e-5, "ONNX Runtime {got} vs reference {want}");
    }

    assert!(session.score(&pre.collate(&[])).unwrap().is_empty());
    let wrong = collate(&[], 4, 6);
    assert!(matches!(session.score(&wrong), Err(ScoreError::BadInput(_))));
}

#[test]
fn preprocessing_follows_the_manifest() {
    let root = tempfile::tempdir().unwrap();
    let specs = [ResizeRule::Stretch, ResizeRule::ShorterSideCenterCrop, ResizeRule::Letterbox]
        .map(|rule| ImageSpec::new(common::SIZE, rule))
        .into_iter()
        .chain([ImageSpec::clip(common::SIZE)]);
    for spec in specs {
        let label = format!("{} {}", spec.resize, spec.filter);
        let dir = root.path().join(label.replace(' ', "-"));
        let pkg = common::tiny_package_with(&dir, spec);
        assert_eq!(pkg.manifest.image, spec);
        let pre = Preprocessor::for_package(&pkg);
        let (_, png) = &images()[0];
        let decoded = memeguard_package::decode_image(png, &ImageLimits::default()).unwrap();
        let item = pre.prepare(&decoded, "when you see it");
        let want = memeguard_package::resize_for_model(&decoded.image, 8, spec.resize, spec.filter);
        assert_eq!(item.pixels, want.into_raw(), "{label}");
        assert_eq!(item.ids, pkg.tokenizer.encode("when you see it", 6).ids);
        assert_eq!(item.mask, pkg.tokenizer.encode("when you see it", 6).mask);
    }
}

/// Runs the model with `onnx.reference.ReferenceEvaluator` on the same batch.
fn reference_probabilities(model: &std::path::Path, batch: &memeguard_package::ModelInputs) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.json");
    let json = serde_json::json!({
        "pixel_values": { "shape": batch.pixel_values.shape(), "data": batch.pixel_values.iter().collect::<Vec<_>>() },
        "input_ids": { "shape": batch.input_ids.shape(), "data": batch.input_ids.iter().collect::<Vec<_>>() },
        "attention_mask": { "shape": batch.attention_mask.shape(), "data": batch.attention_mask.iter().collect::<Vec<_>>() },
    });
    std::fs::write(&inputs, json.to_string()).unwrap();
    let script = r#"
import json, sys
import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
spec = json.load(open(sys.argv[2]))
types = {"pixel_values": np.uint8, "input_ids": np.int64, "attention_mask": np.int64}
feeds = {k: np.array(v["data"], dtype=types[k]).reshape(v["shape"]) for k, v in spec.items()}
(p,) = ReferenceEvaluator(onnx.load(sys.argv[1])).run(["probability"], feeds)
print(json.dumps([float(x) for x in p]))
"#;
    let out =
        memeguard_onnx::pycheck::run_python(script, &[&model.display().to_string(), &inputs.display().to_string()])
            .unwrap_or_else(|e| panic!("the ONNX reference evaluator failed: {e}"));
    serde_json::from_str(out.trim()).unwrap()
}
