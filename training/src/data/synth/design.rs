//! The benign-confounder design of the synthetic set: which picture goes with which
//! caption, and which pairs are labelled "hateful".
//!
//! Every meme pairs one image concept (a *subject*: sun, tree, ...) with one text
//! concept (a *topic*). With `k` concepts of each kind, the pair (subject `s`, topic `t`)
//! is hateful when `(s + t) mod k < k / 2`. Every row and every column of that table
//! holds exactly `k / 2` hateful cells, so:
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
//! **Captions.** A caption is a [`TEMPLATES`] sentence whose slot holds one word of a
//! [`WORD_FAMILIES`] family; the topic decides *which* word of the family. The words of
//! a family have the same length and differ in one letter ("bake", "cake", "lake", ...),
//! and which letter means which topic changes from family to family. So the caption's
//! wording, length and line layout say nothing about the topic: a text encoder reads it
//! from one token, while a CNN would have to resolve one letter of a few-pixel-high word
//! somewhere in the caption (the reason image-only models stay near chance, as on the
//! real data, where image models do not read the caption either). An earlier design with
//! five fixed sentences per topic let a tiny CNN recognise each caption's shape and
//! reach AUROC 1 "image-only".
//!
//! The captions are deliberately harmless everyday phrases: "hateful" is only the
//! name of the synthetic label.

use rand::Rng;
use rand::seq::SliceRandom;

use super::super::seed::{Stream, rng_for};

/// Image concepts, in order; the first `k` are used.
pub const SUBJECTS: [&str; 6] = ["sun", "tree", "house", "car", "fish", "flower"];

/// Text concepts, in order; the first `k` are used. Topic `t` picks word
/// `(t + f) mod 6` of family `f` (see [`topic_word`]).
pub const TOPICS: [&str; 6] = ["topic-a", "topic-b", "topic-c", "topic-d", "topic-e", "topic-f"];

/// Caption sentences; `{}` is where the family word goes.
pub const TEMPLATES: [&str; 10] = [
    "me looking at the {}",
    "when the {} is finally here",
    "nobody: me with the {}",
    "that {} again this morning",
    "my friend said the {} was fine",
    "i just wanted one more {}",
    "the {} and me every weekend",
    "when someone mentions the {}",
    "this {} is all i need today",
    "they told me about the {} too late",
];

/// Families of six same-length words that differ in one letter. Every word is harmless.
pub const WORD_FAMILIES: [[&str; 6]; 12] = [
    ["bake", "cake", "lake", "make", "rake", "take"],
    ["bold", "cold", "fold", "gold", "hold", "told"],
    ["fine", "line", "mine", "nine", "pine", "wine"],
    ["ball", "call", "fall", "hall", "mall", "wall"],
    ["bear", "dear", "gear", "near", "pear", "year"],
    ["book", "cook", "hook", "look", "nook", "took"],
    ["bent", "dent", "rent", "sent", "tent", "went"],
    ["ding", "king", "ring", "sing", "wing", "zing"],
    ["back", "jack", "pack", "rack", "sack", "tack"],
    ["boat", "coat", "goat", "moat", "beat", "seat"],
    ["dice", "mice", "nice", "rice", "ride", "wide"],
    ["bump", "jump", "lump", "pump", "dump", "hump"],
];

/// The alternative caption set ([`CaptionKind::Phrases`]): five fixed sentences per
/// topic, slot `i` of about the same length in every topic. Every word of a sentence is
/// topic-specific, so the text side is easy; drawn large, a CNN recognises each
/// sentence's shape (use a small `caption_scale` to keep image-only models from reading it).
pub const PHRASES: [[&str; 5]; 6] = [
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

/// Which caption set a design uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CaptionKind {
    /// A template sentence with one word-family slot ([`TEMPLATES`], [`WORD_FAMILIES`]).
    #[default]
    Families,
    /// Five fixed sentences per topic ([`PHRASES`]).
    Phrases,
}

