//! `/healthz` (the process answers) and `/readyz` (it can serve: the
//! database answers and the writer is running). `/readyz` also details each
//! vendor source (polls, webhooks, last error); a failing vendor does not
//! make the sidecar unready.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use crate::app::writer::WriteError;
use crate::model::Timestamp;
use crate::store::Unavailable;

/// How the latest writes the API asked for went, for `/readyz`. A failing
/// store (full disk, a foreign lock) is reported there without making the
/// sidecar unready: reads still work, runners get a 503 that says why, and
/// an orchestrator restarting the sidecar would free no space.
#[derive(Debug, Default)]
pub struct WriteHealth(std::sync::Mutex<Option<(Unavailable, Timestamp)>>);

impl WriteHealth {
    /// Notes a write's outcome: a transient store failure (kept with the
    /// time it began), or a success that clears it.
    pub(crate) fn record<T>(&self, result: &Result<T, WriteError>) {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) => *last = None,
            Err(WriteError::Store(e)) => {
                if let Some(why) = e.unavailable() {
                    let since = match *last {
                        Some((w, since)) if w == why => since,
                        _ => Timestamp::now(),
                    };
                    *last = Some((why, since));
                }
            }
            Err(WriteError::Closed) => {}
        }
    }

    fn describe(&self) -> String {
        match *self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            None => "ok".into(),
            Some((why, since)) => format!("failing since {}: {why}", since.to_rfc3339()),
        }
    }
}

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
            "writes": state.write_health.describe(),
        },
        "sources": state.vendors.status.snapshot(),
    });
    (status, Json(body))
}
