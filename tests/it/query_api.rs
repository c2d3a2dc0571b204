//! The read side: fleet listing with window totals, paged run history,
//! health probes and the per-client rate limit.

use serde_json::{Value, json};

use crate::helpers::{Opts, minutes_from_now, run, spawn_app, spawn_with};

#[tokio::test]
async fn the_fleet_lists_each_sync_with_its_last_run_and_window_totals() {
    let app = spawn_app().await;
    let mut a1 = run("a", "1", "success", &minutes_from_now(-120));
    a1["records"] = json!({"processed": 100, "succeeded": 100});
    let mut a2 = run("a", "2", "failed", &minutes_from_now(-60));
    a2["records"] = json!({"processed": 50, "succeeded": 40, "failed": 10});
    let b1 = run("b", "1", "cancelled", &minutes_from_now(-30));
    let old = run("a", "0", "success", &minutes_from_now(-3 * 24 * 60));
    let (status, body) = app.post_json("/v1/runs", &json!([a1, a2, b1, old])).await;
    assert_eq!(status, 202, "{body}");

    let (status, body) = app.get("/v1/syncs").await;
    assert_eq!(status, 200);
    let syncs = body["syncs"].as_array().expect("syncs");
    assert_eq!(syncs.len(), 2);
    let a = &syncs[0];
    assert_eq!(a["sync_id"], "a");
    assert_eq!(a["last_run_id"], "2", "the newest run by finished_at");
    assert_eq!(a["last_status"], "failed");
    assert_eq!(a["totals"]["runs"], 2, "the 3-day-old run is outside 24h");
    assert_eq!(a["totals"]["records_processed"], 150);
    assert_eq!(a["totals"]["records_failed"], 10);
    assert_eq!(a["totals"]["runs_failed"], 1);

    let (_, body) = app.get("/v1/syncs?window=7d").await;
    assert_eq!(body["syncs"][0]["totals"]["runs"], 3);
    let (status, body) = app.get("/v1/syncs?window=forever").await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn run_history_pages_newest_first() {
    let app = spawn_app().await;
    let runs: Vec<Value> = (0..25)
        .map(|i| {
            run(
                "s",
                &format!("r{i:02}"),
                "success",
                &minutes_from_now(-100 + i),
            )
        })
        .collect();
    assert_eq!(app.post_json("/v1/runs", &json!(runs)).await.0, 202);
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            None => "/v1/syncs/s/runs?limit=10".to_string(),
            Some(c) => format!("/v1/syncs/s/runs?limit=10&before={c}"),
        };
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 200, "{body}");
        for r in body["runs"].as_array().expect("runs") {
            seen.push(r["run_id"].as_str().expect("id").to_string());
        }
        match body["next"].as_str() {
            Some(c) => next = Some(c.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("r{i:02}")).collect();
    assert_eq!(seen, expected);
    let (status, _) = app.get("/v1/syncs/s/runs?before=garbage").await;
    assert_eq!(status, 400);
    let (status, _) = app.get("/v1/syncs/nope/runs").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let (status, body) = app.get("/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["database"], "ok");
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let app = spawn_with(Opts {
        requests_per_second: Some(3),
        ..Opts::default()
    })
    .await;
    let mut codes = Vec::new();
    let mut retry_after = None;
    for _ in 0..10 {
        let resp = app
            .http
            .get(app.url("/v1/syncs"))
            .send()
            .await
            .expect("send");
        if resp.status() == 429 {
            retry_after = resp.headers().get("retry-after").cloned();
        }
        codes.push(resp.status().as_u16());
    }
    assert_eq!(&codes[..3], &[200, 200, 200], "{codes:?}");
    assert!(codes.contains(&429), "{codes:?}");
    assert!(retry_after.is_some());
}
