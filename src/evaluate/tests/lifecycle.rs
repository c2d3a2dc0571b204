//! One test per clause of SPEC §3.1–3.4 for a single alert, on scripted
//! time.

use super::script::{Script, at, run, run_records};
use crate::evaluate::{AlertKey, Cause, NoticeKind};
use crate::model::RunStatus;

const STREAK: &str = r#"
[[rule]]
name = "r"
bad_when = { status = ["failed"], failed_ratio_above = 0.10 }
fire_after = 3
resolve_after = 2
"#;

#[test]
fn the_incident_fires_exactly_when_fire_after_is_reached() {
    let mut s = Script::new(STREAK);
    assert!(s.pattern("s", 0, 10, "SFF").is_empty());
    assert_eq!(s.pattern("s", 30, 10, "F"), ["30 s firing failed_runs"]);
    let n = &s.notices[0];
    assert_eq!(n.since, at(10), "since is the first BAD run of the streak");
    assert_eq!(
        n.condition,
        "3 consecutive failed runs (fire_after = 3); last: run s-30 failed"
    );
    assert!(
        s.pattern("s", 40, 10, "FF").is_empty(),
        "never two failure notices"
    );
}

#[test]
fn a_firing_incident_resolves_at_exactly_resolve_after_good_runs() {
    let mut s = Script::new(STREAK);
    s.pattern("s", 0, 10, "FFF");
    assert!(
        s.pattern("s", 30, 10, "SFS").is_empty(),
        "a BAD resets the good streak"
    );
    assert_eq!(s.pattern("s", 60, 10, "S"), ["60 s resolved"]);
    let n = &s.notices[1];
    assert_eq!(n.incident_id, s.notices[0].incident_id);
    assert_eq!(n.seq, 1);
}

#[test]
fn record_failures_fire_with_their_own_cause() {
    let mut s = Script::new(STREAK);
    for m in 0..3 {
        s.feed(&run_records("s", m * 10, 100, 40));
    }
    assert_eq!(s.all(), ["20 s firing record_failures"]);
    assert!(
        s.notices[0]
            .condition
            .starts_with("failed ratio 0.400 > 0.1 on run s-20")
    );
}

#[test]
fn the_cause_is_that_of_the_verdict_that_tipped_it() {
    let mut s = Script::new(STREAK);
    s.pattern("s", 0, 10, "FF");
    s.feed(&run_records("s", 20, 100, 40));
    assert_eq!(s.all(), ["20 s firing record_failures"]);
}

#[test]
fn cancelled_runs_neither_break_nor_reset_a_streak() {
    let mut s = Script::new(STREAK);
    assert_eq!(s.pattern("s", 0, 10, "FCFCCF"), ["50 s firing failed_runs"]);
    assert_eq!(s.pattern("s", 60, 10, "SCCS"), ["90 s resolved"]);
}

#[test]
fn a_cancelled_run_counts_as_a_sign_of_life_for_staleness() {
    let mut s = Script::new("[[rule]]\nname = \"r\"\nstale_after = \"1h\"\n");
    s.pattern("s", 0, 50, "SC");
    assert!(s.advance(109).is_empty());
    assert_eq!(s.advance(110), ["110 s firing stale"]);
}

const STALE: &str = r#"
[[rule]]
name = "r"
fire_after = 2
resolve_after = 3
stale_after = "1h"
"#;

#[test]
fn a_run_finishing_exactly_at_the_stale_deadline_comes_first() {
    let mut s = Script::new(STALE);
    s.pattern("s", 0, 60, "SS");
    assert!(s.all().is_empty(), "the run at the deadline moved it");
    assert!(s.advance(119).is_empty());
    assert_eq!(s.advance(120), ["120 s firing stale"]);
    let n = &s.notices[0];
    assert_eq!(
        n.since,
        at(60),
        "a stale incident runs since the newest run"
    );
    assert_eq!(n.condition, "no finished run for 1h (stale_after = 1h)");
}

#[test]
fn a_stale_deadline_fires_before_a_later_run() {
    let mut s = Script::new(STALE);
    s.pattern("s", 0, 10, "S");
    assert_eq!(s.pattern("s", 61, 10, "F"), ["60 s firing stale"]);
    assert!(
        s.pattern("s", 71, 10, "FCF").is_empty(),
        "BAD and neutral runs keep it stale"
    );
    assert_eq!(
        s.engine
            .alert(&AlertKey::new("r", "s"))
            .and_then(|a| a.cause),
        Some(Cause::Stale)
    );
}

#[test]
fn a_stale_incident_resolves_on_the_first_good_run() {
    let mut s = Script::new(STALE);
    s.pattern("s", 0, 10, "S");
    s.advance(200);
    assert_eq!(
        s.pattern("s", 300, 10, "S"),
        ["300 s resolved"],
        "resolve_after = 3 does not apply"
    );
}

#[test]
fn a_sync_already_firing_for_another_cause_does_not_go_stale() {
    let mut s = Script::new(STALE);
    s.pattern("s", 0, 10, "FF");
    assert!(s.advance(600).is_empty());
    assert_eq!(s.pattern("s", 700, 10, "SSS"), ["720 s resolved"]);
    assert_eq!(s.advance(779), Vec::<String>::new());
    assert_eq!(
        s.advance(780),
        ["780 s firing stale"],
        "the deadline is armed again"
    );
}

