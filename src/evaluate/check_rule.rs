//! Checks one `[[rule]]` table field by field (SPEC §2) and builds the
//! validated [`Rule`] when nothing is wrong.
//!
//! Every field is checked even after a problem was found, so one run of
//! `rules check` lists everything to fix in the rule.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::check::FileCheck;
use super::duration::parse_duration;
use super::raw::{RawAuto, RawBadWhen, RawFlap, RawRule};
use super::rules::{AutoParams, BadWhen, FireAfter, Flap, Matcher, Rule, StaleAfter};
use crate::model::RunStatus;

const CHANNEL_KINDS: &[&str] = &["email", "slack", "webhook"];

pub(super) fn check_rule(c: &mut FileCheck<'_>, raw: RawRule, line: usize) -> Option<Rule> {
    let before = c.problems.len();
    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty() || name.chars().any(char::is_control) {
        c.report(
            &raw.name.span(),
            "a rule needs a non-empty name without control characters",
            "alerts are keyed by rule name, e.g. name = \"sync-broken\"",
        );
    }
    let matcher = check_match(c, &raw);
    let bad_when = check_bad_when(c, raw.bad_when.as_ref());
    let fire_after = raw
        .fire_after
        .as_ref()
        .map_or(Some(FireAfter::Fixed(1)), |v| check_fire_after(c, v));
    let resolve_after = raw.resolve_after.as_ref().map_or(Some(1), |v| {
        count(
            c,
            v,
            1,
            "resolve_after",
            "consecutive GOOD runs before a firing incident resolves",
        )
    });
    let flap = raw.flap.as_ref().map(|f| check_flap(c, f));
    let stale_after = raw.stale_after.as_ref().map(|s| {
        if s.get_ref().trim() == "auto" {
            Some(StaleAfter::Auto)
        } else {
            duration(c, s, false, "stale_after").map(StaleAfter::Fixed)
        }
    });
    let repeat_every = raw
        .repeat_every
        .as_ref()
        .map(|s| duration(c, s, false, "repeat_every"));
    let group_by = check_group_by(c, raw.group_by.as_deref().unwrap_or_default());
    let group_wait = raw
        .group_wait
        .as_ref()
        .map_or(Some(Duration::ZERO), |s| duration(c, s, true, "group_wait"));
    let notify = check_notify(c, raw.notify.as_ref());
    let severity = raw.severity.as_ref().map_or_else(
        || "warning".to_string(),
        |s| {
            if s.get_ref().trim().is_empty() {
                c.report(
                    &s.span(),
                    "empty severity",
                    "use a word such as \"warning\" or \"critical\", or leave it out",
                );
            }
            s.get_ref().trim().to_string()
        },
    );
    let auto = check_auto(c, raw.auto.as_ref());
    if c.problems.len() != before {
        return None;
    }
    Some(Rule {
        name,
        file: c.file.to_path_buf(),
        line,
        matcher: matcher?,
        bad_when: bad_when?,
        fire_after: fire_after?,
        resolve_after: resolve_after?,
        flap: flap.flatten(),
        stale_after: stale_after.flatten(),
        repeat_every: repeat_every.flatten(),
        group_by,
        group_wait: group_wait?,
        notify,
        severity,
        auto: auto?,
    })
}

fn check_match(c: &mut FileCheck<'_>, raw: &RawRule) -> Option<Matcher> {
    let Some(m) = &raw.matcher else {
        return Matcher::new("*", Default::default()).ok();
    };
    let m = m.get_ref();
    let (pattern, span) = match &m.sync {
        Some(s) => (s.get_ref().as_str(), s.span()),
        None => ("*", raw.name.span()),
    };
    match Matcher::new(pattern, m.labels.clone()) {
        Ok(matcher) => Some(matcher),
        Err(e) => {
            c.report(
                &span,
                format!("bad sync glob {pattern:?}: {}", e.kind()),
                "globs use * ? [abc] and {a,b}; * also matches / and :, e.g. \"census:*\"",
            );
            None
        }
    }
}

