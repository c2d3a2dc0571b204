-- Per-channel delivery of each notice (SPEC §4): one row per (notice,
-- channel), written in the same transaction as the notice. A row is never
-- deleted; `status` goes pending → sending → sent | failed, and back to
-- pending on a transient error (with `next_attempt_ms` pushed out).

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    notice_id       INTEGER NOT NULL REFERENCES notices (id),
    channel         TEXT NOT NULL,
    -- rule and sync of the alert: its notices go out in order, per channel
    rule            TEXT NOT NULL,
    sync_id         TEXT NOT NULL,
    -- notices with the same group key, due together, become one message
    group_key       TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- earliest send time: creation + the rule's group_wait
    due_ms          INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    sent_ms         INTEGER,
    message_id      TEXT,
    UNIQUE (notice_id, channel)
);

CREATE INDEX deliveries_queue ON deliveries (channel, status, next_attempt_ms);
CREATE INDEX deliveries_by_alert ON deliveries (channel, rule, sync_id, status, notice_id);
