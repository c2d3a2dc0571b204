//! Queries of `store::runs`, compiled once per backend.

use std::collections::{BTreeMap, HashMap};

use sqlx::{FromRow, QueryBuilder};

use super::{Db, PG, Pool, Tx};
use crate::model::{RecordCounts, RecordError, Run, RunError, RunStatus, Timestamp};
use crate::store::runs::{Evaluation, MAX_PARAMS, NewRun, StoredRun, Totals};
use crate::store::{Result, corrupt};

/// `WITH k(s, r) AS (VALUES (?, ?), …)` over `keys`, for the caller to
/// follow with a statement that joins it. The bundled SQLite (3.51) searches the unique index
/// for a row-value `(sync_id, run_id) IN (VALUES …)` too, but older ones
/// (Debian 12's 3.40, which the `sqlite-unbundled` build would link) plan it
/// as a scan of every stored run: a cost growing with history on every
/// group commit. Joining the keys onto the index is one search per key in
/// both.
fn keys_query(head: &'static str, keys: &[(&str, &str)]) -> QueryBuilder<Db> {
    let mut qb: QueryBuilder<Db> = QueryBuilder::new(head);
    qb.push("WITH k(s, r) AS (");
    qb.push_values(keys, |mut b, (s, r)| {
        b.push_bind(*s).push_bind(*r);
    });
    qb.push(") ");
    qb
}

/// The keys joined to the stored runs: `k` drives (CROSS JOIN keeps it the
/// outer loop), each key one search of the `(sync_id, run_id)` index.
/// (PostgreSQL has no `CROSS JOIN … ON`; its planner picks the join order
/// itself.)
const KEYS_JOIN_RUNS: &str = if PG {
    "FROM k JOIN runs ON runs.sync_id = k.s AND runs.run_id = k.r"
} else {
    "FROM k CROSS JOIN runs ON runs.sync_id = k.s AND runs.run_id = k.r"
};

/// Looks up which of `keys` are already stored, with their status.
pub async fn existing(
    tx: &mut Tx,
    keys: &[(&str, &str)],
) -> Result<HashMap<(String, String), RunStatus>> {
    let mut found = HashMap::new();
    for chunk in keys.chunks(MAX_PARAMS / 2) {
        let mut qb = existing_query(chunk);
        let rows: Vec<(String, String, String)> = qb.build_query_as().fetch_all(&mut **tx).await?;
        for (s, r, st) in rows {
            let status = RunStatus::parse(&st).ok_or_else(|| corrupt("runs.status", &st))?;
            found.insert((s, r), status);
        }
    }
    Ok(found)
}

pub(crate) fn existing_query(keys: &[(&str, &str)]) -> QueryBuilder<Db> {
    let mut qb = keys_query("", keys);
    qb.push(format!(
        "SELECT runs.sync_id, runs.run_id, runs.status {KEYS_JOIN_RUNS}"
    ));
    qb
}

