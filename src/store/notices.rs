//! The notice outbox and the incidents it tells about.
//!
//! Notices are inserted in the same transaction as the alert state change
//! that caused them, keyed by `notice_key` (incident + kind + sequence):
//! `INSERT OR IGNORE` on that key is the dedup that makes "sent at most once
//! per key" hold across restarts and retries.

use serde::Serialize;
use sqlx::{FromRow, QueryBuilder, Sqlite, SqlitePool};

use super::{Result, WriteTx};
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

/// Inserts notices; a key already present is left alone (dedup). A held
/// firing is recorded under its own key (`…:held`), so its later release is
/// a separate row and the history shows both.
pub async fn insert(tx: &mut WriteTx, rows: &[NoticeRow], now: Timestamp) -> Result<()> {
    for chunk in rows.chunks(2_000) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO notices (notice_key, incident_id, kind, seq, cause, rule, \
             sync_id, at_ms, status, held, reason, body, created_ms) ",
        );
        qb.push_values(chunk, |mut b, n| {
            b.push_bind(n.notice_key.as_str())
                .push_bind(n.incident_id.as_str())
                .push_bind(n.kind.as_str())
                .push_bind(n.seq)
                .push_bind(n.cause.as_deref())
                .push_bind(n.rule.as_str())
                .push_bind(n.sync_id.as_str())
                .push_bind(n.at_ms)
                .push_bind(n.status.as_str())
                .push_bind(n.held.as_deref())
                .push_bind(n.reason.as_deref())
                .push_bind(n.body.as_str())
                .push_bind(now.0);
        });
        qb.push(" ON CONFLICT (notice_key) DO NOTHING");
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
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

/// Records that an incident fired (or that its firing notice was held).
pub async fn open_incident(tx: &mut WriteTx, row: &IncidentRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO incidents (incident_id, rule, sync_id, cause, state, held, opened_ms, \
         since_ms, resolved_ms, condition) VALUES (?, ?, ?, ?, 'firing', ?, ?, ?, NULL, ?) \
         ON CONFLICT (incident_id) DO UPDATE SET held = excluded.held",
    )
    .bind(&row.incident_id)
    .bind(&row.rule)
    .bind(&row.sync_id)
    .bind(&row.cause)
    .bind(&row.held)
    .bind(row.opened_ms)
    .bind(row.since_ms)
    .bind(&row.condition)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn resolve_incident(tx: &mut WriteTx, incident_id: &str, at: i64) -> Result<()> {
    sqlx::query(
        "UPDATE incidents SET state = 'resolved', held = NULL, resolved_ms = ? \
         WHERE incident_id = ? AND state = 'firing'",
    )
    .bind(at)
    .bind(incident_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// (rule, sync_id, incident_id) of every incident still firing.
pub async fn open_incidents(pool: &SqlitePool) -> Result<Vec<(String, String, String)>> {
    Ok(
        sqlx::query_as("SELECT rule, sync_id, incident_id FROM incidents WHERE state = 'firing'")
            .fetch_all(pool)
            .await?,
    )
}

/// Incidents, newest first, optionally of one state and/or one sync.
pub async fn incidents(
    pool: &SqlitePool,
    state: Option<&str>,
    sync_id: Option<&str>,
    limit: i64,
) -> Result<Vec<IncidentRow>> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT incident_id, rule, sync_id, cause, state, held, opened_ms, since_ms, \
         resolved_ms, condition FROM incidents WHERE 1 = 1",
    );
    if let Some(s) = state {
        qb.push(" AND state = ").push_bind(s.to_string());
    }
    if let Some(s) = sync_id {
        qb.push(" AND sync_id = ").push_bind(s.to_string());
    }
    qb.push(" ORDER BY opened_ms DESC, incident_id LIMIT ")
        .push_bind(limit);
    Ok(qb.build_query_as().fetch_all(pool).await?)
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

pub async fn list(
    pool: &SqlitePool,
    status: Option<&str>,
    sync_id: Option<&str>,
    limit: i64,
) -> Result<Vec<NoticeStatusRow>> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
        "SELECT id, notice_key, incident_id, kind, cause, rule, sync_id, at_ms, status, held, \
         reason, created_ms FROM notices WHERE 1 = 1",
    );
    if let Some(s) = status {
        qb.push(" AND status = ").push_bind(s.to_string());
    }
    if let Some(s) = sync_id {
        qb.push(" AND sync_id = ").push_bind(s.to_string());
    }
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    Ok(qb.build_query_as().fetch_all(pool).await?)
}

/// Notices of one incident, in order.
pub async fn for_incident(pool: &SqlitePool, incident_id: &str) -> Result<Vec<NoticeStatusRow>> {
    Ok(sqlx::query_as(
        "SELECT id, notice_key, incident_id, kind, cause, rule, sync_id, at_ms, status, held, \
         reason, created_ms FROM notices WHERE incident_id = ? ORDER BY id",
    )
    .bind(incident_id)
    .fetch_all(pool)
    .await?)
}
