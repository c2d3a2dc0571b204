//! `GET /v1/syncs`, `/v1/syncs/{id}`, `/v1/syncs/{id}/runs`: the numbers a
//! team plugs into its own monitoring — runs, records tried / succeeded /
//! failed — read from per-sync rollups, never by scanning runs.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiError, AppState, page_limit};
use crate::model::Timestamp;
use crate::store::runs::{StoredRun, Totals};
use crate::store::syncs::SyncRow;
use crate::store::{alerts, runs, syncs};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Window of the totals, e.g. `24h` (default), `7d`, `30m`.
    window: Option<String>,
}

#[derive(Serialize)]
pub struct AlertSummary {
    rule: String,
    state: String,
}

#[derive(Serialize)]
pub struct SyncSummary {
    #[serde(flatten)]
    sync: SyncRow,
    window: String,
    totals: Totals,
    alerts: Vec<AlertSummary>,
}

fn parse_window(w: Option<&str>) -> Result<(String, Duration), ApiError> {
    let text = w.unwrap_or("24h");
    let d = humantime::parse_duration(text).map_err(|e| {
        ApiError::BadRequest(format!(
            "window {text:?} is not a duration like 24h or 7d: {e}"
        ))
    })?;
    if d.is_zero() || d > Duration::from_secs(400 * 86_400) {
        return Err(ApiError::BadRequest(format!(
            "window {text:?} must be between 1s and 400d"
        )));
    }
    Ok((text.to_string(), d))
}

fn since(d: Duration) -> Timestamp {
    Timestamp::now().plus_millis(-(d.as_millis() as i64))
}

pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (window, d) = parse_window(q.window.as_deref())?;
    let pool = state.store.reader();
    let rows = syncs::list(pool).await?;
    let mut totals = runs::totals_all(pool, since(d)).await?;
    let mut alert_map: HashMap<String, Vec<AlertSummary>> = HashMap::new();
    for (rule, sync_id, st) in alerts::names_all(pool).await? {
        alert_map
            .entry(sync_id)
            .or_default()
            .push(AlertSummary { rule, state: st });
    }
    let out: Vec<SyncSummary> = rows
        .into_iter()
        .map(|sync| SyncSummary {
            totals: totals.remove(&sync.sync_id).unwrap_or_default(),
            alerts: alert_map.remove(&sync.sync_id).unwrap_or_default(),
            window: window.clone(),
            sync,
        })
        .collect();
    Ok(Json(serde_json::json!({ "syncs": out })))
}

#[derive(Serialize)]
pub struct AlertDetail {
    rule: String,
    state: String,
    /// The engine's state for this (rule, sync): streaks, flap share,
    /// learned thresholds, deadlines.
    detail: Value,
}

pub async fn get_sync(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(sync_id) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let pool = state.store.reader();
    let sync = syncs::get(pool, &sync_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no sync {sync_id:?}")))?;
    let day = runs::totals(pool, &sync_id, since(Duration::from_secs(86_400))).await?;
    let week = runs::totals(pool, &sync_id, since(Duration::from_secs(7 * 86_400))).await?;
    let alerts: Vec<AlertDetail> = alerts::for_sync(pool, &sync_id)
        .await?
        .into_iter()
        .map(|a| AlertDetail {
            detail: serde_json::from_str(&a.state).unwrap_or(Value::Null),
            rule: a.rule,
            state: a.state_name,
        })
        .collect();
    Ok(Json(serde_json::json!({
        "sync": sync,
        "totals": { "24h": day, "7d": week },
        "alerts": alerts,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    limit: Option<i64>,
    /// Cursor from the previous page's `next`.
    before: Option<String>,
}

#[derive(Serialize)]
pub struct RunsPage {
    runs: Vec<StoredRun>,
    /// Pass as `before` to get the next (older) page; absent on the last.
    next: Option<String>,
}

const NO_FINISH: i64 = i64::MAX;

/// The cursor of the page after the one ending with `r`: its finish time
/// (running runs, which have none, sort first) and its row id.
pub(crate) fn cursor_after(r: &StoredRun) -> String {
    let fin = r.run.finished_at.map(|t| t.0).unwrap_or(NO_FINISH);
    format!("{fin}.{}", r.pk)
}

pub(crate) fn parse_cursor(c: &str) -> Result<(i64, i64), ApiError> {
    let bad = || ApiError::BadRequest(format!("before {c:?} is not a cursor from `next`"));
    let (a, b) = c.split_once('.').ok_or_else(bad)?;
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

pub async fn runs(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<RunsPage>, ApiError> {
    let Path(sync_id) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = page_limit(q.limit, 50, 1000)?;
    let before = q.before.as_deref().map(parse_cursor).transpose()?;
    let pool = state.store.reader();
    if syncs::get(pool, &sync_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no sync {sync_id:?}")));
    }
    let page = runs::list_for_sync(pool, &sync_id, before, limit).await?;
    let next = if page.len() as i64 == limit {
        page.last().map(cursor_after)
    } else {
        None
    };
    Ok(Json(RunsPage { runs: page, next }))
}
