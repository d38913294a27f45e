//! The in-graph normalisation uses the package's statistics: `(x / 255 − mean) / std`
//! per RGB channel, NHWC bytes in, NCHW floats out, checked on every byte value.

mod models_support;

use memeguard_onnx::{DataType, Dim, check_model, dims};
use memeguard_package::ImageSpec;
use memeguard_package::manifest::{CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD};
use memeguard_training::graph_spec::Mode;
use memeguard_training::models::input::{BATCH, PIXEL_VALUES, image_input_for, normalise_pixels};
use memeguard_training::models::*;
use models_support::{init_ort, run};

/// 1×16×16×3 bytes: pixel `i` holds `i` in every channel, so all 256 values appear.
fn every_byte() -> ort::value::DynValue {
    init_ort();
    let data: Vec<u8> = (0..=255u8).flat_map(|v| [v, v, v]).collect();
    ort::value::Tensor::from_array((vec![1i64, 16, 16, 3], data)).unwrap().into_dyn()
}

fn assert_normalised(out: &[f32], mean: [f32; 3], std: [f32; 3]) {
    for c in 0..3 {
        for v in 0..256 {
            let want = (v as f32 / 255.0 - mean[c]) / std[c];
            let got = out[c * 256 + v];
            assert!((got - want).abs() < 1e-5, "channel {c}, byte {v}: {got} vs {want}");
        }
    }
}

#[test]
fn the_spec_statistics_are_applied_per_channel() {
    for spec in [ImageSpec::clip(16), ImageSpec::new(16, memeguard_package::ResizeRule::Letterbox)] {
        let mut net = Net::new("input", Mode::Infer, 1);
        let x = image_input_for(&mut net, &spec);
        let graph = net.finish(&[GraphOutput::f32(&x, "normalised", dims![BATCH, 3, 16, 16])]);
        check_model(&graph.model, true).unwrap();
        let out = run(&graph.model, vec![(PIXEL_VALUES, every_byte())]);
        assert_normalised(&out["normalised"].1, spec.mean, spec.std);
    }
    assert_eq!((ImageSpec::clip(16).mean, ImageSpec::clip(16).std), (CLIP_MEAN, CLIP_STD));
}

#[test]
fn the_default_is_imagenet() {
    let mut net = Net::new("input", Mode::Infer, 1);
    let pixels = net.b.input(PIXEL_VALUES, DataType::Uint8, &[Dim::from(BATCH), 16.into(), 16.into(), 3.into()]);
    let x = normalise_pixels(&mut net, &pixels);
    let graph = net.finish(&[GraphOutput::f32(&x, "normalised", dims![BATCH, 3, 16, 16])]);
    let out = run(&graph.model, vec![(PIXEL_VALUES, every_byte())]);
    assert_normalised(&out["normalised"].1, IMAGENET_MEAN, IMAGENET_STD);
}
