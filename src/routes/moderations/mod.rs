//! `POST /v1/moderations`: OpenAI's moderation API shape (so OpenAI client libraries work
//! with a changed base URL), plus multipart uploads and a batch form. HTTP only
//! translates here; [`crate::moderation::moderate`] does the work.

mod input;

use std::collections::BTreeMap;
use std::time::Instant;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header::CONTENT_TYPE;
use serde::Serialize;

pub use self::input::{ModerationRequest, items_from_json};
use crate::auth::{Caller, Role};
use crate::db::DbTime;
use crate::error::AppError;
use crate::memory::{MatchKind, ReviewMatch};
use crate::moderation::{ModerationItem, ModerationOutcome, moderate};
use crate::routes::Routes;
use crate::state::AppState;

/// The single category memeguard scores.
const CATEGORY: &str = "hate";

pub fn routes() -> Routes {
    Routes::new().post("/v1/moderations", create)
}

/// The response body (OpenAI's fields, then ours).
#[derive(Debug, Serialize)]
pub struct ModerationResponse {
    pub id: String,
    /// `name@version` of the model package that decided.
    pub model: String,
    pub results: Vec<ModerationResult>,
}

#[derive(Debug, Serialize)]
pub struct ModerationResult {
    pub flagged: bool,
    pub categories: BTreeMap<&'static str, bool>,
    pub category_scores: BTreeMap<&'static str, f32>,
    pub category_applied_input_types: BTreeMap<&'static str, Vec<&'static str>>,
    /// The decision's id in the log (`GET /v1/decisions/{id}`).
    pub decision_id: i64,
    pub threshold: f32,
    /// `given`, `ocr` or `none`.
    pub text_source: &'static str,
    /// True when the untrained placeholder model answered (its scores mean nothing).
    pub placeholder_model: bool,
    /// The model's own score; `category_scores.hate` is the final one.
    pub model_score: f32,
    /// The reviewed decision that decided (or adjusted) the score, or null.
    pub review_match: Option<ReviewMatchBody>,
}

/// `review_match`: which reviewed decision matched, how, and its label.
#[derive(Debug, Serialize)]
pub struct ReviewMatchBody {
    pub decision_id: i64,
    /// `exact`, `pdq` or `embedding`.
    pub kind: &'static str,
    /// PDQ bits differing (pdq; 0 for exact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance: Option<u32>,
    /// Cosine similarity of the joint embeddings (embedding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f64>,
    /// `hateful` or `not_hateful`.
    pub label: &'static str,
    pub reviewed_at: DbTime,
}

impl From<&ReviewMatch> for ReviewMatchBody {
    fn from(m: &ReviewMatch) -> Self {
        let embedding = m.kind == MatchKind::Embedding;
        ReviewMatchBody {
            decision_id: m.decision_id,
            kind: m.kind.as_str(),
            distance: (!embedding).then_some(m.value as u32),
            similarity: embedding.then_some(m.value),
            label: m.label.as_str(),
            reviewed_at: m.reviewed_at,
        }
    }
}

impl From<ModerationOutcome> for ModerationResponse {
    fn from(outcome: ModerationOutcome) -> Self {
        let results = outcome
            .results
            .into_iter()
            .map(|r| ModerationResult {
                flagged: r.flagged,
                categories: BTreeMap::from([(CATEGORY, r.flagged)]),
                category_scores: BTreeMap::from([(CATEGORY, r.score)]),
                category_applied_input_types: BTreeMap::from([(CATEGORY, r.applied_input_types)]),
                decision_id: r.decision_id,
                threshold: r.threshold,
                text_source: r.text_source.as_str(),
                placeholder_model: outcome.placeholder,
                model_score: r.model_score,
                review_match: r.review_match.as_ref().map(ReviewMatchBody::from),
            })
            .collect();
        ModerationResponse { id: outcome.request_id, model: outcome.model, results }
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    request: Request,
) -> Result<Json<ModerationResponse>, AppError> {
    let started = Instant::now();
    caller.require(Role::Scorer)?;
    let content_type =
        request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let (items, store) = if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, &state).await?;
        read_multipart(multipart).await?
    } else if content_type.starts_with("application/json") {
        let Json(body) = Json::<serde_json::Value>::from_request(request, &state).await?;
        let body: ModerationRequest =
            serde_json::from_value(body).map_err(|e| AppError::BadRequest(format!("invalid request body: {e}")))?;
        (items_from_json(&body.input)?, body.store)
    } else {
        return Err(AppError::UnsupportedMediaType(format!(
            "Content-Type `{content_type}` is not accepted: send application/json or multipart/form-data"
        )));
    };
    let outcome = moderate(&state, &caller, items, store, started).await?;
    Ok(Json(outcome.into()))
}

/// One pair from a form: an `image` file, optional `text`, optional `store` (true/false).
async fn read_multipart(mut multipart: Multipart) -> Result<(Vec<ModerationItem>, bool), AppError> {
    let mut item = ModerationItem::default();
    let mut store = true;
    while let Some(field) = multipart.next_field().await? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "image" => {
                let bytes = field.bytes().await?;
                // An empty file input in an HTML form arrives as an empty part: no image.
                if !bytes.is_empty() && item.image.replace(bytes.to_vec()).is_some() {
                    return Err(AppError::BadRequest("more than one `image` field; send one image per request".into()));
                }
            }
            "text" => {
                let text = field.text().await?;
                if item.text.replace(text).is_some() {
                    return Err(AppError::BadRequest("more than one `text` field".into()));
                }
            }
            "store" => {
                store = match field.text().await?.trim() {
                    "true" | "1" | "on" => true,
                    "false" | "0" | "off" => false,
                    other => return Err(AppError::BadRequest(format!("`store` must be true or false, not `{other}`"))),
                };
            }
            other => {
                return Err(AppError::BadRequest(format!(
                    "unknown form field `{other}`: use `image`, `text` and `store`"
                )));
            }
        }
    }
    Ok((vec![item], store))
}
