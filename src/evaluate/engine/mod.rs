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
//!
//! Storage, built for a run to cost O(1) in the number of alerts and in
//! history: alert states live in a slab of slots addressed by [`AlertId`];
//! a run finds its sync's [`SyncSlot`] with one hash lookup, and the slot
//! caches, per rule set, which rules' globs match the sync (with the alert
//! each has there) and the sync's upstreams and downstreams. An ordered
//! index by key serves the public API and every "all alerts" walk, so their
//! order (and the order of the notices they produce) is the key order,
//! whatever the history of the slab.

mod holds;
mod journal;
mod timers;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::alert::{AlertKey, AlertState, Underlying};
use super::notice::{HoldReason, Notice};
use super::rules::RuleSet;
use super::silence::{Compiled, Silence};
use crate::model::{Run, Timestamp};
use journal::Journal;
use timers::{SilenceTimer, SilenceTimers, Timer};

/// Index of an alert slot.
type AlertId = usize;
/// Index of a sync slot.
type SyncId = usize;

/// One alert's place in the slab.
struct Slot {
    state: Option<AlertState>,
    /// Journal epoch in which this slot was last snapshotted.
    touched: u64,
    sync: SyncId,
}

/// What the engine knows about one sync id.
struct SyncSlot {
    id: String,
    /// Its indexed alerts (orphans excluded), ordered by rule name.
    alerts: Vec<AlertId>,
    /// The `rules_gen` the fields below were computed for.
    rules_gen: u64,
    /// Rules whose glob matches this sync, in file order (index into
    /// `RuleSet::rules`), with the indexed alert each has here.
    rules: Vec<(usize, Option<AlertId>)>,
    /// Direct upstream syncs, in `RuleSet::upstream_of` order.
    upstream: Vec<SyncId>,
    /// Direct downstream syncs, in `RuleSet::downstream_of` order.
    downstream: Vec<SyncId>,
}

/// See the module documentation.
pub struct Engine {
    /// Shared so the journal can keep the previous set without a deep copy.
    rules: Arc<RuleSet>,
    /// Bumped whenever `rules` changes: sync slots recompute their caches.
    rules_gen: u64,
    slots: Vec<Slot>,
    /// Empty slots free for reuse.
    free: Vec<AlertId>,
    /// Slots emptied since the last commit: reused only after it, so that
    /// within one journal interval a slot holds one alert.
    freed: Vec<AlertId>,
    /// Every alert (orphans included), in key order.
    by_key: BTreeMap<Arc<AlertKey>, AlertId>,
    sync_index: HashMap<String, SyncId>,
    syncs: Vec<SyncSlot>,
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
            rules_gen: 1,
            slots: Vec::new(),
            free: Vec::new(),
            freed: Vec::new(),
            by_key: BTreeMap::new(),
            sync_index: HashMap::new(),
            syncs: Vec::new(),
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
        for a in alerts {
            e.load(&rules, a);
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

    /// Takes in alert states another writer of the same database committed
    /// (a replica, under the store's writer lock): each replaces the state
    /// held for its key, loaded as `restore` loads it. Call between
    /// transactions: nothing is journaled, and the states are already
    /// settled, so nothing is re-evaluated.
    pub fn merge(&mut self, alerts: Vec<AlertState>) {
        let rules = Arc::clone(&self.rules);
        for a in alerts {
            self.load(&rules, a);
        }
    }

    /// Loads one persisted state, replacing any state of its key.
    fn load(&mut self, rules: &RuleSet, mut a: AlertState) {
        let key = Arc::clone(&a.key);
        if let Some(old) = self.by_key.remove(&*key) {
            // A repeated key: the later state wins.
            if let Some(prev) = self.slots[old].state.take() {
                self.unindex(old, &prev);
            }
            self.orphans.remove(&*key);
            self.free.push(old);
        }
        let kept = match rules.rule(&key.rule) {
            Some(rule) if rule.matches(&key.sync_id, &a.labels) => {
                a.after_load(rule);
                // Rules edited while the process was down take effect
                // now; with unchanged rules this changes nothing.
                a.retune(rule, None);
                true
            }
            _ => false,
        };
        let s = self.sync_slot(&key.sync_id);
        let id = self.alloc(s);
        self.place(id, a);
        if kept {
            self.index(id);
        } else {
            self.orphans.insert((*key).clone());
        }
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
        let s = self.sync_slot(&run.sync_id);
        self.fresh(s);
        let was_firing = self.sync_firing(s);
        for i in 0..self.syncs[s].rules.len() {
            let (r, known) = self.syncs[s].rules[i];
            let rule = &rules.rules[r];
            if !rule.matcher.labels_match(&run.labels) {
                continue;
            }
            let id = match known {
                Some(id) => id,
                None => {
                    let key = Arc::new(AlertKey::new(&rule.name, &run.sync_id));
                    self.insert_alert(AlertState::with_key(key, t), s)
                }
            };
            self.update(id, |a| a.observe(rule, run, t));
            self.settle_with(id, rule, &rules, t, &mut out);
        }
        if was_firing != self.sync_firing(s) {
            self.settle_downstream(s, t, &mut out);
        }
        sort(&mut out);
        out
    }

    /// Fires every timer due at or before `now`.
    pub fn advance_to(&mut self, now: Timestamp) -> Vec<Notice> {
        let mut out = Vec::new();
        self.begin(now, &mut out);
        self.fire_due(now, true, &mut out);
        sort(&mut out);
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
        sort(&mut out);
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
        self.set_rules(Arc::new(rules));
        let rules = Arc::clone(&self.rules);
        let ids: Vec<AlertId> = self.by_key.values().copied().collect();
        for id in ids {
            let Some(a) = self.slots[id].state.as_ref() else {
                continue;
            };
            let rule = rules.rule(&a.key.rule);
            let drop_reason = match rule {
                None => Some("rule_removed"),
                Some(r) if !r.matches(&a.key.sync_id, &a.labels) => Some("rule_no_longer_matches"),
                Some(_) => None,
            };
            match (drop_reason, rule) {
                (Some(reason), _) => self.drop_alert(id, now, reason, &mut out),
                (None, Some(r)) => {
                    self.update(id, |a| a.retune(r, Some(now)));
                }
                (None, None) => {}
            }
        }
        self.settle_all(now, &mut out);
        sort(&mut out);
        out
    }

    pub fn alert(&self, key: &AlertKey) -> Option<&AlertState> {
        self.by_key
            .get(key)
            .and_then(|&id| self.slots[id].state.as_ref())
    }

    /// Every alert, in key order.
    pub fn alerts(&self) -> impl Iterator<Item = &AlertState> {
        self.by_key
            .values()
            .filter_map(|&id| self.slots[id].state.as_ref())
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
        self.alert(key).and_then(|a| a.held)
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
            if let Some(&id) = self.by_key.get(&key) {
                self.drop_alert(id, at, reason, out);
            }
        }
        if std::mem::take(&mut self.reconcile) {
            self.settle_all(at, out);
        }
    }

    fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.rules = rules;
        self.rules_gen += 1;
    }

    /// The slot of `sync_id`, created empty on first sight.
    fn sync_slot(&mut self, sync_id: &str) -> SyncId {
        if let Some(&s) = self.sync_index.get(sync_id) {
            return s;
        }
        let s = self.syncs.len();
        self.syncs.push(SyncSlot {
            id: sync_id.to_string(),
            alerts: Vec::new(),
            rules_gen: 0,
            rules: Vec::new(),
            upstream: Vec::new(),
            downstream: Vec::new(),
        });
        self.sync_index.insert(sync_id.to_string(), s);
        s
    }

    /// Brings the rule caches of sync slot `s` up to the current rules.
    #[inline]
    fn fresh(&mut self, s: SyncId) {
        if self.syncs[s].rules_gen != self.rules_gen {
            self.refresh(s);
        }
    }

    #[cold]
    fn refresh(&mut self, s: SyncId) {
        let rules = Arc::clone(&self.rules);
        let name = self.syncs[s].id.clone();
        let upstream: Vec<SyncId> = rules
            .upstream_of(&name)
            .iter()
            .map(|u| self.sync_slot(u))
            .collect();
        let downstream: Vec<SyncId> = rules
            .downstream_of(&name)
            .iter()
            .map(|d| self.sync_slot(d))
            .collect();
        let alerts = &self.syncs[s].alerts;
        let matched: Vec<(usize, Option<AlertId>)> = rules
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.matcher.glob_matches(&name))
            .map(|(i, r)| {
                let id = alerts.iter().copied().find(|&id| {
                    self.slots[id]
                        .state
                        .as_ref()
                        .is_some_and(|a| a.key.rule == r.name)
                });
                (i, id)
            })
            .collect();
        let slot = &mut self.syncs[s];
        slot.rules = matched;
        slot.upstream = upstream;
        slot.downstream = downstream;
        slot.rules_gen = self.rules_gen;
    }

    /// A slot for a new alert of sync slot `s`.
    fn alloc(&mut self, s: SyncId) -> AlertId {
        let id = self.free.pop().unwrap_or_else(|| {
            self.slots.push(Slot {
                state: None,
                touched: 0,
                sync: s,
            });
            self.slots.len() - 1
        });
        self.slots[id].sync = s;
        id
    }

    /// Puts a state in an empty slot and the key index, without journaling
    /// or indexing it.
    fn place(&mut self, id: AlertId, a: AlertState) {
        self.by_key.insert(Arc::clone(&a.key), id);
        self.slots[id].state = Some(a);
    }

    fn insert_alert(&mut self, a: AlertState, s: SyncId) -> AlertId {
        let id = self.alloc(s);
        // Journal the empty slot first: a rollback removes the alert.
        self.touch(id);
        self.place(id, a);
        self.index(id);
        id
    }

    fn drop_alert(&mut self, id: AlertId, at: Timestamp, reason: &str, out: &mut Vec<Notice>) {
        self.touch(id);
        if let Some(a) = self.slots[id].state.take() {
            self.by_key.remove(&*a.key);
            self.unindex(id, &a);
            self.freed.push(id);
            out.extend(a.dropped(at, reason));
        }
    }

    /// Changes one alert, journaling its old state and moving its timers.
    fn update<R>(&mut self, id: AlertId, f: impl FnOnce(&mut AlertState) -> R) -> Option<R> {
        self.touch(id);
        let a = self.slots[id].state.as_mut()?;
        let before = (a.stale_deadline, a.reminder_due());
        let r = f(a);
        let after = (a.stale_deadline, a.reminder_due());
        if before != after {
            let key = Arc::clone(&a.key);
            if self.orphans.is_empty() || !self.orphans.contains(&*key) {
                self.move_timers(&key, before, after);
            }
        }
        Some(r)
    }

    /// Enters a placed alert in its sync slot and the timer index.
    fn index(&mut self, id: AlertId) {
        let Some(a) = self.slots[id].state.as_ref() else {
            return;
        };
        let key = Arc::clone(&a.key);
        let deadlines = (a.stale_deadline, a.reminder_due());
        let s = self.slots[id].sync;
        let slots = &self.slots;
        let rule_of = |o: AlertId| slots[o].state.as_ref().map(|a| a.key.rule.as_str());
        let sync = &mut self.syncs[s];
        let pos = sync
            .alerts
            .partition_point(|&o| rule_of(o) < Some(key.rule.as_str()));
        sync.alerts.insert(pos, id);
        if sync.rules_gen == self.rules_gen {
            for entry in &mut sync.rules {
                if self.rules.rules[entry.0].name == key.rule {
                    entry.1 = Some(id);
                }
            }
        }
        self.move_timers(&key, (None, None), deadlines);
    }

    /// Takes an alert out of its sync slot and the timer index; `a` is its
    /// state, already out of the slot or about to be replaced.
    fn unindex(&mut self, id: AlertId, a: &AlertState) {
        let sync = &mut self.syncs[self.slots[id].sync];
        sync.alerts.retain(|&o| o != id);
        for entry in &mut sync.rules {
            if entry.1 == Some(id) {
                entry.1 = None;
            }
        }
        self.move_timers(&a.key, (a.stale_deadline, a.reminder_due()), (None, None));
    }

    fn move_timers(
        &mut self,
        key: &Arc<AlertKey>,
        (old_stale, old_remind): (Option<Timestamp>, Option<Timestamp>),
        (new_stale, new_remind): (Option<Timestamp>, Option<Timestamp>),
    ) {
        if old_stale != new_stale {
            if let Some(t) = old_stale {
                self.timers.remove(&(t, Timer::Stale(Arc::clone(key))));
            }
            if let Some(t) = new_stale {
                self.timers.insert((t, Timer::Stale(Arc::clone(key))));
            }
        }
        if old_remind != new_remind {
            if let Some(t) = old_remind {
                self.timers.remove(&(t, Timer::Reminder(Arc::clone(key))));
            }
            if let Some(t) = new_remind {
                self.timers.insert((t, Timer::Reminder(Arc::clone(key))));
            }
        }
    }

    /// Whether any indexed alert of sync slot `s`, under any rule, is firing
    /// underneath (flapping alone does not hold downstreams).
    fn sync_firing(&self, s: SyncId) -> bool {
        self.syncs[s].alerts.iter().any(|&id| {
            self.slots[id]
                .state
                .as_ref()
                .is_some_and(|a| a.state == Underlying::Firing)
        })
    }
}

/// Notices in time order; ties keep the order they were decided in.
fn sort(out: &mut [Notice]) {
    if out.len() > 1 {
        out.sort_by_key(|n| n.at);
    }
}