fn check_bad_when(c: &mut FileCheck<'_>, raw: Option<&RawBadWhen>) -> Option<BadWhen> {
    let Some(raw) = raw else {
        return Some(BadWhen {
            status: vec![RunStatus::Failed],
            failed_ratio_above: None,
            failed_records_above: None,
        });
    };
    let mut ok = true;
    let mut status = Vec::new();
    for s in raw.status.as_deref().unwrap_or(&[]) {
        match RunStatus::parse(s.get_ref().trim()) {
            Some(RunStatus::Running) => {
                ok = false;
                c.report(
                    &s.span(),
                    "bad_when.status cannot contain \"running\"",
                    "running runs have not finished and are never evaluated; use failed or cancelled",
                );
            }
            Some(st) => status.push(st),
            None => {
                ok = false;
                c.report(
                    &s.span(),
                    format!("unknown run status {:?} in bad_when.status", s.get_ref()),
                    "statuses are \"success\", \"failed\" and \"cancelled\"",
                );
            }
        }
    }
    if raw.status.is_none() {
        status.push(RunStatus::Failed);
    }
    let ratio = raw.failed_ratio_above.as_ref().map(|r| {
        let v = *r.get_ref();
        if !(0.0..=1.0).contains(&v) {
            ok = false;
            c.report(
                &r.span(),
                format!("failed_ratio_above = {v} is not a share between 0 and 1"),
                "the ratio is (failed + invalid) / processed, e.g. 0.05 for 5%",
            );
        }
        v
    });
    let records = raw.failed_records_above.as_ref().map(|r| {
        let v = *r.get_ref();
        u64::try_from(v).unwrap_or_else(|_| {
            ok = false;
            c.report(
                &r.span(),
                format!("failed_records_above = {v} is negative"),
                "use a record count ≥ 0, e.g. 500",
            );
            0
        })
    });
    ok.then_some(BadWhen {
        status,
        failed_ratio_above: ratio,
        failed_records_above: records,
    })
}

fn check_fire_after(c: &mut FileCheck<'_>, v: &Spanned<toml::Value>) -> Option<FireAfter> {
    match v.get_ref() {
        toml::Value::String(s) if s.trim() == "auto" => Some(FireAfter::Auto),
        toml::Value::Integer(n) if *n >= 1 && *n <= i64::from(u32::MAX) => {
            u32::try_from(*n).ok().map(FireAfter::Fixed)
        }
        other => {
            c.report(
                &v.span(),
                format!("fire_after = {other} must be a whole number ≥ 1 or \"auto\""),
                "the number of consecutive BAD runs before the incident fires, e.g. 2; \"auto\" learns it",
            );
            None
        }
    }
}

/// A whole number ≥ `min` that fits a u32.
fn count(
    c: &mut FileCheck<'_>,
    v: &Spanned<i64>,
    min: i64,
    key: &str,
    meaning: &str,
) -> Option<u32> {
    let n = *v.get_ref();
    match u32::try_from(n) {
        Ok(x) if n >= min => Some(x),
        _ => {
            c.report(
                &v.span(),
                format!("{key} = {n} must be ≥ {min}"),
                meaning.to_string(),
            );
            None
        }
    }
}

fn duration(
    c: &mut FileCheck<'_>,
    s: &Spanned<String>,
    allow_zero: bool,
    key: &str,
) -> Option<Duration> {
    match parse_duration(s.get_ref(), allow_zero) {
        Ok(d) => Some(d),
        Err(e) => {
            let bound = if allow_zero { "≥ 0" } else { "> 0" };
            c.report(
                &s.span(),
                format!("{key}: {e}"),
                format!("write a duration {bound} such as \"30s\", \"90m\", \"2h\" or \"1d\""),
            );
            None
        }
    }
}

fn check_flap(c: &mut FileCheck<'_>, f: &Spanned<RawFlap>) -> Option<Flap> {
    let raw = f.get_ref();
    let mut ok = true;
    let window = *raw.window.get_ref();
    if !(3..=100_000).contains(&window) {
        ok = false;
        c.report(
            &raw.window.span(),
            format!("flap.window = {window} must be at least 3"),
            "the number of recent verdicts flap detection weighs, e.g. 21 (Nagios's default)",
        );
    }
    let (high, low) = (*raw.high.get_ref(), *raw.low.get_ref());
    if !(0.0..=1.0).contains(&low) || !(0.0..=1.0).contains(&high) || low >= high {
        ok = false;
        let span: Range<usize> = if low >= high {
            raw.low.span()
        } else {
            raw.high.span()
        };
        c.report(
            &span,
            format!("flap thresholds low = {low}, high = {high} must satisfy 0 ≤ low < high ≤ 1"),
            "start flapping at a high change share, stop below a lower one, e.g. high = 0.5, low = 0.25",
        );
    }
    ok.then(|| Flap {
        window: usize::try_from(window).unwrap_or(3),
        high,
        low,
    })
}

