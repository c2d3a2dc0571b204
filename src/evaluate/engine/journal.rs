//! The undo journal: lets the server keep the engine's memory equal to the
//! database. Every change since the last `commit` is undone by `rollback`
//! when the transaction that should persist it fails.
//!
//! Only first-touch snapshots are kept (an alert's state before its first
//! change, the silence set, the rule set), and every index is rebuilt from
//! the restored states, so a rollback cannot leave a stale timer behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::Engine;
use super::timers::SilenceTimers;
use crate::evaluate::alert::{AlertKey, AlertState};
use crate::evaluate::rules::RuleSet;
use crate::evaluate::silence::Compiled;

#[derive(Default)]
pub(super) struct Journal {
    /// State before the first change since commit; `None` = did not exist.
    alerts: BTreeMap<AlertKey, Option<AlertState>>,
    silences: Option<(Vec<Compiled>, SilenceTimers)>,
    rules: Option<Arc<RuleSet>>,
    pending: Option<(BTreeSet<AlertKey>, bool)>,
}

impl Engine {
    /// Accepts every change since the last commit.
    pub fn commit(&mut self) {
        self.journal = Journal::default();
    }

    /// Undoes every change since the last commit: alerts, timers, silences,
    /// rules and indexes.
    pub fn rollback(&mut self) {
        let j = std::mem::take(&mut self.journal);
        if let Some(rules) = j.rules {
            self.rules = rules;
        }
        if let Some((silences, timers)) = j.silences {
            self.silences = silences;
            self.silence_timers = timers;
        }
        if let Some((orphans, reconcile)) = j.pending {
            self.orphans = orphans;
            self.reconcile = reconcile;
        }
        for (key, old) in j.alerts {
            if let Some(current) = self.alerts.remove(&key) {
                self.unindex(&current);
            }
            if let Some(old) = old {
                if !self.orphans.contains(&key) {
                    self.index(&old);
                }
                self.alerts.insert(key, old);
            }
        }
    }

    /// Alerts changed since the last commit, removed ones included.
    pub fn dirty(&self) -> Vec<AlertKey> {
        self.journal
            .alerts
            .iter()
            .filter(|(k, old)| self.alerts.get(*k) != old.as_ref())
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub(super) fn touch(&mut self, key: &AlertKey) {
        if !self.journal.alerts.contains_key(key) {
            let old = self.alerts.get(key).cloned();
            self.journal.alerts.insert(key.clone(), old);
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
