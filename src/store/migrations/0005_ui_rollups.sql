-- Rollups for the status UI (issue #8): the fleet page shows 24 h and 7 d
-- totals and a daily sparkline for every sync, and must not scan runs or
-- every hourly row to do it.

-- Daily totals per sync, kept current at ingest beside `sync_hourly`.
-- Keyed by day first: the fleet page reads "the last 7 days of every sync",
-- one contiguous range of this key.
CREATE TABLE sync_daily (
    day_ms         INTEGER NOT NULL,
    sync_id        TEXT NOT NULL,
    runs           INTEGER NOT NULL DEFAULT 0,
    runs_success   INTEGER NOT NULL DEFAULT 0,
    runs_failed    INTEGER NOT NULL DEFAULT 0,
    runs_cancelled INTEGER NOT NULL DEFAULT 0,
    processed      INTEGER NOT NULL DEFAULT 0,
    succeeded      INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    invalid        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day_ms, sync_id)
) WITHOUT ROWID;

-- Existing databases start with their history.
INSERT INTO sync_daily (day_ms, sync_id, runs, runs_success, runs_failed, runs_cancelled,
                        processed, succeeded, failed, invalid)
SELECT (hour_ms / 86400000) * 86400000, sync_id, SUM(runs), SUM(runs_success),
       SUM(runs_failed), SUM(runs_cancelled), SUM(processed), SUM(succeeded),
       SUM(failed), SUM(invalid)
FROM sync_hourly
GROUP BY (hour_ms / 86400000) * 86400000, sync_id;

-- "The last 24 hours of every sync" (fleet page, GET /v1/syncs) becomes a
-- range scan of this covering index instead of a scan of every hourly row.
CREATE INDEX sync_hourly_by_hour ON sync_hourly (
    hour_ms, sync_id, runs, runs_success, runs_failed, runs_cancelled,
    processed, succeeded, failed, invalid
);
