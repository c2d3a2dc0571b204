//! The engine: every alert, the timer index, holds, silences and the undo
//! journal, behind one API that the server and `backtest` share.
//!
//! The engine is pure: runs, silences, rule sets and "now" come in as
//! arguments and notices come out; it reads no clock and does no I/O, so
//! the same history always gives the same notices. Events are processed in
//! time order (SPEC §3.2): before a run, every timer due strictly before its
//! `finished_at` fires, so a run finishing exactly at a deadline comes first.
//!
//! Layout: this file holds the public API and the per-alert bookkeeping;
//! `timers.rs` fires timers, `holds.rs` computes holds and settles alerts,
//! `journal.rs` is the undo log behind `commit` / `rollback`.

mod holds;
mod journal;
mod timers;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::alert::{AlertKey, AlertState};
use super::notice::{HoldReason, Notice};
use super::rules::RuleSet;
use super::silence::{Compiled, Silence};
use crate::model::{Run, Timestamp};
use journal::Journal;
use timers::{SilenceTimer, SilenceTimers, Timer};

/// See the module documentation.
pub struct Engine {
    /// Shared so the journal can keep the previous set without a deep copy.
    rules: Arc<RuleSet>,
    alerts: BTreeMap<AlertKey, AlertState>,
    /// Rule names with a live alert per sync: answers "is this upstream
    /// firing under any rule" without scanning every alert.
    by_sync: BTreeMap<String, BTreeSet<String>>,
    /// Stale and reminder deadlines of live alerts, derived from their state.
    timers: BTreeSet<(Timestamp, Timer)>,
    silences: Vec<Compiled>,
    silence_timers: SilenceTimers,
    /// Restored alerts whose rule is gone (or no longer matches): dropped
    /// with a resolved notice at the next event (SPEC §3.6).
    orphans: BTreeSet<AlertKey>,
    /// Set by `restore`: settle every alert once at the next event, in case
    /// the catalogue or silences changed while the process was down.
    reconcile: bool,
    journal: Journal,
}

impl Engine {
    pub fn new(rules: RuleSet) -> Engine {
        Engine {
            rules: Arc::new(rules),
            alerts: BTreeMap::new(),
            by_sync: BTreeMap::new(),
            timers: BTreeSet::new(),
            silences: Vec::new(),
            silence_timers: BTreeSet::new(),
            orphans: BTreeSet::new(),
            reconcile: false,
            journal: Journal::default(),
        }
    }

    /// Rebuilds an engine from persisted alert states and silences. Every
    /// index is rebuilt from the states; no run is ever replayed.
    pub fn restore(rules: RuleSet, alerts: Vec<AlertState>, silences: Vec<Silence>) -> Engine {
        let mut e = Engine::new(rules);
        let rules = Arc::clone(&e.rules);
        for mut a in alerts {
            let key = a.key.clone();
            match rules.rule(&key.rule) {
                Some(rule) if rule.matches(&key.sync_id, &a.labels) => {
                    // Rules edited while the process was down take effect
                    // now; with unchanged rules this changes nothing.
                    a.retune(rule, None);
                    e.index(&a);
                }
                _ => {
                    e.orphans.insert(key.clone());
                }
            }
            e.alerts.insert(key, a);
        }
        // The restore instant is unknown, so every silence boundary is
        // kept: a boundary already passed only settles alerts again, which
        // changes nothing unless a release was missed while down.
        for s in &silences {
            e.silence_timers
                .insert((s.starts_at, SilenceTimer::Start(s.id.clone())));
            e.silence_timers
                .insert((s.ends_at, SilenceTimer::End(s.id.clone())));
        }
        e.silences = silences.into_iter().map(Compiled::new).collect();
        e.reconcile = true;
        e
    }

    /// Evaluates one finished run (the caller filters `running` and late
    /// runs). Timers due strictly before it fire first.
    pub fn on_run(&mut self, run: &Run) -> Vec<Notice> {
        let mut out = Vec::new();
        let Some(t) = run.finished_at.filter(|_| run.is_finished()) else {
            return out;
        };
        self.begin(t, &mut out);
        self.fire_due(t, false, &mut out);
        let rules = Arc::clone(&self.rules);
        let was_firing = self.sync_firing(&run.sync_id);
        for rule in rules.matching(&run.sync_id, &run.labels) {
            let key = AlertKey::new(&rule.name, &run.sync_id);
            if !self.alerts.contains_key(&key) {
                self.insert_alert(AlertState::new(key.clone(), t));
            }
            self.update(&key, |a| a.observe(rule, run, t));
            self.settle_key(&key, t, &mut out);
        }
        if was_firing != self.sync_firing(&run.sync_id) {
            self.settle_downstream(&run.sync_id, t, &mut out);
        }
        out.sort_by_key(|n| n.at);
        out
    }

    /// Fires every timer due at or before `now`.
    pub fn advance_to(&mut self, now: Timestamp) -> Vec<Notice> {
        let mut out = Vec::new();
        self.begin(now, &mut out);
        self.fire_due(now, true, &mut out);
        out.sort_by_key(|n| n.at);
        out
    }

