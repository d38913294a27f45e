//! Preparing a meme for Tesseract. Tesseract reads dark text on a light, plain page; meme
//! text is white (or near white) with a dark outline, over a photo. So:
//!
//! 1. find bright, unsaturated regions (candidate letter fill);
//! 2. keep the regions whose border is mostly dark outline — letters are enclosed by
//!    their outline, while a white sky or shirt borders on many colours;
//! 3. draw the kept regions black on white, upscaled (Tesseract reads best with letters
//!    20–60 px tall) and smoothed, with a margin.
//!
//! When nothing looks like outlined text (dark text on a light background, say), the
//! plain grayscale picture goes to Tesseract, upscaled the same way; it binarises it itself.
//! The analysis runs at the picture's own size and only the result is upscaled, which
//! keeps the work small.

use image::{GrayImage, Luma, RgbImage, imageops};

/// Smallest channel of a letter-fill pixel (white text survives JPEG and blur above this).
const BRIGHT_MIN: u8 = 170;
/// Largest spread between channels of a letter-fill pixel (white-ish, not coloured).
const BRIGHT_MAX_SPREAD: u8 = 60;
/// Largest channel of an outline pixel.
const DARK_MAX: u8 = 90;
/// How far (px) from a region's border its outline may start (anti-aliasing ramp).
const OUTLINE_REACH: usize = 2;
/// Share of a region's border that must touch dark outline for it to count as lettering.
const MIN_OUTLINED_SHARE: f32 = 0.6;
/// Short side the picture is brought up to before reading.
const TARGET_SHORT_SIDE: u32 = 900;
/// Largest upscale factor (beyond this, blur costs more than size gains).
const MAX_UPSCALE: f32 = 4.0;
/// White margin around the prepared picture (Tesseract misses text touching the edge).
const MARGIN: u32 = 16;

/// The picture Tesseract reads: black lettering on white, or the plain grayscale picture
/// when no outlined lettering was found.
pub fn prepare_for_ocr(image: &RgbImage) -> GrayImage {
    let (width, height) = image.dimensions();
    let (w, h) = (width as usize, height as usize);
    let bright: Vec<bool> = image.pixels().map(|p| is_bright(p.0)).collect();
    let dark: Vec<bool> = image.pixels().map(|p| p.0.iter().all(|&c| c <= DARK_MAX)).collect();
    let near_dark = dilate(&dark, w, h, OUTLINE_REACH);
    let lettering = outlined_regions(&bright, &near_dark, w, h);
    let factor = upscale_factor(width, height);

    let kept = lettering.iter().filter(|&&k| k).count();
    // Fewer than ~0.05% of pixels: no outlined lettering here.
    if kept * 2000 < w * h {
        return with_margin(&upscale(&imageops::grayscale(image), factor));
    }
    let page =
        GrayImage::from_fn(
            width,
            height,
            |x, y| {
                if lettering[y as usize * w + x as usize] { Luma([0]) } else { Luma([255]) }
            },
        );
    // Interpolating the two-tone page and cutting at the middle rounds the staircase
    // edges that plain pixel repetition would give the letters.
    let mut page = upscale(&page, factor);
    page.pixels_mut().for_each(|p| p.0[0] = if p.0[0] < 128 { 0 } else { 255 });
    with_margin(&page)
}

fn is_bright([r, g, b]: [u8; 3]) -> bool {
    let (lo, hi) = (r.min(g).min(b), r.max(g).max(b));
    lo >= BRIGHT_MIN && hi - lo <= BRIGHT_MAX_SPREAD
}

fn upscale_factor(width: u32, height: u32) -> f32 {
    let short = width.min(height).max(1);
    (TARGET_SHORT_SIDE as f32 / short as f32).clamp(1.0, MAX_UPSCALE)
}

