//! Queries of `store::rollups`, compiled once per backend.

use std::collections::{BTreeMap, HashMap};

use sqlx::{FromRow, QueryBuilder};

use super::{Db, Pool, Tx};
use crate::model::{Run, Timestamp};
use crate::store::Result;
use crate::store::rollups::{Bucket, COUNTERS, MAX_PARAMS, Summary, counters, day_of, hour_of};

/// What one run adds: its hour, its day and its counters.
type Delta = (i64, i64, [i64; COUNTERS]);

/// Adds finished runs to their syncs' summaries: one read of the touched
/// summaries and one multi-row upsert per batch. Called from
/// [`super::runs::add_to_rollups`], so every path that keeps the hourly
/// rollups current keeps these current too, in the same transaction.
pub async fn add_to_summaries(tx: &mut Tx, runs: &[&Run]) -> Result<()> {
    let mut deltas: BTreeMap<&str, Vec<Delta>> = BTreeMap::new();
    for r in runs {
        let Some(fin) = r.finished_at else { continue };
        let of_sync = deltas.entry(r.sync_id.as_str()).or_default();
        of_sync.push((hour_of(fin), day_of(fin), counters(r)));
    }
    if deltas.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = deltas.keys().copied().collect();
    let mut current: HashMap<String, Summary> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_PARAMS) {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("SELECT sync_id, buckets FROM sync_summary WHERE sync_id IN (");
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        qb.push(")");
        let rows: Vec<(String, Vec<u8>)> = qb.build_query_as().fetch_all(&mut **tx).await?;
        current.extend(rows.into_iter().map(|(id, b)| (id, Summary::decode(&b))));
    }
    let updated: Vec<(&str, Vec<u8>)> = deltas
        .iter()
        .map(|(id, ds)| {
            let mut s = current.remove(*id).unwrap_or_default();
            for (hour, day, delta) in ds {
                s.add(*hour, *day, delta);
            }
            (*id, s.encode())
        })
        .collect();
    upsert(tx, &updated).await
}

async fn upsert(tx: &mut Tx, rows: &[(&str, Vec<u8>)]) -> Result<()> {
    for chunk in rows.chunks(MAX_PARAMS / 2) {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("INSERT INTO sync_summary (sync_id, buckets) ");
        qb.push_values(chunk, |mut b, (id, bytes)| {
            b.push_bind(*id).push_bind(bytes.as_slice());
        });
        qb.push(" ON CONFLICT (sync_id) DO UPDATE SET buckets = excluded.buckets");
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Fills the summaries from `sync_hourly` when there are none yet (a
/// database from before the summaries existed). Cheap when they exist.
pub async fn backfill_summaries(tx: &mut Tx) -> Result<()> {
    let (have,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM (SELECT 1 FROM sync_summary LIMIT 1) AS t")
            .fetch_one(&mut **tx)
            .await?;
    if have > 0 {
        return Ok(());
    }
    // Eight days cover both rings; only buckets near the newest matter.
    let rows: Vec<HourRow> = sqlx::query_as(
        "SELECT sync_id, hour_ms, runs, runs_success, runs_failed, runs_cancelled, processed, \
         succeeded, failed, invalid FROM sync_hourly \
         WHERE hour_ms >= (SELECT MAX(hour_ms) FROM sync_hourly) - 8 * 86400000",
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut by_sync: BTreeMap<String, Summary> = BTreeMap::new();
    for r in rows {
        let delta = [
            r.runs,
            r.runs_success,
            r.runs_failed,
            r.runs_cancelled,
            r.processed,
            r.succeeded,
            r.failed,
            r.invalid,
        ];
        by_sync
            .entry(r.sync_id)
            .or_default()
            .add(r.hour_ms, day_of(Timestamp(r.hour_ms)), &delta);
    }
    let encoded: Vec<(&str, Vec<u8>)> = by_sync
        .iter()
        .map(|(id, s)| (id.as_str(), s.encode()))
        .collect();
    upsert(tx, &encoded).await
}

#[derive(FromRow)]
struct HourRow {
    sync_id: String,
    hour_ms: i64,
    runs: i64,
    runs_success: i64,
    runs_failed: i64,
    runs_cancelled: i64,
    processed: i64,
    succeeded: i64,
    failed: i64,
    invalid: i64,
}

/// Every sync's summary, keyed by sync id.
pub async fn summaries(pool: &Pool) -> Result<HashMap<String, Summary>> {
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT sync_id, buckets FROM sync_summary")
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, b)| (id, Summary::decode(&b)))
        .collect())
}

/// One sync's hourly buckets from the hour of `from` on, oldest first (the
/// sync page's chart).
pub async fn hourly_for_sync(pool: &Pool, sync_id: &str, from: Timestamp) -> Result<Vec<Bucket>> {
    Ok(sqlx::query_as(
        "SELECT sync_id, hour_ms AS at_ms, runs, runs_success, runs_failed, processed, failed, \
         invalid FROM sync_hourly WHERE sync_id = $1 AND hour_ms >= $2 ORDER BY hour_ms",
    )
    .bind(sync_id)
    .bind(hour_of(from))
    .fetch_all(pool)
    .await?)
}

/// Start of a sync's newest hourly bucket: the sync page's chart ends there
/// when the sync has no recent runs, so an old history still shows.
pub async fn newest_hour(pool: &Pool, sync_id: &str) -> Result<Option<i64>> {
    let row: Option<(Option<i64>,)> =
        sqlx::query_as("SELECT MAX(hour_ms) FROM sync_hourly WHERE sync_id = $1")
            .bind(sync_id)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|r| r.0))
}
