//! Text-length statistics printed when a split loads.

use std::fmt;

/// Caption lengths of a set of memes, in characters and words.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextStats {
    pub count: usize,
    pub empty: usize,
    pub chars_mean: f64,
    pub chars_median: usize,
    pub chars_p95: usize,
    pub chars_max: usize,
    pub words_mean: f64,
    pub words_max: usize,
}

impl TextStats {
    /// Statistics of `texts`.
    pub fn of<'a>(texts: impl Iterator<Item = &'a str>) -> Self {
        let (mut chars, mut words): (Vec<usize>, Vec<usize>) =
            texts.map(|t| (t.chars().count(), t.split_whitespace().count())).unzip();
        let count = chars.len();
        if count == 0 {
            return TextStats::default();
        }
        chars.sort_unstable();
        words.sort_unstable();
        let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
        // Nearest-rank percentile.
        let rank = |p: f64| chars[((p * count as f64).ceil() as usize).clamp(1, count) - 1];
        TextStats {
            count,
            empty: chars.iter().take_while(|&&c| c == 0).count(),
            chars_mean: mean(&chars),
            chars_median: rank(0.5),
            chars_p95: rank(0.95),
            chars_max: chars[count - 1],
            words_mean: mean(&words),
            words_max: words[count - 1],
        }
    }
}

impl fmt::Display for TextStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.1} chars on average (median {}, 95th percentile {}, max {}), {:.1} words (max {}), {} empty",
            self.chars_mean,
            self.chars_median,
            self.chars_p95,
            self.chars_max,
            self.words_mean,
            self.words_max,
            self.empty
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_percentiles() {
        let s = TextStats::of(["", "ab", "a b c", "abcd"].into_iter());
        assert_eq!((s.count, s.empty, s.chars_max, s.chars_median, s.words_max), (4, 1, 5, 2, 3));
        assert!((s.chars_mean - 2.75).abs() < 1e-9);
        assert_eq!(TextStats::of(std::iter::empty()), TextStats::default());
    }
}
