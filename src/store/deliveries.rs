//! Delivery of notices to channels: the queue the outbox worker works.
//!
//! Rows are created with their notice (same transaction) and only ever
//! change status. `sending` marks an attempt in flight: if the process dies
//! there, the row is retried at start-up (the message carries the same
//! Message-ID / Idempotency-Key, so a receiver can drop the duplicate).

use serde::Serialize;
use sqlx::{FromRow, QueryBuilder, Sqlite, SqlitePool};

use super::{Result, WriteTx};
use crate::model::Timestamp;

/// A delivery to create for a notice (found by key).
pub struct NewDelivery<'a> {
    pub notice_key: &'a str,
    pub channel: &'a str,
    pub rule: &'a str,
    pub sync_id: &'a str,
    pub group_key: String,
    pub due: Timestamp,
}

pub async fn insert(tx: &mut WriteTx, rows: &[NewDelivery<'_>]) -> Result<()> {
    for chunk in rows.chunks(4_000) {
        let mut qb: QueryBuilder<Sqlite> =
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
pub async fn channels_of_incident(tx: &mut WriteTx, incident_id: &str) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT d.channel FROM deliveries d JOIN notices n ON n.id = d.notice_id \
         WHERE n.incident_id = ? ORDER BY d.channel",
    )
    .bind(incident_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(c,)| c).collect())
}

/// A delivery ready to work on, with its notice's JSON body.
#[derive(Debug, Clone, FromRow)]
pub struct Due {
    pub id: i64,
    pub notice_id: i64,
    pub notice_key: String,
    pub channel: String,
    pub rule: String,
    pub sync_id: String,
    pub group_key: String,
    pub attempts: i64,
    pub due_ms: i64,
    pub body: String,
}

/// The oldest due delivery of each alert. `status IN ('pending', 'sending')`
/// is spelled as in the partial index `deliveries_unfinished` (migration
/// 0006), which SQLite then walks in notice order: only unfinished rows,
/// never the sent history (a test holds the plan).
const DUE_SQL: &str = "SELECT d.id, d.notice_id, n.notice_key, d.channel, d.rule, \
     d.sync_id, d.group_key, d.attempts, d.due_ms, n.body \
     FROM deliveries d JOIN notices n ON n.id = d.notice_id \
     WHERE d.channel = ? AND d.status IN ('pending', 'sending') AND d.next_attempt_ms <= ? \
       AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.channel = d.channel \
           AND e.rule = d.rule AND e.sync_id = d.sync_id \
           AND e.status IN ('pending', 'sending') AND e.notice_id < d.notice_id) \
     ORDER BY d.notice_id LIMIT ?";

/// A group's never-attempted deliveries, through `deliveries_by_group`.
const GROUP_PENDING_SQL: &str = "SELECT d.id, d.notice_id, n.notice_key, d.channel, d.rule, \
     d.sync_id, d.group_key, d.attempts, d.due_ms, n.body \
     FROM deliveries d JOIN notices n ON n.id = d.notice_id \
     WHERE d.channel = ? AND d.group_key = ? AND d.status = 'pending' AND d.attempts = 0 \
       AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.channel = d.channel \
           AND e.rule = d.rule AND e.sync_id = d.sync_id \
           AND e.status IN ('pending', 'sending') AND e.notice_id < d.notice_id) \
     ORDER BY d.notice_id LIMIT ?";

/// The deliveries of `channel` that may be attempted at `now`: for each
/// alert only its oldest unfinished delivery (notices of one alert go out
/// in order, so a later one waits while an earlier one is retried).
pub async fn due(pool: &SqlitePool, channel: &str, now: Timestamp, limit: i64) -> Result<Vec<Due>> {
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
    pool: &SqlitePool,
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

/// The earliest time any unfinished delivery of `channel` may be tried.
pub async fn next_wakeup(pool: &SqlitePool, channel: &str) -> Result<Option<i64>> {
    let row: (Option<i64>,) = sqlx::query_as(
        "SELECT MIN(next_attempt_ms) FROM deliveries WHERE channel = ? \
         AND status IN ('pending', 'sending')",
    )
    .bind(channel)
    .fetch_one(pool)
    .await?;
    Ok(row.0)
}

/// Channels with unfinished deliveries (so a channel removed from the
/// config still shows up, and its rows can be reported).
pub async fn channels_with_work(pool: &SqlitePool) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT channel FROM deliveries WHERE status IN ('pending', 'sending')",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(c,)| c).collect())
}

/// Marks an attempt as started (before the send: order is dedup → send →
/// record).
pub async fn mark_sending(pool: &SqlitePool, ids: &[i64], message_id: &str) -> Result<()> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
        "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, message_id = ",
    );
    qb.push_bind(message_id.to_string());
    push_ids(&mut qb, ids);
    qb.build().execute(pool).await?;
    Ok(())
}

