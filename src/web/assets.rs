//! The pages' stylesheet and script, embedded in the binary so that the server runs from
//! any directory. Small files with a short cache, so a new release shows within minutes.

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::AppError;
use crate::state::AppState;

/// (name, content type, bytes) of each asset under `/static/`.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css; charset=utf-8", include_str!("../../static/app.css")),
    ("upload.js", "text/javascript; charset=utf-8", include_str!("../../static/upload.js")),
];

pub fn router() -> Router<AppState> {
    Router::new().route("/static/{name}", get(asset))
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => {
            ([(header::CONTENT_TYPE, *mime), (header::CACHE_CONTROL, "public, max-age=300")], *body).into_response()
        }
        None => AppError::NotFound(format!("no asset `{name}`")).into_response(),
    }
}
