//! The Census and Hightouch pollers against wiremock stand-ins for their
//! APIs: every sync and page is walked, counts and record errors are
//! stored, 429 `Retry-After` is honoured, outages and timeouts show in
//! `/readyz` without stopping anything, and a restart resumes from the
//! stored cursor. Intervals and backoffs are milliseconds here.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Opts, TestApp, minutes_from_now, spawn_with};
use crate::webhooks::fixture;

fn ok_json(v: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(v)
}

/// A Census API sync run that started `minutes_ago` and took a minute;
/// `failed: None` gives the null counts of a run that failed early.
fn census_run(id: u64, sync: u64, status: &str, minutes_ago: i64, failed: Option<u64>) -> Value {
    let finished = (status != "working").then(|| minutes_from_now(1 - minutes_ago));
    json!({
        "id": id,
        "sync_id": sync,
        "status": status,
        "canceled": false,
        "created_at": minutes_from_now(-minutes_ago),
        "completed_at": finished,
        "updated_at": finished,
        "records_processed": failed.map(|_| 100),
        "records_updated": failed.map(|f| 100 - f),
        "records_failed": failed,
        "source_record_invalids": failed.map(|_| 0),
        "error_code": if status == "failed" { Some("INVALID_SESSION_ID") } else { None },
        "error_message": if status == "failed" { Some("INVALID_SESSION_ID: Session expired or invalid") } else { None },
    })
}

fn census_page(runs: Vec<Value>, next_page: Option<u64>) -> Value {
    json!({"status": "success", "data": runs, "pagination": {"next_page": next_page}})
}

/// Mounts the workspace's sync list: one sync per page.
async fn census_syncs(api: &MockServer, syncs: &[u64]) {
    for (i, id) in syncs.iter().enumerate() {
        let page = i as u64 + 1;
        let next = (page < syncs.len() as u64).then_some(page + 1);
        Mock::given(method("GET"))
            .and(path("/api/v1/syncs"))
            .and(query_param("page", page.to_string()))
            .respond_with(ok_json(census_page(
                vec![json!({"id": id, "label": "x"})],
                next,
            )))
            .mount(api)
            .await;
    }
}

async fn census_runs(api: &MockServer, sync: u64, page: u64, runs: Vec<Value>, next: Option<u64>) {
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/syncs/{sync}/sync_runs")))
        .and(query_param("page", page.to_string()))
        .and(query_param("order", "desc"))
        .respond_with(ok_json(census_page(runs, next)))
        .mount(api)
        .await;
}

async fn census_records(api: &MockServer, run: u64, expect: u64) {
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/sync_runs/{run}/records")))
        .and(query_param("status", "rejected"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("census/sync_run_records_rejected.json"),
            "application/json",
        ))
        .expect(expect)
        .mount(api)
        .await;
}

fn census_opts(api: &MockServer, retries: u32, extra: &str) -> Opts {
    Opts {
        sources: Some(format!(
            r#"
            [census]
            api_token = "census-token"
            api_url = "{}"
            poll_interval = "100ms"
            request_timeout = "300ms"
            backoff = "10ms"
            max_backoff = "5s"
            max_retries = {retries}
            {extra}
            "#,
            api.uri()
        )),
        ..Opts::default()
    }
}

