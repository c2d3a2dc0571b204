//! Every metric syncwarden records: names, units and descriptions in one
//! place (semantic-convention style dotted names, UCUM units), and one
//! function per internal event so call sites are one line.
//!
//! Instruments come from the global meter provider that
//! [`super::Telemetry::init`] installs; before that (and in tests that never
//! call it) every function here is a no-op.
//!
//! **Cardinality.** `sync_id` is an attribute of the per-sync metrics. At most
//! `telemetry.max_sync_ids` (default 2000) distinct values are exported per
//! process; runs of any later sync are recorded with `sync_id="other"`, so a
//! client inventing sync ids cannot blow up the metrics backend.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableGauge};

use crate::model::Run;

/// A metric's name, unit and description.
pub struct Spec {
    pub name: &'static str,
    pub unit: &'static str,
    pub description: &'static str,
}

/// Runs stored, by `sync_id`, `source`, `destination` (label) and `status`.
pub const RUNS: Spec = Spec {
    name: "syncwarden.runs",
    unit: "{run}",
    description: "Runs stored (duplicates excluded), by sync, source, destination and status.",
};
pub const RECORDS_PROCESSED: Spec = Spec {
    name: "syncwarden.records.processed",
    unit: "{record}",
    description: "Records the sync tool processed, as reported by each stored run.",
};
pub const RECORDS_SUCCEEDED: Spec = Spec {
    name: "syncwarden.records.succeeded",
    unit: "{record}",
    description: "Records written to the destination, as reported by each stored run.",
};
pub const RECORDS_FAILED: Spec = Spec {
    name: "syncwarden.records.failed",
    unit: "{record}",
    description: "Records the destination rejected, as reported by each stored run.",
};
pub const RECORDS_INVALID: Spec = Spec {
    name: "syncwarden.records.invalid",
    unit: "{record}",
    description: "Records the sync tool refused before sending, as reported by each stored run.",
};
pub const RUN_DURATION: Spec = Spec {
    name: "syncwarden.run.duration",
    unit: "s",
    description: "Duration of finished runs (finished_at - started_at), when both are known.",
};
pub const NOTICES: Spec = Spec {
    name: "syncwarden.notices",
    unit: "{notice}",
    description: "Notices by channel, kind and outcome (sent, failed, held) with the reason.",
};
pub const DELIVERY_RETRIES: Spec = Spec {
    name: "syncwarden.delivery.retries",
    unit: "{attempt}",
    description: "Delivery attempts that failed transiently and were rescheduled, by channel.",
};
pub const INGEST_DURATION: Spec = Spec {
    name: "syncwarden.ingest.duration",
    unit: "s",
    description: "Time to answer POST /v1/runs (validation, store, evaluation), by HTTP status.",
};
pub const STORE_WRITE_DURATION: Spec = Spec {
    name: "syncwarden.store.write.duration",
    unit: "s",
    description: "Time of one committed ingest transaction (group commit) in SQLite.",
};
pub const OUTBOX_DEPTH: Spec = Spec {
    name: "syncwarden.outbox.depth",
    unit: "{delivery}",
    description: "Deliveries pending or in flight in the outbox.",
};

pub const OUTBOX_OLDEST_AGE: Spec = Spec {
    name: "syncwarden.outbox.oldest_age",
    unit: "s",
    description: "Age of the oldest delivery still pending or in flight (0 when the outbox is empty).",
};
pub const ALERT_STATE: Spec = Spec {
    name: "syncwarden.alert.state",
    unit: "{alert}",
    description: "1 for the current state (ok, pending, firing, flapping, stale, held) of each (rule, sync) alert.",
};

/// All specs, for documentation and tests.
pub const ALL: &[&Spec] = &[
    &RUNS,
    &RECORDS_PROCESSED,
    &RECORDS_SUCCEEDED,
    &RECORDS_FAILED,
    &RECORDS_INVALID,
    &RUN_DURATION,
    &NOTICES,
    &DELIVERY_RETRIES,
    &INGEST_DURATION,
    &STORE_WRITE_DURATION,
    &OUTBOX_DEPTH,
    &OUTBOX_OLDEST_AGE,
    &ALERT_STATE,
];

/// The `sync_id` value used once the cap is reached.
pub const OTHER: &str = "other";

