//! Vendor webhooks (SPEC §6, §8): `POST /v1/webhooks/{census, fivetran,
//! dbt, airbyte/{token}, cloudevents}`.
//!
//! Each is authenticated by its vendor's own scheme instead of a bearer
//! token, over the raw request bytes, in constant time, against every
//! configured secret (rotation). A bad or missing signature is 401 and
//! changes nothing; a source with no secret configured answers 404, so an
//! unconfigured sidecar does not even admit the route exists. The pure
//! adapters map payloads onto runs; the runs go through the writer like a
//! `POST /v1/runs`, so the answer (`202 {"accepted","duplicates"}`) means
//! they are on disk. Events that describe no finished run (Fivetran's
//! `test_event`, a Census start) are answered `200` with `"ignored"` and
//! stored nowhere.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::runs::{body_error, write_error};
use super::{ApiError, AppState};
use crate::app::pollers::census::CensusApi;
use crate::app::pollers::http::VendorError;
use crate::config::Secret;
use crate::ingest::adapters::signature::{self, SignatureError};
use crate::ingest::adapters::{AdapterError, airbyte, census, cloudevents, dbt, fivetran};
use crate::ingest::validate::{self, FieldError};
use crate::model::{Run, RunStatus, Timestamp};

/// How long a Census webhook may spend fetching its run: the sender is
/// waiting, and the request timeout is 30 s.
const CENSUS_FETCH_BUDGET: Duration = Duration::from_secs(20);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/census", post(census_hook))
        .route("/fivetran", post(fivetran_hook))
        .route("/dbt", post(dbt_hook))
        .route("/airbyte/{token}", post(airbyte_hook))
        .route("/cloudevents", post(cloudevents_hook))
}

/// What a webhook answers.
#[derive(Debug, Serialize)]
pub struct WebhookAck {
    pub accepted: usize,
    pub duplicates: usize,
    /// The event, when it describes no run to store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

type Answer = Result<(StatusCode, Json<WebhookAck>), Reject>;

/// A webhook refused: not authenticated (401), or any API error.
pub enum Reject {
    Unauthenticated(SignatureError),
    Api(ApiError),
}

impl From<ApiError> for Reject {
    fn from(e: ApiError) -> Self {
        Reject::Api(e)
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        match self {
            Reject::Unauthenticated(e) => (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": format!("webhook not authenticated: {e}") })),
            )
                .into_response(),
            Reject::Api(e) => e.into_response(),
        }
    }
}

fn ignored(event: impl Into<String>) -> Answer {
    Ok((
        StatusCode::OK,
        Json(WebhookAck {
            accepted: 0,
            duplicates: 0,
            ignored: Some(event.into()),
        }),
    ))
}

fn not_configured(kind: &str, key: &str) -> Reject {
    Reject::Api(ApiError::NotFound(format!(
        "no {kind} webhook is configured (set [sources.{kind}] {key})"
    )))
}

fn unmappable(e: AdapterError) -> Reject {
    Reject::Api(match e {
        AdapterError::Invalid(errors) => ApiError::Invalid(errors),
        other => ApiError::BadRequest(other.to_string()),
    })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn secret_bytes(secrets: &[Secret]) -> impl Iterator<Item = &[u8]> {
    secrets.iter().map(|s| s.expose().as_bytes())
}

fn read_body(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, Reject> {
    body.map_err(|r| Reject::Api(body_error(r, state.config.api.max_body_bytes)))
}

/// Records the rejection and answers 401.
fn rejected(state: &AppState, label: &str, e: SignatureError) -> Reject {
    tracing::warn!(source = label, reason = %e, "webhook rejected");
    state.vendors.status.webhook_rejected(label);
    Reject::Unauthenticated(e)
}

/// Stores adapted runs, re-checked against the wall clock (adapters have
/// none), and answers like `POST /v1/runs`.
async fn store(state: &AppState, label: &str, runs: Vec<Run>) -> Answer {
    let now = Timestamp::now();
    let errors: Vec<FieldError> = runs
        .iter()
        .enumerate()
        .filter_map(|(i, run)| validate::check_run(run, Some(now)).err().map(|e| (i, e)))
        .flat_map(|(i, errs)| errs.into_iter().map(move |e| FieldError { index: i, ..e }))
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors).into());
    }
    let result = state.writer.ingest(runs).await;
    state.write_health.record(&result);
    let ack = result.map_err(write_error)?;
    state.vendors.status.webhook_ok(label, ack.accepted, now);
    Ok((
        StatusCode::ACCEPTED,
        Json(WebhookAck {
            accepted: ack.accepted,
            duplicates: ack.duplicates,
            ignored: None,
        }),
    ))
}

