//! dbt: `target/run_results.json` (dbt Core, schema v4–v6) and the dbt Cloud
//! job webhook, mapped onto runs (SPEC §8).
//!
//! A `run_results.json` gives one run per node, `dbt:<unique_id>`, so a
//! single broken model or test can have its own alert, plus one run per
//! invocation, `dbt:<project>`, so downstream syncs can `depends_on` the
//! project as a whole. A dbt Cloud job run is a run of `dbt:<projectName>`,
//! the same sync as the invocation of a local build of that project.
//!
//! Node statuses: models, seeds and snapshots report `success` / `error` /
//! `skipped`; tests `pass` / `fail` / `warn` / `error` / `skipped`. `warn`
//! is a success (the project's own severity config says the rows are
//! tolerable); `skipped` is cancelled (neutral: a node skipped because an
//! upstream failed is not a breakage of its own). A test's `failures` (the
//! number of failing rows, also reported for `warn`) is its `failed` count,
//! and the invocation's `failed` is their sum: whether that many rows matter
//! is the rule's `failed_records_above`, not the adapter's, to decide.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{
    AdapterError, VendorId, finish, label_text, message_text, optional_timestamp, run_error,
    timestamp, vendor_sync_id,
};
use crate::ingest::validate::{MAX_ID_CHARS, MAX_LABEL_VALUE_CHARS};
use crate::model::{RecordCounts, Run, RunStatus, Timestamp};

#[derive(Deserialize)]
struct RunResults {
    metadata: Metadata,
    results: Vec<NodeResult>,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    dbt_schema_version: Option<String>,
    #[serde(default)]
    generated_at: Option<String>,
    #[serde(default)]
    invocation_id: Option<String>,
    /// Not written by dbt Core 1.8 (schema v6), but taken when present.
    #[serde(default)]
    project_name: Option<String>,
}

#[derive(Deserialize)]
struct NodeResult {
    unique_id: String,
    status: String,
    #[serde(default)]
    failures: Option<u64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    timing: Vec<Timing>,
    #[serde(default)]
    adapter_response: Option<Value>,
}

#[derive(Deserialize)]
struct Timing {
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    completed_at: Option<String>,
}

/// Maps a `run_results.json` onto one run per node and, last, one run for
/// the invocation.
///
/// The project name comes from `metadata.project_name` when present, else
/// from `project`, else from the package segment of the node ids
/// (`model.crm.dim_contacts` → `crm`) when every node agrees; otherwise the
/// caller must pass it. Every run's id is the invocation id, so re-uploading
/// the same file is idempotent.
pub fn runs_from_run_results(body: &[u8], project: Option<&str>) -> Result<Vec<Run>, AdapterError> {
    let rr: RunResults = serde_json::from_slice(body)?;
    if let Some(v) = &rr.metadata.dbt_schema_version
        && !v.contains("run-results")
    {
        return Err(AdapterError::field(
            "metadata.dbt_schema_version",
            format!("{v:?} is not a run_results.json schema"),
        ));
    }
    let project = rr
        .metadata
        .project_name
        .clone()
        .or_else(|| project.map(str::to_owned))
        .or_else(|| inferred_project(&rr.results))
        .ok_or_else(|| {
            AdapterError::field(
                "metadata.project_name",
                "is absent and the nodes span several packages: pass the project name",
            )
        })?;
    let generated_at =
        optional_timestamp("metadata.generated_at", rr.metadata.generated_at.as_deref())?;
    let run_id = match (&rr.metadata.invocation_id, generated_at) {
        (Some(id), _) if !id.is_empty() => label_text(id, MAX_ID_CHARS),
        (_, Some(t)) => t.to_rfc3339(),
        _ => {
            return Err(AdapterError::field(
                "metadata.invocation_id",
                "is missing (and so is generated_at)",
            ));
        }
    };

    let mut runs = Vec::with_capacity(rr.results.len() + 1);
    for node in &rr.results {
        runs.push(node_run(node, &project, &run_id, generated_at)?);
    }
    runs.push(invocation_run(&rr, &runs, &project, run_id, generated_at)?);
    Ok(runs)
}

/// The package segment shared by every node id, if they all share one.
fn inferred_project(results: &[NodeResult]) -> Option<String> {
    let mut packages = results.iter().map(|n| n.unique_id.split('.').nth(1));
    let first = packages.next()??;
    packages.all(|p| p == Some(first)).then(|| first.to_owned())
}

