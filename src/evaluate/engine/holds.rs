//! Holds (SPEC §3.5) and settling: which alerts are held back right now,
//! and re-applying §3.4 to the alerts an event may have affected.
//!
//! A hold is computed when it is needed, from the upstreams' current states
//! and the active silences, instead of being stored as an index: nothing can
//! drift out of date, and the engine settles every alert whose hold can have
//! changed (the run's own alerts, the downstreams of a sync whose firing
//! status flipped, the alerts a silence boundary matches).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Engine;
use crate::evaluate::alert::{AlertKey, Underlying};
use crate::evaluate::incident::Ctx;
use crate::evaluate::notice::{HoldReason, Notice};
use crate::model::Timestamp;

impl Engine {
    /// Whether any alert of `sync_id`, under any rule, is firing underneath
    /// (flapping alone does not hold downstreams).
    pub(super) fn sync_firing(&self, sync_id: &str) -> bool {
        self.by_sync.get(sync_id).is_some_and(|rules| {
            rules.iter().any(|r| {
                self.alerts
                    .get(&AlertKey::new(r, sync_id))
                    .is_some_and(|a| a.state == Underlying::Firing)
            })
        })
    }

    /// The hold on an alert at `at`: a firing direct upstream first, then an
    /// active matching silence. The string names the upstream(s) or silence.
    pub(super) fn hold_of(
        &self,
        key: &AlertKey,
        labels: &BTreeMap<String, String>,
        at: Timestamp,
    ) -> Option<(HoldReason, String)> {
        let firing: Vec<&str> = self
            .rules
            .upstream_of(&key.sync_id)
            .iter()
            .filter(|u| self.sync_firing(u))
            .map(String::as_str)
            .collect();
        if !firing.is_empty() {
            return Some((HoldReason::Inhibited, firing.join(",")));
        }
        self.silences
            .iter()
            .find(|s| s.silence.is_active(at) && s.matches(key, labels))
            .map(|s| (HoldReason::Silenced, s.silence.id.clone()))
    }

    /// Applies SPEC §3.4 to one alert at `at`.
    pub(super) fn settle_key(&mut self, key: &AlertKey, at: Timestamp, out: &mut Vec<Notice>) {
        let rules = Arc::clone(&self.rules);
        let Some(rule) = rules.rule(&key.rule) else {
            return;
        };
        let Some(alert) = self.alerts.get(key) else {
            return;
        };
        let ctx = Ctx {
            rule,
            at,
            hold: self.hold_of(key, &alert.labels, at),
            downstream: rules.downstream_of(&key.sync_id),
        };
        if let Some(notices) = self.update(key, |a| a.settle(&ctx)) {
            out.extend(notices);
        }
    }

    /// Settles every alert of the direct downstreams of `sync_id`, whose
    /// firing status just changed.
    pub(super) fn settle_downstream(
        &mut self,
        sync_id: &str,
        at: Timestamp,
        out: &mut Vec<Notice>,
    ) {
        let rules = Arc::clone(&self.rules);
        for down in rules.downstream_of(sync_id) {
            let keys: Vec<AlertKey> = self
                .by_sync
                .get(down)
                .map(|rs| rs.iter().map(|r| AlertKey::new(r, down)).collect())
                .unwrap_or_default();
            for key in keys {
                self.settle_key(&key, at, out);
            }
        }
    }

    /// Settles every live alert (silence set or rules replaced, restore).
    pub(super) fn settle_all(&mut self, at: Timestamp, out: &mut Vec<Notice>) {
        let keys: Vec<AlertKey> = self
            .alerts
            .keys()
            .filter(|k| !self.orphans.contains(*k))
            .cloned()
            .collect();
        for key in keys {
            self.settle_key(&key, at, out);
        }
    }
}
