//! `/syncs/{id}` — one sync: its totals, a chart of records processed vs
//! failed per hour, the state of each alert (streaks, flap share, why it
//! fires), its incidents with every notice sent or held and why, its
//! upstream and downstream syncs, and its runs, paginated.
//!
//! Bounded reads only: one sync row, two rollup sums, at most 168 hourly
//! buckets, one page of runs by the `(sync_id, finished_ms)` index, and the
//! latest incidents with their notices.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::incidents::IncidentView;
use super::{Ui, UiError, run_href, sync_href};
use crate::model::Timestamp;
use crate::store::rollups::{self, HOUR_MS};
use crate::store::runs::{self, StoredRun};
use crate::store::{alerts, notices, syncs};

/// Runs per page of the history table.
const PAGE: i64 = 50;
/// Hours in the chart.
const HOURS: i64 = 7 * 24;
/// Incidents listed (newest first), each with its notices.
const INCIDENTS: i64 = 20;

#[derive(Debug, Default, Deserialize)]
pub struct SyncQuery {
    /// Cursor of the next (older) page of runs.
    before: Option<String>,
}

/// A run as a table row.
#[derive(Serialize)]
pub(crate) struct RunRow {
    run_id: String,
    href: String,
    status: &'static str,
    evaluation: &'static str,
    finished_at: Option<Timestamp>,
    duration_ms: Option<i64>,
    processed: Option<u64>,
    succeeded: Option<u64>,
    failed: Option<u64>,
    invalid: Option<u64>,
    failed_ratio: Option<f64>,
    error: Option<String>,
    record_errors: i64,
}

impl From<&StoredRun> for RunRow {
    fn from(r: &StoredRun) -> Self {
        RunRow {
            href: run_href(&r.run.sync_id, &r.run.run_id),
            run_id: r.run.run_id.clone(),
            status: r.run.status.as_str(),
            evaluation: r.evaluation.as_str(),
            finished_at: r.run.finished_at,
            duration_ms: r.run.duration_ms(),
            processed: r.run.records.processed,
            succeeded: r.run.records.succeeded,
            failed: r.run.records.failed,
            invalid: r.run.records.invalid,
            failed_ratio: r.run.records.failed_ratio(),
            error: r.run.error.as_ref().map(|e| match &e.code {
                Some(c) => format!("{c}: {}", e.message),
                None => e.message.clone(),
            }),
            record_errors: r.record_errors_total,
        }
    }
}

#[derive(Serialize)]
struct AlertView {
    rule: String,
    state: String,
    bad_streak: Value,
    good_streak: Value,
    flapping: bool,
    flap_share: Value,
    cause: Value,
    condition: Value,
    since: Value,
    held: Value,
    notified: Value,
}

fn alert_view(a: alerts::AlertRow) -> AlertView {
    // The engine's state, read as the API shows it; fields a future
    // version drops read as empty rather than failing the page.
    let s: Value = serde_json::from_str(&a.state).unwrap_or(Value::Null);
    let f = |k: &str| s.get(k).cloned().unwrap_or(Value::Null);
    AlertView {
        rule: a.rule,
        bad_streak: f("bad_streak"),
        good_streak: f("good_streak"),
        flapping: s.get("flapping").and_then(Value::as_bool).unwrap_or(false),
        flap_share: f("flap_share"),
        cause: f("cause"),
        condition: f("condition"),
        since: f("fired_since"),
        // `held` in the engine's state is the hold at the last settle; it
        // stays set on an alert whose firing notice already went out (the
        // upstream fired after it) or that is not firing at all. Only the
        // `held` state means a firing notice is waiting, so only then is
        // the hold worth a line.
        held: if a.state_name == "held" {
            f("held")
        } else {
            Value::Null
        },
        notified: f("notified"),
        state: a.state_name,
    }
}

#[derive(Serialize)]
struct NoticeView {
    kind: String,
    at: Timestamp,
    /// The delivery status, except for a held firing: `held` while it
    /// waits, `released` once the hold ended and the firing went out (its
    /// own row follows), `cleared` when the incident ended before it did.
    status: &'static str,
    /// When a held firing was released.
    released_at: Option<Timestamp>,
    held: Option<String>,
    reason: Option<String>,
}

/// An incident's notices as the page lists them. The outbox keeps a held
/// firing as a record of its own (`…:held`) that never changes; what became
/// of it is read from the rows after it, so the list says whether the
/// notice is still held or was sent in the end.
fn notice_views(rows: Vec<notices::NoticeStatusRow>, resolved: bool) -> Vec<NoticeView> {
    let released_at = rows
        .iter()
        .find(|n| n.kind == "firing" && n.held.is_none())
        .map(|n| Timestamp(n.at_ms));
    rows.into_iter()
        .map(|n| {
            let (status, released) = match n.status.as_str() {
                "held" => match released_at {
                    Some(at) => ("released", Some(at)),
                    None if resolved => ("cleared", None),
                    None => ("held", None),
                },
                "sent" => ("sent", None),
                "failed" => ("failed", None),
                _ => ("pending", None),
            };
            NoticeView {
                kind: n.kind,
                at: Timestamp(n.at_ms),
                status,
                released_at: released,
                held: n.held,
                reason: n.reason,
            }
        })
        .collect()
}

/// An incident with every notice it produced, sent or held.
#[derive(Serialize)]
struct IncidentWithNotices {
    #[serde(flatten)]
    incident: IncidentView,
    notices: Vec<NoticeView>,
}

