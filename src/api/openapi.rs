//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of the HTTP API.
//!
//! Written by hand rather than derived (utoipa): the handlers take raw
//! bytes and `Result<Query<…>, _>` extractors so that every rejection is
//! our JSON error, which derive macros cannot see through, and annotating
//! each handler would spread the document over every router file. Instead
//! [`ROUTES`] is the one list of routes, and `tests/it/openapi.rs` holds it
//! to the truth both ways: every route in the document is routed on a live
//! server (not the 404/405 fallback), and every `.route(…)` the router
//! source declares is in the list.

use axum::Json;
use serde_json::{Map, Value, json};

/// Every route of the API: method and path (axum's `{param}` syntax, which
/// OpenAPI shares), with a one-line summary. Keep in step with `router()`.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("post", "/v1/runs", "Ingest one run or an array of runs"),
    (
        "get",
        "/v1/runs/{sync_id}/{run_id}",
        "A stored run with its record errors and error classes",
    ),
    ("get", "/v1/syncs", "Every sync with totals over a window"),
    (
        "get",
        "/v1/syncs/{sync_id}",
        "One sync: 24h and 7d totals, alert states",
    ),
    (
        "get",
        "/v1/syncs/{sync_id}/runs",
        "A sync's runs, newest first, paged",
    ),
    (
        "get",
        "/v1/incidents",
        "Pending, firing and resolved incidents",
    ),
    (
        "get",
        "/v1/notifications",
        "Every notice with its delivery status and why",
    ),
    ("get", "/v1/silences", "Silences in force (or all)"),
    ("post", "/v1/silences", "Add a silence"),
    ("delete", "/v1/silences/{id}", "Expire a silence now"),
    ("get", "/v1/openapi.json", "This document"),
    (
        "post",
        "/v1/webhooks/census",
        "Census webhook (X-Signature: base64 HMAC-SHA256)",
    ),
    (
        "post",
        "/v1/webhooks/fivetran",
        "Fivetran webhook (X-Fivetran-Signature-256: hex HMAC-SHA256)",
    ),
    (
        "post",
        "/v1/webhooks/dbt",
        "dbt run_results.json or dbt Cloud webhook (Authorization: hex HMAC-SHA256)",
    ),
    (
        "post",
        "/v1/webhooks/airbyte/{token}",
        "Airbyte webhook, authenticated by the path token",
    ),
    (
        "post",
        "/v1/webhooks/cloudevents",
        "CloudEvents carrying canonical runs (Standard Webhooks signature)",
    ),
    ("get", "/healthz", "Liveness: the process answers"),
    (
        "get",
        "/readyz",
        "Readiness: database and writer, plus vendor source status",
    ),
    (
        "get",
        "/metrics",
        "Prometheus text (404 unless telemetry.prometheus)",
    ),
];

pub async fn document() -> Json<Value> {
    Json(build())
}

/// The whole document.
pub fn build() -> Value {
    let mut paths = Map::new();
    for (method, path, summary) in ROUTES {
        let entry = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(ops) = entry {
            ops.insert(method.to_string(), operation(method, path, summary));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "syncwarden",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Alerting sidecar for data-sync pipelines. Every error is JSON: {\"error\": \"…\"}, with \"errors\" listing each invalid field on a 400.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" }
            },
            "schemas": schemas(),
        },
    })
}

fn operation(method: &str, path: &str, summary: &str) -> Value {
    let mut op = Map::new();
    op.insert("summary".into(), json!(summary));
    op.insert(
        "operationId".into(),
        json!(format!(
            "{method}{}",
            path.replace(['/', '{', '}', '.'], "_")
        )),
    );
    let params: Vec<Value> = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            json!({
                "name": name, "in": "path", "required": true,
                "description": "percent-encoded (a sync_id may hold / and :)",
                "schema": { "type": "string" },
            })
        })
        .chain(query_params(method, path))
        .collect();
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
    let bearer = path.starts_with("/v1/") && !path.starts_with("/v1/webhooks/");
    if bearer {
        op.insert(
            "security".into(),
            json!([{ "bearer": [] }, {}]), // `{}`: no tokens configured
        );
    }
    if let Some(body) = request_body(method, path) {
        op.insert("requestBody".into(), body);
    }
    op.insert("responses".into(), responses(method, path, bearer));
    Value::Object(op)
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false,
            "description": description, "schema": { "type": ty } })
}

