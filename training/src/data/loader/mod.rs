//! The training loader: worker threads read, decode and augment samples ahead of the
//! training step (bounded prefetch) and hand out batches as contiguous tensors in the
//! model package's input layout: uint8 `[N, H, W, 3]` pixels per view (normalisation
//! happens inside the graph), int64 `[N, L]` token ids and attention mask.
//!
//! Determinism: the epoch order comes from `(seed, epoch)` and each sample's
//! augmentations from `(seed, epoch, position in the epoch, view)`, so a batch's bytes
//! do not depend on the number of workers or on thread timing.
//!
//! A sample whose image cannot be read at load time is left out of its batch (the batch
//! is one shorter), logged with its file and line, and listed in [`Batch::skipped`];
//! the epoch goes on.

mod order;
mod prefetch;

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use memeguard_package::{Encoded, ImageLimits, TextTokenizer, decode_image};
use ndarray::{Array1, Array2, Array4};

pub use self::order::{Sampling, epoch_order};
pub use self::prefetch::EpochBatches;
use super::augment::{ViewError, Views};
use super::hateful_memes::{DataWarning, Meme, Problem};
use super::seed::{Stream, rng_for};

/// How the loader runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    pub batch_size: usize,
    /// Threads that decode and augment.
    pub workers: usize,
    /// Batches that may be claimed ahead of the one the trainer is waiting for
    /// (in progress or ready). At least `workers` keeps every worker busy.
    pub prefetch: usize,
    pub sampling: Sampling,
    /// Samples per epoch for `ClassBalanced` (default: the data set size).
    pub samples_per_epoch: Option<usize>,
    /// Leave out the last batch when it is short.
    pub drop_last: bool,
    pub seed: u64,
    /// Token sequence length (ids and mask are padded or cut to it).
    pub max_text_len: usize,
    pub limits: ImageLimits,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 32,
            workers: 2,
            prefetch: 4,
            sampling: Sampling::Shuffle,
            samples_per_epoch: None,
            drop_last: false,
            seed: 0,
            max_text_len: 32,
            limits: ImageLimits::default(),
        }
    }
}

/// Why a loader cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("the data set is empty")]
    Empty,
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error(transparent)]
    View(#[from] ViewError),
    #[error("class-balanced sampling needs a label on every meme; {at} (id {id}) has none")]
    Unlabelled { id: String, at: String },
    #[error("class-balanced sampling needs both classes; there are no memes labelled {0}")]
    MissingClass(u8),
}

/// One batch. Rows are samples, in epoch order, without the skipped ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub epoch: u64,
    /// Position of the batch in the epoch.
    pub index: usize,
    /// One uint8 `[N, S, S, 3]` tensor per view, in the order of the loader's [`Views`].
    pub views: Vec<Array4<u8>>,
    /// int64 `[N, L]` token ids (absent when the loader has no tokenizer).
    pub input_ids: Option<Array2<i64>>,
    /// int64 `[N, L]`, 1 for tokens and 0 for padding.
    pub attention_mask: Option<Array2<i64>>,
    pub labels: Vec<Option<u8>>,
    pub ids: Vec<String>,
    /// Index of each row in the loader's memes.
    pub indices: Vec<usize>,
    /// Samples left out because their image could not be read.
    pub skipped: Vec<DataWarning>,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when every sample was skipped.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// float32 `[N]` labels for a loss, or `None` if any sample has no label.
    pub fn label_tensor(&self) -> Option<Array1<f32>> {
        self.labels.iter().map(|l| l.map(f32::from)).collect::<Option<Vec<f32>>>().map(Array1::from)
    }
}

struct Shared {
    memes: Vec<Meme>,
    labels: Vec<Option<u8>>,
    tokens: Option<Vec<Encoded>>,
    views: Views,
    config: LoaderConfig,
    skipped: AtomicUsize,
}

/// Decodes, augments and batches a list of memes; cheap to clone (shared state).
#[derive(Clone)]
pub struct Loader {
    shared: Arc<Shared>,
}

impl Loader {
    /// A loader over `memes`. Texts are tokenised here, once, when a tokenizer is given;
    /// with no views the batches carry text only and images are never read.
    pub fn new(
        memes: Vec<Meme>,
        tokenizer: Option<&TextTokenizer>,
        views: Views,
        config: LoaderConfig,
    ) -> Result<Self, LoaderError> {
        if memes.is_empty() {
            return Err(LoaderError::Empty);
        }
        for (value, name) in
            [(config.batch_size, "batch_size"), (config.workers, "workers"), (config.prefetch, "prefetch")]
        {
            if value == 0 {
                return Err(LoaderError::Zero(name));
            }
        }
        if config.samples_per_epoch == Some(0) {
            return Err(LoaderError::Zero("samples_per_epoch"));
        }
        views.validate()?;
        if config.sampling == Sampling::ClassBalanced {
            if let Some(m) = memes.iter().find(|m| m.label.is_none()) {
                return Err(LoaderError::Unlabelled { id: m.id.clone(), at: m.source.to_string() });
            }
            for class in [0, 1] {
                if !memes.iter().any(|m| m.label == Some(class)) {
                    return Err(LoaderError::MissingClass(class));
                }
            }
        }
        let tokens = tokenizer.map(|t| memes.iter().map(|m| t.encode(&m.text, config.max_text_len)).collect());
        let labels = memes.iter().map(|m| m.label).collect();
        Ok(Loader { shared: Arc::new(Shared { memes, labels, tokens, views, config, skipped: AtomicUsize::new(0) }) })
    }

