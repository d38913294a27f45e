//! A view pipeline: a list of augmentation steps that turns a decoded image into one
//! square view of a fixed size. Steps are plain data (serde), so recipes can list them.

use image::RgbImage;
use memeguard_package::{ResizeFilter, ResizeRule, resize_for_model};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::color::{ColorJitter, grayscale, solarize};
use super::geometry::{
    AffineParams, CropBox, Interpolation, flip_horizontal, flip_vertical, random_affine, random_perspective, resize,
    resize_crop, sample_resized_crop, uniform,
};
use crate::data::seed::DataRng;

/// One augmentation step. Probabilities `p` are per image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Resize to `size`×`size`, aspect ratio not kept (torchvision `Resize((s, s))`).
    Resize {
        size: u32,
        interpolation: Interpolation,
    },
    /// The serving resize (`memeguard_package::resize_for_model` with the package's rule
    /// and filter): evaluation views use it so a model sees the same pixels in training
    /// and serving. `filter` defaults to bilinear (what recipes written before it meant).
    Model {
        size: u32,
        rule: ResizeRule,
        #[serde(default)]
        filter: ResizeFilter,
    },
    /// Resize so the shorter side is `size`, then take the centre `size`×`size` square.
    ResizeCenterCrop {
        size: u32,
        interpolation: Interpolation,
    },
    /// torchvision `RandomResizedCrop(size, scale, ratio)`.
    RandomResizedCrop {
        size: u32,
        scale: [f32; 2],
        ratio: [f32; 2],
        interpolation: Interpolation,
    },
    HorizontalFlip {
        p: f32,
    },
    VerticalFlip {
        p: f32,
    },
    ColorJitter(ColorJitter),
    /// torchvision `RandomGrayscale(p)` (three equal channels).
    Grayscale {
        p: f32,
    },
    /// Gaussian blur with standard deviation drawn uniformly from `sigma` (DINO's
    /// `GaussianBlur(p, radius_min, radius_max)`; Pillow's radius is the deviation).
    GaussianBlur {
        p: f32,
        sigma: [f32; 2],
    },
    /// Pillow `ImageOps.solarize(threshold)`.
    Solarize {
        p: f32,
        threshold: u8,
    },
    /// torchvision `RandomAffine`.
    Affine(AffineParams),
    /// torchvision `RandomPerspective(distortion_scale, p)`.
    Perspective {
        p: f32,
        distortion: f32,
        interpolation: Interpolation,
    },
    /// torchvision `RandomApply(ops, p)`: all of `ops` with probability `p`, else none.
    RandomApply {
        p: f32,
        ops: Vec<Op>,
    },
}

impl Op {
    /// The side this step sets, if it sets one.
    fn output_size(&self) -> Option<u32> {
        match self {
            Op::Resize { size, .. }
            | Op::Model { size, .. }
            | Op::ResizeCenterCrop { size, .. }
            | Op::RandomResizedCrop { size, .. } => Some(*size),
            _ => None,
        }
    }

    /// For the steps that set the size: the resampled image, read from a borrowed source
    /// (no copy of the possibly large decoded image). `None` for every other step.
    fn resample(&self, img: &RgbImage, rng: &mut DataRng) -> Option<RgbImage> {
        match self {
            Op::Resize { size, interpolation } => Some(resize(img, *size, *size, *interpolation)),
            Op::Model { size, rule, filter } => Some(resize_for_model(img, *size, *rule, *filter)),
            Op::ResizeCenterCrop { size, interpolation } => {
                let (w, h) = img.dimensions();
                let side = w.min(h) as f64;
                let crop = CropBox {
                    left: ((w as f64 - side) / 2.0).floor(),
                    top: ((h as f64 - side) / 2.0).floor(),
                    width: side,
                    height: side,
                };
                Some(resize_crop(img, crop, *size, *size, *interpolation))
            }
            Op::RandomResizedCrop { size, scale, ratio, interpolation } => {
                let crop = sample_resized_crop(img.width(), img.height(), *scale, *ratio, rng);
                Some(resize_crop(img, crop, *size, *size, *interpolation))
            }
            _ => None,
        }
    }

