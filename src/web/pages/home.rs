//! The landing page `/`: what memeguard is, which model is served, and the entry points
//! for moderators (pages) and platforms (the REST API and its documentation).

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::HOST;
use axum::response::{IntoResponse, Response};

use super::{Layout, render};
use crate::state::AppState;
use crate::web::error::PageError;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    /// The served model's id, when one is served.
    model: Option<String>,
    placeholder: bool,
    /// `http://<host>` as the browser reached us, for the copyable example.
    origin: String,
}

/// `GET /`.
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, PageError> {
    let current = state.scorer.registry().current();
    let host = headers.get(HOST).and_then(|h| h.to_str().ok()).filter(|h| is_plain_host(h)).unwrap_or("127.0.0.1:8080");
    let page = HomePage {
        layout: Layout::new(&state, None),
        model: current.as_ref().map(|m| m.id().to_string()),
        placeholder: current.as_ref().is_some_and(|m| m.is_placeholder()),
        origin: format!("http://{host}"),
    };
    Ok(render(&page)?.into_response())
}

/// A Host header fit to show in an example: letters, digits, `.`, `-`, `:`, `[`, `]`.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty() && host.len() <= 255 && host.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
}