/// `image` scaled up by `factor` with bilinear interpolation (pixel centres aligned).
fn upscale(image: &GrayImage, factor: f32) -> GrayImage {
    if factor <= 1.05 {
        return image.clone();
    }
    let (w, h) = image.dimensions();
    let (out_w, out_h) = ((w as f32 * factor).round() as u32, (h as f32 * factor).round() as u32);
    let source = |x: u32, scale: f32, len: u32| {
        let s = ((x as f32 + 0.5) / scale - 0.5).clamp(0.0, (len - 1) as f32);
        let i = s.floor() as u32;
        (i, (i + 1).min(len - 1), s - i as f32)
    };
    let (sx, sy) = (out_w as f32 / w as f32, out_h as f32 / h as f32);
    let columns: Vec<(u32, u32, f32)> = (0..out_w).map(|x| source(x, sx, w)).collect();
    let raw = image.as_raw();
    let at = |x: u32, y: u32| f32::from(raw[(y * w + x) as usize]);
    let mut out = GrayImage::new(out_w, out_h);
    for y in 0..out_h {
        let (y0, y1, fy) = source(y, sy, h);
        for (x, &(x0, x1, fx)) in columns.iter().enumerate() {
            let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
            let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
            out.put_pixel(x as u32, y, Luma([(top * (1.0 - fy) + bottom * fy).round() as u8]));
        }
    }
    out
}

/// `mask` grown by `radius` pixels (a square neighbourhood), in two separable passes.
fn dilate(mask: &[bool], w: usize, h: usize, radius: usize) -> Vec<bool> {
    let pass = |input: &[bool], len: usize, lines: usize, at: &dyn Fn(usize, usize) -> usize| {
        let mut out = vec![false; input.len()];
        for line in 0..lines {
            // Distance to the last set pixel seen, forwards then backwards.
            let mut since = usize::MAX;
            for i in 0..len {
                since = if input[at(line, i)] { 0 } else { since.saturating_add(1) };
                out[at(line, i)] = since <= radius;
            }
            since = usize::MAX;
            for i in (0..len).rev() {
                since = if input[at(line, i)] { 0 } else { since.saturating_add(1) };
                out[at(line, i)] |= since <= radius;
            }
        }
        out
    };
    let rows = pass(mask, w, h, &|y, x| y * w + x);
    pass(&rows, h, w, &|x, y| y * w + x)
}

/// A bright region's pixels and bounding box (left, top, right, bottom; inclusive).
struct Region {
    pixels: Vec<usize>,
    bounds: (usize, usize, usize, usize),
}

impl Region {
    fn strictly_inside(&self, other: &Region) -> bool {
        let (l, t, r, b) = self.bounds;
        let (ol, ot, or, ob) = other.bounds;
        ol < l && ot < t && r < or && b < ob
    }
}

/// The bright regions (4-connected) whose border pixels mostly lie next to dark outline,
/// less the counters of letters (the inside of an O on a white photo is bright and
/// outlined too, but lies inside its letter's box).
fn outlined_regions(bright: &[bool], near_dark: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut regions: Vec<Region> = Vec::new();
    let mut seen = vec![false; bright.len()];
    let mut stack = Vec::new();
    for start in 0..bright.len() {
        if !bright[start] || seen[start] {
            continue;
        }
        let mut pixels = Vec::new();
        seen[start] = true;
        stack.push(start);
        let (mut border, mut outlined) = (0usize, 0usize);
        let mut touches_edge = false;
        let (mut left, mut top, mut right, mut bottom) = (w, h, 0, 0);
        while let Some(i) = stack.pop() {
            pixels.push(i);
            let (x, y) = (i % w, i / w);
            (left, top, right, bottom) = (left.min(x), top.min(y), right.max(x), bottom.max(y));
            let mut on_border = false;
            for (dx, dy) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)] {
                let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                    touches_edge = true;
                    on_border = true;
                    continue;
                }
                let n = ny as usize * w + nx as usize;
                if !bright[n] {
                    on_border = true;
                } else if !seen[n] {
                    seen[n] = true;
                    stack.push(n);
                }
            }
            if on_border {
                border += 1;
                outlined += usize::from(near_dark[i]);
            }
        }
        // Lettering is enclosed (never cut by the picture's edge) and shorter than half
        // the picture; tiny specks are noise.
        let tall_enough = bottom - top >= 2;
        let letter_sized = (bottom - top) * 2 < h;
        if !touches_edge
            && tall_enough
            && letter_sized
            && border > 0
            && outlined as f32 >= MIN_OUTLINED_SHARE * border as f32
        {
            regions.push(Region { pixels, bounds: (left, top, right, bottom) });
        }
    }
    let mut keep = vec![false; bright.len()];
    for region in &regions {
        let counter = regions.iter().any(|other| region.strictly_inside(other));
        if !counter {
            for &i in &region.pixels {
                keep[i] = true;
            }
        }
    }
    keep
}

