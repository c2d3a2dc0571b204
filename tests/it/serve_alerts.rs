//! The engine inside `serve`: runs posted over HTTP produce the notices the
//! spec predicts, in the outbox, across restarts; late runs are stored but
//! not evaluated; silences hold notices; rule reloads keep or drop state.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Opts, TestApp, minutes_from_now, run, spawn_with};

const RULES: &str = r#"
[[rule]]
name = "sync-broken"
match = { sync = "*" }
bad_when = { status = ["failed"], failed_ratio_above = 0.10 }
fire_after = 2
resolve_after = 2
"#;

fn scenario_runs(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/../shared/scenarios/{name}/runs.ndjson",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("scenario line"))
        .collect()
}

/// (kind, cause, sync, held-or-out) of every notice in the outbox, oldest
/// first. Delivery (pending → sent) runs on its own; these tests are about
/// which notices exist.
async fn outbox(app: &TestApp) -> Vec<(String, Option<String>, String, String)> {
    let (status, body) = app.get("/v1/notifications?limit=1000").await;
    assert_eq!(status, 200, "{body}");
    let mut list: Vec<Value> = body["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.reverse();
    list.iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap_or_default().to_string(),
                n["cause"].as_str().map(str::to_string),
                n["sync_id"].as_str().unwrap_or_default().to_string(),
                if n["status"] == "held" { "held" } else { "out" }.to_string(),
            )
        })
        .collect()
}

fn out(kind: &str, cause: Option<&str>, sync: &str) -> (String, Option<String>, String, String) {
    (
        kind.into(),
        cause.map(str::to_string),
        sync.into(),
        "out".into(),
    )
}

