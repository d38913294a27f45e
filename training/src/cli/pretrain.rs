//! `memeguard-train pretrain`: self-supervised pretraining.

use std::path::PathBuf;

use anyhow::Context;
use memeguard_training::pipeline::{Dataset, pretrain::pretrain};
use memeguard_training::run::{RunDir, RunOptions, install_interrupt_handler};

use super::common::{RecipeArgs, RunArgs, resume_dir, run_dir};

const LONG_ABOUT: &str = "\
Pretrain encoders with a self-supervised method (clip, dino, cass, cass-mm) on the
training split of a data set (labels are not used).

The run directory gets config.toml (the resolved recipe), checkpoint.safetensors
(written after every epoch and on Ctrl-C), tokenizer.json, log.csv and loss.svg.
Continue an interrupted run with --resume RUN/checkpoint.safetensors.

Examples:
  memeguard-train pretrain --recipe training/recipes/tiny-cass-mm.toml --data data/synth-tiny --out runs/cass-mm
  memeguard-train pretrain --recipe training/recipes/study-clip-vit-b16-224.toml --data data/hateful_memes --device cuda
  memeguard-train pretrain --recipe training/recipes/tiny-clip.toml --data data/synth-tiny --set train.epochs=2";

/// Options of `memeguard-train pretrain`.
#[derive(Debug, clap::Args)]
#[command(about = "Self-supervised pretraining: CLIP, DINO, CASS, CASS-MM", long_about = LONG_ABOUT)]
pub struct Args {
    /// Recipe, data, run directory and overrides.
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Resume from a checkpoint of the same recipe (and data); the run continues in the
    /// checkpoint's folder unless --out says otherwise.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let recipe = args.recipe.load()?;
    let data = Dataset::load(&args.recipe.data, None, recipe.model.vocab_size).context("loading the data set")?;
    let dir = run_dir(args.recipe.out.or_else(|| resume_dir(args.resume.as_deref())), &recipe.name);
    let mut run_dir = RunDir::create(&dir)?;
    run_dir.write_config(&recipe)?;
    install_interrupt_handler();
    let opts = RunOptions {
        device: args.run.device,
        threads: args.run.threads,
        resume: args.resume,
        progress: !args.run.quiet,
        ..Default::default()
    };
    let trained = pretrain(&recipe, &data, &mut run_dir, &opts, args.run.workers)?;
    let last = trained.log.last().map(|s| s.loss).unwrap_or(f32::NAN);
    let first = trained.log.first().map(|s| s.loss).unwrap_or(f32::NAN);
    println!(
        "pretrained `{}` ({}): loss {first:.4} → {last:.4} over {} steps",
        recipe.name,
        recipe.method.name(),
        trained.log.len()
    );
    let spreads: Vec<f32> = trained.log.iter().filter_map(|s| s.embedding_spread).collect();
    if let (Some(a), Some(b)) = (spreads.first(), spreads.last()) {
        let verdict = if *b < memeguard_training::objectives::COLLAPSE_SPREAD {
            " — collapsed: the embeddings no longer tell inputs apart"
        } else {
            ""
        };
        println!("embedding spread {a:.3} → {b:.3} (about 1 = spread evenly, 0 = every input the same){verdict}");
    }
    println!("run directory: {}", dir.display());
    println!(
        "next: memeguard-train finetune --recipe <finetune recipe> --data {} --init-from {}",
        args.recipe.data.display(),
        run_dir.checkpoint_path().display()
    );
    Ok(())
}
