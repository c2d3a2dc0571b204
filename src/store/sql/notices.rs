//! Queries of `store::notices`, compiled once per backend.

use sqlx::QueryBuilder;

use super::{Db, Pool, Tx};
use crate::model::Timestamp;
use crate::store::Result;
use crate::store::notices::{IncidentRow, NoticeRow, NoticeStatusRow};

/// Inserts notices; a key already present is left alone (dedup). A held
/// firing is recorded under its own key (`…:held`), so its later release is
/// a separate row and the history shows both.
pub async fn insert(tx: &mut Tx, rows: &[NoticeRow], now: Timestamp) -> Result<()> {
    for chunk in rows.chunks(2_000) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
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

/// Records that an incident fired (or that its firing notice was held).
pub async fn open_incident(tx: &mut Tx, row: &IncidentRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO incidents (incident_id, rule, sync_id, cause, state, held, opened_ms, \
         since_ms, resolved_ms, condition) VALUES ($1, $2, $3, $4, 'firing', $5, $6, $7, NULL, $8) \
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

pub async fn resolve_incident(tx: &mut Tx, incident_id: &str, at: i64) -> Result<()> {
    sqlx::query(
        "UPDATE incidents SET state = 'resolved', held = NULL, resolved_ms = $1 \
         WHERE incident_id = $2 AND state = 'firing'",
    )
    .bind(at)
    .bind(incident_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// (rule, sync_id, incident_id) of every incident still firing.
pub async fn open_incidents(pool: &Pool) -> Result<Vec<(String, String, String)>> {
    Ok(
        sqlx::query_as("SELECT rule, sync_id, incident_id FROM incidents WHERE state = 'firing'")
            .fetch_all(pool)
            .await?,
    )
}

/// Incidents, newest first, optionally of one state and/or one sync.
pub async fn incidents(
    pool: &Pool,
    state: Option<&str>,
    sync_id: Option<&str>,
    limit: i64,
) -> Result<Vec<IncidentRow>> {
    let mut qb: QueryBuilder<Db> = QueryBuilder::new(
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

pub async fn list(
    pool: &Pool,
    status: Option<&str>,
    sync_id: Option<&str>,
    limit: i64,
) -> Result<Vec<NoticeStatusRow>> {
    let mut qb: QueryBuilder<Db> = QueryBuilder::new(
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
pub async fn for_incident(pool: &Pool, incident_id: &str) -> Result<Vec<NoticeStatusRow>> {
    Ok(sqlx::query_as(
        "SELECT id, notice_key, incident_id, kind, cause, rule, sync_id, at_ms, status, held, \
         reason, created_ms FROM notices WHERE incident_id = $1 ORDER BY id",
    )
    .bind(incident_id)
    .fetch_all(pool)
    .await?)
}
