-- Claims on deliveries (issue: several replicas on one database). A row
-- being sent is claimed until `lease_until_ms`: another worker retries it
-- only after that, so a notice goes out once even when two workers read the
-- queue at the same time, and a worker that died mid-send is covered.
ALTER TABLE deliveries ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;
