//! Checking a meme by hand: upload a picture (and its text, if known) and see the verdict.
//! A plain multipart form, so it works without JavaScript; `static/upload.js` adds
//! drag-and-drop and a preview.

use std::time::Instant;

use askama::Template;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::review::{MatchView, match_view};
use super::{Layout, ScoreBar, render};
use crate::auth::Role;
use crate::db::decisions;
use crate::error::AppError;
use crate::moderation::{ModerationItem, moderate};
use crate::state::AppState;
use crate::web::error::PageError;
use crate::web::session::WebUser;

#[derive(Template)]
#[template(path = "upload.html")]
struct UploadPage {
    layout: Layout,
    csrf: String,
    text: String,
    error: Option<String>,
    result: Option<Verdict>,
    ocr_ready: bool,
}

/// The verdict shown after an upload.
struct Verdict {
    decision_id: i64,
    bar: ScoreBar,
    model: String,
    placeholder: bool,
    text: String,
    text_source: String,
    has_image: bool,
    /// The reviewed decision that decided it (review memory), if any.
    review_match: Option<MatchView>,
}

fn page(state: &AppState, user: &WebUser) -> UploadPage {
    UploadPage {
        layout: Layout::new(state, Some(user)),
        csrf: user.csrf.clone(),
        text: String::new(),
        error: None,
        result: None,
        ocr_ready: state.ocr.is_enabled(),
    }
}

/// `GET /upload`.
pub async fn form(State(state): State<AppState>, user: WebUser) -> Result<Response, PageError> {
    user.require(Role::Moderator)?;
    Ok(render(&page(&state, &user))?.into_response())
}

/// The upload form's fields.
#[derive(Default)]
struct UploadForm {
    csrf: Option<String>,
    image: Option<Vec<u8>>,
    text: Option<String>,
}

async fn read_form(mut multipart: Multipart) -> Result<UploadForm, AppError> {
    let mut form = UploadForm::default();
    while let Some(field) = multipart.next_field().await? {
        match field.name().unwrap_or("") {
            "csrf" => form.csrf = Some(field.text().await?),
            "image" => {
                let bytes = field.bytes().await?;
                // A form submitted without choosing a file sends an empty part.
                form.image = (!bytes.is_empty()).then(|| bytes.to_vec());
            }
            "text" => {
                let text = field.text().await?;
                form.text = (!text.trim().is_empty()).then_some(text);
            }
            other => return Err(AppError::BadRequest(format!("unknown form field `{other}`"))),
        }
    }
    Ok(form)
}

/// `POST /upload`: scores the meme as the API would (same rules, same decision log; the
/// caller is `web:<username>`) and shows the verdict.
pub async fn submit(
    State(state): State<AppState>,
    user: WebUser,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, PageError> {
    let started = Instant::now();
    user.require(Role::Moderator)?;
    let form = read_form(multipart.map_err(AppError::from)?).await?;
    user.check_csrf(form.csrf.as_deref())?;
    let mut shown = page(&state, &user);
    shown.text = form.text.clone().unwrap_or_default();
    if form.image.is_none() && form.text.is_none() {
        shown.error = Some("Choose a picture, type its text, or both.".into());
        return Ok((StatusCode::BAD_REQUEST, render(&shown)?).into_response());
    }
    let item = ModerationItem { image: form.image, text: form.text };
    let outcome = match moderate(&state, &user.caller, vec![item], true, started).await {
        Ok(outcome) => outcome,
        // Bad input, a full queue or no model: say so on the form. Our own failures go
        // to the error page, which shows no internals.
        Err(e) => match client_facing_status(&e) {
            Some(status) => {
                shown.error = Some(e.to_string());
                return Ok((status, render(&shown)?).into_response());
            }
            None => return Err(e.into()),
        },
    };
    let result = outcome.results.first().ok_or_else(|| AppError::Internal("no result for the upload".into()))?;
    let decision = decisions::get(&state.db, result.decision_id)
        .await?
        .ok_or_else(|| AppError::Internal(format!("decision {} vanished", result.decision_id)))?;
    // The verdict shows the text that was scored; the form starts empty for the next meme.
    shown.text.clear();
    shown.result = Some(Verdict {
        review_match: match_view(&decision),
        decision_id: decision.id,
        bar: ScoreBar::new(decision.score, decision.threshold),
        model: decision.model,
        placeholder: outcome.placeholder,
        text: decision.text.unwrap_or_default(),
        text_source: decision.text_source,
        has_image: decision.has_image,
    });
    Ok(render(&shown)?.into_response())
}

/// The status to show a moderation error on the form with, or `None` for our own failures.
fn client_facing_status(e: &AppError) -> Option<StatusCode> {
    match e {
        AppError::BadRequest(_) => Some(StatusCode::BAD_REQUEST),
        AppError::PayloadTooLarge(_) => Some(StatusCode::PAYLOAD_TOO_LARGE),
        AppError::UnsupportedMediaType(_) => Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        AppError::Unprocessable(_) => Some(StatusCode::UNPROCESSABLE_ENTITY),
        AppError::Overloaded { .. } => Some(StatusCode::TOO_MANY_REQUESTS),
        AppError::Unavailable(_) => Some(StatusCode::SERVICE_UNAVAILABLE),
        _ => None,
    }
}
