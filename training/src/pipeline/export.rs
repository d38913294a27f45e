//! Writing a finetuned model as a model package (docs/architecture.md): `model.onnx` in inference
//! mode, the tokenizer, and a manifest carrying metrics, threshold and data summary.

use std::path::Path;

use memeguard_package::manifest::now_rfc3339;
use memeguard_package::{Architecture, MANIFEST_FORMAT_VERSION, Manifest, ModelPackage, TextSpec, write_package};

use super::finetune::Finetuned;
use super::{Dataset, PipelineError};
use crate::eval::MeanStd;
use crate::recipe::{Modality, Recipe};

/// What the manifest says beyond the recipe.
#[derive(Debug, Clone)]
pub struct ExportInfo {
    pub name: String,
    /// Defaults to a time stamp `YYYY.MM.DD-HHMMSS`.
    pub version: Option<String>,
    /// One of the manifest's pretraining methods.
    pub pretraining: String,
    /// Dev AUROC and accuracy over seeds, when several ran.
    pub seeds: Option<(MeanStd, MeanStd)>,
}

/// A version string from the current time.
pub fn time_version() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}.{:02}.{:02}-{:02}{:02}{:02}",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// Writes the package to `dir` (which must not exist yet).
pub fn export_package(
    dir: &Path,
    recipe: &Recipe,
    data: &Dataset,
    done: &Finetuned,
    info: &ExportInfo,
) -> Result<ModelPackage, PipelineError> {
    let m = &recipe.model;
    let rep = &done.report;
    let mut metrics = serde_json::json!({ "dev": rep.dev, "best_epoch": rep.best_epoch });
    if let Some(test) = &rep.test {
        metrics["test"] = serde_json::to_value(test).unwrap_or_default();
    }
    if let Some((auroc, acc)) = &info.seeds {
        metrics["dev_over_seeds"] = serde_json::json!({ "auroc": auroc, "accuracy": acc });
    }
    let parameters: u64 = done
        .model
        .graph
        .iter()
        .flat_map(|g| g.initializer.iter())
        .filter(|t| {
            t.data_type == Some(memeguard_onnx::DataType::Float as i32)
                && !t.name.as_deref().unwrap_or("").contains("running_")
        })
        .map(|t| t.dims.iter().product::<i64>() as u64)
        .sum();
    let manifest = Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        name: info.name.clone(),
        version: info.version.clone().unwrap_or_else(time_version),
        created_at: now_rfc3339(),
        description: format!(
            "{} classifier trained by memeguard-train with recipe `{}` on {} (dev AUROC {:.3}).",
            match m.modality {
                Modality::Image => "Image-only",
                Modality::Text => "Text-only",
                Modality::Multimodal => "Multimodal",
            },
            recipe.name,
            data.root.display(),
            rep.dev.auroc.unwrap_or(f64::NAN)
        ),
        placeholder: false,
        architecture: Architecture {
            image_encoder: if m.modality == Modality::Text { "none".into() } else { m.image.clone() },
            text_encoder: if m.modality == Modality::Image { "none".into() } else { m.text.clone() },
            fusion: m.head.clone(),
            parameters,
        },
        pretraining: info.pretraining.clone(),
        image: done.image,
        text: TextSpec { max_length: m.max_length },
        threshold: rep.threshold,
        metrics,
        data: {
            let mut summary = data.summary();
            // The recipe travels with the package so `refresh` can finetune it again.
            summary["recipe"] = serde_json::Value::String(recipe.to_toml());
            summary
        },
        opset: memeguard_onnx::OPSET_VERSION,
        ir_version: memeguard_onnx::IR_VERSION,
        files: Default::default(),
    };
    Ok(write_package(dir, manifest, &done.model, &data.tokenizer)?)
}
