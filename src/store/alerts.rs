//! Alert state: one row per (rule, sync) holding the engine's state as
//! JSON. The store does not interpret it; `app` converts to and from the
//! engine's types. Restarting loads these rows instead of replaying runs.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::{Result, WriteTx};
use crate::model::Timestamp;

/// A persisted alert: its key, its display state and the engine's state.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AlertRow {
    pub rule: String,
    pub sync_id: String,
    pub state_name: String,
    pub state: String,
}

/// Writes the given alerts (insert or replace).
pub async fn save(tx: &mut WriteTx, rows: &[AlertRow], now: Timestamp) -> Result<()> {
    for chunk in rows.chunks(5_000) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO alerts (rule, sync_id, state_name, state, updated_ms) ");
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.rule.as_str())
                .push_bind(r.sync_id.as_str())
                .push_bind(r.state_name.as_str())
                .push_bind(r.state.as_str())
                .push_bind(now.0);
        });
        qb.push(
            " ON CONFLICT (rule, sync_id) DO UPDATE SET state_name = excluded.state_name, \
             state = excluded.state, updated_ms = excluded.updated_ms",
        );
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Deletes alerts whose rule was removed.
pub async fn delete(tx: &mut WriteTx, keys: &[(String, String)]) -> Result<()> {
    for chunk in keys.chunks(5_000) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("DELETE FROM alerts WHERE (rule, sync_id) IN (");
        qb.push_values(chunk, |mut b, (r, s)| {
            b.push_bind(r.as_str()).push_bind(s.as_str());
        });
        qb.push(")");
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

pub async fn load_all(pool: &SqlitePool) -> Result<Vec<AlertRow>> {
    Ok(
        sqlx::query_as(
            "SELECT rule, sync_id, state_name, state FROM alerts ORDER BY rule, sync_id",
        )
        .fetch_all(pool)
        .await?,
    )
}

pub async fn for_sync(pool: &SqlitePool, sync_id: &str) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(
        "SELECT rule, sync_id, state_name, state FROM alerts WHERE sync_id = ? ORDER BY rule",
    )
    .bind(sync_id)
    .fetch_all(pool)
    .await?)
}

pub async fn with_state(pool: &SqlitePool, state_name: &str) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(
        "SELECT rule, sync_id, state_name, state FROM alerts WHERE state_name = ? \
         ORDER BY sync_id, rule",
    )
    .bind(state_name)
    .fetch_all(pool)
    .await?)
}

/// (rule, sync_id, state_name) of every alert, without the state itself.
pub async fn names_all(pool: &SqlitePool) -> Result<Vec<(String, String, String)>> {
    Ok(
        sqlx::query_as("SELECT rule, sync_id, state_name FROM alerts ORDER BY sync_id, rule")
            .fetch_all(pool)
            .await?,
    )
}
