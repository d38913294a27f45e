//! `memeguard-package`: write the untrained placeholder package, or check a package
//! directory the way the server will before it serves it.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use memeguard_package::{ModelPackage, PackageSession, Preprocessor, SessionOptions};

#[derive(Parser)]
#[command(version, about = "Model packages for memeguard: write the placeholder, check a package")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the UNTRAINED placeholder package (meaningless scores) into DIR, which must not exist.
    Placeholder { dir: PathBuf },
    /// Validate the package in DIR (files, checksums, model contract, tokenizer) and
    /// score one blank image with empty text through ONNX Runtime.
    Check {
        dir: PathBuf,
        /// Only validate the files; do not load ONNX Runtime.
        #[arg(long)]
        no_run: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Placeholder { dir } => {
            let pkg = memeguard_package::write_placeholder_package(&dir)
                .with_context(|| format!("writing the placeholder package to {}", dir.display()))?;
            println!("wrote {} to {}", pkg.manifest.label(), pkg.dir.display());
        }
        Command::Check { dir, no_run } => {
            let pkg = ModelPackage::open(&dir)?;
            let m = &pkg.manifest;
            println!("{}: valid", m.label());
            println!(
                "  image {}x{} ({}, {}, mean {:?}, std {:?}), text {} tokens, threshold {}, opset {}, IR {}",
                m.image.size,
                m.image.size,
                m.image.resize,
                m.image.filter,
                m.image.mean,
                m.image.std,
                m.text.max_length,
                m.threshold,
                m.opset,
                m.ir_version
            );
            if !no_run {
                let pre = Preprocessor::for_package(&pkg);
                let blank = memeguard_package::DecodedImage {
                    image: image::RgbImage::from_pixel(1, 1, image::Rgb([255, 255, 255])),
                    width: 1,
                    height: 1,
                    format: memeguard_package::ImageFormat::Png,
                };
                let inputs = pre.collate(&[pre.prepare(&blank, "")]);
                let mut session = PackageSession::new(&pkg, &SessionOptions::default())?;
                let scores = session.score(&inputs)?;
                println!("  runs in ONNX Runtime: blank image, empty text -> probability {:.4}", scores[0]);
            }
        }
    }
    Ok(())
}
