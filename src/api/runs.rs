//! `POST /v1/runs` (ingest, SPEC §1) and `GET /v1/runs/{sync_id}/{run_id}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::{ApiError, AppState, page_limit};
use crate::app::writer::{IngestAck, WriteError};
use crate::ingest::validate;
use crate::model::Timestamp;
use crate::store::runs::{self, StoredRun};

/// Ingest: one run object or an array. The 202 is sent only after the
/// transaction that stores (and evaluates) the runs has committed.
pub async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IngestAck>), ApiError> {
    let started = std::time::Instant::now();
    let span = tracing::info_span!("ingest", runs = tracing::field::Empty);
    crate::telemetry::set_parent_from_headers(&span, &headers);
    let result = ingest_inner(&state, &headers, body).instrument(span).await;
    let status = match &result {
        Ok((s, _)) => s.as_u16(),
        Err(e) => e.status().as_u16(),
    };
    crate::telemetry::ingest_answered(started.elapsed(), status);
    result
}

async fn ingest_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IngestAck>), ApiError> {
    check_json_content_type(headers)?;
    let body = body.map_err(|r| body_error(r, state.config.api.max_body_bytes))?;
    let runs = validate::parse_body(&body, Timestamp::now()).map_err(ApiError::Invalid)?;
    tracing::Span::current().record("runs", runs.len());
    let result = state.writer.ingest(runs).await;
    state.write_health.record(&result);
    let ack = result.map_err(write_error)?;
    Ok((StatusCode::ACCEPTED, Json(ack)))
}

pub(crate) fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or_default().trim();
    if essence == "application/json"
        || essence.ends_with("+json")
        || essence == "application/x-ndjson"
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "expected Content-Type: application/json, got {essence:?}"
        )))
    }
}

pub(crate) fn body_error(r: BytesRejection, limit: usize) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(limit)
    } else {
        ApiError::BadRequest(format!("cannot read request body: {r}"))
    }
}

pub(crate) fn write_error(e: WriteError) -> ApiError {
    match e {
        WriteError::Store(e) => e.into(),
        WriteError::Closed => ApiError::Unavailable("syncwarden is shutting down".into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// How many stored record errors to include (default 100).
    errors: Option<i64>,
}

#[derive(Serialize)]
pub struct RunView {
    #[serde(flatten)]
    stored: StoredRun,
    /// Headlines such as `312 × INVALID_EMAIL_ADDRESS: invalid email address: <email>`.
    error_class_headlines: Vec<String>,
}

pub async fn get_run(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    query: Result<Query<RunQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RunView>, ApiError> {
    let Path((sync_id, run_id)) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = page_limit(q.errors, 100, 10_000)?;
    let stored = runs::get(state.store.reader(), &sync_id, &run_id, limit)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no run {run_id:?} of sync {sync_id:?}")))?;
    let error_class_headlines = stored.error_classes.iter().map(|c| c.headline()).collect();
    Ok(Json(RunView {
        stored,
        error_class_headlines,
    }))
}
