//! What the review memory reads: reviewed decisions with their signals, and retractions.

use super::reviews::Label;
use super::{Db, DbError, DbTime};
use crate::memory::Entry;
use crate::memory::pdq::PdqHash;
use crate::memory::signals::{Signals, embedding_from_bytes, joint_embedding};
use crate::with_pool;

type Row = (
    i64,
    i64,
    String,
    DbTime,
    String,
    Option<String>,
    Option<String>,
    Option<i32>,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

/// Every reviewed decision with signals (or only `decision_id`), each with its latest
/// review that was not retracted.
pub async fn reviewed(db: &Db, decision_id: Option<i64>) -> Result<Vec<Entry>, DbError> {
    let sql = "
        SELECT d.id, r.id, r.label, r.created_at, d.model, d.image_sha256, d.pdq_hash, d.pdq_quality,
               d.text_norm_sha256, d.image_embedding, d.text_embedding
        FROM decisions d
        JOIN reviews r ON r.id = (
            SELECT MAX(r2.id) FROM reviews r2
            WHERE r2.decision_id = d.id
              AND NOT EXISTS (SELECT 1 FROM review_retractions x WHERE x.review_id = r2.id))
        WHERE d.text_norm_sha256 IS NOT NULL AND ($1 IS NULL OR d.id = $1)";
    let rows: Vec<Row> = with_pool!(db, pool => sqlx::query_as(sql).bind(decision_id).fetch_all(pool).await?);
    Ok(rows.into_iter().filter_map(entry).collect())
}

fn entry(row: Row) -> Option<Entry> {
    let (decision_id, review_id, label, reviewed_at, model, image_sha256, pdq, quality, text, image_emb, text_emb) =
        row;
    let label = match label.as_str() {
        "hateful" => Label::Hateful,
        "not_hateful" => Label::NotHateful,
        _ => return None,
    };
    let image_emb = image_emb.as_deref().and_then(embedding_from_bytes);
    let text_emb = text_emb.as_deref().and_then(embedding_from_bytes);
    Some(Entry {
        decision_id,
        review_id,
        label,
        reviewed_at,
        model,
        signals: Signals {
            image_sha256,
            pdq: pdq.as_deref().and_then(PdqHash::from_hex),
            pdq_quality: quality.and_then(|q| u32::try_from(q).ok()),
            text_norm_sha256: text?,
            embedding: joint_embedding(image_emb.as_deref(), text_emb.as_deref()),
        },
    })
}

/// Records that `review_id` is retracted (again: no change) and returns its decision,
/// or `None` for an unknown review.
pub async fn retract(db: &Db, review_id: i64, by: &str) -> Result<Option<i64>, DbError> {
    Ok(with_pool!(db, pool => {
        let decision: Option<i64> = sqlx::query_scalar("SELECT decision_id FROM reviews WHERE id = $1")
            .bind(review_id)
            .fetch_optional(pool)
            .await?;
        if decision.is_some() {
            sqlx::query(
                "INSERT INTO review_retractions (review_id, retracted_by, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (review_id) DO NOTHING",
            )
            .bind(review_id)
            .bind(by)
            .bind(DbTime::now())
            .execute(pool)
            .await?;
        }
        decision
    }))
}

/// Reviews and retractions recorded with an id above the given ones: `(kind, id,
/// decision_id)` with kind `review` or `retraction`, for replicas to catch up on.
pub async fn changes_since(db: &Db, review_id: i64, retraction_id: i64) -> Result<Vec<(String, i64, i64)>, DbError> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT 'review', id, decision_id FROM reviews WHERE id > $1
             UNION ALL
             SELECT 'retraction', x.id, r.decision_id FROM review_retractions x JOIN reviews r ON r.id = x.review_id
             WHERE x.id > $2",
        )
        .bind(review_id)
        .bind(retraction_id)
        .fetch_all(pool)
        .await?
    }))
}

/// The highest review and retraction ids (0 when none).
pub async fn latest_ids(db: &Db) -> Result<(i64, i64), DbError> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as(
            "SELECT COALESCE((SELECT MAX(id) FROM reviews), 0), COALESCE((SELECT MAX(id) FROM review_retractions), 0)",
        )
        .fetch_one(pool)
        .await?
    }))
}
