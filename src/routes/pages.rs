//! Browser pages. For now a minimal index that points to the API and its documentation;
//! the moderators' pages (upload, review queue, decision and model pages) are built here
//! by the moderators' issue on top of [`crate::moderation::moderate`] and the same `db` calls.

use axum::Router;
use axum::response::Html;
use axum::routing::get;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(index))
}

async fn index() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>memeguard</title></head>",
        "<body><h1>memeguard</h1><p>Scores memes (image + text) as hateful or not, and records every decision.</p>",
        "<ul><li><a href=\"/review\">Moderators' pages</a> (sign in)</li>",
        "<li><a href=\"/docs\">API documentation</a> (<a href=\"/openapi.json\">OpenAPI</a>)</li>",
        "<li><a href=\"/readyz\">Readiness</a></li><li><a href=\"/metrics\">Metrics</a></li></ul></body></html>"
    ))
}
