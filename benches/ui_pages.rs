//! Status UI benchmark (issue #8): the fleet, sync and run pages must render
//! in under 50 ms with 1,000 syncs and 1,000,000 stored runs.
//!
//! `cargo bench --bench ui_pages`. The database is seeded through the
//! store's own ingest statements (multi-row inserts, hourly and daily
//! rollups, sync rows) in large transactions — the writer's path without
//! the engine — then the real server is started on it and each page is
//! fetched over HTTP, so a sample is the whole handler: auth and security
//! layers, store reads, template rendering and the response body.
//!
//! `UI_BENCH_SYNCS` and `UI_BENCH_RUNS` shrink the fleet for a quick try.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use syncwarden::app::App;
use syncwarden::config::{Config, EmailChannel};
use syncwarden::evaluate::{AlertKey, AlertState, Cause, Underlying};
use syncwarden::model::{RecordCounts, RecordError, Run, RunError, RunStatus, Timestamp};
use syncwarden::store::alerts::AlertRow;
use syncwarden::store::notices::IncidentRow;
use syncwarden::store::runs::{Derived, Evaluation, NewRun};
use syncwarden::store::syncs::SyncUpdate;
use syncwarden::store::{self, Store};

const INTERVAL_MS: i64 = 15 * 60_000;
const TX_RUNS: usize = 20_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sync_id(i: usize) -> String {
    format!("census:{}", 10_000 + i)
}

