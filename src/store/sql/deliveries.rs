//! Queries of `store::deliveries`, compiled once per backend.

use sqlx::QueryBuilder;

use super::{Db, PG, Pool, Tx};
use crate::model::Timestamp;
use crate::store::Result;
use crate::store::deliveries::{DeliveryRow, Due, NewDelivery};

pub async fn insert(tx: &mut Tx, rows: &[NewDelivery<'_>]) -> Result<()> {
    for chunk in rows.chunks(4_000) {
        let mut qb: QueryBuilder<Db> =
            QueryBuilder::new("WITH v (notice_key, channel, rule, sync_id, group_key, due) AS (");
        qb.push_values(chunk, |mut b, d| {
            b.push_bind(d.notice_key)
                .push_bind(d.channel)
                .push_bind(d.rule)
                .push_bind(d.sync_id)
                .push_bind(d.group_key.as_str())
                .push_bind(d.due.0);
        });
        qb.push(
            ") INSERT INTO deliveries (notice_id, channel, rule, sync_id, group_key, status, \
             due_ms, next_attempt_ms) \
             SELECT n.id, v.channel, v.rule, v.sync_id, v.group_key, 'pending', v.due, v.due \
             FROM v JOIN notices n ON n.notice_key = v.notice_key WHERE true \
             ON CONFLICT (notice_id, channel) DO NOTHING",
        );
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Channels an incident's earlier notices went to (for a notice whose rule
/// no longer exists, such as the resolved notice of a removed rule).
pub async fn channels_of_incident(tx: &mut Tx, incident_id: &str) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT d.channel FROM deliveries d JOIN notices n ON n.id = d.notice_id \
         WHERE n.incident_id = $1 ORDER BY d.channel",
    )
    .bind(incident_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(c,)| c).collect())
}

/// The oldest due delivery of each alert: pending, or being sent under a
/// claim that has run out (its replica died or hung). `status IN ('pending', 'sending')`
/// is spelled as in the partial index `deliveries_unfinished` (migration
/// 0006), which SQLite then walks in notice order: only unfinished rows,
/// never the sent history (a test holds the plan).
pub(crate) const DUE_SQL: &str = "SELECT d.id, d.notice_id, n.notice_key, d.channel, d.rule, \
     d.sync_id, d.group_key, d.attempts, d.due_ms, n.body \
     FROM deliveries d JOIN notices n ON n.id = d.notice_id \
     WHERE d.channel = $1 AND d.status IN ('pending', 'sending') AND d.next_attempt_ms <= $2 \
       AND (d.status = 'pending' OR d.lease_until_ms <= $2) \
       AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.channel = d.channel \
           AND e.rule = d.rule AND e.sync_id = d.sync_id \
           AND e.status IN ('pending', 'sending') AND e.notice_id < d.notice_id) \
     ORDER BY d.notice_id LIMIT $3";

/// A group's never-attempted deliveries, through `deliveries_by_group`.
pub(crate) const GROUP_PENDING_SQL: &str = "SELECT d.id, d.notice_id, n.notice_key, d.channel, d.rule, \
     d.sync_id, d.group_key, d.attempts, d.due_ms, n.body \
     FROM deliveries d JOIN notices n ON n.id = d.notice_id \
     WHERE d.channel = $1 AND d.group_key = $2 AND d.status = 'pending' AND d.attempts = 0 \
       AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.channel = d.channel \
           AND e.rule = d.rule AND e.sync_id = d.sync_id \
           AND e.status IN ('pending', 'sending') AND e.notice_id < d.notice_id) \
     ORDER BY d.notice_id LIMIT $3";

