//! Delivery of notices to channels: the queue the outbox worker works.
//!
//! Rows are created with their notice (same transaction) and only ever
//! change status. `sending` marks an attempt in flight, claimed until
//! `lease_until_ms`: if its process dies there, the row is retried when the
//! lease runs out (at once on SQLite, whose store ends every claim when it
//! opens). The message carries the same Message-ID / Idempotency-Key, so a
//! receiver can drop the duplicate.

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
    use super::{NewDelivery, Timestamp};
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

    /// One pending delivery of a fresh notice, returning its id.
    async fn one_delivery(store: &crate::store::Store, key: &str) -> i64 {
        let mut tx = store.begin().await.expect("begin");
        crate::store::notices::insert(
            &mut tx,
            &[crate::store::notices::NoticeRow {
                notice_key: key.into(),
                incident_id: format!("i-{key}"),
                kind: "firing".into(),
                seq: 0,
                cause: None,
                rule: "r".into(),
                sync_id: format!("s-{key}"),
                at_ms: 1,
                status: "pending".into(),
                held: None,
                reason: None,
                body: "{}".into(),
            }],
            Timestamp(1),
        )
        .await
        .expect("notice");
        super::insert(
            &mut tx,
            &[NewDelivery {
                notice_key: key,
                channel: "email:x",
                rule: "r",
                sync_id: &format!("s-{key}"),
                group_key: key.into(),
                due: Timestamp(1),
            }],
        )
        .await
        .expect("delivery");
        tx.commit().await.expect("commit");
        let due = super::due(store.reader(), "email:x", Timestamp(1), 10)
            .await
            .expect("due");
        due.iter()
            .find(|d| d.notice_key == key)
            .map(|d| d.id)
            .expect("the new delivery is due")
    }

    #[tokio::test]
    async fn a_claim_is_exclusive_until_its_lease_runs_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        for store in crate::store::testing::stores(dir.path()).await {
            let id = one_delivery(&store, "k1").await;
            let w = store.writer();
            let got = super::claim(w, &[id], "<m>", Timestamp(1_000), Timestamp(2_000))
                .await
                .expect("claim");
            assert_eq!(got, vec![id]);
            // Held: neither claimed again nor due while the lease runs.
            let again = super::claim(w, &[id], "<m>", Timestamp(1_500), Timestamp(2_500))
                .await
                .expect("claim");
            assert!(again.is_empty(), "{again:?}");
            let due = super::due(store.reader(), "email:x", Timestamp(1_500), 10)
                .await
                .expect("due");
            assert!(due.is_empty(), "a claimed row is not due: {due:?}");
            assert_eq!(
                super::next_wakeup(store.reader(), "email:x")
                    .await
                    .expect("wake"),
                Some(2_000),
                "the worker wakes when the claim runs out"
            );
            // The claimer died: once the lease is over the row is due again.
            let due = super::due(store.reader(), "email:x", Timestamp(2_000), 10)
                .await
                .expect("due");
            assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), vec![id]);
            assert_eq!(due[0].attempts, 1);
            let retaken = super::claim(w, &[id], "<m>", Timestamp(2_000), Timestamp(3_000))
                .await
                .expect("claim");
            assert_eq!(retaken, vec![id]);
            super::mark_sent(w, &[id], Timestamp(2_100))
                .await
                .expect("sent");
            let after = super::claim(w, &[id], "<m>", Timestamp(9_000), Timestamp(10_000))
                .await
                .expect("claim");
            assert!(after.is_empty(), "a sent row is never claimed");

            // Two workers at once: exactly one of them gets the row.
            let id2 = one_delivery(&store, "k2").await;
            let ids = [id2];
            let (a, b) = tokio::join!(
                super::claim(w, &ids, "<a>", Timestamp(5_000), Timestamp(6_000)),
                super::claim(w, &ids, "<b>", Timestamp(5_000), Timestamp(6_000)),
            );
            let (a, b) = (a.expect("claim a"), b.expect("claim b"));
            assert_eq!(a.len() + b.len(), 1, "{a:?} {b:?}");
            store.close().await;
        }
    }

    #[tokio::test]
    async fn a_restarted_sqlite_store_retries_what_it_was_sending_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("r.db").display().to_string();
        let store = crate::store::Store::open(&db).await.expect("open");
        let id = one_delivery(&store, "k").await;
        let now = Timestamp::now();
        super::claim(store.writer(), &[id], "<m>", now, now.plus_millis(600_000))
            .await
            .expect("claim");
        store.close().await;
        // One process owns a SQLite file: its old claims end on open.
        let store = crate::store::Store::open(&db).await.expect("reopen");
        let due = super::due(store.reader(), "email:x", Timestamp::now(), 10)
            .await
            .expect("due");
        assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), vec![id]);
        store.close().await;
    }
}