async fn wait_for_run(app: &TestApp, sync: &str, run_id: &str) -> Value {
    let path = format!("/v1/runs/{}/{run_id}", sync.replace(':', "%3A"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.get(&path).await;
        if status == 200 {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} of {sync} never arrived"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the source's `/readyz` entry satisfies `ok`; returns it.
async fn wait_for_source(app: &TestApp, label: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app.get("/readyz").await;
        assert_eq!(status, 200, "{body}");
        let source = &body["sources"][label];
        if ok(source) {
            return source.clone();
        }
        assert!(Instant::now() < deadline, "{label} never got there: {body}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn census_polling_walks_every_sync_and_page_and_stores_counts_and_record_errors() {
    let api = MockServer::start().await;
    census_syncs(&api, &[1, 2]).await;
    census_runs(
        &api,
        1,
        1,
        vec![
            census_run(103, 1, "completed", 5, Some(3)),
            census_run(102, 1, "failed", 10, None),
        ],
        Some(2),
    )
    .await;
    census_runs(
        &api,
        1,
        2,
        vec![
            census_run(101, 1, "completed", 20, Some(0)),
            // Before the one-hour backfill of a first poll: left alone.
            census_run(100, 1, "failed", 180, None),
        ],
        None,
    )
    .await;
    // Still running: taken once it ends, not before.
    census_runs(
        &api,
        2,
        1,
        vec![census_run(200, 2, "working", 3, None)],
        None,
    )
    .await;
    census_records(&api, 103, 1).await;
    let app = spawn_with(census_opts(&api, 0, "")).await;

    let run = wait_for_run(&app, "census:1", "101").await;
    assert_eq!(run["status"], "success");
    let run = wait_for_run(&app, "census:1", "102").await;
    assert_eq!(run["status"], "failed");
    assert!(
        run["records"]["failed"].is_null(),
        "null stays unknown: {run}"
    );
    assert_eq!(run["error"]["code"], "INVALID_SESSION_ID");
    let run = wait_for_run(&app, "census:1", "103").await;
    assert_eq!(
        run["records"],
        json!({"processed": 100, "succeeded": 97, "failed": 3, "invalid": 0})
    );
    assert_eq!(run["record_errors_total"], 2);
    assert_eq!(run["record_errors"][0]["code"], "INVALID_EMAIL_ADDRESS");

    let census = wait_for_source(&app, "census", |s| s["state"] == "ok").await;
    assert_eq!(census["syncs"], 2);
    assert_eq!(census["mode"], "api + poll every 100ms");
    // Several polls later, still exactly those three runs.
    wait_for_source(&app, "census", |s| {
        s["last_poll_at"] != census["last_poll_at"]
    })
    .await;
    let (_, runs) = app.get("/v1/syncs/census%3A1/runs").await;
    let ids: Vec<&str> = runs["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["run_id"].as_str())
        .collect();
    assert_eq!(ids, ["103", "102", "101"]);
    let (status, _) = app.get("/v1/runs/census%3A2/200").await;
    assert_eq!(status, 404, "a running run waits until it ends");
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["sources"]["census"]["runs_ingested"], 3, "{ready}");
    // The record sample of run 103 was fetched once, not once per poll.
    api.verify().await;
}

#[tokio::test]
async fn census_polling_maps_the_run_list_fixture() {
    let api = MockServer::start().await;
    census_syncs(&api, &[52114]).await;
    Mock::given(method("GET"))
        .and(path("/api/v1/syncs/52114/sync_runs"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("census/sync_runs_list.json"), "application/json"),
        )
        .mount(&api)
        .await;
    census_records(&api, 8812734, 1).await;
    // The fixture's runs are from 2025: a long backfill takes them.
    let app = spawn_with(census_opts(&api, 0, "backfill = \"100000d\"")).await;

    let run = wait_for_run(&app, "census:52114", "8812734").await;
    assert_eq!(run["status"], "success");
    assert_eq!(
        run["records"],
        json!({"processed": 10012, "succeeded": 5998, "failed": 4002, "invalid": 12})
    );
    assert_eq!(run["record_errors_total"], 2);
    assert_eq!(run["record_errors"][1]["code"], "DUPLICATE_VALUE");
    let run = wait_for_run(&app, "census:52114", "8812790").await;
    assert_eq!(run["status"], "failed");
    assert!(run["records"]["processed"].is_null(), "{run}");
    assert_eq!(run["error"]["code"], "INVALID_SESSION_ID");
    wait_for_source(&app, "census", |s| s["state"] == "ok").await;
    api.verify().await;
}

#[tokio::test]
async fn hightouch_polling_maps_warning_and_failed_runs() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/syncs"))
        .respond_with(ok_json(
            json!({"data": [{"id": 4417, "slug": "contacts"}], "hasMore": false}),
        ))
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/syncs/4417/runs"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            fixture("hightouch/sync_runs_warning.json"),
            "application/json",
        ))
        .mount(&api)
        .await;
    let app = spawn_with(Opts {
        sources: Some(format!(
            r#"
            [[hightouch]]
            name = "prod"
            api_token = "ht-token"
            api_url = "{}"
            poll_interval = "100ms"
            backfill = "100000d"
            "#,
            api.uri()
        )),
        ..Opts::default()
    })
    .await;

    let run = wait_for_run(&app, "hightouch:4417", "98711234").await;
    assert_eq!(run["status"], "success");
    assert_eq!(run["source"], "hightouch");
    assert_eq!(
        run["records"],
        json!({"processed": 10000, "succeeded": 5998, "failed": 4002})
    );
    let run = wait_for_run(&app, "hightouch:4417", "98711301").await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["code"], "DESTINATION_INVALID_GRANT");
    wait_for_source(&app, "hightouch:prod", |s| s["state"] == "ok").await;

    let requests = api.received_requests().await.expect("recorded");
    let runs_request = requests
        .iter()
        .find(|r| r.url.path() == "/api/v1/syncs/4417/runs")
        .expect("the runs were listed");
    assert!(
        runs_request
            .url
            .query()
            .is_some_and(|q| q.contains("after="))
    );
    assert_eq!(
        runs_request
            .headers
            .get("authorization")
            .map(|v| v.as_bytes()),
        Some(&b"Bearer ht-token"[..])
    );
}

