//! Decoding (every format, EXIF orientation, alpha, GIF first frame, damaged bytes)
//! and the resize rules, checked against a naive resampler written out here.

mod common;

use image::{DynamicImage, ImageFormat as Codec, Rgb, RgbImage, Rgba, RgbaImage};
use memeguard_package::{
    ImageError, ImageFormat, ImageLimits, ResizeFilter, ResizeRule, decode_image, resize_for_model,
};

fn close(a: &[u8], b: &[u8], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(*y) <= tolerance)
}

#[test]
fn every_accepted_format_decodes_to_the_same_pixels() {
    let picture = common::quadrants(6, 4);
    let rgba = DynamicImage::ImageRgb8(picture.clone()).into_rgba8();
    let cases = [
        (ImageFormat::Png, common::encode(&DynamicImage::ImageRgb8(picture.clone()), Codec::Png)),
        (ImageFormat::Webp, common::lossless_webp(&rgba)),
        (ImageFormat::Gif, common::two_frame_gif(&rgba, &RgbaImage::from_pixel(6, 4, Rgba([9, 9, 9, 255])))),
    ];
    for (format, bytes) in cases {
        let decoded = decode_image(&bytes, &ImageLimits::default()).unwrap();
        assert_eq!(decoded.format, format);
        assert_eq!((decoded.width, decoded.height), (6, 4));
        // Lossless formats, pure colours: exact (the GIF is its first frame, not the grey second).
        assert_eq!(decoded.image, picture, "{format}");
    }
    let jpeg = common::encode(&DynamicImage::ImageRgb8(common::quadrants(32, 32)), Codec::Jpeg);
    let decoded = decode_image(&jpeg, &ImageLimits::default()).unwrap();
    assert_eq!((decoded.format, decoded.width, decoded.height), (ImageFormat::Jpeg, 32, 32));
    assert!(close(&decoded.image.get_pixel(4, 4).0, &[255, 0, 0], 24), "{:?}", decoded.image.get_pixel(4, 4));
}

#[test]
fn exif_orientation_is_applied() {
    // 32 wide, 16 high: left half red, right half blue (blocks big enough for JPEG).
    let picture = RgbImage::from_fn(32, 16, |x, _| if x < 16 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
    let upright = decode_image(&common::jpeg_with_orientation(&picture, 1), &ImageLimits::default()).unwrap();
    assert_eq!((upright.width, upright.height), (32, 16));

    // 6 = rotate 90° clockwise to display: the left (red) half ends up on top.
    let rotated = decode_image(&common::jpeg_with_orientation(&picture, 6), &ImageLimits::default()).unwrap();
    assert_eq!((rotated.width, rotated.height), (16, 32));
    assert_eq!(rotated.image.dimensions(), (16, 32));
    assert!(close(&rotated.image.get_pixel(8, 4).0, &[255, 0, 0], 24), "{:?}", rotated.image.get_pixel(8, 4));
    assert!(close(&rotated.image.get_pixel(8, 28).0, &[0, 0, 255], 24), "{:?}", rotated.image.get_pixel(8, 28));

    // 8 = rotate 90° counter-clockwise: the left half ends up at the bottom.
    let rotated = decode_image(&common::jpeg_with_orientation(&picture, 8), &ImageLimits::default()).unwrap();
    assert_eq!((rotated.width, rotated.height), (16, 32));
    assert!(close(&rotated.image.get_pixel(8, 28).0, &[255, 0, 0], 24), "{:?}", rotated.image.get_pixel(8, 28));
}

#[test]
fn transparency_is_flattened_onto_white() {
    let mut rgba = RgbaImage::from_pixel(2, 1, Rgba([0, 0, 0, 0]));
    rgba.put_pixel(1, 0, Rgba([200, 0, 0, 255]));
    for bytes in [common::encode(&DynamicImage::ImageRgba8(rgba.clone()), Codec::Png), common::lossless_webp(&rgba)] {
        let decoded = decode_image(&bytes, &ImageLimits::default()).unwrap();
        assert_eq!(decoded.image.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(decoded.image.get_pixel(1, 0).0, [200, 0, 0]);
    }
}

#[test]
fn truncated_damaged_and_foreign_bytes_give_clear_errors() {
    let png = common::encode(&DynamicImage::ImageRgb8(common::quadrants(16, 16)), Codec::Png);
    let err = decode_image(&png[..png.len() / 2], &ImageLimits::default()).unwrap_err();
    assert!(matches!(err, ImageError::Decode { format: ImageFormat::Png, .. }), "{err}");
    assert!(err.to_string().contains("PNG image could not be decoded"), "{err}");

    let jpeg = common::encode(&DynamicImage::ImageRgb8(common::quadrants(16, 16)), Codec::Jpeg);
    let err = decode_image(&jpeg[..20], &ImageLimits::default()).unwrap_err();
    assert!(matches!(err, ImageError::Decode { format: ImageFormat::Jpeg, .. }), "{err}");

    let err = decode_image(b"%PDF-1.7 not an image", &ImageLimits::default()).unwrap_err();
    assert!(err.to_string().contains("not a PNG, JPEG, WebP or GIF image"), "{err}");

    let limits = ImageLimits { max_bytes: 1 << 20, max_pixels: 100 };
    let err = decode_image(&png, &limits).unwrap_err();
    assert_eq!(err, ImageError::TooManyPixels { width: 16, height: 16, max: 100 });
    assert!(err.to_string().contains("16×16 = 256 pixels; the limit is 100"), "{err}");
}

/// PIL-style antialiased triangle resampling, straight from the definition, in f64:
/// output pixel centre c = (o + 0.5)·in/out; support = max(in/out, 1); weight of input
/// pixel i = max(0, 1 − |i + 0.5 − c| / support), normalised over the pixels inside.
fn naive_resize(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let weights = |n_in: u32, n_out: u32, o: u32| -> Vec<f64> {
        let scale = f64::from(n_in) / f64::from(n_out);
        let support = scale.max(1.0);
        let centre = (f64::from(o) + 0.5) * scale;
        let raw: Vec<f64> =
            (0..n_in).map(|i| (1.0 - ((f64::from(i) + 0.5 - centre) / support).abs()).max(0.0)).collect();
        let total: f64 = raw.iter().sum();
        raw.iter().map(|v| v / total).collect()
    };
    RgbImage::from_fn(w, h, |ox, oy| {
        let (wx, wy) = (weights(img.width(), w, ox), weights(img.height(), h, oy));
        let mut acc = [0.0f64; 3];
        for (y, fy) in wy.iter().enumerate() {
            for (x, fx) in wx.iter().enumerate() {
                let p = img.get_pixel(x as u32, y as u32);
                for c in 0..3 {
                    acc[c] += fx * fy * f64::from(p[c]);
                }
            }
        }
        Rgb(acc.map(|v| v.round().clamp(0.0, 255.0) as u8))
    })
}

fn ramp(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 60 + y * 5) as u8, (y * 60) as u8, ((x * y * 17) % 256) as u8]))
}

