//! `syncwarden backtest` (SPEC §5): replay a run history through the rules
//! with no network, no database and no wall clock.
//!
//! [`backtest`] is the pure core (dedup, sort, feed the engine, advance to
//! the end); [`backtest_cli`] adds the NDJSON reading and the exact output
//! format. Runs are deduplicated as ingest does (SPEC §1): `(sync_id,
//! run_id)` is the key, `running` copies are never evaluated, and of the
//! finished copies the first in file order wins.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::check::Problem;
use super::engine::Engine;
use super::notice::{Cause, HoldReason, Notice, NoticeKind};
use super::rules::{RuleSet, load_dir};
use crate::model::{Run, Timestamp};

/// What a backtest read and decided; printed as the last line on stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BacktestSummary {
    pub runs_read: usize,
    /// Finished copies of a run already seen.
    pub duplicates: usize,
    /// Copies with status `running` (never evaluated).
    pub running_ignored: usize,
    /// Finished after `--until`.
    pub after_until: usize,
    pub evaluated: usize,
    pub firing: usize,
    pub resolved: usize,
    pub reminders: usize,
    /// Firing notices recorded but held back (inhibited).
    pub held: usize,
}

impl std::fmt::Display for BacktestSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "backtest: {} runs read ({} duplicates, {} running ignored, {} after --until), {} evaluated; \
             notices: {} firing, {} resolved, {} reminder; {} held",
            self.runs_read,
            self.duplicates,
            self.running_ignored,
            self.after_until,
            self.evaluated,
            self.firing,
            self.resolved,
            self.reminders,
            self.held
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("the rules have {} problem(s):\n{}", .0.len(), render_problems(.0))]
    Rules(Vec<Problem>),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("cannot write the output: {0}")]
    Write(#[from] std::io::Error),
}

fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replays `runs` (any order) through `rules`, then advances time to
/// `until` (default: the last evaluated `finished_at`). Held firings are
/// returned too, with `held` set.
pub fn backtest(
    rules: RuleSet,
    runs: Vec<Run>,
    until: Option<Timestamp>,
) -> (Vec<Notice>, BacktestSummary) {
    let mut summary = BacktestSummary {
        runs_read: runs.len(),
        ..Default::default()
    };
    // Indices, not runs, are deduplicated and sorted: a run is a large
    // value, and the key strings are only borrowed.
    let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(runs.len());
    let mut kept: Vec<(Timestamp, usize)> = Vec::with_capacity(runs.len());
    for (i, run) in runs.iter().enumerate() {
        let Some(at) = run.finished_at.filter(|_| run.is_finished()) else {
            summary.running_ignored += 1;
            continue;
        };
        if !seen.insert((run.sync_id.as_str(), run.run_id.as_str())) {
            summary.duplicates += 1;
            continue;
        }
        if until.is_some_and(|u| at > u) {
            summary.after_until += 1;
            continue;
        }
        kept.push((at, i));
    }
    drop(seen);
    // (finished_at, sync_id, run_id) is unique after dedup: an unstable
    // sort gives the one order.
    kept.sort_unstable_by(|&(a, i), &(b, j)| {
        let (x, y) = (&runs[i], &runs[j]);
        (a, &x.sync_id, &x.run_id).cmp(&(b, &y.sync_id, &y.run_id))
    });
    summary.evaluated = kept.len();
    let end = until.or_else(|| kept.last().map(|(at, _)| *at));
    let mut engine = Engine::new(rules);
    let mut notices = Vec::new();
    for &(_, i) in &kept {
        notices.extend(engine.on_run(&runs[i]));
    }
    if let Some(end) = end {
        notices.extend(engine.advance_to(end));
    }
    for n in &notices {
        match (n.held, n.kind) {
            (Some(_), _) => summary.held += 1,
            (None, NoticeKind::Firing) => summary.firing += 1,
            (None, NoticeKind::Resolved) => summary.resolved += 1,
            (None, NoticeKind::Reminder) => summary.reminders += 1,
        }
    }
    (notices, summary)
}

/// Parses one NDJSON line with the same validator as `POST /v1/runs`
/// (without the "not in the future" check: backtest has no wall clock).
pub fn parse_line(line_no: usize, text: &str) -> Result<Run, BacktestError> {
    let fail = |message: String| BacktestError::Line {
        line: line_no,
        message,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| fail(format!("not JSON: {e}")))?;
    crate::ingest::validate::parse_value(&value, line_no, None).map_err(|errors| {
        let parts: Vec<String> = errors
            .iter()
            .map(|e| {
                if e.field.is_empty() {
                    e.message.clone()
                } else {
                    format!("{}: {}", e.field, e.message)
                }
            })
            .collect();
        fail(parts.join("; "))
    })
}

/// One output line of SPEC §5, keys in the documented order.
#[derive(Serialize)]
struct Line<'a> {
    at: Timestamp,
    kind: NoticeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<Cause>,
    rule: &'a str,
    sync_id: &'a str,
    incident_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    held: Option<HoldReason>,
}

/// The `backtest` command: reads the rules and the NDJSON runs, prints one
/// JSON object per notice to `out` (held firings too with `all`) and the
/// summary as the last line of `err`.
pub fn backtest_cli(
    rules_dir: &Path,
    runs_path: &Path,
    until: Option<Timestamp>,
    all: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<BacktestSummary, BacktestError> {
    let rules = load_dir(rules_dir).map_err(BacktestError::Rules)?;
    let text = std::fs::read_to_string(runs_path).map_err(|source| BacktestError::Read {
        path: runs_path.to_path_buf(),
        source,
    })?;
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if !line.trim().is_empty() {
            runs.push(parse_line(i + 1, line)?);
        }
    }
    let (notices, summary) = backtest(rules, runs, until);
    for n in &notices {
        if n.held.is_some() && !all {
            continue;
        }
        let line = Line {
            at: n.at,
            kind: n.kind,
            cause: n.cause,
            rule: &n.rule,
            sync_id: &n.sync_id,
            incident_id: &n.incident_id,
            held: n.held,
        };
        let json = serde_json::to_string(&line).map_err(std::io::Error::other)?;
        writeln!(out, "{json}")?;
    }
    writeln!(err, "{summary}")?;
    Ok(summary)
}
