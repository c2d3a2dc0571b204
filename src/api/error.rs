//! One error type for every handler, answered as JSON.
//!
//! Input problems name the field; internal errors are logged with their
//! context and answered as a plain 500 (or 503 when worth retrying) without
//! details, so nothing internal — paths, SQL, secrets — leaks to clients.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::ingest::validate::FieldError;

#[derive(Debug)]
pub enum ApiError {
    /// 400 with every offending field.
    Invalid(Vec<FieldError>),
    /// 400 with one message (query parameters, path segments).
    BadRequest(String),
    Unauthorized,
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed,
    PayloadTooLarge(usize),
    /// 408: the request (its body included) took longer than allowed.
    RequestTimeout(std::time::Duration),
    UnsupportedMediaType(String),
    TooManyRequests {
        retry_after_secs: u64,
    },
    /// 503: the store is busy or out of space, or the sidecar is shutting
    /// down; the client should retry.
    Unavailable(String),
    Internal,
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Invalid(errors) => format!("{} invalid field(s)", errors.len()),
            ApiError::BadRequest(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::UnsupportedMediaType(m)
            | ApiError::Unavailable(m) => m.clone(),
            ApiError::Unauthorized => "missing or invalid bearer token".into(),
            ApiError::MethodNotAllowed => "method not allowed".into(),
            ApiError::PayloadTooLarge(limit) => {
                format!("request body larger than {limit} bytes")
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                format!("rate limit exceeded; retry after {retry_after_secs}s")
            }
            ApiError::RequestTimeout(limit) => format!(
                "request not completed within {}",
                humantime::format_duration(*limit)
            ),
            ApiError::Internal => "internal error".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::Invalid(errors) => json!({ "error": self.message(), "errors": errors }),
            _ => json!({ "error": self.message() }),
        };
        let mut resp = (status, Json(body)).into_response();
        match &self {
            ApiError::Unauthorized => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after_secs } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::Unavailable(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::Unavailable;
        if e.is_unstorable_text() {
            return ApiError::BadRequest("a text value contains a NUL character".into());
        }
        if let Some(why) = e.unavailable() {
            tracing::warn!(error = %e, "store unavailable");
            // Says which of the operator's problems it is, without paths or
            // SQL: a full disk and a foreign lock are fixed differently.
            ApiError::Unavailable(
                match why {
                    Unavailable::Busy => {
                        "the database is busy (locked by another process); retry"
                    }
                    Unavailable::Full => {
                        "storage full: the database volume has no space left; nothing was stored, retry once space is freed"
                    }
                    Unavailable::Io => "the store is temporarily unavailable; retry",
                }
                .into(),
            )
        } else {
            tracing::error!(error = %e, "store error");
            ApiError::Internal
        }
    }
}
