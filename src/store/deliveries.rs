//! Delivery of notices to channels: the queue the outbox worker works.
//!
//! Rows are created with their notice (same transaction) and only ever
//! change status. `sending` marks an attempt in flight: if the process dies
//! there, the row is retried at start-up (the message carries the same
//! Message-ID / Idempotency-Key, so a receiver can drop the duplicate).

use serde::Serialize;
use sqlx::FromRow;

use super::{Pool, Result, WriteTx, on_pool, on_tx};
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

pub async fn insert(tx: &mut WriteTx, rows: &[NewDelivery<'_>]) -> Result<()> {
    on_tx!(tx, deliveries::insert(rows))
}

/// Channels an incident's earlier notices went to (for a notice whose rule
/// no longer exists, such as the resolved notice of a removed rule).
pub async fn channels_of_incident(tx: &mut WriteTx, incident_id: &str) -> Result<Vec<String>> {
    on_tx!(tx, deliveries::channels_of_incident(incident_id))
}

/// The deliveries of `channel` that may be attempted at `now`: for each
/// alert only its oldest unfinished delivery (notices of one alert go out
/// in order, so a later one waits while an earlier one is retried).
pub async fn due(pool: &Pool, channel: &str, now: Timestamp, limit: i64) -> Result<Vec<Due>> {
    on_pool!(pool, deliveries::due(channel, now, limit))
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
    on_pool!(pool, deliveries::group_pending(channel, group_key, limit))
}

/// The earliest time any unfinished delivery of `channel` may be tried.
pub async fn next_wakeup(pool: &Pool, channel: &str) -> Result<Option<i64>> {
    on_pool!(pool, deliveries::next_wakeup(channel))
}

/// Channels with unfinished deliveries (so a channel removed from the
/// config still shows up, and its rows can be reported).
pub async fn channels_with_work(pool: &Pool) -> Result<Vec<String>> {
    on_pool!(pool, deliveries::channels_with_work())
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
    on_pool!(pool, deliveries::claim(ids, message_id, now, lease_until))
}

/// Sets the Message-ID of claimed deliveries (when a claim took only part
/// of a group, the message covers fewer notices).
pub async fn set_message_id(pool: &Pool, ids: &[i64], message_id: &str) -> Result<()> {
    on_pool!(pool, deliveries::set_message_id(ids, message_id))
}

pub async fn mark_sent(pool: &Pool, ids: &[i64], now: Timestamp) -> Result<()> {
    on_pool!(pool, deliveries::mark_sent(ids, now))
}

/// A transient failure: retry at `next_attempt`.
pub async fn mark_retry(
    pool: &Pool,
    ids: &[i64],
    next_attempt: Timestamp,
    error: &str,
) -> Result<()> {
    on_pool!(pool, deliveries::mark_retry(ids, next_attempt, error))
}

/// A permanent failure: recorded with the reason, never retried.
pub async fn mark_failed(pool: &Pool, ids: &[i64], error: &str) -> Result<()> {
    on_pool!(pool, deliveries::mark_failed(ids, error))
}

pub async fn for_notices(pool: &Pool, notice_ids: &[i64]) -> Result<Vec<DeliveryRow>> {
    on_pool!(pool, deliveries::for_notices(notice_ids))
}

/// Outbox depth: unfinished deliveries and the age of the oldest.
pub async fn depth(pool: &Pool) -> Result<(i64, Option<i64>)> {
    on_pool!(pool, deliveries::depth())
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite::deliveries::{DUE_SQL, GROUP_PENDING_SQL};

    /// The plan of a statement, one `detail` per line.
    async fn plan(pool: &sqlx::SqlitePool, sql: &str, binds: &[&str]) -> String {
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
        .execute(store.writer().as_sqlite().expect("sqlite"))
        .await
        .expect("notices");
        sqlx::query(
            "INSERT INTO deliveries (notice_id, channel, rule, sync_id, group_key, status, \
               due_ms, next_attempt_ms) \
             SELECT id, 'email:x', rule, sync_id, notice_key, \
               CASE WHEN id <= 2000 THEN 'sent' ELSE 'pending' END, 1, 1 FROM notices",
        )
        .execute(store.writer().as_sqlite().expect("sqlite"))
        .await
        .expect("deliveries");
        sqlx::query("ANALYZE")
            .execute(store.writer().as_sqlite().expect("sqlite"))
            .await
            .expect("analyze");
        let due = plan(
            store.reader().as_sqlite().expect("sqlite"),
            DUE_SQL,
            &["email:x", "0", "1"],
        )
        .await;
        assert!(
            due.contains("SEARCH d USING INDEX deliveries_unfinished"),
            "{due}"
        );
        let group = plan(
            store.reader().as_sqlite().expect("sqlite"),
            GROUP_PENDING_SQL,
            &["email:x", "g", "100"],
        )
        .await;
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
