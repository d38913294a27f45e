//! Test images: real encodings made with the `image` crate, plus damaged and hostile ones.

use base64::Engine as _;
use image::{ImageEncoder, Rgb, RgbImage};

/// A `width`×`height` PNG with a gradient (so different images score differently).
pub fn png(width: u32, height: u32, seed: u8) -> Vec<u8> {
    let img = RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x as u8).wrapping_mul(3).wrapping_add(seed), (y as u8).wrapping_mul(5), seed.wrapping_mul(7)])
    });
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// A JPEG of the same kind.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 90]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// A data: URL for `bytes`.
pub fn data_url(bytes: &[u8], mime: &str) -> String {
    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A PNG cut short in its pixel data.
pub fn truncated_png() -> Vec<u8> {
    let full = png(64, 64, 1);
    full[..full.len() / 2].to_vec()
}

/// A PNG whose header claims 30000×30000 pixels (a decompression bomb: the header alone
/// must be enough to refuse it).
pub fn png_bomb_header() -> Vec<u8> {
    png_header_claiming(30000, 30000)
}

/// A PNG whose header claims `width`×`height` pixels, with a tiny (undecodable) body.
/// Built by hand: signature, IHDR with a correct CRC, a tiny IDAT, IEND.
pub fn png_header_claiming(width: u32, height: u32) -> Vec<u8> {
    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc32fast::hash(&crc_input).to_be_bytes());
        out
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    out.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    out.extend(chunk(b"IEND", &[]));
    out
}
