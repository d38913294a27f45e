//! PDQ, the perceptual hash of Meta's ThreatExchange (and its Hasher-Matcher-Actioner),
//! written from the published algorithm (`hashing.pdf` in facebook/ThreatExchange):
//!
//! 1. luminance `Y = 0.299 R + 0.587 G + 0.114 B` as floats;
//! 2. two passes of Jarosz box filters along rows then columns, each window
//!    `ceil(dimension / 128)` (rounded as `(old + 2·64 − 1) / (2·64)`), then a 64×64
//!    decimation sampling each cell's centre;
//! 3. a 2-D DCT of the 64×64 block keeping coefficients 1..=16 along each axis (16×16;
//!    the DC row and column are dropped);
//! 4. bit `16·i + j` is set where coefficient `(i, j)` exceeds the median of the 256;
//! 5. quality: the 64×64 block's summed absolute neighbour differences (scaled to
//!    0..100 per step) / 90, capped at 100. Below ~50 a hash says little.
//!
//! The hex form is the reference's: the 16 words (one per DCT row, bit `j` = column `j`)
//! from the last to the first, each as 4 hex digits.

use image::RgbImage;

/// Side of the decimated block.
const BLOCK: usize = 64;
/// Side of the kept DCT coefficients.
const KEPT: usize = 16;
const JAROSZ_PASSES: usize = 2;

/// A 256-bit PDQ hash: `words[i]` holds row `i` of the thresholded DCT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PdqHash {
    pub words: [u16; KEPT],
}

impl PdqHash {
    /// Number of differing bits (0..=256).
    pub fn distance(&self, other: &PdqHash) -> u32 {
        self.words.iter().zip(&other.words).map(|(a, b)| (a ^ b).count_ones()).sum()
    }

    /// 64 hex digits, as the reference implementation prints them.
    pub fn to_hex(&self) -> String {
        self.words.iter().rev().map(|w| format!("{w:04x}")).collect()
    }

    /// Parses [`PdqHash::to_hex`]'s form.
    pub fn from_hex(hex: &str) -> Option<PdqHash> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut words = [0u16; KEPT];
        for (k, chunk) in hex.as_bytes().chunks(4).enumerate() {
            let s = std::str::from_utf8(chunk).ok()?;
            words[KEPT - 1 - k] = u16::from_str_radix(s, 16).ok()?;
        }
        Some(PdqHash { words })
    }
}

/// The hash of `image` and its quality (0..=100).
pub fn pdq_hash(image: &RgbImage) -> (PdqHash, u32) {
    let (cols, rows) = (image.width() as usize, image.height() as usize);
    let mut luma: Vec<f32> =
        image.pixels().map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])).collect();
    if cols == 0 || rows == 0 {
        return (PdqHash { words: [0; KEPT] }, 0);
    }
    let window_along_rows = jarosz_window(cols);
    let window_along_cols = jarosz_window(rows);
    let mut scratch = vec![0f32; luma.len()];
    let mut prefix = Vec::with_capacity(cols.max(rows) + 1);
    let mut column_sums = vec![0f64; cols];
    for _ in 0..JAROSZ_PASSES {
        for r in 0..rows {
            box_filter(&luma, &mut scratch, r * cols, cols, 1, window_along_rows, &mut prefix);
        }
        box_filter_columns(&scratch, &mut luma, rows, cols, window_along_cols, &mut prefix, &mut column_sums);
    }
    let mut block = [[0f32; BLOCK]; BLOCK];
    for (i, row) in block.iter_mut().enumerate() {
        let r = (((i as f64 + 0.5) * rows as f64) / BLOCK as f64) as usize;
        for (j, cell) in row.iter_mut().enumerate() {
            let c = (((j as f64 + 0.5) * cols as f64) / BLOCK as f64) as usize;
            *cell = luma[r.min(rows - 1) * cols + c.min(cols - 1)];
        }
    }
    let quality = quality(&block);
    let dct = dct_16(&block);
    let mut sorted: Vec<f32> = dct.iter().flatten().copied().collect();
    sorted.sort_by(f32::total_cmp);
    // The reference's median of an even count is the lower middle value.
    let median = sorted[sorted.len() / 2 - 1];
    let mut words = [0u16; KEPT];
    for (i, row) in dct.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            if v > median {
                words[i] |= 1 << j;
            }
        }
    }
    (PdqHash { words }, quality)
}

