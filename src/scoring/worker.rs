//! The model threads: each owns one ONNX Runtime session (never on the async runtime),
//! takes jobs from the model's queue, forms dynamic batches (up to the max batch size,
//! waiting at most the max wait after the first job), runs them and answers each job.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use memeguard_package::{PackageSession, PreparedItem, collate};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::config::BatchConfig;
use crate::metrics::Metrics;

/// Pairs of one request, prepared for this model, and where to send their scores.
pub struct Job {
    pub items: Vec<PreparedItem>,
    pub reply: oneshot::Sender<Result<Vec<f32>, String>>,
    /// The scorer's admission for these items, released once they are answered.
    pub admission: OwnedSemaphorePermit,
}

/// What a worker needs besides its session.
pub struct WorkerContext {
    pub queue: Arc<Mutex<Receiver<Job>>>,
    pub batching: BatchConfig,
    pub image_size: u32,
    pub max_length: usize,
    pub metrics: Arc<Metrics>,
    pub model_id: String,
}

/// Runs until the queue's senders are gone and every queued job is answered.
pub fn run(mut session: PackageSession, ctx: WorkerContext) {
    let mut carried: Option<Job> = None;
    loop {
        let batch = {
            // One worker forms a batch at a time; the others run theirs meanwhile.
            let queue = ctx.queue.lock().unwrap_or_else(|p| p.into_inner());
            next_batch(&queue, &mut carried, &ctx.batching)
        };
        let Some(jobs) = batch else { break };
        run_batch(&mut session, jobs, &ctx);
    }
    tracing::debug!(model = %ctx.model_id, "model thread stopped");
}

/// Blocks for a first job, then gathers more until the batch is full or the wait is
/// over. A job that would overflow the batch is carried into the next one; a job larger
/// than a batch on its own runs alone (in chunks). `None` once the queue is closed and empty.
fn next_batch(queue: &Receiver<Job>, carried: &mut Option<Job>, batching: &BatchConfig) -> Option<Vec<Job>> {
    let first = match carried.take() {
        Some(job) => job,
        None => queue.recv().ok()?,
    };
    let deadline = Instant::now() + batching.max_wait;
    let mut size = first.items.len();
    let mut jobs = vec![first];
    while size < batching.max_batch_size {
        let wait = deadline.saturating_duration_since(Instant::now());
        let job = if wait.is_zero() { queue.try_recv().ok() } else { queue.recv_timeout(wait).ok() };
        // A timeout and a closed queue both just end the gathering.
        let Some(job) = job else {
            break;
        };
        if size + job.items.len() > batching.max_batch_size {
            *carried = Some(job);
            break;
        }
        size += job.items.len();
        jobs.push(job);
    }
    Some(jobs)
}

fn run_batch(session: &mut PackageSession, jobs: Vec<Job>, ctx: &WorkerContext) {
    let mut sizes = Vec::with_capacity(jobs.len());
    let mut replies = Vec::with_capacity(jobs.len());
    // Released once the batch is scored and before any reply is sent, so a requester
    // that has its answer never sees its own items still counted in the queue depth.
    let mut admissions = Vec::with_capacity(jobs.len());
    let mut items = Vec::new();
    for job in jobs {
        sizes.push(job.items.len());
        replies.push(job.reply);
        admissions.push(job.admission);
        items.extend(job.items);
    }
    let started = Instant::now();
    // A panic inside the model run must not kill the thread that serves every later request.
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<Vec<f32>, String> {
        let mut scores = Vec::with_capacity(items.len());
        for chunk in items.chunks(ctx.batching.max_batch_size) {
            let inputs = collate(chunk, ctx.image_size, ctx.max_length);
            scores.extend(session.score(&inputs).map_err(|e| e.to_string())?);
        }
        Ok(scores)
    }))
    .unwrap_or_else(|_| Err("the model run panicked".to_string()));
    ctx.metrics.record_batch(items.len(), started.elapsed().as_secs_f64());
    drop(admissions);

    match result {
        Ok(scores) => {
            let mut rest = scores.as_slice();
            for (reply, n) in replies.into_iter().zip(sizes) {
                let (mine, tail) = rest.split_at(n);
                rest = tail;
                // The requester may have gone (client disconnected): nothing to do then.
                let _ = reply.send(Ok(mine.to_vec()));
            }
        }
        Err(message) => {
            tracing::error!(model = %ctx.model_id, error = %message, "model run failed");
            for reply in replies {
                let _ = reply.send(Err(message.clone()));
            }
        }
    }
}
