//! `memeguard-train eval`: scores a split with a model package, through the same
//! preprocessing the server uses.

use std::path::PathBuf;

use anyhow::Context;
use memeguard_package::ModelPackage;
use memeguard_package::onnxruntime::SessionOptions;
use memeguard_training::data::{HatefulMemes, ImageCheck, Split};
use memeguard_training::eval::plot::roc_plot;
use memeguard_training::pipeline::score::score_package_memes;

const LONG_ABOUT: &str = "\
Evaluate a model package on a split of a data set: AUROC from probabilities over the
whole split, and accuracy at the package's threshold (chosen on dev when it was trained).
Images are resized and texts tokenised exactly as the server does.

Examples:
  memeguard-train eval --package models/meme/1.0.0 --data data/synth-tiny --split test_seen
  memeguard-train eval --package models/meme/1.0.0 --data data/hateful_memes --split dev_unseen --roc roc.svg";

/// Options of `memeguard-train eval`.
#[derive(Debug, clap::Args)]
#[command(about = "Evaluate a model package on a data split (AUROC, accuracy, ROC plot)", long_about = LONG_ABOUT)]
pub struct Args {
    #[arg(long)]
    pub package: PathBuf,
    #[arg(long)]
    pub data: PathBuf,
    /// train, dev_seen, dev_unseen, test_seen or test_unseen.
    #[arg(long, default_value = "dev_seen")]
    pub split: String,
    /// Write the ROC curve here (SVG).
    #[arg(long)]
    pub roc: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    pub device: memeguard_package::Device,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let pkg = ModelPackage::open(&args.package)?;
    let split = Split::ALL.into_iter().find(|s| s.name() == args.split).ok_or_else(|| {
        anyhow::anyhow!("unknown split `{}`: use train, dev_seen, dev_unseen, test_seen or test_unseen", args.split)
    })?;
    let data = HatefulMemes::load(&args.data, ImageCheck::Header).context("loading the data set")?;
    let memes = data.split(split);
    let model = pkg.model()?;
    let m = &pkg.manifest;
    let session = SessionOptions { device: args.device, ..Default::default() };
    let scores = score_package_memes(&model, memes, &pkg.tokenizer, &m.image, m.text.max_length, &session)?;
    if scores.labels.is_empty() {
        anyhow::bail!("split {} of {} has no labelled memes to evaluate", args.split, args.data.display());
    }
    let metrics = scores.metrics(m.threshold);
    println!(
        "{} on {} ({} memes): AUROC {} accuracy {:.4} at threshold {:.3}",
        pkg.id(),
        args.split,
        metrics.memes,
        metrics.auroc.map(|a| format!("{a:.4}")).unwrap_or_else(|| "n/a (one class)".into()),
        metrics.accuracy,
        metrics.threshold
    );
    if let Some(path) = &args.roc {
        roc_plot(path, &format!("ROC — {} on {}", pkg.id(), args.split), &[(args.split.as_str(), &scores.roc())])
            .map_err(|e| anyhow::anyhow!(e))?;
        println!("ROC curve: {}", path.display());
    }
    Ok(())
}
