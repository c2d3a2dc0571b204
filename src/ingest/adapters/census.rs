//! Census: sync lifecycle webhooks and the sync-run API, mapped onto runs of
//! `census:<sync_id>`.
//!
//! Census's webhook only says that a run ended and how (it carries no
//! counts), so the usual flow is: verify `X-Signature`
//! ([`super::signature::verify_hmac_sha256_base64`]), [`parse_webhook`],
//! fetch `GET /api/v1/sync_runs/{sync_run_id}` and map it with
//! [`run_from_api`], then fetch `GET /api/v1/sync_runs/{id}/records?status=rejected`
//! and attach [`rejected_records`]. Without an API token,
//! [`CensusWebhook::to_run`] still records the outcome.
//!
//! Counts (fixture `sync_run_completed_partial.json`): `records_processed`
//! (10000) = `records_updated` (5998) + `records_failed` (4002) are the rows
//! Census sent; `source_record_invalids` (12) were skipped before sending,
//! and together they are the 10012 changed rows (`source_record_updates +
//! source_record_deletes`). The canonical `processed` counts every record the
//! run tried, so it is `records_processed + invalids` (10012); otherwise a run
//! whose rows were all invalid would break `failed + invalid ≤ processed`.
//! `source_record_count` (182340) is the size of the whole source model,
//! not what this run tried, and is not used. A `null` count stays unknown:
//! a run that failed before loading has none.

use serde::Deserialize;

use super::{
    AdapterError, VendorId, consistent, finish, label_text, leading_code, message_text,
    optional_timestamp, run_error, timestamp, vendor_sync_id,
};
use crate::ingest::validate::{MAX_CODE_CHARS, MAX_FIELD_CHARS, MAX_RECORD_ID_CHARS};
use crate::model::{RecordCounts, RecordError, Run, RunError, RunStatus, Timestamp};

/// What a Census webhook says about a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CensusWebhook {
    /// Census's own sync id (`52114`), without the `census:` prefix.
    pub sync_id: String,
    /// The id to fetch with `GET /api/v1/sync_runs/{sync_run_id}`.
    pub sync_run_id: String,
    /// The event name, e.g. `sync.completed`.
    pub event: String,
    pub outcome: CensusOutcome,
    /// When the event happened, if the payload says (the documented payload
    /// does not; see [`CensusWebhook::to_run`]).
    pub occurred_at: Option<Timestamp>,
}

/// The outcome a Census webhook reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CensusOutcome {
    /// `sync.completed` / `"status": "ok"`: the run finished; rejected rows
    /// are still possible and only the API knows them.
    Succeeded,
    /// `sync.failed`.
    Failed,
    /// Any other event (e.g. a start notification): nothing to record.
    Other,
}

#[derive(Deserialize)]
struct WebhookPayload {
    sync_id: VendorId,
    sync_run_id: VendorId,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    status: Option<String>,
    // Census's documented payload carries no time; these names are accepted
    // in case a version adds one.
    #[serde(default, alias = "created_at", alias = "occurred_at")]
    timestamp: Option<String>,
}

/// Parses a Census webhook. The outcome comes from `event` (`sync.completed`,
/// `sync.failed`), falling back to `status` (`ok`, `failed`): the failure
/// fixture has no `status` at all.
pub fn parse_webhook(body: &[u8]) -> Result<CensusWebhook, AdapterError> {
    let p: WebhookPayload = serde_json::from_slice(body)?;
    let event = p.event.unwrap_or_default();
    let by_event = match event.as_str() {
        "sync.completed" | "sync.succeeded" | "sync.success" => Some(CensusOutcome::Succeeded),
        "sync.failed" | "sync.error" => Some(CensusOutcome::Failed),
        _ => None,
    };
    let by_status = match p.status.as_deref() {
        Some("ok" | "success" | "completed") => Some(CensusOutcome::Succeeded),
        Some("failed" | "error" | "failure") => Some(CensusOutcome::Failed),
        _ => None,
    };
    Ok(CensusWebhook {
        sync_id: p.sync_id.to_string(),
        sync_run_id: p.sync_run_id.to_string(),
        event,
        outcome: by_event.or(by_status).unwrap_or(CensusOutcome::Other),
        occurred_at: optional_timestamp("timestamp", p.timestamp.as_deref())?,
    })
}

