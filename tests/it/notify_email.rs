//! Notices to people, end to end: runs posted over HTTP → engine → outbox
//! → a real SMTP server (aiosmtpd). Also the faults: SMTP down, 451, 550,
//! hostile record errors, and grouping.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Opts, TestApp, minutes_from_now, run, spawn_with};
use crate::smtp::SmtpServer;

const RULES: &str = r#"
[[rule]]
name = "sync-broken"
match = { sync = "*" }
bad_when = { status = ["failed"], failed_ratio_above = 0.10 }
fire_after = 2
resolve_after = 2
"#;

const WAIT: Duration = Duration::from_secs(15);

fn email_channel(smtp: &SmtpServer) -> String {
    format!(
        "[email.default]\nsmtp_url = \"{}\"\nfrom = \"syncwarden@example.com\"\nto = [\"oncall@example.com\"]\n",
        smtp.url()
    )
}

async fn app_with(smtp: &SmtpServer, rules: &str) -> TestApp {
    spawn_with(Opts {
        rules: Some(rules.into()),
        channels: Some(email_channel(smtp)),
        public_url: Some("https://syncwarden.example.com".into()),
        ..Opts::default()
    })
    .await
}

fn scenario(name: &str) -> Vec<Value> {
    let path = format!(
        "{}/../shared/scenarios/{name}/runs.ndjson",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("run"))
        .collect()
}