pub async fn mark_sent(pool: &SqlitePool, ids: &[i64], now: Timestamp) -> Result<()> {
    let mut qb: QueryBuilder<Sqlite> =
        QueryBuilder::new("UPDATE deliveries SET status = 'sent', last_error = NULL, sent_ms = ");
    qb.push_bind(now.0);
    push_ids(&mut qb, ids);
    qb.build().execute(pool).await?;
    refresh_notice_status(pool, ids).await
}

/// A transient failure: retry at `next_attempt`.
pub async fn mark_retry(
    pool: &SqlitePool,
    ids: &[i64],
    next_attempt: Timestamp,
    error: &str,
) -> Result<()> {
    let mut qb: QueryBuilder<Sqlite> =
        QueryBuilder::new("UPDATE deliveries SET status = 'pending', next_attempt_ms = ");
    qb.push_bind(next_attempt.0)
        .push(", last_error = ")
        .push_bind(error.to_string());
    push_ids(&mut qb, ids);
    qb.build().execute(pool).await?;
    Ok(())
}

/// A permanent failure: recorded with the reason, never retried.
pub async fn mark_failed(pool: &SqlitePool, ids: &[i64], error: &str) -> Result<()> {
    let mut qb: QueryBuilder<Sqlite> =
        QueryBuilder::new("UPDATE deliveries SET status = 'failed', last_error = ");
    qb.push_bind(error.to_string());
    push_ids(&mut qb, ids);
    qb.build().execute(pool).await?;
    refresh_notice_status(pool, ids).await
}

fn push_ids(qb: &mut QueryBuilder<Sqlite>, ids: &[i64]) {
    qb.push(" WHERE id IN (");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(*id);
    }
    sep.push_unseparated(")");
}

/// A notice is `sent` when every delivery is sent, `failed` when one failed
/// for good and none is left to try.
async fn refresh_notice_status(pool: &SqlitePool, delivery_ids: &[i64]) -> Result<()> {
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
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

/// Deliveries of a notice, for the API.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct DeliveryRow {
    pub notice_id: i64,
    pub channel: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_ms: Option<i64>,
    pub next_attempt_ms: i64,
}

pub async fn for_notices(pool: &SqlitePool, notice_ids: &[i64]) -> Result<Vec<DeliveryRow>> {
    if notice_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
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
pub async fn depth(pool: &SqlitePool) -> Result<(i64, Option<i64>)> {
    Ok(sqlx::query_as(
        "SELECT COUNT(*), MIN(due_ms) FROM deliveries WHERE status IN ('pending', 'sending')",
    )
    .fetch_one(pool)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of a statement, one `detail` per line.
    async fn plan(pool: &SqlitePool, sql: &str, binds: &[&str]) -> String {
        let sql = format!("EXPLAIN QUERY PLAN {sql}");
        let mut q = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(*b);
        }
        let rows = q.fetch_all(pool).await.expect("plan");
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    #[tokio::test]
    async fn the_queue_reads_search_unfinished_rows_and_never_scan_deliveries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = super::super::Store::open(&dir.path().join("t.db").display().to_string())
            .await
            .expect("store");
        // A queue with a long sent history and a backlog, with statistics
        // (`PRAGMA optimize` runs ANALYZE on such tables).
        sqlx::query(
            "WITH RECURSIVE c (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000) \
             INSERT INTO notices (id, notice_key, incident_id, kind, seq, rule, sync_id, at_ms, \
               status, body, created_ms) \
             SELECT i, 'k' || i, 'i' || i, 'firing', 1, 'r', 's' || i, 1, 'pending', '{}', 1 \
             FROM c",
        )
        .execute(store.writer())
        .await
        .expect("notices");
        sqlx::query(
            "INSERT INTO deliveries (notice_id, channel, rule, sync_id, group_key, status, \
               due_ms, next_attempt_ms) \
             SELECT id, 'email:x', rule, sync_id, notice_key, \
               CASE WHEN id <= 2000 THEN 'sent' ELSE 'pending' END, 1, 1 FROM notices",
        )
        .execute(store.writer())
        .await
        .expect("deliveries");
        sqlx::query("ANALYZE")
            .execute(store.writer())
            .await
            .expect("analyze");
        let due = plan(store.reader(), DUE_SQL, &["email:x", "0", "1"]).await;
        assert!(
            due.contains("SEARCH d USING INDEX deliveries_unfinished"),
            "{due}"
        );
        let group = plan(store.reader(), GROUP_PENDING_SQL, &["email:x", "g", "100"]).await;
        assert!(
            group.contains("SEARCH d USING INDEX deliveries_by_group"),
            "{group}"
        );
        for p in [&due, &group] {
            assert!(!p.contains("SCAN d"), "{p}");
        }
        store.close().await;
    }
}
