//! Vendor adapters: each vendor's payloads mapped onto the canonical run
//! record of SPEC §1, one module per vendor.
//!
//! Every adapter is a pure function of the payload bytes (and, where the
//! payload lacks something, an explicit parameter): no I/O and no clock, so
//! each is tested on the recorded fixtures alone, and the HTTP layer and the
//! pollers stay thin. Every [`Run`] an adapter returns has passed the same
//! rules as a run posted to `/v1/runs` ([`finish`] checks it), so a vendor
//! quirk cannot smuggle an invalid run past `validate`.
//!
//! Vendor payloads are deserialized into lenient structs (unknown fields are
//! ignored: vendors add fields all the time), unlike the canonical record,
//! which rejects unknown fields because a typo there is ours to fix.

pub mod airbyte;
pub mod census;
pub mod cloudevents;
pub mod dbt;
pub mod fivetran;
pub mod hightouch;
pub mod signature;

use std::fmt;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::ingest::validate::{self, FieldError, MAX_CODE_CHARS, MAX_MESSAGE_CHARS};
use crate::model::{RecordCounts, Run, RunError, Timestamp};

/// Why a vendor payload could not be mapped onto a run.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// Not JSON, or JSON without a field the mapping needs (serde names the
    /// field, line and column).
    #[error("malformed payload: {0}")]
    Json(#[from] serde_json::Error),
    /// A field is present but its value cannot be mapped.
    #[error("field `{field}`: {message}")]
    Field {
        field: &'static str,
        message: String,
    },
    /// The mapped run breaks a rule of the canonical record.
    #[error("the payload maps to an invalid run: {}", list(.0))]
    Invalid(Vec<FieldError>),
}

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl AdapterError {
    fn field(field: &'static str, message: impl Into<String>) -> Self {
        AdapterError::Field {
            field,
            message: message.into(),
        }
    }
}

/// Checks a mapped run against the canonical rules (without the future
/// check: adapters have no clock; the API layer may re-check with
/// [`validate::check_run`]).
pub fn finish(run: Run) -> Result<Run, AdapterError> {
    validate::check_run(&run, None).map_err(AdapterError::Invalid)?;
    Ok(run)
}

/// `<vendor>:<id>`, the sync id of SPEC §8. Characters a sync id may not
/// hold (a dbt Cloud project named "Analytics Project") become `_`, so a
/// vendor's display name cannot make every payload of that sync unusable.
/// An id too long for the 200-character cap (a long dbt test name) keeps its
/// beginning plus `-` and 16 hex digits of its SHA-256, which stays stable
/// and distinct. The separator must itself be a sync-id character: `~` was
/// used once, and every run with a long id then failed validation.
pub fn vendor_sync_id(vendor: &str, id: &str) -> Result<String, AdapterError> {
    if id.is_empty() {
        return Err(AdapterError::field("sync id", "is empty"));
    }
    let cleaned: String = id
        .chars()
        .map(|c| if validate::is_sync_id_char(c) { c } else { '_' })
        .collect();
    let full = format!("{vendor}:{cleaned}");
    if full.len() <= validate::MAX_ID_CHARS {
        return Ok(full);
    }
    let digest = Sha256::digest(id.as_bytes());
    let suffix = format!("-{}", hex::encode(&digest[..8]));
    // Sync ids are ASCII here, so byte and character counts agree.
    let keep = validate::MAX_ID_CHARS - suffix.len();
    Ok(format!("{}{suffix}", &full[..keep]))
}

/// Parses a vendor timestamp, naming the vendor's field on failure.
fn timestamp(field: &'static str, s: &str) -> Result<Timestamp, AdapterError> {
    Timestamp::parse_rfc3339(s).map_err(|e| AdapterError::field(field, e))
}

fn optional_timestamp(
    field: &'static str,
    s: Option<&str>,
) -> Result<Option<Timestamp>, AdapterError> {
    s.map(|s| timestamp(field, s)).transpose()
}

/// The first `max` characters of a vendor string: a vendor's message must
/// not make an otherwise good run invalid by being long.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Replaces control characters other than line breaks and tabs, which the
/// canonical record forbids in messages, and clips to the message cap.
fn message_text(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect();
    clip(&cleaned, MAX_MESSAGE_CHARS)
}

