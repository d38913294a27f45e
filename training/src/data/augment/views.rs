//! Sets of views per sample, with the recipes of the methods we train: DINO multi-crop,
//! CASS, CLIP, supervised finetuning and evaluation.

use memeguard_package::{ImageSpec, ResizeRule};
use serde::{Deserialize, Serialize};

use super::color::ColorJitter;
use super::geometry::{AffineParams, Interpolation};
use super::pipeline::{Op, ViewError, ViewPipeline};

/// The views made from each sample, in order (a batch holds one pixel tensor per view).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Views {
    pub views: Vec<ViewPipeline>,
}

/// DINO multi-crop settings (defaults are DINO's: 2 global crops of 224 at scale
/// 0.4–1, local crops of 96 at scale 0.05–0.4).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MultiCrop {
    pub global_size: u32,
    pub global_scale: [f32; 2],
    pub local_size: u32,
    pub local_scale: [f32; 2],
    pub local_crops: usize,
}

impl Default for MultiCrop {
    fn default() -> Self {
        MultiCrop {
            global_size: 224,
            global_scale: [0.4, 1.0],
            local_size: 96,
            local_scale: [0.05, 0.4],
            local_crops: 8,
        }
    }
}

const STANDARD_RATIO: [f32; 2] = [3.0 / 4.0, 4.0 / 3.0];

/// DINO's `flip_and_color_jitter`.
fn flip_and_color_jitter() -> Vec<Op> {
    vec![
        Op::HorizontalFlip { p: 0.5 },
        Op::RandomApply {
            p: 0.8,
            ops: vec![Op::ColorJitter(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 })],
        },
        Op::Grayscale { p: 0.2 },
    ]
}

fn dino_crop(size: u32, scale: [f32; 2]) -> Op {
    Op::RandomResizedCrop { size, scale, ratio: STANDARD_RATIO, interpolation: Interpolation::Bicubic }
}

fn blur(p: f32) -> Op {
    Op::GaussianBlur { p, sigma: [0.1, 2.0] }
}

impl Views {
    /// Checks every view.
    pub fn validate(&self) -> Result<(), ViewError> {
        self.views.iter().try_for_each(ViewPipeline::validate)
    }

    /// Output side of each view, in order.
    pub fn sizes(&self) -> Vec<u32> {
        self.views.iter().map(|v| v.size).collect()
    }

    /// DINO's `DataAugmentationDINO`: global crop 1 always blurred; global crop 2 blurred
    /// with p = 0.1 and solarised with p = 0.2; local crops blurred with p = 0.5.
    pub fn dino(mc: MultiCrop) -> Views {
        let global = |name: &str, extra: Vec<Op>| {
            let mut ops = vec![dino_crop(mc.global_size, mc.global_scale)];
            ops.extend(flip_and_color_jitter());
            ops.extend(extra);
            ViewPipeline { name: name.into(), size: mc.global_size, ops }
        };
        let mut views = vec![
            global("global1", vec![blur(1.0)]),
            global("global2", vec![blur(0.1), Op::Solarize { p: 0.2, threshold: 128 }]),
        ];
        for i in 0..mc.local_crops {
            let mut ops = vec![dino_crop(mc.local_size, mc.local_scale)];
            ops.extend(flip_and_color_jitter());
            ops.push(blur(0.5));
            views.push(ViewPipeline { name: format!("local{}", i + 1), size: mc.local_size, ops });
        }
        Views { views }
    }

