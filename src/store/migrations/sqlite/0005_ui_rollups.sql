-- A small per-sync summary for the status UI (issue #8), kept current at
-- ingest beside the hourly rollups. The fleet page shows 24 h and 7 d
-- totals and a daily sparkline for every sync; summing a day of hourly rows
-- for a thousand syncs (24,000 rows) costs more than the rest of the page,
-- so each sync keeps its own recent buckets in one row instead.
--
-- `buckets` is a little-endian i64 array (store/rollups.rs): 26 hourly then
-- 8 daily slots, each `[start_ms, runs, runs_success, runs_failed,
-- runs_cancelled, processed, succeeded, failed, invalid]`, slot = bucket
-- number modulo the slot count. Reading it needs no scan: one row a sync.
-- Existing databases are filled from `sync_hourly` when the store opens.
CREATE TABLE sync_summary (
    sync_id  TEXT PRIMARY KEY NOT NULL,
    buckets  BLOB NOT NULL
) WITHOUT ROWID;
