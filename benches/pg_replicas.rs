//! One PostgreSQL database, one and three `syncwarden serve` replicas.
//!
//! `SYNCWARDEN_BENCH_PG=postgres://…/postgres cargo bench --bench pg_replicas`
//! (an admin URL: each phase creates its own database there and drops it
//! afterwards; needs python3 with aiosmtpd). Without the variable the bench
//! says it was skipped. For 1 and 3 replicas of the release binary, the
//! load spread round-robin over the replicas:
//!
//! 1. **batched**: 8 keep-alive connections POST 100-run batches (the
//!    generator of `support`, the shipped rules) for a fixed time; runs/s
//!    and batch latency.
//! 2. **single**: 32 keep-alive connections POST one run each; requests/s,
//!    p50/p99.
//! 3. **POST → SMTP**: fresh servers with a `fire_after = 1` rule and one
//!    email channel to a real SMTP server; one failing run of a new sync at
//!    a time, each to the next replica, timed until the message arrives
//!    (whichever replica delivers it); p50/p99.
//!
//! Prints a table; `SYNCWARDEN_BENCH_APPEND=1` also appends it to
//! `BENCHMARKS.md`.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{RunGen, Server, percentile};

const SYNCS: u64 = 1000;
const BATCH: usize = 100;
const BATCH_CONNECTIONS: usize = 8;
const SINGLE_CONNECTIONS: usize = 32;
const PHASE: Duration = Duration::from_secs(6);
const PHASES: support::Phase = support::Phase {
    warmup: Duration::from_secs(1),
    measure: PHASE,
};
const LATENCY_SAMPLES: usize = 200;
/// The first messages open SMTP connections: not counted.
const LATENCY_WARMUP: usize = 20;

struct Figures {
    replicas: usize,
    batched_runs_s: f64,
    batch_p50: f64,
    batch_p99: f64,
    single_req_s: f64,
    single_p50: f64,
    single_p99: f64,
    cpu_per_krun: f64,
    smtp_p50: f64,
    smtp_p99: f64,
}

