//! Firing due timers in time order: stale deadlines, reminders and silence
//! boundaries.
//!
//! Two ordered sets hold them (alert timers derived from alert states,
//! silence boundaries from the silence set); the earliest of the two heads
//! fires next, so finding due work is O(log n) and never a scan of alerts.
//! At one instant silence boundaries go first, then stale deadlines, then
//! reminders: state changes settle before a reminder asks whether it is
//! held.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::Engine;
use crate::evaluate::alert::AlertKey;
use crate::evaluate::incident::Ctx;
use crate::evaluate::notice::Notice;
use crate::model::Timestamp;

/// An alert timer. Variant order is firing order at one instant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    Stale(AlertKey),
    Reminder(AlertKey),
}

/// Silence boundaries in firing order.
pub(super) type SilenceTimers = BTreeSet<(Timestamp, SilenceTimer)>;

/// A silence boundary, by silence id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SilenceTimer {
    End(String),
    Start(String),
}

impl Engine {
    /// Fires timers due before `limit` (or at it, with `inclusive`).
    pub(super) fn fire_due(&mut self, limit: Timestamp, inclusive: bool, out: &mut Vec<Notice>) {
        loop {
            let a = self.timers.first().map(|(t, _)| *t);
            let s = self.silence_timers.first().map(|(t, _)| *t);
            let (t, silence) = match (a, s) {
                (None, None) => return,
                (Some(a), None) => (a, false),
                (None, Some(s)) => (s, true),
                (Some(a), Some(s)) => {
                    if s <= a {
                        (s, true)
                    } else {
                        (a, false)
                    }
                }
            };
            if t > limit || (t == limit && !inclusive) {
                return;
            }
            if silence {
                self.journal_silences();
                if let Some((at, timer)) = self.silence_timers.pop_first() {
                    let id = match timer {
                        SilenceTimer::End(id) | SilenceTimer::Start(id) => id,
                    };
                    self.on_silence_boundary(&id, at, out);
                }
            } else if let Some((at, timer)) = self.timers.first().cloned() {
                match timer {
                    Timer::Stale(key) => {
                        self.touch(&key);
                        self.timers.remove(&(at, Timer::Stale(key.clone())));
                        self.on_stale(&key, at, out);
                    }
                    Timer::Reminder(key) => {
                        self.touch(&key);
                        self.timers.remove(&(at, Timer::Reminder(key.clone())));
                        self.on_reminder(&key, at, out);
                    }
                }
            }
        }
    }

    fn on_stale(&mut self, key: &AlertKey, at: Timestamp, out: &mut Vec<Notice>) {
        let rules = Arc::clone(&self.rules);
        let Some(rule) = rules.rule(&key.rule) else {
            return;
        };
        if self.alerts.get(key).and_then(|a| a.stale_deadline) != Some(at) {
            return;
        }
        let was_firing = self.sync_firing(&key.sync_id);
        self.update(key, |a| a.go_stale(rule, at));
        self.settle_key(key, at, out);
        if was_firing != self.sync_firing(&key.sync_id) {
            self.settle_downstream(&key.sync_id, at, out);
        }
    }

    fn on_reminder(&mut self, key: &AlertKey, at: Timestamp, out: &mut Vec<Notice>) {
        let rules = Arc::clone(&self.rules);
        let Some(rule) = rules.rule(&key.rule) else {
            return;
        };
        let Some(alert) = self.alerts.get(key) else {
            return;
        };
        if alert.reminder_due() != Some(at) {
            return;
        }
        let ctx = Ctx {
            rule,
            at,
            hold: self.hold_of(key, &alert.labels, at),
            downstream: rules.downstream_of(&key.sync_id),
        };
        if let Some(notices) = self.update(key, |a| a.remind(&ctx)) {
            out.extend(notices);
        }
    }

    /// A silence started or ended: settle the alerts it matches.
    fn on_silence_boundary(&mut self, id: &str, at: Timestamp, out: &mut Vec<Notice>) {
        let keys: Vec<AlertKey> = self
            .alerts
            .values()
            .filter(|a| !self.orphans.contains(&a.key))
            .filter(|a| {
                self.silences
                    .iter()
                    .any(|s| s.silence.id == id && s.matches(&a.key, &a.labels))
            })
            .map(|a| a.key.clone())
            .collect();
        for key in keys {
            self.settle_key(&key, at, out);
        }
    }
}
