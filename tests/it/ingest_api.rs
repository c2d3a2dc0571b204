//! `POST /v1/runs`: storing, reading back, idempotency, validation, limits,
//! auth and durability across restarts.

use serde_json::{Value, json};

use crate::helpers::{Opts, minutes_from_now, run, spawn_app, spawn_with};

fn full_run(sync: &str, run_id: &str) -> Value {
    json!({
        "sync_id": sync,
        "run_id": run_id,
        "status": "success",
        "started_at": minutes_from_now(-12),
        "finished_at": minutes_from_now(-10),
        "records": {"processed": 1000, "succeeded": 990, "failed": 7, "invalid": 3},
        "url": "https://app.example.com/runs/1",
        "source": "census",
        "labels": {"destination": "salesforce", "team": "growth"},
        "record_errors": [
            {"record_id": "003A", "code": "INVALID_EMAIL_ADDRESS", "message": "invalid email address: a@b", "field": "Email"},
            {"record_id": "003B", "code": "INVALID_EMAIL_ADDRESS", "message": "invalid email address: c@d.org", "field": "Email"},
            {"record_id": "003C", "code": "STRING_TOO_LONG", "message": "Company: data value too large: 'Acme' (max length=80)"}
        ]
    })
}

#[tokio::test]
async fn a_posted_run_reads_back_with_its_counts_and_error_classes() {
    let app = spawn_app().await;
    let (status, body) = app
        .post_json("/v1/runs", &full_run("census:4812", "r-1"))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"accepted": 1, "duplicates": 0}));

    let (status, body) = app.get("/v1/runs/census%3A4812/r-1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["records"],
        json!({"processed": 1000, "succeeded": 990, "failed": 7, "invalid": 3})
    );
    assert_eq!(body["status"], "success");
    assert_eq!(body["labels"]["destination"], "salesforce");
    assert_eq!(body["record_errors"].as_array().map(Vec::len), Some(3));
    assert_eq!(body["record_errors_total"], 3);
    let headlines: Vec<&str> = body["error_class_headlines"]
        .as_array()
        .expect("headlines")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        headlines
            .iter()
            .any(|h| h.starts_with("2 × INVALID_EMAIL_ADDRESS")),
        "{headlines:?}"
    );
    assert_eq!(
        body["error_classes"][0]["examples"],
        json!(["003A", "003B"])
    );
}

#[tokio::test]
async fn sync_ids_with_slashes_and_colons_work_when_percent_encoded() {
    let app = spawn_app().await;
    let r = run(
        "dbt:model.shop/orders",
        "inv:1/2",
        "success",
        &minutes_from_now(-1),
    );
    assert_eq!(app.post_json("/v1/runs", &r).await.0, 202);
    let (status, body) = app
        .get("/v1/runs/dbt%3Amodel.shop%2Forders/inv%3A1%2F2")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["run_id"], "inv:1/2");
    let (status, body) = app.get("/v1/syncs/dbt%3Amodel.shop%2Forders/runs").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runs"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_resent_run_is_a_duplicate_and_is_stored_once() {
    let app = spawn_app().await;
    let r = full_run("s1", "r-1");
    assert_eq!(app.post_json("/v1/runs", &r).await.1["accepted"], 1);
    let (status, body) = app
        .post_json("/v1/runs", &json!([r.clone(), r.clone()]))
        .await;
    assert_eq!(status, 202);
    assert_eq!(body, json!({"accepted": 0, "duplicates": 2}));
    let (_, body) = app.get("/v1/syncs/s1").await;
    assert_eq!(body["sync"]["runs_total"], 1);
    assert_eq!(body["totals"]["24h"]["runs"], 1);
    assert_eq!(body["totals"]["24h"]["records_failed"], 7);
}

