-- Claims (issue: several replicas on one database). On deliveries: A row
-- being sent is claimed until `lease_until_ms`: another worker retries it
-- only after that, so a notice goes out once even when two workers read the
-- queue at the same time, and a worker that died mid-send is covered.
ALTER TABLE deliveries ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;

-- Which replica polls each vendor source: the holder renews its lease every
-- round; another replica takes the source over once the lease ran out, so
-- a workspace is polled by one replica, not by all of them.
CREATE TABLE poll_leases (
    source    TEXT PRIMARY KEY NOT NULL,
    owner     TEXT NOT NULL,
    until_ms  INTEGER NOT NULL
) WITHOUT ROWID;

-- The generation of the shared state that last changed each alert and sync
-- row (PostgreSQL replicas reload only rows newer than their own last
-- commit; on SQLite, one process, it stays 0).
ALTER TABLE alerts ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE syncs ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;
