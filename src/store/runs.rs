//! Runs and their record errors: batched writes for ingest, paged reads for
//! the API.
//!
//! Writes use multi-row statements (`QueryBuilder::push_values`): each
//! statement costs a hop to SQLite's worker thread, so a batch of a thousand
//! runs must be a handful of statements, not a thousand.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::FromRow;

use super::{Pool, Result, WriteTx, corrupt, on_pool, on_tx};
use crate::ingest::classes::ErrorClass;
use crate::model::{RecordError, Run, RunStatus, Timestamp};

/// SQLite allows 32,766 bound parameters per statement; stay well below.
pub(crate) const MAX_PARAMS: usize = 30_000;

/// What the engine did with a stored run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Evaluation {
    /// Evaluated by the engine in order.
    Evaluated,
    /// Finished before the newest evaluated run of its sync: stored, shown,
    /// never evaluated (SPEC §1).
    Late,
    /// Not finished yet: stored and shown, never evaluated.
    Running,
}

impl Evaluation {
    pub fn as_str(self) -> &'static str {
        match self {
            Evaluation::Evaluated => "evaluated",
            Evaluation::Late => "late",
            Evaluation::Running => "running",
        }
    }
}

/// The columns ingest derives from a run: its error classes and labels as
/// stored JSON. Computed before a run reaches the writer (on the request's
/// own task), so the one writer spends its time in SQLite.
#[derive(Debug, Clone)]
pub struct Derived {
    pub classes_json: String,
    pub labels_json: String,
}

impl Derived {
    pub fn of(run: &Run) -> Result<Derived> {
        let classes = crate::ingest::classes::classify(&run.record_errors);
        Ok(Derived {
            classes_json: serde_json::to_string(&classes)
                .map_err(|e| corrupt("runs.error_classes (encoding)", e))?,
            labels_json: serde_json::to_string(&run.labels)
                .map_err(|e| corrupt("runs.labels (encoding)", e))?,
        })
    }
}

/// A run about to be written, with what ingest derived from it.
pub struct NewRun<'a> {
    pub run: &'a Run,
    pub evaluation: Evaluation,
    pub derived: &'a Derived,
    pub received: Timestamp,
}

/// A stored run as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredRun {
    #[serde(flatten)]
    pub run: Run,
    pub evaluation: Evaluation,
    pub received_at: Timestamp,
    pub record_errors_total: i64,
    pub record_errors_stored: i64,
    pub error_classes: Vec<ErrorClass>,
    #[serde(skip)]
    pub pk: i64,
}

/// Totals over the hourly rollups of one sync since `from`.
#[derive(Debug, Clone, Default, Serialize, FromRow)]
pub struct Totals {
    pub runs: i64,
    pub runs_success: i64,
    pub runs_failed: i64,
    pub runs_cancelled: i64,
    pub records_processed: i64,
    pub records_succeeded: i64,
    pub records_failed: i64,
    pub records_invalid: i64,
}

/// Looks up which of `keys` are already stored, with their status.
pub async fn existing(
    tx: &mut WriteTx,
    keys: &[(&str, &str)],
) -> Result<HashMap<(String, String), RunStatus>> {
    on_tx!(tx, runs::existing(keys))
}

/// Deletes stored copies (used when a finished run replaces its `running`
/// copy; record errors go with them through the foreign key).
pub async fn delete(tx: &mut WriteTx, keys: &[(&str, &str)]) -> Result<()> {
    on_tx!(tx, runs::delete(keys))
}

/// Inserts runs and up to `cap` record errors of each.
pub async fn insert(tx: &mut WriteTx, runs: &[NewRun<'_>], cap: usize) -> Result<()> {
    on_tx!(tx, runs::insert(runs, cap))
}

/// Adds finished runs to the hourly rollups of their syncs.
pub async fn add_to_rollups(tx: &mut WriteTx, runs: &[&Run]) -> Result<()> {
    on_tx!(tx, runs::add_to_rollups(runs))
}

/// One run with its stored record errors (at most `errors_limit`).
pub async fn get(
    pool: &Pool,
    sync_id: &str,
    run_id: &str,
    errors_limit: i64,
) -> Result<Option<StoredRun>> {
    on_pool!(pool, runs::get(sync_id, run_id, errors_limit))
}

pub async fn record_errors(pool: &Pool, run_pk: i64, limit: i64) -> Result<Vec<RecordError>> {
    on_pool!(pool, runs::record_errors(run_pk, limit))
}

/// A page of a sync's runs, newest first (by finished time, running runs
/// — which have none — first). `before` is the cursor: the `id` of the
/// last run of the previous page.
pub async fn list_for_sync(
    pool: &Pool,
    sync_id: &str,
    before: Option<(i64, i64)>,
    limit: i64,
) -> Result<Vec<StoredRun>> {
    on_pool!(pool, runs::list_for_sync(sync_id, before, limit))
}

pub async fn totals(pool: &Pool, sync_id: &str, from: Timestamp) -> Result<Totals> {
    on_pool!(pool, runs::totals(sync_id, from))
}

/// Totals of every sync since `from`, keyed by sync id.
pub async fn totals_all(pool: &Pool, from: Timestamp) -> Result<HashMap<String, Totals>> {
    on_pool!(pool, runs::totals_all(from))
}

/// Run and record totals of a sync over `[from, to]` (what an incident
/// cost). Uses the `(sync_id, finished_ms)` index; incidents are bounded.
pub async fn sum_between(
    pool: &Pool,
    sync_id: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<Totals> {
    on_pool!(pool, runs::sum_between(sync_id, from, to))
}

/// The newest finished runs of a sync at or before `to` and not before
/// `from`, newest first.
pub async fn recent_between(
    pool: &Pool,
    sync_id: &str,
    from: Timestamp,
    to: Timestamp,
    limit: i64,
) -> Result<Vec<StoredRun>> {
    on_pool!(pool, runs::recent_between(sync_id, from, to, limit))
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite::runs::{delete_query, existing_query};

    /// The plan of a statement, one `detail` per line.
    async fn plan(pool: &sqlx::SqlitePool, sql: &str) -> String {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind("s")
                .bind("r")
                .bind("s2")
                .bind("r2")
                .fetch_all(pool)
                .await
                .expect("plan");
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    #[tokio::test]
    async fn looking_up_and_deleting_runs_by_key_searches_the_index_and_never_scans_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = super::super::Store::open(&dir.path().join("t.db").display().to_string())
            .await
            .expect("store");
        let keys = [("s", "r"), ("s2", "r2")];
        for sql in [
            existing_query(&keys).into_string(),
            delete_query(&keys).into_string(),
        ] {
            let plan = plan(store.reader().as_sqlite().expect("sqlite"), &sql).await;
            assert!(!plan.contains("SCAN runs"), "{sql}\n{plan}");
            assert!(plan.contains("SEARCH runs USING"), "{sql}\n{plan}");
        }
        store.close().await;
    }
}
