//! Fivetran: webhooks, mapped onto runs of `fivetran:<connector_id>`.
//!
//! Only `sync_end` describes a finished run; it carries no record counts.
//! Fivetran sends `test_event` (with no `sync_id`) when a webhook is
//! created and expects a 2xx, so it and every other event map to an explicit
//! [`FivetranOutcome::Ignored`] that the API answers with success without
//! storing anything.
//!
//! Status: `SUCCESSFUL` → success; `FAILURE` and `FAILURE_WITH_TASK` →
//! failed (the latter needs a human, e.g. to reconnect; the task type is kept
//! in the message). `RESCHEDULED` → **cancelled**: Fivetran stopped the sync
//! to resume it later (typically a source API quota), which is neither a
//! breakage (failed would page people for routine quota pauses) nor a
//! healthy run (success would reset a failure streak with no data moved).
//! Cancelled is neutral: it changes no streak but still shows the connector
//! is alive; a connector that only ever reschedules is left to record or
//! staleness rules.

use serde::Deserialize;

use super::{AdapterError, finish, label_text, run_error, timestamp, vendor_sync_id};
use crate::ingest::validate::{MAX_ID_CHARS, MAX_LABEL_VALUE_CHARS};
use crate::model::{RecordCounts, Run, RunStatus};

/// What a Fivetran webhook amounts to.
#[derive(Debug, Clone, PartialEq)]
pub enum FivetranOutcome {
    /// A finished sync.
    Run(Box<Run>),
    /// An event that records nothing (`test_event`, `sync_start`, …); answer
    /// it with 2xx so Fivetran does not retry or disable the webhook.
    Ignored { event: String },
}

#[derive(Deserialize)]
struct Payload {
    event: String,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    connector_id: Option<String>,
    #[serde(default)]
    connector_name: Option<String>,
    #[serde(default)]
    connector_type: Option<String>,
    #[serde(default)]
    sync_id: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    task_type: Option<String>,
}

