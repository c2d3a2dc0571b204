//! SPEC §3.5 on scripted time: upstream inhibition and silences.

use std::collections::BTreeMap;

use super::script::{Script, at};
use crate::evaluate::{AlertKey, HoldReason, Silence};

const DEPS: &str = r#"
[[rule]]
name = "r"
fire_after = 2
resolve_after = 1
repeat_every = "2h"

[[sync]]
id = "down"
depends_on = ["up"]
"#;

fn silence(id: &str, sync: &str, from: i64, to: i64) -> Silence {
    Silence {
        id: id.into(),
        rule: "*".into(),
        sync: sync.into(),
        labels: BTreeMap::new(),
        starts_at: at(from),
        ends_at: at(to),
    }
}

#[test]
fn a_downstream_firing_is_held_while_its_upstream_fires_and_sent_when_it_recovers() {
    let mut s = Script::new(DEPS);
    assert_eq!(s.pattern("up", 0, 10, "FF"), ["10 up firing failed_runs"]);
    assert_eq!(
        s.notices[0].downstream,
        ["down"],
        "the upstream lists its downstreams"
    );
    assert_eq!(
        s.pattern("down", 15, 10, "FF"),
        ["held 25 down firing failed_runs"]
    );
    assert_eq!(s.notices[1].reason.as_deref(), Some("up"));
    assert_eq!(
        s.engine.is_held(&AlertKey::new("r", "down")),
        Some(HoldReason::Inhibited)
    );
    assert!(s.pattern("down", 35, 10, "F").is_empty(), "recorded once");
    assert_eq!(
        s.pattern("up", 40, 10, "S"),
        ["40 up resolved", "40 down firing failed_runs"]
    );
    let released = &s.notices[3];
    assert_eq!(released.since, at(15));
    assert_eq!(released.incident_id, s.notices[1].incident_id);
    assert_ne!(
        released.key(),
        s.notices[1].key(),
        "the held record has its own key"
    );
}

#[test]
fn a_held_firing_that_resolves_before_release_sends_nothing() {
    let mut s = Script::new(DEPS);
    s.pattern("up", 0, 10, "FF");
    s.pattern("down", 15, 10, "FFS");
    s.pattern("up", 50, 10, "S");
    s.advance(1000);
    let down: Vec<String> = s.all().into_iter().filter(|n| n.contains("down")).collect();
    assert_eq!(down, ["held 25 down firing failed_runs"]);
}

#[test]
fn a_reminder_due_while_held_goes_out_when_the_hold_ends() {
    let mut s = Script::new(DEPS);
    assert_eq!(
        s.pattern("down", 0, 10, "FF"),
        ["10 down firing failed_runs"]
    );
    s.pattern("up", 50, 10, "FF");
    // The downstream's reminder due at 130 is owed; the upstream's own
    // reminder is not held.
    assert_eq!(s.advance(199), ["180 up reminder"]);
    assert_eq!(
        s.pattern("up", 200, 10, "S"),
        ["200 up resolved", "200 down reminder"]
    );
    assert!(
        s.advance(319).is_empty(),
        "the next counts from the release"
    );
    assert_eq!(s.advance(320), ["320 down reminder"]);
}

#[test]
fn a_flapping_upstream_does_not_hold() {
    let mut s = Script::new(
        r#"
[[rule]]
name = "r"
fire_after = 3
flap = { window = 4, high = 0.5, low = 0.2 }

[[sync]]
id = "down"
depends_on = ["up"]
"#,
    );
    assert_eq!(s.pattern("up", 0, 10, "FSFS"), ["30 up firing flapping"]);
    assert_eq!(
        s.pattern("down", 40, 10, "FFF"),
        ["60 down firing failed_runs"]
    );
}

#[test]
fn holds_follow_direct_upstreams_only() {
    let mut s = Script::new(
        r#"
[[rule]]
name = "r"
[[sync]]
id = "b"
depends_on = ["a"]
[[sync]]
id = "c"
depends_on = ["b"]
"#,
    );
    s.pattern("a", 0, 10, "F");
    assert_eq!(s.pattern("c", 5, 10, "F"), ["5 c firing failed_runs"]);
}

