//! Poll cursors: where each vendor poller stopped, per (source, sync).
//!
//! These rows are the pollers' own bookkeeping, not alert state, so they
//! are written outside the writer task, straight on the writer pool (one
//! connection, so they queue behind the writer's transactions). A poller
//! stores its cursor only after the runs it covers were acknowledged, so a
//! crash in between re-fetches them, which is harmless: `(sync_id, run_id)`
//! is idempotent.

use std::collections::HashMap;

use super::{Pool, Result, on_pool};

/// Every cursor of one source, by vendor sync id.
pub async fn load(pool: &Pool, source: &str) -> Result<HashMap<String, String>> {
    on_pool!(pool, cursors::load(source))
}

/// Stores (or replaces) one cursor.
pub async fn save(
    pool: &Pool,
    source: &str,
    sync_id: &str,
    cursor: &str,
    now_ms: i64,
) -> Result<()> {
    on_pool!(pool, cursors::save(source, sync_id, cursor, now_ms))
}

/// Takes or renews the poll lease of `source` for `owner` until `until`
/// (unix ms); `false` while another replica's lease runs.
pub async fn claim_source(
    pool: &Pool,
    source: &str,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<bool> {
    on_pool!(pool, cursors::claim_source(source, owner, now, until))
}

/// Gives up `owner`'s poll lease of `source`, so another replica (or this
/// one restarted) takes the source over at once.
pub async fn release_source(pool: &Pool, source: &str, owner: &str) -> Result<()> {
    on_pool!(pool, cursors::release_source(source, owner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn cursors_round_trip_per_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("c.db").display().to_string())
            .await
            .expect("open");
        save(store.writer(), "census", "1", "{\"a\":1}", 5)
            .await
            .expect("save");
        save(store.writer(), "census", "1", "{\"a\":2}", 6)
            .await
            .expect("replace");
        save(store.writer(), "hightouch", "1", "{}", 6)
            .await
            .expect("save");
        let got = load(store.writer(), "census").await.expect("load");
        assert_eq!(got.len(), 1);
        assert_eq!(got["1"], "{\"a\":2}");
        assert!(load(store.writer(), "x").await.expect("load").is_empty());
        store.close().await;
    }

    #[tokio::test]
    async fn one_replica_polls_a_source_until_its_lease_runs_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        for store in crate::store::testing::stores(dir.path()).await {
            let w = store.writer();
            assert!(claim_source(w, "census", "a", 0, 100).await.expect("claim"));
            assert!(
                !claim_source(w, "census", "b", 50, 150)
                    .await
                    .expect("claim")
            );
            assert!(
                claim_source(w, "census", "a", 60, 160)
                    .await
                    .expect("renew")
            );
            assert!(
                claim_source(w, "hightouch", "b", 60, 160)
                    .await
                    .expect("other")
            );
            assert!(
                !claim_source(w, "census", "b", 159, 259)
                    .await
                    .expect("claim")
            );
            assert!(
                claim_source(w, "census", "b", 160, 260)
                    .await
                    .expect("take over")
            );
            assert!(
                !claim_source(w, "census", "a", 170, 270)
                    .await
                    .expect("lost")
            );
            store.close().await;
        }
    }
}
