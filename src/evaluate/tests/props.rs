//! Property tests: for random histories, random valid rules and a random
//! silence, the notices users rely on keep their shape (SPEC §3.4): per
//! alert, sent notices alternate firing / resolved beginning with firing,
//! reminders only inside an incident, and no notice key ever repeats.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::script::{at, rules, run_records};
use crate::evaluate::{Engine, Notice, NoticeKind, Silence};
use crate::model::RunStatus;

const SYNCS: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
struct RuleParams {
    fire_after: Option<u32>,
    resolve_after: u32,
    flap: Option<(usize, f64, f64)>,
    stale_after: Option<Option<u32>>,
    repeat_every: Option<u32>,
}

fn rule_params() -> impl Strategy<Value = RuleParams> {
    (
        prop::option::weighted(0.8, 1u32..5),
        1u32..4,
        prop::option::of((3usize..9, 1u32..10, 0u32..10)),
        prop::option::of(prop::option::weighted(0.7, 30u32..400)),
        prop::option::of(60u32..600),
    )
        .prop_map(
            |(fire_after, resolve_after, flap, stale_after, repeat_every)| RuleParams {
                fire_after,
                resolve_after,
                flap: flap.map(|(w, h, l)| {
                    let high = f64::from(h) / 10.0;
                    (w, high, high * f64::from(l) / 10.0)
                }),
                stale_after,
                repeat_every,
            },
        )
}

fn toml(params: &[RuleParams]) -> String {
    let mut t = String::new();
    for (i, p) in params.iter().enumerate() {
        t.push_str(&format!("[[rule]]\nname = \"r{i}\"\n"));
        if i == 1 {
            t.push_str("match = { sync = \"{b,c}\" }\n");
        }
        t.push_str("bad_when = { status = [\"failed\"], failed_ratio_above = 0.2 }\n");
        match p.fire_after {
            Some(k) => t.push_str(&format!("fire_after = {k}\n")),
            None => t.push_str("fire_after = \"auto\"\nauto = { warmup = 4, max = 4 }\n"),
        }
        t.push_str(&format!("resolve_after = {}\n", p.resolve_after));
        if let Some((w, high, low)) = p.flap {
            t.push_str(&format!(
                "flap = {{ window = {w}, high = {high}, low = {low} }}\n"
            ));
        }
        match p.stale_after {
            Some(Some(m)) => t.push_str(&format!("stale_after = \"{m}m\"\n")),
            Some(None) => t.push_str("stale_after = \"auto\"\n"),
            None => {}
        }
        if let Some(m) = p.repeat_every {
            t.push_str(&format!("repeat_every = \"{m}m\"\n"));
        }
    }
    t.push_str("[[sync]]\nid = \"b\"\ndepends_on = [\"a\"]\n[[sync]]\nid = \"d\"\ndepends_on = [\"a\", \"c\"]\n");
    t
}

/// (sync, minutes since the previous run, status 0..3, failed records).
fn history() -> impl Strategy<Value = Vec<(usize, i64, u8, u64)>> {
    prop::collection::vec((0usize..4, 0i64..90, 0u8..3, 0u64..4), 1..120)
}

fn check_shape(notices: &[Notice]) -> Result<(), String> {
    let mut keys = BTreeSet::new();
    for n in notices {
        if !keys.insert(n.key()) {
            return Err(format!("key {} repeats", n.key()));
        }
    }
    let mut per_alert: BTreeMap<(&str, &str), Vec<&Notice>> = BTreeMap::new();
    for n in notices.iter().filter(|n| n.is_sent()) {
        per_alert.entry((&n.rule, &n.sync_id)).or_default().push(n);
    }
    for (alert, list) in per_alert {
        let mut open: Option<&str> = None;
        for n in list {
            match (n.kind, open) {
                (NoticeKind::Firing, None) => open = Some(&n.incident_id),
                (NoticeKind::Reminder, Some(id)) if id == n.incident_id => {}
                (NoticeKind::Resolved, Some(id)) if id == n.incident_id => open = None,
                _ => return Err(format!("{alert:?}: {:?} {} out of turn", n.kind, n.at)),
            }
        }
    }
    Ok(())
}

