//! SPEC §5 `backtest`: dedup, ordering, `--until`, and the output format.

use std::path::PathBuf;

use super::script::{at, rules, run};
use crate::evaluate::{BacktestError, backtest, backtest_cli, parse_line};
use crate::model::RunStatus;

const RULE: &str = "[[rule]]\nname = \"r\"\nfire_after = 2\nstale_after = \"1h\"\n";

#[test]
fn a_finished_copy_replaces_a_running_one_and_the_first_finished_copy_wins() {
    let mut running = run("s", 10, RunStatus::Running);
    running.finished_at = None;
    let runs = vec![
        run("s", 0, RunStatus::Failed),
        running,
        run("s", 10, RunStatus::Failed),
        // A retried webhook with another outcome: the first copy counts.
        run("s", 10, RunStatus::Success),
        run("s", 0, RunStatus::Failed),
    ];
    let (notices, summary) = backtest(rules(RULE), runs, None);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0].at, at(10));
    assert_eq!(
        (
            summary.runs_read,
            summary.running_ignored,
            summary.duplicates
        ),
        (5, 1, 2)
    );
    assert_eq!((summary.evaluated, summary.firing), (2, 1));
}

#[test]
fn runs_are_sorted_by_finish_time_whatever_the_arrival_order() {
    let runs = vec![
        run("s", 20, RunStatus::Success),
        run("s", 10, RunStatus::Failed),
        run("s", 0, RunStatus::Failed),
    ];
    let (notices, _) = backtest(rules(RULE), runs, None);
    assert_eq!(
        notices.iter().map(|n| n.at).collect::<Vec<_>>(),
        [at(10), at(20)]
    );
}

#[test]
fn until_leaves_later_runs_out_and_fires_timers_due_at_it() {
    let runs = vec![
        run("s", 0, RunStatus::Success),
        run("s", 90, RunStatus::Success),
    ];
    let (notices, summary) = backtest(rules(RULE), runs.clone(), Some(at(60)));
    assert_eq!(summary.after_until, 1);
    assert_eq!(notices.len(), 1, "the stale deadline at --until fires");
    let (notices, _) = backtest(rules(RULE), runs, Some(at(59)));
    assert!(notices.is_empty());
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("syncwarden-bt-{}-{name}", std::process::id()));
    std::fs::create_dir_all(dir.join("rules")).expect("temp dir");
    dir
}

const INHIBIT: &str = "[[rule]]\nname = \"r\"\n[[sync]]\nid = \"down\"\ndepends_on = [\"up\"]\n";

const RUNS: &str = r#"{"sync_id":"up","run_id":"1","status":"failed","finished_at":"2026-03-01T10:00:00Z"}

{"sync_id":"down","run_id":"1","status":"failed","finished_at":"2026-03-01T10:05:00+00:00"}
{"sync_id":"down","run_id":"2","status":"running"}
"#;

#[test]
fn the_cli_prints_the_documented_lines_and_a_summary_last_on_stderr() {
    let dir = scratch("cli");
    std::fs::write(dir.join("rules/r.toml"), INHIBIT).expect("write");
    std::fs::write(dir.join("runs.ndjson"), RUNS).expect("write");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let summary = backtest_cli(
        &dir.join("rules"),
        &dir.join("runs.ndjson"),
        None,
        false,
        &mut out,
        &mut err,
    )
    .expect("backtest runs");
    let out = String::from_utf8(out).expect("utf-8");
    let id = out
        .split("\"incident_id\":\"")
        .nth(1)
        .map(|s| &s[..16])
        .unwrap_or_default();
    assert_eq!(
        out,
        format!(
            "{{\"at\":\"2026-03-01T10:00:00Z\",\"kind\":\"firing\",\"cause\":\"failed_runs\",\"rule\":\"r\",\"sync_id\":\"up\",\"incident_id\":\"{id}\"}}\n"
        )
    );
    let err = String::from_utf8(err).expect("utf-8");
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.contains("3 runs read") && l.contains("1 firing")),
        "{err}"
    );
    assert_eq!((summary.held, summary.running_ignored), (1, 1));

    let (mut out, mut err) = (Vec::new(), Vec::new());
    backtest_cli(
        &dir.join("rules"),
        &dir.join("runs.ndjson"),
        None,
        true,
        &mut out,
        &mut err,
    )
    .expect("backtest runs");
    let out = String::from_utf8(out).expect("utf-8");
    let held = out.lines().nth(1).unwrap_or_default();
    assert!(
        held.starts_with("{\"at\":\"2026-03-01T10:05:00Z\",\"kind\":\"firing\""),
        "{held}"
    );
    assert!(held.ends_with(",\"held\":\"inhibited\"}"), "{held}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_bad_line_is_reported_with_its_number() {
    let dir = scratch("bad");
    std::fs::write(dir.join("rules/r.toml"), INHIBIT).expect("write");
    std::fs::write(
        dir.join("runs.ndjson"),
        format!("{RUNS}{{\"sync_id\":\"x\",\"run_id\":\"9\",\"status\":\"failed\"}}\n"),
    )
    .expect("write");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let e = backtest_cli(
        &dir.join("rules"),
        &dir.join("runs.ndjson"),
        None,
        false,
        &mut out,
        &mut err,
    );
    match e {
        Err(BacktestError::Line { line, message }) => {
            assert_eq!(line, 5);
            assert!(message.contains("finished_at"), "{message}");
        }
        other => panic!("expected a line error, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn parse_line_accepts_a_running_run_without_finish_time_only() {
    assert!(parse_line(1, r#"{"sync_id":"a","run_id":"1","status":"running"}"#).is_ok());
    assert!(parse_line(1, r#"{"sync_id":"a","run_id":"1","status":"success"}"#).is_err());
    assert!(parse_line(1, r#"{"sync_id":"a","run_id":"1","status":"exploded","finished_at":"2026-03-01T10:00:00Z"}"#).is_err());
    assert!(parse_line(1, "not json").is_err());
}
