//! The pages, one module each, and what every page shares: the layout (who is signed in,
//! whether the served model is the untrained placeholder) and the score bar.

mod dashboard;
mod home;
mod login;
mod model;
mod review;
mod upload;

use askama::Template;
use axum::Router;
use axum::response::Html;
use axum::routing::{get, post};

use super::error::PageError;
use super::session::WebUser;
use crate::state::AppState;

/// A form that carries only the session's CSRF token (sign-out, model reload).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct CsrfForm {
    csrf: String,
}

impl CsrfForm {
    /// Checks the token of a posted form, which may not have parsed: a missing or
    /// unreadable form fails like a wrong token.
    fn check(
        form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
        user: &WebUser,
    ) -> Result<(), PageError> {
        let form = form.map(|axum::Form(f)| f).unwrap_or_default();
        user.check_csrf(Some(&form.csrf))
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home::page))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/upload", get(upload::form).post(upload::submit))
        .route("/review", get(review::queue))
        .route("/review/{id}", get(review::decision).post(review::submit))
        .route("/review/{id}/image", get(review::image))
        .route("/model", get(model::page))
        .route("/model/reload", post(model::reload))
        .route("/dashboard", get(dashboard::page))
}

/// What the frame of every page shows.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The signed-in user (none on the sign-in and error pages).
    pub nav: Option<Nav>,
    /// The served model's id when it is the untrained placeholder: every page says so.
    pub placeholder_model: Option<String>,
}

/// The signed-in user, and the CSRF token for the sign-out form in the header.
#[derive(Debug, Clone)]
pub struct Nav {
    pub username: String,
    pub role: &'static str,
    pub csrf: String,
}

impl Layout {
    pub fn new(state: &AppState, user: Option<&WebUser>) -> Layout {
        let placeholder_model =
            state.scorer.registry().current().filter(|m| m.is_placeholder()).map(|m| m.id().to_string());
        let nav = user.map(|u| Nav { username: u.username.clone(), role: u.role.as_str(), csrf: u.csrf.clone() });
        Layout { nav, placeholder_model }
    }
}

/// A score drawn against its threshold (an SVG bar: no inline styles, which the content
/// security policy forbids).
#[derive(Debug, Clone)]
pub struct ScoreBar {
    pub score: String,
    pub threshold: String,
    /// Positions on a 0..100 axis.
    pub score_x: String,
    pub threshold_x: String,
    pub flagged: bool,
}

impl ScoreBar {
    pub fn new(score: f64, threshold: f64) -> ScoreBar {
        let axis = |v: f64| format!("{:.1}", (v.clamp(0.0, 1.0) * 100.0));
        ScoreBar {
            score: format!("{score:.3}"),
            threshold: format!("{threshold:.3}"),
            score_x: axis(score),
            threshold_x: axis(threshold),
            flagged: score >= threshold,
        }
    }
}

/// Renders a template into a page.
pub fn render<T: Template>(page: &T) -> Result<Html<String>, PageError> {
    Ok(Html(page.render()?))
}

/// A label for people: `hateful` / `not hateful`.
pub fn label_text(label: &str) -> &'static str {
    match label {
        "hateful" => "hateful",
        "not_hateful" => "not hateful",
        _ => "unknown",
    }
}
