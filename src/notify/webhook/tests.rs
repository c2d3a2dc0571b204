//! Webhook channel tests: the documented body, the idempotency key, the
//! signature (checked independently of `sign`), and failure classes.

use std::time::Duration;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

const SECRET: &str = "s3cret-hook-key";

async fn receiver(status: u16, body: &str, retry_after: Option<&str>) -> MockServer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = MockServer::start().await;
    let mut response = ResponseTemplate::new(status).set_body_string(body);
    if let Some(v) = retry_after {
        response = response.insert_header("Retry-After", v);
    }
    Mock::given(method("POST"))
        .and(path("/hooks/syncwarden"))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    server
}

fn sender(base: &str, secret: Option<&str>) -> WebhookSender {
    WebhookSender::new(
        "ops",
        &WebhookChannel {
            url: Secret::new(format!("{base}/hooks/syncwarden")),
            secret: secret.map(Secret::new),
            rate: None,
            burst: None,
            timeout: None,
        },
    )
    .expect("builds")
}

fn header<'a>(req: &'a wiremock::Request, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn notices_are_posted_with_version_key_and_a_verifiable_signature() {
    let server = receiver(202, "", None).await;
    let ctxs = [
        NoticeContext::example_outage(),
        NoticeContext::example_minimal(),
    ];
    sender(&server.uri(), Some(SECRET))
        .deliver(&ctxs)
        .await
        .expect("delivered");

    let requests = server.received_requests().await.expect("recorded");
    let req = &requests[0];
    assert_eq!(header(req, "content-type"), Some("application/json"));
    assert_eq!(
        header(req, IDEMPOTENCY_HEADER),
        Some("9f1c2a7b3d4e5f60:firing:0,0000000000000000:firing:0")
    );

    // The body is the documented contract and reads back into the context.
    let body: Value = serde_json::from_slice(&req.body).expect("json");
    assert_eq!(body["version"], 1);
    let notices: Vec<NoticeContext> =
        serde_json::from_value(body["notices"].clone()).expect("notices");
    assert_eq!(notices, ctxs);
    assert!(body["notices"][1]["owner"].is_null(), "absent is null");

    // The signature, recomputed from the documented recipe.
    let ts = header(req, TIMESTAMP_HEADER).expect("timestamp");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let ts_num: u64 = ts.parse().expect("unix seconds");
    assert!(now.abs_diff(ts_num) < 60);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&req.body);
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let got = header(req, SIGNATURE_HEADER).expect("signature");
    assert_eq!(got, want);
    assert!(verify(SECRET, ts_num, &req.body, got));
}

#[tokio::test]
async fn without_a_secret_nothing_is_signed() {
    let server = receiver(200, "", None).await;
    sender(&server.uri(), None)
        .deliver(&[NoticeContext::example_recovery()])
        .await
        .expect("delivered");
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(header(&requests[0], SIGNATURE_HEADER), None);
    assert_eq!(header(&requests[0], TIMESTAMP_HEADER), None);
    assert_eq!(
        header(&requests[0], IDEMPOTENCY_HEADER),
        Some("9f1c2a7b3d4e5f60:resolved:1")
    );
}

#[test]
fn a_signature_covers_the_timestamp_and_every_byte_of_the_body() {
    let sig = sign(SECRET, 1_700_000_000, b"{\"a\":1}");
    assert!(sig.starts_with("sha256="));
    assert_eq!(sig.len(), "sha256=".len() + 64);
    assert!(verify(SECRET, 1_700_000_000, b"{\"a\":1}", &sig));
    assert!(!verify(SECRET, 1_700_000_001, b"{\"a\":1}", &sig));
    assert!(!verify(SECRET, 1_700_000_000, b"{\"a\":2}", &sig));
    assert!(!verify("other", 1_700_000_000, b"{\"a\":1}", &sig));
    assert!(!verify(SECRET, 1_700_000_000, b"{\"a\":1}", "sha256=zz"));
    assert!(!verify(SECRET, 1_700_000_000, b"{\"a\":1}", &sig[7..]));
}

#[tokio::test]
async fn receiver_failures_are_classified() {
    let ctx = [NoticeContext::example_outage()];

    let server = receiver(500, "boom", None).await;
    let err = sender(&server.uri(), None)
        .deliver(&ctx)
        .await
        .expect_err("500");
    assert!(err.is_transient(), "{err:?}");

    let server = receiver(429, "slow down", Some("7")).await;
    let err = sender(&server.uri(), None)
        .deliver(&ctx)
        .await
        .expect_err("429");
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));

    let server = receiver(400, "invalid_payload", None).await;
    let err = sender(&server.uri(), None)
        .deliver(&ctx)
        .await
        .expect_err("400");
    assert_eq!(
        err,
        DeliveryError::permanent("HTTP 400 Bad Request: invalid_payload")
    );
}

#[test]
fn bad_webhook_settings_are_refused() {
    let cfg = |url: &str, secret: Option<&str>| WebhookChannel {
        url: Secret::new(url),
        secret: secret.map(Secret::new),
        rate: None,
        burst: None,
        timeout: None,
    };
    let err = WebhookSender::new("ops", &cfg("ftp://x", None)).expect_err("scheme");
    assert!(err.to_string().contains("webhook:ops"), "{err}");
    let err = WebhookSender::new("ops", &cfg("https://x/h", Some(""))).expect_err("secret");
    assert!(err.to_string().contains("secret"), "{err}");
}

#[test]
fn idempotency_keys_are_header_safe() {
    assert_eq!(
        idempotency_key(&["a:firing:0".into(), "b:resolved:2\r\nX: y".into()]),
        "a:firing:0,b:resolved:2X:y"
    );
}
