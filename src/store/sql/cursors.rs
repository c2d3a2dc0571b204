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

/// Takes or renews the poll lease of `source` for `owner` until `until`:
/// granted when no replica holds it, `owner` already does, or the holder's
/// lease ran out by `now`.
pub async fn claim_source(
    pool: &Pool,
    source: &str,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "INSERT INTO poll_leases (source, owner, until_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (source) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms \
         WHERE poll_leases.owner = excluded.owner OR poll_leases.until_ms <= $4 \
         RETURNING owner",
    )
    .bind(source)
    .bind(owner)
    .bind(until)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// Gives up `owner`'s poll lease of `source` (a replica stopping cleanly).
pub async fn release_source(pool: &Pool, source: &str, owner: &str) -> Result<()> {
    sqlx::query("DELETE FROM poll_leases WHERE source = $1 AND owner = $2")
        .bind(source)
        .bind(owner)
        .execute(pool)
        .await?;
    Ok(())
}

/// Ends every poll lease (SQLite at start-up: one process owns the file).
#[allow(dead_code)]
pub async fn release_all(pool: &Pool) -> Result<()> {
    sqlx::query("DELETE FROM poll_leases").execute(pool).await?;
    Ok(())
}