fn check_group_by(c: &mut FileCheck<'_>, keys: &[Spanned<String>]) -> Vec<String> {
    let mut out = Vec::new();
    for k in keys {
        let key = k.get_ref().trim();
        let label_ok = key.strip_prefix("labels.").is_some_and(|l| !l.is_empty());
        if matches!(key, "sync_id" | "rule" | "source") || label_ok {
            out.push(key.to_string());
        } else {
            c.report(
                &k.span(),
                format!("unknown group_by key {key:?}"),
                "group by \"sync_id\", \"rule\", \"source\" or \"labels.KEY\" (e.g. \"labels.destination\")",
            );
        }
    }
    out
}

fn check_notify(c: &mut FileCheck<'_>, raw: Option<&Spanned<Vec<Spanned<String>>>>) -> Vec<String> {
    let Some(list) = raw else {
        return vec!["email:default".to_string()];
    };
    if list.get_ref().is_empty() {
        c.report(
            &list.span(),
            "notify is empty, so this rule would tell nobody",
            "leave notify out to use [\"email:default\"], or name channels such as \"slack:data-alerts\"",
        );
    }
    let mut out = Vec::new();
    for entry in list.get_ref() {
        let text = entry.get_ref().trim();
        let valid = text.split_once(':').is_some_and(|(kind, name)| {
            CHANNEL_KINDS.contains(&kind)
                && !name.is_empty()
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
        });
        if valid {
            out.push(text.to_string());
        } else {
            c.report(
                &entry.span(),
                format!("notify entry {text:?} is not a channel reference"),
                "write KIND:NAME with KIND email, slack or webhook and NAME a channel of the config file, e.g. \"email:default\"",
            );
        }
    }
    out
}

fn check_auto(c: &mut FileCheck<'_>, raw: Option<&RawAuto>) -> Option<AutoParams> {
    let d = AutoParams::default();
    let Some(raw) = raw else {
        return Some(d);
    };
    let before = c.problems.len();
    let target = raw.target.as_ref().map_or(d.target, |t| {
        let v = *t.get_ref();
        if !(v > 0.0 && v < 1.0) {
            c.report(
                &t.span(),
                format!("auto.target = {v} must be between 0 and 1 (exclusive)"),
                "the accepted chance that a streak is noise, e.g. 1e-4",
            );
        }
        v
    });
    let min = raw.min.as_ref().map_or(Some(d.min), |v| {
        count(
            c,
            v,
            1,
            "auto.min",
            "the smallest learned fire_after, e.g. 2",
        )
    });
    let max = raw.max.as_ref().map_or(Some(d.max), |v| {
        count(
            c,
            v,
            1,
            "auto.max",
            "the largest learned fire_after, e.g. 6",
        )
    });
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        let span = raw
            .max
            .as_ref()
            .or(raw.min.as_ref())
            .map(Spanned::span)
            .unwrap_or(0..0);
        c.report(
            &span,
            format!("auto.min = {lo} is above auto.max = {hi}"),
            "learned fire_after lies in min … max, so min ≤ max",
        );
    }
    let learn = raw.learn.as_ref().map_or(Some(d.learn as u32), |v| {
        count(
            c,
            v,
            1,
            "auto.learn",
            "how many calm verdicts to learn from, e.g. 200",
        )
    });
    let warmup = raw.warmup.as_ref().map_or(Some(d.warmup as u32), |v| {
        count(
            c,
            v,
            0,
            "auto.warmup",
            "verdicts needed before learning starts, e.g. 20",
        )
    });
    let stale_factor = raw.stale_factor.as_ref().map_or(d.stale_factor, |f| {
        let v = *f.get_ref();
        if !(v > 0.0 && v.is_finite()) {
            c.report(
                &f.span(),
                format!("auto.stale_factor = {v} must be > 0"),
                "the multiple of the usual gap after which a sync is stale, e.g. 4",
            );
        }
        v
    });
    let stale_min = raw.stale_min.as_ref().map_or(Some(d.stale_min), |s| {
        duration(c, s, false, "auto.stale_min")
    });
    if c.problems.len() != before {
        return None;
    }
    Some(AutoParams {
        target,
        min: min?,
        max: max?,
        learn: learn? as usize,
        warmup: warmup? as usize,
        stale_factor,
        stale_min: stale_min?,
    })
}
