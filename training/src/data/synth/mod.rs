//! The synthetic meme generator: writes a data set in the Hateful Memes layout
//! (`train.jsonl`, `dev_seen.jsonl`, `test_seen.jsonl`, `img/*.png`) whose labels follow
//! the benign-confounder [`design`]. The same configuration gives the same bytes.
//!
//! Besides the Hateful Memes files it writes `synth.json` (the configuration and the
//! design) and `concepts.jsonl` (each meme's image and text concept), which readers of
//! the layout ignore; they exist to check the design and to explain results.

pub mod caption;
pub mod design;
pub mod difficulty;
pub mod scene;

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use image::RgbImage;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use rand::Rng;
use serde::{Deserialize, Serialize};

use self::caption::{CaptionStyle, Placement, draw_caption};
use self::design::{Design, PlannedMeme, SUBJECTS, TOPICS};
pub use self::difficulty::Difficulty;
use super::seed::{Stream, rng_for};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Memes in `train.jsonl`.
    pub train: usize,
    /// Memes in `dev_seen.jsonl`.
    pub dev: usize,
    /// Memes in `test_seen.jsonl`.
    pub test: usize,
    /// Image side in pixels (images are square).
    pub size: u32,
    pub seed: u64,
    pub difficulty: Difficulty,
    /// Image concepts and text concepts (even, 2..=6).
    pub concepts: usize,
    /// Word families the captions' topic words come from (1..=12); fewer families
    /// mean fewer distinct topic words, an easier text side.
    #[serde(default = "all_families")]
    pub families: usize,
    /// Which caption set the memes use.
    #[serde(default)]
    pub captions: design::CaptionKind,
    /// Multiplies the drawn caption's size (1 = the difficulty's sizes; below about 0.5
    /// the caption is too small for a 64-px model input to read).
    #[serde(default = "unit_scale")]
    pub caption_scale: f32,
}

fn unit_scale() -> f32 {
    1.0
}

fn all_families() -> usize {
    design::WORD_FAMILIES.len()
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            train: 2000,
            dev: 500,
            test: 500,
            size: 224,
            seed: 0,
            difficulty: Difficulty::Medium,
            concepts: 4,
            families: all_families(),
            captions: design::CaptionKind::Families,
            caption_scale: unit_scale(),
        }
    }
}

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(transparent)]
    Concepts(#[from] design::BadConceptCount),
    #[error(transparent)]
    Families(#[from] design::BadFamilyCount),
    #[error("caption scale must be in (0, 4], got {0}")]
    BadCaptionScale(f32),
    #[error("image size must be between 16 and 4096 pixels, got {0}")]
    BadSize(u32),
    #[error("{0} already holds a data set (train.jsonl); choose another directory or pass --force")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: encoding PNG: {source}")]
    Png { path: PathBuf, source: image::ImageError },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io { path: path.to_path_buf(), source }
}

/// The split files written, in order, with the number of memes each holds.
pub const SPLIT_FILES: [&str; 3] = ["train.jsonl", "dev_seen.jsonl", "test_seen.jsonl"];

/// One line of a Hateful Memes jsonl file as the generator writes it.
#[derive(Serialize)]
struct MemeLine<'a> {
    id: &'a str,
    img: &'a str,
    label: u8,
    text: &'a str,
}

/// One line of `concepts.jsonl`.
#[derive(Serialize)]
struct ConceptLine<'a> {
    id: &'a str,
    split: &'a str,
    image_concept: &'a str,
    text_concept: &'a str,
    label: u8,
}

/// A meme to render: where it goes and what it shows.
struct Job {
    id: String,
    global: u64,
    plan: PlannedMeme,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    pub dir: PathBuf,
    /// (file name, memes, hateful) per split file.
    pub splits: Vec<(String, usize, usize)>,
}

