-- The outbox worker's two queue reads, as index searches (issue: outbox
-- drain). Without these, `deliveries::due` walked the (notice_id, channel)
-- key from the oldest delivery ever made, past every sent row, and
-- `deliveries::group_pending` read every row of the table when a group was
-- smaller than its LIMIT (a notice without `group_by` is a group of one):
-- each claim cost O(all deliveries), a backlog drained in O(n²).

-- Unfinished deliveries of a channel in notice order: only the rows still to
-- work on are in it, so the oldest due one is near its start.
CREATE INDEX deliveries_unfinished ON deliveries (channel, notice_id)
    WHERE status IN ('pending', 'sending');

-- A group's never-attempted deliveries, in notice order.
CREATE INDEX deliveries_by_group ON deliveries (channel, group_key, status, notice_id);
