//! Photometric augmentations on 8-bit RGB, following Pillow's definitions as used by
//! torchvision (ImageEnhance blends, ITU-R 601 luma, HSV hue shift, solarise).

use image::RgbImage;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::geometry::uniform;
use crate::data::seed::DataRng;

/// Pillow's luma: (R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16 (≈ 0.299, 0.587, 0.114).
#[inline]
pub fn luma(p: [u8; 3]) -> u8 {
    ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Rounds and clamps to 0..=255 (float-to-int `as` casts saturate, so no branches).
#[inline]
fn clamp_u8(v: f32) -> u8 {
    (v + 0.5) as u8
}

/// Applies a 256-entry table to every channel.
fn apply_lut(img: &mut RgbImage, lut: &[u8; 256]) {
    for v in img.iter_mut() {
        *v = lut[*v as usize];
    }
}

/// Multiplies every channel by `factor` (ImageEnhance.Brightness).
pub fn adjust_brightness(img: &mut RgbImage, factor: f32) {
    let lut: [u8; 256] = std::array::from_fn(|v| clamp_u8(v as f32 * factor));
    apply_lut(img, &lut);
}

/// Blends with the mean luma (ImageEnhance.Contrast): mean + factor·(v − mean).
pub fn adjust_contrast(img: &mut RgbImage, factor: f32) {
    let pixels = (img.width() as u64 * img.height() as u64).max(1);
    let sum: u64 = img.pixels().map(|p| luma(p.0) as u64).sum();
    // Pillow rounds the mean to an integer level.
    let mean = (sum as f64 / pixels as f64 + 0.5).floor() as f32;
    let lut: [u8; 256] = std::array::from_fn(|v| clamp_u8(mean + factor * (v as f32 - mean)));
    apply_lut(img, &lut);
}

/// Blends each pixel with its own luma (ImageEnhance.Color): gray + factor·(v − gray),
/// in 16.16 fixed point (the factor is clamped to 0..=100).
pub fn adjust_saturation(img: &mut RgbImage, factor: f32) {
    let f = (factor.clamp(0.0, 100.0) * 65536.0).round() as i64;
    for px in img.chunks_exact_mut(3) {
        let gray = luma([px[0], px[1], px[2]]) as i64;
        for c in px.iter_mut() {
            *c = (gray + ((f * (*c as i64 - gray) + 32768) >> 16)).clamp(0, 255) as u8;
        }
    }
}

/// Rotates the hue by `shift` turns (−0.5..=0.5) in HSV space, keeping S and V. Works in
/// 0..255 units: with max, min and delta = max − min fixed, only which channel is the
/// max, mid and min and the mid value change.
pub fn adjust_hue(img: &mut RgbImage, shift: f32) {
    let shift6 = shift.rem_euclid(1.0) * 6.0;
    if shift6 == 0.0 {
        return;
    }
    // Reciprocals of every possible delta: a multiply per pixel instead of a divide.
    let reciprocal: [f32; 256] = std::array::from_fn(|d| if d == 0 { 0.0 } else { 1.0 / d as f32 });
    for px in img.chunks_exact_mut(3) {
        let (r, g, b) = (px[0] as i32, px[1] as i32, px[2] as i32);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        if delta == 0 {
            continue; // grey: no hue to rotate
        }
        let (d, inv) = (delta as f32, reciprocal[delta as usize]);
        // Hue in sixths of a turn, 0..6.
        let mut h = if max == r {
            (g - b) as f32 * inv
        } else if max == g {
            (b - r) as f32 * inv + 2.0
        } else {
            (r - g) as f32 * inv + 4.0
        };
        if h < 0.0 {
            h += 6.0;
        }
        h += shift6;
        if h >= 6.0 {
            h -= 6.0;
        }
        let sector = h as u32; // h ≥ 0: truncation is floor
        let f = h - sector as f32;
        let (v, p) = (max as f32, min as f32);
        let (q, t) = (v - d * f, p + d * f);
        let (nr, ng, nb) = match sector {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        };
        px[0] = clamp_u8(nr);
        px[1] = clamp_u8(ng);
        px[2] = clamp_u8(nb);
    }
}

/// Replaces each pixel by its luma in all three channels.
pub fn grayscale(img: &mut RgbImage) {
    for p in img.pixels_mut() {
        let l = luma(p.0);
        p.0 = [l, l, l];
    }
}

/// Inverts every channel value at or above `threshold` (ImageOps.solarize).
pub fn solarize(img: &mut RgbImage, threshold: u8) {
    let lut: [u8; 256] = std::array::from_fn(|v| if v as u8 >= threshold { 255 - v as u8 } else { v as u8 });
    apply_lut(img, &lut);
}

/// torchvision's `ColorJitter`: factors drawn uniformly from [max(0, 1 − x), 1 + x]
/// (hue from [−hue, hue]), applied in a random order. Zero disables a component.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ColorJitter {
    #[serde(default)]
    pub brightness: f32,
    #[serde(default)]
    pub contrast: f32,
    #[serde(default)]
    pub saturation: f32,
    #[serde(default)]
    pub hue: f32,
}

