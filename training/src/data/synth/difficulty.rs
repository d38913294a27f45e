//! How hard the synthetic images are to read: one named level sets every knob.

use serde::{Deserialize, Serialize};

/// Difficulty of the synthetic images. The labels follow the same design at every level;
/// what changes is how much visual variation the image encoder must see through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    /// Plain background, large centred subject, sans caption at the top, no noise.
    Easy,
    /// Gradient background, subject anywhere at 35–65% of the image, 0–3 distractors,
    /// caption at the top or bottom in varying sizes, light noise.
    #[default]
    Medium,
    /// Striped backgrounds, smaller rotated subjects, 2–6 distractors, two fonts,
    /// split captions, stronger noise.
    Hard,
}

/// The knobs one [`Difficulty`] sets.
#[derive(Debug, Clone, Copy)]
pub struct Knobs {
    pub gradient: bool,
    pub texture: bool,
    /// Inclusive range of distractor shapes.
    pub distractors: (u32, u32),
    /// Subject size as a fraction of the image side.
    pub subject_scale: (f32, f32),
    pub centered: bool,
    pub rotate: bool,
    /// Noise standard deviation in 8-bit levels.
    pub noise: f32,
    /// Number of fonts drawn from (the first `fonts` of the embedded ones).
    pub fonts: usize,
    /// Caption line height as a fraction of the image height.
    pub text_size: (f32, f32),
    /// Whether the caption may go at the bottom, and be split top/bottom.
    pub bottom: bool,
    pub split: bool,
}

impl Difficulty {
    /// The knobs of this level.
    pub fn knobs(self) -> Knobs {
        match self {
            Difficulty::Easy => Knobs {
                gradient: false,
                texture: false,
                distractors: (0, 0),
                subject_scale: (0.6, 0.6),
                centered: true,
                rotate: false,
                noise: 0.0,
                fonts: 1,
                text_size: (0.1, 0.1),
                bottom: false,
                split: false,
            },
            Difficulty::Medium => Knobs {
                gradient: true,
                texture: false,
                distractors: (0, 3),
                subject_scale: (0.35, 0.65),
                centered: false,
                rotate: false,
                noise: 4.0,
                fonts: 1,
                text_size: (0.08, 0.12),
                bottom: true,
                split: false,
            },
            Difficulty::Hard => Knobs {
                gradient: true,
                texture: true,
                distractors: (2, 6),
                subject_scale: (0.25, 0.5),
                centered: false,
                rotate: true,
                noise: 10.0,
                fonts: 2,
                text_size: (0.07, 0.13),
                bottom: true,
                split: true,
            },
        }
    }
}
