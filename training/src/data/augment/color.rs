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

#[inline]
fn clamp_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
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

/// Blends each pixel with its own luma (ImageEnhance.Color): gray + factor·(v − gray).
pub fn adjust_saturation(img: &mut RgbImage, factor: f32) {
    for p in img.pixels_mut() {
        let gray = luma(p.0) as f32;
        for c in p.0.iter_mut() {
            *c = clamp_u8(gray + factor * (*c as f32 - gray));
        }
    }
}

/// Rotates the hue by `shift` turns (−0.5..=0.5) in HSV space, keeping S and V.
pub fn adjust_hue(img: &mut RgbImage, shift: f32) {
    if shift == 0.0 {
        return;
    }
    for p in img.pixels_mut() {
        let [r, g, b] = p.0.map(|v| v as f32 / 255.0);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        if delta == 0.0 {
            continue; // grey: no hue to rotate
        }
        let hue = if max == r {
            ((g - b) / delta).rem_euclid(6.0)
        } else if max == g {
            (b - r) / delta + 2.0
        } else {
            (r - g) / delta + 4.0
        } / 6.0;
        let h = (hue + shift).rem_euclid(1.0) * 6.0;
        let (v, s) = (max, delta / max);
        let sector = (h.floor() as i32).rem_euclid(6);
        let f = h - h.floor();
        let (pv, qv, tv) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let rgb = match sector {
            0 => [v, tv, pv],
            1 => [qv, v, pv],
            2 => [pv, v, tv],
            3 => [pv, qv, v],
            4 => [tv, pv, v],
            _ => [v, pv, qv],
        };
        p.0 = rgb.map(|c| clamp_u8(c * 255.0));
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

    #[test]
    fn solarize_inverts_at_and_above_threshold() {
        let mut img = RgbImage::from_pixel(1, 1, Rgb([127, 128, 255]));
        solarize(&mut img, 128);
        assert_eq!(img.get_pixel(0, 0).0, [127, 127, 0]);
    }
}
