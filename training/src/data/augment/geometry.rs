//! Geometric augmentations: resize, crops, flips, affine and perspective warps.
//! Sampling follows torchvision's definitions so recipes carry over.

use std::cell::RefCell;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{Rgb, RgbImage};
use imageproc::geometric_transformations::{Interpolation as WarpInterpolation, Projection, warp};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::data::seed::DataRng;

/// Resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    Nearest,
    #[default]
    Bilinear,
    /// Catmull-Rom (a = −0.5), Pillow's and torchvision's "bicubic".
    Bicubic,
}

impl Interpolation {
    fn resize_alg(self) -> ResizeAlg {
        match self {
            Interpolation::Nearest => ResizeAlg::Nearest,
            Interpolation::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
            Interpolation::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
        }
    }

    fn warp(self) -> WarpInterpolation {
        match self {
            Interpolation::Nearest => WarpInterpolation::Nearest,
            Interpolation::Bilinear => WarpInterpolation::Bilinear,
            Interpolation::Bicubic => WarpInterpolation::Bicubic,
        }
    }
}

/// A crop rectangle in source pixels (fractional edges allowed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropBox {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

thread_local! {
    // The resizer keeps scratch buffers; one per thread avoids reallocating per image.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Resizes the `crop` region of `img` to `width`×`height` (antialiased when shrinking,
/// like Pillow) with SIMD resampling from `fast_image_resize`.
pub fn resize_crop(img: &RgbImage, crop: CropBox, width: u32, height: u32, interpolation: Interpolation) -> RgbImage {
    let mut dst = RgbImage::new(width.max(1), height.max(1));
    let options =
        ResizeOptions::new().resize_alg(interpolation.resize_alg()).crop(crop.left, crop.top, crop.width, crop.height);
    RESIZER.with(|r| {
        r.borrow_mut().resize(img, &mut dst, &options).expect("RGB8 source and destination of the same pixel type")
    });
    dst
}

/// Resizes the whole image to `width`×`height` (aspect ratio not kept).
pub fn resize(img: &RgbImage, width: u32, height: u32, interpolation: Interpolation) -> RgbImage {
    let (w, h) = img.dimensions();
    resize_crop(img, CropBox { left: 0.0, top: 0.0, width: w as f64, height: h as f64 }, width, height, interpolation)
}

/// torchvision's `RandomResizedCrop.get_params`: a box covering `scale` of the area with
/// aspect ratio in `ratio` (log-uniform), ten tries, then a centre crop as fallback.
pub fn sample_resized_crop(width: u32, height: u32, scale: [f32; 2], ratio: [f32; 2], rng: &mut DataRng) -> CropBox {
    let (w, h) = (width as f64, height as f64);
    let area = w * h;
    let (log_lo, log_hi) = ((ratio[0] as f64).ln(), (ratio[1] as f64).ln());
    for _ in 0..10 {
        let target = area * uniform(rng, scale[0] as f64, scale[1] as f64);
        let aspect = uniform(rng, log_lo, log_hi).exp();
        let cw = (target * aspect).sqrt().round();
        let ch = (target / aspect).sqrt().round();
        if cw > 0.0 && cw <= w && ch > 0.0 && ch <= h {
            let top = rng.random_range(0..=(h - ch) as u32) as f64;
            let left = rng.random_range(0..=(w - cw) as u32) as f64;
            return CropBox { left, top, width: cw, height: ch };
        }
    }
    let in_ratio = w / h;
    let (lo, hi) = (ratio[0].min(ratio[1]) as f64, ratio[0].max(ratio[1]) as f64);
    let (cw, ch) = if in_ratio < lo {
        (w, (w / lo).round())
    } else if in_ratio > hi {
        ((h * hi).round(), h)
    } else {
        (w, h)
    };
    CropBox { left: ((w - cw) / 2.0).floor(), top: ((h - ch) / 2.0).floor(), width: cw, height: ch }
}

/// Uniform in [lo, hi] (lo when the range is empty).
pub(super) fn uniform(rng: &mut DataRng, lo: f64, hi: f64) -> f64 {
    if hi > lo { rng.random_range(lo..hi) } else { lo }
}

/// Mirrors left-right in place.
pub fn flip_horizontal(img: &mut RgbImage) {
    image::imageops::flip_horizontal_in_place(img);
}

/// Mirrors top-bottom in place.
pub fn flip_vertical(img: &mut RgbImage) {
    image::imageops::flip_vertical_in_place(img);
}

/// Parameters of torchvision's `RandomAffine` (angles in degrees, translate as a fraction
/// of the size, scale as a factor range, shear in degrees along x).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AffineParams {
    pub degrees: f32,
    #[serde(default)]
    pub translate: [f32; 2],
    #[serde(default = "unit_scale")]
    pub scale: [f32; 2],
    #[serde(default)]
    pub shear: f32,
    #[serde(default = "nearest")]
    pub interpolation: Interpolation,
}

