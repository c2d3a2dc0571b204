//! Slack channel tests: the Block Kit payload and delivery against a mock
//! Slack (wiremock), including Slack's refusals.

use std::time::Duration;

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::config::Secret;
use crate::notify::testkit::free_port;

const HOOK: &str = "/services/T000/B000/XXXX";

fn sender(base: &str) -> SlackSender {
    SlackSender::new(
        "data-alerts",
        &SlackChannel {
            webhook_url: Secret::new(format!("{base}{HOOK}")),
            rate: None,
            burst: None,
            timeout: None,
        },
    )
    .expect("builds")
}

async fn slack_answering(status: u16, body: &str, retry_after: Option<&str>) -> MockServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = MockServer::start().await;
    let mut response = ResponseTemplate::new(status).set_body_string(body);
    if let Some(v) = retry_after {
        response = response.insert_header("Retry-After", v);
    }
    Mock::given(method("POST"))
        .and(path(HOOK))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    server
}

fn texts(v: &Value) -> Vec<String> {
    // Every `text` string anywhere in the payload.
    let mut out = Vec::new();
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("text", Value::String(s)) => out.push(s.clone()),
                    _ => out.extend(texts(v)),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| out.extend(texts(i))),
        _ => {}
    }
    out
}

/// The texts Slack parses for links and mentions: `mrkdwn` objects and the
/// top-level fallback `text` (`plain_text` is shown literally).
fn parsed_texts(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match v {
        Value::Object(map) => {
            let plain = map.get("type").and_then(Value::as_str) == Some("plain_text");
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("text", Value::String(s)) if !plain => out.push(s.clone()),
                    ("text", Value::String(_)) => {}
                    _ => out.extend(parsed_texts(v)),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| out.extend(parsed_texts(i))),
        _ => {}
    }
    out
}

#[test]
fn the_firing_payload_is_block_kit_as_snapshotted() {
    let payload = SlackSender::payload(&[NoticeContext::example_outage()]);
    insta::with_settings!({ snapshot_path => "../snapshots" }, {
        insta::assert_json_snapshot!("slack_firing", payload);
    });
    let blocks = payload["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(
        blocks[0]["text"]["text"],
        ":red_circle: FIRING: orders_to_salesforce"
    );
    let all = texts(&payload).join("\n");
    assert!(all.contains("2 bad runs in a row"));
    assert!(
        all.contains("512 × INVALID_EMAIL_ADDRESS: Email: invalid email address: &lt;email&gt;")
    );
    assert!(all.contains("syncwarden silence add"));
    let actions = blocks
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("actions");
    let urls: Vec<&str> = actions["elements"]
        .as_array()
        .expect("buttons")
        .iter()
        .filter_map(|b| b["url"].as_str())
        .collect();
    assert_eq!(
        urls,
        [
            "http://localhost:8686/runs/orders_to_salesforce/1042",
            "https://app.getcensus.com/syncs/4812/sync-history/1042",
            "http://localhost:8686/syncs/orders_to_salesforce",
            "http://localhost:8686/incidents?sync_id=orders_to_salesforce",
        ]
    );
}

#[test]
fn the_resolved_payload_says_what_the_incident_cost() {
    let payload = SlackSender::payload(&[NoticeContext::example_recovery()]);
    insta::with_settings!({ snapshot_path => "../snapshots" }, {
        insta::assert_json_snapshot!("slack_resolved", payload);
    });
    let all = texts(&payload).join("\n");
    assert!(all.contains("RESOLVED: orders_to_salesforce"));
    assert!(all.contains("*Broken for*\n5h"));
    assert!(all.contains("*Runs failed*\n3 of 5"));
    assert!(all.contains("*Records failed*\n1,142"));
    assert!(
        !all.contains("silence add"),
        "no silence hint once resolved"
    );
}

