//! The decision log over HTTP: list with filters and cursor paging, one decision with its
//! review history, its image, a moderator's review, and an export (CSV or JSONL).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::db::DbTime;
use crate::db::decisions::{self, Decision, DecisionFilter};
use crate::db::reviews::{self, Label, Review};
use crate::error::AppError;
use crate::review;
use crate::routes::Routes;
use crate::state::AppState;

mod export;

/// Largest page of `GET /v1/decisions`.
const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 50;

pub fn routes() -> Routes {
    Routes::new()
        .get("/v1/decisions", list)
        .get("/v1/decisions/export", export::export)
        .get("/v1/decisions/{id}", one)
        .get("/v1/decisions/{id}/image", image)
        .post("/v1/decisions/{id}/reviews", review)
        .post("/v1/reviews/{id}/retraction", retract)
}

/// Query parameters shared by the list and the export.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterQuery {
    /// `flagged` or `not_flagged` (the model's verdict).
    pub verdict: Option<String>,
    /// `true`: only reviewed decisions; `false`: only unreviewed.
    pub reviewed: Option<bool>,
    /// RFC 3339; inclusive.
    pub since: Option<String>,
    /// RFC 3339; exclusive.
    pub until: Option<String>,
    /// `name@version`.
    pub model: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    /// Export only: `csv` or `jsonl`.
    pub format: Option<String>,
}

impl FilterQuery {
    pub fn filter(&self) -> Result<DecisionFilter, AppError> {
        let time = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| {
                    DbTime::parse(v).map_err(|e| {
                        AppError::BadRequest(format!("`{name}` must be RFC 3339 (2025-01-31T12:00:00Z): {e}"))
                    })
                })
                .transpose()
        };
        let flagged = match self.verdict.as_deref() {
            None => None,
            Some("flagged") => Some(true),
            Some("not_flagged") => Some(false),
            Some(other) => {
                return Err(AppError::BadRequest(format!("`verdict` must be flagged or not_flagged, not `{other}`")));
            }
        };
        let before_id = self
            .cursor
            .as_deref()
            .map(|c| {
                c.parse::<i64>()
                    .map_err(|_| AppError::BadRequest(format!("`cursor` `{c}` is not a cursor from a previous page")))
            })
            .transpose()?;
        Ok(DecisionFilter {
            flagged,
            reviewed: self.reviewed,
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            model: self.model.clone(),
            before_id,
        })
    }
}

/// A page of decisions, newest first.
#[derive(Debug, Serialize)]
pub struct DecisionPage {
    pub data: Vec<Decision>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<FilterQuery>, QueryRejection>,
) -> Result<Json<DecisionPage>, AppError> {
    caller.require(Role::Moderator)?;
    let Query(query) = query?;
    if query.format.is_some() {
        return Err(AppError::BadRequest("`format` applies to /v1/decisions/export only".into()));
    }
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AppError::BadRequest(format!("`limit` must be 1..={MAX_PAGE}")));
    }
    let data = decisions::list(&state.db, &query.filter()?, limit).await?;
    let next_cursor = (data.len() == limit as usize).then(|| data.last().map(|d| d.id.to_string())).flatten();
    Ok(Json(DecisionPage { data, next_cursor }))
}

/// One decision and its review history.
#[derive(Debug, Serialize)]
pub struct DecisionDetail {
    #[serde(flatten)]
    pub decision: Decision,
    /// Oldest first; the last one is the current label.
    pub reviews: Vec<Review>,
}

fn decision_id(path: Result<Path<i64>, PathRejection>) -> Result<i64, AppError> {
    path.map(|Path(id)| id).map_err(|_| AppError::BadRequest("the decision id must be an integer".into()))
}

async fn one(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<DecisionDetail>, AppError> {
    caller.require(Role::Moderator)?;
    let id = decision_id(path)?;
    let decision =
        decisions::get(&state.db, id).await?.ok_or_else(|| AppError::NotFound(format!("no decision {id}")))?;
    let reviews = reviews::history(&state.db, id).await?;
    Ok(Json(DecisionDetail { decision, reviews }))
}

async fn image(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, AppError> {
    caller.require(Role::Moderator)?;
    review::image_response(&state, decision_id(path)?).await
}

/// `POST /v1/decisions/{id}/reviews` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// `hateful` or `not_hateful`.
    pub label: Label,
    #[serde(default)]
    pub note: String,
}

async fn review(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<i64>, PathRejection>,
    body: Result<Json<ReviewRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Review>), AppError> {
    caller.require(Role::Moderator)?;
    let id = decision_id(path)?;
    let Json(body) = body?;
    let review = review::add_review(&state, id, body.label, &caller.id, &body.note).await?;
    Ok((StatusCode::CREATED, Json(review)))
}

/// `POST /v1/reviews/{id}/retraction` answer.
#[derive(Debug, Serialize)]
pub struct Retraction {
    pub review_id: i64,
    pub decision_id: i64,
}

/// An admin takes a review back: it stays in the history, the review memory forgets it.
async fn retract(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<Retraction>, AppError> {
    caller.require(Role::Admin)?;
    let review_id =
        path.map(|Path(id)| id).map_err(|_| AppError::BadRequest("the review id must be an integer".into()))?;
    let decision_id = review::retract_review(&state, review_id, &caller.id).await?;
    Ok(Json(Retraction { review_id, decision_id }))
}