async fn notice_statuses(app: &TestApp) -> Vec<(String, String)> {
    let (_, body) = app.get("/v1/notifications?limit=100").await;
    let mut v: Vec<(String, String)> = body["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap_or_default().to_string(),
                n["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.reverse();
    v
}

async fn wait_statuses(app: &TestApp, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let start = std::time::Instant::now();
    loop {
        let got = notice_statuses(app).await;
        if got == want {
            return;
        }
        assert!(start.elapsed() < WAIT, "notices {got:?}, expected {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn partial_record_breakage_mails_one_detailed_failure_and_one_recovery() {
    let smtp = SmtpServer::start();
    let app = app_with(&smtp, RULES).await;
    for r in scenario("03-partial-records") {
        assert_eq!(app.post_json("/v1/runs", &r).await.0, 202);
    }
    let mails = smtp.wait_for(2, WAIT).await;
    assert_eq!(mails.len(), 2);
    let (firing, resolved) = (&mails[0], &mails[1]);

    assert!(firing.subject().contains("FIRING"), "{}", firing.subject());
    assert!(
        firing.subject().contains("contacts_to_hubspot"),
        "{}",
        firing.subject()
    );
    assert!(
        resolved.subject().contains("RESOLVED"),
        "{}",
        resolved.subject()
    );
    assert_eq!(firing.rcpt_to(), "oncall@example.com");
    assert_ne!(firing.message_id(), resolved.message_id());

    for body in [firing.text(), firing.html()] {
        assert!(
            body.contains("INVALID_EMAIL_ADDRESS"),
            "error class missing:\n{body}"
        );
        assert!(
            body.contains("00300000"),
            "example record id missing:\n{body}"
        );
        assert!(
            body.contains("https://syncwarden.example.com/syncs/contacts_to_hubspot"),
            "{body}"
        );
        assert!(
            body.contains("syncwarden silence add"),
            "how to silence it:\n{body}"
        );
    }
    assert!(
        firing.html().contains("<table"),
        "the HTML part is a table layout"
    );
    assert!(resolved.text().contains("contacts_to_hubspot"));
    wait_statuses(&app, &[("firing", "sent"), ("resolved", "sent")]).await;
    // Nothing more is sent later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 2);
}

#[tokio::test]
async fn with_smtp_down_both_notices_arrive_in_order_once_it_is_back() {
    let mut smtp = SmtpServer::start();
    let app = app_with(&smtp, RULES).await;
    smtp.down();
    for r in scenario("02-real-outage") {
        assert_eq!(app.post_json("/v1/runs", &r).await.0, 202);
    }
    // Both notices are waiting, the first one being retried.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(smtp.messages().is_empty());
    let (_, body) = app.get("/v1/notifications").await;
    assert!(
        body["notifications"]
            .as_array()
            .is_some_and(|l| l.iter().all(|n| n["status"] == "pending")),
        "{body}"
    );

    smtp.up();
    let mails = smtp.wait_for(2, WAIT).await;
    assert!(
        mails[0].subject().contains("FIRING"),
        "{}",
        mails[0].subject()
    );
    assert!(
        mails[1].subject().contains("RESOLVED"),
        "{}",
        mails[1].subject()
    );
    wait_statuses(&app, &[("firing", "sent"), ("resolved", "sent")]).await;
}

#[tokio::test]
async fn a_451_is_retried_into_exactly_one_message_and_a_550_is_recorded_without_a_retry_storm() {
    let smtp = SmtpServer::start();
    let app = app_with(&smtp, RULES).await;
    smtp.set_mode("451");
    app.post_json("/v1/runs", &run("a", "1", "failed", &minutes_from_now(-3)))
        .await;
    app.post_json("/v1/runs", &run("a", "2", "failed", &minutes_from_now(-2)))
        .await;
    let start = std::time::Instant::now();
    while smtp.attempts() < 2 {
        assert!(start.elapsed() < WAIT, "no retry after 451");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    smtp.set_mode("ok");
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    wait_statuses(&app, &[("firing", "sent")]).await;

    smtp.set_mode("550");
    app.post_json("/v1/runs", &run("b", "1", "failed", &minutes_from_now(-3)))
        .await;
    app.post_json("/v1/runs", &run("b", "2", "failed", &minutes_from_now(-2)))
        .await;
    wait_statuses(&app, &[("firing", "sent"), ("firing", "failed")]).await;
    let attempts = smtp.attempts();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        smtp.attempts(),
        attempts,
        "a permanent failure is not retried"
    );
    let (_, body) = app.get("/v1/notifications?status=failed").await;
    let failed = &body["notifications"][0];
    assert_eq!(failed["sync_id"], "b");
    let reason = failed["deliveries"][0]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("550"), "the reason is recorded: {body}");
    // and a later notice of another alert still goes out
    smtp.set_mode("ok");
    app.post_json("/v1/runs", &run("c", "1", "failed", &minutes_from_now(-3)))
        .await;
    app.post_json("/v1/runs", &run("c", "2", "failed", &minutes_from_now(-2)))
        .await;
    smtp.wait_for(2, WAIT).await;
}

#[tokio::test]
async fn hostile_record_errors_are_escaped_and_cannot_inject_headers() {
    let smtp = SmtpServer::start();
    let app = app_with(&smtp, RULES).await;
    let hostile = "<script>alert(1)</script> <b>bold</b>\r\nBcc: victim@example.com";
    for (i, t) in [(1, -3), (2, -2)] {
        let mut r = run("evil", &i.to_string(), "success", &minutes_from_now(t));
        r["records"] = json!({"processed": 10, "failed": 5});
        r["record_errors"] = json!([{"record_id": "x1", "code": "BAD", "message": hostile}]);
        r["error"] = json!({"message": "run error\r\nX-Injected: yes"});
        assert_eq!(app.post_json("/v1/runs", &r).await.0, 202);
    }
    let mails = smtp.wait_for(1, WAIT).await;
    let m = &mails[0];
    let html = m.html();
    assert!(
        !html.contains("<script>"),
        "raw script tag in HTML:\n{html}"
    );
    assert!(
        html.contains("&lt;script&gt;"),
        "escaped script tag expected:\n{html}"
    );
    assert!(!html.contains("<b>bold</b>"));
    let names = m.header_names();
    assert!(!names.contains(&"bcc".to_string()), "{names:?}");
    assert!(!names.contains(&"x-injected".to_string()), "{names:?}");
    assert_eq!(m.rcpt_to(), "oncall@example.com");
    assert!(!m.subject().contains('\n'));
}

#[tokio::test]
async fn incidents_due_together_for_one_destination_go_out_as_one_message() {
    let smtp = SmtpServer::start();
    let rules = format!(
        "{}\ngroup_by = [\"labels.destination\"]\ngroup_wait = \"1s\"\n",
        RULES.trim_end()
    );
    let app = app_with(&smtp, &(rules + "\n")).await;
    let mut batch = Vec::new();
    for s in 0..5 {
        for (i, t) in [(1, -3), (2, -2)] {
            let mut r = run(
                &format!("sf_{s}"),
                &i.to_string(),
                "failed",
                &minutes_from_now(t),
            );
            r["labels"] = json!({"destination": "salesforce"});
            batch.push(r);
        }
    }
    assert_eq!(app.post_json("/v1/runs", &json!(batch)).await.0, 202);
    let mails = smtp.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails_now = smtp.messages();
    assert_eq!(
        mails_now.len(),
        1,
        "one grouped message, got {}",
        mails_now.len()
    );
    let text = mails[0].text();
    for s in 0..5 {
        assert!(
            text.contains(&format!("sf_{s}")),
            "sync sf_{s} missing from the group:\n{text}"
        );
    }
    let (_, body) = app.get("/v1/notifications?status=sent").await;
    assert_eq!(body["notifications"].as_array().map(Vec::len), Some(5));
}
