//! Decoding untrusted image bytes into RGB: size limits, format by magic bytes, the
//! pixel count read from the header before any pixel is decoded (decompression bombs),
//! EXIF orientation, alpha flattened onto white, first frame of a GIF.

use std::io::Cursor;

use ::image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

pub use crate::resize::resize_for_model;

/// What an uploaded image may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest accepted encoded size in bytes.
    pub max_bytes: usize,
    /// Largest accepted width × height, checked from the header before decoding.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    /// 20 MB and 40 megapixels: any phone photo or screenshot, not a bomb.
    fn default() -> Self {
        ImageLimits { max_bytes: 20_000_000, max_pixels: 40_000_000 }
    }
}

/// The formats memeguard accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Webp,
    Gif,
}

impl ImageFormat {
    /// The MIME type, for serving the stored image back.
    pub fn mime_type(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Webp => "image/webp",
            ImageFormat::Gif => "image/gif",
        }
    }

    fn codec(self) -> ::image::ImageFormat {
        match self {
            ImageFormat::Png => ::image::ImageFormat::Png,
            ImageFormat::Jpeg => ::image::ImageFormat::Jpeg,
            ImageFormat::Webp => ::image::ImageFormat::WebP,
            ImageFormat::Gif => ::image::ImageFormat::Gif,
        }
    }
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageFormat::Png => "PNG",
            ImageFormat::Jpeg => "JPEG",
            ImageFormat::Webp => "WebP",
            ImageFormat::Gif => "GIF",
        })
    }
}

/// Why an image was refused. Every message says what to change.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImageError {
    #[error("the image is empty (0 bytes)")]
    Empty,
    #[error("the image is {size} bytes; the limit is {max} bytes")]
    TooManyBytes { size: usize, max: usize },
    #[error("the data is not a PNG, JPEG, WebP or GIF image (its first bytes are {prefix})")]
    UnknownFormat { prefix: String },
    #[error("the image is {width}×{height} = {} pixels; the limit is {max} pixels", u64::from(*.width) * u64::from(*.height))]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error("the {format} image has no pixels ({width}×{height})")]
    NoPixels { format: ImageFormat, width: u32, height: u32 },
    #[error("the {format} image could not be decoded (truncated or damaged?): {message}")]
    Decode { format: ImageFormat, message: String },
}

/// An image ready for resizing: RGB, upright, opaque.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedImage {
    pub image: RgbImage,
    /// Width after EXIF orientation (what a viewer shows).
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
    pub format: ImageFormat,
}

/// The format told by the first bytes (never by a file name or a client's claim).
pub fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::Webp)
    } else {
        None
    }
}

/// Decodes untrusted bytes within `limits` (see the module docs for every step).
pub fn decode_image(bytes: &[u8], limits: &ImageLimits) -> Result<DecodedImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(ImageError::TooManyBytes { size: bytes.len(), max: limits.max_bytes });
    }
    let format = sniff_format(bytes).ok_or_else(|| ImageError::UnknownFormat {
        prefix: bytes.iter().take(8).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" "),
    })?;
    let decode_err = |e: ::image::ImageError| ImageError::Decode { format, message: e.to_string() };

    // Only the header is read here; our own limit is checked before pixels are allocated.
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.codec());
    reader.no_limits();
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(ImageError::TooManyPixels { width, height, max: limits.max_pixels });
    }
    if width == 0 || height == 0 {
        return Err(ImageError::NoPixels { format, width, height });
    }
    // A damaged EXIF block is not worth refusing a picture over: show it as stored.
    let orientation = decoder.orientation().unwrap_or(::image::metadata::Orientation::NoTransforms);
    let mut decode_limits = Limits::default();
    // The decoded buffer (at most 8 bytes per pixel, RGBA16) plus decoder scratch.
    decode_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    decoder.set_limits(decode_limits).map_err(decode_err)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    image.apply_orientation(orientation);
    let image = flatten_onto_white(image);
    Ok(DecodedImage { width: image.width(), height: image.height(), image, format })
}

/// RGB with any transparency composited onto white (memes are read on a light page;
/// a transparent pixel's stored colour is arbitrary and must not reach the model).
fn flatten_onto_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            // Rounded integer blend: c·a + 255·(1−a), a in 0..=255.
            dst[c] = ((u32::from(src[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_magic_bytes() {
        assert_eq!(sniff_format(b"\x89PNG\r\n\x1a\n...."), Some(ImageFormat::Png));
        assert_eq!(sniff_format(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageFormat::Jpeg));
        assert_eq!(sniff_format(b"GIF89a.."), Some(ImageFormat::Gif));
        assert_eq!(sniff_format(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageFormat::Webp));
        assert_eq!(sniff_format(b"RIFF\0\0\0\0WAVE"), None);
        assert_eq!(sniff_format(b"<svg"), None);
    }

    #[test]
    fn non_images_and_limits_give_clear_errors() {
        let limits = ImageLimits::default();
        assert_eq!(decode_image(b"", &limits), Err(ImageError::Empty));
        let err = decode_image(b"hello world", &limits).unwrap_err();
        assert!(err.to_string().contains("not a PNG, JPEG, WebP or GIF") && err.to_string().contains("68 65"), "{err}");
        let small = ImageLimits { max_bytes: 4, max_pixels: 1 };
        assert_eq!(decode_image(b"GIF89a", &small), Err(ImageError::TooManyBytes { size: 6, max: 4 }));
    }

    #[test]
    fn alpha_is_flattened_onto_white() {
        let mut rgba = ::image::RgbaImage::new(3, 1);
        rgba.put_pixel(0, 0, ::image::Rgba([10, 20, 30, 255]));
        rgba.put_pixel(1, 0, ::image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(2, 0, ::image::Rgba([0, 100, 255, 128]));
        let out = flatten_onto_white(DynamicImage::ImageRgba8(rgba));
        assert_eq!(out.get_pixel(0, 0).0, [10, 20, 30]);
        assert_eq!(out.get_pixel(1, 0).0, [255, 255, 255]);
        // 0·128/255 + 255·127/255 = 127; 100·128/255 + 127 = 177.2; 255.
        assert_eq!(out.get_pixel(2, 0).0, [127, 177, 255]);
    }
}
