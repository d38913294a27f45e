//! `memeguard-train models`: the architectures, their parameter counts and ops.

use std::path::Path;

use memeguard_training::models::hf::HfModel;
use memeguard_training::models::import::{ImportedEncoder, ValueSummary, describe_dims};
use memeguard_training::models::source::EncoderSource;

const LONG_ABOUT: &str = "\
List the architectures memeguard-train builds, with parameter counts, or describe one
(its ops and whether each has a gradient rule). An encoder from elsewhere is described
too, before a recipe names it: `onnx:FILE[#OUTPUT]` (its inputs, the features' width,
its weights, and whether it can train end to end or only frozen) or `hf:DIR`.

Examples:
  memeguard-train models
  memeguard-train models vit-b16@384
  memeguard-train models onnx:exports/clip.onnx#image_embeds
  memeguard-train models hf:models/clip-vit-base-patch32
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
    if let Some(spec) = &args.name {
        match EncoderSource::parse(spec)? {
            EncoderSource::Onnx { file, output } => return describe_onnx(&file, output.as_deref()),
            EncoderSource::HuggingFace(dir) => return describe_hf(&dir),
            EncoderSource::Builtin(_) => {}
        }
    }
    print!(
        "{}",
        memeguard_training::models::catalog::models_report(args.name.as_deref(), args.vocab_size, args.max_length)?
    );
    Ok(())
}

fn describe_value(v: &ValueSummary) -> String {
    let dims = v.dims.as_deref().map(describe_dims).unwrap_or_else(|| "(no shape)".into());
    format!("{} {:?} {dims}", v.name, v.dtype.unwrap_or(memeguard_onnx::DataType::Undefined))
}

/// An ONNX encoder as `model.image` / `model.text` would import it.
fn describe_onnx(file: &Path, output: Option<&str>) -> anyhow::Result<()> {
    let encoder = ImportedEncoder::load(file)?.into_output(output)?;
    let inputs: Vec<String> = encoder.inputs().iter().map(describe_value).collect();
    let outputs: Vec<String> = encoder.outputs().iter().map(describe_value).collect();
    let params = encoder.parameters();
    let values: i64 = params.iter().map(|p| p.dims.iter().product::<i64>()).sum();
    println!("{}", file.display());
    println!("  inputs:   {}", inputs.join("; "));
    println!("  output:   {}", outputs.join("; "));
    match encoder.feature_dim() {
        Ok(dim) => println!("  features: {dim} per item"),
        Err(e) => println!("  features: not usable as an encoder: {e}"),
    }
    println!("  weights:  {} tensors, {values} values", params.len());
    let missing = encoder.ops_without_gradient_rule();
    if missing.is_empty() {
        println!("  training: every op on its gradient paths has a gradient rule (trainable = true may work)");
    } else {
        let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
        println!("  training: frozen only (trainable = false); no gradient rule for {}", list.join(", "));
    }
    Ok(())
}

/// A Hugging Face folder's towers.
fn describe_hf(dir: &Path) -> anyhow::Result<()> {
    let model = HfModel::open(dir)?;
    println!("hf:{} ({})", dir.display(), model.model_type());
    if let (Some(size), Some(dim)) = (model.image_size(), model.vision_feature_dim()) {
        println!("  vision tower: {size}×{size} images, {dim} features (model.image = \"hf:{}\")", dir.display());
    }
    if let Some(dim) = model.text_feature_dim() {
        let length = model.max_text_length().map(|n| format!("up to {n} tokens, ")).unwrap_or_default();
        println!("  text tower:   {length}{dim} features (model.text = \"hf:{}\")", dir.display());
    }
    Ok(())
}