/// Maps a Fivetran webhook body (verify `X-Fivetran-Signature-256` first).
pub fn from_webhook(body: &[u8]) -> Result<FivetranOutcome, AdapterError> {
    let p: Payload = serde_json::from_slice(body)?;
    if p.event != "sync_end" {
        return Ok(FivetranOutcome::Ignored {
            event: label_text(&p.event, 100),
        });
    }
    let connector_id = p
        .connector_id
        .as_deref()
        .ok_or_else(|| AdapterError::field("connector_id", "is missing"))?;
    let created = p
        .created
        .as_deref()
        .ok_or_else(|| AdapterError::field("created", "is missing"))?;
    let finished_at = timestamp("created", created)?;
    let data = p
        .data
        .ok_or_else(|| AdapterError::field("data", "is missing"))?;
    let raw_status = data
        .status
        .as_deref()
        .ok_or_else(|| AdapterError::field("data.status", "is missing"))?;
    let status = match raw_status {
        "SUCCESSFUL" => RunStatus::Success,
        "FAILURE" | "FAILURE_WITH_TASK" => RunStatus::Failed,
        "RESCHEDULED" => RunStatus::Cancelled,
        other => {
            return Err(AdapterError::field(
                "data.status",
                format!("unknown Fivetran sync_end status {other:?}"),
            ));
        }
    };
    let error = (status != RunStatus::Success).then(|| {
        let mut message = data
            .reason
            .clone()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| format!("Fivetran sync ended with {raw_status}"));
        if let Some(task) = &data.task_type {
            message.push_str(&format!(" (task: {task})"));
        }
        run_error(Some(raw_status), &message)
    });
    // The payload's `sync_id` identifies this sync run; without it the
    // finish time is the only stable key a retried delivery shares.
    let run_id = p
        .sync_id
        .filter(|s| !s.is_empty())
        .map(|s| label_text(&s, MAX_ID_CHARS))
        .unwrap_or_else(|| finished_at.to_rfc3339());
    let mut labels = std::collections::BTreeMap::new();
    if let Some(name) = &p.connector_name {
        labels.insert(
            "connector".to_owned(),
            label_text(name, MAX_LABEL_VALUE_CHARS),
        );
    }
    if let Some(t) = &p.connector_type {
        labels.insert(
            "connector_type".to_owned(),
            label_text(t, MAX_LABEL_VALUE_CHARS),
        );
    }
    let run = finish(Run {
        sync_id: vendor_sync_id("fivetran", connector_id)?,
        run_id,
        status,
        finished_at: Some(finished_at),
        started_at: None,
        records: RecordCounts::default(),
        error,
        record_errors: Vec::new(),
        url: None,
        source: Some("fivetran".to_owned()),
        labels,
    })?;
    Ok(FivetranOutcome::Run(Box::new(run)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    fn run(outcome: FivetranOutcome) -> Run {
        match outcome {
            FivetranOutcome::Run(r) => *r,
            FivetranOutcome::Ignored { event } => panic!("ignored {event}"),
        }
    }

    #[test]
    fn a_successful_sync_end_is_a_success() {
        let r = run(from_webhook(include_bytes!(
            "testdata/fivetran/webhook_sync_end_success.json"
        ))
        .expect("maps"));
        assert_eq!(r.sync_id, "fivetran:assimilate_seem");
        assert_eq!(r.run_id, "0c9e1d2a-77aa-4b11-9f5e-1a2b3c4d5e6f");
        assert_eq!(r.status, RunStatus::Success);
        assert_eq!(
            r.finished_at,
            Some(Timestamp::parse_rfc3339("2025-03-04T07:41:02.112Z").expect("valid"))
        );
        assert!(r.records.is_empty());
        assert_eq!(r.error, None);
        assert_eq!(r.source.as_deref(), Some("fivetran"));
        assert_eq!(r.labels["connector"], "salesforce_prod");
        assert_eq!(r.labels["connector_type"], "salesforce");
    }

    #[test]
    fn a_failure_with_task_is_a_failure_naming_the_task() {
        let r = run(from_webhook(include_bytes!(
            "testdata/fivetran/webhook_sync_end_failure.json"
        ))
        .expect("maps"));
        assert_eq!(r.status, RunStatus::Failed);
        let e = r.error.expect("error");
        assert_eq!(e.code.as_deref(), Some("FAILURE_WITH_TASK"));
        assert_eq!(
            e.message,
            "java.lang.RuntimeException: FATAL: too many connections for role \"fivetran\" (task: reconnect)"
        );
    }

    #[test]
    fn the_test_event_and_other_events_are_ignored() {
        assert_eq!(
            from_webhook(include_bytes!("testdata/fivetran/webhook_test_event.json"))
                .expect("maps"),
            FivetranOutcome::Ignored {
                event: "test_event".to_owned()
            }
        );
        assert_eq!(
            from_webhook(br#"{"event":"sync_start","connector_id":"x"}"#).expect("maps"),
            FivetranOutcome::Ignored {
                event: "sync_start".to_owned()
            }
        );
    }

    #[test]
    fn rescheduled_is_neutral_and_unknown_statuses_are_errors() {
        let body = |status: &str| {
            format!(
                r#"{{"event":"sync_end","created":"2025-03-04T07:41:02Z","connector_id":"c","data":{{"status":"{status}"}}}}"#
            )
        };
        let r = run(from_webhook(body("RESCHEDULED").as_bytes()).expect("maps"));
        assert_eq!(r.status, RunStatus::Cancelled);
        // No payload sync_id: the finish time keys the run.
        assert_eq!(r.run_id, "2025-03-04T07:41:02Z");
        let r = run(from_webhook(body("FAILURE").as_bytes()).expect("maps"));
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(
            r.error.map(|e| e.message),
            Some("Fivetran sync ended with FAILURE".to_owned())
        );
        assert!(from_webhook(body("MAYBE").as_bytes()).is_err());
        assert!(from_webhook(br#"{"event":"sync_end","created":"2025-03-04T07:41:02Z"}"#).is_err());
        assert!(from_webhook(b"{}").is_err());
    }
}