#[test]
fn stretch_matches_the_naive_resampler() {
    // Shrinking by 2, shrinking unevenly per axis, enlarging.
    for (w, h, size) in [(4, 4, 2), (5, 3, 4), (3, 3, 7)] {
        let img = ramp(w, h);
        let got = resize_for_model(&img, size, ResizeRule::Stretch, ResizeFilter::Bilinear);
        let want = naive_resize(&img, size, size);
        assert!(close(got.as_raw(), want.as_raw(), 1), "{w}×{h} -> {size}: {:?} vs {:?}", got.as_raw(), want.as_raw());
    }
    // By hand, 4 -> 2 along x: output 0 is centred at 1.0 with support 2, so inputs 0, 1, 2
    // weigh 0.75, 0.75, 0.25 (3/7, 3/7, 1/7); output 1 mirrors it.
    let img = RgbImage::from_fn(4, 4, |x, _| Rgb([(x * 70) as u8, 0, 0]));
    let got = resize_for_model(&img, 2, ResizeRule::Stretch, ResizeFilter::Bilinear);
    for y in 0..2 {
        assert_eq!(got.get_pixel(0, y).0[0], 50, "(3·0 + 3·70 + 1·140) / 7");
        assert_eq!(got.get_pixel(1, y).0[0], 160, "(1·70 + 3·140 + 3·210) / 7");
    }
}

#[test]
fn center_crop_takes_the_middle_square() {
    // 8 wide, 4 high: the centred 4×4 square is columns 2..6.
    let img = ramp(8, 4);
    let got = resize_for_model(&img, 2, ResizeRule::ShorterSideCenterCrop, ResizeFilter::Bilinear);
    let middle = image::imageops::crop_imm(&img, 2, 0, 4, 4).to_image();
    assert!(close(got.as_raw(), naive_resize(&middle, 2, 2).as_raw(), 1));
    // Portrait: rows 2..6 of a 4×8.
    let img = ramp(4, 8);
    let got = resize_for_model(&img, 4, ResizeRule::ShorterSideCenterCrop, ResizeFilter::Bilinear);
    assert_eq!(got, image::imageops::crop_imm(&img, 0, 2, 4, 4).to_image(), "same size: no resampling");
}

#[test]
fn letterbox_keeps_everything_and_pads_with_white() {
    // 8×4 into 4×4: scaled to 4×2, centred vertically (rows 1..3), white above and below.
    let img = ramp(8, 4);
    let got = resize_for_model(&img, 4, ResizeRule::Letterbox, ResizeFilter::Bilinear);
    let scaled = naive_resize(&img, 4, 2);
    for x in 0..4 {
        assert_eq!(got.get_pixel(x, 0).0, [255, 255, 255]);
        assert_eq!(got.get_pixel(x, 3).0, [255, 255, 255]);
        for y in 0..2 {
            assert!(close(&got.get_pixel(x, y + 1).0, &scaled.get_pixel(x, y).0, 1));
        }
    }
    // Portrait 2×6 into 3×3: scaled to 1×3, centred horizontally (column 1).
    let got = resize_for_model(&ramp(2, 6), 3, ResizeRule::Letterbox, ResizeFilter::Bilinear);
    assert_eq!(got.get_pixel(0, 1).0, [255, 255, 255]);
    assert_eq!(got.get_pixel(2, 1).0, [255, 255, 255]);
    assert_ne!(got.get_pixel(1, 1).0, [255, 255, 255]);
}
