//! Running a package's model in ONNX Runtime: one session, batches in, probabilities (and,
//! where the package has them, its `image_embedding` / `text_embedding` rows) out. The
//! trainer's evaluation and the server's model threads both use it. `score` takes
//! `&mut self` (ONNX Runtime's `run` does): a server keeps one `PackageSession` per worker
//! thread.

use ort::session::{Session, SessionOutputs};
use ort::value::TensorRef;

use crate::contract::{ATTENTION_MASK, IMAGE_EMBEDDING, INPUT_IDS, PIXEL_VALUES, PROBABILITY, TEXT_EMBEDDING};
use crate::onnxruntime::{RuntimeError, SessionOptions, session_from_file};
use crate::package::ModelPackage;
use crate::preprocess::ModelInputs;

/// Errors creating a session or scoring a batch.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("the batch does not fit the model: {0}")]
    BadInput(String),
    #[error("running the model failed: {0}")]
    Run(String),
    #[error("the model's output is unusable: {0}")]
    BadOutput(String),
}

/// One pair's outputs: the probability, and the package's embeddings where it has them
/// (a row with a non-finite value is `None`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemScore {
    pub probability: f32,
    pub image_embedding: Option<Vec<f32>>,
    pub text_embedding: Option<Vec<f32>>,
}

/// A package's model, loaded in an ONNX Runtime session.
pub struct PackageSession {
    session: Session,
    id: String,
    size: usize,
    max_length: usize,
    /// Whether the model has the optional embedding outputs.
    image_embedding: bool,
    text_embedding: bool,
}

impl std::fmt::Debug for PackageSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageSession").field("id", &self.id).finish_non_exhaustive()
    }
}

impl PackageSession {
    /// Creates a session for `pkg` on the device in `opts`.
    pub fn new(pkg: &ModelPackage, opts: &SessionOptions) -> Result<Self, ScoreError> {
        let session = session_from_file(&pkg.model_path(), opts)?;
        let has = |name: &str| session.outputs().iter().any(|o| o.name() == name);
        let (image_embedding, text_embedding) = (has(IMAGE_EMBEDDING), has(TEXT_EMBEDDING));
        Ok(PackageSession {
            session,
            id: pkg.id(),
            size: pkg.manifest.image.size as usize,
            max_length: pkg.manifest.text.max_length,
            image_embedding,
            text_embedding,
        })
    }

    /// `name@version` of the package this session runs.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The `probability` output, one per item, in batch order.
    pub fn score(&mut self, inputs: &ModelInputs) -> Result<Vec<f32>, ScoreError> {
        Ok(self.run(inputs, false)?.into_iter().map(|item| item.probability).collect())
    }

    /// The probability and the package's embeddings (where it has them), per item, in
    /// batch order.
    pub fn score_items(&mut self, inputs: &ModelInputs) -> Result<Vec<ItemScore>, ScoreError> {
        self.run(inputs, true)
    }

    fn run(&mut self, inputs: &ModelInputs, embeddings: bool) -> Result<Vec<ItemScore>, ScoreError> {
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
        // Views need standard layout; the arrays from `collate` already are, others are copied.
        let pixels = inputs.pixel_values.as_standard_layout();
        let ids = inputs.input_ids.as_standard_layout();
        let mask = inputs.attention_mask.as_standard_layout();
        let (image_embedding, text_embedding) = (embeddings && self.image_embedding, embeddings && self.text_embedding);
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
            .ok_or_else(|| ScoreError::BadOutput("`probability`: the session returned no such output".into()))?;
        let (shape, values) = output.try_extract_tensor::<f32>().map_err(|e| ScoreError::BadOutput(e.to_string()))?;
        if shape.len() != 1 || values.len() != n {
            return Err(ScoreError::BadOutput(format!(
                "`probability`: shape {:?} for a batch of {n}; expected [{n}]",
                &shape[..]
            )));
        }
        if let Some(bad) = values.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(ScoreError::BadOutput(format!("`probability`: {bad} is not a probability")));
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

#[cfg(test)]
mod tests {
    /// The server moves sessions to worker threads and shares packages between them.
    #[test]
    fn sessions_move_between_threads_and_packages_are_shared() {
        fn send<T: Send>() {}
        fn send_sync<T: Send + Sync>() {}
        send::<super::PackageSession>();
        send_sync::<crate::ModelPackage>();
        send_sync::<crate::Preprocessor>();
    }
}
