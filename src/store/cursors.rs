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
}
