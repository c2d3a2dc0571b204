//! Vendor webhooks over HTTP: every fixture through its endpoint to the
//! stored run, and each authentication scheme (valid, invalid, missing,
//! re-serialised body, rotation, replay window, unconfigured source).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Opts, TestApp, minutes_from_now, spawn_app, spawn_with};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ingest/adapters/testdata");

/// A vendor payload from the adapters' in-repo fixtures.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{TESTDATA}/{name}")).expect("fixture")
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn census_signature(secret: &str, body: &[u8]) -> String {
    STANDARD.encode(mac(secret.as_bytes(), &[body]))
}

fn hex_signature(secret: &str, body: &[u8]) -> String {
    hex::encode(mac(secret.as_bytes(), &[body]))
}

/// A Standard Webhooks secret and its signature of a message.
const WHSEC: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const WHSEC_OLD: &str = "whsec_b2xkLWtleS1vbGQta2V5LW9sZC1rZXk=";

type Headers = Vec<(&'static str, String)>;

fn standard_headers(secret: &str, id: &str, unix: i64, body: &[u8]) -> Headers {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("base64 key");
    let ts = unix.to_string();
    let sig = STANDARD.encode(mac(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]));
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", ts),
        ("webhook-signature", format!("v1,{sig}")),
    ]
}

fn unix_now() -> i64 {
    syncwarden::model::Timestamp::now().0 / 1000
}

