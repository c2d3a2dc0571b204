//! Incidents, notifications (the outbox with its statuses) and silences.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::runs::{body_error, check_json_content_type, write_error};
use super::{ApiError, AppState, page_limit};
use crate::model::Timestamp;
use crate::store::notices::IncidentRow;
use crate::store::silences::SilenceRow;
use crate::store::{alerts, deliveries, notices, silences};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    state: Option<String>,
    sync_id: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct IncidentView {
    incident_id: String,
    rule: String,
    sync_id: String,
    cause: Option<String>,
    state: String,
    held: Option<String>,
    opened_at: Timestamp,
    since: Timestamp,
    resolved_at: Option<Timestamp>,
    condition: String,
}

impl From<IncidentRow> for IncidentView {
    fn from(r: IncidentRow) -> Self {
        IncidentView {
            incident_id: r.incident_id,
            rule: r.rule,
            sync_id: r.sync_id,
            cause: r.cause,
            state: r.state,
            held: r.held,
            opened_at: Timestamp(r.opened_ms),
            since: Timestamp(r.since_ms),
            resolved_at: r.resolved_ms.map(Timestamp),
            condition: r.condition,
        }
    }
}

/// `GET /v1/incidents[?state=pending|firing|resolved]`. Pending alerts have
/// no incident yet (their streak has not reached `fire_after`), so they are
/// listed from the alert states.
pub async fn incidents(
    State(state): State<AppState>,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = page_limit(q.limit, 200, 5000)?;
    let pool = state.store.reader();
    match q.state.as_deref() {
        Some("pending") => {
            let rows = alerts::with_state(pool, "pending").await?;
            let pending: Vec<Value> = rows
                .into_iter()
                .filter(|a| q.sync_id.as_deref().is_none_or(|s| s == a.sync_id))
                .take(limit as usize)
                .map(|a| {
                    json!({
                        "rule": a.rule,
                        "sync_id": a.sync_id,
                        "state": "pending",
                        "detail": serde_json::from_str::<Value>(&a.state).unwrap_or(Value::Null),
                    })
                })
                .collect();
            Ok(Json(json!({ "incidents": pending })))
        }
        Some(s @ ("firing" | "resolved")) => {
            let rows = notices::incidents(pool, Some(s), q.sync_id.as_deref(), limit).await?;
            let out: Vec<IncidentView> = rows.into_iter().map(Into::into).collect();
            Ok(Json(json!({ "incidents": out })))
        }
        None => {
            let rows = notices::incidents(pool, None, q.sync_id.as_deref(), limit).await?;
            let out: Vec<IncidentView> = rows.into_iter().map(Into::into).collect();
            Ok(Json(json!({ "incidents": out })))
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "state {other:?} is not one of pending, firing, resolved"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeQuery {
    status: Option<String>,
    sync_id: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/notifications`: every notice with its status (pending, sent,
/// failed, held) and why.
pub async fn notifications(
    State(state): State<AppState>,
    query: Result<Query<NoticeQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if let Some(s) = q.status.as_deref()
        && !matches!(s, "pending" | "sent" | "failed" | "held")
    {
        return Err(ApiError::BadRequest(format!(
            "status {s:?} is not one of pending, sent, failed, held"
        )));
    }
    let limit = page_limit(q.limit, 200, 5000)?;
    let rows = notices::list(
        state.store.reader(),
        q.status.as_deref(),
        q.sync_id.as_deref(),
        limit,
    )
    .await?;
    let ids: Vec<i64> = rows.iter().map(|n| n.id).collect();
    let mut per_notice: std::collections::HashMap<i64, Vec<Value>> = Default::default();
    for d in deliveries::for_notices(state.store.reader(), &ids).await? {
        per_notice.entry(d.notice_id).or_default().push(json!({
            "channel": d.channel,
            "status": d.status,
            "attempts": d.attempts,
            "last_error": d.last_error,
            "sent_at": d.sent_ms.map(Timestamp),
            "next_attempt_at": (d.status == "pending").then_some(Timestamp(d.next_attempt_ms)),
        }));
    }
    let out: Vec<Value> = rows
        .into_iter()
        .map(|n| {
            json!({
                "deliveries": per_notice.remove(&n.id).unwrap_or_default(),
                "key": n.notice_key,
                "incident_id": n.incident_id,
                "kind": n.kind,
                "cause": n.cause,
                "rule": n.rule,
                "sync_id": n.sync_id,
                "at": Timestamp(n.at_ms),
                "status": n.status,
                "held": n.held,
                "reason": n.reason,
                "created_at": Timestamp(n.created_ms),
            })
        })
        .collect();
    Ok(Json(json!({ "notifications": out })))
}

#[derive(Debug, Serialize)]
pub struct SilenceView {
    id: String,
    rule: String,
    sync: String,
    labels: BTreeMap<String, String>,
    starts_at: Timestamp,
    ends_at: Timestamp,
    author: String,
    comment: String,
    created_at: Timestamp,
    active: bool,
}

impl SilenceView {
    /// The silence as the API (and the UI's table) shows it at `now`.
    pub(crate) fn new(s: SilenceRow, now: Timestamp) -> Self {
        SilenceView {
            active: s.starts_ms <= now.0 && now.0 < s.ends_ms,
            labels: serde_json::from_str(&s.labels).unwrap_or_default(),
            id: s.id,
            rule: s.rule,
            sync: s.sync,
            starts_at: Timestamp(s.starts_ms),
            ends_at: Timestamp(s.ends_ms),
            author: s.author,
            comment: s.comment,
            created_at: Timestamp(s.created_ms),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceQuery {
    /// Include silences that have ended.
    all: Option<bool>,
}

pub async fn list_silences(
    State(state): State<AppState>,
    query: Result<Query<SilenceQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let now = Timestamp::now();
    let rows = silences::list(state.store.reader(), now.0, q.all.unwrap_or(false)).await?;
    let out: Vec<SilenceView> = rows.into_iter().map(|s| SilenceView::new(s, now)).collect();
    Ok(Json(json!({ "silences": out })))
}

/// A new silence. Either `ends_at` or `duration` is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    #[serde(default = "star")]
    pub rule: String,
    #[serde(default = "star")]
    pub sync: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    /// e.g. `2h`, instead of `ends_at`.
    pub duration: Option<String>,
    pub author: String,
    pub comment: String,
}

fn star() -> String {
    "*".into()
}

impl NewSilence {
    /// Checks the request and turns it into a row, naming every problem.
    pub fn into_row(self, now: Timestamp) -> Result<SilenceRow, Vec<String>> {
        let mut problems = Vec::new();
        for (field, glob) in [("rule", &self.rule), ("sync", &self.sync)] {
            if glob.is_empty() || glob.len() > 200 {
                problems.push(format!("{field}: must be a glob of 1-200 characters"));
            } else if let Err(e) = globset::Glob::new(glob) {
                problems.push(format!("{field}: {glob:?} is not a valid glob: {e}"));
            }
        }
        if self.author.trim().is_empty() || self.author.len() > 200 {
            problems.push("author: required, at most 200 characters".into());
        }
        if self.comment.trim().is_empty() || self.comment.len() > 2000 {
            problems.push("comment: required (say why), at most 2000 characters".into());
        }
        if self.labels.len() > 64 {
            problems.push("labels: at most 64 matchers".into());
        }
        let starts = self.starts_at.unwrap_or(now);
        let ends = match (self.ends_at, self.duration.as_deref()) {
            (Some(e), None) => Some(e),
            (None, Some(d)) => match humantime::parse_duration(d) {
                Ok(d) if !d.is_zero() => Some(starts.plus_millis(d.as_millis() as i64)),
                _ => {
                    problems.push(format!(
                        "duration: {d:?} is not a positive duration like 2h"
                    ));
                    None
                }
            },
            (Some(_), Some(_)) => {
                problems.push("give either ends_at or duration, not both".into());
                None
            }
            (None, None) => {
                problems.push("ends_at or duration is required".into());
                None
            }
        };
        if let Some(e) = ends {
            if e <= starts {
                problems.push("ends_at: must be after starts_at".into());
            } else if e <= now {
                problems.push("ends_at: must be in the future".into());
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(SilenceRow {
            id: uuid::Uuid::new_v4().to_string(),
            rule: self.rule,
            sync: self.sync,
            labels: serde_json::to_string(&self.labels).unwrap_or_else(|_| "{}".into()),
            starts_ms: starts.0,
            ends_ms: ends.map(|e| e.0).unwrap_or(starts.0),
            author: self.author,
            comment: self.comment,
            created_ms: now.0,
        })
    }
}

pub async fn add_silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SilenceView>), ApiError> {
    check_json_content_type(&headers)?;
    let body = body.map_err(|r| body_error(r, state.config.api.max_body_bytes))?;
    let req: NewSilence = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid silence: {e}")))?;
    let now = Timestamp::now();
    let row = req.into_row(now).map_err(|p| {
        ApiError::Invalid(
            p.into_iter()
                .map(|m| {
                    let (field, message) = m.split_once(": ").unwrap_or(("", &m));
                    crate::ingest::validate::FieldError {
                        index: 0,
                        field: field.to_string(),
                        message: message.to_string(),
                    }
                })
                .collect(),
        )
    })?;
    state
        .writer
        .add_silence(row.clone())
        .await
        .map_err(write_error)?;
    Ok((StatusCode::CREATED, Json(SilenceView::new(row, now))))
}

pub async fn expire_silence(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let found = state
        .writer
        .expire_silence(id.clone())
        .await
        .map_err(write_error)?;
    if !found {
        return Err(ApiError::NotFound(format!("no silence {id:?}")));
    }
    let row = silences::get(state.store.reader(), &id).await?;
    Ok(Json(json!({
        "expired": id,
        "silence": row.map(|r| SilenceView::new(r, Timestamp::now())),
    })))
}
