//! A model package being served: its preprocessing, its queue, and the threads that run
//! its sessions. Loading validates the package, creates the sessions and warms them up
//! before anything is swapped in. [`LoadedModel::close`] (graceful shutdown) closes the
//! queue and waits for the threads to answer what is queued; dropping the last handle
//! does the same without making the dropping thread wait.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use image::{Rgb, RgbImage};
use memeguard_package::{
    DecodedImage, ImageFormat, Manifest, ModelPackage, PreparedItem, Preprocessor, SessionOptions, collate,
};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::worker::{self, Job, WorkerContext};
use crate::config::BatchConfig;
use crate::metrics::Metrics;
use memeguard_package::{ItemScore, PackageSession};

/// Grey (the middle of the range, neutral after normalisation) stands in for the image
/// of a text-only input.
const BLANK_GREY: u8 = 128;

/// A loaded, warmed-up model package with its own queue and model threads.
pub struct LoadedModel {
    id: String,
    manifest: Manifest,
    preprocessor: Preprocessor,
    blank: DecodedImage,
    /// `None` once closed.
    queue: Mutex<Option<Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Why a package could not be put into service.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Package(#[from] memeguard_package::PackageError),
    #[error("{id}: creating an ONNX Runtime session failed: {source}")]
    Session { id: String, source: memeguard_package::ScoreError },
    #[error("{id}: the warm-up run failed: {message}")]
    WarmUp { id: String, message: String },
    #[error("{id}: could not start a model thread: {source}")]
    Thread { id: String, source: std::io::Error },
}

impl LoadedModel {
    /// Builds sessions for `package`, checks that each scores a batch of one and a full
    /// batch of blank inputs with probabilities in [0, 1], then starts the model threads.
    /// Blocking: call it off the async runtime.
    pub fn load(
        package: ModelPackage,
        options: &SessionOptions,
        batching: BatchConfig,
        metrics: Arc<Metrics>,
    ) -> Result<LoadedModel, LoadError> {
        let id = package.id();
        let preprocessor = Preprocessor::for_package(&package);
        let size = package.manifest.image.size;
        let max_length = package.manifest.text.max_length;
        let blank = DecodedImage {
            image: RgbImage::from_pixel(size, size, Rgb([BLANK_GREY; 3])),
            width: size,
            height: size,
            format: ImageFormat::Png,
        };
        let sample = preprocessor.prepare(&blank, "");

        let mut sessions = Vec::with_capacity(batching.sessions);
        for _ in 0..batching.sessions {
            let mut session = PackageSession::new(&package, options)
                .map_err(|source| LoadError::Session { id: id.clone(), source })?;
            for n in [1, batching.max_batch_size] {
                let inputs = collate(&vec![sample.clone(); n], size, max_length);
                let scores = session
                    .score_items(&inputs)
                    .map_err(|e| LoadError::WarmUp { id: id.clone(), message: e.to_string() })?;
                if scores.len() != n {
                    return Err(LoadError::WarmUp {
                        id,
                        message: format!("{} scores for a batch of {n}", scores.len()),
                    });
                }
            }
            sessions.push(session);
        }

        let (sender, receiver) = mpsc::channel();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut threads = Vec::with_capacity(sessions.len());
        for (i, session) in sessions.into_iter().enumerate() {
            let ctx = WorkerContext {
                queue: receiver.clone(),
                batching,
                image_size: size,
                max_length,
                metrics: metrics.clone(),
                model_id: id.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("model-{i}-{id}"))
                .spawn(move || worker::run(session, ctx))
                .map_err(|source| LoadError::Thread { id: id.clone(), source })?;
            threads.push(handle);
        }
        Ok(LoadedModel {
            id,
            manifest: package.manifest.clone(),
            preprocessor,
            blank,
            queue: Mutex::new(Some(sender)),
            threads: Mutex::new(threads),
        })
    }

    /// `name@version`.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The package's decision threshold.
    pub fn threshold(&self) -> f32 {
        self.manifest.threshold
    }

    /// Whether this is the untrained placeholder (its scores mean nothing).
    pub fn is_placeholder(&self) -> bool {
        self.manifest.placeholder
    }

    /// The shared preprocessing for this package; `None` scores a blank grey image.
    /// CPU work: call it off the async runtime.
    pub fn prepare(&self, image: Option<&DecodedImage>, text: &str) -> PreparedItem {
        self.preprocessor.prepare(image.unwrap_or(&self.blank), text)
    }

    /// Queues prepared items; the receiver yields their scores in order. `admission` is
    /// held until the items are scored, so the scorer's queue depth counts them even if
    /// the requester goes away meanwhile.
    pub fn submit(
        &self,
        items: Vec<PreparedItem>,
        admission: OwnedSemaphorePermit,
    ) -> oneshot::Receiver<Result<Vec<ItemScore>, String>> {
        let (reply, receiver) = oneshot::channel();
        // If the queue is closed the job (and its reply sender) is dropped: the caller
        // sees a closed channel.
        if let Some(queue) = self.queue.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let _ = queue.send(Job { items, reply, admission });
        }
        receiver
    }

    /// Closes the queue and waits until the threads have answered every queued job and
    /// stopped. Blocking: call it off the async runtime.
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        join(&self.id, threads);
    }
}

fn join(id: &str, threads: Vec<JoinHandle<()>>) {
    let had_threads = !threads.is_empty();
    for handle in threads {
        if handle.join().is_err() {
            tracing::error!(model = %id, "a model thread panicked");
        }
    }
    if had_threads {
        tracing::info!(model = %id, "model unloaded");
    }
}

impl Drop for LoadedModel {
    fn drop(&mut self) {
        // The last handle may be dropped on an async worker thread (a cancelled request),
        // with jobs still queued: close the queue and let another thread wait for the rest.
        self.queue.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        let threads = std::mem::take(self.threads.get_mut().unwrap_or_else(|p| p.into_inner()));
        if !threads.is_empty() {
            let id = self.id.clone();
            let _ = std::thread::Builder::new().name(format!("unload-{id}")).spawn(move || join(&id, threads));
        }
    }
}
