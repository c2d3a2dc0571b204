//! Holds (SPEC §3.5) and settling: which alerts are held back right now,
//! and re-applying §3.4 to the alerts an event may have affected.
//!
//! A hold is computed when it is needed, from the upstreams' current states
//! and the active silences, instead of being stored as an index: nothing can
//! drift out of date, and the engine settles every alert whose hold can have
//! changed (the run's own alerts, the downstreams of a sync whose firing
//! status flipped, the alerts a silence boundary matches).

use std::sync::Arc;

use super::{AlertId, Engine, SyncId};
use crate::evaluate::incident::Ctx;
use crate::evaluate::notice::{HoldReason, Notice};
use crate::evaluate::rules::{Rule, RuleSet};
use crate::model::Timestamp;

impl Engine {
    /// The hold on alert `id` at `at`: a firing direct upstream first, then
    /// an active matching silence. The string names the upstream(s) or
    /// silence. The alert's sync slot must be fresh.
    pub(super) fn hold_of(&self, id: AlertId, at: Timestamp) -> Option<(HoldReason, String)> {
        let a = self.slots[id].state.as_ref()?;
        let sync = &self.syncs[self.slots[id].sync];
        let mut firing: Option<String> = None;
        for &up in &sync.upstream {
            if self.sync_firing(up) {
                let names = firing.get_or_insert_with(String::new);
                if !names.is_empty() {
                    names.push(',');
                }
                names.push_str(&self.syncs[up].id);
            }
        }
        if let Some(names) = firing {
            return Some((HoldReason::Inhibited, names));
        }
        self.silences
            .iter()
            .find(|s| s.silence.is_active(at) && s.matches(&a.key, &a.labels))
            .map(|s| (HoldReason::Silenced, s.silence.id.clone()))
    }

    /// Applies SPEC §3.4 to alert `id` at `at`, under its rule.
    pub(super) fn settle_with(
        &mut self,
        id: AlertId,
        rule: &Rule,
        rules: &RuleSet,
        at: Timestamp,
        out: &mut Vec<Notice>,
    ) {
        if self.slots[id].state.is_none() {
            return;
        }
        self.fresh(self.slots[id].sync);
        let ctx = Ctx {
            rule,
            rules,
            at,
            hold: self.hold_of(id, at),
        };
        self.update(id, |a| a.settle(&ctx, out));
    }

    /// Applies SPEC §3.4 to alert `id` at `at`, finding its rule by name.
    pub(super) fn settle_key(&mut self, id: AlertId, at: Timestamp, out: &mut Vec<Notice>) {
        let rules = Arc::clone(&self.rules);
        let Some(a) = self.slots[id].state.as_ref() else {
            return;
        };
        let Some(rule) = rules.rule(&a.key.rule) else {
            return;
        };
        self.settle_with(id, rule, &rules, at, out);
    }

    /// Settles every alert of the direct downstreams of sync slot `s`, whose
    /// firing status just changed.
    pub(super) fn settle_downstream(&mut self, s: SyncId, at: Timestamp, out: &mut Vec<Notice>) {
        self.fresh(s);
        let downstream = self.syncs[s].downstream.clone();
        for down in downstream {
            let ids = self.syncs[down].alerts.clone();
            for id in ids {
                self.settle_key(id, at, out);
            }
        }
    }

    /// Settles every live alert (silence set or rules replaced, restore),
    /// in key order.
    pub(super) fn settle_all(&mut self, at: Timestamp, out: &mut Vec<Notice>) {
        let ids: Vec<AlertId> = self
            .by_key
            .iter()
            .filter(|(key, _)| !self.orphans.contains(&***key))
            .map(|(_, &id)| id)
            .collect();
        for id in ids {
            self.settle_key(id, at, out);
        }
    }
}
