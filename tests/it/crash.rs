//! Crash safety with the real binary: `syncwarden serve` is killed with
//! SIGKILL at several points while a history is being ingested and notices
//! are being mailed, restarted on the same database, and the history
//! finished. Afterwards:
//! - every acknowledged run is stored (and re-sent runs are duplicates);
//! - the outbox holds exactly the notices `backtest` predicts;
//! - the SMTP server received one message per notice key — a second copy
//!   is allowed only for a kill between "SMTP accepted" and "recorded as
//!   sent", and then it carries the same Message-ID.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use syncwarden::evaluate;
use syncwarden::model::{Run, Timestamp};

use crate::smtp::SmtpServer;

const BIN: &str = env!("CARGO_BIN_EXE_syncwarden");
const RULES: &str = r#"
[[rule]]
name = "sync-broken"
match = { sync = "*" }
bad_when = { status = ["failed"], failed_ratio_above = 0.10 }
fire_after = 2
resolve_after = 2

[[sync]]
id = "orders"
depends_on = ["marts"]
"#;

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(dir: &std::path::Path, port: u16) -> Server {
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(dir.join("syncwarden.toml"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start syncwarden");
        let url = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "serve did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, url }
    }

    fn kill(mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the server is killed: four fixed points by default;
/// `SYNCWARDEN_CRASH_KILLS=n` spreads `n` kills over the history instead
/// (more for a soak run, fewer for a quick one).
fn kill_points(runs: usize) -> Vec<usize> {
    match std::env::var("SYNCWARDEN_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        None => vec![17, 46, 83, 101],
        // Offset by 3 so the points do not line up with the 4-sync rhythm.
        Some(n) => (1..=n).map(|k| (k * runs / (n + 1) + 3) % runs).collect(),
    }
}

/// A deterministic history: an upstream and its downstream breaking
/// together, a sync with two outages, a noisy one. Finished 2 days ago and
/// later, one run every 10 minutes.
fn history() -> Vec<Value> {
    let base = (Timestamp::now().0 / 60_000 - 2 * 24 * 60) * 60_000;
    let patterns: [(&str, &str); 4] = [
        ("marts", "ssFFFFssssssssssssssssssssssssssssss"),
        ("orders", "sssFFFFFFFFsssssssssssssssssssssssss"),
        ("leads", "sssssFFFsssssssssFFFFssssssssssssss"),
        ("noisy", "sFsFssFsssFFsssssFssssFFFsssssssssss"),
    ];
    let mut runs = Vec::new();
    for step in 0..36 {
        for (k, (sync, pattern)) in patterns.iter().enumerate() {
            let Some(c) = pattern.as_bytes().get(step) else {
                continue;
            };
            let t = base + (step as i64 * 10 + k as i64) * 60_000;
            runs.push(json!({
                "sync_id": sync,
                "run_id": format!("{sync}-{step}"),
                "status": if *c == b'F' { "failed" } else { "success" },
                "finished_at": Timestamp(t).to_rfc3339(),
                "records": {"processed": 100, "failed": if *c == b'F' { 100 } else { 0 }},
                "error": if *c == b'F' { json!({"message": "destination refused the batch"}) } else { Value::Null },
            }));
        }
    }
    for r in &mut runs {
        if r["error"].is_null() {
            r.as_object_mut().map(|o| o.remove("error"));
        }
    }
    runs
}

async fn post_until_acknowledged(http: &reqwest::Client, url: &str, run: &Value) -> bool {
    match http.post(format!("{url}/v1/runs")).json(run).send().await {
        Ok(resp) => resp.status() == 202,
        Err(_) => false,
    }
}

#[tokio::test]
async fn sigkill_at_any_point_loses_no_run_and_sends_each_notice_once() {
    crate::helpers::install_crypto();
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("rules")).expect("rules dir");
    std::fs::write(dir.path().join("rules/rules.toml"), RULES).expect("rules");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let db = crate::helpers::test_database(dir.path()).await;
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\ndatabase = \"{db}\"\nrules = \"{rules}\"\n\
         [api]\nrequests_per_second = 0\n\
         [delivery]\nretry_initial = \"50ms\"\nretry_max = \"300ms\"\nclaim_lease = \"1s\"\n\
         [channels.email.default]\nsmtp_url = \"{smtp}\"\nto = [\"oncall@example.com\"]\n",
        db = db.url(),
        rules = dir.path().join("rules").display(),
        smtp = smtp.url(),
    );
    std::fs::write(dir.path().join("syncwarden.toml"), config).expect("config");

    let runs = history();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    // Kill points spread over the history (deterministic, but not aligned
    // with anything in it).
    let kill_at = kill_points(runs.len());
    let mut server = Server::start(dir.path(), port);
    let mut acknowledged = 0usize;
    for (i, run) in runs.iter().enumerate() {
        if kill_at.contains(&i) {
            // Give the outbox a moment so some kills land mid-delivery.
            tokio::time::sleep(Duration::from_millis(7 * (i as u64 % 5))).await;
            server.kill();
            server = Server::start(dir.path(), port);
        }
        // A runner retries until acknowledged; the key makes it idempotent.
        let mut tries = 0;
        while !post_until_acknowledged(&http, &server.url, run).await {
            tries += 1;
            assert!(tries < 50, "run {i} never acknowledged");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        acknowledged += 1;
    }
    assert_eq!(acknowledged, runs.len());

    // What backtest predicts for the same history.
    let rules = evaluate::parse_str("rules.toml", RULES).expect("rules");
    let parsed: Vec<Run> = runs
        .iter()
        .map(|v| serde_json::from_value(v.clone()).expect("run"))
        .collect();
    let (predicted, _) = evaluate::backtest(rules, parsed, None);
    let mut expected_keys: Vec<String> = predicted
        .iter()
        .filter(|n| n.held.is_none())
        .map(|n| n.key())
        .collect();
    expected_keys.sort();
    assert!(
        expected_keys.len() >= 6,
        "the history should produce several notices: {expected_keys:?}"
    );

    // Every run is stored, once.
    for sync in ["marts", "orders", "leads", "noisy"] {
        let body: Value = http
            .get(format!("{}/v1/syncs/{sync}", server.url))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        let sent = runs.iter().filter(|r| r["sync_id"] == sync).count();
        assert_eq!(body["sync"]["runs_total"], sent, "{sync}: {body}");
    }

    // The outbox holds exactly the predicted notices.
    let body: Value = http
        .get(format!("{}/v1/notifications?limit=1000", server.url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let mut outbox_keys: Vec<String> = body["notifications"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|n| n["status"] != "held")
        .filter_map(|n| n["key"].as_str().map(str::to_string))
        .collect();
    outbox_keys.sort();
    assert_eq!(outbox_keys, expected_keys);

    // Every notice key reached the SMTP server; a duplicate only with the
    // same Message-ID, and at most one per kill.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    loop {
        by_key.clear();
        for m in smtp.messages() {
            let key = m.header("X-Syncwarden-Notice-Key").unwrap_or_default();
            by_key.entry(key).or_default().push(m.message_id());
        }
        if by_key.keys().cloned().collect::<Vec<_>>() == expected_keys {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mailed keys {:?}\nexpected {expected_keys:?}",
            by_key.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let duplicates: usize = by_key.values().map(|ids| ids.len() - 1).sum();
    assert!(
        duplicates <= kill_at.len(),
        "{duplicates} duplicates: {by_key:?}"
    );
    for (key, ids) in &by_key {
        assert!(
            ids.iter().all(|id| id == &ids[0]),
            "{key}: different Message-IDs {ids:?}"
        );
    }
    server.kill();
}
