//! The labeled scenarios of `../shared/scenarios/`: every folder is a rules
//! directory, a run history and the notices `backtest` must print.
//!
//! Data-driven on purpose: a new folder is a new test case with no code
//! change. Notices are compared per (rule, sync) as sequences of
//! (at, kind, cause) — incident ids are opaque — and the test fails naming
//! every scenario that differs, with the first difference of each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use syncwarden::evaluate::backtest_cli;
use syncwarden::model::Timestamp;

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/scenarios");

#[derive(Debug, Deserialize)]
struct Printed {
    at: String,
    kind: String,
    #[serde(default)]
    cause: Option<String>,
    rule: String,
    sync_id: String,
}

type Transcript = BTreeMap<(String, String), Vec<(Timestamp, String, Option<String>)>>;

fn transcript(text: &str, origin: &str) -> Result<Transcript, String> {
    let mut out = Transcript::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let p: Printed =
            serde_json::from_str(line).map_err(|e| format!("{origin} line {}: {e}", i + 1))?;
        let at =
            Timestamp::parse_rfc3339(&p.at).map_err(|e| format!("{origin} line {}: {e}", i + 1))?;
        out.entry((p.rule, p.sync_id))
            .or_default()
            .push((at, p.kind, p.cause));
    }
    // Lines with the same `at` may come in any order (SPEC §5).
    for seq in out.values_mut() {
        seq.sort();
    }
    Ok(out)
}

/// Runs one scenario; `Err` describes how it differs.
fn run_scenario(dir: &Path) -> Result<(), String> {
    let mut out = Vec::new();
    let mut err = Vec::new();
    backtest_cli(
        &dir.join("rules"),
        &dir.join("runs.ndjson"),
        None,
        false,
        &mut out,
        &mut err,
    )
    .map_err(|e| format!("backtest failed: {e}"))?;
    let got = transcript(&String::from_utf8_lossy(&out), "output")?;
    let expected_text = std::fs::read_to_string(dir.join("expected.ndjson"))
        .map_err(|e| format!("cannot read expected.ndjson: {e}"))?;
    let want = transcript(&expected_text, "expected.ndjson")?;
    let mut diffs = Vec::new();
    let keys: std::collections::BTreeSet<_> = got.keys().chain(want.keys()).cloned().collect();
    for key in keys {
        let g = got.get(&key).cloned().unwrap_or_default();
        let w = want.get(&key).cloned().unwrap_or_default();
        if g != w {
            let first = (0..g.len().max(w.len()))
                .find(|&i| g.get(i) != w.get(i))
                .unwrap_or(0);
            diffs.push(format!(
                "  ({}, {}): {} notices, expected {}; first difference at #{first}: got {:?}, expected {:?}",
                key.0,
                key.1,
                g.len(),
                w.len(),
                g.get(first).map(show),
                w.get(first).map(show),
            ));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n"))
    }
}

fn show(n: &(Timestamp, String, Option<String>)) -> String {
    match &n.2 {
        Some(cause) => format!("{} {} ({cause})", n.0, n.1),
        None => format!("{} {}", n.0, n.1),
    }
}

fn scenario_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(SCENARIOS)
        .unwrap_or_else(|e| panic!("cannot read {SCENARIOS}: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_labeled_scenario_gives_exactly_the_expected_notices() {
    let dirs = scenario_dirs();
    assert!(!dirs.is_empty(), "no scenarios found in {SCENARIOS}");
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        if let Err(why) = run_scenario(dir) {
            failures.push(format!("{name}:\n{why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios differ:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}
