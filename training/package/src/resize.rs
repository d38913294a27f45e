//! Bringing an RGB image to the model's square input by a [`ResizeRule`] and a
//! [`ResizeFilter`].
//!
//! Resampling is `fast_image_resize`'s separable convolution (SIMD, fixed-point on
//! bytes), the same construction as Pillow's: the kernel widens by the scale factor when
//! shrinking, weights are normalised per output pixel, and one pass per axis with an
//! 8-bit intermediate image between them. Bilinear is its `Bilinear` (triangle) kernel
//! and bicubic its `CatmullRom` kernel, the cubic with a = −0.5 that Pillow's `BICUBIC`
//! uses, so a model pretrained on Pillow-resized pixels (CLIP) sees the pixels it was
//! trained on.
//!
//! The order of the two passes changes the rounding of the intermediate image (up to
//! ~12 levels at sharp edges with bicubic), so it follows Pillow's: horizontal first,
//! except when the height shrinks by more pixels than the width (recent Pillow runs the
//! vertical pass first then). That rule is read off transformers' reference outputs
//! (`tests/hf_preprocessing.rs`: a portrait matches only vertical-first, landscape,
//! square and an enlarged banner only horizontal-first), not from Pillow's source.

use std::cell::RefCell;

use ::image::imageops;
use ::image::{Rgb, RgbImage};
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};

use crate::manifest::{ResizeFilter, ResizeRule};

/// Colour of the letterbox padding: white, like the page a transparent meme sits on.
pub const LETTERBOX_FILL: Rgb<u8> = Rgb([255, 255, 255]);

thread_local! {
    // The resizer keeps scratch buffers; one per thread avoids reallocating per image.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// `img` as a `size`×`size` square by `rule` (see [`ResizeRule`] for each rule),
/// resampled with `filter`. Training (the data loader's evaluation views) and serving
/// ([`crate::Preprocessor`]) both call this.
pub fn resize_for_model(img: &RgbImage, size: u32, rule: ResizeRule, filter: ResizeFilter) -> RgbImage {
    let (w, h) = img.dimensions();
    if size == 0 || w == 0 || h == 0 {
        return RgbImage::from_pixel(size, size, LETTERBOX_FILL);
    }
    match rule {
        ResizeRule::Stretch => resample(img, Window::whole(img), (size, size), (size, size), filter),
        ResizeRule::ShorterSideCenterCrop => {
            // Cropped first, so the filter never reads past the square (the rule's definition).
            let side = w.min(h);
            let crop = imageops::crop_imm(img, (w - side) / 2, (h - side) / 2, side, side).to_image();
            resample(&crop, Window::whole(&crop), (size, size), (size, size), filter)
        }
        ResizeRule::Letterbox => {
            let (nw, nh) = letterbox_dims(w, h, size);
            let scaled = resample(img, Window::whole(img), (nw, nh), (nw, nh), filter);
            let mut canvas = RgbImage::from_pixel(size, size, LETTERBOX_FILL);
            imageops::replace(&mut canvas, &scaled, i64::from((size - nw) / 2), i64::from((size - nh) / 2));
            canvas
        }
        ResizeRule::ScaleShorterSideThenCenterCrop => {
            // Only the kept square is computed: the window of the source that maps onto it,
            // with the filter still reading source pixels outside the window, as if the
            // whole image were scaled and then cropped (up to ±1 level of rounding, rarely).
            let (nw, nh) = shorter_side_dims(w, h, size);
            let (left, top) = ((nw - size) / 2, (nh - size) / 2);
            let (sx, sy) = (f64::from(w) / f64::from(nw), f64::from(h) / f64::from(nh));
            let (x0, y0) = (f64::from(left) * sx, f64::from(top) * sy);
            // `min` keeps rounding from pushing the window past the edge.
            let window = Window {
                left: x0,
                top: y0,
                width: (f64::from(size) * sx).min(f64::from(w) - x0),
                height: (f64::from(size) * sy).min(f64::from(h) - y0),
            };
            resample(img, window, (nw, nh), (size, size), filter)
        }
    }
}

/// Size of the scaled picture inside the letterbox: longer side = `size`, the other
/// rounded, at least one pixel.
pub fn letterbox_dims(w: u32, h: u32, size: u32) -> (u32, u32) {
    let scale = f64::from(size) / f64::from(w.max(h));
    let fit = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, size);
    (fit(w), fit(h))
}

