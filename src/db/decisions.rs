//! Decisions: written once per scored pair (all pairs of a request in one transaction),
//! then read by the decision API, the export, and the review pages.

use serde::Serialize;

use super::{Db, DbError, DbTime};
use crate::with_pool;

/// Where a decision's text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TextSource {
    /// Sent by the caller.
    Given,
    /// Read from the image by OCR.
    Ocr,
    /// No text: the image alone was scored.
    None,
}

impl TextSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TextSource::Given => "given",
            TextSource::Ocr => "ocr",
            TextSource::None => "none",
        }
    }
}

/// The image part of a decision (absent for text-only input).
#[derive(Debug, Clone)]
pub struct DecisionImage {
    pub sha256: String,
    /// `image/png`, `image/jpeg`, `image/webp` or `image/gif`, from the bytes' magic number.
    pub mime: String,
    pub width: u32,
    pub height: u32,
    /// The bytes as received; `None` when the caller asked not to store content.
    pub bytes: Option<Vec<u8>>,
}

/// A decision about to be recorded.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub created_at: DbTime,
    pub request_id: String,
    pub model: String,
    pub score: f64,
    pub threshold: f64,
    pub flagged: bool,
    /// The text; `None` when the caller asked not to store content.
    pub text: Option<String>,
    pub text_sha256: String,
    pub text_source: TextSource,
    pub image: Option<DecisionImage>,
    pub stored: bool,
    pub latency_ms: f64,
    pub caller: String,
    /// The model's own score (`score` is the final one).
    pub model_score: f64,
    /// PDQ hash (hex) and quality of the picture.
    pub pdq: Option<(String, u32)>,
    pub text_norm_sha256: String,
    /// The package's `image_embedding` / `text_embedding` rows, as stored.
    pub image_embedding: Option<Vec<u8>>,
    pub text_embedding: Option<Vec<u8>>,
    /// The reviewed decision that decided it: id, kind, distance or similarity, label.
    pub review_match: Option<(i64, &'static str, f64, &'static str)>,
}

/// A recorded decision with its current review, without the image bytes.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Decision {
    pub id: i64,
    pub created_at: DbTime,
    pub request_id: String,
    pub model: String,
    pub score: f64,
    pub threshold: f64,
    pub flagged: bool,
    pub text: Option<String>,
    pub text_sha256: String,
    pub text_source: String,
    pub image_sha256: Option<String>,
    pub image_mime: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub stored: bool,
    /// Whether the image bytes are in the log (`/v1/decisions/{id}/image` serves them).
    pub has_image: bool,
    pub latency_ms: f64,
    pub caller: String,
    /// The latest review's label (`hateful` / `not_hateful`), if reviewed.
    pub review_label: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DbTime>,
    /// The model's own score (NULL for decisions logged before the review memory).
    pub model_score: Option<f64>,
    /// The reviewed decision that decided this one, how it matched (`exact`, `pdq`,
    /// `embedding`), the PDQ distance or cosine similarity, and its label then.
    pub match_decision_id: Option<i64>,
    pub match_kind: Option<String>,
    pub match_value: Option<f64>,
    pub match_label: Option<String>,
}

/// Filters for listing and exporting decisions; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    /// The model's verdict.
    pub flagged: Option<bool>,
    /// Whether at least one review exists.
    pub reviewed: Option<bool>,
    pub since: Option<DbTime>,
    pub until: Option<DbTime>,
    /// Exact `name@version`.
    pub model: Option<String>,
    /// Only decisions with an id below this (paging newest first).
    pub before_id: Option<i64>,
}

/// Columns of [`Decision`], with the latest review joined in.
pub(crate) const SELECT_DECISION: &str = "
SELECT d.id, d.created_at, d.request_id, d.model, d.score, d.threshold, d.flagged, d.text,
       d.text_sha256, d.text_source, d.image_sha256, d.image_mime, d.width, d.height, d.stored,
       (d.image IS NOT NULL) AS has_image, d.latency_ms, d.caller,
       r.label AS review_label, r.reviewer AS reviewed_by, r.created_at AS reviewed_at,
       d.model_score, d.match_decision_id, d.match_kind, d.match_value, d.match_label
FROM decisions d
LEFT JOIN reviews r ON r.id = (SELECT MAX(r2.id) FROM reviews r2 WHERE r2.decision_id = d.id)";

/// Records all decisions of one request in one transaction and returns their ids in order.
/// Nothing is written unless everything is.
pub async fn insert_all(db: &Db, decisions: &[NewDecision]) -> Result<Vec<i64>, DbError> {
    insert_refs(db, &decisions.iter().collect::<Vec<_>>()).await
}

