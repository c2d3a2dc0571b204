//! The runner side: `syncwarden report` and `syncwarden exec` (the real
//! binary against a real sidecar), and the Airflow and Dagster snippets in
//! `examples/` run by python3 with fake contexts.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{Opts, TestApp, spawn_app, spawn_with};

const BIN: &str = env!("CARGO_BIN_EXE_syncwarden");

/// Runs the binary against `server`, with no inherited sidecar settings.
async fn syncwarden(server: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("SYNCWARDEN_URL", server)
        .env_remove("SYNCWARDEN_TOKEN")
        .output()
        .await
        .expect("the syncwarden binary runs")
}

fn server(app: &TestApp) -> String {
    format!("http://{}", app.addr)
}

async fn run_of(app: &TestApp, sync: &str, run_id: &str) -> Value {
    let (status, body) = app.get(&format!("/v1/runs/{sync}/{run_id}")).await;
    assert_eq!(status, 200, "run {run_id}: {body}");
    body
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn report_posts_one_run_and_a_retried_report_is_a_duplicate() {
    let app = spawn_with(Opts {
        tokens: vec!["sekret".into()],
        ..Opts::default()
    })
    .await;
    let args = [
        "report",
        "--token",
        "sekret",
        "--sync",
        "nightly_export",
        "--status",
        "failed",
        "--processed",
        "100",
        "--succeeded",
        "90",
        "--failed",
        "7",
        "--invalid",
        "3",
        "--error",
        "upload rejected",
        "--url",
        "https://ci.example.com/job/1",
        "--label",
        "team=data",
        "--run-id",
        "job-1",
        "--started-at",
        "2026-03-01T10:00:00Z",
        "--finished-at",
        "2026-03-01T10:05:00Z",
    ];
    let out = syncwarden(&server(&app), &args).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let run = run_of(&app, "nightly_export", "job-1").await;
    assert_eq!(run["status"], "failed");
    assert_eq!(
        run["records"],
        serde_json::json!({"processed": 100, "succeeded": 90, "failed": 7, "invalid": 3})
    );
    assert_eq!(run["error"]["message"], "upload rejected");
    assert_eq!(run["labels"]["team"], "data");
    assert_eq!(run["started_at"], "2026-03-01T10:00:00Z");
    assert_eq!(run["finished_at"], "2026-03-01T10:05:00Z");
    assert_eq!(run["url"], "https://ci.example.com/job/1");

    let out = syncwarden(&server(&app), &args).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("duplicate"));

    // A fresh id per report by default.
    let short = [
        "report",
        "--token",
        "sekret",
        "--sync",
        "nightly_export",
        "--status",
        "success",
    ];
    for _ in 0..2 {
        assert!(syncwarden(&server(&app), &short).await.status.success());
    }
    let (_, runs) = app.get("/v1/syncs/nightly_export/runs").await;
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(3));

    // Bad input is refused before anything is sent; so is a bad token.
    let out = syncwarden(
        &server(&app),
        &[
            "report",
            "--token",
            "sekret",
            "--sync",
            "bad id",
            "--status",
            "failed",
            "--failed",
            "5",
            "--processed",
            "1",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("sync_id"), "{}", stderr(&out));
    assert!(stderr(&out).contains("records"), "{}", stderr(&out));
    let out = syncwarden(
        &server(&app),
        &["report", "--sync", "x", "--status", "failed"],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
}

#[tokio::test]
async fn exec_reports_a_job_that_succeeds_and_passes_its_output_through() {
    let app = spawn_app().await;
    let out = syncwarden(
        &server(&app),
        &[
            "exec",
            "--sync",
            "cron:ok",
            "--run-id",
            "r1",
            "--label",
            "host=a",
            "--",
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-stdout\n");
    assert!(stderr(&out).contains("to-stderr"));
    let run = run_of(&app, "cron:ok", "r1").await;
    assert_eq!(run["status"], "success");
    assert_eq!(run["source"], "exec");
    assert_eq!(run["labels"]["host"], "a");
    assert!(run["error"].is_null(), "{run}");
    assert!(run["started_at"].is_string() && run["finished_at"].is_string());
}

#[tokio::test]
async fn exec_reports_a_failing_job_with_its_exit_code_and_stderr_tail() {
    let app = spawn_app().await;
    let script = "for i in $(seq 1 30); do echo line $i >&2; done; exit 3";
    let out = syncwarden(
        &server(&app),
        &[
            "exec",
            "--sync",
            "cron:fails",
            "--run-id",
            "r1",
            "--",
            "sh",
            "-c",
            script,
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "the job's own exit code");
    let run = run_of(&app, "cron:fails", "r1").await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["code"], "exit_3");
    let message = run["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("line 11\n") && message.ends_with("line 30"),
        "{message}"
    );

    // A command that cannot start is a failure too (127, like a shell).
    let out = syncwarden(
        &server(&app),
        &[
            "exec",
            "--sync",
            "cron:fails",
            "--run-id",
            "r2",
            "--",
            "/no/such/job",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(127));
    let run = run_of(&app, "cron:fails", "r2").await;
    assert_eq!(run["error"]["code"], "exit_127");
}

#[tokio::test]
async fn exec_reports_a_killed_job_and_a_timed_out_one() {
    let app = spawn_app().await;
    let out = syncwarden(
        &server(&app),
        &[
            "exec",
            "--sync",
            "cron:killed",
            "--run-id",
            "r1",
            "--",
            "sh",
            "-c",
            "kill -KILL $$",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(128 + 9));
    let run = run_of(&app, "cron:killed", "r1").await;
    assert_eq!(run["error"]["code"], "signal_9");
    assert!(
        run["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("signal 9")),
        "{run}"
    );

    let started = Instant::now();
    let out = syncwarden(
        &server(&app),
        &[
            "exec",
            "--sync",
            "cron:slow",
            "--run-id",
            "r1",
            "--timeout",
            "300ms",
            "--",
            "sh",
            "-c",
            "echo starting >&2; sleep 30",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the job group was stopped"
    );
    let run = run_of(&app, "cron:slow", "r1").await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["code"], "timeout");
    assert_eq!(run["error"]["message"], "starting");
}

#[tokio::test]
async fn exec_keeps_the_jobs_exit_code_when_the_sidecar_is_down() {
    let down = "http://127.0.0.1:9";
    let out = syncwarden(
        down,
        &["exec", "--sync", "cron:x", "--", "sh", "-c", "exit 5"],
    )
    .await;
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("not reported"), "{}", stderr(&out));
    let out = syncwarden(down, &["exec", "--sync", "cron:x", "--", "true"]).await;
    assert_eq!(out.status.code(), Some(0));
}

/// Runs python3 with `examples/` importable and the sidecar's URL set.
async fn python(app: &TestApp, code: &str) -> Output {
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .env(
            "PYTHONPATH",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples"),
        )
        .env("SYNCWARDEN_URL", server(app))
        .env("SYNCWARDEN_TOKEN", "sekret")
        .output()
        .await
        .expect("python3 is installed");
    assert!(out.status.success(), "python failed: {}", stderr(&out));
    out
}

#[tokio::test]
async fn the_airflow_callbacks_post_the_task_run() {
    let app = spawn_with(Opts {
        tokens: vec!["sekret".into()],
        ..Opts::default()
    })
    .await;
    python(
        &app,
        r#"
import datetime, sys
import airflow_callback as cb
assert "airflow" not in sys.modules, "airflow must not be imported"
class TI:
    dag_id = "orders_to_salesforce"
    task_id = "load"
    try_number = 2
    start_date = datetime.datetime(2026, 3, 1, 10, 0, tzinfo=datetime.timezone.utc)
    end_date = datetime.datetime(2026, 3, 1, 10, 5, tzinfo=datetime.timezone.utc)
    log_url = "http://airflow.example.com/log?dag_id=orders_to_salesforce"
ctx = {"task_instance": TI(), "run_id": "scheduled__2026-03-01T10:00:00+00:00",
       "exception": ValueError("Salesforce said INVALID_SESSION_ID")}
cb.syncwarden_on_failure(ctx)
ctx["run_id"] = "manual__2"
cb.syncwarden_on_success(ctx)
"#,
    )
    .await;
    let (_, failed) = app
        .get("/v1/runs/airflow%3Aorders_to_salesforce.load/scheduled__2026-03-01T10%3A00%3A00%2B00%3A00%232")
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "ValueError");
    assert_eq!(
        failed["error"]["message"],
        "Salesforce said INVALID_SESSION_ID"
    );
    assert_eq!(failed["started_at"], "2026-03-01T10:00:00Z");
    assert_eq!(failed["finished_at"], "2026-03-01T10:05:00Z");
    assert_eq!(failed["source"], "airflow");
    assert_eq!(failed["labels"]["dag"], "orders_to_salesforce");
    let (_, ok) = app
        .get("/v1/runs/airflow%3Aorders_to_salesforce.load/manual__2%232")
        .await;
    assert_eq!(ok["status"], "success", "{ok}");
}

#[tokio::test]
async fn the_dagster_sensor_posts_the_job_run_and_survives_a_down_sidecar() {
    let app = spawn_with(Opts {
        tokens: vec!["sekret".into()],
        ..Opts::default()
    })
    .await;
    python(
        &app,
        r#"
import sys, types
import dagster_sensor as ds
assert "dagster" not in sys.modules, "dagster must not be imported"
run = types.SimpleNamespace(run_id="0f1e2d3c", job_name="daily_revenue")
class Instance:
    def get_run_stats(self, run_id):
        return types.SimpleNamespace(start_time=1772359200.0, end_time=1772359500.0)
ctx = types.SimpleNamespace(dagster_run=run, instance=Instance(),
                            failure_event=types.SimpleNamespace(message="op load failed: timeout"))
assert ds.report_run(ctx, "failed") == {"accepted": 1, "duplicates": 0}
import os
os.environ["SYNCWARDEN_URL"] = "http://127.0.0.1:9"
assert ds.report_run(ctx, "failed") is None
"#,
    )
    .await;
    let (_, run) = app.get("/v1/runs/dagster%3Adaily_revenue/0f1e2d3c").await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["message"], "op load failed: timeout");
    assert_eq!(run["started_at"], "2026-03-01T10:00:00Z");
    assert_eq!(run["finished_at"], "2026-03-01T10:05:00Z");
    assert_eq!(run["source"], "dagster");
}