/// Box-filter window for reducing `dimension` samples to 64 (at least 1).
fn jarosz_window(dimension: usize) -> usize {
    dimension.div_ceil(2 * BLOCK).max(1)
}

/// A centred mean of width `window` over `len` samples of `input` starting at `start`,
/// `stride` apart, written to the same positions of `output`. Output `o` averages samples
/// `[o + h − window, o + h)` with `h = (window + 2) / 2`, truncated at both ends (the
/// reference's running sum with its shrinking windows at the edges).
fn box_filter(
    input: &[f32],
    output: &mut [f32],
    start: usize,
    len: usize,
    stride: usize,
    window: usize,
    prefix: &mut Vec<f64>,
) {
    let window = window.min(len);
    let half = (window + 2) / 2;
    prefix.clear();
    prefix.push(0f64);
    let mut sum = 0f64;
    for k in 0..len {
        sum += f64::from(input[start + k * stride]);
        prefix.push(sum);
    }
    for o in 0..len {
        let hi = (o + half).min(len);
        let lo = (o + half).saturating_sub(window);
        output[start + o * stride] = ((prefix[hi] - prefix[lo]) / (hi - lo) as f64) as f32;
    }
}

/// [`box_filter`] down every column of a `rows`×`cols` row-major image, computed row by
/// row so memory is read in order (a column walk touches a new cache line per sample,
/// which made this pass most of the server's CPU time). Same sums in the same order, so
/// the same values as calling [`box_filter`] per column. `prefix` receives every row's
/// column-wise running sums (`(rows + 1) × cols` values, reused across calls); `running`
/// is scratch of `cols` values.
fn box_filter_columns(
    input: &[f32],
    output: &mut [f32],
    rows: usize,
    cols: usize,
    window: usize,
    prefix: &mut Vec<f64>,
    running: &mut [f64],
) {
    let window = window.min(rows);
    let half = (window + 2) / 2;
    prefix.clear();
    prefix.resize((rows + 1) * cols, 0f64);
    running.fill(0f64);
    for r in 0..rows {
        let row = &input[r * cols..(r + 1) * cols];
        let next = &mut prefix[(r + 1) * cols..(r + 2) * cols];
        for ((sum, &v), out) in running.iter_mut().zip(row).zip(next.iter_mut()) {
            *sum += f64::from(v);
            *out = *sum;
        }
    }
    for o in 0..rows {
        let hi = (o + half).min(rows);
        let lo = (o + half).saturating_sub(window);
        let count = (hi - lo) as f64;
        let (top, bottom) = (&prefix[lo * cols..(lo + 1) * cols], &prefix[hi * cols..(hi + 1) * cols]);
        for ((out, &b), &t) in output[o * cols..(o + 1) * cols].iter_mut().zip(bottom).zip(top) {
            *out = ((b - t) / count) as f32;
        }
    }
}

/// Coefficients 1..=16 of the 2-D DCT-II of the block (`D · A · Dᵀ`).
fn dct_16(block: &[[f32; BLOCK]; BLOCK]) -> [[f32; KEPT]; KEPT] {
    let scale = (2.0 / BLOCK as f64).sqrt();
    let mut basis = [[0f64; BLOCK]; KEPT];
    for (i, row) in basis.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = scale * (std::f64::consts::PI / 2.0 / BLOCK as f64 * (i as f64 + 1.0) * (2.0 * j as f64 + 1.0)).cos();
        }
    }
    // T = D · A (16×64), then T · Dᵀ (16×16).
    let mut partial = [[0f64; BLOCK]; KEPT];
    for i in 0..KEPT {
        for k in 0..BLOCK {
            let d = basis[i][k];
            for j in 0..BLOCK {
                partial[i][j] += d * f64::from(block[k][j]);
            }
        }
    }
    let mut out = [[0f32; KEPT]; KEPT];
    for i in 0..KEPT {
        for j in 0..KEPT {
            out[i][j] = partial[i].iter().zip(&basis[j]).map(|(a, b)| a * b).sum::<f64>() as f32;
        }
    }
    out
}