#[test]
fn an_upstream_firing_under_any_rule_holds() {
    let mut s = Script::new(
        r#"
[[rule]]
name = "dbt"
match = { sync = "dbt:*" }
[[rule]]
name = "census"
match = { sync = "census:*" }
[[sync]]
id = "census:1"
depends_on = ["dbt:marts"]
"#,
    );
    s.pattern("dbt:marts", 0, 10, "F");
    assert_eq!(
        s.pattern("census:1", 5, 10, "F"),
        ["held 5 census:1 firing failed_runs"]
    );
    assert_eq!(
        s.pattern("dbt:marts", 20, 10, "S"),
        ["20 dbt:marts resolved", "20 census:1 firing failed_runs"]
    );
}

#[test]
fn a_silence_holds_and_its_end_releases_at_exactly_ends_at() {
    let mut s = Script::new(DEPS);
    assert!(
        s.engine
            .set_silences(vec![silence("maint", "do*", 0, 100)], at(0))
            .is_empty()
    );
    assert_eq!(
        s.pattern("down", 10, 10, "FF"),
        ["held 20 down firing failed_runs"]
    );
    assert_eq!(s.notices[0].held, Some(HoldReason::Silenced));
    assert_eq!(s.notices[0].reason.as_deref(), Some("maint"));
    assert_eq!(s.pattern("up", 30, 10, "FF"), ["40 up firing failed_runs"]);
    assert_eq!(s.engine.next_deadline(), Some(at(100)));
    assert!(s.advance(99).is_empty());
    // At 100 the silence has ended, but the upstream still fires: held on,
    // now for another reason, and not recorded a second time.
    assert!(s.advance(100).is_empty());
    assert_eq!(
        s.engine.is_held(&AlertKey::new("r", "down")),
        Some(HoldReason::Inhibited)
    );
    assert_eq!(
        s.pattern("up", 150, 10, "S"),
        ["150 up resolved", "150 down firing failed_runs"]
    );
}

#[test]
fn a_silence_ending_releases_a_held_firing() {
    let mut s = Script::new(DEPS);
    s.engine
        .set_silences(vec![silence("maint", "*", 0, 100)], at(0));
    s.pattern("down", 10, 10, "FF");
    assert_eq!(s.advance(100), ["100 down firing failed_runs"]);
}

#[test]
fn a_silence_set_later_holds_reminders_until_it_ends() {
    let mut s = Script::new(DEPS);
    s.pattern("down", 0, 10, "FF");
    assert!(
        s.engine
            .set_silences(vec![silence("quiet", "down", 60, 200)], at(30))
            .is_empty()
    );
    assert_eq!(s.engine.next_deadline(), Some(at(60)));
    assert!(s.advance(199).is_empty(), "the reminder due at 130 is owed");
    assert_eq!(s.advance(200), ["200 down reminder"]);
    assert_eq!(s.advance(320), ["320 down reminder"]);
}

#[test]
fn removing_a_silence_releases_at_once() {
    let mut s = Script::new(DEPS);
    s.engine
        .set_silences(vec![silence("maint", "*", 0, 1000)], at(0));
    s.pattern("down", 10, 10, "FF");
    let got = s.engine.set_silences(Vec::new(), at(50));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].at, at(50));
}

#[test]
fn a_silence_matches_labels_by_equality() {
    let mut s = Script::new(DEPS);
    let mut quiet = silence("team", "*", 0, 1000);
    quiet.labels.insert("team".into(), "growth".into());
    s.engine.set_silences(vec![quiet], at(0));
    assert_eq!(
        s.pattern("down", 10, 10, "FF"),
        ["20 down firing failed_runs"],
        "no team label: not silenced"
    );
}

#[test]
fn a_resolved_notice_is_never_held() {
    let mut s = Script::new(DEPS);
    assert_eq!(
        s.pattern("down", 0, 10, "FF"),
        ["10 down firing failed_runs"]
    );
    s.pattern("up", 20, 10, "FF");
    assert_eq!(s.pattern("down", 40, 10, "S"), ["40 down resolved"]);
}