    /// Applies this step, drawing its randomness from `rng`.
    pub fn apply(&self, img: RgbImage, rng: &mut DataRng) -> RgbImage {
        let mut img = img;
        match self {
            Op::Resize { .. } | Op::Model { .. } | Op::ResizeCenterCrop { .. } | Op::RandomResizedCrop { .. } => {
                return self.resample(&img, rng).expect("sizing steps resample");
            }
            Op::HorizontalFlip { p } => {
                if chance(rng, *p) {
                    flip_horizontal(&mut img);
                }
            }
            Op::VerticalFlip { p } => {
                if chance(rng, *p) {
                    flip_vertical(&mut img);
                }
            }
            Op::ColorJitter(jitter) => jitter.apply(&mut img, rng),
            Op::Grayscale { p } => {
                if chance(rng, *p) {
                    grayscale(&mut img);
                }
            }
            Op::GaussianBlur { p, sigma } => {
                if chance(rng, *p) {
                    let s = uniform(rng, sigma[0] as f64, sigma[1] as f64) as f32;
                    if s > 0.0 {
                        return imageproc::filter::gaussian_blur_f32(&img, s);
                    }
                }
            }
            Op::Solarize { p, threshold } => {
                if chance(rng, *p) {
                    solarize(&mut img, *threshold);
                }
            }
            Op::Affine(params) => return random_affine(&img, params, rng),
            Op::Perspective { p, distortion, interpolation } => {
                if chance(rng, *p) {
                    return random_perspective(&img, *distortion, *interpolation, rng);
                }
            }
            Op::RandomApply { p, ops } => {
                if chance(rng, *p) {
                    for op in ops {
                        img = op.apply(img, rng);
                    }
                }
            }
        }
        img
    }
}

/// True with probability `p`. Always draws, so later steps see the same stream whatever `p` is.
fn chance(rng: &mut DataRng, p: f32) -> bool {
    rng.random::<f32>() < p
}

/// Errors in a view definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("view `{0}`: no step sets the size (add resize, model, resize_center_crop or random_resized_crop)")]
    NoSize(String),
    #[error("view `{name}`: a step sets the size to {got} but the view is {want}")]
    SizeMismatch { name: String, want: u32, got: u32 },
    #[error("view `{name}`: the size must be positive, got {size}")]
    ZeroSize { name: String, size: u32 },
    #[error("view `{name}`: a step sets the size inside random_apply, so the output size would vary")]
    ConditionalSize { name: String },
}

/// One view: a name, an output side, and the steps that produce it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewPipeline {
    pub name: String,
    /// Side of the square output in pixels.
    pub size: u32,
    pub ops: Vec<Op>,
}

impl ViewPipeline {
    /// Checks that the steps always produce a `size`×`size` image.
    pub fn validate(&self) -> Result<(), ViewError> {
        let name = self.name.clone();
        if self.size == 0 {
            return Err(ViewError::ZeroSize { name, size: self.size });
        }
        let mut last = None;
        for op in &self.ops {
            if let Op::RandomApply { ops, .. } = op
                && ops.iter().any(|o| o.output_size().is_some())
            {
                return Err(ViewError::ConditionalSize { name });
            }
            if let Some(size) = op.output_size() {
                if size == 0 {
                    return Err(ViewError::ZeroSize { name, size });
                }
                last = Some(size);
            }
        }
        match last {
            None => Err(ViewError::NoSize(name)),
            Some(got) if got != self.size => Err(ViewError::SizeMismatch { name, want: self.size, got }),
            Some(_) => Ok(()),
        }
    }

    /// Runs the steps on `img`. The source is only read when the first step resamples
    /// (the usual case); otherwise the steps work on a copy.
    pub fn apply(&self, img: &RgbImage, rng: &mut DataRng) -> RgbImage {
        let mut ops = self.ops.iter();
        let mut out = match ops.next() {
            Some(op) => op.resample(img, rng).unwrap_or_else(|| op.apply(img.clone(), rng)),
            None => img.clone(),
        };
        for op in ops {
            out = op.apply(out, rng);
        }
        debug_assert_eq!(out.dimensions(), (self.size, self.size), "validated views keep their size");
        out
    }
}
