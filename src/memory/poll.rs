//! Keeping replicas' memories in step. Each server updates its own memory as it takes a
//! review; replicas sharing one PostgreSQL database also poll it (every
//! `--review-memory-poll-ms`, default 1000) for reviews and retractions recorded since,
//! and re-read those decisions. Two indexed queries a second per replica.
//!
//! Ids are handed out before commit, so a review with a lower id can become visible after
//! one with a higher id. The poll therefore looks back over the last [`WINDOW`] ids of each
//! kind and remembers which of those it has already applied, instead of only asking for
//! ids above the highest seen.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::ReviewMemory;
use crate::db::{Db, DbError, memory};

/// How many ids below the highest seen are asked for again (commits out of id order).
const WINDOW: i64 = 1000;

/// Ids applied, per kind, at or above a low-water mark.
#[derive(Debug, Default)]
struct Seen {
    low: i64,
    ids: BTreeSet<i64>,
}

impl Seen {
    /// Whether `id` is new (and notes it).
    fn note(&mut self, id: i64) -> bool {
        id > self.low && self.ids.insert(id)
    }

    fn advance(&mut self) {
        if let Some(&max) = self.ids.last() {
            self.low = self.low.max(max - WINDOW);
            self.ids = self.ids.split_off(&(self.low + 1));
        }
    }
}

/// The poll's state: what has been applied.
#[derive(Debug, Default)]
pub struct Poller {
    reviews: Seen,
    retractions: Seen,
}

impl Poller {
    /// Notes everything already in the database as applied. Call before the memory is
    /// loaded, so that nothing committed in between is missed.
    pub async fn primed(db: &Db) -> Result<Poller, DbError> {
        // Only the last window of each kind is read: older ones cannot still be committing.
        let (reviews, retractions) = memory::latest_ids(db).await?;
        let mut poller = Poller::default();
        poller.reviews.low = (reviews - WINDOW).max(0);
        poller.retractions.low = (retractions - WINDOW).max(0);
        poller.changed_decisions(db).await?;
        Ok(poller)
    }

    /// Decisions whose reviews changed since the last call.
    async fn changed_decisions(&mut self, db: &Db) -> Result<Vec<i64>, DbError> {
        let rows = memory::changes_since(db, self.reviews.low, self.retractions.low).await?;
        let mut changed = BTreeSet::new();
        for (kind, id, decision_id) in rows {
            let seen = if kind == "review" { &mut self.reviews } else { &mut self.retractions };
            if seen.note(id) {
                changed.insert(decision_id);
            }
        }
        self.reviews.advance();
        self.retractions.advance();
        Ok(changed.into_iter().collect())
    }

    /// One poll: re-reads the decisions whose reviews changed. Returns how many.
    pub async fn poll(&mut self, db: &Db, target: &ReviewMemory) -> Result<usize, DbError> {
        let changed = self.changed_decisions(db).await?;
        for &id in &changed {
            target.refresh(db, id).await?;
        }
        Ok(changed.len())
    }

    /// Polls every `every` until the memory is dropped or the pool is closed (shutdown).
    pub fn spawn(mut self, db: Db, target: &Arc<ReviewMemory>, every: Duration) {
        let target: Weak<ReviewMemory> = Arc::downgrade(target);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(memory) = target.upgrade() else { break };
                match self.poll(&db, &memory).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(decisions = n, "review memory caught up with other replicas"),
                    Err(DbError::Sqlx(sqlx::Error::PoolClosed)) => break,
                    Err(e) => tracing::warn!(error = %e, "review memory poll failed; retrying"),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_committed_out_of_order_are_still_applied_once() {
        let mut seen = Seen::default();
        assert!(seen.note(5) && seen.note(7));
        seen.advance();
        assert!(!seen.note(7), "already applied");
        assert!(seen.note(6), "committed late, below the highest seen");
        for id in 8..2000 {
            seen.note(id);
        }
        seen.advance();
        assert_eq!(seen.low, 1999 - WINDOW);
        assert!(!seen.note(900), "below the window: given up on");
        assert!(seen.ids.len() <= WINDOW as usize);
    }
}