impl CensusWebhook {
    /// The run as far as the webhook alone tells it (no counts, no error
    /// text), for a source with no API token. `received_at` stands in for the
    /// finish time when the payload has none. `None` for [`CensusOutcome::Other`].
    pub fn to_run(&self, received_at: Timestamp) -> Result<Option<Run>, AdapterError> {
        let status = match self.outcome {
            CensusOutcome::Succeeded => RunStatus::Success,
            CensusOutcome::Failed => RunStatus::Failed,
            CensusOutcome::Other => return Ok(None),
        };
        let error = (status == RunStatus::Failed).then(|| RunError {
            code: None,
            message: format!(
                "Census reported {} (the webhook carries no details)",
                if self.event.is_empty() {
                    "a failed run"
                } else {
                    &self.event
                }
            ),
        });
        finish(Run {
            sync_id: vendor_sync_id("census", &self.sync_id)?,
            run_id: self.sync_run_id.clone(),
            status,
            finished_at: Some(self.occurred_at.unwrap_or(received_at)),
            started_at: None,
            records: RecordCounts::default(),
            error,
            record_errors: Vec::new(),
            url: None,
            source: Some("census".to_owned()),
            labels: Default::default(),
        })
        .map(Some)
    }
}

/// A sync run as the Census API returns it.
#[derive(Deserialize)]
struct ApiRun {
    id: VendorId,
    sync_id: VendorId,
    status: String,
    #[serde(default)]
    canceled: Option<bool>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    completed_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    records_processed: Option<u64>,
    #[serde(default)]
    records_failed: Option<u64>,
    #[serde(default)]
    source_record_invalids: Option<u64>,
    /// The older name of `source_record_invalids`.
    #[serde(default)]
    records_invalid: Option<u64>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    error_detail: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneRun {
    Wrapped { data: ApiRun },
    Bare(ApiRun),
}

#[derive(Deserialize)]
struct RunList {
    data: Vec<ApiRun>,
}

/// Maps `GET /api/v1/sync_runs/{id}` (the `{"status","data"}` envelope or a
/// bare run object) onto a run.
pub fn run_from_api(body: &[u8]) -> Result<Run, AdapterError> {
    let run = match serde_json::from_slice::<OneRun>(body)? {
        OneRun::Wrapped { data } | OneRun::Bare(data) => data,
    };
    map_run(run)
}

/// Maps a list of sync runs (`GET /api/v1/syncs/{id}/sync_runs`).
pub fn runs_from_list(body: &[u8]) -> Result<Vec<Run>, AdapterError> {
    let list: RunList = serde_json::from_slice(body)?;
    list.data.into_iter().map(map_run).collect()
}

#[derive(Deserialize)]
struct Pagination {
    #[serde(default)]
    next_page: Option<u64>,
}

#[derive(Deserialize)]
struct Paged {
    #[serde(default)]
    pagination: Option<Pagination>,
}

/// The `pagination.next_page` of a Census list response, for pollers that
/// walk every page.
pub fn next_page(body: &[u8]) -> Result<Option<u64>, AdapterError> {
    let p: Paged = serde_json::from_slice(body)?;
    Ok(p.pagination.and_then(|p| p.next_page))
}

fn map_run(r: ApiRun) -> Result<Run, AdapterError> {
    let status = if r.canceled == Some(true) {
        RunStatus::Cancelled
    } else {
        match r.status.as_str() {
            "completed" => RunStatus::Success,
            "failed" => RunStatus::Failed,
            "cancelled" | "canceled" | "skipped" => RunStatus::Cancelled,
            "working" | "queued" | "running" | "pending" => RunStatus::Running,
            other => {
                return Err(AdapterError::field(
                    "status",
                    format!("unknown Census run status {other:?}"),
                ));
            }
        }
    };
    let started_at = optional_timestamp("created_at", r.created_at.as_deref())?;
    let finished_at = if status == RunStatus::Running {
        None
    } else {
        let (field, s) = match (&r.completed_at, &r.updated_at) {
            (Some(c), _) => ("completed_at", c),
            (None, Some(u)) => ("updated_at", u),
            (None, None) => {
                return Err(AdapterError::field(
                    "completed_at",
                    "a finished run needs completed_at or updated_at",
                ));
            }
        };
        Some(timestamp(field, s)?)
    };
    let invalid = r.source_record_invalids.or(r.records_invalid);
    let records = consistent(RecordCounts {
        processed: r
            .records_processed
            .map(|p| p.saturating_add(invalid.unwrap_or(0))),
        succeeded: match (r.records_processed, r.records_failed) {
            (Some(p), Some(f)) => Some(p.saturating_sub(f)),
            _ => None,
        },
        failed: r.records_failed,
        invalid,
    });
    let message = r
        .error_message
        .as_deref()
        .or(r.error_detail.as_deref())
        .or(r.error_code.as_deref());
    let error = message.map(|m| run_error(r.error_code.as_deref(), m));
    finish(Run {
        sync_id: vendor_sync_id("census", &r.sync_id.to_string())?,
        run_id: r.id.to_string(),
        status,
        finished_at,
        started_at: started_at.filter(|s| finished_at.is_none_or(|f| *s <= f)),
        records,
        error,
        record_errors: Vec::new(),
        url: None,
        source: Some("census".to_owned()),
        labels: Default::default(),
    })
}

#[derive(Deserialize)]
struct RecordList {
    data: Vec<ApiRecord>,
}

#[derive(Deserialize)]
struct ApiRecord {
    #[serde(default)]
    identifier: Option<VendorId>,
    #[serde(default)]
    status_message: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// Maps `GET /api/v1/sync_runs/{id}/records?status=rejected` onto record
/// errors, at most `cap` of them (a run's record errors are a sample;
/// `records.failed` is the true total).
///
/// `identifier` becomes `record_id`, `status_message` the message. Census
/// writes Salesforce's `CODE: Field: text` verbatim, so the leading code
/// becomes `code` and a single-word field name after it becomes `field`; the
/// message is kept whole.
pub fn rejected_records(body: &[u8], cap: usize) -> Result<Vec<RecordError>, AdapterError> {
    let list: RecordList = serde_json::from_slice(body)?;
    Ok(list
        .data
        .into_iter()
        .take(cap)
        .map(|r| {
            let message = r
                .status_message
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| {
                    format!(
                        "record {} by the destination, no message given",
                        r.status.as_deref().unwrap_or("rejected")
                    )
                });
            let code = leading_code(&message).map(|c| label_text(c, MAX_CODE_CHARS));
            let field = code
                .as_deref()
                .and_then(|c| message.get(c.len() + 2..))
                .and_then(leading_field)
                .map(|f| label_text(f, MAX_FIELD_CHARS));
            RecordError {
                record_id: r
                    .identifier
                    .map(|i| label_text(&i.to_string(), MAX_RECORD_ID_CHARS))
                    .filter(|i| !i.is_empty()),
                code,
                message: message_text(&message),
                field,
            }
        })
        .collect())
}

/// `Email` in `Email: invalid email address: …`: one identifier (letters,
/// digits, `_`) before `": "`; anything with a space is prose, not a field.
fn leading_field(rest: &str) -> Option<&str> {
    let (head, _) = rest.split_once(": ")?;
    let ok = !head.is_empty()
        && head.len() <= 80
        && head.starts_with(|c: char| c.is_ascii_alphabetic())
        && head.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Option<Timestamp> {
        Some(Timestamp::parse_rfc3339(s).expect("valid"))
    }

    #[test]
    fn webhooks_say_which_run_ended_and_how() {
        let w = parse_webhook(include_bytes!(
            "testdata/census/webhook_sync_completed.json"
        ))
        .expect("completed webhook");
        assert_eq!(
            w,
            CensusWebhook {
                sync_id: "52114".to_owned(),
                sync_run_id: "8812734".to_owned(),
                event: "sync.completed".to_owned(),
                outcome: CensusOutcome::Succeeded,
                occurred_at: None,
            }
        );
        // The failure webhook has no `status` field: the event decides.
        let w = parse_webhook(include_bytes!("testdata/census/webhook_sync_failed.json"))
            .expect("failed webhook");
        assert_eq!(w.outcome, CensusOutcome::Failed);
        assert_eq!(w.sync_run_id, "8812790");

        let now = Timestamp::parse_rfc3339("2025-03-04T07:00:45Z").expect("valid");
        let run = w.to_run(now).expect("maps").expect("a run");
        assert_eq!(run.sync_id, "census:52114");
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.finished_at, Some(now));
        assert!(run.records.is_empty());

        let other = parse_webhook(br#"{"sync_id":"1","sync_run_id":"2","event":"sync.started"}"#)
            .expect("parses");
        assert_eq!(other.outcome, CensusOutcome::Other);
        assert_eq!(other.to_run(now).expect("maps"), None);
        assert!(parse_webhook(br#"{"sync_id":1}"#).is_err());
        assert!(parse_webhook(b"not json").is_err());
    }

    #[test]
    fn a_completed_run_with_rejected_rows_is_a_success_with_counts() {
        let run = run_from_api(include_bytes!(
            "testdata/census/sync_run_completed_partial.json"
        ))
        .expect("maps");
        assert_eq!(run.sync_id, "census:52114");
        assert_eq!(run.run_id, "8812734");
        assert_eq!(run.status, RunStatus::Success);
        assert_eq!(run.source.as_deref(), Some("census"));
        assert_eq!(run.started_at, ts("2025-03-04T06:00:04.112Z"));
        assert_eq!(run.finished_at, ts("2025-03-04T06:03:41.907Z"));
        assert_eq!(
            run.records,
            RecordCounts {
                processed: Some(10_012),
                succeeded: Some(5_998),
                failed: Some(4_002),
                invalid: Some(12),
            }
        );
        assert_eq!(run.error, None);
    }

    #[test]
    fn a_failed_run_keeps_null_counts_unknown() {
        let run =
            run_from_api(include_bytes!("testdata/census/sync_run_failed.json")).expect("maps");
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.records, RecordCounts::default());
        assert_eq!(
            run.error,
            Some(RunError {
                code: Some("INVALID_SESSION_ID".to_owned()),
                message: "INVALID_SESSION_ID: Session expired or invalid".to_owned(),
            })
        );
    }

    #[test]
    fn the_run_list_maps_every_run() {
        let runs =
            runs_from_list(include_bytes!("testdata/census/sync_runs_list.json")).expect("maps");
        let got: Vec<(&str, RunStatus)> =
            runs.iter().map(|r| (r.run_id.as_str(), r.status)).collect();
        assert_eq!(
            got,
            [
                ("8812734", RunStatus::Success),
                ("8812790", RunStatus::Failed)
            ]
        );
        assert_eq!(
            next_page(include_bytes!("testdata/census/sync_runs_list.json")).expect("page"),
            None
        );
    }

    #[test]
    fn cancelled_running_and_older_field_names() {
        let body = br#"{"data":{"id":"7","sync_id":9,"status":"failed","canceled":true,
            "completed_at":"2025-03-04T07:00:41Z","records_processed":5,"records_failed":1,
            "records_invalid":2}}"#;
        let run = run_from_api(body).expect("maps");
        assert_eq!(run.status, RunStatus::Cancelled);
        assert_eq!(run.records.invalid, Some(2));
        assert_eq!(run.records.processed, Some(7));

        let body =
            br#"{"id":8,"sync_id":9,"status":"working","created_at":"2025-03-04T07:00:00Z"}"#;
        let run = run_from_api(body).expect("maps");
        assert_eq!(run.status, RunStatus::Running);
        assert_eq!(run.finished_at, None);

        let body =
            br#"{"id":8,"sync_id":9,"status":"exploded","completed_at":"2025-03-04T07:00:00Z"}"#;
        let e = run_from_api(body).expect_err("unknown status");
        assert!(e.to_string().contains("exploded"), "{e}");
        let body = br#"{"id":8,"sync_id":9,"status":"completed"}"#;
        assert!(run_from_api(body).is_err());
    }