/// Deletes stored copies (used when a finished run replaces its `running`
/// copy; record errors go with them through the foreign key).
pub async fn delete(tx: &mut Tx, keys: &[(&str, &str)]) -> Result<()> {
    for chunk in keys.chunks(MAX_PARAMS / 2) {
        let mut qb = delete_query(chunk);
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

pub(crate) fn delete_query(keys: &[(&str, &str)]) -> QueryBuilder<Db> {
    let mut qb = keys_query("DELETE FROM runs WHERE id IN (", keys);
    qb.push(format!("SELECT runs.id {KEYS_JOIN_RUNS}"));
    qb.push(")");
    qb
}

const RUN_COLUMNS: usize = 19;

/// Inserts runs and up to `cap` record errors of each.
pub async fn insert(tx: &mut Tx, runs: &[NewRun<'_>], cap: usize) -> Result<()> {
    let mut ids: HashMap<(&str, &str), i64> = HashMap::with_capacity(runs.len());
    for chunk in runs.chunks(MAX_PARAMS / RUN_COLUMNS) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO runs (sync_id, run_id, status, finished_ms, started_ms, processed, \
             succeeded, failed, invalid, error_code, error_message, url, source, labels, \
             record_errors_total, record_errors_stored, error_classes, received_ms, evaluation) ",
        );
        qb.push_values(chunk, |mut b, n| {
            let r = n.run;
            b.push_bind(r.sync_id.as_str())
                .push_bind(r.run_id.as_str())
                .push_bind(r.status.as_str())
                .push_bind(r.finished_at.map(|t| t.0))
                .push_bind(r.started_at.map(|t| t.0))
                .push_bind(r.records.processed.map(|v| v as i64))
                .push_bind(r.records.succeeded.map(|v| v as i64))
                .push_bind(r.records.failed.map(|v| v as i64))
                .push_bind(r.records.invalid.map(|v| v as i64))
                .push_bind(r.error.as_ref().and_then(|e| e.code.as_deref()))
                .push_bind(r.error.as_ref().map(|e| e.message.as_str()))
                .push_bind(r.url.as_deref())
                .push_bind(r.source.as_deref())
                .push_bind(n.derived.labels_json.as_str())
                .push_bind(r.record_errors.len() as i64)
                .push_bind(r.record_errors.len().min(cap) as i64)
                .push_bind(n.derived.classes_json.as_str())
                .push_bind(n.received.0)
                .push_bind(n.evaluation.as_str());
        });
        qb.push(" RETURNING id, sync_id, run_id");
        let rows: Vec<(i64, String, String)> = qb.build_query_as().fetch_all(&mut **tx).await?;
        // RETURNING order is unspecified in SQLite: map by key.
        let by_key: HashMap<(String, String), i64> =
            rows.into_iter().map(|(id, s, r)| ((s, r), id)).collect();
        for n in chunk {
            let key = (n.run.sync_id.clone(), n.run.run_id.clone());
            let id = *by_key
                .get(&key)
                .ok_or_else(|| corrupt("runs (insert)", "inserted row id missing"))?;
            ids.insert((n.run.sync_id.as_str(), n.run.run_id.as_str()), id);
        }
    }

    let errors: Vec<(i64, usize, &RecordError)> = runs
        .iter()
        .flat_map(|n| {
            let id = ids
                .get(&(n.run.sync_id.as_str(), n.run.run_id.as_str()))
                .copied()
                .unwrap_or_default();
            n.run
                .record_errors
                .iter()
                .take(cap)
                .enumerate()
                .map(move |(i, e)| (id, i, e))
        })
        .collect();
    for chunk in errors.chunks(MAX_PARAMS / 6) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO record_errors (run_pk, seq, record_id, code, message, field) ",
        );
        qb.push_values(chunk, |mut b, (id, seq, e)| {
            b.push_bind(*id)
                .push_bind(*seq as i64)
                .push_bind(e.record_id.as_deref())
                .push_bind(e.code.as_deref())
                .push_bind(e.message.as_str())
                .push_bind(e.field.as_deref());
        });
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Adds finished runs to the hourly rollups of their syncs.
pub async fn add_to_rollups(tx: &mut Tx, runs: &[&Run]) -> Result<()> {
    use crate::store::rollups::{COUNTERS, counters, hour_of};
    let mut deltas: BTreeMap<(&str, i64), [i64; COUNTERS]> = BTreeMap::new();
    for r in runs {
        let Some(fin) = r.finished_at else { continue };
        let d = deltas
            .entry((r.sync_id.as_str(), hour_of(fin)))
            .or_default();
        for (sum, c) in d.iter_mut().zip(counters(r)) {
            *sum += c;
        }
    }
    let rows: Vec<_> = deltas.into_iter().collect();
    for chunk in rows.chunks(MAX_PARAMS / 10) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO sync_hourly (sync_id, hour_ms, runs, runs_success, runs_failed, \
             runs_cancelled, processed, succeeded, failed, invalid) ",
        );
        qb.push_values(chunk, |mut b, ((s, h), d)| {
            b.push_bind(*s).push_bind(*h);
            for c in d {
                b.push_bind(*c);
            }
        });
        qb.push(
            " ON CONFLICT (sync_id, hour_ms) DO UPDATE SET \
             runs = sync_hourly.runs + excluded.runs, \
             runs_success = sync_hourly.runs_success + excluded.runs_success, \
             runs_failed = sync_hourly.runs_failed + excluded.runs_failed, \
             runs_cancelled = sync_hourly.runs_cancelled + excluded.runs_cancelled, \
             processed = sync_hourly.processed + excluded.processed, \
             succeeded = sync_hourly.succeeded + excluded.succeeded, \
             failed = sync_hourly.failed + excluded.failed, \
             invalid = sync_hourly.invalid + excluded.invalid",
        );
        qb.build().execute(&mut **tx).await?;
    }
    // The UI's per-sync summaries (store/rollups.rs) follow the hourly
    // rollups.
    super::rollups::add_to_summaries(tx, runs).await?;
    Ok(())
}

