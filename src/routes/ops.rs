//! Operations: liveness, readiness, Prometheus metrics, the served model, and the
//! admin reload.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, Role};
use crate::error::AppError;
use crate::routes::Routes;
use crate::scoring::ReloadOutcome;
use crate::state::AppState;

pub fn routes() -> Routes {
    Routes::new()
        .get("/healthz", healthz)
        .get("/readyz", readyz)
        .get("/metrics", metrics)
        .get("/v1/model", model)
        .post("/v1/admin/reload", reload)
}

/// The process is up (says nothing about the model or the database).
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to score: a model is loaded and the database takes writes. 503 otherwise, with
/// the reason, so a load balancer sends traffic elsewhere.
async fn readyz(State(state): State<AppState>) -> Response {
    let model = state.scorer.registry().current();
    let database = match state.decisions.recent_failure() {
        // The probe below writes nothing new, so a full disk passes it: the writer knows.
        Some(why) => Err(why),
        None => state.db.check_writable().await.map_err(|e| e.to_string()),
    };
    let ready = model.is_some() && database.is_ok();
    let body = json!({
        "ready": ready,
        "model": model.as_ref().map(|m| m.id()),
        "placeholder_model": model.as_ref().map(|m| m.is_placeholder()),
        "model_error": model.is_none().then(|| state.scorer.registry().unavailable_reason()),
        // Packages refused at the last (re)load, newer than the served one: fix or remove them.
        "broken_packages": state.scorer.registry().broken_packages(),
        "database": state.db.backend(),
        "database_error": database.as_ref().err().map(|e| {
            tracing::error!(error = %e, "readiness: the database does not take writes");
            "the database does not take writes; see the server log"
        }),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// Prometheus text format. With `--protect-metrics` it needs an admin key.
async fn metrics(State(state): State<AppState>, request: Request) -> Result<Response, AppError> {
    if state.config.protect_metrics {
        let (mut parts, _) = request.into_parts();
        Caller::from_request_parts(&mut parts, &state).await?.require(Role::Admin)?;
    }
    let text = state.metrics.render(&state.gauges());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response())
}

/// The manifest of the served package (architecture, metrics, threshold, data summary).
async fn model(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, AppError> {
    caller.require(Role::Scorer)?;
    let model = state
        .scorer
        .registry()
        .current()
        .ok_or_else(|| AppError::Unavailable("no valid model is loaded: see /readyz or the server log".into()))?;
    Ok(Json(json!({ "id": model.id(), "manifest": model.manifest() })))
}

/// `POST /v1/admin/reload` body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadRequest {
    /// `name@version` or `name`; default: the configured pin, else the newest package.
    package: Option<String>,
}

/// Loads the package to serve from the models directory and swaps it in; a package that
/// fails validation or warm-up is refused (422) and the current one keeps serving.
async fn reload(State(state): State<AppState>, caller: Caller, body: Bytes) -> Result<Json<ReloadOutcome>, AppError> {
    caller.require(Role::Admin)?;
    // No body is the common case (`curl -X POST`): reload the default choice.
    let request: ReloadRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| AppError::BadRequest(format!("invalid reload request: {e}")))?
    };
    Ok(Json(state.scorer.registry().reload(request.package.as_deref()).await?))
}
