//! `memeguard-train models`: the architectures, their parameter counts and ops.

const LONG_ABOUT: &str = "\
List the architectures memeguard-train builds, with parameter counts, or describe one
(its ops and whether each has a gradient rule).

Examples:
  memeguard-train models
  memeguard-train models vit-b16@384
  memeguard-train models --ops";

/// Options of `memeguard-train models`.
#[derive(Debug, clap::Args)]
#[command(about = "List architectures with parameter counts and ops", long_about = LONG_ABOUT)]
pub struct Args {
    /// An architecture to describe (e.g. resnet50, vit-b16@384, text-tiny).
    pub name: Option<String>,
    /// Vocabulary size assumed for text encoders.
    #[arg(long, default_value_t = 30000)]
    pub vocab_size: usize,
    #[arg(long, default_value_t = 64)]
    pub max_length: usize,
    /// List the ops that have gradient rules.
    #[arg(long)]
    pub ops: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.ops {
        let ops = memeguard_training::autodiff::supported_ops();
        println!("{} ops with gradient rules:\n{}", ops.len(), ops.join(" "));
        return Ok(());
    }
    print!("{}", memeguard_training::models::catalog::models_report(args.name.as_deref(), args.vocab_size, args.max_length)?);
    Ok(())
}
