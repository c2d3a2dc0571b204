//! The notice outbox and the incidents it tells about.
//!
//! Notices are inserted in the same transaction as the alert state change
//! that caused them, keyed by `notice_key` (incident + kind + sequence):
//! `INSERT OR IGNORE` on that key is the dedup that makes "sent at most once
//! per key" hold across restarts and retries.

use serde::Serialize;
use sqlx::FromRow;

use super::{Pool, Result, WriteTx, on_pool, on_tx};
use crate::model::Timestamp;

/// A notice as written to the outbox.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct NoticeRow {
    pub notice_key: String,
    pub incident_id: String,
    pub kind: String,
    pub seq: i64,
    pub cause: Option<String>,
    pub rule: String,
    pub sync_id: String,
    pub at_ms: i64,
    /// `pending` to deliver, `held` when recorded only.
    pub status: String,
    pub held: Option<String>,
    pub reason: Option<String>,
    /// The whole notice as JSON, for rendering.
    pub body: String,
}

/// An incident's summary row.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct IncidentRow {
    pub incident_id: String,
    pub rule: String,
    pub sync_id: String,
    pub cause: Option<String>,
    pub state: String,
    pub held: Option<String>,
    pub opened_ms: i64,
    pub since_ms: i64,
    pub resolved_ms: Option<i64>,
    pub condition: String,
}

/// A notice with its delivery status, as `GET /v1/notifications` shows it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct NoticeStatusRow {
    pub id: i64,
    pub notice_key: String,
    pub incident_id: String,
    pub kind: String,
    pub cause: Option<String>,
    pub rule: String,
    pub sync_id: String,
    pub at_ms: i64,
    pub status: String,
    pub held: Option<String>,
    pub reason: Option<String>,
    pub created_ms: i64,
}

/// Inserts notices; a key already present is left alone (dedup). A held
/// firing is recorded under its own key (`…:held`), so its later release is
/// a separate row and the history shows both.
pub async fn insert(tx: &mut WriteTx, rows: &[NoticeRow], now: Timestamp) -> Result<()> {
    on_tx!(tx, notices::insert(rows, now))
}

/// Records that an incident fired (or that its firing notice was held).
pub async fn open_incident(tx: &mut WriteTx, row: &IncidentRow) -> Result<()> {
    on_tx!(tx, notices::open_incident(row))
}

pub async fn resolve_incident(tx: &mut WriteTx, incident_id: &str, at: i64) -> Result<()> {
    on_tx!(tx, notices::resolve_incident(incident_id, at))
}

/// (rule, sync_id, incident_id) of every incident still firing.
pub async fn open_incidents(pool: &Pool) -> Result<Vec<(String, String, String)>> {
    on_pool!(pool, notices::open_incidents())
}

/// Incidents, newest first, optionally of one state and/or one sync.
pub async fn incidents(
    pool: &Pool,
    state: Option<&str>,
    sync_id: Option<&str>,
    limit: i64,
) -> Result<Vec<IncidentRow>> {
    on_pool!(pool, notices::incidents(state, sync_id, limit))
}

pub async fn list(
    pool: &Pool,
    status: Option<&str>,
    sync_id: Option<&str>,
    limit: i64,
) -> Result<Vec<NoticeStatusRow>> {
    on_pool!(pool, notices::list(status, sync_id, limit))
}

/// Notices of one incident, in order.
pub async fn for_incident(pool: &Pool, incident_id: &str) -> Result<Vec<NoticeStatusRow>> {
    on_pool!(pool, notices::for_incident(incident_id))
}