/// [`insert_all`] over borrowed decisions (the group writer's several requests).
///
/// The transaction is spelled out (`BEGIN` … `COMMIT` on one connection) rather than
/// left to sqlx's `Transaction`, and a connection that saw any error is closed instead of
/// going back to the pool: after SQLite rolls a transaction back by itself (`SQLITE_FULL`,
/// I/O errors) sqlx's idea of the connection's transaction depth no longer matches
/// SQLite's, and a later "commit" on that connection could commit nothing. Closing it
/// ends whatever transaction it was in. Ids are returned only after `COMMIT` succeeded.
pub(super) async fn insert_refs(db: &Db, decisions: &[&NewDecision]) -> Result<Vec<i64>, DbError> {
    let ids = with_pool!(db, pool => {
        let mut conn = pool.acquire().await?;
        let result: Result<Vec<i64>, sqlx::Error> = async {
            sqlx::query("BEGIN").execute(&mut *conn).await?;
            let mut ids = Vec::with_capacity(decisions.len());
            for d in decisions {
                let image = d.image.as_ref();
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO decisions (created_at, request_id, model, score, threshold, flagged, text, text_sha256,
                        text_source, image_sha256, image_mime, width, height, image, stored, latency_ms, caller,
                        model_score, pdq_hash, pdq_quality, text_norm_sha256, image_embedding, text_embedding,
                        match_decision_id, match_kind, match_value, match_label)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                        $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)
                     RETURNING id",
                )
                .bind(d.created_at)
                .bind(&d.request_id)
                .bind(&d.model)
                .bind(d.score)
                .bind(d.threshold)
                .bind(d.flagged)
                .bind(d.text.as_deref())
                .bind(&d.text_sha256)
                .bind(d.text_source.as_str())
                .bind(image.map(|i| i.sha256.as_str()))
                .bind(image.map(|i| i.mime.as_str()))
                .bind(image.map(|i| i.width as i32))
                .bind(image.map(|i| i.height as i32))
                .bind(image.and_then(|i| i.bytes.as_deref()))
                .bind(d.stored)
                .bind(d.latency_ms)
                .bind(&d.caller)
                .bind(d.model_score)
                .bind(d.pdq.as_ref().map(|p| p.0.as_str()))
                .bind(d.pdq.as_ref().map(|p| p.1 as i32))
                .bind(&d.text_norm_sha256)
                .bind(d.image_embedding.as_deref())
                .bind(d.text_embedding.as_deref())
                .bind(d.review_match.map(|m| m.0))
                .bind(d.review_match.map(|m| m.1))
                .bind(d.review_match.map(|m| m.2))
                .bind(d.review_match.map(|m| m.3))
                .fetch_one(&mut *conn)
                .await?;
                ids.push(id);
            }
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            Ok(ids)
        }
        .await;
        if result.is_err() {
            conn.close_on_drop();
        }
        result?
    });
    Ok(ids)
}

/// One decision, or `None` if the id is unknown.
pub async fn get(db: &Db, id: i64) -> Result<Option<Decision>, DbError> {
    let sql = format!("{SELECT_DECISION} WHERE d.id = $1");
    Ok(with_pool!(db, pool => sqlx::query_as::<_, Decision>(&sql).bind(id).fetch_optional(pool).await?))
}

/// A decision's stored image: `Ok(None)` for an unknown id, `Some((None, _))` when the
/// decision has no stored image.
pub async fn image(db: &Db, id: i64) -> Result<Option<(Option<Vec<u8>>, Option<String>)>, DbError> {
    Ok(with_pool!(db, pool => {
        sqlx::query_as::<_, (Option<Vec<u8>>, Option<String>)>("SELECT image, image_mime FROM decisions WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
    }))
}

/// Whether a decision with this id exists.
pub async fn exists(db: &Db, id: i64) -> Result<bool, DbError> {
    Ok(with_pool!(db, pool => {
        sqlx::query_scalar::<_, i64>("SELECT id FROM decisions WHERE id = $1").bind(id).fetch_optional(pool).await?.is_some()
    }))
}

/// Up to `limit` decisions matching `filter`, newest first.
pub async fn list(db: &Db, filter: &DecisionFilter, limit: u32) -> Result<Vec<Decision>, DbError> {
    // Optional filters as `($n IS NULL OR ...)`: one static statement per backend,
    // prepared once and cached by sqlx.
    let sql = format!(
        "{SELECT_DECISION}
         WHERE ($1 IS NULL OR d.flagged = $1)
           AND ($2 IS NULL OR ($2 = (EXISTS (SELECT 1 FROM reviews r3 WHERE r3.decision_id = d.id))))
           AND ($3 IS NULL OR d.created_at >= $3)
           AND ($4 IS NULL OR d.created_at < $4)
           AND ($5 IS NULL OR d.model = $5)
           AND ($6 IS NULL OR d.id < $6)
         ORDER BY d.id DESC
         LIMIT $7"
    );
    Ok(with_pool!(db, pool => {
        sqlx::query_as::<_, Decision>(&sql)
            .bind(filter.flagged)
            .bind(filter.reviewed)
            .bind(filter.since)
            .bind(filter.until)
            .bind(filter.model.as_deref())
            .bind(filter.before_id)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
    }))
}
