//! The shared-state generation and the writer lock (PostgreSQL; the SQLite
//! copy of this module is never called).
#![allow(dead_code)]

use super::Db;
use crate::store::Result;

/// Takes the writer lock for the rest of the transaction.
pub async fn lock(tx: &mut sqlx::Transaction<'static, Db>, key: i64) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The generation as committed (or as this transaction sees it).
pub async fn current<'e, E>(e: E) -> Result<i64>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let (generation,): (i64,) = sqlx::query_as("SELECT gen FROM writer_epoch WHERE id = 1")
        .fetch_one(e)
        .await?;
    Ok(generation)
}

/// Bumps the generation; returns the new one.
pub async fn bump<'e, E>(e: E) -> Result<i64>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let (generation,): (i64,) =
        sqlx::query_as("UPDATE writer_epoch SET gen = gen + 1 WHERE id = 1 RETURNING gen")
            .fetch_one(e)
            .await?;
    Ok(generation)
}