/// The reference's image-domain quality metric on the 64×64 block.
fn quality(block: &[[f32; BLOCK]; BLOCK]) -> u32 {
    let step = |u: f32, v: f32| (((u - v) * 100.0 / 255.0) as i64).unsigned_abs();
    let mut gradient = 0u64;
    for rows in block.windows(2) {
        for (&u, &v) in rows[0].iter().zip(&rows[1]) {
            gradient += step(u, v);
        }
    }
    for row in block {
        for pair in row.windows(2) {
            gradient += step(pair[0], pair[1]);
        }
    }
    (gradient / 90).min(100) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_filter_truncates_its_window_at_the_ends() {
        let input = [0.0, 0.0, 3.0, 0.0, 0.0];
        let mut out = [0f32; 5];
        box_filter(&input, &mut out, 0, 5, 1, 3, &mut Vec::new());
        assert_eq!(out, [0.0, 1.0, 1.0, 1.0, 0.0]);
        // Every other sample of a 2-row buffer, down a column (stride 2).
        let column = [6.0, 9.0, 0.0, 9.0, 0.0, 9.0];
        let mut out = [0f32; 6];
        box_filter(&column, &mut out, 0, 3, 2, 2, &mut Vec::new());
        assert_eq!([out[0], out[2], out[4]], [3.0, 0.0, 0.0]);
    }

    #[test]
    fn the_column_pass_equals_the_filter_down_each_column() {
        let (rows, cols) = (37, 11);
        let input: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 255) as f32 * 0.5).collect();
        for window in [1, 2, 5, 36, 40] {
            let mut want = vec![0f32; rows * cols];
            for c in 0..cols {
                box_filter(&input, &mut want, c, rows, cols, window, &mut Vec::new());
            }
            let mut got = vec![0f32; rows * cols];
            box_filter_columns(&input, &mut got, rows, cols, window, &mut Vec::new(), &mut vec![0f64; cols]);
            assert_eq!(got, want, "window {window}");
        }
    }

    /// Hashes that Meta's C++ reference implementation (PyPI `pdqhash`) computed for
    /// pictures drawn by `scripts/fixtures/make_pdq_fixtures.py` and committed as PNG in
    /// `tests/fixtures/pdq/`, so both sides hash exactly the same pixels: the hash must be
    /// the reference's bit for bit, the quality within 1. (During development this
    /// implementation also gave the published hashes of PDQ's "bridge" test pictures bit
    /// for bit.)
    #[test]
    fn matches_the_reference_implementation() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pdq");
        let text = std::fs::read_to_string(dir.join("reference.json")).expect("tests/fixtures/pdq/reference.json");
        let reference: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert!(reference.len() >= 5, "{reference:?}");
        for (file, want) in &reference {
            let image = image::open(dir.join(file)).unwrap().to_rgb8();
            let (hash, quality) = pdq_hash(&image);
            let want_hash = PdqHash::from_hex(want["hash"].as_str().unwrap()).unwrap();
            let want_quality = want["quality"].as_u64().unwrap() as u32;
            assert_eq!(
                hash.distance(&want_hash),
                0,
                "{file}: {} vs the reference {}",
                hash.to_hex(),
                want_hash.to_hex()
            );
            assert!(quality.abs_diff(want_quality) <= 1, "{file}: quality {quality} vs the reference {want_quality}");
        }
    }

    #[test]
    fn hex_round_trips_and_distance_counts_bits() {
        let h = PdqHash::from_hex("f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22").unwrap();
        assert_eq!(h.to_hex(), "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22");
        let mut other = h;
        other.words[3] ^= 0b1011;
        assert_eq!(h.distance(&other), 3);
        assert!(PdqHash::from_hex("xyz").is_none());
    }
}
