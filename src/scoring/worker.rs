//! The model threads: each owns one ONNX Runtime session (never on the async runtime),
//! takes jobs from the model's queue, forms dynamic batches (up to the max batch size;
//! waiting, at most the max wait after the first job, only while jobs arrive together),
//! runs them and answers each job.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use memeguard_package::{PreparedItem, collate};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::config::BatchConfig;
use crate::metrics::Metrics;
use memeguard_package::{ItemScore, PackageSession};

/// Pairs of one request, prepared for this model, and where to send their scores.
pub struct Job {
    pub items: Vec<PreparedItem>,
    pub reply: oneshot::Sender<Result<Vec<ItemScore>, String>>,
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

/// Blocks for a first job, then takes what is already queued. A lone job runs at once: a
/// free model thread never waits for company that is not coming. Only while a batch is
/// forming (a second job was already waiting, so requests are arriving together) does it
/// wait for more, until the batch is full or `max_wait` after the first job has passed.
/// A job that would overflow the batch is carried into the next one; a job larger than a
/// batch on its own runs alone (in chunks). `None` once the queue is closed and empty.
fn next_batch(queue: &Receiver<Job>, carried: &mut Option<Job>, batching: &BatchConfig) -> Option<Vec<Job>> {
    let first = match carried.take() {
        Some(job) => job,
        None => queue.recv().ok()?,
    };
    let deadline = Instant::now() + batching.max_wait;
    let mut size = first.items.len();
    let mut jobs = vec![first];
    while size < batching.max_batch_size {
        let job = match queue.try_recv() {
            Ok(job) => Some(job),
            Err(TryRecvError::Disconnected) => None,
            Err(TryRecvError::Empty) if jobs.len() > 1 => {
                let wait = deadline.saturating_duration_since(Instant::now());
                if wait.is_zero() { None } else { queue.recv_timeout(wait).ok() }
            }
            Err(TryRecvError::Empty) => None,
        };
        // Nothing queued, a timeout or a closed queue: run what there is.
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
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<Vec<ItemScore>, String> {
        let mut scores = Vec::with_capacity(items.len());
        for chunk in items.chunks(ctx.batching.max_batch_size) {
            let inputs = collate(chunk, ctx.image_size, ctx.max_length);
            scores.extend(session.score_items(&inputs).map_err(|e| e.to_string())?);
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;

    fn job(items: usize) -> (Job, oneshot::Receiver<Result<Vec<ItemScore>, String>>) {
        let (reply, receiver) = oneshot::channel();
        let admission = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        let item = PreparedItem { pixels: Vec::new(), ids: Vec::new(), mask: Vec::new() };
        (Job { items: vec![item; items], reply, admission }, receiver)
    }

    fn sizes(jobs: &[Job]) -> Vec<usize> {
        jobs.iter().map(|j| j.items.len()).collect()
    }

    const PATIENT: BatchConfig = BatchConfig { max_batch_size: 8, max_wait: Duration::from_secs(30), sessions: 1 };

    #[test]
    fn a_lone_job_runs_without_waiting() {
        let (sender, queue) = mpsc::channel();
        let (lone, _reply) = job(1);
        sender.send(lone).unwrap();
        let started = Instant::now();
        let batch = next_batch(&queue, &mut None, &PATIENT).unwrap();
        assert_eq!(sizes(&batch), [1]);
        // Far below the 30 s max wait: it did not wait at all.
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn jobs_arriving_together_wait_for_company_up_to_the_batch_size() {
        let (sender, queue) = mpsc::channel();
        let mut replies = Vec::new();
        for n in [2, 3] {
            let (j, r) = job(n);
            sender.send(j).unwrap();
            replies.push(r);
        }
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let (j, r) = job(3);
            sender.send(j).unwrap();
            let (j, r2) = job(1);
            sender.send(j).unwrap();
            (r, r2)
        });
        let mut carried = None;
        let batch = next_batch(&queue, &mut carried, &PATIENT).unwrap();
        assert_eq!(sizes(&batch), [2, 3, 3], "a batch is forming: the late job joins, the full batch runs");
        let _replies = late.join().unwrap();
        assert!(carried.is_none());
        let batch = next_batch(&queue, &mut carried, &PATIENT).unwrap();
        assert_eq!(sizes(&batch), [1]);
        assert!(next_batch(&queue, &mut carried, &PATIENT).is_none(), "closed and empty");
    }

    #[test]
    fn a_job_that_does_not_fit_is_carried() {
        let (sender, queue) = mpsc::channel();
        let mut replies = Vec::new();
        for n in [5, 5] {
            let (j, r) = job(n);
            sender.send(j).unwrap();
            replies.push(r);
        }
        drop(sender);
        let mut carried = None;
        assert_eq!(sizes(&next_batch(&queue, &mut carried, &PATIENT).unwrap()), [5]);
        assert_eq!(sizes(&next_batch(&queue, &mut carried, &PATIENT).unwrap()), [5]);
        assert!(next_batch(&queue, &mut carried, &PATIENT).is_none());
    }
}