#[tokio::test]
async fn a_real_outage_posted_in_order_gives_one_firing_and_one_resolved_notice() {
    let app = spawn_with(Opts {
        rules: Some(RULES.into()),
        ..Opts::default()
    })
    .await;
    for r in scenario_runs("02-real-outage") {
        let (status, body) = app.post_json("/v1/runs", &r).await;
        assert_eq!(status, 202, "{body}");
    }
    let sync = "orders_to_salesforce";
    assert_eq!(
        outbox(&app).await,
        vec![
            out("firing", Some("failed_runs"), sync),
            out("resolved", None, sync)
        ]
    );
    let (_, body) = app.get("/v1/incidents?state=resolved").await;
    let incidents = body["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 1, "{body}");
    assert_eq!(incidents[0]["sync_id"], sync);
    assert!(incidents[0]["resolved_at"].is_string());
    // the sync shows its alert with streaks
    let (_, body) = app.get("/v1/syncs/orders_to_salesforce").await;
    assert_eq!(body["alerts"][0]["rule"], "sync-broken");
    assert_eq!(body["alerts"][0]["state"], "ok");
}

#[tokio::test]
async fn a_restart_mid_history_gives_the_same_notices_as_an_uninterrupted_run() {
    let runs = scenario_runs("02-real-outage");
    let app = spawn_with(Opts {
        rules: Some(RULES.into()),
        ..Opts::default()
    })
    .await;
    for r in &runs {
        app.post_json("/v1/runs", r).await;
    }
    let uninterrupted = outbox(&app).await;

    let app2 = spawn_with(Opts {
        rules: Some(RULES.into()),
        ..Opts::default()
    })
    .await;
    let half = runs.len() / 2;
    for r in &runs[..half] {
        app2.post_json("/v1/runs", r).await;
    }
    let app2 = app2.restart(Opts::default()).await;
    for r in &runs[half..] {
        app2.post_json("/v1/runs", r).await;
    }
    assert_eq!(outbox(&app2).await, uninterrupted);
    assert_eq!(uninterrupted.len(), 2);
}

#[tokio::test]
async fn a_run_older_than_the_newest_evaluated_run_is_late_and_not_evaluated() {
    let app = spawn_with(Opts {
        rules: Some(RULES.into()),
        ..Opts::default()
    })
    .await;
    app.post_json(
        "/v1/runs",
        &run("s", "new", "success", &minutes_from_now(-10)),
    )
    .await;
    // Two failures that finished *before* the newest run: late, so they
    // cannot build a streak.
    app.post_json(
        "/v1/runs",
        &run("s", "old1", "failed", &minutes_from_now(-30)),
    )
    .await;
    app.post_json(
        "/v1/runs",
        &run("s", "old2", "failed", &minutes_from_now(-20)),
    )
    .await;
    let (_, body) = app.get("/v1/runs/s/old1").await;
    assert_eq!(body["evaluation"], "late");
    let (_, body) = app.get("/v1/runs/s/new").await;
    assert_eq!(body["evaluation"], "evaluated");
    assert!(outbox(&app).await.is_empty());
    // within one batch, out-of-order runs are evaluated in finished_at order
    let batch = json!([
        run("t", "b", "failed", &minutes_from_now(-5)),
        run("t", "a", "failed", &minutes_from_now(-6)),
    ]);
    app.post_json("/v1/runs", &batch).await;
    assert_eq!(
        outbox(&app).await,
        vec![out("firing", Some("failed_runs"), "t")]
    );
    let (_, body) = app.get("/v1/runs/t/a").await;
    assert_eq!(body["evaluation"], "evaluated");
}

#[tokio::test]
async fn a_pending_alert_is_listed_as_a_pending_incident() {
    let app = spawn_with(Opts {
        rules: Some(RULES.into()),
        ..Opts::default()
    })
    .await;
    app.post_json("/v1/runs", &run("s", "1", "failed", &minutes_from_now(-3)))
        .await;
    let (_, body) = app.get("/v1/incidents?state=pending").await;
    let list = body["incidents"].as_array().expect("list");
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["sync_id"], "s");
    let (status, _) = app.get("/v1/incidents?state=bogus").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_silenced_firing_is_held_and_goes_out_when_the_silence_is_expired() {
    let app = spawn_with(Opts {
        rules: Some(RULES.into()),
        ..Opts::default()
    })
    .await;
    let (status, silence) = app
        .post_json(
            "/v1/silences",
            // Event time is the run's finished_at: a silence covers the
            // runs that finish inside it.
            &json!({"sync": "census:*", "starts_at": minutes_from_now(-10), "duration": "2h",
                    "author": "ana", "comment": "vendor maintenance"}),
        )
        .await;
    assert_eq!(status, 201, "{silence}");
    assert_eq!(silence["active"], true);
    let id = silence["id"].as_str().expect("id").to_string();

    app.post_json(
        "/v1/runs",
        &run("census:7", "1", "failed", &minutes_from_now(-3)),
    )
    .await;
    app.post_json(
        "/v1/runs",
        &run("census:7", "2", "failed", &minutes_from_now(-2)),
    )
    .await;
    app.post_json(
        "/v1/runs",
        &run("other", "1", "failed", &minutes_from_now(-3)),
    )
    .await;
    app.post_json(
        "/v1/runs",
        &run("other", "2", "failed", &minutes_from_now(-2)),
    )
    .await;
    let (_, held) = app.get("/v1/notifications?status=held").await;
    let held = held["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["sync_id"], "census:7");
    assert_eq!(held[0]["held"], "silenced");
    let (_, listed) = app.get("/v1/silences").await;
    assert_eq!(listed["silences"][0]["id"], id.as_str());

    let (status, body) = app.delete(&format!("/v1/silences/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let sent: Vec<_> = outbox(&app)
        .await
        .into_iter()
        .filter(|n| n.3 == "out")
        .collect();
    assert_eq!(
        sent,
        vec![
            out("firing", Some("failed_runs"), "other"),
            out("firing", Some("failed_runs"), "census:7"),
        ]
    );
    let (status, _) = app.delete("/v1/silences/does-not-exist").await;
    assert_eq!(status, 404);
    let (status, body) = app
        .post_json(
            "/v1/silences",
            &json!({"sync": "x", "author": "a", "comment": "c"}),
        )
        .await;
    assert_eq!(status, 400, "a silence needs an end: {body}");
}

#[tokio::test]
async fn removing_a_firing_rule_resolves_its_alert_on_reload() {
    let app = spawn_with(Opts {
        rules: Some(RULES.into()),
        ..Opts::default()
    })
    .await;
    app.post_json("/v1/runs", &run("s", "1", "failed", &minutes_from_now(-3)))
        .await;
    app.post_json("/v1/runs", &run("s", "2", "failed", &minutes_from_now(-2)))
        .await;
    assert_eq!(outbox(&app).await.len(), 1);

    // An invalid rules file is refused and the running rules stay.
    let rules_file = app.dir.path().join("rules/rules.toml");
    std::fs::write(&rules_file, "[[rule]]\nname = 5\n").expect("write");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, body) = app.get("/v1/syncs/s").await;
    assert_eq!(body["alerts"][0]["state"], "firing", "{body}");

    std::fs::write(&rules_file, RULES.replace("sync-broken", "renamed")).expect("write");
    let mut notices = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        notices = outbox(&app).await;
        if notices.len() == 2 {
            break;
        }
    }
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert_eq!(notices[1].0, "resolved");
    let (_, body) = app.get("/v1/notifications?limit=1").await;
    assert_eq!(body["notifications"][0]["reason"], "rule_removed");
}