#[tokio::test]
async fn a_finished_copy_replaces_a_running_copy() {
    let app = spawn_app().await;
    let running = json!({"sync_id": "s1", "run_id": "r-9", "status": "running", "started_at": minutes_from_now(-3)});
    assert_eq!(app.post_json("/v1/runs", &running).await.1["accepted"], 1);
    let (_, body) = app.get("/v1/runs/s1/r-9").await;
    assert_eq!(body["status"], "running");
    assert_eq!(body["evaluation"], "running");

    let done = run("s1", "r-9", "failed", &minutes_from_now(-1));
    let (_, body) = app.post_json("/v1/runs", &done).await;
    assert_eq!(body, json!({"accepted": 1, "duplicates": 0}));
    let (_, body) = app.get("/v1/runs/s1/r-9").await;
    assert_eq!(body["status"], "failed");
    // and a late running copy of a finished run is only a duplicate
    let (_, body) = app.post_json("/v1/runs", &running).await;
    assert_eq!(body, json!({"accepted": 0, "duplicates": 1}));
    let (_, body) = app.get("/v1/syncs/s1/runs").await;
    assert_eq!(body["runs"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_batch_with_one_bad_record_stores_nothing() {
    let app = spawn_app().await;
    let good = run("s1", "a", "success", &minutes_from_now(-5));
    let mut bad = run("s1", "b", "success", &minutes_from_now(-4));
    bad["records"] = json!({"processed": -1});
    let (status, body) = app.post_json("/v1/runs", &json!([good, bad])).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["index"], 1);
    assert_eq!(body["errors"][0]["field"], "records.processed");
    let (status, _) = app.get("/v1/runs/s1/a").await;
    assert_eq!(status, 404, "nothing of a rejected batch is stored");
    let (_, body) = app.get("/v1/syncs").await;
    assert_eq!(body["syncs"], json!([]));
}

#[tokio::test]
async fn bad_input_gets_a_400_naming_the_problem() {
    let app = spawn_app().await;
    let far_future = minutes_from_now(60);
    let long_id = "x".repeat(201);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "missing sync_id",
            json!({"run_id": "r", "status": "success", "finished_at": minutes_from_now(-1)}),
            "sync_id",
        ),
        (
            "wrong type",
            json!({"sync_id": 5, "run_id": "r", "status": "success", "finished_at": minutes_from_now(-1)}),
            "sync_id",
        ),
        (
            "forbidden char",
            run("bad id!", "r", "success", &minutes_from_now(-1)),
            "sync_id",
        ),
        (
            "too long",
            run(&long_id, "r", "success", &minutes_from_now(-1)),
            "sync_id",
        ),
        (
            "control char",
            run("s", "r\u{7}", "success", &minutes_from_now(-1)),
            "run_id",
        ),
        (
            "unknown status",
            run("s", "r", "exploded", &minutes_from_now(-1)),
            "status",
        ),
        (
            "bad timestamp",
            run("s", "r", "success", "yesterday"),
            "finished_at",
        ),
        (
            "far future",
            run("s", "r", "success", &far_future),
            "finished_at",
        ),
        (
            "missing finished_at",
            json!({"sync_id": "s", "run_id": "r", "status": "failed"}),
            "finished_at",
        ),
        (
            "negative count",
            json!({"sync_id": "s", "run_id": "r", "status": "success", "finished_at": minutes_from_now(-1), "records": {"failed": -3}}),
            "records.failed",
        ),
        (
            "float count",
            json!({"sync_id": "s", "run_id": "r", "status": "success", "finished_at": minutes_from_now(-1), "records": {"processed": 1.5}}),
            "records.processed",
        ),
        (
            "inconsistent counts",
            json!({"sync_id": "s", "run_id": "r", "status": "success", "finished_at": minutes_from_now(-1), "records": {"processed": 10, "failed": 8, "invalid": 5}}),
            "records",
        ),
    ];
    for (what, body, field) in cases {
        let (status, resp) = app.post_json("/v1/runs", &body).await;
        assert_eq!(status, 400, "{what}: {resp}");
        let errors = resp["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: {resp}"));
        assert!(
            errors.iter().any(
                |e| e["field"].as_str().is_some_and(|f| f.starts_with(field))
                    && e["message"].as_str().is_some_and(|m| !m.is_empty())
            ),
            "{what}: expected an error on {field}: {resp}"
        );
    }
    // malformed JSON and an empty array
    let (status, resp) = app.post_raw("/v1/runs", b"{\"sync_id\": ".to_vec()).await;
    assert_eq!(status, 400, "{resp}");
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line")),
        "{resp}"
    );
    let (status, _) = app.post_raw("/v1/runs", b"[]".to_vec()).await;
    assert_eq!(status, 400);
    let (_, body) = app.get("/v1/syncs").await;
    assert_eq!(body["syncs"], json!([]), "nothing was stored");
}