fn build_runs(runs: &[(usize, i64, u8, u64)]) -> Vec<crate::model::Run> {
    let mut minute = 0;
    runs.iter()
        .enumerate()
        .map(|(i, (sync, gap, status, failed))| {
            minute += gap;
            let mut r = run_records(SYNCS[*sync], minute, 10, *failed);
            r.run_id = format!("run-{i}");
            r.status =
                [RunStatus::Success, RunStatus::Failed, RunStatus::Cancelled][usize::from(*status)];
            r
        })
        .collect()
}

fn silence_of(window: Option<(i64, i64)>) -> Vec<Silence> {
    window
        .map(|(from, len)| Silence {
            id: "s".into(),
            rule: "*".into(),
            sync: "{a,b,d}".into(),
            labels: BTreeMap::new(),
            starts_at: at(from),
            ends_at: at(from + len),
        })
        .into_iter()
        .collect()
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn sent_notices_alternate_and_keys_never_repeat(
        params in prop::collection::vec(rule_params(), 1..3),
        runs in history(),
        silence in prop::option::of((0i64..2000, 1i64..600)),
    ) {
        let mut engine = Engine::new(rules(&toml(&params)));
        let mut notices = engine.set_silences(silence_of(silence), at(0));
        let runs = build_runs(&runs);
        for r in &runs {
            notices.extend(engine.on_run(r));
        }
        let end = runs.last().and_then(|r| r.finished_at).unwrap_or(at(0)).plus_millis(3000 * 60_000);
        notices.extend(engine.advance_to(end));
        let times: Vec<_> = notices.iter().map(|n| n.at).collect();
        let mut sorted = times.clone();
        sorted.sort();
        prop_assert_eq!(times, sorted, "notices come out in time order");
        if let Err(why) = check_shape(&notices) {
            return Err(TestCaseError::fail(why));
        }
    }

    #[test]
    fn a_restored_engine_and_a_rolled_back_one_continue_like_the_original(
        params in prop::collection::vec(rule_params(), 1..3),
        runs in history(),
        silence in prop::option::of((0i64..2000, 1i64..600)),
        split in 0usize..120,
    ) {
        let set = || rules(&toml(&params));
        let runs = build_runs(&runs);
        let split = split.min(runs.len());
        let end = runs.last().and_then(|r| r.finished_at).unwrap_or(at(0)).plus_millis(3000 * 60_000);
        let mut whole = Engine::new(set());
        whole.set_silences(silence_of(silence), at(0));
        let mut part = Engine::new(set());
        part.set_silences(silence_of(silence), at(0));
        for r in &runs[..split] {
            whole.on_run(r);
            part.on_run(r);
        }
        let json: Vec<String> = part
            .alerts()
            .map(|a| serde_json::to_string(a).expect("an alert state serializes"))
            .collect();
        let states = json
            .iter()
            .map(|j| serde_json::from_str(j).expect("an alert state parses back"))
            .collect();
        let mut restored = Engine::restore(set(), states, silence_of(silence));
        // Wander off and come back: the rolled-back engine must be the same.
        part.commit();
        for r in &runs[split..] {
            part.on_run(r);
        }
        part.advance_to(end);
        part.rollback();
        let mut want = Vec::new();
        let mut got_restored = Vec::new();
        let mut got_rolled = Vec::new();
        for r in &runs[split..] {
            want.extend(whole.on_run(r));
            got_restored.extend(restored.on_run(r));
            got_rolled.extend(part.on_run(r));
        }
        want.extend(whole.advance_to(end));
        got_restored.extend(restored.advance_to(end));
        got_rolled.extend(part.advance_to(end));
        prop_assert_eq!(&got_restored, &want);
        prop_assert_eq!(&got_rolled, &want);
    }
}
