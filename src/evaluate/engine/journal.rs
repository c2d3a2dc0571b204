//! The undo journal: lets the server keep the engine's memory equal to the
//! database. Every change since the last `commit` is undone by `rollback`
//! when the transaction that should persist it fails.
//!
//! Only first-touch snapshots are kept (an alert's state before its first
//! change, the silence set, the rule set), and every index is rebuilt from
//! the restored states, so a rollback cannot leave a stale timer behind.
//!
//! Cheap by construction, since `serve` commits after every batch: a slot
//! remembers the epoch of its last snapshot (so "first touch?" is one
//! comparison), a snapshot is a copy of an [`AlertState`] (shared text,
//! inline histories: no allocation), and a commit only bumps the epoch and
//! clears a vector that keeps its capacity.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::timers::SilenceTimers;
use super::{AlertId, Engine};
use crate::evaluate::alert::{AlertKey, AlertState};
use crate::evaluate::rules::RuleSet;
use crate::evaluate::silence::Compiled;

pub(super) struct Journal {
    /// Current interval; a slot whose `touched` equals it is journaled.
    epoch: u64,
    /// Slot contents before the first change since commit; `None` = empty.
    alerts: Vec<(AlertId, Option<AlertState>)>,
    silences: Option<(Vec<Compiled>, SilenceTimers)>,
    rules: Option<Arc<RuleSet>>,
    pending: Option<(BTreeSet<AlertKey>, bool)>,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            epoch: 1,
            alerts: Vec::new(),
            silences: None,
            rules: None,
            pending: None,
        }
    }
}

impl Journal {
    /// Starts a new interval, forgetting every snapshot.
    fn reset(&mut self) {
        self.epoch += 1;
        self.alerts.clear();
        self.silences = None;
        self.rules = None;
        self.pending = None;
    }
}

impl Engine {
    /// Accepts every change since the last commit.
    pub fn commit(&mut self) {
        self.journal.reset();
        self.free.append(&mut self.freed);
    }

    /// Undoes every change since the last commit: alerts, timers, silences,
    /// rules and indexes.
    pub fn rollback(&mut self) {
        let alerts = std::mem::take(&mut self.journal.alerts);
        let silences = self.journal.silences.take();
        let rules = self.journal.rules.take();
        let pending = self.journal.pending.take();
        self.journal.reset();
        if let Some(rules) = rules {
            self.set_rules(rules);
        }
        if let Some((silences, timers)) = silences {
            self.silences = silences;
            self.silence_timers = timers;
        }
        if let Some((orphans, reconcile)) = pending {
            self.orphans = orphans;
            self.reconcile = reconcile;
        }
        // Empty every touched slot first, then put the old states back: a
        // key removed and re-created in the interval has two slots.
        for (id, _) in &alerts {
            if let Some(current) = self.slots[*id].state.take() {
                self.by_key.remove(&*current.key);
                self.unindex(*id, &current);
            }
        }
        for (id, old) in alerts {
            match old {
                Some(old) => {
                    let orphan = self.orphans.contains(&*old.key);
                    self.place(id, old);
                    if !orphan {
                        self.index(id);
                    }
                }
                None => self.free.push(id),
            }
        }
        // Every slot emptied in the interval was journaled: it is either
        // full again or back in `free` above.
        self.freed.clear();
    }

    /// Alerts changed since the last commit, removed ones included, in key
    /// order.
    pub fn dirty(&self) -> Vec<AlertKey> {
        let mut keys: Vec<AlertKey> = self
            .journal
            .alerts
            .iter()
            .filter_map(|(id, old)| {
                let current = self.slots[*id].state.as_ref();
                if current == old.as_ref() {
                    return None;
                }
                current.or(old.as_ref()).map(|a| (*a.key).clone())
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Snapshots slot `id` before its first change since the last commit.
    pub(super) fn touch(&mut self, id: AlertId) {
        let slot = &mut self.slots[id];
        if slot.touched != self.journal.epoch {
            slot.touched = self.journal.epoch;
            self.journal.alerts.push((id, slot.state.clone()));
        }
    }

    pub(super) fn journal_silences(&mut self) {
        if self.journal.silences.is_none() {
            self.journal.silences = Some((self.silences.clone(), self.silence_timers.clone()));
        }
    }

    pub(super) fn journal_rules(&mut self) {
        if self.journal.rules.is_none() {
            self.journal.rules = Some(Arc::clone(&self.rules));
        }
    }

    pub(super) fn journal_pending(&mut self) {
        if self.journal.pending.is_none() {
            self.journal.pending = Some((self.orphans.clone(), self.reconcile));
        }
    }
}