impl ColorJitter {
    /// Draws the order and factors and applies them.
    pub fn apply(&self, img: &mut RgbImage, rng: &mut DataRng) {
        let mut order = [0usize, 1, 2, 3];
        order.shuffle(rng);
        let factor = |rng: &mut DataRng, x: f32| uniform(rng, (1.0 - x).max(0.0) as f64, (1.0 + x) as f64) as f32;
        let brightness = (self.brightness > 0.0).then(|| factor(rng, self.brightness));
        let contrast = (self.contrast > 0.0).then(|| factor(rng, self.contrast));
        let saturation = (self.saturation > 0.0).then(|| factor(rng, self.saturation));
        let hue = (self.hue > 0.0).then(|| uniform(rng, -self.hue as f64, self.hue as f64) as f32);
        for step in order {
            match step {
                0 => brightness.map(|f| adjust_brightness(img, f)),
                1 => contrast.map(|f| adjust_contrast(img, f)),
                2 => saturation.map(|f| adjust_saturation(img, f)),
                _ => hue.map(|f| adjust_hue(img, f)),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn sample() -> RgbImage {
        RgbImage::from_fn(16, 8, |x, y| Rgb([(x * 16) as u8, (y * 30) as u8, ((x + y) * 9) as u8]))
    }

    #[test]
    fn luma_matches_pillow_weights() {
        assert_eq!(luma([255, 255, 255]), 255);
        assert_eq!(luma([255, 0, 0]), 76);
        assert_eq!(luma([0, 255, 0]), 150);
        assert_eq!(luma([0, 0, 255]), 29);
    }

    #[test]
    fn unit_factors_are_identity() {
        let mut img = sample();
        adjust_brightness(&mut img, 1.0);
        adjust_contrast(&mut img, 1.0);
        adjust_saturation(&mut img, 1.0);
        adjust_hue(&mut img, 0.0);
        assert_eq!(img, sample());
    }

    #[test]
    fn zero_saturation_is_grayscale_and_zero_contrast_is_flat() {
        let (mut a, mut b) = (sample(), sample());
        adjust_saturation(&mut a, 0.0);
        grayscale(&mut b);
        assert_eq!(a, b);
        let mut flat = sample();
        adjust_contrast(&mut flat, 0.0);
        let first = flat.get_pixel(0, 0).0;
        assert!(flat.pixels().all(|p| p.0 == first && p.0[0] == p.0[1]));
    }

    #[test]
    fn hue_shifts_primaries_and_full_turn_is_identity() {
        let mut red = RgbImage::from_pixel(1, 1, Rgb([255, 0, 0]));
        adjust_hue(&mut red, 1.0 / 3.0);
        assert_eq!(red.get_pixel(0, 0).0, [0, 255, 0]);
        adjust_hue(&mut red, 1.0 / 3.0);
        assert_eq!(red.get_pixel(0, 0).0, [0, 0, 255]);
        let mut img = sample();
        adjust_hue(&mut img, 0.5);
        adjust_hue(&mut img, 0.5);
        for (a, b) in img.pixels().zip(sample().pixels()) {
            for c in 0..3 {
                assert!((a.0[c] as i32 - b.0[c] as i32).abs() <= 1, "{a:?} vs {b:?}");
            }
        }
    }

    /// Textbook RGB → HSV → RGB in [0, 1] floats, the reference for the fast path.
    fn hue_reference(p: [u8; 3], shift: f32) -> [u8; 3] {
        let [r, g, b] = p.map(|v| v as f64 / 255.0);
        let (max, min) = (r.max(g).max(b), r.min(g).min(b));
        let delta = max - min;
        if delta == 0.0 {
            return p;
        }
        let hue = if max == r {
            ((g - b) / delta).rem_euclid(6.0)
        } else if max == g {
            (b - r) / delta + 2.0
        } else {
            (r - g) / delta + 4.0
        } / 6.0;
        let h = (hue + shift as f64).rem_euclid(1.0) * 6.0;
        let (v, s) = (max, delta / max);
        let f = h - h.floor();
        let (pv, qv, tv) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let rgb = match h.floor() as i32 {
            0 => [v, tv, pv],
            1 => [qv, v, pv],
            2 => [pv, v, tv],
            3 => [pv, qv, v],
            4 => [tv, pv, v],
            _ => [v, pv, qv],
        };
        rgb.map(|c| (c * 255.0).round() as u8)
    }

    #[test]
    fn fast_hue_and_saturation_match_float_references() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let img = RgbImage::from_fn(64, 64, |_, _| Rgb([rng.random(), rng.random(), rng.random()]));
        for shift in [-0.5, -0.31, -0.02, 0.1, 0.25, 0.49] {
            let mut fast = img.clone();
            adjust_hue(&mut fast, shift);
            for (a, b) in fast.pixels().zip(img.pixels()) {
                let want = hue_reference(b.0, shift);
                assert!(
                    (0..3).all(|c| (a.0[c] as i32 - want[c] as i32).abs() <= 1),
                    "{b:?} {shift}: {a:?} vs {want:?}"
                );
            }
        }
        for factor in [0.0, 0.6, 1.3, 2.0] {
            let mut fast = img.clone();
            adjust_saturation(&mut fast, factor);
            for (a, b) in fast.pixels().zip(img.pixels()) {
                let gray = luma(b.0) as f32;
                for c in 0..3 {
                    let want = (gray + factor * (b.0[c] as f32 - gray)).round().clamp(0.0, 255.0);
                    assert!((a.0[c] as f32 - want).abs() <= 1.0, "{b:?} x{factor}: {a:?}");
                }
            }
        }
    }

    #[test]
    fn solarize_inverts_at_and_above_threshold() {
        let mut img = RgbImage::from_pixel(1, 1, Rgb([127, 128, 255]));
        solarize(&mut img, 128);
        assert_eq!(img.get_pixel(0, 0).0, [127, 127, 0]);
    }
}