#[test]
fn a_pending_sync_can_go_stale() {
    let mut s = Script::new(STALE);
    s.pattern("s", 0, 10, "F");
    assert_eq!(s.advance(60), ["60 s firing stale"]);
    assert!(
        s.pattern("s", 70, 10, "F").is_empty(),
        "no second failure notice"
    );
    assert_eq!(s.pattern("s", 80, 10, "S"), ["80 s resolved"]);
}

const FLAP: &str = r#"
[[rule]]
name = "r"
fire_after = 10
flap = { window = 7, high = 0.4, low = 0.2 }
"#;

#[test]
fn a_share_that_rounds_to_just_below_high_still_starts_flapping() {
    // GGGGGBG weighs 2.4 / 6 = 0.39999999999999997 in floating point.
    let mut s = Script::new(FLAP);
    assert_eq!(s.pattern("s", 0, 10, "SSSSSFS"), ["60 s firing flapping"]);
    assert_eq!(s.notices[0].condition, "flap share 0.40 ≥ 0.40 over 7 runs");
}

#[test]
fn hysteresis_keeps_flapping_between_low_and_high() {
    let mut s = Script::new(FLAP);
    s.pattern("s", 0, 10, "SSSSSFS");
    // The window slides through shares 0.37, 0.33, 0.30, 0.27: all between
    // low and high, so the flag holds.
    assert!(s.pattern("s", 70, 10, "SSSS").is_empty());
    assert!(
        s.engine
            .alert(&AlertKey::new("r", "s"))
            .is_some_and(|a| a.flapping)
    );
    // 0.125 < low: settled.
    assert_eq!(s.pattern("s", 110, 10, "S"), ["110 s resolved"]);
}

#[test]
fn the_flag_is_off_until_the_window_is_full_and_neutral_runs_do_not_enter_it() {
    let mut s = Script::new(FLAP);
    assert!(
        s.pattern("s", 0, 10, "FSFSFS").is_empty(),
        "6 of 7 verdicts"
    );
    assert!(
        s.pattern("s", 60, 10, "CC").is_empty(),
        "cancelled runs do not fill it"
    );
    assert_eq!(s.pattern("s", 80, 10, "F"), ["80 s firing flapping"]);
}

#[test]
fn a_flapping_incident_that_starts_failing_stays_one_incident() {
    let mut s = Script::new(
        "[[rule]]\nname = \"r\"\nfire_after = 3\nresolve_after = 1\nflap = { window = 5, high = 0.5, low = 0.3 }\n",
    );
    assert_eq!(s.pattern("s", 0, 10, "FSFSF"), ["40 s firing flapping"]);
    assert!(
        s.pattern("s", 50, 10, "FF").is_empty(),
        "underlying firing under a sent flapping incident"
    );
    // A GOOD resolves the underlying state, but the window GBBBG still
    // weighs 0.5: flapping, so desired stays firing.
    assert!(s.pattern("s", 70, 10, "S").is_empty());
    // BBBGG weighs 0.27 < low: settled.
    assert_eq!(s.pattern("s", 80, 10, "S"), ["80 s resolved"]);
    assert_eq!(s.notices[0].incident_id, s.notices[1].incident_id);
}

const REMIND: &str = r#"
[[rule]]
name = "r"
fire_after = 1
repeat_every = "6h"
"#;

#[test]
fn reminders_go_out_at_exactly_repeat_every_and_a_resolve_cancels_them() {
    let mut s = Script::new(REMIND);
    s.pattern("s", 0, 60, "F");
    assert!(s.advance(359).is_empty());
    assert_eq!(s.advance(360), ["360 s reminder"]);
    s.pattern("s", 400, 60, "F");
    assert_eq!(s.advance(720), ["720 s reminder"]);
    assert_eq!(s.pattern("s", 800, 60, "S"), ["800 s resolved"]);
    assert!(s.advance(5000).is_empty());
    let seqs: Vec<(NoticeKind, u32)> = s.notices.iter().map(|n| (n.kind, n.seq)).collect();
    assert_eq!(
        seqs,
        [
            (NoticeKind::Firing, 0),
            (NoticeKind::Reminder, 1),
            (NoticeKind::Reminder, 2),
            (NoticeKind::Resolved, 3)
        ]
    );
}

#[test]
fn a_reminder_due_at_a_runs_finish_goes_out_after_it() {
    let mut s = Script::new(REMIND);
    s.pattern("s", 0, 60, "F");
    // The run at the reminder instant comes first; the reminder is due at
    // 360 still and fires on the next advance.
    assert!(s.feed(&run("s", 360, RunStatus::Failed)).is_empty());
    assert_eq!(s.advance(360), ["360 s reminder"]);
}

#[test]
fn incidents_get_fresh_ids_and_the_state_name_follows_them() {
    let mut s = Script::new(STREAK);
    let key = AlertKey::new("r", "s");
    s.pattern("s", 0, 10, "F");
    assert_eq!(
        s.engine.alert(&key).map(|a| a.state_name()),
        Some("pending")
    );
    s.pattern("s", 10, 10, "FF");
    assert_eq!(s.engine.alert(&key).map(|a| a.state_name()), Some("firing"));
    s.pattern("s", 30, 10, "SSFFF");
    assert_eq!(s.all().len(), 3);
    assert_ne!(s.notices[0].incident_id, s.notices[2].incident_id);
    assert_eq!(s.notices[0].incident_id.len(), 16);
}