fn query_params(method: &str, path: &str) -> Vec<Value> {
    match (method, path) {
        ("get", "/v1/runs/{sync_id}/{run_id}") => vec![query(
            "errors",
            "integer",
            "record errors to include (1-10000, default 100)",
        )],
        ("get", "/v1/syncs") => vec![query(
            "window",
            "string",
            "window of the totals, e.g. 24h (default), 7d",
        )],
        ("get", "/v1/syncs/{sync_id}/runs") => vec![
            query("limit", "integer", "1-1000, default 50"),
            query("before", "string", "cursor from the previous page's next"),
        ],
        ("get", "/v1/incidents") => vec![
            query("state", "string", "pending, firing or resolved"),
            query("sync_id", "string", "only this sync"),
            query("limit", "integer", "1-5000, default 200"),
        ],
        ("get", "/v1/notifications") => vec![
            query("status", "string", "pending, sent, failed or held"),
            query("sync_id", "string", "only this sync"),
            query("limit", "integer", "1-5000, default 200"),
        ],
        ("get", "/v1/silences") => vec![query("all", "boolean", "include ended silences")],
        ("post", "/v1/webhooks/dbt") => vec![query(
            "project",
            "string",
            "project name for a run_results.json that does not say it",
        )],
        _ => Vec::new(),
    }
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn request_body(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("post", "/v1/runs") => Some(json_body(json!({
            "oneOf": [
                { "$ref": "#/components/schemas/Run" },
                { "type": "array", "minItems": 1, "items": { "$ref": "#/components/schemas/Run" } },
            ]
        }))),
        ("post", "/v1/silences") => Some(json_body(
            json!({ "$ref": "#/components/schemas/NewSilence" }),
        )),
        ("post", p) if p.starts_with("/v1/webhooks/") => Some(json_body(json!({
            "description": "the vendor's payload, signed over the raw bytes",
        }))),
        _ => None,
    }
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": {
        "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn responses(method: &str, path: &str, bearer: bool) -> Value {
    let mut r = Map::new();
    let ok = match (method, path) {
        ("post", "/v1/runs") => json!({ "202": { "description": "stored (committed)", "content": {
            "application/json": { "schema": { "$ref": "#/components/schemas/IngestAck" } } } } }),
        ("post", "/v1/silences") => json!({ "201": { "description": "the new silence" } }),
        ("post", _) => json!({
            "202": { "description": "stored", "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/IngestAck" } } } },
            "200": { "description": "an event describing no finished run: ignored" },
        }),
        ("get", "/readyz") => json!({ "200": { "description": "ready" },
                                      "503": { "description": "not ready (database or writer)" } }),
        ("get", "/metrics") => json!({ "200": { "description": "Prometheus text",
            "content": { "text/plain": { "schema": { "type": "string" } } } } }),
        _ => json!({ "200": { "description": "OK" } }),
    };
    if let Value::Object(m) = ok {
        r.extend(m);
    }
    let mut err = |code: &str, what: &str| {
        r.entry(code.to_string())
            .or_insert_with(|| error_response(what));
    };
    if method == "post" || path.contains('{') || method == "get" {
        err("400", "invalid input, naming the problem");
    }
    if bearer {
        err("401", "missing or invalid bearer token");
    }
    if path.starts_with("/v1/webhooks/") {
        err("401", "signature or token does not verify");
        err(
            "404",
            "this source has no webhook secret configured (or no such route)",
        );
    }
    if path.contains('{') {
        err("404", "no such resource");
    }
    if method == "post" {
        err("413", "body larger than api.max_body_bytes");
        err("415", "Content-Type is not JSON");
        err(
            "503",
            "store busy or full, or shutting down; retry after Retry-After",
        );
    }
    err(
        "429",
        "rate limit exceeded; retry after the Retry-After header",
    );
    err(
        "408",
        "not completed within api.request_timeout (body included)",
    );
    Value::Object(r)
}

fn schemas() -> Value {
    let id = json!({ "type": "string", "minLength": 1, "maxLength": 200 });
    let count = json!({ "type": "integer", "minimum": 0 });
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": { "type": "string" },
                "errors": { "type": "array", "items": { "$ref": "#/components/schemas/FieldError" } },
            },
        },
        "FieldError": {
            "type": "object",
            "required": ["index", "field", "message"],
            "properties": {
                "index": { "type": "integer" },
                "field": { "type": "string" },
                "message": { "type": "string" },
            },
        },
        "IngestAck": {
            "type": "object",
            "required": ["accepted", "duplicates"],
            "properties": { "accepted": count, "duplicates": count,
                            "ignored": { "type": "string" } },
        },
        "Run": {
            "type": "object",
            "additionalProperties": false,
            "required": ["sync_id", "run_id", "status"],
            "properties": {
                "sync_id": { "type": "string", "pattern": "^[A-Za-z0-9_.:/@-]{1,200}$" },
                "run_id": id,
                "status": { "enum": ["success", "failed", "cancelled", "running"] },
                "finished_at": { "type": "string", "format": "date-time",
                                 "description": "required unless running; at most 5 minutes ahead" },
                "started_at": { "type": "string", "format": "date-time" },
                "records": {
                    "type": "object", "additionalProperties": false,
                    "properties": { "processed": count, "succeeded": count,
                                    "failed": count, "invalid": count },
                },
                "error": {
                    "type": "object", "additionalProperties": false, "required": ["message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" } },
                },
                "record_errors": { "type": "array", "items": {
                    "type": "object", "additionalProperties": false, "required": ["message"],
                    "properties": { "record_id": { "type": "string" }, "code": { "type": "string" },
                                    "message": { "type": "string" }, "field": { "type": "string" } },
                } },
                "url": { "type": "string" },
                "source": { "type": "string" },
                "labels": { "type": "object", "additionalProperties": { "type": "string" } },
            },
        },
        "NewSilence": {
            "type": "object",
            "additionalProperties": false,
            "required": ["author", "comment"],
            "properties": {
                "rule": { "type": "string", "description": "glob, default *" },
                "sync": { "type": "string", "description": "glob, default *" },
                "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                "starts_at": { "type": "string", "format": "date-time" },
                "ends_at": { "type": "string", "format": "date-time" },
                "duration": { "type": "string", "description": "e.g. 2h, instead of ends_at" },
                "author": { "type": "string" },
                "comment": { "type": "string" },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_one_operation_with_responses() {
        let doc = build();
        let mut n = 0;
        for (method, path, _) in ROUTES {
            let op = &doc["paths"][path][method];
            assert!(op["responses"].is_object(), "{method} {path}");
            n += 1;
        }
        let ops: usize = doc["paths"]
            .as_object()
            .map(|p| p.values().filter_map(Value::as_object).map(Map::len).sum())
            .unwrap_or(0);
        assert_eq!(ops, n, "no route listed twice");
    }
}
