-- Alert state, the notice outbox, incidents and silences (SPEC §3, §4).

-- One row per (rule, sync): the engine's state, persisted whole as JSON so a
-- restart resumes exactly where it stopped without replaying runs.
CREATE TABLE alerts (
    rule        TEXT NOT NULL,
    sync_id     TEXT NOT NULL,
    state_name  TEXT NOT NULL,
    state       TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (rule, sync_id)
) WITHOUT ROWID;

-- The outbox: every notice the engine decided, written in the same
-- transaction as the state change that caused it. Rows are never deleted by
-- delivery; `status` records what happened.
CREATE TABLE notices (
    id           INTEGER PRIMARY KEY,
    notice_key   TEXT NOT NULL UNIQUE,
    incident_id  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    cause        TEXT,
    rule         TEXT NOT NULL,
    sync_id      TEXT NOT NULL,
    at_ms        INTEGER NOT NULL,
    -- 'pending' (to deliver), 'held' (recorded only), 'sent', 'failed'
    status       TEXT NOT NULL,
    held         TEXT,
    reason       TEXT,
    body         TEXT NOT NULL,
    created_ms   INTEGER NOT NULL
);

CREATE INDEX notices_by_status ON notices (status, id);
CREATE INDEX notices_by_incident ON notices (incident_id, id);
CREATE INDEX notices_by_sync ON notices (sync_id, id);

CREATE TABLE incidents (
    incident_id  TEXT PRIMARY KEY NOT NULL,
    rule         TEXT NOT NULL,
    sync_id      TEXT NOT NULL,
    cause        TEXT,
    state        TEXT NOT NULL,      -- 'firing' or 'resolved'
    held         TEXT,               -- why its firing notice is held, if it is
    opened_ms    INTEGER NOT NULL,
    since_ms     INTEGER NOT NULL,
    resolved_ms  INTEGER,
    condition    TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

CREATE INDEX incidents_by_state ON incidents (state, opened_ms);
CREATE INDEX incidents_by_sync ON incidents (sync_id, opened_ms);

CREATE TABLE silences (
    id          TEXT PRIMARY KEY NOT NULL,
    rule        TEXT NOT NULL,
    sync        TEXT NOT NULL,
    labels      TEXT NOT NULL DEFAULT '{}',
    starts_ms   INTEGER NOT NULL,
    ends_ms     INTEGER NOT NULL,
    author      TEXT NOT NULL,
    comment     TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX silences_by_end ON silences (ends_ms);
