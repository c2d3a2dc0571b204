//! Incidents and notices (SPEC §3.4): after every event an alert compares
//! its desired state with what it last notified, and opens, sends, holds,
//! reminds and closes incidents accordingly.
//!
//! Split from `alert.rs`, which owns what runs and timers do to the
//! underlying state; this file owns what gets said about it, so the
//! alternation guarantees (one firing, one resolved, reminders between)
//! are checked in one place.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::alert::{AlertKey, AlertState, Notified, Underlying};
use super::duration::millis;
use super::notice::{Cause, HoldReason, Notice, NoticeKind};
use super::rules::{Rule, RuleSet};
use super::shared;
use crate::model::Timestamp;

/// The open incident: from the moment desired turns firing until it is
/// resolved (or, if it was never sent, until desired turns ok again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    #[serde(with = "shared::text")]
    pub id: Arc<str>,
    /// 1-based number of this incident in the alert's life.
    pub number: u32,
    pub since: Timestamp,
    /// The held firing was already recorded once.
    #[serde(default)]
    pub held_recorded: bool,
    #[serde(default)]
    pub reminders: u32,
    /// Time of the last firing or reminder sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sent: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_due: Option<Timestamp>,
    /// A reminder fell due while held: it goes out when the hold ends.
    #[serde(default)]
    pub reminder_owed: bool,
}

/// What a settle needs from the engine: the rule, the instant and the hold
/// that applies now; `rules` gives a firing notice its downstream syncs.
pub(crate) struct Ctx<'a> {
    pub rule: &'a Rule,
    pub rules: &'a RuleSet,
    pub at: Timestamp,
    pub hold: Option<(HoldReason, String)>,
}

impl AlertState {
    /// Applies SPEC §3.4 after an event: sends or records the firing,
    /// resolves, or delivers an owed reminder. Notices go to `out`.
    pub(crate) fn settle(&mut self, ctx: &Ctx<'_>, out: &mut Vec<Notice>) {
        self.held = ctx.hold.as_ref().map(|h| h.0);
        let desired = self.desired_firing();
        if desired && self.incident.is_none() {
            self.open_incident(ctx.at);
        }
        if desired && self.notified != Notified::Firing {
            let recorded = self.incident.as_ref().is_some_and(|i| i.held_recorded);
            match &ctx.hold {
                Some((why, who)) if !recorded => {
                    let mut n = self.notice(ctx, NoticeKind::Firing, 0);
                    n.held = Some(*why);
                    n.reason = Some(who.clone());
                    out.push(n);
                    if let Some(i) = self.incident.as_mut() {
                        i.held_recorded = true;
                    }
                }
                Some(_) => {}
                None => {
                    out.push(self.notice(ctx, NoticeKind::Firing, 0));
                    self.notified = Notified::Firing;
                    self.mark_sent(ctx);
                }
            }
        } else if !desired && self.notified == Notified::Firing {
            let seq = self.incident.as_ref().map_or(1, |i| i.reminders + 1);
            out.push(self.notice(ctx, NoticeKind::Resolved, seq));
            self.notified = Notified::Resolved;
        } else if desired
            && ctx.hold.is_none()
            && self.incident.as_ref().is_some_and(|i| i.reminder_owed)
        {
            out.extend(self.reminder(ctx));
        }
        if !desired {
            // Closes a sent incident, or silently drops one that was held
            // and never sent (SPEC §3.5).
            self.incident = None;
        }
    }

    /// The reminder timer fired: send it, or owe it while held.
    pub(crate) fn remind(&mut self, ctx: &Ctx<'_>) -> Option<Notice> {
        self.held = ctx.hold.as_ref().map(|h| h.0);
        let sent_and_firing = self.notified == Notified::Firing && self.desired_firing();
        let inc = self.incident.as_mut()?;
        inc.reminder_due = None;
        if !sent_and_firing {
            return None;
        }
        if ctx.hold.is_some() {
            inc.reminder_owed = true;
            return None;
        }
        self.reminder(ctx)
    }

    fn reminder(&mut self, ctx: &Ctx<'_>) -> Option<Notice> {
        let inc = self.incident.as_mut()?;
        inc.reminders += 1;
        let seq = inc.reminders;
        let n = self.notice(ctx, NoticeKind::Reminder, seq);
        self.mark_sent(ctx);
        Some(n)
    }

