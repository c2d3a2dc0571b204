//! Which polled runs are new: the cursor of one (source, sync), as a pure
//! function of what the vendor listed and the time.
//!
//! A cursor is a time bound `from` and the ids of the finished runs at or
//! after it that were already taken. Runs are placed in time by their start
//! (their finish when the start is unknown), because a run keeps its start
//! from `running` to finished, so a run that was still running is taken when
//! it ends, never skipped. `from` follows the newest run (or the oldest one
//! still running) minus an overlap that absorbs vendor lag and clock skew;
//! the `seen` ids make that overlap repeat nothing. It never moves back.
//!
//! On first contact with a sync there is no cursor: only runs from the last
//! `backfill` are taken.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ingest::validate::MAX_FUTURE_MS;
use crate::model::{Run, RunStatus, Timestamp};

/// How far behind the newest run listing starts again.
pub const OVERLAP_MS: i64 = 60 * 60 * 1000;

/// A run still `running` after this long is taken as stuck: it no longer
/// holds the cursor back (it is still taken if it ends within the overlap).
pub const STUCK_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub from_ms: i64,
    pub seen: BTreeSet<String>,
}

/// Where listing starts: the cursor's bound, or `now - backfill`.
pub fn from(cursor: Option<&Cursor>, now: Timestamp, backfill: Duration) -> Timestamp {
    match cursor {
        Some(c) => Timestamp(c.from_ms),
        None => now.plus_millis(-i64::try_from(backfill.as_millis()).unwrap_or(i64::MAX)),
    }
}

/// When a run happened, for the cursor.
pub fn run_time(run: &Run) -> Option<Timestamp> {
    run.started_at.or(run.finished_at)
}

