//! Alert-state queries (see `store::alerts`).

use sqlx::QueryBuilder;

use super::{Db, Pool, Tx};
use crate::model::Timestamp;
use crate::store::Result;
use crate::store::alerts::AlertRow;

/// Writes the given alerts (insert or replace).
pub async fn save(tx: &mut Tx, rows: &[AlertRow], now: Timestamp, generation: i64) -> Result<()> {
    for chunk in rows.chunks(5_000) {
        let mut qb: QueryBuilder<Db> = QueryBuilder::new(
            "INSERT INTO alerts (rule, sync_id, state_name, state, updated_ms, gen) ",
        );
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(r.rule.as_str())
                .push_bind(r.sync_id.as_str())
                .push_bind(r.state_name.as_str())
                .push_bind(r.state.as_str())
                .push_bind(now.0)
                .push_bind(generation);
        });
        qb.push(
            " ON CONFLICT (rule, sync_id) DO UPDATE SET state_name = excluded.state_name, \
             state = excluded.state, updated_ms = excluded.updated_ms, gen = excluded.gen",
        );
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Deletes alerts whose rule was removed.
pub async fn delete(tx: &mut Tx, keys: &[(String, String)]) -> Result<()> {
    for chunk in keys.chunks(5_000) {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("DELETE FROM alerts WHERE (rule, sync_id) IN (");
        qb.push_values(chunk, |mut b, (r, s)| {
            b.push_bind(r.as_str()).push_bind(s.as_str());
        });
        qb.push(")");
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

pub async fn load_all(pool: &Pool) -> Result<Vec<AlertRow>> {
    Ok(
        sqlx::query_as(
            "SELECT rule, sync_id, state_name, state FROM alerts ORDER BY rule, sync_id",
        )
        .fetch_all(pool)
        .await?,
    )
}

pub async fn for_sync(pool: &Pool, sync_id: &str) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(
        "SELECT rule, sync_id, state_name, state FROM alerts WHERE sync_id = $1 ORDER BY rule",
    )
    .bind(sync_id)
    .fetch_all(pool)
    .await?)
}

pub async fn with_state(pool: &Pool, state_name: &str) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(
        "SELECT rule, sync_id, state_name, state FROM alerts WHERE state_name = $1 \
         ORDER BY sync_id, rule",
    )
    .bind(state_name)
    .fetch_all(pool)
    .await?)
}

/// (rule, sync_id, state_name) of every alert, without the state itself.
pub async fn names_all(pool: &Pool) -> Result<Vec<(String, String, String)>> {
    Ok(
        sqlx::query_as("SELECT rule, sync_id, state_name FROM alerts ORDER BY sync_id, rule")
            .fetch_all(pool)
            .await?,
    )
}

/// Alerts written by generations after `generation` (another replica's
/// commits since this one's last).
pub async fn changed_since(pool: &Pool, generation: i64) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(
        "SELECT rule, sync_id, state_name, state FROM alerts WHERE gen > $1 ORDER BY rule, sync_id",
    )
    .bind(generation)
    .fetch_all(pool)
    .await?)
}
