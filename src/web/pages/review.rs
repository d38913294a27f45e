//! The review queue, a decision's page, and recording a moderator's review. Reviews and
//! pictures go through [`crate::review`], the same service `POST /v1/decisions/{id}/reviews`
//! and `GET /v1/decisions/{id}/image` use.

use askama::Template;
use axum::Form;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Layout, ScoreBar, label_text, render};
use crate::auth::Role;
use crate::db::decisions::{self, Decision};
use crate::db::reviews::{self, Label};
use crate::error::AppError;
use crate::review;
use crate::state::AppState;
use crate::web::error::{PageError, encode_query_value};
use crate::web::queries::{self, QueueFilter};
use crate::web::session::WebUser;

/// Decisions per queue page.
const QUEUE_PAGE: u32 = 25;

/// A decision as the queue and the decision page show it.
pub struct DecisionView {
    pub id: i64,
    pub created_at: String,
    pub model: String,
    pub bar: ScoreBar,
    pub verdict: &'static str,
    /// The text, or a note that it was not stored.
    pub text: Option<String>,
    pub text_source: String,
    pub has_image: bool,
    pub size: Option<String>,
    pub caller: String,
    /// The current label (latest review), for people.
    pub review: Option<&'static str>,
    pub reviewed_by: Option<String>,
    /// Whether the current label disagrees with the model.
    pub overridden: bool,
    /// The reviewed decision that decided this one (review memory), if any.
    pub review_match: Option<MatchView>,
}

/// "matched decision #N (reviewed as …)".
pub struct MatchView {
    pub decision_id: i64,
    pub label: &'static str,
    /// How it matched, for people: "same picture and text", "PDQ distance 12 bits", …
    pub how: String,
    /// The model's own score, when the match changed it.
    pub model_score: Option<String>,
}

pub(super) fn match_view(d: &Decision) -> Option<MatchView> {
    let id = d.match_decision_id?;
    let how = match (d.match_kind.as_deref(), d.match_value) {
        (Some("exact"), _) => "same picture and text".to_string(),
        (Some("pdq"), Some(v)) => format!("near-identical picture, PDQ distance {v:.0} of 256 bits, same text"),
        (Some("embedding"), Some(v)) => format!("nearest neighbour, similarity {v:.3}"),
        (kind, _) => kind.unwrap_or("unknown").to_string(),
    };
    Some(MatchView {
        decision_id: id,
        label: d.match_label.as_deref().map_or("unknown", label_text),
        how,
        model_score: d.model_score.map(|s| format!("{s:.3}")),
    })
}

impl From<Decision> for DecisionView {
    fn from(d: Decision) -> Self {
        let overridden = d.review_label.as_deref().is_some_and(|l| (l == Label::Hateful.as_str()) != d.flagged);
        let review_match = match_view(&d);
        DecisionView {
            review_match,
            id: d.id,
            created_at: d.created_at.to_rfc3339()[..19].replace('T', " "),
            bar: ScoreBar::new(d.score, d.threshold),
            verdict: if d.flagged { "hateful" } else { "not hateful" },
            model: d.model,
            text: d.text,
            text_source: d.text_source,
            has_image: d.has_image,
            size: d.width.zip(d.height).map(|(w, h)| format!("{w}×{h}")),
            caller: d.caller,
            review: d.review_label.as_deref().map(label_text),
            reviewed_by: d.reviewed_by,
            overridden,
        }
    }
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    layout: Layout,
    decisions: Vec<DecisionView>,
    query: QueueQuery,
    models: Vec<String>,
    page: u32,
    previous_link: Option<String>,
    next_link: Option<String>,
}

/// The queue's filters, as the filter form sends them (empty means any).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QueueQuery {
    /// `flagged` / `not_flagged`.
    pub verdict: String,
    /// `unreviewed` / `reviewed`.
    pub status: String,
    pub model: String,
    /// `given` / `ocr` / `none`.
    pub source: String,
    pub page: u32,
}

impl QueueQuery {
    fn filter(&self) -> Result<QueueFilter, AppError> {
        let pick = |name: &str, value: &str, allowed: &[&str]| -> Result<(), AppError> {
            if value.is_empty() || allowed.contains(&value) {
                Ok(())
            } else {
                Err(AppError::BadRequest(format!("`{name}` must be one of {}", allowed.join(", "))))
            }
        };
        pick("verdict", &self.verdict, &["flagged", "not_flagged"])?;
        pick("status", &self.status, &["unreviewed", "reviewed"])?;
        pick("source", &self.source, &["given", "ocr", "none"])?;
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(QueueFilter {
            flagged: nonempty(&self.verdict).map(|v| v == "flagged"),
            reviewed: nonempty(&self.status).map(|v| v == "reviewed"),
            model: nonempty(&self.model),
            text_source: nonempty(&self.source),
        })
    }

