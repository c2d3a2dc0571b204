//! OpenTelemetry end to end, in a test binary of its own: the global meter
//! and tracer providers and the `tracing` subscriber can be installed only
//! once per process, so every telemetry assertion lives in one test here
//! (the `it` binary never installs them).
//!
//! An in-process OTLP/HTTP receiver (axum on 127.0.0.1:0) decodes the
//! protobuf requests; syncwarden exports to it every 300 ms.

#[allow(dead_code)]
#[path = "it/helpers.rs"]
mod helpers;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use serde_json::json;
use syncwarden::config::TelemetryConfig;
use syncwarden::telemetry::{LogFormat, Telemetry};

use helpers::{Opts, minutes_from_now, spawn_with};

#[derive(Default)]
struct Received {
    metrics: Vec<ExportMetricsServiceRequest>,
    traces: Vec<ExportTraceServiceRequest>,
}

type Shared = Arc<Mutex<Received>>;

async fn metrics_in(
    State(r): State<Shared>,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    let req = ExportMetricsServiceRequest::decode(body).expect("metrics protobuf");
    r.lock().expect("lock").metrics.push(req);
    ([("content-type", "application/x-protobuf")], Vec::new())
}

async fn traces_in(
    State(r): State<Shared>,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    let req = ExportTraceServiceRequest::decode(body).expect("trace protobuf");
    r.lock().expect("lock").traces.push(req);
    ([("content-type", "application/x-protobuf")], Vec::new())
}

/// The receiver's address, what it received, and a stop switch that closes
/// its port (idle keep-alive connections included) and returns once closed.
async fn receiver() -> (
    std::net::SocketAddr,
    Shared,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let shared = Shared::default();
    let app = axum::Router::new()
        .route("/v1/metrics", post(metrics_in))
        .route("/v1/traces", post(traces_in))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let join = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
    });
    (addr, shared, stop, join)
}

fn attr_str(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match &kv.value {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(s)),
            }) => Some(s.clone()),
            _ => None,
        })
}

/// Latest value of each data point of the sum `name`, keyed by its
/// attributes (`k=v,…`). Sums are cumulative: the last export wins.
fn sums(r: &Received, name: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for req in &r.metrics {
        for rm in &req.resource_metrics {
            for sm in &rm.scope_metrics {
                for m in sm.metrics.iter().filter(|m| m.name == name) {
                    if let Some(metric::Data::Sum(sum)) = &m.data {
                        for p in &sum.data_points {
                            let mut keys: Vec<String> = p
                                .attributes
                                .iter()
                                .map(|kv| {
                                    format!(
                                        "{}={}",
                                        kv.key,
                                        attr_str(&p.attributes, &kv.key).unwrap_or_default()
                                    )
                                })
                                .collect();
                            keys.sort();
                            let v = match p.value {
                                Some(number_data_point::Value::AsInt(i)) => i,
                                Some(number_data_point::Value::AsDouble(d)) => d as i64,
                                None => 0,
                            };
                            out.insert(keys.join(","), v);
                        }
                    }
                }
            }
        }
    }
    out
}

