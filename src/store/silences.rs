//! Silences (SPEC §3.5): stored whole; the engine decides what they hold.

use serde::Serialize;

use super::{Pool, Result, WriteTx, on_pool, on_tx};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SilenceRow {
    pub id: String,
    pub rule: String,
    pub sync: String,
    /// JSON object of label equalities.
    pub labels: String,
    pub starts_ms: i64,
    pub ends_ms: i64,
    pub author: String,
    pub comment: String,
    pub created_ms: i64,
}

pub async fn insert(tx: &mut WriteTx, s: &SilenceRow) -> Result<()> {
    on_tx!(tx, silences::insert(s))
}

/// Ends a silence at `now` (if it had not ended already). Returns whether a
/// silence with that id exists.
pub async fn expire(tx: &mut WriteTx, id: &str, now: i64) -> Result<bool> {
    on_tx!(tx, silences::expire(id, now))
}

/// Silences that have not ended by `now` (active or future).
pub async fn current(pool: &Pool, now: i64) -> Result<Vec<SilenceRow>> {
    on_pool!(pool, silences::current(now))
}

/// Every silence, newest first, for listing (expired ones included when
/// `include_expired`).
pub async fn list(pool: &Pool, now: i64, include_expired: bool) -> Result<Vec<SilenceRow>> {
    on_pool!(pool, silences::list(now, include_expired))
}

pub async fn get(pool: &Pool, id: &str) -> Result<Option<SilenceRow>> {
    on_pool!(pool, silences::get(id))
}
