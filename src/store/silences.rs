//! Silences (SPEC §3.5): stored whole; the engine decides what they hold.

use serde::Serialize;
use sqlx::SqlitePool;

use super::{Result, WriteTx};

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
    sqlx::query(
        "INSERT INTO silences (id, rule, sync, labels, starts_ms, ends_ms, author, comment, \
         created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&s.id)
    .bind(&s.rule)
    .bind(&s.sync)
    .bind(&s.labels)
    .bind(s.starts_ms)
    .bind(s.ends_ms)
    .bind(&s.author)
    .bind(&s.comment)
    .bind(s.created_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Ends a silence at `now` (if it had not ended already). Returns whether a
/// silence with that id exists.
pub async fn expire(tx: &mut WriteTx, id: &str, now: i64) -> Result<bool> {
    let found: Option<(i64,)> = sqlx::query_as("SELECT ends_ms FROM silences WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some((ends,)) = found else {
        return Ok(false);
    };
    if ends > now {
        sqlx::query("UPDATE silences SET ends_ms = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(true)
}

/// Silences that have not ended by `now` (active or future).
pub async fn current(pool: &SqlitePool, now: i64) -> Result<Vec<SilenceRow>> {
    Ok(sqlx::query_as(
        "SELECT id, rule, sync, labels, starts_ms, ends_ms, author, comment, created_ms \
         FROM silences WHERE ends_ms > ? ORDER BY starts_ms, id",
    )
    .bind(now)
    .fetch_all(pool)
    .await?)
}

/// Every silence, newest first, for listing (expired ones included when
/// `include_expired`).
pub async fn list(pool: &SqlitePool, now: i64, include_expired: bool) -> Result<Vec<SilenceRow>> {
    let min_end = if include_expired { i64::MIN } else { now + 1 };
    Ok(sqlx::query_as(
        "SELECT id, rule, sync, labels, starts_ms, ends_ms, author, comment, created_ms \
         FROM silences WHERE ends_ms >= ? ORDER BY created_ms DESC, id LIMIT 1000",
    )
    .bind(min_end)
    .fetch_all(pool)
    .await?)
}

pub async fn get(pool: &SqlitePool, id: &str) -> Result<Option<SilenceRow>> {
    Ok(sqlx::query_as(
        "SELECT id, rule, sync, labels, starts_ms, ends_ms, author, comment, created_ms \
         FROM silences WHERE id = ?",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
}