/// Census: `X-Signature` = base64 HMAC-SHA256 of the body. The webhook
/// names a run; with an API token the run is fetched (counts, record-error
/// sample), without one its outcome alone is stored.
async fn census_hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let vendors = state.vendors.clone();
    let configured: Vec<usize> = vendors
        .sources
        .census
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.webhook_secrets.is_empty())
        .map(|(i, _)| i)
        .collect();
    if configured.is_empty() {
        return Err(not_configured("census", "webhook_secret"));
    }
    let body = read_body(&state, body)?;
    let signature_header = header(&headers, "x-signature");
    // Each workspace has its own secrets; the one that verifies says whose
    // API token fetches the run. Every workspace is tried.
    let mut matched = None;
    let mut failure = SignatureError::Mismatch;
    for &i in &configured {
        let secrets = &vendors.sources.census[i].webhook_secrets;
        match signature::verify_hmac_sha256_base64(secret_bytes(secrets), &body, signature_header) {
            Ok(()) => {
                matched = matched.or(Some(i));
            }
            Err(e) => failure = e,
        }
    }
    let Some(i) = matched else {
        return Err(rejected(
            &state,
            &vendors.sources.census[configured[0]].label,
            failure,
        ));
    };
    let label = vendors.sources.census[i].label.as_str();
    let hook = census::parse_webhook(&body).map_err(unmappable)?;
    let received = Timestamp::now();
    let facts_only = || -> Result<Run, Reject> {
        hook.to_run(received)
            .map_err(unmappable)?
            .ok_or(Reject::Api(ApiError::Internal))
    };
    if hook.outcome == census::CensusOutcome::Other {
        return ignored(if hook.event.is_empty() {
            "census event without an outcome".to_owned()
        } else {
            hook.event.clone()
        });
    }
    let run = match &vendors.census_apis[i] {
        None => facts_only()?,
        Some(api) => {
            let deadline = tokio::time::Instant::now() + CENSUS_FETCH_BUDGET;
            match fetch_finished(api, &hook.sync_run_id, deadline).await {
                Ok(run) => {
                    vendors.status.api_ok(label, received);
                    run
                }
                Err(e) if e.is_permanent() => {
                    // A token or id the API refuses will not get better on a
                    // retry: keep what the webhook itself says.
                    let e = e.to_string();
                    tracing::warn!(source = label, error = %e, "Census run not fetched; stored without counts");
                    vendors.status.api_failed(label, &e, received);
                    facts_only()?
                }
                Err(e) => {
                    let e = e.to_string();
                    tracing::warn!(source = label, error = %e, "Census run not fetched; asking Census to retry");
                    vendors.status.api_failed(label, &e, received);
                    return Err(ApiError::Unavailable(
                        "the run could not be fetched from the Census API yet; retry".into(),
                    )
                    .into());
                }
            }
        }
    };
    store(&state, label, vec![run]).await
}

/// The run a Census webhook reported as ended. The API may lag the webhook
/// by a moment, so a run it still shows as running is asked for again; a
/// run still running after that is a transient failure (Census retries).
async fn fetch_finished(
    api: &CensusApi,
    sync_run_id: &str,
    deadline: tokio::time::Instant,
) -> Result<Run, VendorError> {
    // A request that hangs is cut at the deadline, not at its own timeout.
    match tokio::time::timeout_at(deadline, fetch_until_finished(api, sync_run_id, deadline)).await
    {
        Ok(result) => result,
        Err(_) => Err(VendorError::Transport {
            vendor: "Census",
            path: format!("/api/v1/sync_runs/{sync_run_id}"),
            detail: format!(
                "no answer within {}",
                humantime::format_duration(CENSUS_FETCH_BUDGET)
            ),
        }),
    }
}

