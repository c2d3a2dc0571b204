//! POST-to-SMTP latency: from the `POST /v1/runs` that makes an alert fire
//! to a real SMTP server (aiosmtpd, `tests/support/smtp_sink.py`) receiving
//! the message, with `group_wait` 0. Target: p50 ≤ 10 ms, p99 ≤ 50 ms.
//!
//! `cargo bench --bench notify_latency` (needs python3 with aiosmtpd).
//! Prints the figures; `BENCHMARKS.md` records them.

mod support;

use std::time::{Duration, Instant};

use support::percentile;
use syncwarden::app::App;
use syncwarden::config::Config;

const SAMPLES: usize = 300;

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let sink = support::start_sink();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("rules")).expect("rules dir");
        std::fs::write(
            dir.path().join("rules/r.toml"),
            "[[rule]]\nname = \"broken\"\nmatch = { sync = \"*\" }\nfire_after = 1\n",
        )
        .expect("rules");
        let channels = format!(
            "[email.default]\nsmtp_url = \"smtp://127.0.0.1:{}?tls=none\"\nto = [\"oncall@example.com\"]\n",
            sink.port
        );
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database: dir.path().join("bench.db").display().to_string(),
            rules: dir.path().join("rules"),
            channels: toml::from_str(&channels).expect("channels"),
            ..Config::default()
        };
        let app = App::build(config).await.expect("app");
        let addr = app.addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::new();
        let url = format!("http://{addr}/v1/runs");
        let finished = syncwarden::model::Timestamp::now().plus_millis(-60_000).to_rfc3339();

        let mut latencies = Vec::with_capacity(SAMPLES);
        let mut acks = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES + 20 {
            let body = serde_json::json!({
                "sync_id": format!("bench_{i}"), "run_id": "1", "status": "failed",
                "finished_at": finished,
            });
            let t0 = support::now_ns();
            let resp = http.post(&url).json(&body).send().await.expect("post");
            assert_eq!(resp.status(), 202);
            let acked = support::now_ns();
            let deadline = Instant::now() + Duration::from_secs(10);
            let arrived = loop {
                let r = support::received(&sink);
                if r.len() > i {
                    break r[i];
                }
                assert!(Instant::now() < deadline, "message {i} never arrived");
                tokio::time::sleep(Duration::from_micros(200)).await;
            };
            // The first messages open the SMTP connection pool: warm-up.
            if i >= 20 {
                latencies.push((arrived.saturating_sub(t0)) as f64 / 1e6);
                acks.push((acked.saturating_sub(t0)) as f64 / 1e6);
            }
        }
        latencies.sort_by(|a, b| a.total_cmp(b));
        println!(
            "notify_latency: POST→SMTP over {} firing notices: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (targets: p50 ≤ 10 ms, p99 ≤ 50 ms)",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or_default(),
        );
        acks.sort_by(|a, b| a.total_cmp(b));
        println!(
            "notify_latency: POST→202 (run stored and evaluated): p50 {:.2} ms, p99 {:.2} ms",
            percentile(&acks, 0.5),
            percentile(&acks, 0.99),
        );
        let _ = stop.send(());
        let _ = server.await;
    });
}
