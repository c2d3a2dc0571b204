//! `/incidents` — incidents newest first (firing, resolved, or both), with
//! the alerts still pending (their streak has not reached `fire_after`, so
//! they have no incident yet). `?sync_id=` narrows to one sync: the link
//! notices carry.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{Ui, UiError, sync_href};
use crate::model::Timestamp;
use crate::store::notices::IncidentRow;
use crate::store::{alerts, notices};

const LIMIT: i64 = 500;

#[derive(Debug, Default, Deserialize)]
pub struct IncidentsQuery {
    state: Option<String>,
    sync_id: Option<String>,
}

/// An incident as the incidents page and the sync page list it.
#[derive(Serialize)]
pub(crate) struct IncidentView {
    incident_id: String,
    sync_id: String,
    href: String,
    rule: String,
    state: String,
    cause: Option<String>,
    condition: String,
    /// Why its firing notice is held, while it is; cleared on release.
    held: Option<String>,
    since: Timestamp,
    opened_at: Timestamp,
    resolved_at: Option<Timestamp>,
    /// How long it lasted, or has lasted so far.
    duration_ms: i64,
}

impl IncidentView {
    pub(crate) fn new(i: IncidentRow, now: Timestamp) -> Self {
        IncidentView {
            href: sync_href(&i.sync_id),
            duration_ms: i.resolved_ms.unwrap_or(now.0) - i.since_ms,
            incident_id: i.incident_id,
            sync_id: i.sync_id,
            rule: i.rule,
            state: i.state,
            cause: i.cause,
            condition: i.condition,
            held: i.held,
            since: Timestamp(i.since_ms),
            opened_at: Timestamp(i.opened_ms),
            resolved_at: i.resolved_ms.map(Timestamp),
        }
    }
}

#[derive(Serialize)]
struct Pending {
    sync_id: String,
    href: String,
    rule: String,
    bad_streak: serde_json::Value,
}

pub(crate) async fn page(
    State(ui): State<Ui>,
    query: Result<Query<IncidentsQuery>, QueryRejection>,
) -> Response {
    ui.query_page(query, render).await
}

async fn render(ui: Ui, q: IncidentsQuery) -> Result<Response, UiError> {
    let state = q.state.as_deref().filter(|s| !s.is_empty());
    let sync_id = q.sync_id.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = state
        && !matches!(s, "firing" | "resolved" | "pending")
    {
        return Err(UiError::BadRequest(format!(
            "There is no incident state {s:?}; use firing, resolved or pending."
        )));
    }
    let pool = ui.app.store.reader();
    let now = Timestamp::now();
    let rows = match state {
        Some("pending") => Vec::new(),
        s => notices::incidents(pool, s, sync_id, LIMIT).await?,
    };
    let rows: Vec<IncidentView> = rows
        .into_iter()
        .map(|i| IncidentView::new(i, now))
        .collect();
    let pending: Vec<Pending> = if matches!(state, None | Some("pending")) {
        alerts::with_state(pool, "pending")
            .await?
            .into_iter()
            .filter(|a| sync_id.is_none_or(|s| s == a.sync_id))
            .map(|a| {
                let detail: serde_json::Value =
                    serde_json::from_str(&a.state).unwrap_or(serde_json::Value::Null);
                Pending {
                    href: sync_href(&a.sync_id),
                    bad_streak: detail
                        .get("bad_streak")
                        .cloned()
                        .unwrap_or(serde_json::Value::Null),
                    sync_id: a.sync_id,
                    rule: a.rule,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(ui.render(
        "incidents.html",
        minijinja::context! {
            title => "Incidents",
            nav => "incidents",
            rows => minijinja::value::Serde(&rows),
            pending => minijinja::value::Serde(&pending),
            firing => rows.iter().filter(|r| r.state == "firing").count(),
            filter => minijinja::context! {
                state => state.unwrap_or_default(),
                sync_id => sync_id.unwrap_or_default(),
            },
        },
    ))
}