    /// A firing or reminder went out: the next reminder counts from now.
    fn mark_sent(&mut self, ctx: &Ctx<'_>) {
        if let Some(inc) = self.incident.as_mut() {
            inc.last_sent = Some(ctx.at);
            inc.reminder_owed = false;
            inc.reminder_due = ctx.rule.repeat_every.map(|r| ctx.at.plus_millis(millis(r)));
        }
    }

    fn open_incident(&mut self, at: Timestamp) {
        self.incidents += 1;
        let since = if self.state == Underlying::Firing {
            self.fired_since.unwrap_or(at)
        } else {
            at
        };
        self.incident = Some(Incident {
            id: Arc::from(incident_id(&self.key, self.created_at, self.incidents)),
            number: self.incidents,
            since,
            held_recorded: false,
            reminders: 0,
            last_sent: None,
            reminder_due: None,
            reminder_owed: false,
        });
    }

    fn notice(&self, ctx: &Ctx<'_>, kind: NoticeKind, seq: u32) -> Notice {
        let (cause, condition) = match kind {
            NoticeKind::Resolved => (
                None,
                self.last_change
                    .as_deref()
                    .unwrap_or("healthy again")
                    .to_string(),
            ),
            _ if self.state == Underlying::Firing => (
                self.cause,
                self.condition.as_deref().unwrap_or_default().to_string(),
            ),
            _ => (Some(Cause::Flapping), self.flap_condition(ctx.rule)),
        };
        Notice {
            at: ctx.at,
            kind,
            cause: if kind == NoticeKind::Firing {
                cause
            } else {
                None
            },
            rule: self.key.rule.clone(),
            sync_id: self.key.sync_id.clone(),
            incident_id: self.incident_id().unwrap_or_default().to_string(),
            seq,
            held: None,
            reason: None,
            condition,
            since: self.incident.as_ref().map_or(ctx.at, |i| i.since),
            downstream: if kind == NoticeKind::Firing {
                ctx.rules.downstream_of(&self.key.sync_id).to_vec()
            } else {
                Vec::new()
            },
            labels: (*self.labels).clone(),
            source: self.source.as_deref().map(str::to_string),
        }
    }

    fn flap_condition(&self, rule: &Rule) -> String {
        match (rule.flap, self.flap_share) {
            (Some(f), Some(share)) => format!(
                "flap share {share:.2} ≥ {:.2} over {} runs",
                f.high, f.window
            ),
            _ => "flapping".to_string(),
        }
    }

    /// The resolved notice owed when this alert is dropped (its rule was
    /// removed or no longer matches), if a firing was sent.
    pub(crate) fn dropped(&self, at: Timestamp, reason: &str) -> Option<Notice> {
        if self.notified != Notified::Firing {
            return None;
        }
        let inc = self.incident.as_ref()?;
        Some(Notice {
            at,
            kind: NoticeKind::Resolved,
            cause: None,
            rule: self.key.rule.clone(),
            sync_id: self.key.sync_id.clone(),
            incident_id: inc.id.to_string(),
            seq: inc.reminders + 1,
            held: None,
            reason: Some(reason.to_string()),
            condition: match reason {
                "rule_removed" => "the rule was removed from the rules directory".to_string(),
                _ => "the rule no longer matches this sync".to_string(),
            },
            since: inc.since,
            downstream: Vec::new(),
            labels: (*self.labels).clone(),
            source: self.source.as_deref().map(str::to_string),
        })
    }
}

/// First 16 hex digits of sha256(rule \0 sync \0 created_at \0 number):
/// stable across restarts, unique across the alert's life and across a rule
/// being removed and re-added (a new alert has a new `created_at`).
pub fn incident_id(key: &AlertKey, created_at: Timestamp, number: u32) -> String {
    let mut h = Sha256::new();
    h.update(key.rule.as_bytes());
    h.update([0u8]);
    h.update(key.sync_id.as_bytes());
    h.update([0u8]);
    h.update(created_at.0.to_string().as_bytes());
    h.update([0u8]);
    h.update(number.to_string().as_bytes());
    let digest = h.finalize();
    hex::encode(&digest[..8])
}
