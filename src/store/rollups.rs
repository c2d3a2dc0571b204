//! Rollups for the status UI: a per-sync summary of recent buckets, kept
//! current in the ingest transaction beside the hourly rollups, and the
//! reads the pages make.
//!
//! The fleet page shows 24 h and 7 d totals and a daily sparkline for a
//! thousand syncs. Summing the hourly rows for that (24,000 rows a day)
//! was the slowest part of the page, so each sync keeps its last 26 hours
//! and 8 days in one small row ([`Summary`]): the fleet reads one row per
//! sync and sums a few slots in memory.

use std::collections::HashMap;

use sqlx::FromRow;

use super::runs::Totals;
use super::{Pool, Result, WriteTx, on_pool, on_tx};
use crate::model::{Run, RunStatus, Timestamp};

/// SQLite allows 32,766 bound parameters per statement; stay well below.
pub(crate) const MAX_PARAMS: usize = 30_000;
pub const DAY_MS: i64 = 86_400_000;
pub const HOUR_MS: i64 = 3_600_000;
/// Hourly slots: a 24 h window starting mid-hour touches 25 buckets; one
/// more so the current hour never shares a slot with the window's first.
const HOUR_SLOTS: usize = 26;
/// Daily slots: today and the six days before, plus one.
const DAY_SLOTS: usize = 8;
/// Counters per slot, in the order of [`Totals`].
pub(crate) const COUNTERS: usize = 8;
const SLOT_BYTES: usize = (1 + COUNTERS) * 8;

/// The UTC day an instant falls in, as the unix ms of its midnight.
pub fn day_of(t: Timestamp) -> i64 {
    t.0.div_euclid(DAY_MS) * DAY_MS
}

/// The UTC hour an instant falls in, as the unix ms of its start.
pub(crate) fn hour_of(t: Timestamp) -> i64 {
    t.0.div_euclid(HOUR_MS) * HOUR_MS
}

/// One bucket: its start and its counters (runs, runs_success, runs_failed,
/// runs_cancelled, processed, succeeded, failed, invalid).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Slot {
    at: i64,
    c: [i64; COUNTERS],
}

/// A sync's recent buckets: ring buffers of hours and days, each slot
/// holding the newest bucket that maps to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    hours: [Slot; HOUR_SLOTS],
    days: [Slot; DAY_SLOTS],
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            hours: [Slot::default(); HOUR_SLOTS],
            days: [Slot::default(); DAY_SLOTS],
        }
    }
}

/// Adds `delta` to the slot of the bucket starting at `at`: a newer bucket
/// replaces what the slot held, an older one (a late run beyond the ring)
/// is not counted — it lies outside every window the ring serves.
fn add_to(ring: &mut [Slot], width: i64, at: i64, delta: &[i64; COUNTERS]) {
    let n = ring.len() as i64;
    let slot = &mut ring[(at / width).rem_euclid(n) as usize];
    if slot.at < at || slot.c == [0; COUNTERS] {
        *slot = Slot {
            at,
            c: [0; COUNTERS],
        };
    }
    if slot.at == at {
        for (c, d) in slot.c.iter_mut().zip(delta) {
            *c += d;
        }
    }
}

