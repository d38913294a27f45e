//! `memeguard-train finetune`: supervised classifiers, optionally over several seeds,
//! optionally exported as a model package.

use std::path::{Path, PathBuf};

use anyhow::Context;
use memeguard_package::{HfTokenizer, TextTokenizer};
use memeguard_training::eval::summary::{ResultRow, results_table};
use memeguard_training::eval::{Threshold, mean_std};
use memeguard_training::models::source::EncoderSource;
use memeguard_training::pipeline::Dataset;
use memeguard_training::pipeline::export::{ExportInfo, export_package};
use memeguard_training::pipeline::finetune::{FeatureCacheDir, FinetuneOptions, finetune};
use memeguard_training::recipe::{Method, Modality, Recipe};
use memeguard_training::run::{RunDir, RunOptions, install_interrupt_handler};

use super::common::{RecipeArgs, RunArgs, resume_dir, run_dir};

const LONG_ABOUT: &str = "\
Finetune a classifier (image-only, text-only or multimodal, as the recipe says) on the
labelled memes of a data set: from scratch, or from a pretraining checkpoint
(--init-from), with the encoders frozen (--freeze-encoders) or end to end.

After every epoch the dev AUROC is measured (probabilities over the whole dev split);
the best epoch is kept, and training stops after `data.patience` epochs without
improvement. The decision threshold is chosen on dev; test metrics are reported at it.
With --seeds N the run is repeated for N seeds and the table reports mean ± std.
With --export DIR the best model becomes a model package the server can load.

The run directory gets config.toml, checkpoint.safetensors (after every epoch and on
Ctrl-C), log.csv and loss.svg (steps), metrics.csv (dev metrics per epoch),
best.safetensors (the best epoch's trained weights; frozen ones are not repeated), and
at the end metrics.json, roc.svg, model.onnx and tokenizer.json. Continue an interrupted
run with the same options and --resume RUN/checkpoint.safetensors: the best epoch is
still chosen over all epochs.

Encoders from elsewhere: `model.image` / `model.text` also take `hf:DIR` (a Hugging Face
folder; its preprocessor_config.json and tokenizer are used) and `onnx:FILE[#OUTPUT]`
(an ONNX export, weights inline or in FILE.data; #OUTPUT names the [N, D] features; a
text export needs --tokenizer, its own tokenizer.json). `model.image_trainable` /
`model.text_trainable`: true, false (frozen) or \"last:N\" (the last N blocks and what
follows them; for onnx: exports the blocks are read from the parameter names). Their weights,
preprocessing and tokenizer go into the exported package (docs/training.md).