fn main() {
    let Some(admin) = std::env::var("SYNCWARDEN_BENCH_PG")
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        println!(
            "pg_replicas: skipped: SYNCWARDEN_BENCH_PG not set (admin URL of a throwaway PostgreSQL cluster)"
        );
        return;
    };
    let (mut report, rt) = support::start("pg_replicas");
    let mut rows = Vec::new();
    // 0 replicas stands for the SQLite baseline: one server on a file, the
    // same load in the same run.
    for replicas in [0, 1, 3] {
        let (batched, single, cpu_per_krun) = rt.block_on(ingest(&admin, replicas));
        let smtp = rt.block_on(latency(&admin, replicas));
        rows.push(Figures {
            replicas,
            batched_runs_s: batched.0,
            batch_p50: percentile(&batched.1, 0.5),
            batch_p99: percentile(&batched.1, 0.99),
            single_req_s: single.0,
            single_p50: percentile(&single.1, 0.5),
            single_p99: percentile(&single.1, 0.99),
            cpu_per_krun,
            smtp_p50: percentile(&smtp, 0.5),
            smtp_p99: percentile(&smtp, 0.99),
        });
    }
    report.line(format!(
        "load spread round-robin over the replicas; batched: {BATCH_CONNECTIONS} connections × \
         {BATCH}-run batches; single: {SINGLE_CONNECTIONS} connections × 1 run; {} s per phase; \
         POST→SMTP over {LATENCY_SAMPLES} firing notices",
        PHASE.as_secs()
    ));
    report.line(
        "| store, replicas | batched runs/s | batch p50 / p99 ms | single req/s | single p50 / p99 ms | \
         syncwarden CPU ms per 1k runs | POST→SMTP p50 / p99 ms |",
    );
    report.line("|---|---|---|---|---|---|---|");
    for f in &rows {
        report.line(format!(
            "| {} | {:.0} | {:.2} / {:.2} | {:.0} | {:.2} / {:.2} | {:.0} | {:.2} / {:.2} |",
            match f.replicas {
                0 => "SQLite, 1".to_string(),
                n => format!("PostgreSQL, {n}"),
            },
            f.batched_runs_s,
            f.batch_p50,
            f.batch_p99,
            f.single_req_s,
            f.single_p50,
            f.single_p99,
            f.cpu_per_krun,
            f.smtp_p50,
            f.smtp_p99,
        ));
    }
    report.line(format!(
        "load average during the run: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    ));
    report.append_if_asked();
}

/// A database of its own on the admin URL's cluster; dropped by `drop_db`.
struct BenchDb {
    admin: sqlx::PgPool,
    name: String,
    url: String,
}

impl BenchDb {
    async fn create(admin_url: &str, label: &str) -> BenchDb {
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to SYNCWARDEN_BENCH_PG: {e}"));
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!(
            "syncwarden_bench_{label}_{}_{}",
            std::process::id(),
            nanos % 1_000_000_000
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let url = database_url(admin_url, &name);
        BenchDb { admin, name, url }
    }

    async fn drop_db(self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.admin)
            .await
        {
            eprintln!("pg_replicas: could not drop {}: {e}", self.name);
        }
        self.admin.close().await;
    }
}

/// `admin` with its database name replaced by `name` (query kept).
fn database_url(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority..].find('/') {
        Some(i) => &base[..authority + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// `n` replicas on `database`, each in its own directory under `root` with
/// its own port and config (`extra` appended), all ready.
fn replicas(root: &Path, n: usize, database: &str, rules: &Path, extra: &str) -> Vec<Server> {
    let servers: Vec<Server> = (0..n)
        .map(|i| {
            let dir = root.join(format!("replica-{i}"));
            std::fs::create_dir_all(&dir).expect("replica dir");
            let port = support::free_port();
            let extra = extra.replace("{dir}", &dir.display().to_string());
            let config = support::write_config_db(&dir, port, database, rules, &extra);
            support::spawn(&config, port)
        })
        .collect();
    for s in &servers {
        support::wait_ready(s);
    }
    servers
}

/// Phases 1 and 2 on `n` replicas: ((runs/s, batch latencies),
/// (requests/s, latencies), syncwarden CPU ms per 1,000 runs of phase 1).
/// The database of a phase: a fresh PostgreSQL database, or for `n == 0`
/// a SQLite file in `root` (one server).
async fn database(admin: &str, label: &str, n: usize, root: &Path) -> (String, Option<BenchDb>) {
    if n == 0 {
        return (root.join("bench.db").display().to_string(), None);
    }
    let db = BenchDb::create(admin, label).await;
    (db.url.clone(), Some(db))
}

async fn ingest(admin: &str, n: usize) -> ((f64, Vec<f64>), (f64, Vec<f64>), f64) {
    let root = tempfile::tempdir().expect("tempdir");
    let (url, db) = database(admin, &format!("ingest{n}"), n, root.path()).await;
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    // Notices the shipped rules raise go to `.eml` files in each replica's
    // directory.
    let servers = replicas(
        root.path(),
        n.max(1),
        &url,
        &rules,
        "[channels.email.default]\noutbox_dir = \"{dir}/outbox\"\n",
    );
    let gen_ = Arc::new(RunGen::new(SYNCS));
    let next = Arc::new(AtomicU64::new(0));
    let cpu =
        |servers: &[Server]| -> f64 { servers.iter().map(|s| support::cpu_seconds(s.pid())).sum() };
    let (cpu0, n0) = (cpu(&servers), next.load(Ordering::Relaxed));
    let batched = support::load(
        &servers,
        gen_.clone(),
        next.clone(),
        BATCH_CONNECTIONS,
        BATCH,
        PHASES,
    )
    .await;
    let (cpu1, n1) = (cpu(&servers), next.load(Ordering::Relaxed));
    let cpu_per_krun = (cpu1 - cpu0) * 1e3 / ((n1 - n0) as f64 / 1e3).max(0.001);
    let single = support::load(&servers, gen_, next, SINGLE_CONNECTIONS, 1, PHASES).await;
    for s in servers {
        s.stop();
    }
    if let Some(db) = db {
        db.drop_db().await;
    }
    (batched, single, cpu_per_krun)
}

/// Phase 3 on `n` replicas: sorted POST → SMTP latencies (ms).
async fn latency(admin: &str, n: usize) -> Vec<f64> {
    let sink = support::start_sink();
    let root = tempfile::tempdir().expect("tempdir");
    let (url, db) = database(admin, &format!("latency{n}"), n, root.path()).await;
    let rules = root.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("r.toml"),
        "[[rule]]\nname = \"broken\"\nmatch = { sync = \"*\" }\nfire_after = 1\n",
    )
    .expect("rules");
    let channel = format!(
        "[channels.email.default]\nsmtp_url = \"smtp://127.0.0.1:{}?tls=none\"\nto = [\"oncall@example.com\"]\n",
        sink.port
    );
    let servers = replicas(root.path(), n.max(1), &url, &rules, &channel);
    let http = support::client();
    let finished = syncwarden::model::Timestamp::now()
        .plus_millis(-60_000)
        .to_rfc3339();
    let mut latencies = Vec::with_capacity(LATENCY_SAMPLES);
    for i in 0..LATENCY_SAMPLES + LATENCY_WARMUP {
        let body = serde_json::json!({
            "sync_id": format!("latency_{i}"), "run_id": "1", "status": "failed",
            "finished_at": finished,
        });
        let t0 = support::now_ns();
        let resp = http
            .post(servers[i % servers.len()].url("/v1/runs"))
            .json(&body)
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status(), 202);
        let deadline = Instant::now() + Duration::from_secs(10);
        let arrived = loop {
            let r = support::received(&sink);
            if r.len() > i {
                break r[i];
            }
            assert!(
                Instant::now() < deadline,
                "message {i} never arrived ({n} replicas)"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        if i >= LATENCY_WARMUP {
            latencies.push(arrived.saturating_sub(t0) as f64 / 1e6);
        }
    }
    for s in servers {
        s.stop();
    }
    if let Some(db) = db {
        db.drop_db().await;
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    latencies
}
