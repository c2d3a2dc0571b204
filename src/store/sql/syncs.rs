//! Queries of `store::syncs`, compiled once per backend.

use sqlx::{FromRow, QueryBuilder};

use super::{Db, Pool, Tx};
use crate::model::Timestamp;
use crate::store::syncs::{SyncRow, SyncUpdate};
use crate::store::{Result, corrupt};

/// Upserts the syncs touched by a batch.
pub async fn upsert(
    tx: &mut Tx,
    updates: &[SyncUpdate<'_>],
    now: Timestamp,
    generation: i64,
) -> Result<()> {
    for chunk in updates.chunks(2_000) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO syncs (sync_id, source, labels, first_seen_ms, last_run_id, last_status, \
             last_finished_ms, last_evaluated_ms, runs_total, gen) ",
        );
        let mut encode_err = None;
        qb.push_values(chunk, |mut b, u| {
            let labels = serde_json::to_string(&u.newest.labels).unwrap_or_else(|e| {
                encode_err = Some(e.to_string());
                "{}".into()
            });
            b.push_bind(u.sync_id)
                .push_bind(u.source)
                .push_bind(labels)
                .push_bind(now.0)
                .push_bind(u.newest.run_id.as_str())
                .push_bind(u.newest.status.as_str())
                .push_bind(u.newest.finished_at.map(|t| t.0))
                .push_bind(u.last_evaluated.map(|t| t.0))
                .push_bind(u.runs)
                .push_bind(generation);
        });
        if let Some(e) = encode_err {
            return Err(corrupt("syncs (encoding)", e));
        }
        // SET expressions all see the row as it was before the update, so
        // `newer` is evaluated against the old last_finished_ms everywhere.
        // Existing columns are qualified (`syncs.x`): PostgreSQL calls a bare
        // name ambiguous beside `excluded.x`.
        const NEWER: &str = "(syncs.last_run_id IS NULL OR (excluded.last_finished_ms IS NOT NULL \
             AND (syncs.last_finished_ms IS NULL \
                  OR excluded.last_finished_ms >= syncs.last_finished_ms)))";
        qb.push(format!(
            " ON CONFLICT (sync_id) DO UPDATE SET \
             runs_total = syncs.runs_total + excluded.runs_total, gen = excluded.gen, \
             source = COALESCE(excluded.source, syncs.source), \
             labels = CASE WHEN {NEWER} THEN excluded.labels ELSE syncs.labels END, \
             last_run_id = CASE WHEN {NEWER} THEN excluded.last_run_id ELSE syncs.last_run_id END, \
             last_status = CASE WHEN {NEWER} THEN excluded.last_status ELSE syncs.last_status END, \
             last_finished_ms = CASE WHEN {NEWER} THEN excluded.last_finished_ms \
                 ELSE syncs.last_finished_ms END, \
             last_evaluated_ms = CASE \
                 WHEN syncs.last_evaluated_ms IS NULL THEN excluded.last_evaluated_ms \
                 WHEN excluded.last_evaluated_ms IS NULL THEN syncs.last_evaluated_ms \
                 WHEN excluded.last_evaluated_ms > syncs.last_evaluated_ms \
                     THEN excluded.last_evaluated_ms \
                 ELSE syncs.last_evaluated_ms END"
        ));
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Newest evaluated finish time of every sync (loaded once at start; the
/// writer keeps it current in memory afterwards).
pub async fn last_evaluated_all(pool: &Pool) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT sync_id, last_evaluated_ms FROM syncs WHERE last_evaluated_ms IS NOT NULL",
    )
    .fetch_all(pool)
    .await?)
}

/// Newest evaluated finish time of the syncs written by generations after
/// `generation`.
pub async fn last_evaluated_since(pool: &Pool, generation: i64) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT sync_id, last_evaluated_ms FROM syncs \
         WHERE gen > $1 AND last_evaluated_ms IS NOT NULL",
    )
    .bind(generation)
    .fetch_all(pool)
    .await?)
}

#[derive(FromRow)]
struct Row {
    sync_id: String,
    source: Option<String>,
    labels: String,
    first_seen_ms: i64,
    last_run_id: Option<String>,
    last_status: Option<String>,
    last_finished_ms: Option<i64>,
    runs_total: i64,
}

impl Row {
    fn into_sync(self) -> Result<SyncRow> {
        Ok(SyncRow {
            labels: serde_json::from_str(&self.labels).map_err(|e| corrupt("syncs.labels", e))?,
            sync_id: self.sync_id,
            source: self.source,
            first_seen: Timestamp(self.first_seen_ms),
            last_run_id: self.last_run_id,
            last_status: self.last_status,
            last_finished_at: self.last_finished_ms.map(Timestamp),
            runs_total: self.runs_total,
        })
    }
}

const SELECT: &str = "SELECT sync_id, source, labels, first_seen_ms, last_run_id, last_status, \
     last_finished_ms, runs_total FROM syncs ";

pub async fn list(pool: &Pool) -> Result<Vec<SyncRow>> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY sync_id")))
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(Row::into_sync).collect()
}

pub async fn get(pool: &Pool, sync_id: &str) -> Result<Option<SyncRow>> {
    let row: Option<Row> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE sync_id = $1")))
            .bind(sync_id)
            .fetch_optional(pool)
            .await?;
    row.map(Row::into_sync).transpose()
}