/// The word of family `family` that stands for topic `topic`.
pub fn topic_word(family: usize, topic: usize) -> &'static str {
    WORD_FAMILIES[family][(topic + family) % 6]
}

/// The largest number of concepts of each kind.
pub const MAX_CONCEPTS: usize = SUBJECTS.len();

/// The pairing table for `k` concepts of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Design {
    k: usize,
    families: usize,
    captions: CaptionKind,
}

/// Why a design cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("concepts must be an even number from 2 to {MAX_CONCEPTS}, got {0}")]
pub struct BadConceptCount(pub usize);

/// Why a word-family count is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("word families must be between 1 and 12, got {0}")]
pub struct BadFamilyCount(pub usize);

/// One planned meme: its concepts, caption and label (rendering comes later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMeme {
    /// Index of the image concept in [`SUBJECTS`].
    pub subject: usize,
    /// Index of the text concept in [`TOPICS`].
    pub topic: usize,
    /// Which caption set `template` and `family` index.
    pub captions: CaptionKind,
    /// Index of the caption sentence in [`TEMPLATES`] (or in the topic's [`PHRASES`]).
    pub template: usize,
    /// Index of the word family in [`WORD_FAMILIES`].
    pub family: usize,
    /// 1 = hateful (synthetic), 0 = benign.
    pub label: u8,
}

impl PlannedMeme {
    /// The caption text.
    pub fn text(&self) -> String {
        match self.captions {
            CaptionKind::Families => TEMPLATES[self.template].replace("{}", topic_word(self.family, self.topic)),
            CaptionKind::Phrases => PHRASES[self.topic][self.template].to_string(),
        }
    }
}

impl Design {
    /// A design with `k` subjects and `k` topics (`k` even, 2..=6).
    pub fn new(k: usize) -> Result<Self, BadConceptCount> {
        if !(2..=MAX_CONCEPTS).contains(&k) || !k.is_multiple_of(2) {
            return Err(BadConceptCount(k));
        }
        Ok(Design { k, families: WORD_FAMILIES.len(), captions: CaptionKind::Families })
    }

    /// The same design with captions drawing their topic word from the first
    /// `families` word families only (fewer distinct topic words per topic).
    pub fn with_families(self, families: usize) -> Result<Self, BadFamilyCount> {
        if !(1..=WORD_FAMILIES.len()).contains(&families) {
            return Err(BadFamilyCount(families));
        }
        Ok(Design { families, ..self })
    }

    /// The same design with another caption set.
    pub fn with_captions(self, captions: CaptionKind) -> Self {
        Design { captions, ..self }
    }

    /// Number of word families the captions use.
    pub fn families(&self) -> usize {
        self.families
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
                let (template, family) = match self.captions {
                    CaptionKind::Families => (rng.random_range(0..TEMPLATES.len()), rng.random_range(0..self.families)),
                    CaptionKind::Phrases => (rng.random_range(0..PHRASES[topic].len()), 0),
                };
                out.push(PlannedMeme {
                    subject,
                    topic,
                    captions: self.captions,
                    template,
                    family,
                    label: self.label(subject, topic),
                });
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
    fn family_words_have_one_length_and_differ_in_one_letter() {
        for family in WORD_FAMILIES {
            for a in family {
                assert_eq!(a.len(), family[0].len(), "{family:?}");
                for b in family.iter().filter(|b| **b != a) {
                    let differing = a.chars().zip(b.chars()).filter(|(x, y)| x != y).count();
                    assert!((1..=2).contains(&differing), "{a} / {b}");
                }
            }
        }
    }

    #[test]
    fn each_topic_gets_a_different_word_of_every_family() {
        for f in 0..WORD_FAMILIES.len() {
            let words: std::collections::HashSet<_> = (0..MAX_CONCEPTS).map(|t| topic_word(f, t)).collect();
            assert_eq!(words.len(), MAX_CONCEPTS);
        }
        // The letter that marks a topic is not the same in every family.
        assert_ne!(&topic_word(0, 0)[..1], &topic_word(1, 0)[..1]);
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
