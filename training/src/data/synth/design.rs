//! The benign-confounder design of the synthetic set: which picture goes with which
//! caption, and which pairs are labelled "hateful".
//!
//! Every meme pairs one image concept (a *subject*: sun, tree, ...) with one text
//! concept (a *topic*: morning, weekend, ...). With `k` concepts of each kind, the
//! pair (subject `s`, topic `t`) is hateful when `(s + t) mod k < k / 2`. Every row and
//! every column of that table holds exactly `k / 2` hateful cells, so:
//!
//! - each subject is hateful with half the topics and each topic with half the
//!   subjects: with all cells equally frequent, the label rate given the image concept
//!   alone, or given the text alone, is 0.5 (text-only models, and image-only models
//!   that do not read the caption drawn on the picture, stay at chance), the situation
//!   of Hateful Memes' "benign confounders";
//! - the pair decides the label exactly, so a model that combines both can reach
//!   AUROC 1.
//!
//! For `k = 2` the rule is an XOR. Cells are dealt in blocks of `k²` (one of each cell
//! per block, in a seeded random order), so every split is balanced to within one block.
//!
//! The captions are deliberately harmless everyday phrases: "hateful" is only the
//! name of the synthetic label. Caption lengths are matched across topics (slot `i` of
//! every topic has about the same length), so the length or shape of the rendered
//! caption does not reveal the topic to an image-only model.

use rand::Rng;
use rand::seq::SliceRandom;

use super::super::seed::{Stream, rng_for};

/// Image concepts, in order; the first `k` are used.
pub const SUBJECTS: [&str; 6] = ["sun", "tree", "house", "car", "fish", "flower"];

/// Text concepts, in order; the first `k` are used.
pub const TOPICS: [&str; 6] = ["morning", "weekend", "food", "school", "travel", "weather"];

/// Captions per topic. Slot `i` has about the same length in every topic.
pub const CAPTIONS: [[&str; 5]; 6] = [
    [
        "me every morning",
        "this is how mondays feel",
        "when the alarm rings at six am",
        "nobody talks to me before my coffee",
        "me pretending to be awake in the first meeting",
    ],
    [
        "weekend mode on",
        "saturday plans be like",
        "when friday finally shows up",
        "two whole days off and i did nothing",
        "sunday evening and the weekend is over already",
    ],
    [
        "dinner is served",
        "when someone says pizza",
        "my diet lasted until lunch time",
        "i only came here for the free snacks",
        "when the delivery arrives earlier than promised",
    ],
    [
        "homework time again",
        "the teacher said open book",
        "when the exam has no questions",
        "group projects always end up like this",
        "me explaining why the essay is three days late",
    ],
    [
        "vacation starts now",
        "the view from my window",
        "packing light they said easily",
        "when the train leaves without me today",
        "tourists taking the same photo for the tenth time",
    ],
    [
        "forecast says rain",
        "it is too hot outside",
        "when the sun comes out for once",
        "summer is here and so are the bugs",
        "when the weather app says sunny but it is pouring",
    ],
];

/// The largest number of concepts of each kind.
pub const MAX_CONCEPTS: usize = SUBJECTS.len();

/// The pairing table for `k` concepts of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Design {
    k: usize,
}

/// Why a design cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("concepts must be an even number from 2 to {MAX_CONCEPTS}, got {0}")]
pub struct BadConceptCount(pub usize);

/// One planned meme: its concepts, caption and label (rendering comes later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMeme {
    /// Index of the image concept in [`SUBJECTS`].
    pub subject: usize,
    /// Index of the text concept in [`TOPICS`].
    pub topic: usize,
    /// Index of the caption within the topic's [`CAPTIONS`].
    pub caption: usize,
    /// 1 = hateful (synthetic), 0 = benign.
    pub label: u8,
}

impl PlannedMeme {
    /// The caption text.
    pub fn text(&self) -> &'static str {
        CAPTIONS[self.topic][self.caption]
    }
}

impl Design {
    /// A design with `k` subjects and `k` topics (`k` even, 2..=6).
    pub fn new(k: usize) -> Result<Self, BadConceptCount> {
        if !(2..=MAX_CONCEPTS).contains(&k) || !k.is_multiple_of(2) {
            return Err(BadConceptCount(k));
        }
        Ok(Design { k })
    }

    /// Number of concepts of each kind.
    pub fn concepts(&self) -> usize {
        self.k
    }

    /// The label of the pair (subject, topic): 1 = hateful.
    pub fn label(&self, subject: usize, topic: usize) -> u8 {
        u8::from((subject + topic) % self.k < self.k / 2)
    }

    /// Plans `n` memes of one split. `split` only separates the random streams of the
    /// splits; the same `(seed, split, n)` always gives the same plan.
    pub fn plan(&self, seed: u64, split: u64, n: usize) -> Vec<PlannedMeme> {
        let cells = self.k * self.k;
        let mut out = Vec::with_capacity(n);
        let mut block = 0u64;
        while out.len() < n {
            let mut rng = rng_for(seed, Stream::SynthPlan, &[split, block]);
            let mut order: Vec<usize> = (0..cells).collect();
            order.shuffle(&mut rng);
            for cell in order.into_iter().take(n - out.len()) {
                let (subject, topic) = (cell / self.k, cell % self.k);
                let caption = rng.random_range(0..CAPTIONS[topic].len());
                out.push(PlannedMeme { subject, topic, caption, label: self.label(subject, topic) });
            }
            block += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_and_column_is_half_hateful() {
        for k in [2, 4, 6] {
            let d = Design::new(k).unwrap();
            for i in 0..k {
                let row: usize = (0..k).map(|t| d.label(i, t) as usize).sum();
                let col: usize = (0..k).map(|s| d.label(s, i) as usize).sum();
                assert_eq!((row, col), (k / 2, k / 2), "k={k} i={i}");
            }
        }
    }

    #[test]
    fn odd_or_out_of_range_counts_are_refused() {
        for k in [0, 1, 3, 5, 7, 8] {
            assert_eq!(Design::new(k), Err(BadConceptCount(k)));
        }
    }

    #[test]
    fn caption_lengths_match_across_topics() {
        for slot in 0..CAPTIONS[0].len() {
            let lens: Vec<usize> = CAPTIONS.iter().map(|c| c[slot].len()).collect();
            let spread = lens.iter().max().unwrap() - lens.iter().min().unwrap();
            assert!(spread <= 5, "slot {slot}: lengths {lens:?}");
        }
    }

    #[test]
    fn plan_deals_whole_blocks_of_cells() {
        let d = Design::new(4).unwrap();
        let plan = d.plan(3, 0, 32);
        let mut counts = [[0; 4]; 4];
        for m in &plan {
            counts[m.subject][m.topic] += 1;
        }
        assert!(counts.iter().flatten().all(|&c| c == 2), "{counts:?}");
        assert_eq!(plan, d.plan(3, 0, 32));
        assert_ne!(plan, d.plan(3, 1, 32));
    }
}
