//! `AppError`: every failure a request can meet, and the one place that maps them to an
//! HTTP status and the JSON body `{"error": {"type", "message"}}` (OpenAI's error shape,
//! so client libraries raise their usual exceptions). Client errors say what to fix;
//! server errors are logged with their cause and shown without internals.

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use memeguard_package::ImageError;

use crate::db::DbError;
use crate::pixel_budget::PixelBudgetError;
use crate::scoring::{ReloadError, ScorerError};

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed or invalid input (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing, unknown or revoked API key (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The key's role does not allow this (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Body, image bytes or image pixels over a limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Not an image format we read, judged by its bytes (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed but refused, e.g. a model package that fails validation (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The request took longer than `--request-timeout-secs` (408).
    #[error("{0}")]
    RequestTimeout(String),
    /// The scoring queue (or the pixel budget) is full; retry after this many seconds (429).
    #[error("{reason}; retry in {retry_after_secs} s")]
    Overloaded { reason: String, retry_after_secs: u64 },
    /// No valid model is loaded, or the server is shutting down (503).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Database(#[from] DbError),
    /// Anything else that is our fault (500); the message is logged, not sent.
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request_error"),
            AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "authentication_error"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "permission_error"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found_error"),
            AppError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error"),
            AppError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            AppError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request_error"),
            AppError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout_error"),
            AppError::Overloaded { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error"),
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            AppError::Database(e) if e.is_unavailable() => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            AppError::Database(_) | AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status_and_type();
        let message = if let AppError::Database(e) = &self
            && status == StatusCode::SERVICE_UNAVAILABLE
        {
            tracing::error!(error = %e, "the database is unavailable");
            "the decision log is unavailable right now; retry later".to_string()
        } else if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %self, "request failed");
            "internal error; the server log has the details".to_string()
        } else {
            self.to_string()
        };
        let mut response =
            (status, axum::Json(json!({ "error": { "type": kind, "message": message } }))).into_response();
        if let AppError::Overloaded { retry_after_secs, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

/// Maps an extractor's rejection by its own status: too large stays 413, a wrong
/// content type 415, everything else is the client's malformed input (400).
fn from_rejection(status: StatusCode, text: String) -> AppError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(format!("{text} (see --max-body-bytes)")),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType(text),
        s if s.is_server_error() => AppError::Internal(text),
        _ => AppError::BadRequest(text),
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        from_rejection(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        from_rejection(r.status(), r.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(r: PathRejection) -> Self {
        from_rejection(r.status(), r.body_text())
    }
}

impl From<MultipartRejection> for AppError {
    fn from(r: MultipartRejection) -> Self {
        from_rejection(r.status(), r.body_text())
    }
}

impl From<MultipartError> for AppError {
    fn from(e: MultipartError) -> Self {
        from_rejection(e.status(), e.body_text())
    }
}

impl From<ScorerError> for AppError {
    fn from(e: ScorerError) -> Self {
        match e {
            ScorerError::QueueFull => AppError::Overloaded { reason: e.to_string(), retry_after_secs: 1 },
            ScorerError::NoModel(_) => AppError::Unavailable(e.to_string()),
            ScorerError::TooManyPairs(..) => AppError::BadRequest(e.to_string()),
            ScorerError::Model(_) => AppError::Internal(e.to_string()),
        }
    }
}

impl From<PixelBudgetError> for AppError {
    fn from(e: PixelBudgetError) -> Self {
        match e {
            PixelBudgetError::RequestTooLarge { .. } => AppError::PayloadTooLarge(e.to_string()),
            PixelBudgetError::Busy => AppError::Overloaded { reason: e.to_string(), retry_after_secs: 1 },
        }
    }
}

impl From<ImageError> for AppError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::TooManyBytes { .. } => AppError::PayloadTooLarge(format!("{e} (see --max-image-bytes)")),
            ImageError::TooManyPixels { .. } => AppError::PayloadTooLarge(format!("{e} (see --max-pixels)")),
            ImageError::UnknownFormat { .. } => AppError::UnsupportedMediaType(e.to_string()),
            ImageError::Empty | ImageError::NoPixels { .. } | ImageError::Decode { .. } => {
                AppError::BadRequest(e.to_string())
            }
        }
    }
}

impl From<ReloadError> for AppError {
    fn from(e: ReloadError) -> Self {
        match e {
            ReloadError::NoPackage { .. } => AppError::NotFound(e.to_string()),
            ReloadError::Refused { .. } => AppError::Unprocessable(e.to_string()),
            ReloadError::ModelsDir { .. }
            | ReloadError::MissingModelsDir { .. }
            | ReloadError::Placeholder(_)
            | ReloadError::Join(_) => AppError::Internal(e.to_string()),
        }
    }
}

impl AppError {
    /// Prefixes a client error's message with where in the request it happened
    /// (`input[2]: ...`); server errors are left alone (their text is never shown).
    pub fn at(self, place: &str) -> AppError {
        let prefix = |m: String| format!("{place}: {m}");
        match self {
            AppError::BadRequest(m) => AppError::BadRequest(prefix(m)),
            AppError::PayloadTooLarge(m) => AppError::PayloadTooLarge(prefix(m)),
            AppError::UnsupportedMediaType(m) => AppError::UnsupportedMediaType(prefix(m)),
            other => other,
        }
    }
}
