//! Errors of the pages, answered as HTML. Like the API's `AppError` (which it wraps), a
//! client error says what to fix and a server error is logged with its cause and shown
//! without internals; unlike it, a missing sign-in is a redirect to the sign-in page.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::db::DbError;
use crate::error::AppError;

/// An error answered to a browser.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No live session: go to the sign-in page, then back to `next`.
    #[error("sign-in required")]
    LoginRequired { next: Option<String> },
    /// A form without this session's CSRF token (403).
    #[error("this form has expired or did not come from memeguard: reload the page and try again")]
    Csrf,
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<DbError> for PageError {
    fn from(e: DbError) -> Self {
        PageError::App(AppError::Database(e))
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::App(AppError::Internal(format!("rendering a page: {e}")))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    reason: &'static str,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            PageError::LoginRequired { next } => {
                let target = match next {
                    Some(next) => format!("/login?next={}", encode_query_value(&next)),
                    None => "/login".to_string(),
                };
                return Redirect::to(&target).into_response();
            }
            PageError::Csrf => (StatusCode::FORBIDDEN, PageError::Csrf.to_string()),
            PageError::App(e) => {
                // The API's own mapping decides the status (and logs server errors with
                // their cause); its JSON body is dropped and only a safe message shown.
                let text = e.to_string();
                let status = e.into_response().status();
                let message = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
                    "Something went wrong on our side; the server log has the details.".to_string()
                } else {
                    text
                };
                (status, message)
            }
        };
        let page = ErrorPage { status: status.as_u16(), reason: status.canonical_reason().unwrap_or("Error"), message };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "error").into_response(),
        }
    }
}

/// Percent-encodes a query value (everything but unreserved characters and `/`).
pub fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
