//! Hightouch: the sync-runs API (`GET /api/v1/syncs/{id}/runs`), polled,
//! mapped onto runs of `hightouch:<sync_id>` (SPEC §6: Hightouch has no
//! webhook we use).
//!
//! Status: `warning` means the run completed but the destination rejected
//! some rows, which is a success with a failed count (the record thresholds
//! of a rule decide whether that is bad), exactly like a Census run that is
//! `completed` with rejected rows. Rows come split into added / changed /
//! removed; each canonical count is their sum: `processed` from
//! `plannedRows`, `succeeded` from `successfulRows`, `failed` from
//! `failedRows`. Failed rows are retried on later runs, so the same row
//! recurs; the counts are per run and are not deduplicated across runs.

use serde::Deserialize;
use serde_json::Value;

use super::{
    AdapterError, VendorId, consistent, finish, optional_timestamp, run_error, timestamp,
    vendor_sync_id,
};
use crate::model::{RecordCounts, Run, RunStatus};

#[derive(Deserialize)]
struct RunList {
    data: Vec<ApiRun>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiRun {
    id: VendorId,
    status: String,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(default)]
    planned_rows: Option<Rows>,
    #[serde(default)]
    successful_rows: Option<Rows>,
    #[serde(default)]
    failed_rows: Option<Rows>,
    /// A string in the documented API; an object with `message` is
    /// accepted too.
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rows {
    #[serde(default)]
    added_count: Option<u64>,
    #[serde(default)]
    changed_count: Option<u64>,
    #[serde(default)]
    removed_count: Option<u64>,
}

impl Rows {
    /// The sum of the parts given; unknown when none is.
    fn total(&self) -> Option<u64> {
        let parts = [self.added_count, self.changed_count, self.removed_count];
        parts.iter().flatten().copied().reduce(u64::saturating_add)
    }
}

/// Maps a `GET /api/v1/syncs/{sync_id}/runs` response onto runs of
/// `hightouch:<sync_id>`. The response does not repeat the sync id, so the
/// poller passes the one it asked for.
pub fn runs_from_api(sync_id: &str, body: &[u8]) -> Result<Vec<Run>, AdapterError> {
    let list: RunList = serde_json::from_slice(body)?;
    let sync_id = vendor_sync_id("hightouch", sync_id)?;
    list.data
        .into_iter()
        .map(|r| map_run(&sync_id, r))
        .collect()
}

fn map_run(sync_id: &str, r: ApiRun) -> Result<Run, AdapterError> {
    let status = match r.status.as_str() {
        "success" | "warning" => RunStatus::Success,
        "failed" => RunStatus::Failed,
        "cancelled" | "canceled" | "interrupted" | "aborted" => RunStatus::Cancelled,
        "queued" | "pending" | "querying" | "processing" | "reporting" | "running" => {
            RunStatus::Running
        }
        other => {
            return Err(AdapterError::field(
                "status",
                format!("unknown Hightouch run status {other:?}"),
            ));
        }
    };
    let finished_at = if status == RunStatus::Running {
        None
    } else {
        let s = r
            .finished_at
            .as_deref()
            .ok_or_else(|| AdapterError::field("finishedAt", "a finished run needs finishedAt"))?;
        Some(timestamp("finishedAt", s)?)
    };
    let started_at = match r.started_at.as_deref() {
        Some(s) => Some(timestamp("startedAt", s)?),
        None => optional_timestamp("createdAt", r.created_at.as_deref())?,
    };
    let records = consistent(RecordCounts {
        processed: r.planned_rows.as_ref().and_then(Rows::total),
        succeeded: r.successful_rows.as_ref().and_then(Rows::total),
        failed: r.failed_rows.as_ref().and_then(Rows::total),
        invalid: None,
    });
    let error = match &r.error {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(run_error(None, s)),
        Some(Value::Object(o)) => o.get("message").and_then(Value::as_str).map(|m| {
            let code = o.get("code").and_then(Value::as_str);
            run_error(code, m)
        }),
        _ => None,
    };
    finish(Run {
        sync_id: sync_id.to_owned(),
        run_id: r.id.to_string(),
        status,
        finished_at,
        started_at: started_at.filter(|s| finished_at.is_none_or(|f| *s <= f)),
        records,
        error,
        record_errors: Vec::new(),
        url: None,
        source: Some("hightouch".to_owned()),
        labels: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RunError, Timestamp};

    #[test]
    fn a_warning_is_a_success_with_failed_rows_and_a_failure_keeps_its_error() {
        let runs = runs_from_api(
            "4417",
            include_bytes!("testdata/hightouch/sync_runs_warning.json"),
        )
        .expect("maps");
        assert_eq!(runs.len(), 2);

        let w = &runs[0];
        assert_eq!(w.sync_id, "hightouch:4417");
        assert_eq!(w.run_id, "98711234");
        assert_eq!(w.status, RunStatus::Success);
        assert_eq!(w.source.as_deref(), Some("hightouch"));
        assert_eq!(
            w.records,
            RecordCounts {
                processed: Some(10_000),
                succeeded: Some(5_998),
                failed: Some(4_002),
                invalid: None,
            }
        );
        assert_eq!(
            w.finished_at,
            Some(Timestamp::parse_rfc3339("2025-03-04T06:04:10Z").expect("valid"))
        );
        assert_eq!(
            w.started_at,
            Some(Timestamp::parse_rfc3339("2025-03-04T06:00:02Z").expect("valid"))
        );
        assert_eq!(w.error, None);

        let f = &runs[1];
        assert_eq!(f.status, RunStatus::Failed);
        // Hightouch reports zeros, not nulls, for a run that failed early;
        // they are kept as reported.
        assert_eq!(f.records.failed, Some(0));
        assert_eq!(
            f.error,
            Some(RunError {
                code: Some("DESTINATION_INVALID_GRANT".to_owned()),
                message: "DESTINATION_INVALID_GRANT: The refresh token for the Salesforce connection has expired or been revoked".to_owned(),
            })
        );
    }

    #[test]
    fn statuses_partial_rows_and_running_runs() {
        let body = br#"{"data":[
            {"id":1,"status":"querying","createdAt":"2025-03-04T06:00:01Z"},
            {"id":2,"status":"cancelled","finishedAt":"2025-03-04T06:00:09Z",
             "plannedRows":{"addedCount":5},"failedRows":{"addedCount":9},
             "error":{"message":"stopped by user"}}
        ]}"#;
        let runs = runs_from_api("x", body).expect("maps");
        assert_eq!(runs[0].status, RunStatus::Running);
        assert_eq!(runs[0].finished_at, None);
        assert_eq!(runs[1].status, RunStatus::Cancelled);
        // failed > planned (retried rows): processed becomes unknown.
        assert_eq!(
            (runs[1].records.processed, runs[1].records.failed),
            (None, Some(9))
        );
        assert_eq!(
            runs[1].error.as_ref().map(|e| e.message.as_str()),
            Some("stopped by user")
        );

        let e = runs_from_api("x", br#"{"data":[{"id":1,"status":"weird"}]}"#).expect_err("status");
        assert!(e.to_string().contains("weird"));
        let e =
            runs_from_api("x", br#"{"data":[{"id":1,"status":"success"}]}"#).expect_err("no end");
        assert!(e.to_string().contains("finishedAt"));
        assert!(runs_from_api("", br#"{"data":[]}"#).is_err());
    }
}