fn with_margin(image: &GrayImage) -> GrayImage {
    let mut page = GrayImage::from_pixel(image.width() + 2 * MARGIN, image.height() + 2 * MARGIN, Luma([255]));
    imageops::replace(&mut page, image, i64::from(MARGIN), i64::from(MARGIN));
    page
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

    /// A white square with a black ring, on a white-and-blue background: the ringed
    /// square is lettering, the white background half is not.
    #[test]
    fn keeps_outlined_white_and_drops_open_white() {
        let mut image =
            RgbImage::from_fn(300, 300, |x, _| if x < 150 { Rgb([255, 255, 255]) } else { Rgb([30, 60, 200]) });
        for y in 100..160 {
            for x in 180..240 {
                let ring = !(184..236).contains(&x) || !(104..156).contains(&y);
                image.put_pixel(x, y, if ring { Rgb([0, 0, 0]) } else { Rgb([250, 250, 250]) });
            }
        }
        let page = prepare_for_ocr(&image);
        let factor = page.width() as f32 / 300.0;
        assert!(page.width() > 300, "small pictures are upscaled");
        let at = |x: u32, y: u32| {
            let f = (page.width() - 2 * MARGIN) as f32 / 300.0;
            page.get_pixel(MARGIN + (x as f32 * f) as u32, MARGIN + (y as f32 * f) as u32).0[0]
        };
        assert!(factor > 1.0);
        assert_eq!(at(210, 130), 0, "the outlined fill is lettering");
        assert_eq!(at(50, 50), 255, "an open white area is background");
        assert_eq!(at(170, 50), 255, "blue background is background");
    }

    #[test]
    fn dilate_grows_by_radius() {
        let mut mask = vec![false; 7 * 7];
        mask[3 * 7 + 3] = true;
        let grown = dilate(&mask, 7, 7, 2);
        assert_eq!(grown.iter().filter(|&&b| b).count(), 25);
        assert!(grown[7 + 1] && !grown[0]);
    }

    #[test]
    fn upscale_interpolates_between_pixel_centres() {
        let image = GrayImage::from_raw(2, 1, vec![0, 200]).unwrap();
        let up = upscale(&image, 2.0);
        assert_eq!(up.dimensions(), (4, 2));
        assert_eq!(up.as_raw()[..4], [0, 50, 150, 200]);
        assert_eq!(upscale(&image, 1.0).as_raw(), image.as_raw());
    }

    #[test]
    fn plain_pictures_pass_through_as_grayscale() {
        let image = RgbImage::from_pixel(1000, 1000, Rgb([40, 120, 40]));
        let page = prepare_for_ocr(&image);
        assert_eq!(page.dimensions(), (1000 + 2 * MARGIN, 1000 + 2 * MARGIN));
        assert_eq!(page.get_pixel(500, 500).0[0], imageops::grayscale(&image).get_pixel(0, 0).0[0]);
    }
}