    /// This query's link for another page.
    fn link(&self, page: u32) -> String {
        format!(
            "/review?verdict={}&status={}&model={}&source={}&page={page}",
            encode_query_value(&self.verdict),
            encode_query_value(&self.status),
            encode_query_value(&self.model),
            encode_query_value(&self.source),
        )
    }
}

/// `GET /review`: the queue.
pub async fn queue(
    State(state): State<AppState>,
    user: WebUser,
    query: Result<Query<QueueQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    user.require(Role::Moderator)?;
    let Query(query) = query.map_err(AppError::from)?;
    let filter = query.filter()?;
    let offset = query.page.saturating_mul(QUEUE_PAGE);
    let rows = queries::review_queue(&state.db, &filter, QUEUE_PAGE + 1, offset).await?;
    let more = rows.len() > QUEUE_PAGE as usize;
    let decisions = rows.into_iter().take(QUEUE_PAGE as usize).map(DecisionView::from).collect();
    let page = QueuePage {
        layout: Layout::new(&state, Some(&user)),
        decisions,
        models: queries::models_seen(&state.db).await?,
        page: query.page,
        previous_link: (query.page > 0).then(|| query.link(query.page - 1)),
        next_link: more.then(|| query.link(query.page + 1)),
        query,
    };
    Ok(render(&page)?.into_response())
}

fn decision_id(path: Result<Path<i64>, PathRejection>) -> Result<i64, AppError> {
    path.map(|Path(id)| id).map_err(|_| AppError::BadRequest("the decision id must be an integer".into()))
}

async fn find_decision(state: &AppState, id: i64) -> Result<Decision, PageError> {
    let decision = decisions::get(&state.db, id).await?;
    Ok(decision.ok_or_else(|| AppError::NotFound(format!("no decision {id}")))?)
}

/// A review in the history list.
struct ReviewView {
    label: &'static str,
    reviewer: String,
    note: String,
    created_at: String,
}

#[derive(Template)]
#[template(path = "decision.html")]
struct DecisionPage {
    layout: Layout,
    csrf: String,
    decision: DecisionView,
    history: Vec<ReviewView>,
    /// What "confirm" and "override" record.
    confirm_label: &'static str,
    override_label: &'static str,
}

/// `GET /review/{id}`: one decision with its review history and the review form.
pub async fn decision(
    State(state): State<AppState>,
    user: WebUser,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, PageError> {
    user.require(Role::Moderator)?;
    let id = decision_id(path)?;
    let decision = find_decision(&state, id).await?;
    let history = reviews::history(&state.db, id)
        .await?
        .into_iter()
        .map(|r| ReviewView {
            label: label_text(&r.label),
            reviewer: r.reviewer,
            note: r.note,
            created_at: r.created_at.to_rfc3339()[..19].replace('T', " "),
        })
        .collect();
    let (confirm, overrule) = verdict_labels(decision.flagged);
    let page = DecisionPage {
        layout: Layout::new(&state, Some(&user)),
        csrf: user.csrf.clone(),
        decision: decision.into(),
        history,
        confirm_label: label_text(confirm.as_str()),
        override_label: label_text(overrule.as_str()),
    };
    Ok(render(&page)?.into_response())
}

/// The labels that confirm and that override the model's verdict.
fn verdict_labels(flagged: bool) -> (Label, Label) {
    if flagged { (Label::Hateful, Label::NotHateful) } else { (Label::NotHateful, Label::Hateful) }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReviewForm {
    csrf: String,
    /// `confirm` or `override`.
    action: String,
    note: String,
}

/// `POST /review/{id}`: records a review confirming or overriding the model's verdict.
pub async fn submit(
    State(state): State<AppState>,
    user: WebUser,
    path: Result<Path<i64>, PathRejection>,
    form: Result<Form<ReviewForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    user.check_csrf(Some(&form.csrf))?;
    user.require(Role::Moderator)?;
    let id = decision_id(path)?;
    let decision = find_decision(&state, id).await?;
    let (confirm, overrule) = verdict_labels(decision.flagged);
    let label = match form.action.as_str() {
        "confirm" => confirm,
        "override" => overrule,
        _ => return Err(AppError::BadRequest("choose confirm or override".into()).into()),
    };
    review::add_review(&state, id, label, &user.caller.id, &form.note).await?;
    Ok(Redirect::to(&format!("/review/{id}#history")).into_response())
}

/// `GET /review/{id}/image`: the decision's stored picture, for signed-in moderators.
pub async fn image(
    State(state): State<AppState>,
    user: WebUser,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Response, PageError> {
    user.require(Role::Moderator)?;
    Ok(review::image_response(&state, decision_id(path)?).await?)
}