/// Generates the data set into `out`. `threads` render in parallel (the bytes do not
/// depend on it); `progress` is called once per image written, from any thread.
pub fn generate(
    out: &Path,
    config: &SynthConfig,
    force: bool,
    threads: usize,
    progress: &(dyn Fn() + Sync),
) -> Result<SynthSummary, SynthError> {
    let design = Design::new(config.concepts)?.with_families(config.families)?.with_captions(config.captions);
    if !(config.caption_scale > 0.0 && config.caption_scale <= 4.0) {
        return Err(SynthError::BadCaptionScale(config.caption_scale));
    }
    if !(16..=4096).contains(&config.size) {
        return Err(SynthError::BadSize(config.size));
    }
    if out.join("train.jsonl").exists() && !force {
        return Err(SynthError::Exists(out.to_path_buf()));
    }
    let img_dir = out.join("img");
    fs::create_dir_all(&img_dir).map_err(io_err(&img_dir))?;

    let counts = [config.train, config.dev, config.test];
    let total: usize = counts.iter().sum();
    let width = total.to_string().len().max(5);
    let mut jobs = Vec::with_capacity(total);
    let mut summary = SynthSummary { dir: out.to_path_buf(), splits: Vec::new() };
    let concepts_path = out.join("concepts.jsonl");
    let mut concepts = BufWriter::new(fs::File::create(&concepts_path).map_err(io_err(&concepts_path))?);
    for (split, (file, &n)) in SPLIT_FILES.iter().zip(&counts).enumerate() {
        let path = out.join(file);
        let mut lines = BufWriter::new(fs::File::create(&path).map_err(io_err(&path))?);
        let plan = design.plan(config.seed, split as u64, n);
        summary.splits.push((file.to_string(), n, plan.iter().filter(|m| m.label == 1).count()));
        for meme in plan {
            let global = jobs.len() as u64;
            let id = format!("{:0width$}", global + 1);
            let img = format!("img/{id}.png");
            let text = meme.text();
            let line = MemeLine { id: &id, img: &img, label: meme.label, text: &text };
            writeln!(lines, "{}", serde_json::to_string(&line).expect("plain struct serialises"))
                .map_err(io_err(&path))?;
            let concept = ConceptLine {
                id: &id,
                split: file.trim_end_matches(".jsonl"),
                image_concept: SUBJECTS[meme.subject],
                text_concept: TOPICS[meme.topic],
                label: meme.label,
            };
            writeln!(concepts, "{}", serde_json::to_string(&concept).expect("plain struct serialises"))
                .map_err(io_err(&concepts_path))?;
            jobs.push(Job { id, global, plan: meme });
        }
        lines.flush().map_err(io_err(&path))?;
    }
    concepts.flush().map_err(io_err(&concepts_path))?;
    write_description(out, config, &design)?;

    let next = AtomicUsize::new(0);
    let render_all = || -> Result<(), SynthError> {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(i) else { return Ok(()) };
            let image = render(&job.plan, job.global, config);
            let path = img_dir.join(format!("{}.png", job.id));
            write_png(&path, &image)?;
            progress();
        }
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1)).map(|_| scope.spawn(render_all)).collect();
        handles.into_iter().try_for_each(|h| h.join().expect("render thread panicked"))
    })?;
    Ok(summary)
}

/// Renders one meme: scene, noise, caption. Depends only on the plan, `global` and the config.
pub fn render(plan: &PlannedMeme, global: u64, config: &SynthConfig) -> RgbImage {
    let knobs = config.difficulty.knobs();
    let mut rng = rng_for(config.seed, Stream::SynthRender, &[global]);
    let mut image = scene::draw_scene(plan.subject, config.size, &knobs, &mut rng);
    scene::add_noise(&mut image, knobs.noise, &mut rng);
    let placement = match (knobs.bottom, knobs.split, rng.random_range(0..3)) {
        (_, true, 2) => Placement::Split,
        (true, _, 1) => Placement::Bottom,
        _ => Placement::Top,
    };
    let shade: u8 = rng.random_range(0..40);
    let style = CaptionStyle {
        font: rng.random_range(0..knobs.fonts),
        size: rng.random_range(knobs.text_size.0..=knobs.text_size.1) * config.caption_scale,
        placement,
        outline: [shade, shade, shade],
    };
    draw_caption(&mut image, &plan.text(), &style);
    image
}

fn write_png(path: &Path, image: &RgbImage) -> Result<(), SynthError> {
    let file = fs::File::create(path).map_err(io_err(path))?;
    let encoder = PngEncoder::new_with_quality(BufWriter::new(file), CompressionType::Default, FilterType::Adaptive);
    image.write_with_encoder(encoder).map_err(|source| SynthError::Png { path: path.to_path_buf(), source })
}

/// `synth.json`: the configuration and the pairing table, for people and for checks.
fn write_description(out: &Path, config: &SynthConfig, design: &Design) -> Result<(), SynthError> {
    let k = design.concepts();
    let hateful_pairs: Vec<(&str, &str)> = (0..k)
        .flat_map(|s| (0..k).map(move |t| (s, t)))
        .filter(|&(s, t)| design.label(s, t) == 1)
        .map(|(s, t)| (SUBJECTS[s], TOPICS[t]))
        .collect();
    let description = serde_json::json!({
        "generator": "memeguard-train synth",
        "version": env!("CARGO_PKG_VERSION"),
        "config": config,
        "image_concepts": &SUBJECTS[..k],
        "text_concepts": &TOPICS[..k],
        "rule": "hateful when (image_concept_index + text_concept_index) mod k < k/2",
        "hateful_pairs": hateful_pairs,
        "captions": "a template sentence whose slot holds one word of a same-length word family; the topic decides which word",
        "note": "captions are harmless everyday phrases; 'hateful' is only the name of the synthetic label",
    });
    let path = out.join("synth.json");
    let text = serde_json::to_string_pretty(&description).expect("json value serialises");
    fs::write(&path, text + "\n").map_err(io_err(&path))
}
