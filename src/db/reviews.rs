//! Moderators' reviews: an append-only history per decision (the schema forbids updates
//! and deletes); the latest review is the decision's current label.

use serde::{Deserialize, Serialize};

use super::{Db, DbError, DbTime};
use crate::with_pool;

/// A moderator's verdict on a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Hateful,
    NotHateful,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Hateful => "hateful",
            Label::NotHateful => "not_hateful",
        }
    }
}

/// A recorded review.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Review {
    pub id: i64,
    pub decision_id: i64,
    pub label: String,
    pub reviewer: String,
    pub note: String,
    pub created_at: DbTime,
}

/// Appends a review; the caller has checked that the decision exists.
pub async fn add(db: &Db, decision_id: i64, label: Label, reviewer: &str, note: &str) -> Result<Review, DbError> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as::<_, Review>(
            "INSERT INTO reviews (decision_id, label, reviewer, note, created_at) VALUES ($1, $2, $3, $4, $5)
             RETURNING id, decision_id, label, reviewer, note, created_at",
        )
        .bind(decision_id)
        .bind(label.as_str())
        .bind(reviewer)
        .bind(note)
        .bind(DbTime::now())
        .fetch_one(pool)
        .await?
    }))
}

/// A decision's reviews, oldest first.
pub async fn history(db: &Db, decision_id: i64) -> Result<Vec<Review>, DbError> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as::<_, Review>(
            "SELECT id, decision_id, label, reviewer, note, created_at FROM reviews WHERE decision_id = $1 ORDER BY id",
        )
        .bind(decision_id)
        .fetch_all(pool)
        .await?
    }))
}
