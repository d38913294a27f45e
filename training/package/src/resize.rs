//! Bringing an RGB image to the model's square input by a [`ResizeRule`].
//!
//! Resampling is the antialiased triangle (bilinear) filter of the `image` crate, the
//! same convolution PIL's `BILINEAR` uses (the filter widens by the scale factor when
//! shrinking), so a model pretrained elsewhere sees familiar pixels.

use ::image::imageops::{self, FilterType};
use ::image::{Rgb, RgbImage};

use crate::manifest::ResizeRule;

/// Colour of the letterbox padding: white, like the page a transparent meme sits on.
pub const LETTERBOX_FILL: Rgb<u8> = Rgb([255, 255, 255]);

/// `img` as a `size`×`size` square by `rule` (see [`ResizeRule`] for each rule).
pub fn resize_for_model(img: &RgbImage, size: u32, rule: ResizeRule) -> RgbImage {
    let (w, h) = img.dimensions();
    if size == 0 || w == 0 || h == 0 {
        return RgbImage::from_pixel(size, size, LETTERBOX_FILL);
    }
    match rule {
        ResizeRule::Stretch => resample(img, size, size),
        ResizeRule::ShorterSideCenterCrop => {
            let side = w.min(h);
            let crop = imageops::crop_imm(img, (w - side) / 2, (h - side) / 2, side, side).to_image();
            resample(&crop, size, size)
        }
        ResizeRule::Letterbox => {
            let (nw, nh) = letterbox_dims(w, h, size);
            let scaled = resample(img, nw, nh);
            let mut canvas = RgbImage::from_pixel(size, size, LETTERBOX_FILL);
            imageops::replace(&mut canvas, &scaled, i64::from((size - nw) / 2), i64::from((size - nh) / 2));
            canvas
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

fn resample(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if img.dimensions() == (w, h) {
        return img.clone();
    }
    imageops::resize(img, w, h, FilterType::Triangle)
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
    fn every_rule_gives_the_requested_square() {
        let img = RgbImage::from_fn(9, 4, |x, y| Rgb([x as u8 * 20, y as u8 * 50, 7]));
        for rule in [ResizeRule::Stretch, ResizeRule::ShorterSideCenterCrop, ResizeRule::Letterbox] {
            assert_eq!(resize_for_model(&img, 5, rule).dimensions(), (5, 5), "{rule}");
        }
        assert_eq!(resize_for_model(&RgbImage::new(0, 3), 2, ResizeRule::Stretch).dimensions(), (2, 2));
    }
}