struct Instruments {
    runs: Counter<u64>,
    processed: Counter<u64>,
    succeeded: Counter<u64>,
    failed: Counter<u64>,
    invalid: Counter<u64>,
    run_duration: Histogram<f64>,
    notices: Counter<u64>,
    retries: Counter<u64>,
    ingest_duration: Histogram<f64>,
    store_write: Histogram<f64>,
    _outbox_depth: ObservableGauge<i64>,
    _alert_state: ObservableGauge<i64>,
    _outbox_oldest: ObservableGauge<f64>,
}

static INSTRUMENTS: RwLock<Option<Arc<Instruments>>> = RwLock::new(None);
static MAX_SYNC_IDS: AtomicUsize = AtomicUsize::new(2000);
static SYNC_IDS: Mutex<Option<HashSet<String>>> = Mutex::new(None);
/// Last outbox depth seen; -1 = never measured (nothing is observed).
static OUTBOX: AtomicI64 = AtomicI64::new(-1);
/// Age in ms of the oldest unfinished delivery; -1 = never measured.
static OUTBOX_OLDEST_MS: AtomicI64 = AtomicI64::new(-1);
/// Last alert states seen: (rule, exported sync_id, state).
static ALERTS: Mutex<Vec<(String, String, String)>> = Mutex::new(Vec::new());

fn counter(m: &Meter, s: &Spec) -> Counter<u64> {
    m.u64_counter(s.name)
        .with_unit(s.unit)
        .with_description(s.description)
        .build()
}

fn seconds(m: &Meter, s: &Spec) -> Histogram<f64> {
    m.f64_histogram(s.name)
        .with_unit(s.unit)
        .with_description(s.description)
        .with_boundaries(vec![
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            300.0, 900.0, 1800.0, 3600.0, 7200.0,
        ])
        .build()
}

/// (Re)creates the instruments from the global meter provider.
pub(crate) fn install(max_sync_ids: usize) {
    MAX_SYNC_IDS.store(max_sync_ids, Ordering::Relaxed);
    let m = opentelemetry::global::meter("syncwarden");
    let gauge = m
        .i64_observable_gauge(OUTBOX_DEPTH.name)
        .with_unit(OUTBOX_DEPTH.unit)
        .with_description(OUTBOX_DEPTH.description)
        .with_callback(|o| {
            let v = OUTBOX.load(Ordering::Relaxed);
            if v >= 0 {
                o.observe(v, &[]);
            }
        })
        .build();
    let alert_state = m
        .i64_observable_gauge(ALERT_STATE.name)
        .with_unit(ALERT_STATE.unit)
        .with_description(ALERT_STATE.description)
        .with_callback(|o| {
            if let Ok(list) = ALERTS.lock() {
                for (rule, sync_id, state) in list.iter() {
                    o.observe(
                        1,
                        &[
                            KeyValue::new("rule", rule.clone()),
                            KeyValue::new("sync_id", sync_id.clone()),
                            KeyValue::new("state", state.clone()),
                        ],
                    );
                }
            }
        })
        .build();
    let oldest = m
        .f64_observable_gauge(OUTBOX_OLDEST_AGE.name)
        .with_unit(OUTBOX_OLDEST_AGE.unit)
        .with_description(OUTBOX_OLDEST_AGE.description)
        .with_callback(|o| {
            let v = OUTBOX_OLDEST_MS.load(Ordering::Relaxed);
            if v >= 0 {
                o.observe(v as f64 / 1000.0, &[]);
            }
        })
        .build();
    let inst = Instruments {
        runs: counter(&m, &RUNS),
        processed: counter(&m, &RECORDS_PROCESSED),
        succeeded: counter(&m, &RECORDS_SUCCEEDED),
        failed: counter(&m, &RECORDS_FAILED),
        invalid: counter(&m, &RECORDS_INVALID),
        run_duration: seconds(&m, &RUN_DURATION),
        notices: counter(&m, &NOTICES),
        retries: counter(&m, &DELIVERY_RETRIES),
        ingest_duration: seconds(&m, &INGEST_DURATION),
        store_write: seconds(&m, &STORE_WRITE_DURATION),
        _outbox_depth: gauge,
        _alert_state: alert_state,
        _outbox_oldest: oldest,
    };
    if let Ok(mut g) = INSTRUMENTS.write() {
        *g = Some(Arc::new(inst));
    }
}

fn instruments() -> Option<Arc<Instruments>> {
    INSTRUMENTS.read().ok().and_then(|g| g.clone())
}