    /// The CASS reference's training transform (one view; CASS feeds the same augmented
    /// image to its CNN and its ViT): resize to `size`, with p = 0.3 colour jitter 0.2 and
    /// perspective 0.2 (itself p = 0.5), with p = 0.3 a rotation of up to 10°, vertical
    /// and horizontal flips with p = 0.3.
    pub fn cass(size: u32) -> Views {
        let ops = vec![
            Op::Resize { size, interpolation: Interpolation::Bilinear },
            Op::RandomApply {
                p: 0.3,
                ops: vec![
                    Op::ColorJitter(ColorJitter { brightness: 0.2, contrast: 0.2, saturation: 0.2, hue: 0.0 }),
                    Op::Perspective { p: 0.5, distortion: 0.2, interpolation: Interpolation::Bilinear },
                ],
            },
            Op::RandomApply {
                p: 0.3,
                ops: vec![Op::Affine(AffineParams {
                    degrees: 10.0,
                    translate: [0.0, 0.0],
                    scale: [1.0, 1.0],
                    shear: 0.0,
                    interpolation: Interpolation::Nearest,
                })],
            },
            Op::VerticalFlip { p: 0.3 },
            Op::HorizontalFlip { p: 0.3 },
        ];
        Views { views: vec![ViewPipeline { name: "cass".into(), size, ops }] }
    }

    /// CLIP-style training view (open_clip): a mild random resized crop, bicubic.
    pub fn clip(size: u32) -> Views {
        let op = Op::RandomResizedCrop {
            size,
            scale: [0.9, 1.0],
            ratio: STANDARD_RATIO,
            interpolation: Interpolation::Bicubic,
        };
        Views { views: vec![ViewPipeline { name: "clip".into(), size, ops: vec![op] }] }
    }

    /// Supervised finetuning: random resized crop (scale 0.5–1) and horizontal flip.
    pub fn finetune(size: u32) -> Views {
        let ops = vec![
            Op::RandomResizedCrop {
                size,
                scale: [0.5, 1.0],
                ratio: STANDARD_RATIO,
                interpolation: Interpolation::Bilinear,
            },
            Op::HorizontalFlip { p: 0.5 },
        ];
        Views { views: vec![ViewPipeline { name: "finetune".into(), size, ops }] }
    }

    /// No augmentation: `rule` with the bilinear filter (a version 1 package's resize).
    pub fn eval(size: u32, rule: ResizeRule) -> Views {
        Views::package(&ImageSpec::new(size, rule))
    }

    /// No augmentation: the package's resize (size, rule and filter), exactly what the
    /// server does.
    pub fn package(image: &ImageSpec) -> Views {
        let ops = vec![Op::Model { size: image.size, rule: image.resize, filter: image.filter }];
        Views { views: vec![ViewPipeline { name: "eval".into(), size: image.size, ops }] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_dino_has_two_global_and_n_local_views() {
        let dino = Views::dino(MultiCrop { local_crops: 6, ..MultiCrop::default() });
        assert_eq!(dino.sizes(), vec![224, 224, 96, 96, 96, 96, 96, 96]);
        for views in
            [dino, Views::cass(384), Views::clip(224), Views::finetune(224), Views::eval(64, ResizeRule::Letterbox)]
        {
            views.validate().unwrap();
        }
    }

    #[test]
    fn views_round_trip_through_json_and_bad_views_are_refused() {
        let views = Views::cass(384);
        let json = serde_json::to_string(&views).unwrap();
        assert_eq!(serde_json::from_str::<Views>(&json).unwrap(), views);
        let no_size = ViewPipeline { name: "x".into(), size: 32, ops: vec![Op::HorizontalFlip { p: 0.5 }] };
        assert_eq!(no_size.validate(), Err(ViewError::NoSize("x".into())));
        let wrong = ViewPipeline {
            name: "y".into(),
            size: 32,
            ops: vec![Op::Resize { size: 16, interpolation: Interpolation::Bilinear }],
        };
        assert!(matches!(wrong.validate(), Err(ViewError::SizeMismatch { want: 32, got: 16, .. })));
    }

    #[test]
    fn package_views_carry_the_filter_and_old_recipes_mean_bilinear() {
        let clip = Views::package(&ImageSpec::clip(224));
        assert_eq!(
            clip.views[0].ops,
            [Op::Model {
                size: 224,
                rule: ResizeRule::ScaleShorterSideThenCenterCrop,
                filter: memeguard_package::ResizeFilter::Bicubic
            }]
        );
        let old: Op = serde_json::from_str(r#"{"op": "model", "size": 64, "rule": "letterbox"}"#).unwrap();
        assert_eq!(Views::eval(64, ResizeRule::Letterbox).views[0].ops, [old]);
    }
}