#[test]
fn hostile_text_cannot_mention_link_or_break_the_blocks() {
    let mut ctx = NoticeContext::example_hostile();
    ctx.condition = format!(
        "<!channel> <https://evil.example|click> {}",
        "x".repeat(5000)
    );
    let payload = SlackSender::payload(&[ctx]);
    for text in parsed_texts(&payload) {
        assert!(!text.contains('<'), "unescaped `<` in {text:?}");
    }
    for text in texts(&payload) {
        assert!(text.chars().count() <= SECTION_CHARS, "{}", text.len());
    }
    let json = payload.to_string();
    assert!(
        !json.contains("javascript:"),
        "no button from a javascript: URL"
    );
    let header = payload["blocks"][0]["text"]["text"]
        .as_str()
        .expect("header");
    assert!(header.chars().count() <= HEADER_CHARS);
    assert!(!header.contains(['\r', '\n']));
}

#[test]
fn a_large_group_stays_within_slack_limits() {
    let ctxs: Vec<NoticeContext> = (0..20)
        .map(|i| NoticeContext {
            sync_id: format!("sync_{i}"),
            key: format!("inc{i}:firing:0"),
            ..NoticeContext::example_outage()
        })
        .collect();
    let payload = SlackSender::payload(&ctxs);
    let blocks = payload["blocks"].as_array().expect("blocks");
    assert!(blocks.len() <= MAX_BLOCKS, "{}", blocks.len());
    assert_eq!(blocks[0]["text"]["text"], "20 notices: 20 firing");
    let all = texts(&payload).join("\n");
    assert!(all.contains("… and 15 more"));
    assert!(all.contains("sync_19"));
}

#[tokio::test]
async fn a_notice_is_posted_as_json_to_the_webhook() {
    let server = slack_answering(200, "ok", None).await;
    let ctx = NoticeContext::example_outage();
    sender(&server.uri())
        .deliver(std::slice::from_ref(&ctx))
        .await
        .expect("delivered");
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(
        req.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body: Value = serde_json::from_slice(&req.body).expect("json body");
    assert_eq!(body, SlackSender::payload(&[ctx]));
}

#[tokio::test]
async fn a_slack_500_is_transient() {
    let server = slack_answering(500, "rollup_error", None).await;
    let err = sender(&server.uri())
        .deliver(&[NoticeContext::example_outage()])
        .await
        .expect_err("fails");
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.retry_after(), None);
}

#[tokio::test]
async fn a_slack_429_is_transient_and_says_when_to_retry() {
    let server = slack_answering(429, "rate_limited", Some("7")).await;
    let err = sender(&server.uri())
        .deliver(&[NoticeContext::example_outage()])
        .await
        .expect_err("fails");
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn slack_refusing_the_payload_is_permanent_with_its_reason() {
    for (status, body) in [(400, "invalid_payload"), (404, "no_service")] {
        let server = slack_answering(status, body, None).await;
        let err = sender(&server.uri())
            .deliver(&[NoticeContext::example_outage()])
            .await
            .expect_err("fails");
        assert!(matches!(err, DeliveryError::Permanent { .. }), "{err:?}");
        assert!(err.reason().contains(body), "{err}");
    }
}

#[tokio::test]
async fn an_unreachable_slack_is_transient_and_the_url_stays_secret() {
    let base = format!("http://127.0.0.1:{}", free_port());
    let err = sender(&base)
        .deliver(&[NoticeContext::example_outage()])
        .await
        .expect_err("fails");
    assert!(err.is_transient(), "{err:?}");
    assert!(!err.reason().contains("XXXX"), "{err}");
}

#[test]
fn a_webhook_url_that_is_not_http_is_refused() {
    let err = SlackSender::new(
        "x",
        &SlackChannel {
            webhook_url: Secret::new("hooks.slack.com/services/T/B/X"),
            rate: None,
            burst: None,
            timeout: None,
        },
    )
    .expect_err("refused");
    assert!(err.to_string().contains("slack:x"), "{err}");
    assert!(!err.to_string().contains("services"), "{err}");
}

#[tokio::test]
async fn the_header_matcher_sees_json() {
    // A mock that only answers JSON proves the content type on the wire.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(HOOK))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    sender(&server.uri())
        .deliver(&[NoticeContext::example_recovery()])
        .await
        .expect("delivered");
}
