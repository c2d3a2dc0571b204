//! Webhook, Slack and SMTP receivers that are down, slow or answering
//! errors, end to end through the outbox (SMTP refusals and outages are in
//! `notify_email.rs`, protocol-level SMTP faults in
//! `src/notify/email/tests.rs`): a slow or hung receiver is cut at the
//! channel's `timeout` and retried, a 5xx is retried with backoff, a receiver that is
//! down gets the notice once it is back, and a 4xx is recorded as failed
//! with its reason in `GET /v1/notifications`, without retries. Nothing is
//! lost and nothing is delivered twice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Opts, TestApp, minutes_from_now, run, spawn_with};

const HOOK: &str = "/hooks/syncwarden";
const WAIT: Duration = Duration::from_secs(15);

fn rules(channel: &str) -> String {
    format!(
        r#"
[[rule]]
name = "sync-broken"
match = {{ sync = "*" }}
bad_when = {{ status = ["failed"] }}
fire_after = 2
resolve_after = 1
notify = ["{channel}"]
"#
    )
}

async fn app_for(channels: String, channel: &str) -> TestApp {
    spawn_with(Opts {
        rules: Some(rules(channel)),
        channels: Some(channels),
        ..Opts::default()
    })
    .await
}

fn webhook_channel(base: &str, timeout: &str) -> String {
    format!("[webhook.ops]\nurl = \"{base}{HOOK}\"\ntimeout = \"{timeout}\"\n")
}

/// Two failures in a row: one firing notice for `sync`.
async fn break_sync(app: &TestApp, sync: &str) {
    for (i, ago) in [(1, -3), (2, -2)] {
        let (status, body) = app
            .post_json(
                "/v1/runs",
                &run(sync, &i.to_string(), "failed", &minutes_from_now(ago)),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }
}

/// The one delivery of the only notice, once `done` says so.
async fn wait_delivery(app: &TestApp, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (_, body) = app.get("/v1/notifications").await;
        let d = &body["notifications"][0]["deliveries"][0];
        if done(d) {
            return d.clone();
        }
        assert!(start.elapsed() < WAIT, "delivery stuck at {body}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn idempotency_keys(requests: &[wiremock::Request]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            r.headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_slow_webhook_is_cut_at_the_timeout_and_retried_until_delivered_once() {
    let server = MockServer::start().await;
    // The first answer takes far longer than the 300 ms timeout.
    Mock::given(method("POST"))
        .and(path(HOOK))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(HOOK))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let app = app_for(webhook_channel(&server.uri(), "300ms"), "webhook:ops").await;
    let started = Instant::now();
    break_sync(&app, "slow").await;
    let d = wait_delivery(&app, |d| d["status"] == "sent").await;
    assert!(d["attempts"].as_i64().unwrap_or(0) >= 2, "{d}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the slow attempt was not cut at the timeout"
    );
    let requests = server.received_requests().await.unwrap_or_default();
    let keys = idempotency_keys(&requests);
    assert!(keys.len() >= 2, "{keys:?}");
    assert!(
        keys.iter().all(|k| k == &keys[0] && !k.is_empty()),
        "a retry carries the same Idempotency-Key: {keys:?}"
    );
}

#[tokio::test]
async fn a_webhook_answering_5xx_is_retried_with_backoff_until_it_accepts() {
    let server = MockServer::start().await;
    let arrivals = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = arrivals.clone();
    Mock::given(method("POST"))
        .and(path(HOOK))
        .respond_with(move |_: &wiremock::Request| {
            let mut seen = seen.lock().expect("lock");
            seen.push(Instant::now());
            if seen.len() <= 3 {
                ResponseTemplate::new(503).set_body_string("maintenance")
            } else {
                ResponseTemplate::new(204)
            }
        })
        .mount(&server)
        .await;
    let app = app_for(webhook_channel(&server.uri(), "2s"), "webhook:ops").await;
    break_sync(&app, "flaky").await;
    let d = wait_delivery(&app, |d| d["status"] == "sent").await;
    assert_eq!(d["attempts"], 4, "{d}");
    assert!(d["sent_at"].is_string(), "{d}");
    let at = arrivals.lock().expect("lock").clone();
    assert_eq!(at.len(), 4, "delivered once, after three refusals");
    // Attempts are spaced by the backoff (50 ms doubling, capped at 400 ms
    // in the test configuration, a random point of the upper half), not
    // fired back to back.
    for pair in at.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(20), "retried after {gap:?}");
    }
}

