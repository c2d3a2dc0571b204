//! Syncs: one row per sync id, kept current at ingest (last run, newest
//! evaluated time), so listing a fleet never scans the runs table.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Pool, Result, WriteTx, on_pool, on_tx};
use crate::model::{Run, Timestamp};

/// What one ingest batch changes about one sync.
pub struct SyncUpdate<'a> {
    pub sync_id: &'a str,
    pub source: Option<&'a str>,
    /// The newest finished run of the batch, if any (else its newest run).
    pub newest: &'a Run,
    pub last_evaluated: Option<Timestamp>,
    pub runs: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncRow {
    pub sync_id: String,
    pub source: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub first_seen: Timestamp,
    pub last_run_id: Option<String>,
    pub last_status: Option<String>,
    pub last_finished_at: Option<Timestamp>,
    pub runs_total: i64,
}

/// Upserts the syncs touched by a batch.
pub async fn upsert(
    tx: &mut WriteTx,
    updates: &[SyncUpdate<'_>],
    now: Timestamp,
    generation: i64,
) -> Result<()> {
    on_tx!(tx, syncs::upsert(updates, now, generation))
}

/// Newest evaluated finish time of the syncs written by generations after
/// `generation`.
pub async fn last_evaluated_since(pool: &Pool, generation: i64) -> Result<Vec<(String, i64)>> {
    on_pool!(pool, syncs::last_evaluated_since(generation))
}

/// Newest evaluated finish time of every sync (loaded once at start; the
/// writer keeps it current in memory afterwards).
pub async fn last_evaluated_all(pool: &Pool) -> Result<Vec<(String, i64)>> {
    on_pool!(pool, syncs::last_evaluated_all())
}

pub async fn list(pool: &Pool) -> Result<Vec<SyncRow>> {
    on_pool!(pool, syncs::list())
}

pub async fn get(pool: &Pool, sync_id: &str) -> Result<Option<SyncRow>> {
    on_pool!(pool, syncs::get(sync_id))
}
