//! The command tree of `memeguard-train`. Each subcommand lives in its own module with
//! an `Args` struct (clap derive) and a `run(args) -> anyhow::Result<()>`; add a
//! subcommand by adding a module, a variant of [`Command`] and its arm in [`run`].

mod common;
pub mod differentiate;
pub mod eval;
pub mod finetune;
pub mod models;
pub mod pretrain;
pub mod refresh;
pub mod synth;

use clap::{Parser, Subcommand};

const ABOUT: &str = "Train memeguard's meme classifiers: data, pretraining, finetuning, evaluation, export.";

const LONG_ABOUT: &str = "\
Train memeguard's meme classifiers: data, pretraining, finetuning, evaluation, export.

Models are built as ONNX graphs, differentiated by memeguard's own autodiff and trained
on ONNX Runtime (CPU, or CUDA where there is a GPU). The result is a model package that
the `memeguard` server loads.

Data comes in the Hateful Memes layout: a directory with train.jsonl, dev_seen.jsonl,
dev_unseen.jsonl, test_seen.jsonl, test_unseen.jsonl (one JSON object per line with id,
img, label, text) and an img/ directory. Bring the real data set, or make a synthetic one:

    memeguard-train synth --out data/synth --train 2000 --dev 500 --test 500 --size 224";

/// `memeguard-train`: the training command line.
#[derive(Debug, Parser)]
#[command(name = "memeguard-train", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    Synth(synth::Args),
    Pretrain(pretrain::Args),
    Finetune(finetune::Args),
    Eval(eval::Args),
    Models(models::Args),
    Refresh(refresh::Args),
    Differentiate(differentiate::Args),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Synth(args) => synth::run(args),
        Command::Pretrain(args) => pretrain::run(args),
        Command::Finetune(args) => finetune::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Models(args) => models::run(args),
        Command::Refresh(args) => refresh::run(args),
        Command::Differentiate(args) => differentiate::run(args),
    }
}
