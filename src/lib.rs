//! memeguard's server: scores memes (image + text) as hateful or not over REST, records
//! every decision, and serves the moderators' pages.
//!
//! Layers, each knowing only the ones below: `routes` (HTTP translation) →
//! `moderation` (validate, decode, score, record) → `scoring` (model registry, queue,
//! model threads) and `db` (decision log). [`app`] builds the router for a state, so
//! tests drive it with `oneshot` and `main` serves it.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod memory;
pub mod metrics;
pub mod moderation;
pub mod ocr;
pub mod pixel_budget;
pub mod review;
pub mod routes;
pub mod scoring;
pub mod serve;
pub mod state;
pub mod web;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderName, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use crate::config::ServeConfig;
use crate::error::AppError;
pub use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP application for `state`.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    Router::new()
        .merge(routes::router())
        .merge(web::router())
        .fallback(|| async { AppError::NotFound("no such route; see /docs".into()) })
        .method_not_allowed_fallback(|| async {
            AppError::MethodNotAllowed("this route does not take this method; see /docs".into())
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.config.request_timeout(), request_timeout))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        // One structured log line per request, tagged with its request id.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), id = %id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(AppError::Internal("a handler panicked".into()))
        }))
        .with_state(state)
}

/// Middleware: answers 408 when a request (reading its body included: extractors read it
/// inside the handler) takes longer than `--request-timeout-secs`. A decision already
/// handed to the writer is still committed; the client just does not learn its id.
async fn request_timeout(
    State(limit): State<std::time::Duration>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::RequestTimeout(format!(
            "the request took longer than {} s (see --request-timeout-secs)",
            limit.as_secs()
        ))
        .into_response(),
    }
}