    /// The earliest pending timer, for the server's sleep.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let a = self.timers.first().map(|(t, _)| *t);
        let s = self.silence_timers.first().map(|(t, _)| *t);
        match (a, s) {
            (Some(a), Some(s)) => Some(a.min(s)),
            (a, s) => a.or(s),
        }
    }

    /// Replaces the silence set at `now` (after firing timers due by then);
    /// alerts whose hold ends are released at `now`.
    pub fn set_silences(&mut self, silences: Vec<Silence>, now: Timestamp) -> Vec<Notice> {
        let mut out = self.advance_to(now);
        self.journal_silences();
        self.silence_timers.clear();
        for s in &silences {
            if s.starts_at > now {
                self.silence_timers
                    .insert((s.starts_at, SilenceTimer::Start(s.id.clone())));
            }
            if s.ends_at > now {
                self.silence_timers
                    .insert((s.ends_at, SilenceTimer::End(s.id.clone())));
            }
        }
        self.silences = silences.into_iter().map(Compiled::new).collect();
        self.settle_all(now, &mut out);
        out.sort_by_key(|n| n.at);
        out
    }

    pub fn silences(&self) -> impl Iterator<Item = &Silence> {
        self.silences.iter().map(|c| &c.silence)
    }

    /// Reloads rules at `now` (SPEC §3.6): a kept rule keeps its alerts with
    /// the new parameters; a removed rule's alerts are dropped, a notified
    /// one with a resolved notice (`rule_removed`); an alert whose kept rule
    /// no longer matches its sync is dropped the same way
    /// (`rule_no_longer_matches`); new and renamed rules start fresh.
    pub fn replace_rules(&mut self, rules: RuleSet, now: Timestamp) -> Vec<Notice> {
        let mut out = self.advance_to(now);
        self.journal_rules();
        self.rules = Arc::new(rules);
        let rules = Arc::clone(&self.rules);
        let keys: Vec<AlertKey> = self.alerts.keys().cloned().collect();
        for key in keys {
            let Some(labels) = self.alerts.get(&key).map(|a| a.labels.clone()) else {
                continue;
            };
            match rules.rule(&key.rule) {
                None => self.drop_alert(&key, now, "rule_removed", &mut out),
                Some(r) if !r.matches(&key.sync_id, &labels) => {
                    self.drop_alert(&key, now, "rule_no_longer_matches", &mut out)
                }
                Some(r) => {
                    self.update(&key, |a| a.retune(r, Some(now)));
                }
            }
        }
        self.settle_all(now, &mut out);
        out.sort_by_key(|n| n.at);
        out
    }

    pub fn alert(&self, key: &AlertKey) -> Option<&AlertState> {
        self.alerts.get(key)
    }

    pub fn alerts(&self) -> impl Iterator<Item = &AlertState> {
        self.alerts.values()
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn downstream_of(&self, sync_id: &str) -> Vec<String> {
        self.rules.downstream_of(sync_id).to_vec()
    }

    pub fn upstream_of(&self, sync_id: &str) -> Vec<String> {
        self.rules.upstream_of(sync_id).to_vec()
    }

    /// The hold that applied to the alert at its last settle.
    pub fn is_held(&self, key: &AlertKey) -> Option<HoldReason> {
        self.alerts.get(key).and_then(|a| a.held)
    }

    /// Work left over from `restore`, done at the first event.
    fn begin(&mut self, t: Timestamp, out: &mut Vec<Notice>) {
        if self.orphans.is_empty() && !self.reconcile {
            return;
        }
        let at = self.next_deadline().map_or(t, |d| d.min(t));
        self.journal_pending();
        for key in std::mem::take(&mut self.orphans) {
            let reason = if self.rules.rule(&key.rule).is_some() {
                "rule_no_longer_matches"
            } else {
                "rule_removed"
            };
            self.drop_alert(&key, at, reason, out);
        }
        if std::mem::take(&mut self.reconcile) {
            self.settle_all(at, out);
        }
    }

    fn insert_alert(&mut self, a: AlertState) {
        self.touch(&a.key);
        self.index(&a);
        self.alerts.insert(a.key.clone(), a);
    }

    fn drop_alert(&mut self, key: &AlertKey, at: Timestamp, reason: &str, out: &mut Vec<Notice>) {
        self.touch(key);
        if let Some(a) = self.alerts.remove(key) {
            self.unindex(&a);
            out.extend(a.dropped(at, reason));
        }
    }

    /// Changes one alert, journaling its old state and moving its timers.
    fn update<R>(&mut self, key: &AlertKey, f: impl FnOnce(&mut AlertState) -> R) -> Option<R> {
        self.touch(key);
        let a = self.alerts.get_mut(key)?;
        let before = (a.stale_deadline, a.reminder_due());
        let r = f(a);
        let after = (a.stale_deadline, a.reminder_due());
        if before != after && !self.orphans.contains(key) {
            self.move_timers(key, before, after);
        }
        Some(r)
    }

    fn index(&mut self, a: &AlertState) {
        self.by_sync
            .entry(a.key.sync_id.clone())
            .or_default()
            .insert(a.key.rule.clone());
        self.move_timers(&a.key, (None, None), (a.stale_deadline, a.reminder_due()));
    }

    fn unindex(&mut self, a: &AlertState) {
        if let Some(rules) = self.by_sync.get_mut(&a.key.sync_id) {
            rules.remove(&a.key.rule);
            if rules.is_empty() {
                self.by_sync.remove(&a.key.sync_id);
            }
        }
        self.move_timers(&a.key, (a.stale_deadline, a.reminder_due()), (None, None));
    }

    fn move_timers(
        &mut self,
        key: &AlertKey,
        (old_stale, old_remind): (Option<Timestamp>, Option<Timestamp>),
        (new_stale, new_remind): (Option<Timestamp>, Option<Timestamp>),
    ) {
        if old_stale != new_stale {
            if let Some(t) = old_stale {
                self.timers.remove(&(t, Timer::Stale(key.clone())));
            }
            if let Some(t) = new_stale {
                self.timers.insert((t, Timer::Stale(key.clone())));
            }
        }
        if old_remind != new_remind {
            if let Some(t) = old_remind {
                self.timers.remove(&(t, Timer::Reminder(key.clone())));
            }
            if let Some(t) = new_remind {
                self.timers.insert((t, Timer::Reminder(key.clone())));
            }
        }
    }
}