/// Size after scaling the shorter side to `size`, as transformers'
/// `get_resize_output_image_size(default_to_square=False)` computes it: the shorter side
/// becomes `size`, the longer `int(size · long / short)` (truncated, never below `size`).
pub fn shorter_side_dims(w: u32, h: u32, size: u32) -> (u32, u32) {
    let (short, long) = (w.min(h), w.max(h));
    if short == size {
        return (w, h);
    }
    let scaled_long = ((u64::from(size) * u64::from(long) / u64::from(short)) as u32).max(size);
    if w <= h { (size, scaled_long) } else { (scaled_long, size) }
}

/// A rectangle of the source in pixels (fractional edges allowed).
#[derive(Debug, Clone, Copy)]
struct Window {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
}

impl Window {
    fn whole(img: &RgbImage) -> Window {
        Window { left: 0.0, top: 0.0, width: f64::from(img.width()), height: f64::from(img.height()) }
    }
}

/// `window` of `img` resampled to `out`, one pass per axis in Pillow's order for
/// scaling the whole of `img` to `scaled` (the window is part of that scaled image).
fn resample(img: &RgbImage, window: Window, scaled: (u32, u32), out: (u32, u32), filter: ResizeFilter) -> RgbImage {
    let algorithm = ResizeAlg::Convolution(match filter {
        ResizeFilter::Bilinear => FilterType::Bilinear,
        ResizeFilter::Bicubic => FilterType::CatmullRom,
    });
    let (src_w, src_h) = img.dimensions();
    let (w, h) = out;
    let needs_horizontal = f64::from(w) != window.width || window.left.fract() != 0.0;
    let needs_vertical = f64::from(h) != window.height || window.top.fract() != 0.0;
    RESIZER.with(|resizer| {
        let mut resizer = resizer.borrow_mut();
        let mut run = |src: &RgbImage, dst: &mut RgbImage, window: Window| {
            let options =
                ResizeOptions::new().resize_alg(algorithm).crop(window.left, window.top, window.width, window.height);
            resizer.resize(src, dst, &options).expect("RGB8 source and destination of the same pixel type");
        };
        match (needs_horizontal, needs_vertical) {
            (true, true) if vertical_first((src_w, src_h), scaled) => {
                let mut columns = RgbImage::new(src_w, h);
                run(img, &mut columns, Window { left: 0.0, width: f64::from(src_w), ..window });
                let mut out = RgbImage::new(w, h);
                run(&columns, &mut out, Window { top: 0.0, height: f64::from(h), ..window });
                out
            }
            (true, true) => {
                let mut rows = RgbImage::new(w, src_h);
                run(img, &mut rows, Window { top: 0.0, height: f64::from(src_h), ..window });
                let mut out = RgbImage::new(w, h);
                run(&rows, &mut out, Window { left: 0.0, width: f64::from(w), ..window });
                out
            }
            (false, false) if (src_w, src_h) == (w, h) => img.clone(),
            _ => {
                let mut out = RgbImage::new(w, h);
                run(img, &mut out, window);
                out
            }
        }
    })
}