fn node_status(status: &str) -> Result<RunStatus, AdapterError> {
    match status {
        "success" | "pass" | "warn" | "no-op" => Ok(RunStatus::Success),
        "error" | "fail" | "runtime error" | "partial success" => Ok(RunStatus::Failed),
        "skipped" => Ok(RunStatus::Cancelled),
        other => Err(AdapterError::field(
            "results[].status",
            format!("unknown dbt node status {other:?}"),
        )),
    }
}

fn node_run(
    node: &NodeResult,
    project: &str,
    run_id: &str,
    generated_at: Option<Timestamp>,
) -> Result<Run, AdapterError> {
    let status = node_status(&node.status)?;
    let mut started: Option<Timestamp> = None;
    let mut completed: Option<Timestamp> = None;
    for t in &node.timing {
        if let Some(s) =
            optional_timestamp("results[].timing[].started_at", t.started_at.as_deref())?
        {
            started = Some(started.map_or(s, |p| p.min(s)));
        }
        if let Some(c) =
            optional_timestamp("results[].timing[].completed_at", t.completed_at.as_deref())?
        {
            completed = Some(completed.map_or(c, |p| p.max(c)));
        }
    }
    // A node that errored before running has empty timing: it ended no
    // later than the file was written.
    let finished_at = completed.or(generated_at).ok_or_else(|| {
        AdapterError::field(
            "results[].timing",
            format!(
                "{} has no timing and the file no generated_at",
                node.unique_id
            ),
        )
    })?;
    let resource_type = node.unique_id.split('.').next().unwrap_or_default();
    let records = if matches!(resource_type, "test" | "unit_test") {
        RecordCounts {
            failed: node.failures,
            ..Default::default()
        }
    } else {
        let rows = node
            .adapter_response
            .as_ref()
            .and_then(|a| a.get("rows_affected"))
            .and_then(Value::as_u64)
            .filter(|_| status == RunStatus::Success);
        RecordCounts {
            processed: rows,
            succeeded: rows,
            ..Default::default()
        }
    };
    let error = (status == RunStatus::Failed).then(|| {
        let message = node
            .message
            .clone()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| format!("dbt reported {}", node.status));
        run_error(None, &message)
    });
    let mut labels = BTreeMap::new();
    labels.insert(
        "project".to_owned(),
        label_text(project, MAX_LABEL_VALUE_CHARS),
    );
    if !resource_type.is_empty() {
        labels.insert(
            "resource_type".to_owned(),
            label_text(resource_type, MAX_LABEL_VALUE_CHARS),
        );
    }
    finish(Run {
        sync_id: vendor_sync_id("dbt", &node.unique_id)?,
        run_id: run_id.to_owned(),
        status,
        finished_at: Some(finished_at),
        started_at: started.filter(|s| *s <= finished_at),
        records,
        error,
        record_errors: Vec::new(),
        url: None,
        source: Some("dbt".to_owned()),
        labels,
    })
}

