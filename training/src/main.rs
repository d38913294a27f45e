//! `memeguard-train`: parses the command line and runs the subcommand (see `cli`).
#![forbid(unsafe_code)]

mod cli;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,ort=warn")))
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            // Stopped by Ctrl-C after writing a checkpoint: the shell convention 128 + SIGINT.
            let interrupted = err.chain().any(|e| {
                matches!(
                    e.downcast_ref::<memeguard_training::run::RunError>(),
                    Some(memeguard_training::run::RunError::Interrupted(_))
                ) || matches!(
                    e.downcast_ref::<memeguard_training::pipeline::PipelineError>(),
                    Some(memeguard_training::pipeline::PipelineError::Run(
                        memeguard_training::run::RunError::Interrupted(_)
                    ))
                )
            });
            if interrupted { std::process::ExitCode::from(130) } else { std::process::ExitCode::FAILURE }
        }
    }
}
