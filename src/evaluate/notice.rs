//! What the engine decides: notices, their kinds and causes, and why one
//! may be held back.
//!
//! A [`Notice`] is self-contained (rule, sync, incident, condition sentence,
//! labels) so the outbox can render and deliver it long after the engine
//! moved on, and its [`Notice::key`] is what makes delivery idempotent
//! (SPEC §3.6).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    Firing,
    Resolved,
    Reminder,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Firing => "firing",
            NoticeKind::Resolved => "resolved",
            NoticeKind::Reminder => "reminder",
        }
    }
}

impl fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an incident fires (SPEC §3.1–3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    FailedRuns,
    RecordFailures,
    Stale,
    Flapping,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::FailedRuns => "failed_runs",
            Cause::RecordFailures => "record_failures",
            Cause::Stale => "stale",
            Cause::Flapping => "flapping",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a firing notice is recorded but not sent (SPEC §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldReason {
    Inhibited,
    Silenced,
}

impl HoldReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::Inhibited => "inhibited",
            HoldReason::Silenced => "silenced",
        }
    }
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision of the engine: a notice to send, or (with `held` set) a
/// firing that was recorded but held back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub at: Timestamp,
    pub kind: NoticeKind,
    /// Firing notices only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    pub rule: String,
    pub sync_id: String,
    pub incident_id: String,
    /// 0 for firing, 1… for reminders, one past the last reminder for the
    /// resolved notice: with `kind` it makes the key unique per incident.
    pub seq: u32,
    /// `Some` means recorded, not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<HoldReason>,
    /// `rule_removed` / `rule_no_longer_matches` on a forced resolve; the
    /// upstream sync(s) or silence id on a held firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence with the actual values that made the decision.
    pub condition: String,
    /// Start of the incident.
    pub since: Timestamp,
    /// Firing notices: the catalogue's direct downstream syncs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downstream: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Notice {
    /// The dedup key `incident:kind:seq`. A held record gets a `:held`
    /// suffix: it shares kind and seq with the firing notice that is sent
    /// when the hold ends, and both must be storable.
    pub fn key(&self) -> String {
        match self.held {
            None => format!("{}:{}:{}", self.incident_id, self.kind, self.seq),
            Some(_) => format!("{}:{}:{}:held", self.incident_id, self.kind, self.seq),
        }
    }

    pub fn is_sent(&self) -> bool {
        self.held.is_none()
    }
}