#[derive(Serialize)]
struct Neighbour {
    sync_id: String,
    href: String,
    /// Its state: a firing upstream is why this sync's notices are held.
    state: &'static str,
}

/// The catalogue's neighbours of a sync with their states (a handful of
/// primary-key reads).
async fn neighbours(pool: &crate::store::Pool, ids: &[String]) -> Result<Vec<Neighbour>, UiError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let rows = alerts::for_sync(pool, id).await?;
        out.push(Neighbour {
            href: sync_href(id),
            state: super::fleet::worst(rows.iter().map(|a| a.state_name.as_str())),
            sync_id: id.clone(),
        });
    }
    Ok(out)
}

pub(crate) async fn page(
    State(ui): State<Ui>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<SyncQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let Path(sync_id) = path.map_err(|e| UiError::BadRequest(e.body_text()))?;
        let Query(q) = query.map_err(|e| UiError::BadRequest(e.body_text()))?;
        render(&ui, &sync_id, q).await
    }
    .await;
    ui.finish(result)
}

async fn render(ui: &Ui, sync_id: &str, q: SyncQuery) -> Result<Response, UiError> {
    let before = match q.before.as_deref().filter(|s| !s.is_empty()) {
        Some(c) => Some(crate::api::syncs::parse_cursor(c).map_err(|_| {
            UiError::BadRequest("That page link is not valid; start from the newest runs.".into())
        })?),
        None => None,
    };
    let pool = ui.app.store.reader();
    let sync = syncs::get(pool, sync_id)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("No sync {sync_id:?} has reported a run.")))?;
    let now = Timestamp::now();
    // The chart ends now, or at the sync's newest hour when it has been
    // quiet for longer than the chart spans (an old history still shows).
    let newest = rollups::newest_hour(pool, sync_id).await?;
    let end_hour = match newest {
        Some(h) if h < now.0 - HOURS * HOUR_MS => h,
        _ => now.0.div_euclid(HOUR_MS) * HOUR_MS,
    };
    let start_hour = end_hour - (HOURS - 1) * HOUR_MS;
    let (day, week, buckets, alert_rows, incident_rows, page) = tokio::try_join!(
        runs::totals(pool, sync_id, now.plus_millis(-86_400_000)),
        runs::totals(pool, sync_id, now.plus_millis(-7 * 86_400_000)),
        rollups::hourly_for_sync(pool, sync_id, Timestamp(start_hour)),
        alerts::for_sync(pool, sync_id),
        notices::incidents(pool, None, Some(sync_id), INCIDENTS),
        runs::list_for_sync(pool, sync_id, before, PAGE),
    )?;
    let mut chart = vec![[0i64, 0, 0]; HOURS as usize];
    for (i, c) in chart.iter_mut().enumerate() {
        c[0] = start_hour + i as i64 * HOUR_MS;
    }
    for b in buckets {
        let i = (b.at_ms - start_hour) / HOUR_MS;
        if let Some(c) = usize::try_from(i).ok().and_then(|i| chart.get_mut(i)) {
            c[1] += b.processed;
            c[2] += b.failed + b.invalid;
        }
    }
    let mut incidents = Vec::with_capacity(incident_rows.len());
    for i in incident_rows {
        let notices = notice_views(
            notices::for_incident(pool, &i.incident_id).await?,
            i.resolved_ms.is_some(),
        );
        incidents.push(IncidentWithNotices {
            incident: IncidentView::new(i, now),
            notices,
        });
    }
    let alerts: Vec<AlertView> = alert_rows.into_iter().map(alert_view).collect();
    let state = super::fleet::worst(alerts.iter().map(|a| a.state.as_str()));
    let next = (page.len() as i64 == PAGE)
        .then(|| page.last().map(crate::api::syncs::cursor_after))
        .flatten()
        .map(|c| format!("{}?before={}", sync_href(sync_id), super::query_value(&c)));
    let runs: Vec<RunRow> = page.iter().map(RunRow::from).collect();
    let rules = ui.app.rules.borrow().clone();
    let owner = rules.sync(sync_id).and_then(|s| s.owner.clone());
    let upstream = neighbours(pool, rules.upstream_of(sync_id)).await?;
    let downstream = neighbours(pool, rules.downstream_of(sync_id)).await?;
    let day = super::fleet::Window::from(&day);
    let week = super::fleet::Window::from(&week);
    Ok(ui.render(
        "sync.html",
        minijinja::context! {
            title => sync_id,
            nav => "fleet",
            sync => minijinja::value::Serde(&sync),
            state => state,
            owner => owner,
            destination => minijinja::value::Serde(sync.labels.get("destination")),
            day => minijinja::value::Serde(&day),
            week => minijinja::value::Serde(&week),
            chart_points => minijinja::value::Serde(&chart),
            alerts => minijinja::value::Serde(&alerts),
            incidents => minijinja::value::Serde(&incidents),
            upstream => minijinja::value::Serde(&upstream),
            downstream => minijinja::value::Serde(&downstream),
            runs => minijinja::value::Serde(&runs),
            paged => before.is_some(),
            first_page => sync_href(sync_id),
            next => next,
            incidents_href => format!("/incidents?sync_id={}", super::query_value(sync_id)),
            silence_href => format!("/silences?sync={}", super::query_value(sync_id)),
        },
    ))
}