#[tokio::test]
async fn a_webhook_that_is_down_gets_the_notice_once_it_is_back() {
    // A port nothing listens on, then a receiver on that same port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let base = format!("http://{addr}");
    let app = app_for(webhook_channel(&base, "1s"), "webhook:ops").await;
    break_sync(&app, "dark").await;
    // An attempt counts when it starts (status `sending`), so wait for one
    // that has ended: two attempts made and the delivery queued again.
    let d = wait_delivery(&app, |d| {
        d["attempts"].as_i64().unwrap_or(0) >= 2 && d["status"] != "sending"
    })
    .await;
    assert_eq!(
        d["status"], "pending",
        "a receiver that is down is transient: {d}"
    );
    let reason = d["last_error"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "the failure is recorded: {d}");
    assert!(d["next_attempt_at"].is_string(), "{d}");

    let listener = std::net::TcpListener::bind(addr).expect("rebind the port");
    let server = MockServer::builder().listener(listener).start().await;
    Mock::given(method("POST"))
        .and(path(HOOK))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    wait_delivery(&app, |d| d["status"] == "sent").await;
    let requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 1, "delivered exactly once");
}

#[tokio::test]
async fn a_webhook_answering_4xx_is_recorded_as_failed_with_its_reason_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(HOOK))
        .respond_with(ResponseTemplate::new(422).set_body_string("unknown field `notices`"))
        .mount(&server)
        .await;
    let app = app_for(webhook_channel(&server.uri(), "2s"), "webhook:ops").await;
    break_sync(&app, "refused").await;
    let d = wait_delivery(&app, |d| d["status"] == "failed").await;
    assert_eq!(d["attempts"], 1, "{d}");
    let reason = d["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("422") && reason.contains("unknown field"),
        "the reason is visible: {d}"
    );
    let (_, body) = app.get("/v1/notifications?status=failed").await;
    assert_eq!(body["notifications"][0]["sync_id"], "refused", "{body}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 1, "a permanent failure is not retried");
}

#[tokio::test]
async fn a_slow_slack_is_cut_at_its_timeout_and_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/T/B/X"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/services/T/B/X"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let channels = format!(
        "[slack.alerts]\nwebhook_url = \"{}/services/T/B/X\"\ntimeout = \"300ms\"\n",
        server.uri()
    );
    let app = app_for(channels, "slack:alerts").await;
    break_sync(&app, "slow-slack").await;
    let d = wait_delivery(&app, |d| d["status"] == "sent").await;
    assert!(d["attempts"].as_i64().unwrap_or(0) >= 2, "{d}");
}

#[tokio::test]
async fn an_smtp_server_that_never_answers_is_cut_at_the_timeout_and_the_mail_still_goes_once() {
    let smtp = crate::smtp::SmtpServer::start();
    // In front of the real server: the first connection is accepted and
    // never greeted (a hung relay); later ones are passed through.
    let front = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let front_port = front.local_addr().expect("addr").port();
    let upstream = format!("127.0.0.1:{}", smtp.port);
    tokio::spawn(async move {
        let mut hung = Vec::new();
        while let Ok((mut client, _)) = front.accept().await {
            if hung.is_empty() {
                hung.push(client);
                continue;
            }
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    let channels = format!(
        "[email.ops]\nsmtp_url = \"smtp://127.0.0.1:{front_port}?tls=none\"\n\
         to = [\"oncall@example.com\"]\ntimeout = \"300ms\"\n"
    );
    let app = app_for(channels, "email:ops").await;
    let started = Instant::now();
    break_sync(&app, "hung-smtp").await;
    let d = wait_delivery(&app, |d| d["status"] == "sent").await;
    assert!(d["attempts"].as_i64().unwrap_or(0) >= 2, "{d}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the hung attempt was not cut at the 300 ms timeout"
    );
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1, "one message, not one per attempt");
}
