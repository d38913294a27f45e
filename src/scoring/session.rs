//! The server's run of a package's model: like [`memeguard_package::PackageSession`]
//! (same inputs, same checks on `probability`), but it also reads the package's optional
//! `image_embedding` / `text_embedding` outputs `[N, D]`, which the review memory matches
//! on. A package without them scores the same and yields no embeddings.

use memeguard_package::contract::{
    ATTENTION_MASK, IMAGE_EMBEDDING, INPUT_IDS, PIXEL_VALUES, PROBABILITY, TEXT_EMBEDDING,
};
use memeguard_package::onnxruntime::session_from_file;
use memeguard_package::{ModelInputs, ModelPackage, ScoreError, SessionOptions};
use ort::session::{Session, SessionOutputs};
use ort::value::TensorRef;

/// One pair's outputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemScore {
    pub probability: f32,
    pub image_embedding: Option<Vec<f32>>,
    pub text_embedding: Option<Vec<f32>>,
}

/// A package's model in an ONNX Runtime session (one per model thread).
pub struct ModelSession {
    session: Session,
    size: usize,
    max_length: usize,
    image_embedding: bool,
    text_embedding: bool,
}

impl ModelSession {
    pub fn new(pkg: &ModelPackage, opts: &SessionOptions) -> Result<Self, ScoreError> {
        let session = session_from_file(&pkg.model_path(), opts)?;
        let has = |name: &str| session.outputs().iter().any(|o| o.name() == name);
        let (image_embedding, text_embedding) = (has(IMAGE_EMBEDDING), has(TEXT_EMBEDDING));
        Ok(ModelSession {
            session,
            size: pkg.manifest.image.size as usize,
            max_length: pkg.manifest.text.max_length,
            image_embedding,
            text_embedding,
        })
    }

    /// The outputs for each item, in batch order.
    pub fn score(&mut self, inputs: &ModelInputs) -> Result<Vec<ItemScore>, ScoreError> {
        let n = inputs.len();
        let want_pixels = [n, self.size, self.size, 3];
        let want_tokens = [n, self.max_length];
        if inputs.pixel_values.shape() != want_pixels
            || inputs.input_ids.shape() != want_tokens
            || inputs.attention_mask.shape() != want_tokens
        {
            return Err(ScoreError::BadInput(format!(
                "pixel_values {:?}, input_ids {:?}, attention_mask {:?}; expected {want_pixels:?}, {want_tokens:?}, {want_tokens:?}",
                inputs.pixel_values.shape(),
                inputs.input_ids.shape(),
                inputs.attention_mask.shape()
            )));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let run_err = |e: ort::Error| ScoreError::Run(e.to_string());
        let pixels = inputs.pixel_values.as_standard_layout();
        let ids = inputs.input_ids.as_standard_layout();
        let mask = inputs.attention_mask.as_standard_layout();
        let (image_embedding, text_embedding) = (self.image_embedding, self.text_embedding);
        let outputs = self
            .session
            .run(ort::inputs![
                PIXEL_VALUES => TensorRef::from_array_view(&pixels).map_err(run_err)?,
                INPUT_IDS => TensorRef::from_array_view(&ids).map_err(run_err)?,
                ATTENTION_MASK => TensorRef::from_array_view(&mask).map_err(run_err)?,
            ])
            .map_err(run_err)?;
        let output = outputs
            .get(PROBABILITY)
            .ok_or_else(|| ScoreError::BadOutput("the session returned no such output".into()))?;
        let (shape, values) = output.try_extract_tensor::<f32>().map_err(|e| ScoreError::BadOutput(e.to_string()))?;
        if shape.len() != 1 || values.len() != n {
            return Err(ScoreError::BadOutput(format!("shape {:?} for a batch of {n}; expected [{n}]", &shape[..])));
        }
        if let Some(bad) = values.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(ScoreError::BadOutput(format!("{bad} is not a probability")));
        }
        let images = if image_embedding { rows(&outputs, IMAGE_EMBEDDING, n)? } else { vec![None; n] };
        let texts = if text_embedding { rows(&outputs, TEXT_EMBEDDING, n)? } else { vec![None; n] };
        Ok(values
            .iter()
            .zip(images)
            .zip(texts)
            .map(|((&probability, image_embedding), text_embedding)| ItemScore {
                probability,
                image_embedding,
                text_embedding,
            })
            .collect())
    }
}

/// The `[n, D]` output `name` as n rows (a row with a non-finite value is `None`).
fn rows(outputs: &SessionOutputs<'_>, name: &str, n: usize) -> Result<Vec<Option<Vec<f32>>>, ScoreError> {
    let bad = |why: String| ScoreError::BadOutput(format!("`{name}`: {why}"));
    let output = outputs.get(name).ok_or_else(|| bad("the session returned no such output".into()))?;
    let (shape, values) = output.try_extract_tensor::<f32>().map_err(|e| bad(e.to_string()))?;
    if shape.len() != 2 || shape[0] as usize != n || shape[1] <= 0 {
        return Err(bad(format!("shape {:?} for a batch of {n}; expected [{n}, D]", &shape[..])));
    }
    let d = shape[1] as usize;
    Ok(values.chunks(d).map(|row| row.iter().all(|v| v.is_finite()).then(|| row.to_vec())).collect())
}
