//! Meme captions: white text with a dark outline, word-wrapped and centred, rendered
//! with the DejaVu fonts kept in `training/assets/fonts` (licence next to them).

use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, PxScaleFont, ScaleFont, point};
use image::RgbImage;

const SANS_BOLD: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-Bold.ttf");
const SERIF_BOLD: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSerif-Bold.ttf");

/// The embedded caption fonts: DejaVu Sans Bold first, then DejaVu Serif Bold.
pub fn fonts() -> &'static [FontRef<'static>] {
    static FONTS: OnceLock<Vec<FontRef<'static>>> = OnceLock::new();
    FONTS.get_or_init(|| {
        [SANS_BOLD, SERIF_BOLD]
            .iter()
            .map(|bytes| FontRef::try_from_slice(bytes).expect("embedded DejaVu font parses"))
            .collect()
    })
}

/// Where the caption goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Top,
    Bottom,
    /// First half of the words at the top, the rest at the bottom (classic meme layout).
    Split,
}

/// How to render one caption.
#[derive(Debug, Clone, Copy)]
pub struct CaptionStyle {
    /// Index into [`fonts`].
    pub font: usize,
    /// Line height as a fraction of the image height (before any shrink-to-fit).
    pub size: f32,
    pub placement: Placement,
    /// Outline colour (dark).
    pub outline: [u8; 3],
}

/// Draws `text` onto `img` in `style`. Text that would not fit is drawn smaller.
pub fn draw_caption(img: &mut RgbImage, text: &str, style: &CaptionStyle) {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return;
    }
    let blocks: Vec<(&[&str], bool)> = match style.placement {
        Placement::Top => vec![(&words[..], true)],
        Placement::Bottom => vec![(&words[..], false)],
        Placement::Split if words.len() >= 2 => {
            let mid = words.len().div_ceil(2);
            vec![(&words[..mid], true), (&words[mid..], false)]
        }
        Placement::Split => vec![(&words[..], true)],
    };
    let font = &fonts()[style.font % fonts().len()];
    let (w, h) = img.dimensions();
    let mut coverage = vec![0f32; (w * h) as usize];
    for (block, at_top) in blocks {
        layout_block(font, block, at_top, style.size, w, h, &mut coverage);
    }
    // Outline about a twelfth of the line height, as meme generators draw it.
    let radius = (style.size * h as f32 / 12.0).round().max(1.0) as i64;
    composite(img, &coverage, style.outline, radius);
}

/// Lays out one block of words (wrapped, centred) and rasterises it into `coverage`.
fn layout_block(
    font: &FontRef<'static>,
    words: &[&str],
    at_top: bool,
    size: f32,
    w: u32,
    h: u32,
    coverage: &mut [f32],
) {
    let max_width = w as f32 * 0.92;
    let max_height = h as f32 * 0.4;
    // Shrinking stops at 6 px, or at the asked size when that is smaller.
    let floor = (size * h as f32).clamp(2.0, 6.0);
    let mut px = (size * h as f32).max(floor);
    // Shrink until every word fits the width and the block fits 40% of the height.
    let lines = loop {
        let scaled = font.as_scaled(PxScale::from(px));
        let lines = wrap(&scaled, words, max_width);
        let widest = lines.iter().map(|l| line_width(&scaled, l)).fold(0.0, f32::max);
        if (widest <= max_width && lines.len() as f32 * scaled.height() <= max_height) || px <= floor {
            break lines;
        }
        px *= 0.9;
    };
    let scaled = font.as_scaled(PxScale::from(px));
    let margin = h as f32 * 0.03;
    let block_height = lines.len() as f32 * scaled.height();
    let top = if at_top { margin } else { h as f32 - margin - block_height };
    for (i, line) in lines.iter().enumerate() {
        let baseline = top + i as f32 * scaled.height() + scaled.ascent();
        let mut x = (w as f32 - line_width(&scaled, line)) / 2.0;
        let mut previous = None;
        for c in line.chars() {
            let id = scaled.glyph_id(c);
            if let Some(prev) = previous {
                x += scaled.kern(prev, id);
            }
            let glyph = id.with_scale_and_position(px, point(x, baseline));
            x += scaled.h_advance(id);
            previous = Some(id);
            let Some(outlined) = font.outline_glyph(glyph) else { continue };
            let bounds = outlined.px_bounds();
            outlined.draw(|gx, gy, c| {
                let (x, y) = (bounds.min.x as i64 + gx as i64, bounds.min.y as i64 + gy as i64);
                if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                    let cell = &mut coverage[(y as u32 * w + x as u32) as usize];
                    *cell = (*cell + c).min(1.0);
                }
            });
        }
    }
}

