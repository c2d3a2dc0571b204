//! A small timeline DSL for engine tests: runs and clock moves at whole
//! minutes after a fixed origin, and notices rendered as short strings
//! ("90 s firing failed_runs") so a test reads like the timeline it checks.

use std::collections::BTreeMap;

use crate::evaluate::{Engine, Notice, RuleSet, parse_str};
use crate::model::{RecordCounts, Run, RunStatus, Timestamp};

/// 2026-03-01T00:00:00Z.
pub const ORIGIN: i64 = 1_772_323_200_000;

pub fn at(minute: i64) -> Timestamp {
    Timestamp(ORIGIN + minute * 60_000)
}

pub fn minute_of(t: Timestamp) -> i64 {
    (t.0 - ORIGIN) / 60_000
}

pub fn rules(toml: &str) -> RuleSet {
    match parse_str("test.toml", toml) {
        Ok(r) => r,
        Err(problems) => panic!(
            "test rules do not check:\n{}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

pub fn run(sync: &str, minute: i64, status: RunStatus) -> Run {
    Run {
        sync_id: sync.to_string(),
        run_id: format!("{sync}-{minute}"),
        status,
        finished_at: Some(at(minute)),
        started_at: None,
        records: RecordCounts::default(),
        error: None,
        record_errors: Vec::new(),
        url: None,
        source: Some("test".into()),
        labels: BTreeMap::new(),
    }
}

pub fn run_records(sync: &str, minute: i64, processed: u64, failed: u64) -> Run {
    let mut r = run(sync, minute, RunStatus::Success);
    r.records = RecordCounts {
        processed: Some(processed),
        succeeded: Some(processed - failed),
        failed: Some(failed),
        invalid: None,
    };
    r
}

/// "MIN SYNC KIND [CAUSE]", prefixed with "held " for held records.
pub fn show(n: &Notice) -> String {
    let mut s = format!("{} {} {}", minute_of(n.at), n.sync_id, n.kind);
    if let Some(c) = n.cause {
        s.push_str(&format!(" {c}"));
    }
    if n.held.is_some() {
        s.insert_str(0, "held ");
    }
    s
}

/// An engine plus everything it said, on scripted time.
pub struct Script {
    pub engine: Engine,
    pub notices: Vec<Notice>,
}

impl Script {
    pub fn new(toml: &str) -> Self {
        Script {
            engine: Engine::new(rules(toml)),
            notices: Vec::new(),
        }
    }

    pub fn feed(&mut self, r: &Run) -> Vec<String> {
        let got = self.engine.on_run(r);
        self.notices.extend(got.iter().cloned());
        got.iter().map(show).collect()
    }

    /// Runs of one sync at the given minutes; `F` failed, `S` success,
    /// `C` cancelled.
    pub fn pattern(&mut self, sync: &str, start: i64, step: i64, pattern: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, ch) in pattern.chars().enumerate() {
            let status = match ch {
                'F' => RunStatus::Failed,
                'C' => RunStatus::Cancelled,
                _ => RunStatus::Success,
            };
            out.extend(self.feed(&run(sync, start + step * i as i64, status)));
        }
        out
    }

    pub fn advance(&mut self, minute: i64) -> Vec<String> {
        let got = self.engine.advance_to(at(minute));
        self.notices.extend(got.iter().cloned());
        got.iter().map(show).collect()
    }

    pub fn all(&self) -> Vec<String> {
        self.notices.iter().map(show).collect()
    }
}