async fn fetch_until_finished(
    api: &CensusApi,
    sync_run_id: &str,
    deadline: tokio::time::Instant,
) -> Result<Run, VendorError> {
    let mut run = api.fetch_run(sync_run_id, Some(deadline)).await?;
    for _ in 0..2 {
        if run.status != RunStatus::Running {
            break;
        }
        if tokio::time::Instant::now() + Duration::from_secs(1) > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        run = api.fetch_run(sync_run_id, Some(deadline)).await?;
    }
    if run.status == RunStatus::Running {
        return Err(VendorError::Status {
            vendor: "Census",
            status: 503,
            path: format!("/api/v1/sync_runs/{sync_run_id}"),
            detail: ": the run is still running according to the API".into(),
        });
    }
    Ok(run)
}

/// Fivetran: `X-Fivetran-Signature-256` = hex HMAC-SHA256 of the body.
async fn fivetran_hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let Some(source) = state.vendors.sources.fivetran.clone() else {
        return Err(not_configured("fivetran", "webhook_secret"));
    };
    let body = read_body(&state, body)?;
    signature::verify_hmac_sha256_hex(
        secret_bytes(&source.secrets),
        &body,
        header(&headers, "x-fivetran-signature-256"),
    )
    .map_err(|e| rejected(&state, "fivetran", e))?;
    match fivetran::from_webhook(&body).map_err(unmappable)? {
        fivetran::FivetranOutcome::Ignored { event } => {
            state
                .vendors
                .status
                .webhook_ok("fivetran", 0, Timestamp::now());
            ignored(event)
        }
        fivetran::FivetranOutcome::Run(run) => store(&state, "fivetran", vec![*run]).await,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbtQuery {
    /// Project name for a `run_results.json` that does not say it.
    project: Option<String>,
}

/// dbt: a `run_results.json` upload or a dbt Cloud job webhook, both signed
/// with `Authorization` = hex HMAC-SHA256 of the body.
async fn dbt_hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<DbtQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let Some(source) = state.vendors.sources.dbt.clone() else {
        return Err(not_configured("dbt", "webhook_secret"));
    };
    let body = read_body(&state, body)?;
    signature::verify_hmac_sha256_hex(
        secret_bytes(&source.secrets),
        &body,
        header(&headers, "authorization"),
    )
    .map_err(|e| rejected(&state, "dbt", e))?;
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| unmappable(AdapterError::Json(e)))?;
    let runs = if value.get("eventType").is_some() {
        vec![dbt::run_from_cloud_webhook(&body).map_err(unmappable)?]
    } else {
        dbt::runs_from_run_results(&body, query.project.as_deref()).map_err(unmappable)?
    };
    store(&state, "dbt", runs).await
}

/// Airbyte: unsigned; the secret token is the last path segment.
async fn airbyte_hook(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let Some(source) = state.vendors.sources.airbyte.clone() else {
        return Err(not_configured("airbyte", "webhook_token"));
    };
    let Path(token) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    // Every configured token is compared, each in constant time.
    let matches = source.secrets.iter().fold(false, |any, s| {
        signature::token_eq(s.expose(), &token) | any
    });
    if !matches {
        return Err(rejected(&state, "airbyte", SignatureError::Mismatch));
    }
    let body = read_body(&state, body)?;
    // Airbyte's "test" button posts a Slack-style `{"text": …}` message.
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| unmappable(AdapterError::Json(e)))?;
    if value.get("data").is_none() && value.get("text").is_some() {
        state
            .vendors
            .status
            .webhook_ok("airbyte", 0, Timestamp::now());
        return ignored("text notification");
    }
    let run = airbyte::run_from_webhook(&body).map_err(unmappable)?;
    store(&state, "airbyte", vec![run]).await
}

/// Generic: CloudEvents 1.0 (one event or a batch) carrying canonical runs,
/// signed per Standard Webhooks.
async fn cloudevents_hook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let Some(source) = state.vendors.sources.generic.clone() else {
        return Err(not_configured("generic", "webhook_secret"));
    };
    let body = read_body(&state, body)?;
    let now = Timestamp::now();
    signature::verify_standard_webhook(
        source.secrets.iter().map(|s| s.expose()),
        header(&headers, "webhook-id"),
        header(&headers, "webhook-timestamp"),
        &body,
        header(&headers, "webhook-signature"),
        now,
    )
    .map_err(|e| rejected(&state, "generic", e))?;
    let runs = cloudevents::parse_body(&body, now).map_err(ApiError::Invalid)?;
    store(&state, "generic", runs).await
}
