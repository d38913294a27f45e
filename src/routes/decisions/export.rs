//! `GET /v1/decisions/export?format=csv|jsonl`: every decision matching the filters,
//! newest first, streamed page by page (the log can be larger than memory). Image bytes
//! are not included; each row names its image by sha256 and its decision id.

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use super::FilterQuery;
use crate::auth::{Caller, Role};
use crate::db::decisions::{self, Decision};
use crate::error::AppError;
use crate::state::AppState;

/// Rows read per database round trip.
const PAGE: u32 = 500;

/// CSV columns, in order.
const CSV_COLUMNS: &[&str] = &[
    "id",
    "created_at",
    "model",
    "score",
    "threshold",
    "flagged",
    "review_label",
    "reviewed_by",
    "reviewed_at",
    "text_source",
    "text",
    "text_sha256",
    "image_sha256",
    "image_mime",
    "width",
    "height",
    "stored",
    "latency_ms",
    "caller",
    "request_id",
];

#[derive(Debug, Clone, Copy)]
enum Format {
    Csv,
    Jsonl,
}

pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<FilterQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    caller.require(Role::Moderator)?;
    let Query(query) = query?;
    let format = match query.format.as_deref() {
        Some("csv") => Format::Csv,
        Some("jsonl") => Format::Jsonl,
        other => return Err(AppError::BadRequest(format!("`format` must be csv or jsonl, not {other:?}"))),
    };
    if query.cursor.is_some() || query.limit.is_some() {
        return Err(AppError::BadRequest(
            "the export takes no `cursor` or `limit`: it streams everything that matches".into(),
        ));
    }
    let mut filter = query.filter()?;
    // The first page is read before answering, so a database error is a proper 500.
    let first = decisions::list(&state.db, &filter, PAGE).await?;

    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        if let Format::Csv = format {
            let _ = sender.send(Ok(Bytes::from(CSV_COLUMNS.join(",") + "\n"))).await;
        }
        let mut page = first;
        loop {
            let mut chunk = String::new();
            for d in &page {
                match format {
                    Format::Csv => chunk.push_str(&csv_row(d)),
                    Format::Jsonl => {
                        chunk.push_str(&serde_json::to_string(d).expect("decisions serialise"));
                        chunk.push('\n');
                    }
                }
            }
            if sender.send(Ok(Bytes::from(chunk))).await.is_err() {
                return; // the client went away
            }
            if page.len() < PAGE as usize {
                return;
            }
            filter.before_id = page.last().map(|d| d.id);
            page = match decisions::list(&state.db, &filter, PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    // Headers are gone already: cut the stream so the client sees an error.
                    tracing::error!(error = %e, "export failed mid-stream");
                    let _ = sender.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            };
        }
    });

    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Jsonl => ("application/x-ndjson", "jsonl"),
    };
    let stream = futures_util::stream::unfold(receiver, |mut r| async move { r.recv().await.map(|item| (item, r)) });
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"decisions.{extension}\"")),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn csv_row(d: &Decision) -> String {
    let opt = |v: Option<String>| v.unwrap_or_default();
    let fields = [
        d.id.to_string(),
        d.created_at.to_string(),
        d.model.clone(),
        d.score.to_string(),
        d.threshold.to_string(),
        d.flagged.to_string(),
        opt(d.review_label.clone()),
        opt(d.reviewed_by.clone()),
        opt(d.reviewed_at.map(|t| t.to_string())),
        d.text_source.clone(),
        opt(d.text.clone()),
        d.text_sha256.clone(),
        opt(d.image_sha256.clone()),
        opt(d.image_mime.clone()),
        opt(d.width.map(|w| w.to_string())),
        opt(d.height.map(|h| h.to_string())),
        d.stored.to_string(),
        d.latency_ms.to_string(),
        d.caller.clone(),
        d.request_id.clone(),
    ];
    debug_assert_eq!(fields.len(), CSV_COLUMNS.len());
    let mut row = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    row.push('\n');
    row
}

/// RFC 4180 quoting; a leading `=`, `+`, `-` or `@` is prefixed with `'` so a
/// spreadsheet does not run user text as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_string() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\nthere"), "\"say \"\"hi\"\"\nthere\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }
}
