//! `rules check`: every problem kind is reported with file, line and hint.

use std::path::PathBuf;

use crate::evaluate::check::check_files;
use crate::evaluate::{Problem, load_dir, parse_str};

fn problems(text: &str) -> Vec<Problem> {
    match parse_str("rules.toml", text) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(p) => p,
    }
}

/// Asserts exactly one problem, on `line`, whose message contains `needle`.
fn one(text: &str, line: usize, needle: &str) -> Problem {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:#?}");
    let p = p.into_iter().next().expect("one problem");
    assert_eq!(p.file, PathBuf::from("rules.toml"));
    assert_eq!(p.line, Some(line), "{p}");
    assert!(
        p.message.contains(needle),
        "{:?} lacks {needle:?}",
        p.message
    );
    assert!(
        p.hint.as_ref().is_some_and(|h| !h.is_empty()),
        "no hint: {p}"
    );
    p
}

#[test]
fn the_shipped_style_of_rules_checks_clean() {
    let set = parse_str(
        "rules.toml",
        r#"
[[rule]]
name = "sync-broken"
match = { sync = "*", labels = { destination = "salesforce" } }
bad_when = { status = ["failed"], failed_ratio_above = 0.05, failed_records_above = 500 }
fire_after = 2
resolve_after = 2
flap = { window = 21, high = 0.50, low = 0.25 }
stale_after = "2h"
repeat_every = "24h"
group_by = ["labels.destination", "sync_id"]
group_wait = "30s"
notify = ["email:data-team", "slack:data-alerts", "webhook:ops"]
severity = "critical"

[[rule]]
name = "learned"
fire_after = "auto"
stale_after = "auto"
auto = { target = 1e-4, min = 2, max = 6, learn = 200, warmup = 20, stale_factor = 4, stale_min = "30m" }

[[sync]]
id = "hubspot_contacts"
depends_on = ["dbt:marts"]
owner = "growth@example.com"
"#,
    )
    .unwrap_or_else(|p| panic!("{p:?}"));
    assert_eq!(set.rules.len(), 2);
    assert_eq!(set.upstream_of("hubspot_contacts"), ["dbt:marts"]);
    assert_eq!(set.downstream_of("dbt:marts"), ["hubspot_contacts"]);
    let r = &set.rules[1];
    assert_eq!(r.notify, ["email:default"]);
    assert_eq!(r.severity, "warning");
    assert_eq!(r.resolve_after, 1);
}

#[test]
fn a_syntax_error_points_at_its_line() {
    let p = one(
        "[[rule]]\nname = \"a\"\nfire_after = = 2\n",
        3,
        "TOML syntax error",
    );
    assert!(p.to_string().starts_with("rules.toml:3: TOML syntax error"));
    assert!(p.to_string().contains("\n  hint: "));
}

#[test]
fn an_unknown_key_gets_a_did_you_mean_hint() {
    let p = one(
        "[[rule]]\nname = \"a\"\nfire_afer = 2\n",
        3,
        "unknown field `fire_afer`",
    );
    assert_eq!(
        p.hint.as_deref().map(|h| h.contains("`fire_after`")),
        Some(true)
    );
    one(
        "[[rule]]\nname = \"a\"\nflap = { window = 5, high = 0.5, lo = 0.1 }\n",
        3,
        "unknown field `lo`",
    );
    one(
        "[rules]\nname = \"a\"\n",
        1,
        "unknown top-level key `rules`",
    );
}

#[test]
fn a_missing_name_and_wrong_types_are_reported() {
    one("[[rule]]\nfire_after = 2\n", 1, "missing field `name`");
    one(
        "[[rule]]\nname = \"a\"\nresolve_after = \"two\"\n",
        3,
        "in [[rule]]",
    );
}

#[test]
fn streak_lengths_must_be_at_least_one_or_auto() {
    one(
        "[[rule]]\nname = \"a\"\nfire_after = 0\n",
        3,
        "fire_after = 0",
    );
    one(
        "[[rule]]\nname = \"a\"\nfire_after = \"sometimes\"\n",
        3,
        "fire_after",
    );
    one(
        "[[rule]]\nname = \"a\"\nresolve_after = 0\n",
        3,
        "resolve_after = 0",
    );
}

#[test]
fn durations_must_parse_and_be_positive() {
    one(
        "[[rule]]\nname = \"a\"\nstale_after = \"soon\"\n",
        3,
        "stale_after",
    );
    one(
        "[[rule]]\nname = \"a\"\nrepeat_every = \"0s\"\n",
        3,
        "repeat_every",
    );
    one(
        "[[rule]]\nname = \"a\"\ngroup_wait = \"-1s\"\n",
        3,
        "group_wait",
    );
    assert!(parse_str("r.toml", "[[rule]]\nname = \"a\"\ngroup_wait = \"0s\"\n").is_ok());
}

#[test]
fn flap_needs_a_window_of_three_and_ordered_thresholds() {
    one(
        "[[rule]]\nname = \"a\"\nflap = { window = 2, high = 0.5, low = 0.2 }\n",
        3,
        "flap.window = 2",
    );
    one(
        "[[rule]]\nname = \"a\"\nflap = { window = 5, high = 0.2, low = 0.2 }\n",
        3,
        "0 ≤ low < high ≤ 1",
    );
    one(
        "[[rule]]\nname = \"a\"\nflap = { window = 5, high = 1.5, low = 0.2 }\n",
        3,
        "0 ≤ low < high ≤ 1",
    );
}

