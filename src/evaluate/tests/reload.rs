//! SPEC §3.6 reloads, the undo journal, and restore from persisted states.

use std::collections::BTreeMap;

use super::script::{Script, at, rules, run, show};
use crate::evaluate::{AlertKey, AlertState, Engine, Notice, Silence};
use crate::model::{Run, RunStatus};

const TWO_RULES: &str = r#"
[[rule]]
name = "keep"
fire_after = 3

[[rule]]
name = "old"
fire_after = 2
"#;

#[test]
fn a_removed_rule_resolves_its_notified_alerts_with_a_reason() {
    let mut s = Script::new(TWO_RULES);
    s.pattern("s", 0, 10, "FF");
    assert_eq!(s.all(), ["10 s firing failed_runs"]);
    s.engine.commit();
    let got = s.engine.replace_rules(
        rules("[[rule]]\nname = \"keep\"\nfire_after = 3\n"),
        at(100),
    );
    assert_eq!(got.iter().map(show).collect::<Vec<_>>(), ["100 s resolved"]);
    assert_eq!(got[0].reason.as_deref(), Some("rule_removed"));
    assert_eq!(got[0].incident_id, s.notices[0].incident_id);
    assert!(s.engine.alert(&AlertKey::new("old", "s")).is_none());
    assert_eq!(
        s.engine.dirty(),
        [AlertKey::new("old", "s")],
        "removed alerts are dirty"
    );
}

#[test]
fn a_renamed_rule_starts_fresh_and_a_kept_rule_keeps_its_streak() {
    let mut s = Script::new(TWO_RULES);
    s.pattern("s", 0, 10, "FF");
    let renamed =
        "[[rule]]\nname = \"keep\"\nfire_after = 3\n[[rule]]\nname = \"new\"\nfire_after = 2\n";
    let got = s.engine.replace_rules(rules(renamed), at(25));
    assert_eq!(got.iter().map(show).collect::<Vec<_>>(), ["25 s resolved"]);
    // "keep" already saw two BADs: its third fires; "new" begins counting.
    assert_eq!(s.pattern("s", 30, 10, "F"), ["30 s firing failed_runs"]);
    assert_eq!(s.notices.last().map(|n| n.rule.as_str()), Some("keep"));
    assert_eq!(s.pattern("s", 40, 10, "F"), ["40 s firing failed_runs"]);
    assert_eq!(s.notices.last().map(|n| n.rule.as_str()), Some("new"));
}

#[test]
fn a_kept_rule_adopts_new_parameters() {
    let mut s = Script::new("[[rule]]\nname = \"r\"\nfire_after = 3\n");
    s.pattern("s", 0, 10, "F");
    s.engine.replace_rules(
        rules("[[rule]]\nname = \"r\"\nfire_after = 2\nstale_after = \"1h\"\n"),
        at(15),
    );
    assert_eq!(
        s.engine.next_deadline(),
        Some(at(60)),
        "the stale deadline is armed from the newest run"
    );
    assert_eq!(s.pattern("s", 20, 10, "F"), ["20 s firing failed_runs"]);
}

#[test]
fn a_shortened_stale_after_fires_no_earlier_than_the_reload() {
    let mut s = Script::new("[[rule]]\nname = \"r\"\nstale_after = \"5h\"\n");
    s.pattern("s", 0, 10, "S");
    s.engine.replace_rules(
        rules("[[rule]]\nname = \"r\"\nstale_after = \"1h\"\n"),
        at(100),
    );
    assert_eq!(s.advance(100), ["100 s firing stale"]);
}

#[test]
fn a_kept_rule_that_no_longer_matches_drops_its_alerts() {
    let mut s = Script::new("[[rule]]\nname = \"r\"\n");
    s.pattern("s", 0, 10, "F");
    let got = s.engine.replace_rules(
        rules("[[rule]]\nname = \"r\"\nmatch = { sync = \"other\" }\n"),
        at(50),
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].reason.as_deref(), Some("rule_no_longer_matches"));
}

#[test]
fn removing_the_upstreams_rule_releases_held_downstreams() {
    let both = r#"
[[rule]]
name = "dbt"
match = { sync = "up" }
[[rule]]
name = "down"
match = { sync = "down" }
[[sync]]
id = "down"
depends_on = ["up"]
"#;
    let mut s = Script::new(both);
    s.pattern("up", 0, 10, "F");
    assert_eq!(
        s.pattern("down", 5, 10, "F"),
        ["held 5 down firing failed_runs"]
    );
    let only_down = "[[rule]]\nname = \"down\"\nmatch = { sync = \"down\" }\n[[sync]]\nid = \"down\"\ndepends_on = [\"up\"]\n";
    let got = s.engine.replace_rules(rules(only_down), at(30));
    let mut shown: Vec<String> = got.iter().map(show).collect();
    shown.sort();
    assert_eq!(shown, ["30 down firing failed_runs", "30 up resolved"]);
}