/// POSTs raw bytes with the given headers and no bearer token: vendors
/// authenticate with their own schemes.
async fn post(app: &TestApp, url: &str, body: &[u8], headers: &[(&str, String)]) -> (u16, Value) {
    let mut req = app
        .http
        .post(app.url(url))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn run_of(app: &TestApp, sync: &str, run_id: &str) -> (u16, Value) {
    let sync = sync.replace(':', "%3A").replace('/', "%2F");
    app.get(&format!("/v1/runs/{sync}/{run_id}")).await
}

async fn sync_count(app: &TestApp) -> usize {
    let (status, body) = app.get("/v1/syncs").await;
    assert_eq!(status, 200, "{body}");
    body["syncs"].as_array().expect("a list of syncs").len()
}

const API_TOKEN: &str = "bearer-for-the-api";

fn with_sources(sources: String) -> Opts {
    Opts {
        // Webhooks must work while the API itself needs a bearer token.
        tokens: vec![API_TOKEN.to_owned()],
        sources: Some(sources),
        ..Opts::default()
    }
}

async fn census_api() -> MockServer {
    let api = MockServer::start().await;
    let json_body =
        |name: &str| ResponseTemplate::new(200).set_body_raw(fixture(name), "application/json");
    Mock::given(method("GET"))
        .and(path("/api/v1/sync_runs/8812734"))
        .and(header("authorization", "Bearer census-token"))
        .respond_with(json_body("census/sync_run_completed_partial.json"))
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/sync_runs/8812734/records"))
        .and(query_param("status", "rejected"))
        .respond_with(json_body("census/sync_run_records_rejected.json"))
        .expect(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/sync_runs/8812790"))
        .respond_with(json_body("census/sync_run_failed.json"))
        .mount(&api)
        .await;
    // A failed run with no rejected records needs no record sample.
    Mock::given(method("GET"))
        .and(path("/api/v1/sync_runs/8812790/records"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&api)
        .await;
    api
}

fn census_sources(api: &MockServer) -> String {
    format!(
        r#"
        [census]
        webhook_secret = ["census-new", "census-old"]
        api_token = "census-token"
        api_url = "{}"
        backoff = "10ms"
        max_backoff = "50ms"
        max_retries = 1
        request_timeout = "2s"
        "#,
        api.uri()
    )
}

#[tokio::test]
async fn a_census_webhook_fetches_the_counts_and_record_errors_of_its_run() {
    let api = census_api().await;
    let app = spawn_with(with_sources(census_sources(&api))).await;

    let body = fixture("census/webhook_sync_completed.json");
    let sig = census_signature("census-new", &body);
    let (status, ack) = post(&app, "/v1/webhooks/census", &body, &[("x-signature", sig)]).await;
    assert_eq!(status, 202, "{ack}");
    assert_eq!(ack, json!({"accepted": 1, "duplicates": 0}));

    let (status, run) = run_of(&app, "census:52114", "8812734").await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "success");
    assert_eq!(run["source"], "census");
    assert_eq!(
        run["records"],
        json!({"processed": 10012, "succeeded": 5998, "failed": 4002, "invalid": 12})
    );
    assert_eq!(run["finished_at"], "2025-03-04T06:03:41.907Z");
    assert_eq!(run["record_errors_total"], 2);
    assert_eq!(run["record_errors"][0]["record_id"], "0035e00000AbCdE");
    assert_eq!(run["record_errors"][0]["code"], "INVALID_EMAIL_ADDRESS");
    assert_eq!(run["record_errors"][0]["field"], "Email");
    assert_eq!(run["record_errors"][1]["code"], "DUPLICATE_VALUE");

    // The failure webhook, signed with the old secret during rotation.
    let body = fixture("census/webhook_sync_failed.json");
    let sig = census_signature("census-old", &body);
    let (status, ack) = post(
        &app,
        "/v1/webhooks/census",
        &body,
        &[("x-signature", sig.clone())],
    )
    .await;
    assert_eq!(status, 202, "{ack}");
    let (_, run) = run_of(&app, "census:52114", "8812790").await;
    assert_eq!(run["status"], "failed");
    // Counts Census reports as null stay unknown, never 0.
    for count in ["processed", "succeeded", "failed", "invalid"] {
        assert!(run["records"][count].is_null(), "{count}: {run}");
    }
    assert_eq!(run["error"]["code"], "INVALID_SESSION_ID");
    assert_eq!(
        run["error"]["message"],
        "INVALID_SESSION_ID: Session expired or invalid"
    );

    // Census retries deliveries: a second one is a duplicate.
    let (status, ack) = post(&app, "/v1/webhooks/census", &body, &[("x-signature", sig)]).await;
    assert_eq!(
        (status, ack),
        (202, json!({"accepted": 0, "duplicates": 1}))
    );

    let (_, ready) = app.get("/readyz").await;
    let census = &ready["sources"]["census"];
    assert_eq!(census["state"], "ok", "{ready}");
    assert_eq!(census["webhooks_accepted"], 3);
    assert_eq!(census["mode"], "webhook + api");
}

#[tokio::test]
async fn without_an_api_token_a_census_webhook_stores_the_outcome_alone() {
    let app = spawn_with(with_sources(
        "[census]\nwebhook_secret = \"census-new\"\n".to_owned(),
    ))
    .await;
    let body = fixture("census/webhook_sync_failed.json");
    let sig = census_signature("census-new", &body);
    let (status, ack) = post(&app, "/v1/webhooks/census", &body, &[("x-signature", sig)]).await;
    assert_eq!(status, 202, "{ack}");
    let (_, run) = run_of(&app, "census:52114", "8812790").await;
    assert_eq!(run["status"], "failed");
    assert_eq!(
        run["records"].as_object().map_or(0, |r| r.len()),
        0,
        "{run}"
    );
    assert!(
        run["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("sync.failed"))
    );

    // A start notification describes no finished run.
    let started = br#"{"sync_id":52114,"sync_run_id":1,"event":"sync.started"}"#;
    let sig = census_signature("census-new", started);
    let (status, ack) = post(
        &app,
        "/v1/webhooks/census",
        started,
        &[("x-signature", sig)],
    )
    .await;
    assert_eq!(
        (status, ack["ignored"].as_str()),
        (200, Some("sync.started"))
    );

    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200);
    let detail = ready["sources"]["census"]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(detail.contains("api_token"), "{ready}");
    assert!(detail.contains("counts"), "{ready}");
}

#[tokio::test]
async fn a_census_api_outage_asks_census_to_retry_and_shows_in_readyz() {
    let api = MockServer::start().await;
    // Down for the first delivery (one try and one retry)…
    Mock::given(method("GET"))
        .and(path("/api/v1/sync_runs/8812790"))
        .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
        .up_to_n_times(2)
        .mount(&api)
        .await;
    // …back for Census's retry.
    Mock::given(method("GET"))
        .and(path("/api/v1/sync_runs/8812790"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("census/sync_run_failed.json"), "application/json"),
        )
        .mount(&api)
        .await;
    let app = spawn_with(with_sources(census_sources(&api))).await;
    let body = fixture("census/webhook_sync_failed.json");
    let sig = census_signature("census-new", &body);

    let (status, answer) = post(
        &app,
        "/v1/webhooks/census",
        &body,
        &[("x-signature", sig.clone())],
    )
    .await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer["error"].is_string());
    assert_eq!(sync_count(&app).await, 0, "nothing stored");
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["status"], "ready", "a vendor outage is not ours");
    let census = &ready["sources"]["census"];
    assert_eq!(census["state"], "error", "{ready}");
    assert!(
        census["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("502")),
        "{ready}"
    );

    let (status, _) = post(&app, "/v1/webhooks/census", &body, &[("x-signature", sig)]).await;
    assert_eq!(status, 202);
    let (_, run) = run_of(&app, "census:52114", "8812790").await;
    assert_eq!(run["error"]["code"], "INVALID_SESSION_ID");
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["sources"]["census"]["state"], "ok", "{ready}");
}