#[tokio::test]
async fn an_oversize_body_gets_a_413() {
    let app = spawn_with(Opts {
        max_body_bytes: Some(2048),
        ..Opts::default()
    })
    .await;
    let mut r = run("s", "r", "failed", &minutes_from_now(-1));
    r["error"] = json!({"message": "x".repeat(5000)});
    let (status, body) = app.post_json("/v1/runs", &r).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|m| m.contains("2048")),
        "{body}"
    );
}

#[tokio::test]
async fn record_errors_are_capped_per_run_with_the_true_total_kept() {
    let app = spawn_with(Opts {
        record_errors_per_run: Some(10),
        ..Opts::default()
    })
    .await;
    let mut r = run("s", "r", "success", &minutes_from_now(-1));
    r["records"] = json!({"processed": 100, "failed": 25});
    r["record_errors"] = (0..25)
        .map(|i| json!({"record_id": format!("id{i}"), "message": format!("invalid email address: u{i}@x.com")}))
        .collect();
    assert_eq!(app.post_json("/v1/runs", &r).await.0, 202);
    let (_, body) = app.get("/v1/runs/s/r").await;
    assert_eq!(body["record_errors"].as_array().map(Vec::len), Some(10));
    assert_eq!(body["record_errors_total"], 25);
    assert_eq!(body["record_errors_stored"], 10);
    assert_eq!(
        body["error_classes"][0]["count"], 25,
        "classes count every error sent"
    );
}

#[tokio::test]
async fn with_tokens_configured_v1_needs_a_valid_bearer_token() {
    let app = spawn_with(Opts {
        tokens: vec!["t0ken".into()],
        ..Opts::default()
    })
    .await;
    let http = reqwest::Client::new();
    let r = run("s", "r", "success", &minutes_from_now(-1));
    let resp = http
        .post(app.url("/v1/runs"))
        .json(&r)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let resp = http
        .get(app.url("/v1/syncs"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.expect("json");
    assert!(body["error"].is_string());
    // the helper sends the right token
    assert_eq!(app.post_json("/v1/runs", &r).await.0, 202);
    assert_eq!(app.get("/v1/syncs").await.0, 200);
    // health probes stay open for orchestrators
    let resp = http.get(app.url("/healthz")).send().await.expect("send");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn without_tokens_no_auth_is_needed_on_loopback() {
    let app = spawn_app().await;
    let resp = reqwest::Client::new()
        .get(app.url("/v1/syncs"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_restart_keeps_every_run() {
    let app = spawn_app().await;
    let runs: Vec<Value> = (0..50)
        .map(|i| full_run("census:1", &format!("r{i}")))
        .collect();
    assert_eq!(
        app.post_json("/v1/runs", &json!(runs)).await.1["accepted"],
        50
    );
    let app = app.restart(Opts::default()).await;
    let (_, body) = app.get("/v1/syncs/census%3A1").await;
    assert_eq!(body["sync"]["runs_total"], 50);
    let (_, body) = app.get("/v1/runs/census%3A1/r49").await;
    assert_eq!(body["records"]["processed"], 1000);
    // duplicates are still recognised after the restart
    let (_, body) = app.post_json("/v1/runs", &full_run("census:1", "r3")).await;
    assert_eq!(body, json!({"accepted": 0, "duplicates": 1}));
}

#[tokio::test]
async fn errors_are_json_everywhere() {
    let app = spawn_app().await;
    let (status, body) = app.get("/v1/nope").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
    let (status, body) = app.delete("/v1/runs").await;
    assert_eq!(status, 405);
    assert!(body["error"].is_string());
    let (status, body) = app.get("/v1/runs/unknown/run").await;
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|m| m.contains("unknown"))
    );
    let (status, body) = app.get("/v1/syncs/x/runs?limit=0").await;
    assert_eq!(status, 400, "{body}");
    let resp = reqwest::Client::new()
        .post(app.url("/v1/runs"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=b")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 415);
}