/// The runs to ingest now (oldest first, so none arrives late behind a newer
/// one of this poll) and the cursor to store once they are acknowledged.
pub fn step(
    cursor: Option<&Cursor>,
    listed: Vec<Run>,
    now: Timestamp,
    backfill: Duration,
) -> (Vec<Run>, Cursor) {
    let from = from(cursor, now, backfill);
    let seen = cursor.map(|c| &c.seen);
    // A finish beyond the future tolerance (vendor clock skew) would be
    // refused by validation; such a run waits like a running one.
    let finished = |r: &Run| {
        r.status != RunStatus::Running
            && r.finished_at.is_some_and(|f| f.0 <= now.0 + MAX_FUTURE_MS)
    };
    let in_window: Vec<Run> = listed
        .into_iter()
        .filter(|r| run_time(r).is_none_or(|t| t >= from))
        .collect();

    let open = in_window
        .iter()
        .filter(|r| !finished(r))
        .filter_map(run_time)
        .filter(|t| t.0 >= now.0 - STUCK_MS)
        .min();
    let newest = in_window.iter().filter_map(run_time).max();
    let anchor = open.or(newest);
    let next_from = anchor.map_or(from, |a| a.plus_millis(-OVERLAP_MS).max(from));

    let mut next_seen = BTreeSet::new();
    let mut take = Vec::new();
    for run in in_window {
        if !finished(&run) {
            continue;
        }
        if run_time(&run).is_none_or(|t| t >= next_from) {
            next_seen.insert(run.run_id.clone());
        }
        if !seen.is_some_and(|s| s.contains(&run.run_id)) {
            take.push(run);
        }
    }
    take.sort_by(|a, b| (a.finished_at, &a.run_id).cmp(&(b.finished_at, &b.run_id)));
    (
        take,
        Cursor {
            from_ms: next_from.0,
            seen: next_seen,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    fn run(id: &str, started_min_ago: i64, status: RunStatus) -> Run {
        let started = NOW.plus_millis(-started_min_ago * MIN);
        Run {
            sync_id: "census:1".into(),
            run_id: id.into(),
            status,
            finished_at: (status != RunStatus::Running).then(|| started.plus_millis(MIN)),
            started_at: Some(started),
            records: Default::default(),
            error: None,
            record_errors: Vec::new(),
            url: None,
            source: None,
            labels: Default::default(),
        }
    }

    fn ids(runs: &[Run]) -> Vec<&str> {
        runs.iter().map(|r| r.run_id.as_str()).collect()
    }

    const OK: RunStatus = RunStatus::Success;
    const RUNNING: RunStatus = RunStatus::Running;
    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn first_contact_takes_only_the_backfill_window_oldest_first() {
        let listed = vec![run("3", 10, OK), run("2", 50, OK), run("1", 120, OK)];
        let (take, c) = step(None, listed, NOW, HOUR);
        assert_eq!(ids(&take), ["2", "3"]);
        // The newest run anchors the bound; runs at or after it are seen.
        assert_eq!(
            c.from_ms,
            NOW.0 - 60 * MIN,
            "from never goes behind the backfill"
        );
        assert_eq!(c.seen, BTreeSet::from(["2".to_owned(), "3".to_owned()]));
    }

    #[test]
    fn a_second_poll_repeats_nothing_and_misses_nothing() {
        let (_, c) = step(None, vec![run("1", 10, OK)], NOW, HOUR);
        let later = NOW.plus_millis(30 * MIN);
        let listed = vec![run("2", -20, OK), run("1", 10, OK)];
        let (take, c2) = step(Some(&c), listed, later, HOUR);
        assert_eq!(ids(&take), ["2"]);
        assert!(c2.seen.contains("1") && c2.seen.contains("2"));
        // Nothing new: nothing taken, cursor unchanged.
        let listed = vec![run("2", -20, OK), run("1", 10, OK)];
        let (take, c3) = step(Some(&c2), listed, later, HOUR);
        assert!(take.is_empty());
        assert_eq!(c3, c2);
    }

    #[test]
    fn a_running_run_holds_the_cursor_until_it_ends() {
        let listed = vec![run("9", 5, OK), run("8", 300, RUNNING)];
        let (take, c) = step(None, listed, NOW, Duration::from_secs(6 * 3600));
        assert_eq!(ids(&take), ["9"]);
        assert_eq!(c.from_ms, NOW.0 - 360 * MIN, "bounded by the backfill");
        // Hours later run 8 ends; many runs came after it.
        let later = NOW.plus_millis(600 * MIN);
        let mut listed: Vec<Run> = (10..20)
            .map(|i| run(&i.to_string(), -500 + i, OK))
            .collect();
        listed.push(run("9", 5, OK));
        listed.push(run("8", 300, OK));
        let (take, _) = step(Some(&c), listed, later, HOUR);
        let got = ids(&take);
        assert!(got.contains(&"8"), "{got:?}");
        assert!(!got.contains(&"9"), "{got:?}");
        assert_eq!(got.len(), 11);
    }

    #[test]
    fn a_stuck_run_does_not_hold_the_cursor_forever() {
        let c = Cursor {
            from_ms: NOW.0 - 3 * 24 * 60 * MIN,
            seen: BTreeSet::new(),
        };
        let listed = vec![run("2", 10, OK), run("1", 2 * 24 * 60, RUNNING)];
        let (_, c2) = step(Some(&c), listed, NOW, HOUR);
        assert_eq!(c2.from_ms, NOW.0 - 70 * MIN);
    }

    #[test]
    fn a_run_from_the_future_waits() {
        let mut skewed = run("1", -30, OK);
        skewed.started_at = None;
        let (take, c) = step(None, vec![skewed], NOW, HOUR);
        assert!(take.is_empty());
        assert!(c.seen.is_empty());
    }

    #[test]
    fn cursors_serialise_small() {
        let c = Cursor {
            from_ms: 5,
            seen: BTreeSet::from(["a".to_owned()]),
        };
        let text = serde_json::to_string(&c).expect("json");
        assert_eq!(text, r#"{"from_ms":5,"seen":["a"]}"#);
        assert_eq!(serde_json::from_str::<Cursor>(&text).expect("back"), c);
    }
}
