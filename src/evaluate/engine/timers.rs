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

/// An alert timer. Variant order is firing order at one instant; alerts
/// due at the same instant fire in key order. The key is shared with the
/// alert state, so moving a timer allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    Stale(Arc<AlertKey>),
    Reminder(Arc<AlertKey>),
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
            } else if let Some((at, timer)) = self.timers.pop_first() {
                let (Timer::Stale(key) | Timer::Reminder(key)) = &timer;
                let Some(&id) = self.by_key.get(&**key) else {
                    continue;
                };
                // Journaled even if nothing else changes: a rollback puts
                // the timer back by re-indexing the old state.
                self.touch(id);
                match timer {
                    Timer::Stale(_) => self.on_stale(id, at, out),
                    Timer::Reminder(_) => self.on_reminder(id, at, out),
                }
            }
        }
    }

    fn on_stale(&mut self, id: usize, at: Timestamp, out: &mut Vec<Notice>) {
        let rules = Arc::clone(&self.rules);
        let Some(a) = self.slots[id].state.as_ref() else {
            return;
        };
        let Some(rule) = rules.rule(&a.key.rule) else {
            return;
        };
        if a.stale_deadline != Some(at) {
            return;
        }
        let s = self.slots[id].sync;
        let was_firing = self.sync_firing(s);
        self.update(id, |a| a.go_stale(rule, at));
        self.settle_with(id, rule, &rules, at, out);
        if was_firing != self.sync_firing(s) {
            self.settle_downstream(s, at, out);
        }
    }

    fn on_reminder(&mut self, id: usize, at: Timestamp, out: &mut Vec<Notice>) {
        let rules = Arc::clone(&self.rules);
        let Some(a) = self.slots[id].state.as_ref() else {
            return;
        };
        let Some(rule) = rules.rule(&a.key.rule) else {
            return;
        };
        if a.reminder_due() != Some(at) {
            return;
        }
        self.fresh(self.slots[id].sync);
        let ctx = Ctx {
            rule,
            rules: &rules,
            at,
            hold: self.hold_of(id, at),
        };
        if let Some(Some(n)) = self.update(id, |a| a.remind(&ctx)) {
            out.push(n);
        }
    }

    /// A silence started or ended: settle the alerts it matches.
    fn on_silence_boundary(&mut self, silence: &str, at: Timestamp, out: &mut Vec<Notice>) {
        let ids: Vec<usize> = self
            .by_key
            .iter()
            .filter(|(key, _)| !self.orphans.contains(&***key))
            .filter_map(|(_, &id)| {
                let a = self.slots[id].state.as_ref()?;
                self.silences
                    .iter()
                    .any(|s| s.silence.id == silence && s.matches(&a.key, &a.labels))
                    .then_some(id)
            })
            .collect();
        for id in ids {
            self.settle_key(id, at, out);
        }
    }
}