/// Run `j` of sync `i`: every 15 minutes, ending now; about 3% fail, and a
/// failed run carries five record errors.
fn make_run(i: usize, j: usize, per_sync: usize, now: Timestamp, rng: &mut fastrand::Rng) -> Run {
    let finished = now.plus_millis(-((per_sync - j) as i64) * INTERVAL_MS - i as i64 * 1000);
    let failed_run = rng.u32(0..100) < 3;
    let processed = rng.u64(1_000..20_000);
    let failed = if failed_run {
        processed / 3
    } else {
        rng.u64(0..20)
    };
    let record_errors = if failed_run {
        (0..5)
            .map(|k| RecordError {
                record_id: Some(format!("rec-{j}-{k}")),
                code: Some("INVALID_EMAIL_ADDRESS".into()),
                message: format!("invalid email address: user{k}@example"),
                field: Some("Email".into()),
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut labels = BTreeMap::new();
    labels.insert(
        "destination".to_string(),
        ["salesforce", "hubspot", "zendesk"][i % 3].to_string(),
    );
    labels.insert("team".to_string(), format!("team-{}", i % 12));
    Run {
        sync_id: sync_id(i),
        run_id: format!("{i}-{j}"),
        status: if failed_run {
            RunStatus::Failed
        } else {
            RunStatus::Success
        },
        finished_at: Some(finished),
        started_at: Some(finished.plus_millis(-240_000)),
        records: RecordCounts {
            processed: Some(processed),
            succeeded: Some(processed - failed),
            failed: Some(failed),
            invalid: Some(0),
        },
        error: failed_run.then(|| RunError {
            code: Some("TOO_MANY_ERRORS".into()),
            message: "Too many records rejected by the destination".into(),
        }),
        record_errors,
        url: Some(format!("https://app.getcensus.com/syncs/{i}/runs/{j}")),
        source: Some("census".into()),
        labels,
    }
}

async fn seed(store: &Store, syncs: usize, runs: usize, now: Timestamp) {
    let per_sync = runs.div_ceil(syncs);
    let mut rng = fastrand::Rng::with_seed(8);
    let started = Instant::now();
    let mut batch: Vec<Run> = Vec::with_capacity(TX_RUNS);
    let mut written = 0usize;
    // Oldest first, round-robin over syncs: the order runs would arrive in.
    for j in 0..per_sync {
        for i in 0..syncs {
            if written + batch.len() >= runs {
                break;
            }
            batch.push(make_run(i, j, per_sync, now, &mut rng));
            if batch.len() == TX_RUNS {
                write(store, &batch, now).await;
                written += batch.len();
                batch.clear();
            }
        }
    }
    if !batch.is_empty() {
        written += batch.len();
        write(store, &batch, now).await;
    }

    // Alert state: one rule over every sync; one in twenty firing, with an
    // incident.
    let mut tx = store.begin().await.expect("begin");
    let mut rows = Vec::new();
    for i in 0..syncs {
        let mut a = AlertState::new(AlertKey::new("bench", &sync_id(i)), now);
        let firing = i % 20 == 0;
        if firing {
            a.state = Underlying::Firing;
            a.cause = Some(Cause::FailedRuns);
            a.bad_streak = 3;
            a.fired_since = Some(now.plus_millis(-3 * INTERVAL_MS));
            store::notices::open_incident(
                &mut tx,
                &IncidentRow {
                    incident_id: format!("inc-{i}"),
                    rule: "bench".into(),
                    sync_id: sync_id(i),
                    cause: Some("failed_runs".into()),
                    state: "firing".into(),
                    held: None,
                    opened_ms: now.0 - INTERVAL_MS,
                    since_ms: now.0 - 3 * INTERVAL_MS,
                    resolved_ms: None,
                    condition: "3 consecutive failed runs (fire_after = 3)".into(),
                },
            )
            .await
            .expect("incident");
        }
        rows.push(AlertRow {
            rule: "bench".into(),
            sync_id: sync_id(i),
            state_name: if firing { "firing" } else { "ok" }.into(),
            state: serde_json::to_string(&a).expect("state JSON"),
        });
    }
    store::alerts::save(&mut tx, &rows, now, 0)
        .await
        .expect("alerts");
    tx.commit().await.expect("commit");
    eprintln!(
        "seeded {syncs} syncs, {written} runs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn write(store: &Store, batch: &[Run], now: Timestamp) {
    let mut tx = store.begin().await.expect("begin");
    let derived: Vec<Derived> = batch
        .iter()
        .map(|run| Derived::of(run).expect("derived columns"))
        .collect();
    let rows: Vec<NewRun> = batch
        .iter()
        .zip(&derived)
        .map(|(run, derived)| NewRun {
            run,
            evaluation: Evaluation::Evaluated,
            derived,
            received: now,
        })
        .collect();
    store::runs::insert(&mut tx, &rows, 1000)
        .await
        .expect("runs");
    let refs: Vec<&Run> = batch.iter().collect();
    store::runs::add_to_rollups(&mut tx, &refs)
        .await
        .expect("rollups");
    let mut newest: BTreeMap<&str, (&Run, i64)> = BTreeMap::new();
    for r in batch {
        let e = newest.entry(r.sync_id.as_str()).or_insert((r, 0));
        e.1 += 1;
        if r.finished_at >= e.0.finished_at {
            e.0 = r;
        }
    }
    let updates: Vec<SyncUpdate> = newest
        .into_iter()
        .map(|(id, (r, n))| SyncUpdate {
            sync_id: id,
            source: r.source.as_deref(),
            newest: r,
            last_evaluated: r.finished_at,
            runs: n,
        })
        .collect();
    store::syncs::upsert(&mut tx, &updates, now, 0)
        .await
        .expect("syncs");
    tx.commit().await.expect("commit");
}

const RULES: &str = r#"
[[rule]]
name = "bench"
match = { sync = "*" }
fire_after = 3

[[sync]]
id = "census:10000"
depends_on = ["census:10001"]
owner = "growth@example.com"
"#;

struct Server {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

async fn start(syncs: usize, runs: usize) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("bench.db").display().to_string();
    let now = Timestamp::now();
    {
        let store = Store::open(&db).await.expect("store");
        seed(&store, syncs, runs, now).await;
        store.close().await;
    }
    std::fs::create_dir_all(dir.path().join("rules")).expect("rules dir");
    std::fs::write(dir.path().join("rules/bench.toml"), RULES).expect("rules");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database: db,
        rules: dir.path().join("rules"),
        templates: dir.path().join("no-templates"),
        ..Config::default()
    };
    config.api.requests_per_second = 0;
    config.channels.email.insert(
        "default".into(),
        EmailChannel {
            outbox_dir: dir.path().join("outbox"),
            ..Default::default()
        },
    );
    let app = App::build(config).await.expect("app");
    let base = format!("http://{}", app.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    Server {
        base,
        stop: Some(stop),
        _dir: dir,
    }
}

fn bench_pages(c: &mut Criterion) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let syncs = env_usize("UI_BENCH_SYNCS", 1_000);
    let runs = env_usize("UI_BENCH_RUNS", 1_000_000);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut server = rt.block_on(start(syncs, runs));
    let http = reqwest::Client::new();
    let per_sync = runs.div_ceil(syncs);
    let pages = [
        ("fleet", "/".to_string()),
        // The same reads with less to render: what the data costs.
        ("fleet, 50 firing", "/?state=firing".to_string()),
        ("fleet, no match", "/?q=no-such-sync".to_string()),
        ("sync", "/syncs/census:10000".to_string()),
        (
            "sync, older page",
            format!("/syncs/census:10000?before={}.1", i64::MAX),
        ),
        ("run", format!("/runs/census:10000/0-{}", per_sync - 1)),
        ("incidents", "/incidents".to_string()),
    ];
    let fetch = |path: &str| {
        let url = format!("{}{path}", server.base);
        rt.block_on(async {
            let resp = http.get(&url).send().await.expect("request");
            assert!(resp.status().is_success(), "{url}: {}", resp.status());
            resp.bytes().await.expect("body").len()
        })
    };
    // A plain summary first (percentiles are what the target is about).
    for (name, path) in &pages {
        let bytes = fetch(path);
        let mut samples: Vec<Duration> = (0..50)
            .map(|_| {
                let t = Instant::now();
                black_box(fetch(path));
                t.elapsed()
            })
            .collect();
        samples.sort();
        eprintln!(
            "{name:>16}: p50 {:>6.2} ms  p95 {:>6.2} ms  max {:>6.2} ms  ({} KiB)",
            samples[25].as_secs_f64() * 1e3,
            samples[47].as_secs_f64() * 1e3,
            samples[49].as_secs_f64() * 1e3,
            bytes / 1024
        );
    }
    let mut g = c.benchmark_group(format!("ui_pages/{syncs}_syncs_{runs}_runs"));
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(5));
    for (name, path) in &pages {
        g.bench_function(*name, |b| b.iter(|| black_box(fetch(path))));
    }
    g.finish();
    if let Some(stop) = server.stop.take() {
        let _ = stop.send(());
    }
}

criterion_group!(benches, bench_pages);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
