//! Airbyte: the sync succeeded / failed notification webhooks, mapped onto
//! runs of `airbyte:<connection_id>`.
//!
//! Airbyte does not sign its webhooks; the route carries a secret path token
//! instead (`/v1/webhooks/airbyte/{token}`, checked with
//! [`super::signature::token_eq`]).
//!
//! Counts: `recordsEmitted` (read from the source) is `processed` and
//! `recordsCommitted` (written to the destination) is `succeeded`. Their
//! difference is *not* a count of rejected records — a failed run stops
//! part-way and a successful one may deduplicate — so `failed` and `invalid`
//! stay unknown rather than being invented.

use serde::Deserialize;

use super::{
    AdapterError, VendorId, finish, label_text, optional_timestamp, run_error, timestamp,
    vendor_sync_id,
};
use crate::ingest::validate::{MAX_LABEL_VALUE_CHARS, MAX_URL_CHARS};
use crate::model::{RecordCounts, Run, RunStatus};

#[derive(Deserialize)]
struct Payload {
    data: Data,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    connection: Named,
    #[serde(default)]
    source: Option<Named>,
    #[serde(default)]
    destination: Option<Named>,
    job_id: VendorId,
    #[serde(default)]
    started_at: Option<String>,
    finished_at: String,
    #[serde(default)]
    records_emitted: Option<u64>,
    #[serde(default)]
    records_committed: Option<u64>,
    #[serde(default)]
    error_message: Option<String>,
    success: bool,
}

#[derive(Deserialize)]
struct Named {
    id: VendorId,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// Maps an Airbyte sync notification (succeeded or failed) onto a run. The
/// run id is the Airbyte job id; the link is the connection's page; labels
/// carry the connection, source and destination names for notices and rule
/// matching.
pub fn run_from_webhook(body: &[u8]) -> Result<Run, AdapterError> {
    let Payload { data: d } = serde_json::from_slice(body)?;
    let status = if d.success {
        RunStatus::Success
    } else {
        RunStatus::Failed
    };
    let finished_at = timestamp("finishedAt", &d.finished_at)?;
    let started_at = optional_timestamp("startedAt", d.started_at.as_deref())?;
    let processed = d.records_emitted;
    let succeeded = d
        .records_committed
        .filter(|c| processed.is_none_or(|p| *c <= p));
    let error = match (&d.error_message, status) {
        (Some(m), _) if !m.trim().is_empty() => Some(run_error(None, m)),
        (_, RunStatus::Failed) => Some(run_error(None, "Airbyte reported the sync as failed")),
        _ => None,
    };
    let mut labels = std::collections::BTreeMap::new();
    let named = [
        ("connection", Some(&d.connection)),
        ("airbyte_source", d.source.as_ref()),
        ("airbyte_destination", d.destination.as_ref()),
    ];
    for (key, n) in named {
        if let Some(name) = n.and_then(|n| n.name.as_deref()) {
            labels.insert(key.to_owned(), label_text(name, MAX_LABEL_VALUE_CHARS));
        }
    }
    let url = d
        .connection
        .url
        .filter(|u| u.len() <= MAX_URL_CHARS && u.starts_with("https://"));
    finish(Run {
        sync_id: vendor_sync_id("airbyte", &d.connection.id.to_string())?,
        run_id: d.job_id.to_string(),
        status,
        finished_at: Some(finished_at),
        started_at: started_at.filter(|s| *s <= finished_at),
        records: RecordCounts {
            processed,
            succeeded,
            failed: None,
            invalid: None,
        },
        error,
        record_errors: Vec::new(),
        url,
        source: Some("airbyte".to_owned()),
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    #[test]
    fn a_succeeded_sync_maps_to_a_success() {
        let run = run_from_webhook(include_bytes!(
            "testdata/airbyte/webhook_sync_succeeded.json"
        ))
        .expect("maps");
        assert_eq!(run.sync_id, "airbyte:64d901a1-2520-4d91-93c8-9df438668ff0");
        assert_eq!(run.run_id, "9989");
        assert_eq!(run.status, RunStatus::Success);
        assert_eq!(run.source.as_deref(), Some("airbyte"));
        assert_eq!(
            run.finished_at,
            Some(Timestamp::parse_rfc3339("2025-03-04T07:12:40Z").expect("valid"))
        );
        assert_eq!(run.duration_ms(), Some(760_000));
        assert_eq!(run.records.processed, Some(41_000));
        assert_eq!(run.records.succeeded, Some(41_000));
        assert_eq!(run.error, None);
        assert_eq!(run.labels["connection"], "Postgres → Snowflake");
        assert_eq!(run.labels["airbyte_destination"], "Snowflake");
        assert!(
            run.url
                .as_deref()
                .is_some_and(|u| u.ends_with("/connections/64d901a1-2520-4d91-93c8-9df438668ff0"))
        );
    }

    #[test]
    fn a_failed_sync_does_not_invent_rejected_records() {
        let run = run_from_webhook(include_bytes!("testdata/airbyte/webhook_sync_failed.json"))
            .expect("maps");
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.run_id, "9988");
        // 20000 emitted, 10000 committed: the other 10000 were not rejected,
        // the run stopped.
        assert_eq!(
            run.records,
            RecordCounts {
                processed: Some(20_000),
                succeeded: Some(10_000),
                failed: None,
                invalid: None,
            }
        );
        assert_eq!(
            run.error.map(|e| e.message),
            Some("Failure in destination: Snowflake query timed out".to_owned())
        );
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert!(run_from_webhook(br#"{"data":{}}"#).is_err());
        assert!(run_from_webhook(b"[]").is_err());
        let body = br#"{"data":{"connection":{"id":"c"},"jobId":1,"finishedAt":"yesterday","success":true}}"#;
        assert!(
            run_from_webhook(body)
                .expect_err("bad time")
                .to_string()
                .contains("finishedAt")
        );
        let body = br#"{"data":{"connection":{"id":"c"},"jobId":1,"finishedAt":"2025-03-04T07:12:40Z","success":false}}"#;
        let run = run_from_webhook(body).expect("minimal");
        assert!(run.error.is_some());
        assert!(run.records.is_empty());
    }
}