/// Text fit for an id, code or label: no control characters at all.
fn label_text(s: &str, max: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    clip(&cleaned, max)
}

/// A run-level error; the code is taken from the message's `CODE: …` prefix
/// when the vendor gives none separately.
fn run_error(code: Option<&str>, message: &str) -> RunError {
    let code = code
        .filter(|c| !c.trim().is_empty())
        .map(str::to_owned)
        .or_else(|| leading_code(message).map(str::to_owned));
    RunError {
        code: code.map(|c| label_text(&c, MAX_CODE_CHARS)),
        message: message_text(message),
    }
}

/// The `UPPER_SNAKE_CODE` a Salesforce-style message starts with
/// (`INVALID_EMAIL_ADDRESS: Email: …`), if any.
fn leading_code(message: &str) -> Option<&str> {
    let (head, _) = message.split_once(": ")?;
    let looks_like_code = head.len() >= 3
        && head.len() <= MAX_CODE_CHARS
        && head.starts_with(|c: char| c.is_ascii_uppercase())
        && head
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && head.contains('_');
    looks_like_code.then_some(head)
}

/// Keeps vendor counts that contradict each other from rejecting the run.
///
/// The canonical record requires `failed + invalid ≤ processed` and
/// `succeeded ≤ processed`. A vendor's numbers can break that (Hightouch
/// retries rows failed in earlier runs, so `failed` may include rows not
/// planned in this one). Of the counts, `processed` is then the least
/// certain, so it becomes unknown rather than the whole run being refused;
/// `failed` — what alerts are about — is kept.
fn consistent(mut counts: RecordCounts) -> RecordCounts {
    if let Some(p) = counts.processed {
        let over_rejected = counts.rejected() > p;
        let over_succeeded = counts.succeeded.is_some_and(|s| s > p);
        if over_rejected || over_succeeded {
            counts.processed = None;
        }
    }
    counts
}

/// A vendor id that some APIs send as a number and others as a string.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
enum VendorId {
    Int(i64),
    Str(String),
}

impl fmt::Display for VendorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VendorId::Int(i) => write!(f, "{i}"),
            VendorId::Str(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_ids_replace_forbidden_characters() {
        assert_eq!(
            vendor_sync_id("dbt", "Analytics Project").expect("id"),
            "dbt:Analytics_Project"
        );
        assert_eq!(
            vendor_sync_id("census", "52114").expect("id"),
            "census:52114"
        );
        assert!(vendor_sync_id("census", "").is_err());
        let long = "t".repeat(300);
        let id = vendor_sync_id("dbt", &long).expect("id");
        assert_eq!(id.len(), 200);
        assert!(id.starts_with("dbt:ttt"));
        assert_ne!(id, vendor_sync_id("dbt", &"t".repeat(301)).expect("id"));
        assert!(
            id.chars().all(validate::is_sync_id_char),
            "a shortened id is still a valid sync id: {id}"
        );
    }

    #[test]
    fn leading_codes_are_upper_snake_case() {
        assert_eq!(
            leading_code("INVALID_SESSION_ID: Session expired"),
            Some("INVALID_SESSION_ID")
        );
        assert_eq!(leading_code("Email: invalid"), None);
        assert_eq!(leading_code("HTTP: x"), None);
        assert_eq!(leading_code("no code here"), None);
    }

    #[test]
    fn contradictory_counts_lose_processed() {
        let c = consistent(RecordCounts {
            processed: Some(10),
            failed: Some(11),
            ..Default::default()
        });
        assert_eq!((c.processed, c.failed), (None, Some(11)));
        let c = consistent(RecordCounts {
            processed: Some(10),
            succeeded: Some(6),
            failed: Some(4),
            invalid: None,
        });
        assert_eq!(c.processed, Some(10));
    }

    #[test]
    fn messages_lose_control_characters_and_are_clipped() {
        let m = message_text(&format!("a\u{0}b\nc{}", "x".repeat(20_000)));
        assert!(m.starts_with("a b\nc"));
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS);
    }
}