fn unit_scale() -> [f32; 2] {
    [1.0, 1.0]
}

fn nearest() -> Interpolation {
    Interpolation::Nearest
}

/// A random affine warp about the image centre; uncovered pixels are black (torchvision's fill 0).
pub fn random_affine(img: &RgbImage, params: &AffineParams, rng: &mut DataRng) -> RgbImage {
    let (w, h) = img.dimensions();
    let angle = uniform(rng, -params.degrees as f64, params.degrees as f64) as f32;
    let max_dx = params.translate[0] * w as f32;
    let max_dy = params.translate[1] * h as f32;
    let tx = uniform(rng, -max_dx as f64, max_dx as f64).round() as f32;
    let ty = uniform(rng, -max_dy as f64, max_dy as f64).round() as f32;
    let scale = uniform(rng, params.scale[0] as f64, params.scale[1] as f64) as f32;
    let shear = uniform(rng, -params.shear as f64, params.shear as f64) as f32;
    let (cx, cy) = (w as f32 * 0.5, h as f32 * 0.5);
    // Input → output: move the centre to the origin, shear, rotate, scale, move back and translate.
    let rad = angle.to_radians();
    let shear_x = shear.to_radians().tan();
    let (c, s) = (rad.cos() * scale, rad.sin() * scale);
    let matrix = [c, c * shear_x - s, 0.0, s, s * shear_x + c, 0.0, 0.0, 0.0, 1.0];
    let linear = Projection::from_matrix(matrix).unwrap_or_else(|| Projection::scale(1.0, 1.0));
    let projection = Projection::translate(-cx, -cy).and_then(linear).and_then(Projection::translate(cx + tx, cy + ty));
    warp(
        img,
        projection,
        params.interpolation.warp(),
        imageproc::geometric_transformations::Border::Constant(Rgb([0, 0, 0])),
    )
}

