//! `/` — the fleet: every sync with its state, last run, 24 h and 7 d
//! success rate and records failed, a daily sparkline of the failed-record
//! ratio, owner, source and destination; firing first, filterable by
//! state, label and text.
//!
//! Three reads, run side by side on the reader pool: the syncs table, the
//! per-sync summaries (recent hourly and daily buckets, one row a sync)
//! and the alert state names. Nothing here touches the runs table or the
//! hourly rollups, so the page costs the same with a million runs as with
//! ten.

use std::collections::{BTreeMap, HashMap};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{Ui, UiError, sync_href};
use crate::model::Timestamp;
use crate::store::rollups::{self, DAY_MS};
use crate::store::runs::Totals;
use crate::store::{alerts, syncs};

/// Days in the sparkline and the "7 d" columns: today and the six before.
const DAYS: i64 = 7;

/// The states a sync can show, worst first: the fleet sorts by this order.
pub(crate) const STATES: &[&str] = &[
    "firing",
    "held",
    "stale",
    "flapping",
    "pending",
    "ok",
    "unwatched",
];

/// A sync's state: the worst of its alerts (one per matching rule);
/// `unwatched` when no rule matches it.
pub(crate) fn worst<'a>(states: impl Iterator<Item = &'a str>) -> &'static str {
    states
        .filter_map(|s| STATES.iter().position(|k| *k == s))
        .min()
        .map_or("unwatched", |i| STATES[i])
}

fn rank(state: &str) -> usize {
    STATES
        .iter()
        .position(|k| *k == state)
        .unwrap_or(STATES.len())
}

#[derive(Debug, Default, Deserialize)]
pub struct FleetQuery {
    state: Option<String>,
    /// `key=value`, or `key` alone for "has this label".
    label: Option<String>,
    /// Text searched in the sync id, owner, source and label values.
    q: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct Window {
    runs: i64,
    /// Successful runs over finished runs; none without runs.
    success_rate: Option<f64>,
    records_processed: i64,
    /// Failed plus invalid records.
    records_failed: i64,
}

impl From<&Totals> for Window {
    fn from(t: &Totals) -> Self {
        Window {
            runs: t.runs,
            success_rate: (t.runs > 0).then(|| t.runs_success as f64 / t.runs as f64),
            records_processed: t.records_processed,
            records_failed: t.records_failed + t.records_invalid,
        }
    }
}

#[derive(Serialize)]
struct AlertName {
    rule: String,
    state: String,
}

#[derive(Serialize)]
struct Row {
    sync_id: String,
    href: String,
    state: &'static str,
    alerts: Vec<AlertName>,
    last_status: Option<String>,
    last_finished_at: Option<Timestamp>,
    source: Option<String>,
    owner: Option<String>,
    destination: Option<String>,
    labels: BTreeMap<String, String>,
    day: Window,
    week: Window,
    /// Failed-record ratio per day, oldest first; none on a day with no
    /// processed records.
    spark: Vec<Option<f64>>,
}

impl Row {
    fn matches_text(&self, needle: &str) -> bool {
        let hit = |s: &str| s.to_lowercase().contains(needle);
        hit(&self.sync_id)
            || self.owner.as_deref().is_some_and(hit)
            || self.source.as_deref().is_some_and(hit)
            || self.labels.values().any(|v| hit(v))
            || self.alerts.iter().any(|a| hit(&a.rule))
    }

