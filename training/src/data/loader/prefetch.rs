//! Worker threads that build an epoch's batches ahead of the consumer, handing them out
//! in order. At most `prefetch` batches are claimed beyond the one the consumer waits
//! for, so memory stays bounded however slow the training step is.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::{Batch, Loader};

struct State {
    /// Next batch index a worker may claim.
    next_claim: usize,
    /// Batches handed to the consumer so far.
    emitted: usize,
    /// Finished batches not yet handed out.
    ready: BTreeMap<usize, Batch>,
    /// Workers still running (a worker that panics still counts itself out).
    alive: usize,
    stop: bool,
}

struct Progress {
    state: Mutex<State>,
    changed: Condvar,
}

impl Progress {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a worker panicked while holding it; the state itself is
        // still consistent (every update is a single assignment), so keep going.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Counts a worker out when it ends, normally or by panic.
struct AliveGuard(Arc<Progress>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.lock().alive -= 1;
        self.0.changed.notify_all();
    }
}

/// The batches of one epoch, in order; dropping it stops the workers.
pub struct EpochBatches {
    progress: Arc<Progress>,
    workers: Vec<JoinHandle<()>>,
    total: usize,
    epoch: u64,
}

impl EpochBatches {
    pub(super) fn start(loader: Loader, epoch: u64) -> Self {
        let order = Arc::new(loader.epoch_order(epoch));
        let total = loader.batches_per_epoch();
        let config = loader.config().clone();
        let workers = config.workers.min(total.max(1));
        let progress = Arc::new(Progress {
            state: Mutex::new(State { next_claim: 0, emitted: 0, ready: BTreeMap::new(), alive: workers, stop: false }),
            changed: Condvar::new(),
        });
        let handles = (0..workers)
            .map(|w| {
                let (loader, order, progress) = (loader.clone(), order.clone(), progress.clone());
                std::thread::Builder::new()
                    .name(format!("loader-{w}"))
                    .spawn(move || {
                        let _alive = AliveGuard(progress.clone());
                        while let Some(index) = claim(&progress, total, config.prefetch) {
                            let batch = loader.load_batch(epoch, index, &order);
                            progress.lock().ready.insert(index, batch);
                            progress.changed.notify_all();
                        }
                    })
                    .expect("spawning a loader thread")
            })
            .collect();
        EpochBatches { progress, workers: handles, total, epoch }
    }

    /// The epoch these batches belong to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of batches in the epoch.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// Waits until batch `next_claim` is within the prefetch window, then claims it.
fn claim(progress: &Progress, total: usize, prefetch: usize) -> Option<usize> {
    let mut state = progress.lock();
    loop {
        if state.stop || state.next_claim >= total {
            return None;
        }
        if state.next_claim < state.emitted + prefetch {
            state.next_claim += 1;
            return Some(state.next_claim - 1);
        }
        state = progress.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
    }
}

impl Iterator for EpochBatches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let mut state = self.progress.lock();
        if state.emitted >= self.total {
            return None;
        }
        loop {
            let wanted = state.emitted;
            if let Some(batch) = state.ready.remove(&wanted) {
                state.emitted += 1;
                drop(state);
                self.progress.changed.notify_all();
                return Some(batch);
            }
            if state.alive == 0 {
                // Every worker ended without producing this batch: one panicked.
                panic!("a loader worker thread panicked before producing batch {wanted} of epoch {}", self.epoch);
            }
            state = self.progress.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total - self.progress.lock().emitted;
        (left, Some(left))
    }
}

impl ExactSizeIterator for EpochBatches {}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        self.progress.lock().stop = true;
        self.progress.changed.notify_all();
        for worker in self.workers.drain(..) {
            // A worker's panic was already reported through `next`; do not panic in drop.
            let _ = worker.join();
        }
    }
}
