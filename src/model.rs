//! Domain types shared by every stage of the pipeline: the canonical run
//! record of SPEC §1 and the timestamp the engine reasons in.
//!
//! Types here are already valid: `ingest::validate` is the only way to build a
//! [`Run`] from untrusted input, so later stages never re-check ids, counts or
//! timestamps.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant as milliseconds since the Unix epoch, UTC.
///
/// The engine, the store and the API all speak this one representation:
/// integers compare, sort and persist without time-zone or precision
/// surprises, and conversion to RFC 3339 happens only at the edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Parses an RFC 3339 timestamp with any offset; sub-millisecond digits
    /// are truncated.
    pub fn parse_rfc3339(s: &str) -> Result<Self, String> {
        let dt = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| format!("not an RFC 3339 timestamp ({e}): {s:?}"))?;
        let nanos = dt.unix_timestamp_nanos();
        Ok(Timestamp((nanos / 1_000_000) as i64))
    }

    /// The current wall-clock time. Only `app/` and the CLI call this: the
    /// engine is handed time, never reads it.
    pub fn now() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Timestamp((nanos / 1_000_000) as i64)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_millis(self, ms: i64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    /// RFC 3339 in UTC with a `Z` suffix; whole seconds print without a
    /// fraction (`2026-03-01T10:05:00Z`), as SPEC §5 shows.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        let Ok(dt) = OffsetDateTime::from_unix_timestamp(secs) else {
            return format!("@{}ms", self.0);
        };
        let (y, mo, d) = (dt.year(), u8::from(dt.month()), dt.day());
        let (h, mi, s) = (dt.hour(), dt.minute(), dt.second());
        if ms == 0 {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
        } else {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// Outcome of a run as the runner reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Success,
    Failed,
    Cancelled,
    Running,
}

impl RunStatus {
    pub const ALL: [RunStatus; 4] = [
        RunStatus::Success,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Running,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Running => "running",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Record counts of a run. Every count is optional: an absent count is
/// unknown, never zero (a Census run that failed before loading has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCounts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<u64>,
}

impl RecordCounts {
    /// Records rejected in total (`failed + invalid`, absent counts as 0).
    pub fn rejected(&self) -> u64 {
        self.failed
            .unwrap_or(0)
            .saturating_add(self.invalid.unwrap_or(0))
    }

    /// `(failed + invalid) / processed`; `None` when `processed` is 0 or
    /// absent (SPEC §2).
    pub fn failed_ratio(&self) -> Option<f64> {
        match self.processed {
            Some(p) if p > 0 => Some(self.rejected() as f64 / p as f64),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.processed.is_none()
            && self.succeeded.is_none()
            && self.failed.is_none()
            && self.invalid.is_none()
    }
}

/// The run-level error a runner reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
}

/// One record the destination (or the runner) rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The canonical run record (SPEC §1), already validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub sync_id: String,
    pub run_id: String,
    pub status: RunStatus,
    /// Absent only while `status` is `running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "RecordCounts::is_empty")]
    pub records: RecordCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record_errors: Vec<RecordError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Run {
    /// A finished run has an event time; a `running` one does not.
    pub fn is_finished(&self) -> bool {
        self.status != RunStatus::Running
    }

    /// Duration in milliseconds, when both ends are known.
    pub fn duration_ms(&self) -> Option<i64> {
        match (self.started_at, self.finished_at) {
            (Some(s), Some(f)) if f >= s => Some(f.0 - s.0),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_rfc3339_in_utc() {
        let t = Timestamp::parse_rfc3339("2026-03-01T12:05:00+02:00").expect("valid");
        assert_eq!(t.to_rfc3339(), "2026-03-01T10:05:00Z");
        let t = Timestamp::parse_rfc3339("2026-03-01T10:05:00.250Z").expect("valid");
        assert_eq!(t.to_rfc3339(), "2026-03-01T10:05:00.250Z");
        assert!(Timestamp::parse_rfc3339("2026-03-01 10:05").is_err());
    }

    #[test]
    fn failed_ratio_needs_a_positive_processed_count() {
        let c = RecordCounts {
            processed: Some(1000),
            failed: Some(40),
            invalid: Some(60),
            ..Default::default()
        };
        assert_eq!(c.failed_ratio(), Some(0.1));
        let c = RecordCounts {
            processed: Some(0),
            failed: Some(1),
            ..Default::default()
        };
        assert_eq!(c.failed_ratio(), None);
        assert_eq!(RecordCounts::default().failed_ratio(), None);
    }
}
