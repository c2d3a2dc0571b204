//! Alert state: one row per (rule, sync) holding the engine's state as
//! JSON. The store does not interpret it; `app` converts to and from the
//! engine's types. Restarting loads these rows instead of replaying runs.

use super::{Pool, Result, WriteTx, on_pool, on_tx};
use crate::model::Timestamp;

/// A persisted alert: its key, its display state and the engine's state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertRow {
    pub rule: String,
    pub sync_id: String,
    pub state_name: String,
    pub state: String,
}

/// Writes the given alerts (insert or replace), stamped with the
/// generation the transaction commits (0 on SQLite).
pub async fn save(
    tx: &mut WriteTx,
    rows: &[AlertRow],
    now: Timestamp,
    generation: i64,
) -> Result<()> {
    on_tx!(tx, alerts::save(rows, now, generation))
}

/// Alerts written by generations after `generation`.
pub async fn changed_since(pool: &Pool, generation: i64) -> Result<Vec<AlertRow>> {
    on_pool!(pool, alerts::changed_since(generation))
}

/// Deletes alerts whose rule was removed.
pub async fn delete(tx: &mut WriteTx, keys: &[(String, String)]) -> Result<()> {
    on_tx!(tx, alerts::delete(keys))
}

pub async fn load_all(pool: &Pool) -> Result<Vec<AlertRow>> {
    on_pool!(pool, alerts::load_all())
}

pub async fn for_sync(pool: &Pool, sync_id: &str) -> Result<Vec<AlertRow>> {
    on_pool!(pool, alerts::for_sync(sync_id))
}

pub async fn with_state(pool: &Pool, state_name: &str) -> Result<Vec<AlertRow>> {
    on_pool!(pool, alerts::with_state(state_name))
}

/// (rule, sync_id, state_name) of every alert, without the state itself.
pub async fn names_all(pool: &Pool) -> Result<Vec<(String, String, String)>> {
    on_pool!(pool, alerts::names_all())
}