/// Pillow's pass order for scaling `from` to `to`: vertical first when the height
/// shrinks, and by more pixels than the width does (see the module docs).
fn vertical_first(from: (u32, u32), to: (u32, u32)) -> bool {
    let shrink = |a: u32, b: u32| i64::from(a) - i64::from(b);
    to.1 < from.1 && shrink(from.1, to.1) > shrink(from.0, to.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_dims_keep_aspect() {
        assert_eq!(letterbox_dims(400, 200, 100), (100, 50));
        assert_eq!(letterbox_dims(3, 1000, 10), (1, 10));
        assert_eq!(letterbox_dims(7, 7, 4), (4, 4));
    }

    #[test]
    fn shorter_side_dims_truncate_like_transformers() {
        // int(32 · 80 / 45) = int(56.89) = 56; int(32 · 90 / 36) = 80; int(32 · 240 / 30) = 256.
        assert_eq!(shorter_side_dims(80, 45, 32), (56, 32));
        assert_eq!(shorter_side_dims(36, 90, 32), (32, 80));
        assert_eq!(shorter_side_dims(240, 30, 32), (256, 32));
        assert_eq!(shorter_side_dims(48, 48, 32), (32, 32));
        assert_eq!(shorter_side_dims(32, 500, 32), (32, 500), "shorter side already right: unchanged");
        assert_eq!(shorter_side_dims(10, 20, 32), (32, 64), "enlarging");
    }

    #[test]
    fn pass_order_follows_pillow() {
        assert!(vertical_first((36, 90), (32, 80)), "portrait shrinking: height loses 10 px, width 4");
        assert!(!vertical_first((80, 45), (56, 32)), "landscape shrinking");
        assert!(!vertical_first((48, 48), (32, 32)), "square: a tie stays horizontal first");
        assert!(!vertical_first((30, 240), (32, 256)), "enlarging");
    }

    #[test]
    fn every_rule_gives_the_requested_square() {
        let img = RgbImage::from_fn(9, 4, |x, y| Rgb([x as u8 * 20, y as u8 * 50, 7]));
        for rule in [
            ResizeRule::Stretch,
            ResizeRule::ShorterSideCenterCrop,
            ResizeRule::Letterbox,
            ResizeRule::ScaleShorterSideThenCenterCrop,
        ] {
            for filter in [ResizeFilter::Bilinear, ResizeFilter::Bicubic] {
                assert_eq!(resize_for_model(&img, 5, rule, filter).dimensions(), (5, 5), "{rule} {filter}");
            }
        }
        let empty = RgbImage::new(0, 3);
        assert_eq!(resize_for_model(&empty, 2, ResizeRule::Stretch, ResizeFilter::Bilinear).dimensions(), (2, 2));
    }

    #[test]
    fn computing_only_the_window_matches_scaling_then_cropping() {
        // The window shortcut must give the pixels of "scale everything, then crop".
        for (w, h, size) in [(80, 45, 32), (36, 90, 32), (240, 30, 32), (33, 20, 7), (20, 33, 40)] {
            let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x * 37 + y * 11) as u8, (x * y) as u8, (y * 53) as u8]));
            for filter in [ResizeFilter::Bilinear, ResizeFilter::Bicubic] {
                let (nw, nh) = shorter_side_dims(w, h, size);
                let scaled = resample(&img, Window::whole(&img), (nw, nh), (nw, nh), filter);
                let want = imageops::crop_imm(&scaled, (nw - size) / 2, (nh - size) / 2, size, size).to_image();
                let got = resize_for_model(&img, size, ResizeRule::ScaleShorterSideThenCenterCrop, filter);
                // The window's weights come from slightly different floating-point centres,
                // so a fixed-point coefficient may round the other way: ±1 level, rarely.
                let diffs: Vec<u8> =
                    got.as_raw().iter().zip(want.as_raw()).map(|(a, b)| a.abs_diff(*b)).filter(|d| *d > 0).collect();
                assert!(diffs.iter().all(|d| *d <= 1), "{w}×{h} -> {size} {filter}: {diffs:?}");
                assert!(diffs.len() * 100 <= got.as_raw().len(), "{w}×{h} -> {size} {filter}: {} differ", diffs.len());
            }
        }
    }
}
