//! The alert engine (SPEC §2, §3, §5 `backtest`): pure and clock-free.
//!
//! Runs, silences, rule sets and "now" go in; notices come out. Nothing in
//! this module reads the clock, touches the network or the disk (except
//! `load_dir` / `backtest_cli`, which read the files they are pointed at),
//! so `serve` and `backtest` give the same notices for the same history.
//!
//! Reading order:
//! - `rules` (the validated model), `raw` + `check` + `check_rule`
//!   (parsing rules files and reporting every problem with file and line),
//!   `duration`;
//! - `verdict` (one run under one rule), `history` (the bounded verdict
//!   and gap histories, O(1) per run), `flap`, `learn` (the "auto"
//!   thresholds), `alert` (one alert's state machine), `incident` (what it says:
//!   firing, reminders, resolved), `notice`;
//! - `engine` (all alerts, timers, holds, silences, undo journal),
//!   `silence`;
//! - `backtest`.

mod alert;
mod backtest;
mod check;
mod check_rule;
pub mod duration;
mod engine;
mod flap;
mod history;
mod incident;
mod learn;
mod notice;
mod raw;
mod rules;
pub mod score;
mod shared;
mod silence;
mod verdict;

#[cfg(test)]
mod tests;

pub use alert::{AlertKey, AlertState, Learned, Notified, Underlying};
pub use backtest::{BacktestError, BacktestSummary, backtest, backtest_cli, parse_line};
pub use check::Problem;
pub use engine::Engine;
pub use incident::{Incident, incident_id};
pub use notice::{Cause, HoldReason, Notice, NoticeKind};
pub use rules::{
    AutoParams, BadWhen, FireAfter, Flap, Matcher, Rule, RuleSet, StaleAfter, SyncEntry, load_dir,
    parse_str,
};
pub use score::{
    Episode, FalseNotice, FalseWhy, Score, ScoreError, load_episodes, parse_episodes, score,
    score_cli,
};
pub use silence::Silence;
pub use verdict::{Judged, Verdict, judge};
