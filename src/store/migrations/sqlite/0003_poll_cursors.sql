-- Where each vendor poller stopped, per (source, vendor sync id), so a
-- restart neither misses nor repeats runs (SPEC §8). `cursor` is a small
-- JSON document owned by the poller (a time bound and the run ids already
-- taken at or after it).

CREATE TABLE poll_cursors (
    source      TEXT NOT NULL,      -- e.g. 'census' or 'hightouch:eu'
    sync_id     TEXT NOT NULL,      -- the vendor's own sync id
    cursor      TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (source, sync_id)
) WITHOUT ROWID;