/// The deliveries of `channel` that may be attempted at `now`: for each
/// alert only its oldest unfinished delivery (notices of one alert go out
/// in order, so a later one waits while an earlier one is retried).
pub async fn due(pool: &Pool, channel: &str, now: Timestamp, limit: i64) -> Result<Vec<Due>> {
    Ok(sqlx::query_as(DUE_SQL)
        .bind(channel)
        .bind(now.0)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// Deliveries of `channel` in `group_key` that were never attempted, due
/// or not: when a group goes out, everything queued in it goes along
/// (SPEC §3.6 grouping; also how a rate-limited channel batches a storm).
/// Still only the oldest unfinished delivery of each alert.
pub async fn group_pending(
    pool: &Pool,
    channel: &str,
    group_key: &str,
    limit: i64,
) -> Result<Vec<Due>> {
    Ok(sqlx::query_as(GROUP_PENDING_SQL)
        .bind(channel)
        .bind(group_key)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// The earliest time any unfinished delivery of `channel` may be tried: a
/// row being sent counts from when its claim runs out.
pub async fn next_wakeup(pool: &Pool, channel: &str) -> Result<Option<i64>> {
    let row: (Option<i64>,) = sqlx::query_as(
        "SELECT MIN(CASE WHEN status = 'sending' AND lease_until_ms > next_attempt_ms \
         THEN lease_until_ms ELSE next_attempt_ms END) FROM deliveries WHERE channel = $1 \
         AND status IN ('pending', 'sending')",
    )
    .bind(channel)
    .fetch_one(pool)
    .await?;
    Ok(row.0)
}

/// Channels with unfinished deliveries (so a channel removed from the
/// config still shows up, and its rows can be reported).
pub async fn channels_with_work(pool: &Pool) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT channel FROM deliveries WHERE status IN ('pending', 'sending')",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(c,)| c).collect())
}

/// Claims deliveries for one attempt (before the send: order is claim →
/// send → record): each row still pending, or sending under a claim that
/// ran out by `now`, becomes `sending` until `lease_until`. Returns the ids
/// this call claimed; a row another replica claimed first is left out. On
/// PostgreSQL the rows are locked with `FOR UPDATE SKIP LOCKED`, so
/// replicas claiming at once never wait on each other.
pub async fn claim(
    pool: &Pool,
    ids: &[i64],
    message_id: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Vec<i64>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb: QueryBuilder<Db> = QueryBuilder::new(
        "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, message_id = ",
    );
    qb.push_bind(message_id.to_string())
        .push(", lease_until_ms = ")
        .push_bind(lease_until.0)
        .push(" WHERE id IN (SELECT id FROM deliveries WHERE id IN (");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    sep.push_unseparated(") AND (status = 'pending' OR (status = 'sending' AND lease_until_ms <= ");
    qb.push_bind(now.0);
    qb.push(CLAIM_TAIL);
    let rows: Vec<(i64,)> = qb.build_query_as().fetch_all(pool).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

const CLAIM_TAIL: &str = if PG {
    ")) FOR UPDATE SKIP LOCKED) RETURNING id"
} else {
    "))) RETURNING id"
};

/// Sets the Message-ID of claimed deliveries (when a claim took only part
/// of a group, the message covers fewer notices).
pub async fn set_message_id(pool: &Pool, ids: &[i64], message_id: &str) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut qb: QueryBuilder<Db> = QueryBuilder::new("UPDATE deliveries SET message_id = ");
    qb.push_bind(message_id.to_string());
    push_ids(&mut qb, ids);
    qb.build().execute(pool).await?;
    Ok(())
}

/// Ends every claim (SQLite at start-up: one process owns the file, so a
/// delivery it was sending when it stopped is retried at once).
#[allow(dead_code)]
pub async fn release_claims(pool: &Pool) -> Result<()> {
    sqlx::query("UPDATE deliveries SET lease_until_ms = 0 WHERE status = 'sending'")
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn mark_sent(pool: &Pool, ids: &[i64], now: Timestamp) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut qb: QueryBuilder<Db> =
        QueryBuilder::new("UPDATE deliveries SET status = 'sent', last_error = NULL, sent_ms = ");
    qb.push_bind(now.0);
    push_ids(&mut qb, ids);
    qb.build().execute(pool).await?;
    refresh_notice_status(pool, ids).await
}

/// A transient failure: retry at `next_attempt`.
pub async fn mark_retry(
    pool: &Pool,
    ids: &[i64],
    next_attempt: Timestamp,
    error: &str,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut qb: QueryBuilder<Db> =
        QueryBuilder::new("UPDATE deliveries SET status = 'pending', next_attempt_ms = ");
    qb.push_bind(next_attempt.0)
        .push(", last_error = ")
        .push_bind(error.to_string());
    push_ids(&mut qb, ids);
    qb.build().execute(pool).await?;
    Ok(())
}

/// A permanent failure: recorded with the reason, never retried.
pub async fn mark_failed(pool: &Pool, ids: &[i64], error: &str) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut qb: QueryBuilder<Db> =
        QueryBuilder::new("UPDATE deliveries SET status = 'failed', last_error = ");
    qb.push_bind(error.to_string());
    push_ids(&mut qb, ids);
    qb.build().execute(pool).await?;
    refresh_notice_status(pool, ids).await
}

fn push_ids(qb: &mut QueryBuilder<Db>, ids: &[i64]) {
    qb.push(" WHERE id IN (");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    sep.push_unseparated(")");
}

/// A notice is `sent` when every delivery is sent, `failed` when one failed
/// for good and none is left to try.
async fn refresh_notice_status(pool: &Pool, delivery_ids: &[i64]) -> Result<()> {
    let mut qb: QueryBuilder<Db> = QueryBuilder::new(
        "UPDATE notices SET status = CASE \
           WHEN NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.notice_id = notices.id \
                            AND d.status != 'sent') THEN 'sent' \
           WHEN NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.notice_id = notices.id \
                            AND d.status IN ('pending', 'sending')) THEN 'failed' \
           ELSE status END \
         WHERE id IN (SELECT notice_id FROM deliveries",
    );
    push_ids(&mut qb, delivery_ids);
    qb.push(")");
    qb.build().execute(pool).await?;
    Ok(())
}

pub async fn for_notices(pool: &Pool, notice_ids: &[i64]) -> Result<Vec<DeliveryRow>> {
    if notice_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb: QueryBuilder<Db> = QueryBuilder::new(
        "SELECT notice_id, channel, status, attempts, last_error, sent_ms, next_attempt_ms \
         FROM deliveries WHERE notice_id IN (",
    );
    let mut sep = qb.separated(", ");
    for id in notice_ids {
        sep.push_bind(*id);
    }
    sep.push_unseparated(") ORDER BY notice_id, channel");
    Ok(qb.build_query_as().fetch_all(pool).await?)
}

/// Outbox depth: unfinished deliveries and the age of the oldest.
pub async fn depth(pool: &Pool) -> Result<(i64, Option<i64>)> {
    Ok(sqlx::query_as(
        "SELECT COUNT(*), MIN(due_ms) FROM deliveries WHERE status IN ('pending', 'sending')",
    )
    .fetch_one(pool)
    .await?)
}
