//! `/healthz` (the process answers) and `/readyz` (it can serve: the
//! database answers and the writer is running). `/readyz` also details each
//! vendor source (polls, webhooks, last error); a failing vendor does not
//! make the sidecar unready.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Prometheus text (`telemetry.prometheus = true`), else 404.
pub async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match crate::telemetry::prometheus_text().filter(|_| state.config.telemetry.prometheus) {
        Some(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        None => {
            super::ApiError::NotFound("Prometheus metrics are off (telemetry.prometheus)".into())
                .into_response()
        }
    }
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let db = state.store.ping().await;
    let writer_ok = !state.writer.is_closed();
    let ready = db.is_ok() && writer_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "database": match &db { Ok(()) => "ok".to_string(), Err(e) => { tracing::warn!(error = %e, "readiness: database"); "unavailable".to_string() } },
            "writer": if writer_ok { "running" } else { "stopped" },
        },
        "sources": state.vendors.status.snapshot(),
    });
    (status, Json(body))
}
