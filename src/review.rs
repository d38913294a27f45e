//! Moderators' reviews and the pictures they look at: the one implementation the REST
//! routes (`/v1/decisions/…`) and the review pages (`/review/…`) both call, beside
//! [`crate::moderation::moderate`] for scoring. A review is appended to the decision's
//! history, never overwrites it; the latest review is the decision's verdict.

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::db::reviews::{self, Label, Review};
use crate::db::{decisions, memory};
use crate::error::AppError;
use crate::state::AppState;

/// Longest review note in characters (after trimming).
pub const MAX_NOTE_CHARS: usize = 4000;

/// Records `reviewer`'s `label` for decision `decision_id` with `note` (surrounding white
/// space trimmed). A note over [`MAX_NOTE_CHARS`] is a 400, an unknown decision a 404.
pub async fn add_review(
    state: &AppState,
    decision_id: i64,
    label: Label,
    reviewer: &str,
    note: &str,
) -> Result<Review, AppError> {
    let note = note.trim();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(AppError::BadRequest(format!("the note is longer than {MAX_NOTE_CHARS} characters")));
    }
    if !decisions::exists(&state.db, decision_id).await? {
        return Err(AppError::NotFound(format!("no decision {decision_id}")));
    }
    let review = reviews::add(&state.db, decision_id, label, reviewer, note).await?;
    tracing::info!(decision = decision_id, label = label.as_str(), reviewer, "reviewed");
    // The review is committed: the next request sees it (a failure here leaves the
    // memory as it was; the review still counts from the next start or refresh).
    if let Err(e) = state.memory.refresh(&state.db, decision_id).await {
        tracing::error!(decision = decision_id, error = %e, "the review memory could not take the review in");
    }
    Ok(review)
}

/// Retracts review `review_id` (by `admin`): the history keeps it, the review memory
/// forgets it (the decision is remembered by its latest review not retracted, if any).
/// Retracting twice changes nothing. An unknown review is a 404. Returns its decision.
pub async fn retract_review(state: &AppState, review_id: i64, admin: &str) -> Result<i64, AppError> {
    let decision_id = memory::retract(&state.db, review_id, admin)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no review {review_id}")))?;
    tracing::info!(review = review_id, decision = decision_id, admin, "review retracted");
    state.memory.refresh(&state.db, decision_id).await?;
    Ok(decision_id)
}

/// The stored picture of decision `decision_id` as a response. The bytes are untrusted
/// uploads: the stored media type (or `application/octet-stream`), no sniffing, shown
/// inline, cached privately only.
pub async fn image_response(state: &AppState, decision_id: i64) -> Result<Response, AppError> {
    match decisions::image(&state.db, decision_id).await? {
        None => Err(AppError::NotFound(format!("no decision {decision_id}"))),
        Some((None, _)) => Err(AppError::NotFound(format!(
            "decision {decision_id} has no stored image (text-only input, or the caller sent \"store\": false)"
        ))),
        Some((Some(bytes), mime)) => Ok((
            [
                (header::CONTENT_TYPE, mime.unwrap_or_else(|| "application/octet-stream".into())),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
                (header::CONTENT_DISPOSITION, "inline".into()),
                (header::CACHE_CONTROL, "private, max-age=3600".into()),
            ],
            Body::from(bytes),
        )
            .into_response()),
    }
}
