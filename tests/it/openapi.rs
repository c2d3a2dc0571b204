//! `GET /v1/openapi.json` matches the router, both ways: every operation in
//! the document is routed on a live server (no "no such route" 404 and no
//! 405 fallback), and every `.route(…)` the router source declares is in
//! the document. A route added without documenting it fails here.

use std::collections::BTreeSet;

use serde_json::Value;
use syncwarden::api::openapi::ROUTES;

use crate::helpers::{Opts, TestApp, spawn_with};

/// Every webhook source configured, so no webhook answers "not configured".
pub const ALL_SOURCES: &str = r#"
[census]
webhook_secret = "census-secret"
[fivetran]
webhook_secret = "fivetran-secret"
[dbt]
webhook_secret = "dbt-secret"
[airbyte]
webhook_token = "airbyte-token"
[generic]
webhook_secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
"#;

pub async fn spawn_with_every_source(tokens: Vec<String>) -> TestApp {
    spawn_with(Opts {
        sources: Some(ALL_SOURCES.into()),
        tokens,
        ..Opts::default()
    })
    .await
}

/// The `(method, path)` pairs the router source declares, read from the
/// files that build it (a tidy check: the router cannot be listed at run
/// time, its source can).
fn declared_routes() -> BTreeSet<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api/");
    let read = |f: &str| std::fs::read_to_string(format!("{dir}{f}")).expect("router source");
    let api = read("mod.rs");
    let start = api.find("let v1 = Router::new()").expect("the /v1 router");
    let end = start + api[start..].find(';').expect("end of the /v1 router");
    let top_start = api.find("pub fn router(").expect("router()");
    let top_end = top_start + api[top_start..].find("\n}\n").expect("end of router()");
    let mut out = BTreeSet::new();
    routes_in(&api[start..end], "/v1", &mut out);
    routes_in(&api[end..top_end], "", &mut out);
    routes_in(&read("webhooks.rs"), "/v1/webhooks", &mut out);
    out
}

fn routes_in(src: &str, prefix: &str, out: &mut BTreeSet<(String, String)>) {
    let method = regex::Regex::new(r"\b(get|post|put|patch|delete)\(").expect("regex");
    for (at, _) in src.match_indices(".route(") {
        // The call's text up to its matching parenthesis.
        let rest = &src[at + ".route(".len()..];
        let mut depth = 1;
        let mut len = 0;
        for (i, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                len = i;
                break;
            }
        }
        let call = &rest[..len];
        let path = call.split('"').nth(1).expect("a path literal");
        for m in method.captures_iter(call) {
            out.insert((m[1].to_string(), format!("{prefix}{path}")));
        }
    }
}

fn listed() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect()
}

/// A concrete URL path for a templated one: each `{param}` becomes `x`.
pub fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "x" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_the_router_declares() {
    let app = spawn_with_every_source(Vec::new()).await;
    let (status, doc) = app.get("/v1/openapi.json").await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            assert!(op["responses"].is_object(), "{method} {path}: responses");
            documented.insert((method.clone(), path.clone()));
        }
    }
    assert_eq!(documented, listed(), "document vs ROUTES");
    assert_eq!(
        declared_routes(),
        listed(),
        "router source vs ROUTES: document every route in src/api/openapi.rs"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed_on_a_live_server() {
    let app = spawn_with_every_source(Vec::new()).await;
    for (method, path, _) in ROUTES {
        let url = app.url(&concrete(path));
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let resp = app
            .http
            .request(m, url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 405, "{method} {path} is not routed: {body}");
        assert!(
            !(status == 404 && body["error"] == "no such route"),
            "{method} {path} is not routed: {body}"
        );
        assert!(status < 500, "{method} {path}: {status} {body}");
    }
}

#[tokio::test]
async fn the_openapi_document_needs_the_token_like_the_rest_of_v1() {
    let app = spawn_with_every_source(vec!["s3cret-token".into()]).await;
    let resp = reqwest::get(app.url("/v1/openapi.json"))
        .await
        .expect("request");
    assert_eq!(resp.status(), 401);
    assert_eq!(app.get("/v1/openapi.json").await.0, 200);
}
