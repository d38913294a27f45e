//! Reading image bytes into RGB for training.
//!
//! PLACEHOLDER until `memeguard-package` lands its shared `decode_image` (EXIF
//! orientation, alpha, GIF first frame, limits): then this calls it, so training and
//! serving decode the same way.

use image::RgbImage;

/// Decodes `bytes` (any supported format) to 8-bit RGB.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, String> {
    image::load_from_memory(bytes).map(|img| img.to_rgb8()).map_err(|e| e.to_string())
}
