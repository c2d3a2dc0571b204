//! No secret in the logs or in any `/v1` answer. The real binary runs with
//! `RUST_LOG=debug` and every kind of secret configured — API tokens, each
//! webhook secret and path token, an SMTP password, a Slack URL, a webhook
//! channel URL and signing key, vendor API tokens, and on PostgreSQL a
//! password in the database URL — while every channel fails (so error
//! paths, the likeliest to print a URL, all run), webhooks are refused and
//! accepted, and every read endpoint is queried. Then each secret is looked
//! for in the captured log and in every response body.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{install_crypto, minutes_from_now, run, test_database};

const BIN: &str = env!("CARGO_BIN_EXE_syncwarden");

const TOKEN: &str = "tok-SECRET-a1b2c3";
const OLD_TOKEN: &str = "tok-SECRET-old-9z8y";
const CENSUS: &str = "census-SECRET-b2";
const FIVETRAN: &str = "fivetran-SECRET-c3";
const DBT: &str = "dbt-SECRET-d4";
const AIRBYTE: &str = "airbyte-SECRET-e5";
const WHSEC: &str = "whsec_U0VDUkVULWdlbmVyaWMtd2Vib29rLWtleS0wMDE=";
const SMTP_PASSWORD: &str = "smtp-SECRET-f6";
const SLACK_PATH: &str = "SLACK-SECRET-g7";
const HOOK_PATH: &str = "HOOK-SECRET-h8";
const HOOK_KEY: &str = "hooksig-SECRET-i9";
const CENSUS_API: &str = "census-api-SECRET-j0";
const HIGHTOUCH_API: &str = "hightouch-api-SECRET-k1";

/// The password put into a PostgreSQL `database` URL (the test cluster
/// trusts every login, so it is never checked, only kept secret).
const PG_PASSWORD: &str = "pg-SECRET-l2";

/// `url` with `PG_PASSWORD` as its password, if it names a user and no
/// password (SQLite paths and URLs with a password stay as they are).
fn with_pg_password(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.starts_with("postgres") {
        return None;
    }
    let (user, host) = rest.split_once('@')?;
    if user.contains(':') {
        return None;
    }
    Some(format!("{scheme}://{user}:{PG_PASSWORD}@{host}"))
}

fn secrets() -> Vec<&'static str> {
    vec![
        TOKEN,
        OLD_TOKEN,
        CENSUS,
        FIVETRAN,
        DBT,
        AIRBYTE,
        WHSEC,
        // The decoded key of the whsec secret, as it would be printed.
        "SECRET-generic-webook-key-001",
        SMTP_PASSWORD,
        SLACK_PATH,
        HOOK_PATH,
        HOOK_KEY,
        CENSUS_API,
        HIGHTOUCH_API,
    ]
}