Frozen-feature cache: when every encoder is imported (hf:, onnx:) and frozen and
data.augment is off, each split's features are computed once by the encoders alone,
stored memory-mapped in RUN/features/ (keyed by the sha256 of the encoders' weight files,
their preprocessing and the split's memes) and the head trains on them; --seeds and
--resume reuse them, the exported package still holds the whole graph. metrics.json's
`feature_cache` says whether each split was computed or reused; --no-feature-cache runs
the encoders in every step instead.

Published setups on frozen CLIP ViT-L/14: training/recipes/hateful-memes-clip-vit-l14-hateclipper.toml
(Hate-CLIPper, cross fusion) and hateful-memes-clip-vit-l14-rgcl.toml (RGCL: the `[rgcl]`
section adds the retrieval-guided contrastive loss; needs the feature cache); tiny-*-hf-clip
variants run on the tiny CLIP fixture.

Examples:
  memeguard-train finetune --recipe training/recipes/tiny-finetune-multimodal.toml --data data/synth-tiny
  memeguard-train finetune --recipe training/recipes/tiny-finetune-multimodal.toml --data data/synth-tiny \\
      --init-from runs/cass-mm/checkpoint.safetensors --rename cnn.image.=image. --rename cnn.text.=text. \\
      --tokenizer runs/cass-mm/tokenizer.json --seeds 3 --export models/meme/1.0.0
  memeguard-train finetune --recipe training/recipes/tiny-finetune-multimodal.toml --data data/synth-tiny \\
      --set model.image=hf:models/clip-vit-base-patch32 --set model.text=hf:models/clip-vit-base-patch32 \\
      --set model.image_trainable=false --set model.text_trainable=false --export models/meme/1.0.0
  memeguard-train finetune --recipe training/recipes/tiny-finetune-image.toml --data data/synth-tiny \\
      --set model.image=onnx:clip-vision.onnx#image_embeds --set model.image_trainable=false \\
      --set model.image_preprocessor=models/clip-vit-base-patch32/preprocessor_config.json";

/// Options of `memeguard-train finetune`.
#[derive(Debug, clap::Args)]
#[command(about = "Finetune and evaluate a classifier; optionally export a model package", long_about = LONG_ABOUT)]
pub struct Args {
    /// Recipe, data, run directory (seeds get subfolders) and overrides.
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Pretraining checkpoint to start from.
    #[arg(long)]
    pub init_from: Option<PathBuf>,
    /// Rename checkpoint parameters by prefix, FROM=TO (repeatable).
    #[arg(long = "rename", value_name = "FROM=TO")]
    pub renames: Vec<String>,
    /// Use this tokenizer (e.g. the pretraining run's) instead of training one.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Train the head only.
    #[arg(long)]
    pub freeze_encoders: bool,
    /// Resume an interrupted run from its checkpoint (same recipe, data and options;
    /// one seed); the run continues in the checkpoint's folder unless --out says otherwise.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Runs with seeds recipe.seed, +1, ... (mean ± std reported).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Threshold rule: `accuracy`, `precision:0.9`, `recall:0.9`.
    #[arg(long, default_value = "accuracy")]
    pub threshold: String,
    /// Write the (first seed's) model as a package here, laid out as the server's models
    /// directory expects: `<models>/<name>/<version>`. The folder's own name becomes the
    /// package version and its parent's name the package name (unless --name).
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Package name (default: the name of the --export folder's parent, else the recipe's).
    #[arg(long)]
    pub name: Option<String>,
    /// Pretraining method recorded in the manifest (default: none; with --init-from, the
    /// method in the config.toml next to the checkpoint, else `imported`).
    #[arg(long)]
    pub pretraining: Option<String>,
    /// Run the frozen encoders in every step instead of training the head on their
    /// cached features (the cache is used when every encoder is imported and frozen and
    /// data.augment is off; it lives in RUN/features/, shared by --seeds and --resume).
    #[arg(long)]
    pub no_feature_cache: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Parses `accuracy`, `precision:P`, `recall:R`.
pub fn parse_threshold(s: &str) -> anyhow::Result<Threshold> {
    Ok(match s.split_once(':') {
        None if s == "accuracy" => Threshold::BestAccuracy,
        Some(("precision", v)) => Threshold::Precision(v.parse()?),
        Some(("recall", v)) => Threshold::Recall(v.parse()?),
        _ => anyhow::bail!("--threshold `{s}`: use accuracy, precision:P or recall:R"),
    })
}

/// The method of the pretraining run a checkpoint comes from: its run directory's
/// `config.toml` says; a checkpoint from elsewhere is `imported`.
fn pretraining_method(checkpoint: &Path) -> String {
    checkpoint
        .parent()
        .and_then(|dir| Recipe::load(&dir.join("config.toml")).ok())
        .map(|recipe| recipe.method)
        .filter(|method| *method != Method::Finetune)
        .map_or_else(|| "imported".into(), |method| method.name().into())
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut recipe = args.recipe.load()?;
    // The run's config.toml and the package's manifest name the imported encoders by
    // absolute path, so `refresh` finds them from anywhere.
    recipe.absolute_encoder_paths()?;
    if let Some(path) = &args.init_from
        && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        anyhow::bail!(
            "--init-from takes a checkpoint (.safetensors); an ONNX encoder is named in the recipe instead: \
             --set model.image=onnx:{0}#OUTPUT (or model.text=onnx:{0}#OUTPUT)",
            path.display()
        );
    }
    // An hf: text encoder's folder has its tokenizer; an ONNX one needs --tokenizer.
    let hf_tokenizer = match (&args.tokenizer, EncoderSource::parse(&recipe.model.text)?) {
        (None, EncoderSource::HuggingFace(dir)) if recipe.model.modality != Modality::Image => Some(
            HfTokenizer::load(&dir)
                .map_err(|e| anyhow::anyhow!("the tokenizer of hf:{}: {e}", dir.display()))?
                .tokenizer,
        ),
        _ => None,
    };
    if args.tokenizer.is_none() && hf_tokenizer.is_none() && recipe.imports_text_encoder()? {
        anyhow::bail!(
            "model.text = `{}` brings its own vocabulary: pass its tokenizer with --tokenizer FILE \
             (the tokenizer.json it was trained with)",
            recipe.model.text
        );
    }
    let tokenizer = match &args.tokenizer {
        Some(p) => Some(TextTokenizer::from_file(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?),
        None => hf_tokenizer,
    };
    let data = Dataset::load(&args.recipe.data, tokenizer, recipe.model.vocab_size).context("loading the data set")?;
    let renames: Vec<(String, String)> = args
        .renames
        .iter()
        .map(|r| {
            r.split_once('=')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| anyhow::anyhow!("--rename `{r}`: use FROM=TO"))
        })
        .collect::<anyhow::Result<_>>()?;
    let threshold = parse_threshold(&args.threshold)?;
    if args.resume.is_some() && args.seeds > 1 {
        anyhow::bail!(
            "--resume continues one run: resume each seed's run on its own (--seeds 1 --resume RUN/seed-N/checkpoint.safetensors)"
        );
    }
    let base = run_dir(args.recipe.out.clone().or_else(|| resume_dir(args.resume.as_deref())), &recipe.name);
    install_interrupt_handler();
    let mut aurocs = Vec::new();
    let mut accs = Vec::new();
    let mut first = None;
    for k in 0..args.seeds.max(1) {
        let mut r = recipe.clone();
        r.train.seed = recipe.train.seed + k;
        let dir = if args.seeds > 1 { base.join(format!("seed-{}", r.train.seed)) } else { base.clone() };
        let mut run_dir = RunDir::create(&dir)?;
        run_dir.write_config(&r)?;
        let opts = FinetuneOptions {
            run: RunOptions {
                device: args.run.device,
                threads: args.run.threads,
                resume: args.resume.clone(),
                progress: !args.run.quiet,
                ..Default::default()
            },
            init_from: args.init_from.clone(),
            renames: renames.clone(),
            freeze_encoders: args.freeze_encoders,
            threshold,
            workers: args.run.workers,
            feature_cache: if args.no_feature_cache {
                FeatureCacheDir::Off
            } else {
                FeatureCacheDir::At(base.join("features"))
            },
            ..Default::default()
        };
        let done = finetune(&r, &data, Some(&mut run_dir), &opts)?;
        let rep = &done.report;
        println!(
            "seed {}: dev AUROC {:.4} accuracy {:.4} (threshold {:.3}, best epoch {}/{}){}",
            r.train.seed,
            rep.dev.auroc.unwrap_or(f64::NAN),
            rep.dev.accuracy,
            rep.threshold,
            rep.best_epoch,
            rep.epochs_run,
            rep.test
                .as_ref()
                .map(|t| format!("; test AUROC {:.4} accuracy {:.4}", t.auroc.unwrap_or(f64::NAN), t.accuracy))
                .unwrap_or_default()
        );
        aurocs.push(rep.dev.auroc.unwrap_or(f64::NAN));
        accs.push(rep.dev.accuracy);
        if first.is_none() {
            first = Some(done);
        }
    }
    let row = ResultRow { model: recipe.name.clone(), auroc: mean_std(&aurocs), accuracy: mean_std(&accs) };
    let table = results_table(&[row]);
    println!("\ndev split, {} seed(s):\n{table}", aurocs.len());
    std::fs::write(base.join("results.md"), &table)?;
    if let (Some(out), Some(done)) = (&args.export, first) {
        let pretraining = args.pretraining.clone().unwrap_or_else(|| match &args.init_from {
            None => "none".into(),
            Some(checkpoint) => pretraining_method(checkpoint),
        });
        let folder_name = |p: Option<&std::path::Path>| {
            p.and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .filter(|n| !n.is_empty() && *n != "." && *n != "..")
                .map(str::to_string)
        };
        let info = ExportInfo {
            name: args.name.clone().or_else(|| folder_name(out.parent())).unwrap_or_else(|| recipe.name.clone()),
            version: folder_name(Some(out)),
            pretraining,
            seeds: (aurocs.len() > 1).then(|| (mean_std(&aurocs), mean_std(&accs))),
        };
        let pkg = export_package(out, &recipe, &data, &done, &info)?;
        println!("exported {} to {}", pkg.id(), out.display());
    }
    Ok(())
}