#[tokio::test]
async fn bad_census_signatures_are_401_and_change_nothing() {
    let app = spawn_with(with_sources(
        "[census]\nwebhook_secret = [\"census-new\", \"census-old\"]\n".to_owned(),
    ))
    .await;
    let body = fixture("census/webhook_sync_failed.json");
    let good = census_signature("census-new", &body);
    let compact =
        serde_json::to_vec(&serde_json::from_slice::<Value>(&body).expect("json")).expect("json");
    assert_ne!(compact, body);
    let cases: Vec<(&str, &[u8], Headers)> = vec![
        ("missing", &body, vec![]),
        (
            "wrong secret",
            &body,
            vec![("x-signature", census_signature("guess", &body))],
        ),
        ("garbage", &body, vec![("x-signature", "%%%".to_owned())]),
        (
            "re-serialised body",
            &compact,
            vec![("x-signature", good.clone())],
        ),
        (
            "bearer token instead",
            &body,
            vec![("authorization", format!("Bearer {API_TOKEN}"))],
        ),
    ];
    for (what, body, headers) in cases {
        let (status, answer) = post(&app, "/v1/webhooks/census", body, &headers).await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert!(answer["error"].is_string(), "{what}: JSON error");
    }
    assert_eq!(sync_count(&app).await, 0);
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["sources"]["census"]["webhooks_rejected"], 5);
    let (status, _) = post(&app, "/v1/webhooks/census", &body, &[("x-signature", good)]).await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn an_unconfigured_source_answers_404() {
    let app = spawn_app().await;
    for url in [
        "/v1/webhooks/census",
        "/v1/webhooks/fivetran",
        "/v1/webhooks/dbt",
        "/v1/webhooks/airbyte/anything",
        "/v1/webhooks/cloudevents",
    ] {
        let (status, body) = post(&app, url, b"{}", &[]).await;
        assert_eq!(status, 404, "{url}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("[sources.")),
            "{body}"
        );
    }
    let (_, ready) = app.get("/readyz").await;
    assert_eq!(ready["sources"], json!({}));
}

#[tokio::test]
async fn fivetran_sync_ends_are_stored_and_its_test_event_is_answered_without_storing() {
    let app = spawn_with(with_sources(
        "[fivetran]\nwebhook_secret = [\"ft-new\", \"ft-old\"]\n".to_owned(),
    ))
    .await;
    let test_event = fixture("fivetran/webhook_test_event.json");
    let sig = hex_signature("ft-new", &test_event).to_uppercase();
    let (status, ack) = post(
        &app,
        "/v1/webhooks/fivetran",
        &test_event,
        &[("X-Fivetran-Signature-256", sig)],
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(
        ack,
        json!({"accepted": 0, "duplicates": 0, "ignored": "test_event"})
    );
    assert_eq!(
        sync_count(&app).await,
        0,
        "the test event is stored nowhere"
    );

    for (name, secret) in [
        ("fivetran/webhook_sync_end_failure.json", "ft-old"),
        ("fivetran/webhook_sync_end_success.json", "ft-new"),
    ] {
        let body = fixture(name);
        let sig = hex_signature(secret, &body).to_uppercase();
        let (status, ack) = post(
            &app,
            "/v1/webhooks/fivetran",
            &body,
            &[("X-Fivetran-Signature-256", sig)],
        )
        .await;
        assert_eq!(status, 202, "{name}: {ack}");
    }
    let (_, failed) = run_of(
        &app,
        "fivetran:assimilate_seem",
        "b4703f73-6315-4e22-8d7a-3bfb18b2fed2",
    )
    .await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "FAILURE_WITH_TASK");
    assert!(
        failed["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("(task: reconnect)"))
    );
    assert_eq!(failed["labels"]["connector"], "salesforce_prod");
    let (_, ok) = run_of(
        &app,
        "fivetran:assimilate_seem",
        "0c9e1d2a-77aa-4b11-9f5e-1a2b3c4d5e6f",
    )
    .await;
    assert_eq!(ok["status"], "success");
    assert_eq!(ok["source"], "fivetran");

    let body = fixture("fivetran/webhook_sync_end_success.json");
    let (status, _) = post(
        &app,
        "/v1/webhooks/fivetran",
        &body,
        &[("X-Fivetran-Signature-256", hex_signature("nope", &body))],
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_dbt_run_results_upload_and_a_dbt_cloud_webhook_are_stored() {
    let app = spawn_with(with_sources(
        "[dbt]\nwebhook_secret = \"dbt-secret\"\n".to_owned(),
    ))
    .await;
    let body = fixture("dbt/run_results.json");
    let sig = hex_signature("dbt-secret", &body);
    let (status, ack) = post(&app, "/v1/webhooks/dbt", &body, &[("authorization", sig)]).await;
    assert_eq!(status, 202, "{ack}");
    assert_eq!(ack["accepted"], 5, "four nodes and the invocation");

    let invocation = "3f1c2b9e-6a0d-4f1e-9a4e-0c2b7d5e8a11";
    let (_, test) = run_of(
        &app,
        "dbt:test.crm.unique_dim_contacts_email.4f2a",
        invocation,
    )
    .await;
    assert_eq!(test["status"], "failed");
    assert_eq!(test["records"]["failed"], 12);
    let (_, model) = run_of(&app, "dbt:model.crm.dim_contacts", invocation).await;
    assert_eq!(
        (
            model["status"].as_str(),
            model["records"]["processed"].as_u64()
        ),
        (Some("success"), Some(182_340))
    );
    let (_, project) = run_of(&app, "dbt:crm", invocation).await;
    assert_eq!(project["status"], "failed");
    assert_eq!(project["records"]["failed"], 12);
    assert_eq!(project["labels"]["command"], "build");

    let body = fixture("dbt/cloud_webhook_job_errored.json");
    let sig = hex_signature("dbt-secret", &body);
    let (status, ack) = post(&app, "/v1/webhooks/dbt", &body, &[("authorization", sig)]).await;
    assert_eq!(status, 202, "{ack}");
    let (_, job) = run_of(&app, "dbt:crm", "3012345").await;
    assert_eq!(job["status"], "failed");
    assert_eq!(
        job["error"]["message"],
        "Database Error in model fct_arr: column \"arr_usd\" does not exist"
    );
    assert_eq!(job["labels"]["job"], "Nightly build");

    // A run_results.json naming no single package takes ?project=.
    let mut v: Value = serde_json::from_slice(&fixture("dbt/run_results.json")).expect("json");
    v["results"][0]["unique_id"] = json!("model.dbt_utils.x");
    v["metadata"]["invocation_id"] = json!("second");
    let body = serde_json::to_vec(&v).expect("json");
    let sig = hex_signature("dbt-secret", &body);
    let (status, answer) = post(
        &app,
        "/v1/webhooks/dbt",
        &body,
        &[("authorization", sig.clone())],
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("project")),
        "{answer}"
    );
    let (status, _) = post(
        &app,
        "/v1/webhooks/dbt?project=analytics",
        &body,
        &[("authorization", sig)],
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = run_of(&app, "dbt:analytics", "second").await;
    assert_eq!(status, 200);

    let (status, _) = post(&app, "/v1/webhooks/dbt", &body, &[]).await;
    assert_eq!(status, 401, "unsigned");
}

#[tokio::test]
async fn airbyte_webhooks_are_authenticated_by_their_path_token() {
    let app = spawn_with(with_sources(
        "[airbyte]\nwebhook_token = [\"new-path-token\", \"old-path-token\"]\n".to_owned(),
    ))
    .await;
    let failed = fixture("airbyte/webhook_sync_failed.json");
    let (status, answer) = post(&app, "/v1/webhooks/airbyte/wrong-token", &failed, &[]).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(sync_count(&app).await, 0);

    let (status, ack) = post(&app, "/v1/webhooks/airbyte/old-path-token", &failed, &[]).await;
    assert_eq!(status, 202, "{ack}");
    let ok = fixture("airbyte/webhook_sync_succeeded.json");
    let (status, _) = post(&app, "/v1/webhooks/airbyte/new-path-token", &ok, &[]).await;
    assert_eq!(status, 202);

    let sync = "airbyte:64d901a1-2520-4d91-93c8-9df438668ff0";
    let (_, run) = run_of(&app, sync, "9988").await;
    assert_eq!(run["status"], "failed");
    assert_eq!(
        run["records"],
        json!({"processed": 20000, "succeeded": 10000})
    );
    assert_eq!(
        run["error"]["message"],
        "Failure in destination: Snowflake query timed out"
    );
    let (_, run) = run_of(&app, sync, "9989").await;
    assert_eq!(run["status"], "success");
    assert_eq!(run["labels"]["connection"], "Postgres → Snowflake");

    // Airbyte's "test" button sends a Slack-style message.
    let (status, ack) = post(
        &app,
        "/v1/webhooks/airbyte/new-path-token",
        br#"{"text":"Hello World!"}"#,
        &[],
    )
    .await;
    assert_eq!((status, ack["accepted"].as_u64()), (200, Some(0)));
}

fn event(id: &str, run_id: &str, status: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "/airflow/orders",
        "type": "dev.syncwarden.run",
        "datacontenttype": "application/json",
        "data": {
            "sync_id": "airflow:orders",
            "run_id": run_id,
            "status": status,
            "finished_at": minutes_from_now(-1),
            "records": {"processed": 10, "failed": 2},
            "error": {"code": "TASK_FAILED", "message": "task failed"}
        }
    })
}

#[tokio::test]
async fn cloudevents_are_signed_per_standard_webhooks_with_a_replay_window() {
    let app = spawn_with(with_sources(format!(
        "[generic]\nwebhook_secret = [\"{WHSEC}\", \"{WHSEC_OLD}\"]\n"
    )))
    .await;
    let url = "/v1/webhooks/cloudevents";

    let one = serde_json::to_vec(&event("evt-1", "r1", "failed")).expect("json");
    let (status, ack) = post(
        &app,
        url,
        &one,
        &standard_headers(WHSEC, "msg_1", unix_now(), &one),
    )
    .await;
    assert_eq!(status, 202, "{ack}");
    let (_, run) = run_of(&app, "airflow:orders", "r1").await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["records"]["failed"], 2);
    assert_eq!(run["error"]["code"], "TASK_FAILED");

    // A batch, signed with the old secret during rotation.
    let batch = serde_json::to_vec(&json!([
        event("evt-2", "r2", "success"),
        event("evt-3", "r3", "success")
    ]))
    .expect("json");
    let (status, ack) = post(
        &app,
        url,
        &batch,
        &standard_headers(WHSEC_OLD, "msg_2", unix_now(), &batch),
    )
    .await;
    assert_eq!((status, ack["accepted"].as_u64()), (202, Some(2)), "{ack}");

    // A captured message replayed after the window is refused…
    let late = serde_json::to_vec(&event("evt-4", "r4", "failed")).expect("json");
    let stale = standard_headers(WHSEC, "msg_4", unix_now() - 6 * 60, &late);
    let (status, answer) = post(&app, url, &late, &stale).await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("5 minutes")),
        "{answer}"
    );
    // …and so are a changed id, a re-serialised body and a missing header.
    let mut forged = standard_headers(WHSEC, "msg_5", unix_now(), &late);
    forged[0].1 = "msg_6".to_owned();
    assert_eq!(post(&app, url, &late, &forged).await.0, 401);
    let pretty = serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&late).expect("json"))
        .expect("json");
    let signed_compact = standard_headers(WHSEC, "msg_7", unix_now(), &late);
    assert_eq!(post(&app, url, &pretty, &signed_compact).await.0, 401);
    let mut missing = standard_headers(WHSEC, "msg_8", unix_now(), &late);
    missing.pop();
    assert_eq!(post(&app, url, &late, &missing).await.0, 401);
    let (status, _) = run_of(&app, "airflow:orders", "r4").await;
    assert_eq!(status, 404, "nothing of a refused message is stored");

    // A signed but invalid event names its fields.
    let mut bad = event("evt-9", "r9", "exploded");
    bad.as_object_mut().expect("object").remove("source");
    let bad = serde_json::to_vec(&bad).expect("json");
    let (status, answer) = post(
        &app,
        url,
        &bad,
        &standard_headers(WHSEC, "msg_9", unix_now(), &bad),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let fields: Vec<&str> = answer["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["source", "data.status"]);
}

#[tokio::test]
async fn bad_sources_stop_start_up_naming_the_key() {
    crate::helpers::install_crypto();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = syncwarden::config::Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database: dir.path().join("db.sqlite").display().to_string(),
        rules: dir.path().join("rules"),
        ..Default::default()
    };
    config.sources =
        toml::from_str("[census]\napi_token = \"t\"\npoll_interval = \"often\"\n").expect("toml");
    let Err(e) = syncwarden::app::App::build(config).await else {
        panic!("a bad poll_interval must stop start-up");
    };
    let message = format!("{e:#}");
    assert!(
        message.contains("sources.census.poll_interval"),
        "{message}"
    );
}