#[test]
fn auto_bounds_must_be_sane() {
    let base = "[[rule]]\nname = \"a\"\nfire_after = \"auto\"\n";
    one(
        &format!("{base}auto = {{ target = 1.5 }}\n"),
        4,
        "auto.target",
    );
    one(
        &format!("{base}auto = {{ target = 0.0 }}\n"),
        4,
        "auto.target",
    );
    one(&format!("{base}auto = {{ min = 0 }}\n"), 4, "auto.min");
    one(
        &format!("{base}auto = {{ min = 5, max = 3 }}\n"),
        4,
        "above auto.max",
    );
    one(&format!("{base}auto = {{ learn = 0 }}\n"), 4, "auto.learn");
    one(
        &format!("{base}auto = {{ warmup = -1 }}\n"),
        4,
        "auto.warmup",
    );
    one(
        &format!("{base}auto = {{ stale_factor = 0 }}\n"),
        4,
        "auto.stale_factor",
    );
    one(
        &format!("{base}auto = {{ stale_min = \"0m\" }}\n"),
        4,
        "auto.stale_min",
    );
}

#[test]
fn notify_entries_must_name_a_channel() {
    one(
        "[[rule]]\nname = \"a\"\nnotify = [\"email:default\", \"pager:ops\"]\n",
        3,
        "\"pager:ops\"",
    );
    one(
        "[[rule]]\nname = \"a\"\nnotify = [\"slack:\"]\n",
        3,
        "\"slack:\"",
    );
    one(
        "[[rule]]\nname = \"a\"\nnotify = []\n",
        3,
        "notify is empty",
    );
}

#[test]
fn globs_statuses_and_group_by_are_checked() {
    one(
        "[[rule]]\nname = \"a\"\nmatch = { sync = \"census:[\" }\n",
        3,
        "bad sync glob",
    );
    one(
        "[[rule]]\nname = \"a\"\nbad_when = { status = [\"broken\"] }\n",
        3,
        "unknown run status",
    );
    one(
        "[[rule]]\nname = \"a\"\nbad_when = { status = [\"running\"] }\n",
        3,
        "running",
    );
    one(
        "[[rule]]\nname = \"a\"\nbad_when = { failed_ratio_above = 5.0 }\n",
        3,
        "failed_ratio_above",
    );
    one(
        "[[rule]]\nname = \"a\"\ngroup_by = [\"team\"]\n",
        3,
        "unknown group_by key",
    );
    one(
        "[[rule]]\nname = \"a\"\ngroup_by = [\"labels.\"]\n",
        3,
        "unknown group_by key",
    );
}

#[test]
fn every_problem_of_a_file_is_reported_in_line_order() {
    let p = problems(
        "[[rule]]\nname = \"a\"\nfire_after = 0\nresolve_after = 0\nstale_after = \"x\"\n[[rule]]\nname = \"b\"\nbogus = 1\n",
    );
    let lines: Vec<Option<usize>> = p.iter().map(|p| p.line).collect();
    assert_eq!(lines, [Some(3), Some(4), Some(5), Some(8)]);
}

#[test]
fn rule_names_must_be_unique_across_files() {
    let files = vec![
        (
            PathBuf::from("a.toml"),
            "[[rule]]\nname = \"dup\"\n".to_string(),
        ),
        (
            PathBuf::from("b.toml"),
            "\n[[rule]]\nname = \"dup\"\n".to_string(),
        ),
    ];
    let p = check_files(&files).err().unwrap_or_default();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        (p[0].file.as_path(), p[0].line),
        (std::path::Path::new("b.toml"), Some(3))
    );
    assert!(p[0].hint.as_deref().is_some_and(|h| h.contains("a.toml:2")));
}

#[test]
fn sync_ids_must_be_unique_and_dependencies_acyclic() {
    one(
        "[[sync]]\nid = \"a\"\n[[sync]]\nid = \"a\"\n",
        4,
        "duplicate [[sync]] id",
    );
    one(
        "[[sync]]\nid = \"a\"\ndepends_on = [\"a\"]\n",
        3,
        "depends on itself",
    );
    let p = one(
        "[[sync]]\nid = \"a\"\ndepends_on = [\"b\"]\n[[sync]]\nid = \"b\"\ndepends_on = [\"c\"]\n[[sync]]\nid = \"c\"\ndepends_on = [\"a\"]\n",
        9,
        "depends_on cycle",
    );
    assert!(p.message.contains("a → b → c → a"), "{}", p.message);
}

fn scratch_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("syncwarden-check-{}-{name}", std::process::id()))
}

#[test]
fn a_missing_or_empty_directory_is_a_problem() {
    let missing = scratch_dir("missing");
    let p = load_dir(&missing).err().unwrap_or_default();
    assert_eq!(p.len(), 1);
    assert!(p[0].message.contains("does not exist"));
    let empty = scratch_dir("empty");
    std::fs::create_dir_all(&empty).expect("temp dir");
    let p = load_dir(&empty).err().unwrap_or_default();
    assert!(p[0].message.contains("no *.toml"), "{p:?}");
    std::fs::write(empty.join("b.toml"), "[[rule]]\nname = \"b\"\n").expect("write");
    std::fs::write(empty.join("a.toml"), "[[rule]]\nname = \"a\"\n").expect("write");
    std::fs::write(empty.join("notes.txt"), "not rules").expect("write");
    let set = load_dir(&empty).unwrap_or_else(|p| panic!("{p:?}"));
    let names: Vec<&str> = set.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "files load in sorted name order");
    std::fs::remove_dir_all(&empty).expect("cleanup");
}
