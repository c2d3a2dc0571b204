//! Queries of `store::cursors`, compiled once per backend.

use std::collections::HashMap;

use super::Pool;
use crate::store::Result;

/// Every cursor of one source, by vendor sync id.
pub async fn load(pool: &Pool, source: &str) -> Result<HashMap<String, String>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT sync_id, cursor FROM poll_cursors WHERE source = $1")
            .bind(source)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Stores (or replaces) one cursor.
pub async fn save(
    pool: &Pool,
    source: &str,
    sync_id: &str,
    cursor: &str,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO poll_cursors (source, sync_id, cursor, updated_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (source, sync_id) DO UPDATE SET cursor = excluded.cursor, \
         updated_ms = excluded.updated_ms",
    )
    .bind(source)
    .bind(sync_id)
    .bind(cursor)
    .bind(now_ms)
    .execute(pool)
    .await?;
    Ok(())
}
