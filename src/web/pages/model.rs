//! The model page: what the served package is (its manifest), how it scored, what it was
//! trained on; and loudly, when it is the untrained placeholder.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{CsrfForm, Layout, render};
use crate::auth::Role;
use crate::ocr::OcrStatus;
use crate::state::AppState;
use crate::web::error::PageError;
use crate::web::session::WebUser;

#[derive(Template)]
#[template(path = "model.html")]
struct ModelPage {
    layout: Layout,
    /// Admins get a "reload" button (and its CSRF token).
    admin_csrf: Option<String>,
    /// The outcome of a reload just asked for.
    notice: Option<String>,
    model: Option<ModelView>,
    /// Why no model is served, when none is.
    unavailable: String,
    ocr: String,
}

struct ModelView {
    id: String,
    placeholder: bool,
    description: String,
    created_at: String,
    image_encoder: String,
    text_encoder: String,
    fusion: String,
    parameters: String,
    pretraining: String,
    image: String,
    max_text_length: usize,
    threshold: String,
    opset: i64,
    metrics: Vec<(String, String)>,
    data: Vec<(String, String)>,
    files: Vec<(String, String)>,
}

/// `GET /model`.
pub async fn page(State(state): State<AppState>, user: WebUser) -> Result<Response, PageError> {
    user.require(Role::Moderator)?;
    Ok(render(&model_page(&state, &user, None))?.into_response())
}

/// `POST /model/reload` (admins): loads the newest package from the models directory, as
/// `POST /v1/admin/reload` and SIGHUP do, and shows the outcome.
pub async fn reload(
    State(state): State<AppState>,
    user: WebUser,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    CsrfForm::check(form, &user)?;
    user.require(Role::Admin)?;
    let notice = match state.scorer.registry().reload(None).await {
        Ok(outcome) if outcome.changed => {
            format!("Now serving {} (was {}).", outcome.model, outcome.previous.as_deref().unwrap_or("none"))
        }
        Ok(outcome) => format!("{} is already the newest package; nothing changed.", outcome.model),
        Err(e) => format!("Reload refused; the current model keeps serving: {e}"),
    };
    Ok(render(&model_page(&state, &user, Some(notice)))?.into_response())
}

fn model_page(state: &AppState, user: &WebUser, notice: Option<String>) -> ModelPage {
    let registry = state.scorer.registry();
    let model = registry.current().map(|m| {
        let manifest = m.manifest();
        ModelView {
            id: m.id().to_string(),
            placeholder: m.is_placeholder(),
            description: manifest.description.clone(),
            created_at: manifest.created_at.clone(),
            image_encoder: manifest.architecture.image_encoder.clone(),
            text_encoder: manifest.architecture.text_encoder.clone(),
            fusion: manifest.architecture.fusion.clone(),
            parameters: group_thousands(manifest.architecture.parameters),
            pretraining: manifest.pretraining.clone(),
            image: format!("{0}×{0} px, {1}", manifest.image.size, manifest.image.resize),
            max_text_length: manifest.text.max_length,
            threshold: format!("{:.3}", manifest.threshold),
            opset: manifest.opset,
            metrics: flatten(&manifest.metrics),
            data: flatten(&manifest.data),
            files: manifest
                .files
                .iter()
                .map(|(name, sha)| (name.clone(), sha[..12.min(sha.len())].to_string()))
                .collect(),
        }
    });
    let ocr = match state.ocr.status() {
        OcrStatus::Ready { language } => format!("on (Tesseract, language {language})"),
        OcrStatus::Starting => "starting (Tesseract is loading its language data)".into(),
        OcrStatus::Disabled => "switched off: memes without text are scored on the picture alone".into(),
        OcrStatus::Unavailable(reason) => {
            format!("UNAVAILABLE ({reason}): memes without text are scored on the picture alone")
        }
    };
    ModelPage {
        layout: Layout::new(state, Some(user)),
        admin_csrf: (user.role >= Role::Admin).then(|| user.csrf.clone()),
        notice,
        unavailable: if model.is_none() { registry.unavailable_reason() } else { String::new() },
        model,
        ocr,
    }
}

/// 12345678 → "12,345,678".
fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A free-form JSON value as (dotted path, value) rows, numbers to 4 decimals.
fn flatten(value: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        let join = |key: &str| if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(&join(k), v, out)),
            Value::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => {
                out.push((prefix.to_string(), items.iter().map(scalar).collect::<Vec<_>>().join(", ")));
            }
            Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| walk(&join(&i.to_string()), v, out)),
            other => out.push((prefix.to_string(), scalar(other))),
        }
    }
    fn scalar(value: &Value) -> String {
        match value {
            Value::Number(n) if n.is_f64() => format!("{:.4}", n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => s.clone(),
            Value::Null => "—".into(),
            other => other.to_string(),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn free_form_json_becomes_rows() {
        let rows = flatten(&json!({"dev": {"auroc": 0.71234567, "n": 500}, "seeds": [1, 2], "note": null}));
        assert_eq!(
            rows,
            vec![
                ("dev.auroc".to_string(), "0.7123".to_string()),
                ("dev.n".to_string(), "500".to_string()),
                ("note".to_string(), "—".to_string()),
                ("seeds".to_string(), "1, 2".to_string()),
            ]
        );
        assert_eq!(group_thousands(1234567), "1,234,567");
        assert_eq!(group_thousands(12), "12");
    }
}