    #[test]
    fn rejected_records_become_record_errors() {
        let body = include_bytes!("testdata/census/sync_run_records_rejected.json");
        let errors = rejected_records(body, 100).expect("maps");
        assert_eq!(
            errors,
            vec![
                RecordError {
                    record_id: Some("0035e00000AbCdE".to_owned()),
                    code: Some("INVALID_EMAIL_ADDRESS".to_owned()),
                    message: "INVALID_EMAIL_ADDRESS: Email: invalid email address: jane.doe@"
                        .to_owned(),
                    field: Some("Email".to_owned()),
                },
                RecordError {
                    record_id: Some("0035e00000XyZaB".to_owned()),
                    code: Some("DUPLICATE_VALUE".to_owned()),
                    message: "DUPLICATE_VALUE: duplicate value found: External_Id__c duplicates value on record with id: 0035e00000AbCdE".to_owned(),
                    field: None,
                },
            ]
        );
        assert_eq!(rejected_records(body, 1).expect("maps").len(), 1);
        assert_eq!(next_page(body).expect("page"), None);

        // The records attach to the run and the whole stays valid.
        let mut run = run_from_api(include_bytes!(
            "testdata/census/sync_run_completed_partial.json"
        ))
        .expect("maps");
        run.record_errors = errors;
        assert!(finish(run).is_ok());
    }
}
