//! Group commit for decisions. Every request must have its decisions committed before it
//! is answered, and with SQLite each commit waits for an fsync (synchronous=FULL): one
//! transaction per request would serialise requests on the disk. The writer takes all
//! requests waiting at the moment it is free, writes them in one transaction, commits
//! once, then answers each with its ids. Under load, one fsync covers many requests; a
//! lone request is written at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::decisions::{self, NewDecision};
use super::{Db, DbError};

/// Most requests written in one transaction.
const MAX_GROUP: usize = 256;

struct WriteJob {
    decisions: Vec<NewDecision>,
    reply: oneshot::Sender<Result<Vec<i64>, DbError>>,
}

/// How long a failed write keeps `/readyz` unready unless a write succeeds meanwhile (a
/// load balancer that stops sending traffic must still see the server come back).
const FAILURE_MEMORY: Duration = Duration::from_secs(10);

/// Handle to the decision writer task (cheap to clone).
#[derive(Debug, Clone)]
pub struct DecisionWriter {
    jobs: mpsc::Sender<WriteJob>,
    /// The last write's failure, if the last write failed: when, and why.
    failing: Arc<Mutex<Option<(Instant, String)>>>,
}

impl std::fmt::Debug for WriteJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteJob").field("decisions", &self.decisions.len()).finish_non_exhaustive()
    }
}

impl DecisionWriter {
    /// Starts the writer task on the current runtime. It ends when every handle is dropped.
    pub fn start(db: Db) -> DecisionWriter {
        let (jobs, receiver) = mpsc::channel(4 * MAX_GROUP);
        let failing = Arc::new(Mutex::new(None));
        tokio::spawn(run(db, receiver, failing.clone()));
        DecisionWriter { jobs, failing }
    }

    /// Why decisions cannot be written, when the last write failed less than
    /// [`FAILURE_MEMORY`] ago and none succeeded since (for `/readyz`).
    pub fn recent_failure(&self) -> Option<String> {
        let failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        failing.as_ref().filter(|(at, _)| at.elapsed() < FAILURE_MEMORY).map(|(_, why)| why.clone())
    }

    /// Records one request's decisions (all or none) and returns their ids once committed.
    pub async fn insert(&self, decisions: Vec<NewDecision>) -> Result<Vec<i64>, DbError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(WriteJob { decisions, reply }).await.map_err(|_| DbError::WriterStopped)?;
        answer.await.map_err(|_| DbError::WriterStopped)?
    }
}

async fn run(db: Db, mut receiver: mpsc::Receiver<WriteJob>, failing: Arc<Mutex<Option<(Instant, String)>>>) {
    while let Some(first) = receiver.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        write_group(&db, group, &failing).await;
    }
}

/// Records how a write went (before its requester hears of it, so that `/readyz` asked
/// right after a refusal already knows).
fn note(failing: &Mutex<Option<(Instant, String)>>, result: &Result<Vec<i64>, DbError>) {
    let failure = result.as_ref().err().filter(|e| e.is_unavailable()).map(|e| (Instant::now(), e.to_string()));
    *failing.lock().unwrap_or_else(|p| p.into_inner()) = failure;
}

async fn write_group(db: &Db, group: Vec<WriteJob>, failing: &Mutex<Option<(Instant, String)>>) {
    if group.len() == 1 {
        let job = group.into_iter().next().expect("one job");
        let result = decisions::insert_all(db, &job.decisions).await;
        note(failing, &result);
        let _ = job.reply.send(result);
        return;
    }
    let all: Vec<&NewDecision> = group.iter().flat_map(|j| j.decisions.iter()).collect();
    let result = decisions::insert_refs(db, &all).await;
    match result {
        Ok(ids) => {
            note(failing, &Ok(Vec::new()));
            let mut rest = ids.as_slice();
            for job in group {
                let (mine, tail) = rest.split_at(job.decisions.len());
                rest = tail;
                let _ = job.reply.send(Ok(mine.to_vec()));
            }
        }
        // Nothing of the group was committed. Retry each request alone, so that one
        // request's failure is not every request's failure, and each gets its own error.
        Err(e) => {
            tracing::warn!(error = %e, requests = group.len(), "group commit failed; writing requests one by one");
            for job in group {
                let result = decisions::insert_all(db, &job.decisions).await;
                note(failing, &result);
                let _ = job.reply.send(result);
            }
        }
    }
}