#[derive(FromRow)]
struct RunRow {
    id: i64,
    sync_id: String,
    run_id: String,
    status: String,
    finished_ms: Option<i64>,
    started_ms: Option<i64>,
    processed: Option<i64>,
    succeeded: Option<i64>,
    failed: Option<i64>,
    invalid: Option<i64>,
    error_code: Option<String>,
    error_message: Option<String>,
    url: Option<String>,
    source: Option<String>,
    labels: String,
    record_errors_total: i64,
    record_errors_stored: i64,
    error_classes: String,
    received_ms: i64,
    evaluation: String,
}

const SELECT_RUN: &str = "SELECT id, sync_id, run_id, status, finished_ms, started_ms, processed, \
     succeeded, failed, invalid, error_code, error_message, url, source, labels, \
     record_errors_total, record_errors_stored, error_classes, received_ms, evaluation FROM runs ";

impl RunRow {
    fn into_stored(self) -> Result<StoredRun> {
        let status =
            RunStatus::parse(&self.status).ok_or_else(|| corrupt("runs.status", &self.status))?;
        let evaluation = match self.evaluation.as_str() {
            "evaluated" => Evaluation::Evaluated,
            "late" => Evaluation::Late,
            _ => Evaluation::Running,
        };
        let count = |v: Option<i64>| v.map(|v| v.max(0) as u64);
        Ok(StoredRun {
            pk: self.id,
            run: Run {
                sync_id: self.sync_id,
                run_id: self.run_id,
                status,
                finished_at: self.finished_ms.map(Timestamp),
                started_at: self.started_ms.map(Timestamp),
                records: RecordCounts {
                    processed: count(self.processed),
                    succeeded: count(self.succeeded),
                    failed: count(self.failed),
                    invalid: count(self.invalid),
                },
                error: self.error_message.map(|message| RunError {
                    code: self.error_code,
                    message,
                }),
                record_errors: Vec::new(),
                url: self.url,
                source: self.source,
                labels: serde_json::from_str(&self.labels)
                    .map_err(|e| corrupt("runs.labels", e))?,
            },
            evaluation,
            received_at: Timestamp(self.received_ms),
            record_errors_total: self.record_errors_total,
            record_errors_stored: self.record_errors_stored,
            error_classes: serde_json::from_str(&self.error_classes)
                .map_err(|e| corrupt("runs.error_classes", e))?,
        })
    }
}

/// One run with its stored record errors (at most `errors_limit`).
pub async fn get(
    pool: &Pool,
    sync_id: &str,
    run_id: &str,
    errors_limit: i64,
) -> Result<Option<StoredRun>> {
    let row: Option<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_RUN} WHERE sync_id = $1 AND run_id = $2"
    )))
    .bind(sync_id)
    .bind(run_id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let mut stored = row.into_stored()?;
    stored.run.record_errors = record_errors(pool, stored.pk, errors_limit).await?;
    Ok(Some(stored))
}

