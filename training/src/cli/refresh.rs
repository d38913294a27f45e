//! `memeguard-train refresh`: learn from moderators' corrections.

use std::path::PathBuf;

use memeguard_training::pipeline::refresh::{default_work_dir, describe, refresh, RefreshOptions};
use memeguard_training::run::{install_interrupt_handler, RunOptions};

use super::common::RunArgs;

const LONG_ABOUT: &str = "\
Refresh the served model from moderators' reviews: read the reviewed decisions from the
server's SQLite database (read-only, one consistent snapshot; the server can keep
running), add them to the original training data, finetune starting from the current
package, evaluate old and new on the same dev split, and write a new package version
only if it is not worse. The server picks it up on reload (SIGHUP or the admin API).

Example:
  memeguard-train refresh --database memeguard.db --package models/demo/2026.11.29-010000 \\
      --data data/synth --models models";

/// Options of `memeguard-train refresh`.
#[derive(Debug, clap::Args)]
#[command(about = "Finetune the served model on moderators' reviews; write a new version if not worse", long_about = LONG_ABOUT)]
pub struct Args {
    /// The server's SQLite database file.
    #[arg(long, env = "MEMEGUARD_DATABASE_PATH")]
    pub database: PathBuf,
    /// The package in service now.
    #[arg(long)]
    pub package: PathBuf,
    /// The original training data set.
    #[arg(long)]
    pub data: PathBuf,
    /// Models directory: the new version goes to <models>/<name>/<version>.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Work folder (default: <models>/.refresh/<time>).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Epochs (default: the package's recipe).
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Repeat each reviewed meme this many times in the training split.
    #[arg(long, default_value_t = 8)]
    pub review_weight: usize,
    #[command(flatten)]
    pub run: RunArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    install_interrupt_handler();
    let opts = RefreshOptions {
        database: args.database,
        package: args.package,
        data: args.data,
        work_dir: args.work_dir.unwrap_or_else(|| default_work_dir(&args.models)),
        models_dir: args.models,
        epochs: args.epochs,
        review_weight: args.review_weight,
        run: RunOptions { device: args.run.device, threads: args.run.threads, progress: !args.run.quiet, ..Default::default() },
        workers: args.run.workers,
    };
    let outcome = refresh(&opts)?;
    println!("{}", describe(&outcome));
    Ok(())
}