/// `sync_id` as exported: itself while fewer than `max_sync_ids` distinct
/// ids have been seen, else [`OTHER`].
pub fn capped_sync_id(sync_id: &str) -> String {
    let max = MAX_SYNC_IDS.load(Ordering::Relaxed);
    let Ok(mut guard) = SYNC_IDS.lock() else {
        return OTHER.to_string();
    };
    let seen = guard.get_or_insert_with(HashSet::new);
    if seen.contains(sync_id) {
        return sync_id.to_string();
    }
    if seen.len() < max {
        seen.insert(sync_id.to_string());
        sync_id.to_string()
    } else {
        OTHER.to_string()
    }
}

/// A run was stored (called after its transaction committed).
pub fn run_ingested(run: &Run) {
    let Some(i) = instruments() else { return };
    let sync_attr = KeyValue::new("sync_id", capped_sync_id(&run.sync_id));
    let source = KeyValue::new("source", run.source.clone().unwrap_or_default());
    let destination = KeyValue::new(
        "destination",
        run.labels.get("destination").cloned().unwrap_or_default(),
    );
    let attrs = [
        sync_attr.clone(),
        source.clone(),
        destination.clone(),
        KeyValue::new("status", run.status.as_str()),
    ];
    i.runs.add(1, &attrs);
    let per_sync = [sync_attr, source, destination];
    let r = &run.records;
    for (c, v) in [
        (&i.processed, r.processed),
        (&i.succeeded, r.succeeded),
        (&i.failed, r.failed),
        (&i.invalid, r.invalid),
    ] {
        if let Some(v) = v {
            c.add(v, &per_sync);
        }
    }
    if let Some(ms) = run.duration_ms() {
        i.run_duration.record(ms as f64 / 1000.0, &attrs);
    }
}

/// A notice left the outbox (`outcome` = `sent` or `failed`, with the
/// failure reason class), or was held (`held`, reason `silenced`/`inhibited`).
pub fn notice_delivered(channel: &str, kind: &str, outcome: &str, reason: &str) {
    let Some(i) = instruments() else { return };
    i.notices.add(
        1,
        &[
            KeyValue::new("channel", channel.to_string()),
            KeyValue::new("kind", kind.to_string()),
            KeyValue::new("outcome", outcome.to_string()),
            KeyValue::new("reason", reason.to_string()),
        ],
    );
}

/// A notice was decided but held back (silence or inhibition): no channel.
pub fn notice_held(kind: &str, reason: &str) {
    notice_delivered("none", kind, "held", reason);
}

/// A delivery attempt failed transiently and will be retried.
pub fn delivery_retried(channel: &str) {
    let Some(i) = instruments() else { return };
    i.retries
        .add(1, &[KeyValue::new("channel", channel.to_string())]);
}

/// `POST /v1/runs` answered with `status` after `elapsed`.
pub fn ingest_answered(elapsed: Duration, status: u16) {
    let Some(i) = instruments() else { return };
    i.ingest_duration.record(
        elapsed.as_secs_f64(),
        &[KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        )],
    );
}

/// One ingest transaction committed after `elapsed`.
pub fn store_written(elapsed: Duration) {
    let Some(i) = instruments() else { return };
    i.store_write.record(elapsed.as_secs_f64(), &[]);
}

/// The current state of every alert, as (rule, sync_id, state).
pub fn alert_states(states: Vec<(String, String, String)>) {
    let capped = states
        .into_iter()
        .map(|(rule, sync_id, state)| (rule, capped_sync_id(&sync_id), state))
        .collect();
    if let Ok(mut g) = ALERTS.lock() {
        *g = capped;
    }
}

/// The outbox holds `depth` unfinished deliveries.
pub fn outbox_depth(depth: i64) {
    OUTBOX.store(depth.max(0), Ordering::Relaxed);
}

/// The oldest unfinished delivery became due `age_ms` ago (0 if none).
pub fn outbox_oldest_age(age_ms: i64) {
    OUTBOX_OLDEST_MS.store(age_ms.max(0), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dotted_lowercase_and_units_are_ucum_like() {
        for s in ALL {
            assert!(s.name.starts_with("syncwarden."), "{}", s.name);
            assert!(
                s.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'),
                "{}",
                s.name
            );
            assert!(
                s.unit == "s" || (s.unit.starts_with('{') && s.unit.ends_with('}')),
                "{}: {}",
                s.name,
                s.unit
            );
            assert!(!s.description.is_empty());
        }
    }
}