    /// The memes, in stored order.
    pub fn memes(&self) -> &[Meme] {
        &self.shared.memes
    }

    /// The views made per sample.
    pub fn views(&self) -> &Views {
        &self.shared.views
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.shared.config
    }

    /// Samples visited per epoch.
    pub fn samples_per_epoch(&self) -> usize {
        match self.shared.config.sampling {
            Sampling::ClassBalanced => self.shared.config.samples_per_epoch.unwrap_or(self.shared.memes.len()),
            _ => self.shared.memes.len(),
        }
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.samples_per_epoch(), self.shared.config.batch_size);
        if self.shared.config.drop_last { n / b } else { n.div_ceil(b) }
    }

    /// Samples left out so far (all epochs) because their image could not be read.
    pub fn skipped(&self) -> usize {
        self.shared.skipped.load(Ordering::Relaxed)
    }

    /// The memes' indices in the order epoch `epoch` visits them.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let c = &self.shared.config;
        epoch_order(c.sampling, c.seed, epoch, &self.shared.labels, self.samples_per_epoch())
    }

    /// The batches of epoch `epoch`, made by the worker threads ahead of the caller.
    pub fn epoch(&self, epoch: u64) -> EpochBatches {
        EpochBatches::start(self.clone(), epoch)
    }

    /// Builds batch `index` of epoch `epoch` on the calling thread (what each worker does).
    pub fn load_batch(&self, epoch: u64, index: usize, order: &[usize]) -> Batch {
        let b = self.shared.config.batch_size;
        let start = index * b;
        let positions = start..(start + b).min(order.len());
        let sizes = self.shared.views.sizes();
        let len = positions.len();
        let mut pixels: Vec<Vec<u8>> = sizes.iter().map(|&s| Vec::with_capacity(len * (s * s * 3) as usize)).collect();
        let text_len = self.shared.tokens.as_ref().map(|_| self.shared.config.max_text_len);
        let mut ids_flat = Vec::with_capacity(len * text_len.unwrap_or(0));
        let mut mask_flat = Vec::with_capacity(len * text_len.unwrap_or(0));
        let mut batch = Batch {
            epoch,
            index,
            views: Vec::new(),
            input_ids: None,
            attention_mask: None,
            labels: Vec::with_capacity(len),
            ids: Vec::with_capacity(len),
            indices: Vec::with_capacity(len),
            skipped: Vec::new(),
        };
        for position in positions {
            let i = order[position];
            let meme = &self.shared.memes[i];
            if !sizes.is_empty() {
                match self.read_image(meme) {
                    Ok(image) => {
                        for (v, view) in self.shared.views.views.iter().enumerate() {
                            let mut rng =
                                rng_for(self.shared.config.seed, Stream::Augment, &[epoch, position as u64, v as u64]);
                            pixels[v].extend_from_slice(view.apply(&image, &mut rng).as_raw());
                        }
                    }
                    Err(problem) => {
                        let warning = DataWarning { at: meme.source.clone(), problem };
                        tracing::warn!("{warning}");
                        self.shared.skipped.fetch_add(1, Ordering::Relaxed);
                        batch.skipped.push(warning);
                        continue;
                    }
                }
            }
            if let Some(tokens) = &self.shared.tokens {
                ids_flat.extend_from_slice(&tokens[i].ids);
                mask_flat.extend_from_slice(&tokens[i].mask);
            }
            batch.labels.push(meme.label);
            batch.ids.push(meme.id.clone());
            batch.indices.push(i);
        }
        let n = batch.ids.len();
        batch.views = pixels
            .into_iter()
            .zip(&sizes)
            .map(|(data, &s)| {
                Array4::from_shape_vec((n, s as usize, s as usize, 3), data).expect("each view row is S×S×3 bytes")
            })
            .collect();
        if let Some(l) = text_len {
            batch.input_ids = Some(Array2::from_shape_vec((n, l), ids_flat).expect("encode pads to max_text_len"));
            batch.attention_mask =
                Some(Array2::from_shape_vec((n, l), mask_flat).expect("encode pads to max_text_len"));
        }
        batch
    }

    fn read_image(&self, meme: &Meme) -> Result<image::RgbImage, Problem> {
        let bytes = match fs::read(&meme.image) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Problem::MissingImage(meme.image.clone()));
            }
            Err(e) => return Err(Problem::UnreadableImage { path: meme.image.clone(), reason: e.to_string() }),
        };
        decode_image(&bytes, &self.shared.config.limits)
            .map(|decoded| decoded.image)
            .map_err(|e| Problem::UnreadableImage { path: meme.image.clone(), reason: e.to_string() })
    }
}