fn invocation_run(
    rr: &RunResults,
    nodes: &[Run],
    project: &str,
    run_id: String,
    generated_at: Option<Timestamp>,
) -> Result<Run, AdapterError> {
    let failed_nodes: Vec<(&NodeResult, &Run)> = rr
        .results
        .iter()
        .zip(nodes)
        .filter(|(_, r)| r.status == RunStatus::Failed)
        .collect();
    let status = if !failed_nodes.is_empty() {
        RunStatus::Failed
    } else if nodes.iter().any(|r| r.status == RunStatus::Success) || nodes.is_empty() {
        RunStatus::Success
    } else {
        RunStatus::Cancelled
    };
    let finished_at = nodes
        .iter()
        .filter_map(|r| r.finished_at)
        .chain(generated_at)
        .max()
        .ok_or_else(|| AdapterError::field("metadata.generated_at", "is missing"))?;
    let started_at = nodes
        .iter()
        .filter_map(|r| r.started_at)
        .min()
        .filter(|s| *s <= finished_at);
    let test_failures: Vec<u64> = nodes
        .iter()
        .filter(|r| {
            r.labels
                .get("resource_type")
                .is_some_and(|t| t == "test" || t == "unit_test")
        })
        .filter_map(|r| r.records.failed)
        .collect();
    let failed = (!test_failures.is_empty()).then(|| {
        test_failures
            .iter()
            .copied()
            .fold(0u64, u64::saturating_add)
    });
    let error = (!failed_nodes.is_empty()).then(|| {
        let details: Vec<String> = failed_nodes
            .iter()
            .map(|(n, r)| {
                let m = r
                    .error
                    .as_ref()
                    .map(|e| e.message.as_str())
                    .unwrap_or_default();
                format!("{}: {m}", n.unique_id)
            })
            .collect();
        let text = format!(
            "{} of {} dbt nodes failed: {}",
            failed_nodes.len(),
            nodes.len(),
            details.join("; ")
        );
        run_error(None, &message_text(&text))
    });
    let mut labels = BTreeMap::new();
    labels.insert(
        "project".to_owned(),
        label_text(project, MAX_LABEL_VALUE_CHARS),
    );
    if let Some(which) = rr
        .args
        .as_ref()
        .and_then(|a| a.get("which"))
        .and_then(Value::as_str)
    {
        labels.insert(
            "command".to_owned(),
            label_text(which, MAX_LABEL_VALUE_CHARS),
        );
    }
    finish(Run {
        sync_id: vendor_sync_id("dbt", project)?,
        run_id,
        status,
        finished_at: Some(finished_at),
        started_at,
        records: RecordCounts {
            failed,
            ..Default::default()
        },
        error,
        record_errors: Vec::new(),
        url: None,
        source: Some("dbt".to_owned()),
        labels,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CloudWebhook {
    event_type: String,
    #[serde(default)]
    timestamp: Option<String>,
    data: CloudData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CloudData {
    run_id: VendorId,
    #[serde(default)]
    job_id: Option<VendorId>,
    #[serde(default)]
    job_name: Option<String>,
    #[serde(default)]
    environment_name: Option<String>,
    #[serde(default)]
    project_name: Option<String>,
    #[serde(default)]
    run_status: Option<String>,
    #[serde(default)]
    run_status_message: Option<String>,
    #[serde(default)]
    run_started_at: Option<String>,
    #[serde(default)]
    run_finished_at: Option<String>,
    #[serde(default)]
    run_errored_at: Option<String>,
    #[serde(default, alias = "runCanceledAt")]
    run_cancelled_at: Option<String>,
}

/// Maps a dbt Cloud job webhook (`job.run.started`, `job.run.completed`,
/// `job.run.errored`) onto a run of `dbt:<projectName>` (verify the
/// `Authorization` HMAC first).
///
/// `runStatus` decides (`Success`, `Error`/`Errored`, `Cancelled`, or still
/// running), falling back to the event type. dbt Cloud sends both
/// `completed` and `errored` for a failed run; they share the run id, so the
/// second is an ordinary duplicate.
pub fn run_from_cloud_webhook(body: &[u8]) -> Result<Run, AdapterError> {
    let w: CloudWebhook = serde_json::from_slice(body)?;
    let d = w.data;
    let by_status = match d.run_status.as_deref() {
        Some("Success") => Some(RunStatus::Success),
        Some("Error" | "Errored") => Some(RunStatus::Failed),
        Some("Cancelled" | "Canceled") => Some(RunStatus::Cancelled),
        Some("Queued" | "Starting" | "Running") => Some(RunStatus::Running),
        Some(other) => {
            return Err(AdapterError::field(
                "data.runStatus",
                format!("unknown dbt Cloud run status {other:?}"),
            ));
        }
        None => None,
    };
    let by_event = match w.event_type.as_str() {
        "job.run.started" => Some(RunStatus::Running),
        "job.run.errored" => Some(RunStatus::Failed),
        _ => None,
    };
    let status = by_status.or(by_event).ok_or_else(|| {
        AdapterError::field(
            "eventType",
            format!(
                "{:?} without a runStatus says nothing about the run",
                w.event_type
            ),
        )
    })?;
    let project = d
        .project_name
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| AdapterError::field("data.projectName", "is missing"))?;
    let started_at = optional_timestamp("data.runStartedAt", d.run_started_at.as_deref())?;
    let finished_at = if status == RunStatus::Running {
        None
    } else {
        let candidates = [
            ("data.runFinishedAt", &d.run_finished_at),
            ("data.runErroredAt", &d.run_errored_at),
            ("data.runCancelledAt", &d.run_cancelled_at),
            ("timestamp", &w.timestamp),
        ];
        let (field, s) = candidates
            .iter()
            .find_map(|(f, s)| s.as_deref().map(|s| (*f, s)))
            .ok_or_else(|| AdapterError::field("data.runFinishedAt", "no finish time given"))?;
        Some(timestamp(field, s)?)
    };
    let error = (status == RunStatus::Failed).then(|| {
        let m = d
            .run_status_message
            .clone()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| "dbt Cloud reported the job run as errored".to_owned());
        run_error(None, &m)
    });
    let mut labels = BTreeMap::new();
    for (k, v) in [
        ("job", d.job_name.clone()),
        ("job_id", d.job_id.as_ref().map(ToString::to_string)),
        ("environment", d.environment_name.clone()),
    ] {
        if let Some(v) = v {
            labels.insert(k.to_owned(), label_text(&v, MAX_LABEL_VALUE_CHARS));
        }
    }
    finish(Run {
        sync_id: vendor_sync_id("dbt", project)?,
        run_id: d.run_id.to_string(),
        status,
        finished_at,
        started_at: started_at.filter(|s| finished_at.is_none_or(|f| *s <= f)),
        records: RecordCounts::default(),
        error,
        record_errors: Vec::new(),
        url: None,
        source: Some("dbt".to_owned()),
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).expect("valid")
    }

    const RUN_RESULTS: &[u8] = include_bytes!("testdata/dbt/run_results.json");

    #[test]
    fn run_results_give_one_run_per_node_and_one_per_invocation() {
        let runs = runs_from_run_results(RUN_RESULTS, None).expect("maps");
        let got: Vec<(&str, RunStatus)> = runs
            .iter()
            .map(|r| (r.sync_id.as_str(), r.status))
            .collect();
        assert_eq!(
            got,
            [
                ("dbt:model.crm.dim_contacts", RunStatus::Success),
                (
                    "dbt:test.crm.unique_dim_contacts_email.4f2a",
                    RunStatus::Failed
                ),
                (
                    "dbt:test.crm.not_null_dim_contacts_account_id.9b1c",
                    RunStatus::Success
                ),
                ("dbt:model.crm.fct_arr", RunStatus::Failed),
                ("dbt:crm", RunStatus::Failed),
            ]
        );
        for r in &runs {
            assert_eq!(r.run_id, "3f1c2b9e-6a0d-4f1e-9a4e-0c2b7d5e8a11");
            assert_eq!(r.source.as_deref(), Some("dbt"));
            assert_eq!(r.labels["project"], "crm");
        }

        let model = &runs[0];
        assert_eq!(model.started_at, Some(ts("2025-03-04T05:57:21Z")));
        assert_eq!(model.finished_at, Some(ts("2025-03-04T05:57:55Z")));
        assert_eq!(model.records.processed, Some(182_340));
        assert_eq!(model.labels["resource_type"], "model");

        let test = &runs[1];
        assert_eq!(test.records.failed, Some(12));
        assert_eq!(
            test.error.as_ref().map(|e| e.message.as_str()),
            Some("Got 12 results, configured to fail if != 0")
        );
        assert_eq!(runs[2].records.failed, Some(0));

        // The errored model has empty timing: it ends at generated_at.
        let errored = &runs[3];
        assert_eq!(errored.finished_at, Some(ts("2025-03-04T05:58:02Z")));
        assert_eq!(errored.started_at, None);

        let inv = &runs[4];
        assert_eq!(inv.records.failed, Some(12));
        assert_eq!(inv.records.processed, None);
        assert_eq!(inv.started_at, Some(ts("2025-03-04T05:57:21Z")));
        assert_eq!(inv.finished_at, Some(ts("2025-03-04T05:58:02Z")));
        assert_eq!(inv.labels["command"], "build");
        let message = &inv.error.as_ref().expect("error").message;
        assert!(
            message.starts_with(
                "2 of 4 dbt nodes failed: test.crm.unique_dim_contacts_email.4f2a: Got 12 results"
            ),
            "{message}"
        );
        assert!(message.contains("model.crm.fct_arr: Database Error in model fct_arr"));
    }

    #[test]
    fn the_project_name_comes_from_metadata_then_the_caller_then_the_node_ids() {
        let runs = runs_from_run_results(RUN_RESULTS, Some("analytics")).expect("maps");
        assert_eq!(
            runs.last().map(|r| r.sync_id.as_str()),
            Some("dbt:analytics")
        );

        let mut v: Value = serde_json::from_slice(RUN_RESULTS).expect("json");
        v["metadata"]["project_name"] = "from_meta".into();
        let runs =
            runs_from_run_results(v.to_string().as_bytes(), Some("analytics")).expect("maps");
        assert_eq!(
            runs.last().map(|r| r.sync_id.as_str()),
            Some("dbt:from_meta")
        );

        let mut v: Value = serde_json::from_slice(RUN_RESULTS).expect("json");
        v["results"][0]["unique_id"] = "model.dbt_utils.x".into();
        let e = runs_from_run_results(v.to_string().as_bytes(), None).expect_err("ambiguous");
        assert!(e.to_string().contains("pass the project name"));
    }

    #[test]
    fn skipped_nodes_are_neutral_and_a_clean_build_succeeds() {
        let body = br#"{"metadata":{"generated_at":"2025-03-04T06:00:00Z","invocation_id":"i"},
            "results":[
              {"unique_id":"model.p.a","status":"success","timing":[],"adapter_response":{"rows_affected":-1}},
              {"unique_id":"test.p.t","status":"warn","failures":3,"timing":[]},
              {"unique_id":"model.p.b","status":"skipped","timing":[]}
            ]}"#;
        let runs = runs_from_run_results(body, None).expect("maps");
        assert_eq!(
            runs[0].records.processed, None,
            "rows_affected -1 is not a count"
        );
        assert_eq!(runs[1].status, RunStatus::Success);
        assert_eq!(runs[1].records.failed, Some(3));
        assert_eq!(runs[2].status, RunStatus::Cancelled);
        let inv = &runs[3];
        assert_eq!(
            (inv.sync_id.as_str(), inv.status),
            ("dbt:p", RunStatus::Success)
        );
        assert_eq!(inv.records.failed, Some(3));
        assert_eq!(inv.error, None);

        let bad = br#"{"metadata":{"generated_at":"2025-03-04T06:00:00Z","invocation_id":"i"},
            "results":[{"unique_id":"model.p.a","status":"exploded","timing":[]}]}"#;
        assert!(runs_from_run_results(bad, None).is_err());
        let manifest = br#"{"metadata":{"dbt_schema_version":"https://schemas.getdbt.com/dbt/manifest/v12.json"},"results":[]}"#;
        assert!(runs_from_run_results(manifest, Some("p")).is_err());
    }

    #[test]
    fn an_errored_dbt_cloud_job_is_a_failed_run_of_its_project() {
        let run = run_from_cloud_webhook(include_bytes!(
            "testdata/dbt/cloud_webhook_job_errored.json"
        ))
        .expect("maps");
        assert_eq!(run.sync_id, "dbt:crm");
        assert_eq!(run.run_id, "3012345");
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.started_at, Some(ts("2025-03-04T06:00:01Z")));
        assert_eq!(run.finished_at, Some(ts("2025-03-04T06:05:10Z")));
        assert_eq!(
            run.error.map(|e| e.message),
            Some("Database Error in model fct_arr: column \"arr_usd\" does not exist".to_owned())
        );
        assert_eq!(run.labels["job"], "Nightly build");
        assert_eq!(run.labels["job_id"], "240");
        assert_eq!(run.labels["environment"], "Production");
        assert_eq!(run.source.as_deref(), Some("dbt"));
    }

    #[test]
    fn dbt_cloud_statuses() {
        let body = |event: &str, status: &str, extra: &str| {
            format!(
                r#"{{"eventType":"{event}","timestamp":"2025-03-04T06:05:11Z","data":{{"runId":7,"projectName":"Analytics Project","runStatus":"{status}","runStartedAt":"2025-03-04T06:00:01Z"{extra}}}}}"#
            )
        };
        let r = run_from_cloud_webhook(body("job.run.started", "Running", "").as_bytes())
            .expect("maps");
        assert_eq!((r.status, r.finished_at), (RunStatus::Running, None));
        assert_eq!(r.sync_id, "dbt:Analytics_Project");
        let r = run_from_cloud_webhook(
            body(
                "job.run.completed",
                "Success",
                r#","runFinishedAt":"2025-03-04T06:04:00Z""#,
            )
            .as_bytes(),
        )
        .expect("maps");
        assert_eq!(
            (r.status, r.finished_at),
            (RunStatus::Success, Some(ts("2025-03-04T06:04:00Z")))
        );
        assert_eq!(r.error, None);
        let r = run_from_cloud_webhook(body("job.run.completed", "Cancelled", "").as_bytes())
            .expect("maps");
        assert_eq!(
            (r.status, r.finished_at),
            (RunStatus::Cancelled, Some(ts("2025-03-04T06:05:11Z")))
        );
        assert!(run_from_cloud_webhook(body("job.run.completed", "Bogus", "").as_bytes()).is_err());
        assert!(
            run_from_cloud_webhook(
                br#"{"eventType":"job.run.completed","data":{"runId":1,"projectName":"p"}}"#
            )
            .is_err()
        );
        assert!(
            run_from_cloud_webhook(
                br#"{"eventType":"job.run.errored","data":{"runId":1,"runStatus":"Errored"}}"#
            )
            .is_err()
        );
    }
}
