//! The shared-state generation and the writer lock (PostgreSQL; the SQLite
//! copy of this module is never called).
#![allow(dead_code)]

use super::{Db, Tx};
use crate::store::Result;

/// Takes the writer lock for the rest of the transaction.
pub async fn lock(tx: &mut Tx, key: i64) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The generation and the last reset generation, as committed (or as this
/// transaction sees them).
pub async fn current<'e, E>(e: E) -> Result<(i64, i64)>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    Ok(
        sqlx::query_as("SELECT gen, reset_gen FROM writer_epoch WHERE id = 1")
            .fetch_one(e)
            .await?,
    )
}

/// Bumps the generation (and makes it a reset when `reset`); returns the
/// new one.
pub async fn bump<'e, E>(e: E, reset: bool) -> Result<i64>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let (generation,): (i64,) = sqlx::query_as(
        "UPDATE writer_epoch SET gen = gen + 1, \
         reset_gen = CASE WHEN $1 THEN gen + 1 ELSE reset_gen END \
         WHERE id = 1 RETURNING gen",
    )
    .bind(reset)
    .fetch_one(e)
    .await?;
    Ok(generation)
}