fn metric_unit(r: &Received, name: &str) -> Option<String> {
    r.metrics
        .iter()
        .flat_map(|q| &q.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .find(|m| m.name == name)
        .map(|m| m.unit.clone())
}

fn service_names(r: &Received) -> Vec<String> {
    r.metrics
        .iter()
        .flat_map(|q| &q.resource_metrics)
        .filter_map(|rm| rm.resource.as_ref())
        .filter_map(|res| attr_str(&res.attributes, "service.name"))
        .collect()
}

/// (name, trace id hex, parent span id hex) of every received span.
fn spans(r: &Received) -> Vec<(String, String, String)> {
    r.traces
        .iter()
        .flat_map(|q| &q.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| (s.name.clone(), hex(&s.trace_id), hex(&s.parent_span_id)))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn run(sync: &str, run_id: &str, status: &str, failed: u64) -> serde_json::Value {
    json!({
        "sync_id": sync,
        "run_id": run_id,
        "status": status,
        "started_at": minutes_from_now(-3),
        "finished_at": minutes_from_now(-1),
        "source": "census",
        "labels": {"destination": "salesforce"},
        "records": {"processed": 100, "succeeded": 100 - failed, "failed": failed, "invalid": 0}
    })
}

async fn wait_for(shared: &Shared, what: &str, ok: impl Fn(&Received) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if ok(&shared.lock().expect("lock")) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_traces_reach_an_otlp_collector_and_a_dead_one_never_blocks_ingest() {
    helpers::install_crypto();
    let (addr, shared, stop_receiver, receiver_task) = receiver().await;
    let cfg = TelemetryConfig {
        otlp_endpoint: Some(format!("http://{addr}")),
        service_name: Some("syncwarden-test".into()),
        prometheus: true,
        export_interval: Duration::from_millis(300),
        max_sync_ids: 2,
    };
    let telemetry = Telemetry::init(&cfg, LogFormat::Text);
    let app = spawn_with(Opts {
        telemetry: Some(cfg.clone()),
        rules: Some(
            "[[rule]]\nname = \"broken\"\nmatch = { sync = \"census:1\" }\nfire_after = 1\n".into(),
        ),
        ..Opts::default()
    })
    .await;

    // Two runs of one sync (7 + 5 failed records), the second carrying a
    // W3C traceparent.
    let (status, body) = app
        .post_json("/v1/runs", &run("census:1", "r1", "success", 7))
        .await;
    assert_eq!(status, 202, "{body}");
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let resp = app
        .http
        .post(app.url("/v1/runs"))
        .header("traceparent", format!("00-{trace_id}-{parent_span}-01"))
        .json(&run("census:1", "r2", "failed", 5))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 202);
    // A duplicate is not counted; two more syncs exceed max_sync_ids = 2.
    let (status, _) = app
        .post_json("/v1/runs", &run("census:1", "r2", "failed", 5))
        .await;
    assert_eq!(status, 202);
    let (status, _) = app
        .post_json(
            "/v1/runs",
            &json!([
                run("census:2", "a", "success", 0),
                run("census:3", "b", "success", 1)
            ]),
        )
        .await;
    assert_eq!(status, 202);

    // Prometheus text from the same meter provider.
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(text.contains("syncwarden_runs_total{"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("syncwarden_records_failed_total{")
                && l.contains("sync_id=\"census:1\"")
                && l.ends_with(" 12")),
        "{text}"
    );

    // The alert-state gauge, sampled from the store: census:1 is firing.
    let start = std::time::Instant::now();
    loop {
        let text = app
            .http
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        if text.contains("syncwarden_outbox_oldest_age")
            && text.lines().any(|l| {
                l.starts_with("syncwarden_alert_state{")
                    && l.contains("rule=\"broken\"")
                    && l.contains("state=\"firing\"")
                    && l.contains("sync_id=\"census:1\"")
                    && l.ends_with(" 1")
            })
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no firing alert-state series:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    telemetry.flush().await;
    wait_for(&shared, "records.failed = 12 for census:1", |r| {
        sums(r, "syncwarden.records.failed")
            .iter()
            .any(|(k, v)| k.contains("sync_id=census:1") && *v == 12)
    })
    .await;
    wait_for(&shared, "the ingest span of the traceparent", |r| {
        spans(r)
            .iter()
            .any(|(name, t, p)| name == "ingest" && t == trace_id && p == parent_span)
    })
    .await;
    wait_for(&shared, "the store span in the same trace", |r| {
        spans(r)
            .iter()
            .any(|(name, t, _)| name == "store" && t == trace_id)
    })
    .await;
    {
        let r = shared.lock().expect("lock");
        let runs = sums(&r, "syncwarden.runs");
        assert_eq!(
            runs.get("destination=salesforce,source=census,status=success,sync_id=census:1"),
            Some(&1),
            "{runs:#?}"
        );
        assert_eq!(
            runs.get("destination=salesforce,source=census,status=failed,sync_id=census:1"),
            Some(&1),
            "{runs:#?}"
        );
        // The cap: census:3 is the third distinct sync id.
        assert!(
            runs.keys().any(|k| k.contains("sync_id=other")),
            "{runs:#?}"
        );
        assert!(!runs.keys().any(|k| k.contains("census:3")), "{runs:#?}");
        let processed = sums(&r, "syncwarden.records.processed");
        assert_eq!(
            processed.get("destination=salesforce,source=census,sync_id=census:1"),
            Some(&200),
            "{processed:#?}"
        );
        assert_eq!(metric_unit(&r, "syncwarden.runs").as_deref(), Some("{run}"));
        assert_eq!(
            metric_unit(&r, "syncwarden.ingest.duration").as_deref(),
            Some("s")
        );
        assert!(
            service_names(&r).iter().all(|s| s == "syncwarden-test"),
            "{:?}",
            service_names(&r)
        );
    }

    // The collector goes away: ingest still answers at once.
    let _ = stop_receiver.send(());
    tokio::time::timeout(Duration::from_secs(10), receiver_task)
        .await
        .expect("the receiver closes")
        .expect("receiver task");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the collector port is closed"
    );
    for i in 0..20 {
        let started = Instant::now();
        let (status, body) = app
            .post_json(
                "/v1/runs",
                &run("census:1", &format!("late-{i}"), "success", 0),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "ingest took {:?} with the collector down",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut app = app;
    app.shutdown().await;
    let started = Instant::now();
    telemetry.shutdown_async().await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "shutdown took {:?}",
        started.elapsed()
    );
}