/// A history that exercises every timer and hold: two dependent syncs, a
/// flappy one and a quiet one that stops.
fn history() -> Vec<Run> {
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % 100
    };
    let mut runs = Vec::new();
    for i in 0..120 {
        let m = i * 20;
        for (sync, fail) in [("up", 20), ("down", 30), ("flappy", 50), ("quiet", 3)] {
            if sync == "quiet" && (60..80).contains(&i) {
                continue;
            }
            let status = if next() < fail {
                RunStatus::Failed
            } else if next() < 5 {
                RunStatus::Cancelled
            } else {
                RunStatus::Success
            };
            runs.push(run(sync, m + (next() as i64 % 7), status));
        }
    }
    runs.sort_by_key(|r| (r.finished_at, r.sync_id.clone()));
    runs
}

const MIXED: &str = r#"
[[rule]]
name = "streak"
fire_after = 2
resolve_after = 2
repeat_every = "3h"
stale_after = "2h"
flap = { window = 8, high = 0.5, low = 0.25 }

[[rule]]
name = "learned"
match = { sync = "{quiet,flappy}" }
fire_after = "auto"
stale_after = "auto"
auto = { warmup = 5 }

[[sync]]
id = "down"
depends_on = ["up"]
"#;

fn silences() -> Vec<Silence> {
    vec![Silence {
        id: "night".into(),
        rule: "streak".into(),
        sync: "d*".into(),
        labels: BTreeMap::new(),
        starts_at: at(600),
        ends_at: at(900),
    }]
}

fn play(engine: &mut Engine, runs: &[Run]) -> Vec<Notice> {
    let mut out = Vec::new();
    for r in runs {
        out.extend(engine.on_run(r));
    }
    out
}

/// The notices of one engine that sees the whole history, then `end`.
fn uninterrupted(runs: &[Run], end: crate::model::Timestamp) -> Vec<Notice> {
    let mut whole = Engine::new(rules(MIXED));
    whole.set_silences(silences(), at(0));
    let mut expected = play(&mut whole, runs);
    expected.extend(whole.advance_to(end));
    expected
}

#[test]
fn restore_from_serialized_states_continues_like_an_uninterrupted_engine() {
    let runs = history();
    let end = at(2500);
    let expected = uninterrupted(&runs, end);
    assert!(
        expected.iter().any(|n| n.held.is_some()),
        "the history exercises holds"
    );
    assert!(
        expected
            .iter()
            .any(|n| n.cause == Some(crate::evaluate::Cause::Stale))
    );
    for split in [1, runs.len() / 3, runs.len() / 2, runs.len() - 1] {
        let mut first = Engine::new(rules(MIXED));
        first.set_silences(silences(), at(0));
        let mut got = play(&mut first, &runs[..split]);
        let persisted: Vec<String> = first
            .alerts()
            .map(|a| serde_json::to_string(a).expect("an alert state serializes"))
            .collect();
        let states: Vec<AlertState> = persisted
            .iter()
            .map(|j| serde_json::from_str(j).unwrap_or_else(|e| panic!("{e}: {j}")))
            .collect();
        let mut second = Engine::restore(rules(MIXED), states, silences());
        got.extend(play(&mut second, &runs[split..]));
        got.extend(second.advance_to(end));
        assert_eq!(got, expected, "split at run {split}");
    }
}

#[test]
fn rollback_restores_every_alert_timer_and_silence_exactly() {
    let runs = history();
    let (before, after) = runs.split_at(runs.len() / 2);
    let mut reference = Engine::new(rules(MIXED));
    let mut engine = Engine::new(rules(MIXED));
    play(&mut reference, before);
    play(&mut engine, before);
    engine.commit();
    let snapshot: Vec<AlertState> = engine.alerts().cloned().collect();
    let deadline = engine.next_deadline();

    // Everything that can change, then undone.
    play(&mut engine, &after[..10]);
    engine.advance_to(at(2400));
    engine.set_silences(silences(), at(2400));
    engine.replace_rules(rules("[[rule]]\nname = \"other\"\n"), at(2400));
    engine.on_run(&run("brand-new", 2401, RunStatus::Failed));
    assert!(!engine.dirty().is_empty());
    engine.rollback();

    assert!(engine.dirty().is_empty());
    assert_eq!(engine.alerts().cloned().collect::<Vec<_>>(), snapshot);
    assert_eq!(engine.next_deadline(), deadline);
    assert_eq!(engine.silences().count(), 0);
    assert_eq!(engine.rules().rules.len(), 2);
    let mut want = play(&mut reference, after);
    want.extend(reference.advance_to(at(2500)));
    let mut got = play(&mut engine, after);
    got.extend(engine.advance_to(at(2500)));
    assert_eq!(got, want);
}

