//! Queries of `store::silences`, compiled once per backend.

use super::{Pool, Tx};
use crate::store::Result;
use crate::store::silences::SilenceRow;

pub async fn insert(tx: &mut Tx, s: &SilenceRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO silences (id, rule, sync, labels, starts_ms, ends_ms, author, comment, \
         created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
pub async fn expire(tx: &mut Tx, id: &str, now: i64) -> Result<bool> {
    let found: Option<(i64,)> = sqlx::query_as("SELECT ends_ms FROM silences WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some((ends,)) = found else {
        return Ok(false);
    };
    if ends > now {
        sqlx::query("UPDATE silences SET ends_ms = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(true)
}

/// Silences that have not ended by `now` (active or future).
pub async fn current(pool: &Pool, now: i64) -> Result<Vec<SilenceRow>> {
    Ok(sqlx::query_as(
        "SELECT id, rule, sync, labels, starts_ms, ends_ms, author, comment, created_ms \
         FROM silences WHERE ends_ms > $1 ORDER BY starts_ms, id",
    )
    .bind(now)
    .fetch_all(pool)
    .await?)
}

/// Every silence, newest first, for listing (expired ones included when
/// `include_expired`).
pub async fn list(pool: &Pool, now: i64, include_expired: bool) -> Result<Vec<SilenceRow>> {
    let min_end = if include_expired { i64::MIN } else { now + 1 };
    Ok(sqlx::query_as(
        "SELECT id, rule, sync, labels, starts_ms, ends_ms, author, comment, created_ms \
         FROM silences WHERE ends_ms >= $1 ORDER BY created_ms DESC, id LIMIT 1000",
    )
    .bind(min_end)
    .fetch_all(pool)
    .await?)
}

pub async fn get(pool: &Pool, id: &str) -> Result<Option<SilenceRow>> {
    Ok(sqlx::query_as(
        "SELECT id, rule, sync, labels, starts_ms, ends_ms, author, comment, created_ms \
         FROM silences WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?)
}
