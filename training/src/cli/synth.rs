//! `memeguard-train synth`: writes a synthetic meme data set in the Hateful Memes layout.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use memeguard_training::data::synth::{self, Difficulty, SynthConfig};

const LONG_ABOUT: &str = "\
Write a synthetic meme data set in the Hateful Memes layout.

Each meme is a drawn scene with one subject (sun, tree, house, car, fish, flower) and a
caption rendered on it in DejaVu Sans Bold, white with a dark outline; the caption is
also the `text` field. Labels follow a benign-confounder design: with K subjects and K
caption topics, the pair (subject s, topic t) is labelled hateful when
(s + t) mod K < K/2. Every caption and every subject therefore appears equally often
with both labels: a model that sees only the caption, or only the picture (without
reading the caption drawn on it), stays at chance (AUROC 0.5), while a model that
combines both can reach AUROC 1. A caption is one of ten sentences with a slot filled by
a word of a same-length family (bake/cake/lake/...); the topic decides which word, so
the drawn caption's wording, length and layout do not give the topic away, only one
letter of one word does. The captions are harmless everyday
phrases; 'hateful' is only the name of the synthetic label.

Output (DIR):
  train.jsonl, dev_seen.jsonl, test_seen.jsonl   {\"id\",\"img\",\"label\",\"text\"} per line
  img/<id>.png                                   the images (ids keep leading zeros)
  synth.json                                     the configuration and the pairing table
  concepts.jsonl                                 each meme's image and text concept

The same options and seed give the same bytes, whatever --threads is.

Examples:
  # the benchmark set of docs/training.md and the demo model (captions drawn too small
  # for a 64-px image model to read; the text field carries them in full)
  memeguard-train synth --out data/synth --train 2048 --dev 256 --test 256 --size 96 \
      --difficulty easy --captions phrases --caption-scale 0.35
  # a tiny set for a laptop CPU recipe
  memeguard-train synth --out data/synth-tiny --train 512 --dev 128 --test 128 --size 64
  # harder images (noise, distractors, two fonts, split captions)
  memeguard-train synth --out data/synth --difficulty hard";

/// Options of `memeguard-train synth`.
#[derive(Debug, clap::Args)]
#[command(about = "Write a synthetic meme data set (Hateful Memes layout, benign confounders)", long_about = LONG_ABOUT)]
pub struct Args {
    /// Directory to write (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Memes in train.jsonl.
    #[arg(long, default_value_t = 2000)]
    pub train: usize,
    /// Memes in dev_seen.jsonl.
    #[arg(long, default_value_t = 500)]
    pub dev: usize,
    /// Memes in test_seen.jsonl.
    #[arg(long, default_value_t = 500)]
    pub test: usize,
    /// Image side in pixels (square images, 16..=4096).
    #[arg(long, value_name = "PX", default_value_t = 224)]
    pub size: u32,
    /// Random seed; the same seed and options give the same files byte for byte.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How hard the images are: noise, fonts and sizes, caption placement, distractors.
    #[arg(long, value_enum, default_value_t = Difficulty::Medium)]
    pub difficulty: Difficulty,
    /// Number of image concepts and of text concepts (even, 2..=6); 2 makes the rule an XOR.
    #[arg(long, value_name = "K", default_value_t = 4)]
    pub concepts: usize,
    /// Word families the topic words come from (1..=12): each family gives every topic
    /// one word, so fewer families mean fewer distinct topic words.
    #[arg(long, value_name = "N", default_value_t = 12)]
    pub families: usize,
    /// Caption set: `families` (template + one word of a same-length family) or
    /// `phrases` (five fixed sentences per topic; a CNN can recognise them when drawn large).
    #[arg(long, value_enum, default_value_t = synth::design::CaptionKind::Families)]
    pub captions: synth::design::CaptionKind,
    /// Multiplies the drawn caption's size; below about 0.5 a 64-px model cannot read it.
    #[arg(long, default_value_t = 1.0)]
    pub caption_scale: f32,
    /// Rendering threads (default: all cores). The output does not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Overwrite a data set already in DIR.
    #[arg(long)]
    pub force: bool,
}

/// Runs `synth`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = SynthConfig {
        train: args.train,
        dev: args.dev,
        test: args.test,
        size: args.size,
        seed: args.seed,
        difficulty: args.difficulty,
        concepts: args.concepts,
        families: args.families,
        captions: args.captions,
        caption_scale: args.caption_scale,
    };
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let total = (config.train + config.dev + config.test) as u64;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} images, {per_sec}, ETA {eta}")
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    bar.set_message("rendering");
    let summary = synth::generate(&args.out, &config, args.force, threads, &|| bar.inc(1))
        .with_context(|| format!("writing the synthetic data set to {}", args.out.display()))?;
    bar.finish_with_message("done");
    for (file, n, hateful) in &summary.splits {
        println!("{}: {n} memes, {hateful} labelled hateful", args.out.join(file).display());
    }
    Ok(())
}