#[tokio::test]
async fn a_429_pauses_polling_for_its_retry_after() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/syncs"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&api)
        .await;
    census_syncs(&api, &[7]).await;
    census_runs(
        &api,
        7,
        1,
        vec![census_run(700, 7, "completed", 5, Some(0))],
        None,
    )
    .await;
    let started = Instant::now();
    // One retry allowed, 10 ms backoff: only Retry-After makes it wait.
    let app = spawn_with(census_opts(&api, 1, "")).await;
    wait_for_run(&app, "census:7", "700").await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After ignored: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn an_outage_or_a_timeout_shows_in_readyz_and_polling_recovers() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_string("{\"message\":\"internal\"}"))
        .mount(&api)
        .await;
    let app = spawn_with(census_opts(&api, 0, "")).await;
    let census = wait_for_source(&app, "census", |s| s["state"] == "error").await;
    assert!(
        census["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{census}"
    );
    let (status, ready) = app.get("/readyz").await;
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")));

    // Now the API hangs past the request timeout.
    api.reset().await;
    Mock::given(method("GET"))
        .respond_with(ok_json(census_page(vec![], None)).set_delay(Duration::from_secs(2)))
        .mount(&api)
        .await;
    let census = wait_for_source(&app, "census", |s| {
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out"))
    })
    .await;
    assert!(
        census["consecutive_failures"].as_u64() >= Some(2),
        "{census}"
    );

    // And it is back.
    api.reset().await;
    census_syncs(&api, &[9]).await;
    census_runs(
        &api,
        9,
        1,
        vec![census_run(900, 9, "completed", 5, Some(0))],
        None,
    )
    .await;
    wait_for_run(&app, "census:9", "900").await;
    let census = wait_for_source(&app, "census", |s| s["state"] == "ok").await;
    assert_eq!(census["consecutive_failures"], 0);
}

#[tokio::test]
async fn a_restart_resumes_from_the_stored_cursor() {
    let api = MockServer::start().await;
    census_syncs(&api, &[3]).await;
    census_runs(
        &api,
        3,
        1,
        vec![census_run(301, 3, "completed", 10, Some(2))],
        None,
    )
    .await;
    census_records(&api, 301, 1).await;
    let app = spawn_with(census_opts(&api, 0, "")).await;
    wait_for_run(&app, "census:3", "301").await;
    wait_for_source(&app, "census", |s| s["state"] == "ok").await;
    api.verify().await;

    // While the sidecar is down, run 302 ends. The new start has no
    // backfill at all: only the cursor can find 302, and run 301 must not
    // be fetched again.
    api.reset().await;
    census_syncs(&api, &[3]).await;
    census_runs(
        &api,
        3,
        1,
        vec![
            census_run(302, 3, "completed", 5, Some(1)),
            census_run(301, 3, "completed", 10, Some(2)),
        ],
        None,
    )
    .await;
    census_records(&api, 301, 0).await;
    census_records(&api, 302, 1).await;
    let app = app.restart(census_opts(&api, 0, "backfill = \"0s\"")).await;
    let run = wait_for_run(&app, "census:3", "302").await;
    assert_eq!(run["record_errors_total"], 2);
    let before = wait_for_source(&app, "census", |s| s["state"] == "ok").await;
    wait_for_source(&app, "census", |s| {
        s["last_poll_at"] != before["last_poll_at"]
    })
    .await;
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["sources"]["census"]["runs_ingested"], 1, "{ready}");
    api.verify().await;
}