pub async fn record_errors(pool: &Pool, run_pk: i64, limit: i64) -> Result<Vec<RecordError>> {
    #[derive(FromRow)]
    struct Row {
        record_id: Option<String>,
        code: Option<String>,
        message: String,
        field: Option<String>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT record_id, code, message, field FROM record_errors WHERE run_pk = $1 \
         ORDER BY seq LIMIT $2",
    )
    .bind(run_pk)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RecordError {
            record_id: r.record_id,
            code: r.code,
            message: r.message,
            field: r.field,
        })
        .collect())
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
    // COALESCE keeps running runs (no finished time) at the top.
    let rows: Vec<RunRow> = match before {
        None => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_RUN} WHERE sync_id = $1 \
                 ORDER BY COALESCE(finished_ms, 9223372036854775807) DESC, id DESC LIMIT $2"
            )))
            .bind(sync_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        Some((fin, id)) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_RUN} WHERE sync_id = $1 AND \
                 (COALESCE(finished_ms, 9223372036854775807), id) < ($2, $3) \
                 ORDER BY COALESCE(finished_ms, 9223372036854775807) DESC, id DESC LIMIT $4"
            )))
            .bind(sync_id)
            .bind(fin)
            .bind(id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    rows.into_iter().map(RunRow::into_stored).collect()
}

/// Sums as BIGINT: PostgreSQL sums BIGINT columns into NUMERIC.
const TOTALS: &str = "CAST(COALESCE(SUM(runs), 0) AS BIGINT) AS runs, \
     CAST(COALESCE(SUM(runs_success), 0) AS BIGINT) AS runs_success, \
     CAST(COALESCE(SUM(runs_failed), 0) AS BIGINT) AS runs_failed, \
     CAST(COALESCE(SUM(runs_cancelled), 0) AS BIGINT) AS runs_cancelled, \
     CAST(COALESCE(SUM(processed), 0) AS BIGINT) AS records_processed, \
     CAST(COALESCE(SUM(succeeded), 0) AS BIGINT) AS records_succeeded, \
     CAST(COALESCE(SUM(failed), 0) AS BIGINT) AS records_failed, \
     CAST(COALESCE(SUM(invalid), 0) AS BIGINT) AS records_invalid";

pub async fn totals(pool: &Pool, sync_id: &str, from: Timestamp) -> Result<Totals> {
    let hour = from.0.div_euclid(3_600_000) * 3_600_000;
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TOTALS} FROM sync_hourly WHERE sync_id = $1 AND hour_ms >= $2"
    )))
    .bind(sync_id)
    .bind(hour)
    .fetch_one(pool)
    .await?)
}

/// Totals of every sync since `from`, keyed by sync id.
pub async fn totals_all(pool: &Pool, from: Timestamp) -> Result<HashMap<String, Totals>> {
    #[derive(FromRow)]
    struct Row {
        sync_id: String,
        #[sqlx(flatten)]
        totals: Totals,
    }
    let hour = from.0.div_euclid(3_600_000) * 3_600_000;
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT sync_id, {TOTALS} FROM sync_hourly WHERE hour_ms >= $1 GROUP BY sync_id"
    )))
    .bind(hour)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.sync_id, r.totals)).collect())
}

/// Run and record totals of a sync over `[from, to]` (what an incident
/// cost). Uses the `(sync_id, finished_ms)` index; incidents are bounded.
pub async fn sum_between(
    pool: &Pool,
    sync_id: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<Totals> {
    Ok(sqlx::query_as(
        "SELECT COUNT(*) AS runs, \
         CAST(COALESCE(SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END), 0) AS BIGINT) \
           AS runs_success, \
         CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) \
           AS runs_failed, \
         CAST(COALESCE(SUM(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END), 0) AS BIGINT) \
           AS runs_cancelled, \
         CAST(COALESCE(SUM(processed), 0) AS BIGINT) AS records_processed, \
         CAST(COALESCE(SUM(succeeded), 0) AS BIGINT) AS records_succeeded, \
         CAST(COALESCE(SUM(failed), 0) AS BIGINT) AS records_failed, \
         CAST(COALESCE(SUM(invalid), 0) AS BIGINT) AS records_invalid \
         FROM runs WHERE sync_id = $1 AND finished_ms BETWEEN $2 AND $3 AND evaluation != 'running'",
    )
    .bind(sync_id)
    .bind(from.0)
    .bind(to.0)
    .fetch_one(pool)
    .await?)
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
    let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_RUN} WHERE sync_id = $1 AND finished_ms BETWEEN $2 AND $3 \
         ORDER BY finished_ms DESC, id DESC LIMIT $4"
    )))
    .bind(sync_id)
    .bind(from.0)
    .bind(to.0)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(RunRow::into_stored).collect()
}
