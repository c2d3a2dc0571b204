-- Runs, record errors and per-sync rollups.
-- Times are INTEGER unix milliseconds (UTC); JSON columns hold small
-- documents (labels, error classes) that are read whole, never queried into.

CREATE TABLE syncs (
    sync_id           TEXT PRIMARY KEY NOT NULL,
    source            TEXT,
    labels            TEXT NOT NULL DEFAULT '{}',
    first_seen_ms     INTEGER NOT NULL,
    -- the newest run by finished_at (running runs by arrival)
    last_run_id       TEXT,
    last_status       TEXT,
    last_finished_ms  INTEGER,
    -- newest finished_at the engine has evaluated: an older run is late
    last_evaluated_ms INTEGER,
    runs_total        INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE runs (
    id                   INTEGER PRIMARY KEY,
    sync_id              TEXT NOT NULL,
    run_id               TEXT NOT NULL,
    status               TEXT NOT NULL,
    finished_ms          INTEGER,
    started_ms           INTEGER,
    processed            INTEGER,
    succeeded            INTEGER,
    failed               INTEGER,
    invalid              INTEGER,
    error_code           TEXT,
    error_message        TEXT,
    url                  TEXT,
    source               TEXT,
    labels               TEXT NOT NULL DEFAULT '{}',
    -- record errors sent with the run, and how many of them were kept
    record_errors_total  INTEGER NOT NULL DEFAULT 0,
    record_errors_stored INTEGER NOT NULL DEFAULT 0,
    -- error classes computed over every record error sent, kept or not
    error_classes        TEXT NOT NULL DEFAULT '[]',
    received_ms          INTEGER NOT NULL,
    -- 'evaluated', 'late', 'running' (not finished), 'pending' (transient)
    evaluation           TEXT NOT NULL,
    UNIQUE (sync_id, run_id)
);

CREATE INDEX runs_by_sync_finished ON runs (sync_id, finished_ms DESC, id DESC);
CREATE INDEX runs_by_finished ON runs (finished_ms);

CREATE TABLE record_errors (
    run_pk    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL,
    record_id TEXT,
    code      TEXT,
    message   TEXT NOT NULL,
    field     TEXT,
    PRIMARY KEY (run_pk, seq)
) WITHOUT ROWID;

-- Hourly rollups kept current at ingest, so window totals never scan runs.
CREATE TABLE sync_hourly (
    sync_id      TEXT NOT NULL,
    hour_ms      INTEGER NOT NULL,
    runs         INTEGER NOT NULL DEFAULT 0,
    runs_success INTEGER NOT NULL DEFAULT 0,
    runs_failed  INTEGER NOT NULL DEFAULT 0,
    runs_cancelled INTEGER NOT NULL DEFAULT 0,
    processed    INTEGER NOT NULL DEFAULT 0,
    succeeded    INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    invalid      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sync_id, hour_ms)
) WITHOUT ROWID;
