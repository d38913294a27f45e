//! `memeguard-train refresh`: learn from moderators' corrections.

use std::path::PathBuf;

use memeguard_training::pipeline::refresh::{RefreshOptions, default_work_dir, describe, refresh};
use memeguard_training::run::{RunOptions, install_interrupt_handler};

use super::common::RunArgs;

const LONG_ABOUT: &str = "\
Refresh the served model from moderators' reviews: read the reviewed decisions from the
server's SQLite database (read-only, one consistent snapshot; the server can keep
running), add them to the original training data, finetune starting from the current
package, evaluate old and new on the same dev split, and write a new package version
only if it is not worse. The server picks it up on reload (SIGHUP or the admin API).

The package's manifest carries its recipe, encoders included: a package built on an
imported encoder (hf:DIR, onnx:FILE) refreshes the same way, with the encoder as the
recipe says (frozen or trained), its preprocessing and its tokenizer; the folder or file
it names must still be there.

Example:
  memeguard-train refresh --database memeguard.db --package models/demo/2026.11.29-010000 \\
      --data data/synth --models models";

/// Options of `memeguard-train refresh`.
#[derive(Debug, clap::Args)]
#[command(about = "Finetune the served model on moderators' reviews; write a new version if not worse", long_about = LONG_ABOUT)]
pub struct Args {
    /// The server's SQLite database: a file path, or the server's own
    /// `sqlite://PATH` URL (so the server's MEMEGUARD_DATABASE_URL works as is).
    #[arg(long, env = "MEMEGUARD_DATABASE_URL", value_parser = sqlite_path)]
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

/// `PATH`, `sqlite:PATH` or `sqlite://PATH[?options]` → PATH; other URLs are refused.
fn sqlite_path(value: &str) -> Result<PathBuf, String> {
    let path = match value.strip_prefix("sqlite:") {
        Some(rest) => rest.strip_prefix("//").unwrap_or(rest).split('?').next().unwrap_or_default(),
        None if value.contains("://") => {
            return Err(format!(
                "`{value}` is not a SQLite database: refresh reads the decision log of a SQLite server (export Postgres reviews to SQLite first)"
            ));
        }
        None => value,
    };
    if path.is_empty() || path == ":memory:" {
        return Err(format!("`{value}` names no database file"));
    }
    Ok(PathBuf::from(path))
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
        run: RunOptions {
            device: args.run.device,
            threads: args.run.threads,
            progress: !args.run.quiet,
            ..Default::default()
        },
        workers: args.run.workers,
    };
    let outcome = refresh(&opts)?;
    println!("{}", describe(&outcome));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;
    use std::path::PathBuf;

    #[test]
    fn database_paths_and_server_urls() {
        assert_eq!(sqlite_path("memeguard.db"), Ok(PathBuf::from("memeguard.db")));
        assert_eq!(sqlite_path("sqlite://memeguard.db"), Ok(PathBuf::from("memeguard.db")));
        assert_eq!(
            sqlite_path("sqlite:///var/lib/memeguard/memeguard.db?mode=rwc"),
            Ok(PathBuf::from("/var/lib/memeguard/memeguard.db"))
        );
        assert_eq!(sqlite_path("sqlite:data/x.db"), Ok(PathBuf::from("data/x.db")));
        assert!(sqlite_path("postgres://u@h/db").unwrap_err().contains("not a SQLite database"));
        assert!(sqlite_path("sqlite::memory:").is_err());
    }
}