    fn matches_label(&self, label: &str) -> bool {
        match label.split_once('=') {
            Some((k, v)) => self.labels.get(k.trim()).is_some_and(|x| x == v.trim()),
            None => self.labels.contains_key(label.trim()),
        }
    }
}

pub(crate) async fn page(
    State(ui): State<Ui>,
    query: Result<Query<FleetQuery>, QueryRejection>,
) -> Response {
    ui.query_page(query, render).await
}

async fn render(ui: Ui, q: FleetQuery) -> Result<Response, UiError> {
    let state_filter = q.state.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = state_filter
        && !STATES.contains(&s)
    {
        return Err(UiError::BadRequest(format!(
            "There is no state {s:?}; use one of {}.",
            STATES.join(", ")
        )));
    }
    let now = Timestamp::now();
    let pool = ui.app.store.reader();
    let first_day = rollups::day_of(now) - (DAYS - 1) * DAY_MS;
    let (sync_rows, mut summaries, names) = tokio::try_join!(
        syncs::list(pool),
        rollups::summaries(pool),
        alerts::names_all(pool),
    )?;

    let mut per_sync_alerts: HashMap<String, Vec<AlertName>> = HashMap::new();
    for (rule, sync_id, state) in names {
        per_sync_alerts
            .entry(sync_id)
            .or_default()
            .push(AlertName { rule, state });
    }
    let rules = ui.app.rules.borrow().clone();
    let catalogue: HashMap<&str, &crate::evaluate::SyncEntry> =
        rules.syncs.iter().map(|s| (s.id.as_str(), s)).collect();

    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let needle =
        q.q.as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_lowercase();
    let label = q.label.as_deref().map(str::trim).unwrap_or_default();
    let mut rows: Vec<Row> = Vec::with_capacity(sync_rows.len());
    for s in sync_rows {
        let alerts = per_sync_alerts.remove(&s.sync_id).unwrap_or_default();
        let state = worst(alerts.iter().map(|a| a.state.as_str()));
        *counts.entry(state).or_default() += 1;
        let summary = summaries.remove(&s.sync_id).unwrap_or_default();
        let days = summary.days(Timestamp(first_day), DAYS as usize);
        let mut week = Totals::default();
        for d in days.iter().flatten() {
            week.runs += d.runs;
            week.runs_success += d.runs_success;
            week.records_processed += d.records_processed;
            week.records_failed += d.records_failed;
            week.records_invalid += d.records_invalid;
        }
        let spark: Vec<Option<f64>> = days
            .iter()
            .map(|d| {
                d.as_ref().filter(|d| d.records_processed > 0).map(|d| {
                    (d.records_failed + d.records_invalid) as f64 / d.records_processed as f64
                })
            })
            .collect();
        let row = Row {
            href: sync_href(&s.sync_id),
            state,
            alerts,
            last_status: s.last_status,
            last_finished_at: s.last_finished_at,
            owner: catalogue
                .get(s.sync_id.as_str())
                .and_then(|c| c.owner.clone()),
            destination: s.labels.get("destination").cloned(),
            day: (&summary.since_hour(now.plus_millis(-DAY_MS))).into(),
            week: (&week).into(),
            spark,
            source: s.source,
            labels: s.labels,
            sync_id: s.sync_id,
        };
        if state_filter.is_some_and(|f| f != state)
            || (!needle.is_empty() && !row.matches_text(&needle))
            || (!label.is_empty() && !row.matches_label(label))
        {
            continue;
        }
        rows.push(row);
    }
    rows.sort_by(|a, b| {
        rank(a.state)
            .cmp(&rank(b.state))
            .then_with(|| a.sync_id.cmp(&b.sync_id))
    });
    let total: usize = counts.values().sum();
    let chips: Vec<(&str, usize)> = STATES
        .iter()
        .map(|s| (*s, counts.get(s).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    Ok(ui.render(
        "fleet.html",
        minijinja::context! {
            title => "Fleet",
            nav => "fleet",
            now => minijinja::value::Serde(now),
            rows => minijinja::value::Serde(&rows),
            shown => rows.len(),
            total => total,
            chips => minijinja::value::Serde(&chips),
            states => minijinja::value::Serde(STATES),
            filter => minijinja::context! {
                state => state_filter.unwrap_or_default(),
                label => label,
                q => q.q.as_deref().unwrap_or_default(),
            },
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_alert_decides_and_no_alert_means_unwatched() {
        assert_eq!(worst(["ok", "firing", "pending"].into_iter()), "firing");
        assert_eq!(worst(["ok", "held"].into_iter()), "held");
        assert_eq!(worst(["ok", "flapping", "pending"].into_iter()), "flapping");
        assert_eq!(worst(std::iter::empty()), "unwatched");
    }
}
