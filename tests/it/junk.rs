//! Junk to every route of the API (the list in `api::openapi::ROUTES`):
//! junk bodies, wrong content types, junk and unknown query strings,
//! invalid percent-encoding in path segments, wrong methods. Whatever comes
//! in, the answer is never a 5xx, always JSON, and every refusal is
//! `{"error": "<words>"}`; junk a handler reads (a body it parses, a query
//! it takes) is a 4xx.

use serde_json::Value;
use syncwarden::api::openapi::ROUTES;

use crate::openapi::{concrete, spawn_with_every_source};

/// Bodies no handler should accept.
fn junk_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", Vec::new()),
        ("not JSON", b"hello there".to_vec()),
        ("invalid UTF-8", vec![0xff, 0xfe, 0x00, 0x80, b'{']),
        ("NUL bytes", vec![0u8; 64]),
        ("truncated", br#"{"sync_id": "a", "run_id"#.to_vec()),
        ("null", b"null".to_vec()),
        ("a number", b"1e999999".to_vec()),
        ("a string", br#""\u0000\ud800""#.to_vec()),
        ("deep arrays", "[".repeat(100_000).into_bytes()),
        ("deep objects", "{\"a\":".repeat(50_000).into_bytes()),
        (
            "duplicate keys",
            br#"{"sync_id":"a","sync_id":"b","run_id":"r","status":"success","finished_at":"2020-01-01T00:00:00Z"}"#
                .to_vec(),
        ),
        (
            "wrong types",
            br#"{"sync_id":7,"run_id":[],"status":{},"finished_at":true,"records":"many"}"#
                .to_vec(),
        ),
        ("huge numbers", br#"{"records":{"processed":1e400,"failed":-99999999999999999999999}}"#.to_vec()),
    ]
}

struct Answer {
    status: u16,
    content_type: String,
    body: Value,
    raw: String,
}

async fn send(
    app: &crate::helpers::TestApp,
    method: &str,
    path_and_query: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    let mut req = app.http.request(m, app.url(path_and_query)).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let raw = resp.text().await.expect("body");
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Answer {
        status,
        content_type,
        body,
        raw,
    }
}

/// Never a 5xx; JSON; a refusal names its reason.
fn assert_sane(what: &str, a: &Answer) {
    assert!(
        a.status < 500,
        "{what}: answered {} {}",
        a.status,
        clip(&a.raw)
    );
    if a.content_type.starts_with("text/plain") {
        // Only the Prometheus endpoint speaks text, and it is off here.
        panic!("{what}: text answer {} {}", a.status, clip(&a.raw));
    }
    assert!(
        a.content_type.starts_with("application/json"),
        "{what}: content-type {:?}: {}",
        a.content_type,
        clip(&a.raw)
    );
    if a.status >= 400 {
        let msg = a.body["error"].as_str().unwrap_or_default();
        assert!(
            msg.len() > 3,
            "{what}: {} without an error message: {}",
            a.status,
            clip(&a.raw)
        );
    }
}

fn assert_refused(what: &str, a: &Answer) {
    assert_sane(what, a);
    assert!(
        (400..500).contains(&a.status),
        "{what}: expected a 4xx, got {} {}",
        a.status,
        clip(&a.raw)
    );
}

fn clip(s: &str) -> &str {
    &s[..s.floor_char_boundary(300)]
}

#[tokio::test]
async fn junk_bodies_to_every_route_get_json_errors_never_a_5xx() {
    let app = spawn_with_every_source(Vec::new()).await;
    for (method, path, _) in ROUTES {
        let url = concrete(path);
        for (what, body) in junk_bodies() {
            for ct in [
                Some("application/json"),
                Some("text/plain"),
                Some("application/json;;;=="),
                Some("application/x-www-form-urlencoded"),
                None,
            ] {
                let a = send(&app, method, &url, ct, body.clone()).await;
                let label = format!("{method} {path} with {what} as {ct:?}");
                if *method == "get" {
                    // A GET ignores its body: anything but a 5xx or text.
                    assert_sane(&label, &a);
                } else {
                    assert_refused(&label, &a);
                }
            }
        }
    }
}

#[tokio::test]
async fn junk_query_strings_to_every_route_get_json_errors() {
    let app = spawn_with_every_source(Vec::new()).await;
    let junk = [
        "limit=abc",
        "limit=-1",
        "limit=99999999999999999999999",
        "limit=1&limit=2",
        "%zz=%zz",
        "%FF%FE=1",
        "nosuchparam=1",
        "window=forever",
        "state=exploded",
        "status=%00",
        "before=not-a-cursor",
        "errors=1e3",
        "all=maybe",
        "project[]=x",
    ];
    for (method, path, _) in ROUTES {
        let base = concrete(path);
        for q in junk {
            let a = send(
                &app,
                method,
                &format!("{base}?{q}"),
                Some("application/json"),
                b"{}".to_vec(),
            )
            .await;
            assert_sane(&format!("{method} {path}?{q}"), &a);
        }
    }
    // A query a route reads, with junk in it, is a 400 naming the parameter.
    for (url, name) in [
        ("/v1/syncs?window=forever", "window"),
        ("/v1/syncs/x/runs?limit=abc", "limit"),
        ("/v1/syncs/x/runs?before=zz", "before"),
        ("/v1/incidents?state=exploded", "state"),
        ("/v1/notifications?status=%00", "status"),
        ("/v1/notifications?nosuchparam=1", "nosuchparam"),
        ("/v1/silences?all=maybe", "all"),
        ("/v1/runs/x/y?errors=%FF", "errors"),
    ] {
        let a = send(&app, "get", url, None, Vec::new()).await;
        assert_refused(url, &a);
        assert_eq!(a.status, 400, "{url}: {}", a.raw);
        assert!(
            a.raw.contains(name),
            "{url}: does not name {name}: {}",
            a.raw
        );
    }
}

#[tokio::test]
async fn invalid_percent_encoding_in_path_segments_gets_json_errors() {
    let app = spawn_with_every_source(Vec::new()).await;
    for (method, path, _) in ROUTES.iter().filter(|r| r.1.contains('{')) {
        for seg in [
            "%FF%FE",
            "%zz",
            "%",
            "%2",
            "a%00b",
            "%C0%AF",
            "..%2F..%2Fetc",
        ] {
            let url = path
                .split('/')
                .map(|s| if s.starts_with('{') { seg } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let a = send(&app, method, &url, Some("application/json"), b"{}".to_vec()).await;
            assert_refused(&format!("{method} {url}"), &a);
        }
    }
}

#[tokio::test]
async fn wrong_methods_on_every_route_get_a_json_405() {
    let app = spawn_with_every_source(Vec::new()).await;
    for (method, path, _) in ROUTES {
        let allowed: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.1 == *path)
            .map(|r| r.0)
            .collect();
        for other in ["get", "post", "put", "patch", "delete"] {
            if allowed.contains(&other) {
                continue;
            }
            let a = send(&app, other, &concrete(path), None, Vec::new()).await;
            assert_refused(&format!("{other} {path} (route has {method})"), &a);
            assert_eq!(a.status, 405, "{other} {path}: {}", a.raw);
        }
    }
}

#[tokio::test]
async fn json_nested_past_the_depth_limit_is_a_400_naming_the_limit() {
    let app = spawn_with_every_source(Vec::new()).await;
    for body in [
        "[".repeat(200),
        "{\"a\":".repeat(129) + "1" + &"}".repeat(129),
    ] {
        let (status, answer) = app.post_raw("/v1/runs", body.into_bytes()).await;
        assert_eq!(status, 400, "{answer}");
        let msg = answer["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("malformed JSON") && msg.contains("recursion limit"),
            "{answer}"
        );
    }
    // A repeated key is ambiguous (first or last?): refused, named.
    let dup = br#"{"sync_id":"a","sync_id":"b","run_id":"r","status":"running"}"#;
    let (status, answer) = app.post_raw("/v1/runs", dup.to_vec()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("duplicate key"), "{answer}");
    // 100 levels is within the limit: the decoder gets to say what is wrong.
    let body = "[".repeat(100) + &"]".repeat(100);
    let (status, answer) = app.post_raw("/v1/runs", body.into_bytes()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(!answer.to_string().contains("recursion"), "{answer}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_on_every_route_that_takes_one() {
    let app = crate::helpers::spawn_with(crate::helpers::Opts {
        sources: Some(crate::openapi::ALL_SOURCES.into()),
        max_body_bytes: Some(1024),
        ..crate::helpers::Opts::default()
    })
    .await;
    let big = format!("[{}]", "1,".repeat(2000) + "1").into_bytes();
    for (method, path, _) in ROUTES.iter().filter(|r| r.0 == "post") {
        // The Airbyte route authenticates by its path: use the real token.
        let url = path.replace("{token}", "airbyte-token");
        let a = send(&app, method, &url, Some("application/json"), big.clone()).await;
        assert_refused(&format!("{method} {path} with 4 kB"), &a);
        assert_eq!(a.status, 413, "{path}: {}", a.raw);
        assert!(a.raw.contains("1024"), "{path}: names the limit: {}", a.raw);
    }
}

#[tokio::test]
async fn a_body_that_never_finishes_arriving_gets_a_json_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_with(crate::helpers::Opts {
        request_timeout: Some(std::time::Duration::from_millis(300)),
        ..crate::helpers::Opts::default()
    })
    .await;
    let mut conn = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    // Promises 100 bytes, sends one, then stalls.
    conn.write_all(
        b"POST /v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\nConnection: close\r\n\r\n{",
    )
    .await
    .expect("write");
    let started = std::time::Instant::now();
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        conn.read_to_string(&mut answer),
    )
    .await
    .expect("answered before the client gave up")
    .expect("read");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    assert!(
        answer.contains(r#""error":"request not completed within 300ms""#),
        "{answer}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}
