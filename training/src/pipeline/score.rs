//! Scoring a split with an inference model, through the same preprocessing the server
//! uses (the package's resize rule and tokenizer), and the metrics over the whole split.

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{Tensor, encode_model};
use memeguard_package::onnxruntime::{SessionOptions, session_from_bytes};
use memeguard_package::tensor_value::{from_value, to_value};
use memeguard_package::{ImageSpec, ResizeRule, TextTokenizer};
use serde::{Deserialize, Serialize};

use super::PipelineError;
use crate::data::augment::Views;
use crate::data::{Loader, LoaderConfig, Meme, Sampling};
use crate::eval::{RocPoint, accuracy, auroc, roc_curve};

/// Probabilities and labels of one split.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Scores {
    pub probabilities: Vec<f32>,
    pub labels: Vec<bool>,
    pub ids: Vec<String>,
}

/// Metrics of one split at a threshold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitMetrics {
    pub auroc: Option<f64>,
    pub accuracy: f64,
    pub threshold: f32,
    pub memes: usize,
}

impl Scores {
    /// AUROC over the whole split and accuracy at `threshold`.
    pub fn metrics(&self, threshold: f32) -> SplitMetrics {
        SplitMetrics {
            auroc: auroc(&self.probabilities, &self.labels),
            accuracy: accuracy(&self.probabilities, &self.labels, threshold),
            threshold,
            memes: self.labels.len(),
        }
    }
    /// The ROC curve.
    pub fn roc(&self) -> Vec<RocPoint> {
        roc_curve(&self.probabilities, &self.labels)
    }
}

/// [`score_package_memes`] with `resize` and the bilinear filter (a version 1 package's
/// preprocessing); a package's manifest should go through `score_package_memes`.
/// Memes in order, prepared exactly as a package's preprocessing prepares them (no
/// augmentation), in batches of 32: what scoring and the frozen-feature pass read.
pub(crate) fn package_loader(
    memes: Vec<Meme>,
    tokenizer: &TextTokenizer,
    image: &ImageSpec,
    max_length: usize,
) -> Result<Loader, PipelineError> {
    let cfg = LoaderConfig {
        batch_size: 32,
        workers: 2,
        prefetch: 2,
        sampling: Sampling::Sequential,
        max_text_len: max_length,
        ..Default::default()
    };
    Ok(Loader::new(memes, Some(tokenizer), Views::package(image), cfg)?)
}

pub fn score_memes(
    model: &ModelProto,
    memes: &[Meme],
    tokenizer: &TextTokenizer,
    size: u32,
    resize: ResizeRule,
    max_length: usize,
    session: &SessionOptions,
) -> Result<Scores, PipelineError> {
    score_package_memes(model, memes, tokenizer, &ImageSpec::new(size, resize), max_length, session)
}

/// Runs `model` (package contract inputs, `probability` output) over `memes`, resizing
/// by `image` (size, rule and filter) exactly as the server does.
/// Memes without a label are scored but left out of `labels`-based metrics.
pub fn score_package_memes(
    model: &ModelProto,
    memes: &[Meme],
    tokenizer: &TextTokenizer,
    image: &ImageSpec,
    max_length: usize,
    session: &SessionOptions,
) -> Result<Scores, PipelineError> {
    let labelled: Vec<Meme> = memes.iter().filter(|m| m.label.is_some()).cloned().collect();
    if labelled.is_empty() {
        return Ok(Scores::default());
    }
    let loader = package_loader(labelled.clone(), tokenizer, image, max_length)?;
    let mut sess =
        session_from_bytes(&encode_model(model), session).map_err(|e| PipelineError::Score(e.to_string()))?;
    let mut out = Scores::default();
    for batch in loader.epoch(0) {
        if batch.is_empty() {
            continue;
        }
        let v = &batch.views[0];
        let dims: Vec<i64> = v.shape().iter().map(|&d| d as i64).collect();
        let pixels = Tensor::u8(dims, v.as_standard_layout().iter().copied().collect());
        let ids = batch.input_ids.as_ref().expect("tokenizer given");
        let mask = batch.attention_mask.as_ref().expect("tokenizer given");
        let tdims: Vec<i64> = ids.shape().iter().map(|&d| d as i64).collect();
        let feeds = vec![
            ("pixel_values".to_string(), to_value(&pixels).map_err(|e| PipelineError::Score(e.to_string()))?),
            (
                "input_ids".to_string(),
                to_value(&Tensor::i64(tdims.clone(), ids.iter().copied().collect()))
                    .map_err(|e| PipelineError::Score(e.to_string()))?,
            ),
            (
                "attention_mask".to_string(),
                to_value(&Tensor::i64(tdims, mask.iter().copied().collect()))
                    .map_err(|e| PipelineError::Score(e.to_string()))?,
            ),
        ];
        let outputs = sess.run(feeds).map_err(|e| PipelineError::Score(e.to_string()))?;
        let p = from_value(&outputs["probability"], "probability").map_err(|e| PipelineError::Score(e.to_string()))?;
        out.probabilities.extend(p.as_f32().ok_or_else(|| PipelineError::Score("probability is not float32".into()))?);
        out.labels.extend(batch.labels.iter().map(|l| *l == Some(1)));
        out.ids.extend(batch.ids.iter().cloned());
    }
    Ok(out)
}