struct Serve {
    child: Child,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn no_secret_appears_in_debug_logs_or_in_any_v1_answer() {
    install_crypto();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("rules")).expect("rules dir");
    std::fs::write(
        dir.path().join("rules/rules.toml"),
        r#"
[[rule]]
name = "sync-broken"
match = { sync = "*" }
bad_when = { status = ["failed"] }
fire_after = 1
resolve_after = 1
notify = ["email:ops", "slack:alerts", "webhook:ops"]
"#,
    )
    .expect("rules");
    // Every receiver fails: Slack answers 500, the webhook's port is
    // closed, SMTP's port is closed, the vendor APIs answer 401.
    let refusing = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .mount(&refusing)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_string("bad token"))
        .mount(&refusing)
        .await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let db = test_database(dir.path()).await;
    let database = with_pg_password(db.url());
    let mut secrets = secrets();
    if database.is_some() {
        secrets.push(PG_PASSWORD);
    }
    let database = database.unwrap_or_else(|| db.url().to_owned());
    let config = format!(
        r#"
listen = "127.0.0.1:{port}"
database = "{db}"
rules = "{rules}"
[api]
tokens = ["{TOKEN}", "{OLD_TOKEN}"]
requests_per_second = 0
[delivery]
retry_initial = "50ms"
retry_max = "200ms"
[channels.email.ops]
smtp_url = "smtp://alice:{SMTP_PASSWORD}@{closed}?tls=none"
to = ["oncall@example.com"]
[channels.slack.alerts]
webhook_url = "{base}/services/T0/B0/{SLACK_PATH}"
timeout = "1s"
[channels.webhook.ops]
url = "http://{closed}/hooks/{HOOK_PATH}"
secret = "{HOOK_KEY}"
timeout = "1s"
[sources.census]
webhook_secret = "{CENSUS}"
api_token = "{CENSUS_API}"
api_url = "{base}"
poll_interval = "1s"
[sources.hightouch]
api_token = "{HIGHTOUCH_API}"
api_url = "{base}"
poll_interval = "1s"
[sources.fivetran]
webhook_secret = "{FIVETRAN}"
[sources.dbt]
webhook_secret = "{DBT}"
[sources.airbyte]
webhook_token = "{AIRBYTE}"
[sources.generic]
webhook_secret = "{WHSEC}"
"#,
        db = database,
        rules = dir.path().join("rules").display(),
        base = refusing.uri(),
    );
    let config_path = dir.path().join("syncwarden.toml");
    std::fs::write(&config_path, config).expect("config");
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let serve = Serve {
        child: Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "debug")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start syncwarden"),
    };
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve did not start: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let http = reqwest::Client::new();
    let mut answers: Vec<String> = Vec::new();
    let mut record = |what: &str, status: u16, body: String| {
        answers.push(format!("{what} → {status}: {body}"));
    };

    // Ingest: a failing run fires at once on every channel.
    for (i, status) in ["failed", "failed"].iter().enumerate() {
        let r = run("orders", &format!("r{i}"), status, &minutes_from_now(-2));
        let resp = http
            .post(format!("{base}/v1/runs"))
            .bearer_auth(TOKEN)
            .json(&r)
            .send()
            .await
            .expect("post");
        let s = resp.status().as_u16();
        record("POST /v1/runs", s, resp.text().await.unwrap_or_default());
        assert_eq!(s, 202);
    }
    // Wrong and missing tokens, junk.
    for auth in [Some("Bearer tok-SECRET-a1b2c"), Some("Basic eA=="), None] {
        let mut req = http.get(format!("{base}/v1/syncs"));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.expect("get");
        let s = resp.status().as_u16();
        record(
            "GET /v1/syncs (bad auth)",
            s,
            resp.text().await.unwrap_or_default(),
        );
        assert_eq!(s, 401);
    }
    // Webhooks: forged (401) and genuine.
    let fivetran = br#"{"event":"test_event","created":"2026-03-01T10:00:00.000Z"}"#;
    for sig in ["00".repeat(32), hmac_hex(FIVETRAN, fivetran)] {
        let resp = http
            .post(format!("{base}/v1/webhooks/fivetran"))
            .header("x-fivetran-signature-256", sig)
            .body(fivetran.to_vec())
            .send()
            .await
            .expect("post");
        let s = resp.status().as_u16();
        record("POST fivetran", s, resp.text().await.unwrap_or_default());
    }
    for token in ["wrong", AIRBYTE] {
        let resp = http
            .post(format!("{base}/v1/webhooks/airbyte/{token}"))
            .json(&json!({"text": "test"}))
            .send()
            .await
            .expect("post");
        let s = resp.status().as_u16();
        record("POST airbyte", s, resp.text().await.unwrap_or_default());
    }
    for (path, header) in [
        ("census", "x-signature"),
        ("dbt", "authorization"),
        ("cloudevents", "webhook-signature"),
    ] {
        let resp = http
            .post(format!("{base}/v1/webhooks/{path}"))
            .header(header, "v1,AAAA")
            .header("webhook-id", "m1")
            .header("webhook-timestamp", "1")
            .body("{}")
            .send()
            .await
            .expect("post");
        let s = resp.status().as_u16();
        record(path, s, resp.text().await.unwrap_or_default());
        assert_eq!(s, 401, "{path}");
    }

    // Let every channel fail a few times and the pollers poll.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = http
            .get(format!("{base}/v1/notifications"))
            .bearer_auth(OLD_TOKEN)
            .send()
            .await
            .expect("get");
        let body: serde_json::Value = resp.json().await.expect("json");
        let attempts: Vec<i64> = body["notifications"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|n| n["deliveries"].as_array().cloned().unwrap_or_default())
            .map(|d| d["attempts"].as_i64().unwrap_or(0))
            .collect();
        if attempts.len() == 3 && attempts.iter().all(|&a| a >= 2) {
            break;
        }
        assert!(Instant::now() < deadline, "channels did not fail: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await; // one poll at least
    for path in [
        "/readyz",
        "/healthz",
        "/metrics",
        "/v1/notifications",
        "/v1/notifications?status=failed",
        "/v1/incidents",
        "/v1/syncs",
        "/v1/syncs/orders",
        "/v1/syncs/orders/runs",
        "/v1/runs/orders/r0",
        "/v1/silences?all=true",
        "/v1/openapi.json",
        "/v1/nope",
    ] {
        let resp = http
            .get(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get");
        let s = resp.status().as_u16();
        let headers = format!("{:?}", resp.headers());
        record(path, s, headers + &resp.text().await.unwrap_or_default());
    }
    drop(serve);

    let logs = strip_ansi(&std::fs::read_to_string(&log_path).expect("log"));
    assert!(
        logs.contains("DEBUG"),
        "the log was captured at debug level"
    );
    // The error paths ran, so the check below means something.
    for needle in [
        "channel=slack:alerts",
        "channel=webhook:ops",
        "channel=email:ops",
        "poll failed source=census",
        "poll failed source=hightouch",
        "webhook rejected",
    ] {
        assert!(
            logs.contains(needle),
            "{needle:?} not logged; the test saw no such failure"
        );
    }
    let answers = answers.join("\n");
    assert!(answers.contains("deliveries"), "{answers}");
    for secret in secrets {
        if let Some(at) = logs.find(secret) {
            let from = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let to = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!("{secret} is in the log: {}", &logs[from..to]);
        }
        if let Some(at) = answers.find(secret) {
            let from = answers[..at].rfind('\n').map_or(0, |i| i + 1);
            panic!(
                "{secret} is in an answer: {}",
                &answers[from..(at + 80).min(answers.len())]
            );
        }
    }
}

/// The log without its colour codes (`\x1b[…m`), which split `key=value`.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
