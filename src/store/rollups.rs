//! Rollups for the status UI: daily totals per sync, kept current in the
//! ingest transaction beside the hourly ones, and the reads the pages make
//! of them. The fleet page shows 7-day totals and a daily sparkline for a
//! thousand syncs; reading a few thousand daily rows keeps it in
//! milliseconds where scanning runs (or 168 hourly rows a sync) would not.

use std::collections::{BTreeMap, HashMap};

use sqlx::{FromRow, QueryBuilder, Sqlite, SqlitePool};

use super::runs::Totals;
use super::{Result, WriteTx};
use crate::model::{Run, RunStatus, Timestamp};

/// SQLite allows 32,766 bound parameters per statement; stay well below.
const MAX_PARAMS: usize = 30_000;
const COLUMNS: usize = 10;
pub const DAY_MS: i64 = 86_400_000;
pub const HOUR_MS: i64 = 3_600_000;

/// The UTC day an instant falls in, as the unix ms of its midnight.
pub fn day_of(t: Timestamp) -> i64 {
    t.0.div_euclid(DAY_MS) * DAY_MS
}

/// Adds finished runs to the daily rollups of their syncs. Called from
/// [`super::runs::add_to_rollups`], so every path that keeps the hourly
/// rollups current keeps these current too, in the same transaction.
pub async fn add_daily(tx: &mut WriteTx, runs: &[&Run]) -> Result<()> {
    let mut deltas: BTreeMap<(i64, &str), [i64; 8]> = BTreeMap::new();
    for r in runs {
        let Some(fin) = r.finished_at else { continue };
        let d = deltas.entry((day_of(fin), r.sync_id.as_str())).or_default();
        d[0] += 1;
        match r.status {
            RunStatus::Success => d[1] += 1,
            RunStatus::Failed => d[2] += 1,
            RunStatus::Cancelled => d[3] += 1,
            RunStatus::Running => {}
        }
        d[4] += r.records.processed.unwrap_or(0) as i64;
        d[5] += r.records.succeeded.unwrap_or(0) as i64;
        d[6] += r.records.failed.unwrap_or(0) as i64;
        d[7] += r.records.invalid.unwrap_or(0) as i64;
    }
    let rows: Vec<_> = deltas.into_iter().collect();
    for chunk in rows.chunks(MAX_PARAMS / COLUMNS) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO sync_daily (day_ms, sync_id, runs, runs_success, runs_failed, \
             runs_cancelled, processed, succeeded, failed, invalid) ",
        );
        qb.push_values(chunk, |mut b, ((day, s), d)| {
            b.push_bind(*day).push_bind(*s);
            for v in d {
                b.push_bind(*v);
            }
        });
        qb.push(
            " ON CONFLICT (day_ms, sync_id) DO UPDATE SET runs = runs + excluded.runs, \
             runs_success = runs_success + excluded.runs_success, \
             runs_failed = runs_failed + excluded.runs_failed, \
             runs_cancelled = runs_cancelled + excluded.runs_cancelled, \
             processed = processed + excluded.processed, \
             succeeded = succeeded + excluded.succeeded, \
             failed = failed + excluded.failed, invalid = invalid + excluded.invalid",
        );
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// One rollup bucket (a day or an hour) of one sync.
#[derive(Debug, Clone, Default, FromRow)]
pub struct Bucket {
    pub sync_id: String,
    /// Start of the bucket, unix ms.
    pub at_ms: i64,
    pub runs: i64,
    pub runs_success: i64,
    pub runs_failed: i64,
    pub processed: i64,
    pub failed: i64,
    pub invalid: i64,
}

/// Every sync's daily buckets from the day of `from` on, in key order.
pub async fn daily_since(pool: &SqlitePool, from: Timestamp) -> Result<Vec<Bucket>> {
    Ok(sqlx::query_as(
        "SELECT sync_id, day_ms AS at_ms, runs, runs_success, runs_failed, processed, failed, \
         invalid FROM sync_daily WHERE day_ms >= ?",
    )
    .bind(day_of(from))
    .fetch_all(pool)
    .await?)
}

/// One sync's hourly buckets from the hour of `from` on, oldest first (the
/// sync page's chart).
pub async fn hourly_for_sync(
    pool: &SqlitePool,
    sync_id: &str,
    from: Timestamp,
) -> Result<Vec<Bucket>> {
    Ok(sqlx::query_as(
        "SELECT sync_id, hour_ms AS at_ms, runs, runs_success, runs_failed, processed, failed, \
         invalid FROM sync_hourly WHERE sync_id = ? AND hour_ms >= ? ORDER BY hour_ms",
    )
    .bind(sync_id)
    .bind(from.0.div_euclid(HOUR_MS) * HOUR_MS)
    .fetch_all(pool)
    .await?)
}

/// Start of a sync's newest hourly bucket: the sync page's chart ends there
/// when the sync has no recent runs, so an old history still shows.
pub async fn newest_hour(pool: &SqlitePool, sync_id: &str) -> Result<Option<i64>> {
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT MAX(hour_ms) FROM sync_hourly WHERE sync_id = ?")
            .bind(sync_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|r| r.0))
}

/// Totals of every sync since the hour of `from`, keyed by sync id: the
/// fleet's 24 h columns. Same sums as `runs::totals_all`, but read through
/// the covering index by hour: left to itself SQLite walks the whole table
/// in primary-key order to save the GROUP BY sort, which with a month of
/// hourly rows for a thousand syncs is the slowest thing on the page.
pub async fn window_all(pool: &SqlitePool, from: Timestamp) -> Result<HashMap<String, Totals>> {
    #[derive(FromRow)]
    struct Row {
        sync_id: String,
        #[sqlx(flatten)]
        totals: Totals,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT sync_id, SUM(runs) AS runs, SUM(runs_success) AS runs_success, \
         SUM(runs_failed) AS runs_failed, SUM(runs_cancelled) AS runs_cancelled, \
         SUM(processed) AS records_processed, SUM(succeeded) AS records_succeeded, \
         SUM(failed) AS records_failed, SUM(invalid) AS records_invalid \
         FROM sync_hourly INDEXED BY sync_hourly_by_hour WHERE hour_ms >= ? GROUP BY sync_id",
    )
    .bind(from.0.div_euclid(HOUR_MS) * HOUR_MS)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.sync_id, r.totals)).collect())
}