/// torchvision's `RandomPerspective`: each corner moves inwards by up to
/// `distortion × half the size`; uncovered pixels are black.
pub fn random_perspective(
    img: &RgbImage,
    distortion: f32,
    interpolation: Interpolation,
    rng: &mut DataRng,
) -> RgbImage {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let dx = (distortion as f64 * (w / 2) as f64) as i64;
    let dy = (distortion as f64 * (h / 2) as f64) as i64;
    let mut pick = |lo: i64, hi: i64| rng.random_range(lo..hi.max(lo + 1)) as f32;
    let top_left = (pick(0, dx + 1), pick(0, dy + 1));
    let top_right = (pick(w - dx - 1, w), pick(0, dy + 1));
    let bottom_right = (pick(w - dx - 1, w), pick(h - dy - 1, h));
    let bottom_left = (pick(0, dx + 1), pick(h - dy - 1, h));
    let (wf, hf) = ((w - 1) as f32, (h - 1) as f32);
    let start = [(0.0, 0.0), (wf, 0.0), (wf, hf), (0.0, hf)];
    let end = [top_left, top_right, bottom_right, bottom_left];
    match Projection::from_control_points(start, end) {
        Some(projection) => warp(
            img,
            projection,
            interpolation.warp(),
            imageproc::geometric_transformations::Border::Constant(Rgb([0, 0, 0])),
        ),
        // Only degenerate corner sets have no projection; leave the image as it is.
        None => img.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::seed::{Stream, rng_for};

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([(x * 255 / w.max(2)) as u8, (y * 255 / h.max(2)) as u8, 128]))
    }

    #[test]
    fn crop_box_respects_scale_and_ratio() {
        let mut rng = rng_for(1, Stream::Augment, &[]);
        for _ in 0..200 {
            let b = sample_resized_crop(200, 100, [0.08, 1.0], [0.75, 1.333], &mut rng);
            assert!(b.left >= 0.0 && b.top >= 0.0 && b.left + b.width <= 200.0 && b.top + b.height <= 100.0);
            let area = b.width * b.height / 20000.0;
            let ratio = b.width / b.height;
            // Rounding of the sides moves area and ratio slightly; the fallback is a full-height crop.
            let fallback = b.height == 100.0;
            assert!(fallback || (0.07..=1.01).contains(&area), "area {area}");
            assert!(fallback || (0.70..=1.40).contains(&ratio), "ratio {ratio}");
        }
    }

    #[test]
    fn impossible_ratio_falls_back_to_centre_crop() {
        let mut rng = rng_for(1, Stream::Augment, &[]);
        let b = sample_resized_crop(400, 100, [0.99, 1.0], [1.0, 1.0], &mut rng);
        assert_eq!(b, CropBox { left: 150.0, top: 0.0, width: 100.0, height: 100.0 });
    }

    #[test]
    fn resize_keeps_a_flat_colour_and_sets_the_size() {
        let img = RgbImage::from_pixel(37, 23, Rgb([10, 200, 30]));
        for interp in [Interpolation::Nearest, Interpolation::Bilinear, Interpolation::Bicubic] {
            let out = resize(&img, 16, 9, interp);
            assert_eq!(out.dimensions(), (16, 9));
            assert!(out.pixels().all(|p| p.0 == [10, 200, 30]), "{interp:?}");
        }
    }

    #[test]
    fn crop_resize_matches_nearest_crop_at_identity_scale() {
        let img = gradient(64, 64);
        let out = resize_crop(
            &img,
            CropBox { left: 8.0, top: 4.0, width: 16.0, height: 16.0 },
            16,
            16,
            Interpolation::Bilinear,
        );
        for (x, y, p) in out.enumerate_pixels() {
            assert_eq!(p, img.get_pixel(x + 8, y + 4));
        }
    }

    #[test]
    fn zero_affine_is_identity_and_rotation_moves_pixels() {
        let img = gradient(32, 32);
        let mut rng = rng_for(2, Stream::Augment, &[]);
        let none = AffineParams {
            degrees: 0.0,
            translate: [0.0; 2],
            scale: [1.0; 2],
            shear: 0.0,
            interpolation: Interpolation::Nearest,
        };
        assert_eq!(random_affine(&img, &none, &mut rng), img);
        let rotate = AffineParams { degrees: 30.0, ..none };
        assert_ne!(random_affine(&img, &rotate, &mut rng), img);
    }

    #[test]
    fn perspective_keeps_size_and_zero_distortion_changes_little() {
        let img = gradient(40, 30);
        let mut rng = rng_for(3, Stream::Augment, &[]);
        let out = random_perspective(&img, 0.0, Interpolation::Bilinear, &mut rng);
        assert_eq!(out.dimensions(), (40, 30));
        let centre = (out.get_pixel(20, 15).0[0] as i32 - img.get_pixel(20, 15).0[0] as i32).abs();
        assert!(centre <= 8, "centre moved by {centre}");
        let strong = random_perspective(&img, 0.8, Interpolation::Bilinear, &mut rng);
        assert_ne!(strong, img);
    }
}
