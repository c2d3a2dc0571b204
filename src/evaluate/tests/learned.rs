//! SPEC §3.2 learned thresholds (`"auto"`) through the engine; the pure
//! arithmetic is tested in `learn.rs`.

use super::script::Script;
use crate::evaluate::AlertKey;

const AUTO: &str = r#"
[[rule]]
name = "r"
fire_after = "auto"
stale_after = "auto"
"#;

#[test]
fn a_quiet_sync_fires_after_min_bad_runs_even_while_warming_up() {
    let mut s = Script::new(AUTO);
    assert_eq!(s.pattern("q", 0, 10, "SSSFF"), ["40 q firing failed_runs"]);
    let a = s.engine.alert(&AlertKey::new("r", "q")).cloned();
    assert_eq!(a.map(|a| (a.learned.k, a.learned.p)), Some((Some(2), None)));
}

#[test]
fn a_noisy_sync_learns_to_wait_longer() {
    let mut s = Script::new(AUTO);
    let noise = "SSSSSSSSSF".repeat(10);
    assert!(s.pattern("n", 0, 10, &noise).is_empty());
    assert!(
        s.pattern("n", 1000, 10, "SFFF").is_empty(),
        "p ≈ 0.099 makes k = 4"
    );
    assert_eq!(s.pattern("n", 1040, 10, "F"), ["1040 n firing failed_runs"]);
    let a = s.engine.alert(&AlertKey::new("r", "n")).cloned();
    let learned = a.map(|a| a.learned).unwrap_or_default();
    assert_eq!(learned.k, Some(4));
    assert_eq!(learned.p, Some(10.0 / 101.0));
    assert!(s.notices[0].condition.contains("fire_after = auto → 4"));
}

#[test]
fn verdicts_while_firing_stay_out_of_the_calm_history() {
    let mut s = Script::new(AUTO);
    s.pattern("q", 0, 10, "SSFFFFFFS");
    let a = s.engine.alert(&AlertKey::new("r", "q")).cloned();
    // The tipping BAD is appended (the state was pending before it); the
    // BADs and the resolving GOOD after it are not.
    assert_eq!(
        a.map(|a| a.calm.to_gb()),
        Some("SSFF".replace('S', "G").replace('F', "B"))
    );
}

#[test]
fn fewer_than_five_gaps_never_go_stale() {
    let mut s = Script::new(AUTO);
    s.pattern("q", 0, 15, "SSSSS");
    assert_eq!(s.engine.next_deadline(), None);
    assert!(s.advance(100_000).is_empty());
}

#[test]
fn the_stale_deadline_is_stale_factor_times_the_median_gap() {
    let mut s = Script::new(AUTO);
    s.pattern("q", 0, 15, "SSSSSS");
    assert!(s.advance(134).is_empty());
    assert_eq!(s.advance(135), ["135 q firing stale"]);
    assert!(s.notices[0].condition.contains("stale_after = auto → 1h"));
}

#[test]
fn the_stale_deadline_never_comes_before_stale_min() {
    let mut s = Script::new(AUTO);
    s.pattern("q", 0, 1, "SSSSSS");
    assert!(s.advance(34).is_empty());
    assert_eq!(s.advance(35), ["35 q firing stale"]);
}