/// Greedy word wrap; a word wider than the line stays on a line of its own.
fn wrap(font: &PxScaleFont<&FontRef<'static>>, words: &[&str], max_width: f32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in words {
        let candidate = if current.is_empty() { word.to_string() } else { format!("{current} {word}") };
        if current.is_empty() || line_width(font, &candidate) <= max_width {
            current = candidate;
        } else {
            lines.push(std::mem::replace(&mut current, word.to_string()));
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

fn line_width(font: &PxScaleFont<&FontRef<'static>>, line: &str) -> f32 {
    let mut width = 0.0;
    let mut previous = None;
    for c in line.chars() {
        let id = font.glyph_id(c);
        if let Some(prev) = previous {
            width += font.kern(prev, id);
        }
        width += font.h_advance(id);
        previous = Some(id);
    }
    width
}

/// Paints the outline (coverage dilated by a disc) in the dark colour, then the text in white.
fn composite(img: &mut RgbImage, coverage: &[f32], outline: [u8; 3], radius: i64) {
    let (w, h) = img.dimensions();
    let offsets: Vec<(i64, i64)> = (-radius..=radius)
        .flat_map(|dy| (-radius..=radius).map(move |dx| (dx, dy)))
        .filter(|(dx, dy)| dx * dx + dy * dy <= radius * radius + radius)
        .collect();
    // Only the rows that hold text, widened by the outline, can change.
    let rows_with_text: Vec<i64> =
        (0..h as i64).filter(|y| coverage[(*y * w as i64) as usize..][..w as usize].iter().any(|&c| c > 0.0)).collect();
    let (Some(&first), Some(&last)) = (rows_with_text.first(), rows_with_text.last()) else { return };
    for y in (first - radius).max(0)..=(last + radius).min(h as i64 - 1) {
        for x in 0..w as i64 {
            let mut halo = 0f32;
            for (dx, dy) in &offsets {
                let (sx, sy) = (x + dx, y + dy);
                if sx >= 0 && sy >= 0 && sx < w as i64 && sy < h as i64 {
                    halo = halo.max(coverage[(sy * w as i64 + sx) as usize]);
                }
            }
            if halo == 0.0 {
                continue;
            }
            let text = coverage[(y * w as i64 + x) as usize];
            let pixel = img.get_pixel_mut(x as u32, y as u32);
            for ch in 0..3 {
                let under = pixel[ch] as f32 * (1.0 - halo) + outline[ch] as f32 * halo;
                pixel[ch] = (under * (1.0 - text) + 255.0 * text).round() as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn caption_paints_white_text_and_dark_outline_where_placed() {
        let mut img = RgbImage::from_pixel(96, 96, Rgb([120, 160, 200]));
        let style = CaptionStyle { font: 0, size: 0.15, placement: Placement::Top, outline: [0, 0, 0] };
        draw_caption(&mut img, "HELLO WORLD", &style);
        let (mut white, mut black, mut bottom_changed) = (0, 0, 0);
        for (_, y, p) in img.enumerate_pixels() {
            if p.0.iter().all(|&c| c >= 200) {
                white += 1;
            }
            if p.0.iter().all(|&c| c <= 60) {
                black += 1;
            }
            if y > 60 && p.0 != [120, 160, 200] {
                bottom_changed += 1;
            }
        }
        assert!(white > 50 && black > 50, "white {white} black {black}");
        assert_eq!(bottom_changed, 0, "a top caption must leave the bottom alone");
    }

    #[test]
    fn long_caption_shrinks_to_fit() {
        let mut img = RgbImage::from_pixel(64, 64, Rgb([0, 0, 0]));
        let style = CaptionStyle { font: 1, size: 0.3, placement: Placement::Bottom, outline: [0, 0, 0] };
        draw_caption(&mut img, "tourists taking the same photo for the tenth time", &style);
        let top_rows_changed = img.enumerate_pixels().filter(|(_, y, p)| *y < 20 && p.0 != [0, 0, 0]).count();
        assert_eq!(top_rows_changed, 0);
        assert!(img.pixels().any(|p| p.0.iter().all(|&c| c >= 200)));
    }
}