impl Summary {
    pub(crate) fn add(&mut self, hour: i64, day: i64, delta: &[i64; COUNTERS]) {
        add_to(&mut self.hours, HOUR_MS, hour, delta);
        add_to(&mut self.days, DAY_MS, day, delta);
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity((HOUR_SLOTS + DAY_SLOTS) * SLOT_BYTES);
        for s in self.hours.iter().chain(&self.days) {
            out.extend_from_slice(&s.at.to_le_bytes());
            for c in s.c {
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
        out
    }

    /// Decodes a stored summary; anything malformed reads as empty (it is a
    /// cache of `sync_hourly`, and the next run rewrites it).
    pub(crate) fn decode(bytes: &[u8]) -> Summary {
        let mut s = Summary::default();
        if bytes.len() != (HOUR_SLOTS + DAY_SLOTS) * SLOT_BYTES {
            return s;
        }
        let slots = s.hours.iter_mut().chain(s.days.iter_mut());
        for (slot, chunk) in slots.zip(bytes.chunks_exact(SLOT_BYTES)) {
            let mut words = chunk
                .chunks_exact(8)
                .map(|w| i64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
            slot.at = words.next().unwrap_or(0);
            for c in slot.c.iter_mut() {
                *c = words.next().unwrap_or(0);
            }
        }
        s
    }

    /// Totals over the hourly buckets starting at or after the hour of
    /// `from` (the same buckets `runs::totals` sums).
    pub fn since_hour(&self, from: Timestamp) -> Totals {
        let from = hour_of(from);
        totals(self.hours.iter().filter(|s| s.at >= from))
    }

    /// Per day from the day of `first` on, `n` days: the totals of each day
    /// with runs, oldest first.
    pub fn days(&self, first: Timestamp, n: usize) -> Vec<Option<Totals>> {
        let first = day_of(first);
        (0..n as i64)
            .map(|i| {
                let at = first + i * DAY_MS;
                self.days
                    .iter()
                    .find(|s| s.at == at && s.c[0] > 0)
                    .map(|s| totals(std::iter::once(s)))
            })
            .collect()
    }
}

fn totals<'a>(slots: impl Iterator<Item = &'a Slot>) -> Totals {
    let mut t = Totals::default();
    for s in slots {
        t.runs += s.c[0];
        t.runs_success += s.c[1];
        t.runs_failed += s.c[2];
        t.runs_cancelled += s.c[3];
        t.records_processed += s.c[4];
        t.records_succeeded += s.c[5];
        t.records_failed += s.c[6];
        t.records_invalid += s.c[7];
    }
    t
}

/// What one run adds to its bucket, in the order of [`Totals`] (and of
/// the `sync_hourly` columns).
pub(crate) fn counters(r: &Run) -> [i64; COUNTERS] {
    let status = |s: RunStatus| i64::from(r.status == s);
    [
        1,
        status(RunStatus::Success),
        status(RunStatus::Failed),
        status(RunStatus::Cancelled),
        r.records.processed.unwrap_or(0) as i64,
        r.records.succeeded.unwrap_or(0) as i64,
        r.records.failed.unwrap_or(0) as i64,
        r.records.invalid.unwrap_or(0) as i64,
    ]
}

/// One rollup bucket of one sync.
#[derive(Debug, Clone, Default, FromRow)]
pub struct Bucket {
    pub sync_id: String,
    /// Start of the bucket, unix ms.
    pub at_ms: i64,
    pub runs: i64,
    pub runs_success: i64,
    pub runs_failed: i64,
    pub processed: i64,
    pub failed: i64,
    pub invalid: i64,
}

/// Adds finished runs to their syncs' summaries: one read of the touched
/// summaries and one multi-row upsert per batch. Called from
/// [`super::runs::add_to_rollups`], so every path that keeps the hourly
/// rollups current keeps these current too, in the same transaction.
pub async fn add_to_summaries(tx: &mut WriteTx, runs: &[&Run]) -> Result<()> {
    on_tx!(tx, rollups::add_to_summaries(runs))
}

/// Fills the summaries from `sync_hourly` when there are none yet (a
/// database from before the summaries existed). Cheap when they exist.
pub async fn backfill_summaries(tx: &mut WriteTx) -> Result<()> {
    on_tx!(tx, rollups::backfill_summaries())
}

/// Every sync's summary, keyed by sync id.
pub async fn summaries(pool: &Pool) -> Result<HashMap<String, Summary>> {
    on_pool!(pool, rollups::summaries())
}

/// One sync's hourly buckets from the hour of `from` on, oldest first (the
/// sync page's chart).
pub async fn hourly_for_sync(pool: &Pool, sync_id: &str, from: Timestamp) -> Result<Vec<Bucket>> {
    on_pool!(pool, rollups::hourly_for_sync(sync_id, from))
}

/// Start of a sync's newest hourly bucket: the sync page's chart ends there
/// when the sync has no recent runs, so an old history still shows.
pub async fn newest_hour(pool: &Pool, sync_id: &str) -> Result<Option<i64>> {
    on_pool!(pool, rollups::newest_hour(sync_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: [i64; COUNTERS] = [1, 1, 0, 0, 100, 90, 10, 0];

    #[test]
    fn a_summary_sums_the_window_and_survives_encoding() {
        let now = Timestamp(100 * DAY_MS + 5 * HOUR_MS + 123);
        let mut s = Summary::default();
        for h in 0..30 {
            let at = hour_of(now) - h * HOUR_MS;
            s.add(at, day_of(Timestamp(at)), &D);
        }
        let s = Summary::decode(&s.encode());
        // 24 h back from mid-hour: 25 buckets, the oldest 5 rotated out.
        let t = s.since_hour(now.plus_millis(-DAY_MS));
        assert_eq!(t.runs, 25);
        assert_eq!(t.records_failed, 250);
        let days = s.days(Timestamp(99 * DAY_MS), 2);
        assert_eq!(days[0].as_ref().map(|t| t.runs), Some(24), "a whole day");
        assert_eq!(days[1].as_ref().map(|t| t.runs), Some(6), "today so far");
    }

    #[tokio::test]
    async fn a_database_with_hourly_rollups_but_no_summaries_gets_them_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("old.db").display().to_string();
        let hour = hour_of(Timestamp::now());
        {
            let store = super::super::Store::open(&db).await.expect("open");
            // What a database from before the summaries holds.
            sqlx::query(
                "INSERT INTO sync_hourly (sync_id, hour_ms, runs, runs_success, processed, \
                 succeeded, failed) VALUES ('a', ?, 3, 2, 300, 290, 10)",
            )
            .bind(hour)
            .execute(store.writer().as_sqlite().expect("sqlite"))
            .await
            .expect("insert");
            store.close().await;
        }
        let store = super::super::Store::open(&db).await.expect("reopen");
        let all = summaries(store.reader()).await.expect("read");
        let t = all
            .get("a")
            .expect("a summary for a")
            .since_hour(Timestamp(hour));
        assert_eq!((t.runs, t.runs_success, t.records_failed), (3, 2, 10));
        store.close().await;
    }

    #[test]
    fn a_late_run_older_than_the_ring_does_not_overwrite_newer_buckets() {
        let mut s = Summary::default();
        let newest = 1_000 * HOUR_MS;
        s.add(newest, day_of(Timestamp(newest)), &D);
        let late = newest - HOUR_SLOTS as i64 * HOUR_MS;
        s.add(late, day_of(Timestamp(late)), &D);
        assert_eq!(s.since_hour(Timestamp(newest)).runs, 1);
        assert_eq!(Summary::decode(b"short"), Summary::default());
    }
}