#[test]
fn dirty_lists_only_alerts_that_changed_since_commit() {
    let mut s = Script::new("[[rule]]\nname = \"r\"\n");
    s.pattern("a", 0, 10, "S");
    s.pattern("b", 0, 10, "S");
    s.engine.commit();
    assert!(s.engine.dirty().is_empty());
    s.pattern("a", 20, 10, "F");
    assert_eq!(s.engine.dirty(), [AlertKey::new("r", "a")]);
}

#[test]
fn a_restored_alert_whose_rule_is_gone_resolves_at_the_next_event() {
    let mut s = Script::new(TWO_RULES);
    s.pattern("s", 0, 10, "FF");
    let states: Vec<AlertState> = s.engine.alerts().cloned().collect();
    let mut e = Engine::restore(
        rules("[[rule]]\nname = \"keep\"\nfire_after = 3\n"),
        states,
        Vec::new(),
    );
    assert!(
        e.alert(&AlertKey::new("old", "s")).is_some(),
        "kept until the next event"
    );
    let got = e.on_run(&run("s", 20, RunStatus::Success));
    assert_eq!(got.iter().map(show).collect::<Vec<_>>(), ["20 s resolved"]);
    assert_eq!(got[0].reason.as_deref(), Some("rule_removed"));
    assert!(e.alert(&AlertKey::new("old", "s")).is_none());
    assert!(e.dirty().contains(&AlertKey::new("old", "s")));
    e.rollback();
    assert!(
        e.alert(&AlertKey::new("old", "s")).is_some(),
        "rollback brings the orphan back"
    );
    assert_eq!(e.on_run(&run("s", 20, RunStatus::Success)).len(), 1);
}

#[test]
fn a_restored_flap_share_is_the_one_its_window_gives() {
    // serde_json can read a float back one ulp off; at a rounding tie that
    // would turn "flap share 0.48" into "0.47" after a restart.
    let toml = "[[rule]]\nname = \"r\"\nfire_after = 9\n\
                flap = { window = 7, high = 0.1, low = 0.0 }\n";
    let mut s = Script::new(toml);
    s.pattern("a", 0, 10, "SSFSFFF");
    let key = AlertKey::new("r", "a");
    let original = s.engine.alert(&key).cloned().expect("an alert");
    let share = original.flap_share.expect("a full window");
    let mut json = serde_json::to_value(&original).expect("serializes");
    json["flap_share"] = serde_json::json!(f64::from_bits(share.to_bits() + 1));
    let state: AlertState = serde_json::from_value(json).expect("parses");
    assert_ne!(state.flap_share.map(f64::to_bits), Some(share.to_bits()));
    let restored = Engine::restore(rules(toml), vec![state], Vec::new());
    let back = restored.alert(&key).and_then(|a| a.flap_share);
    assert_eq!(back.map(f64::to_bits), Some(share.to_bits()));
}

/// Two replicas on one database: each evaluates every other run, taking in
/// the alert states the other committed (`merge`) before its own turn, as
/// the server's writer does under the store's lock. Together they give the
/// notices one engine gives, timers included.
#[test]
fn two_engines_merging_each_others_commits_act_as_one() {
    let runs = history();
    let end = at(2500);
    let expected = uninterrupted(&runs, end);

    let mut replicas = [Engine::new(rules(MIXED)), Engine::new(rules(MIXED))];
    for e in &mut replicas {
        e.set_silences(silences(), at(0));
        e.commit();
    }
    let mut got = Vec::new();
    // What each replica has not yet taken in from the other.
    let mut inbox: [Vec<AlertState>; 2] = [Vec::new(), Vec::new()];
    for (i, r) in runs.iter().enumerate() {
        let me = i % 2;
        let pending = std::mem::take(&mut inbox[me]);
        replicas[me].merge(pending);
        got.extend(replicas[me].on_run(r));
        let changed: Vec<AlertState> = replicas[me]
            .dirty()
            .iter()
            .filter_map(|k| replicas[me].alert(k).cloned())
            .collect();
        replicas[me].commit();
        inbox[1 - me].extend(changed);
    }
    let last = (runs.len() - 1) % 2;
    let other = 1 - last;
    let pending = std::mem::take(&mut inbox[other]);
    replicas[other].merge(pending);
    got.extend(replicas[other].advance_to(end));
    assert!(expected.len() > 4, "the history produces notices");
    assert_eq!(
        got.iter().map(show).collect::<Vec<_>>(),
        expected.iter().map(show).collect::<Vec<_>>()
    );
    assert_eq!(got, expected);
}
