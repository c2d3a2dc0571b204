//! Ingest throughput of the whole process over HTTP, beside the physical
//! bound measured in the same run.
//!
//! `cargo bench --bench ingest_http` builds the release binary, starts
//! `syncwarden serve` on a temp dir (rate limit off, the shipped rules) and:
//!
//! 1. **batched**: 8 keep-alive connections POST batches of 100 runs (5
//!    record errors each, unique run ids, 1,000 syncs, `finished_at`
//!    increasing) for a fixed time; runs/s and batch latency.
//! 2. **single**: 32 keep-alive connections POST one run each; requests/s,
//!    p50/p99 (reqwest generator; with `wrk` installed also `wrk -t2 -c32`).
//! 3. **wrk -t2 -c8** with 100-run batches, and the same wrk shape against
//!    Alertmanager (`/usr/bin/prometheus-alertmanager`, in memory) posting
//!    100-alert batches, when both are installed.
//! 4. **bound**: the same rows (runs + record errors + hourly rollups, the
//!    crate's migrations, WAL + synchronous=NORMAL) inserted straight into a
//!    fresh SQLite file with sqlx `push_values`, one transaction per batch.
//!
//! Loopback only; every phase is bounded in time. Prints the figures;
//! `SYNCWARDEN_BENCH_APPEND=1` also appends them to `BENCHMARKS.md`.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::{QueryBuilder, Sqlite};
use support::{ERRORS_PER_RUN, RunGen, percentile};

const SYNCS: u64 = 1000;
const BATCH: usize = 100;
const BATCH_CONNECTIONS: usize = 8;
const SINGLE_CONNECTIONS: usize = 32;
const PHASE: Duration = Duration::from_secs(6);
const WARMUP: Duration = Duration::from_secs(1);
const PHASES: support::Phase = support::Phase {
    warmup: WARMUP,
    measure: PHASE,
};
const BOUND_BATCHES: u64 = 2_000;

fn main() {
    let (mut report, rt) = support::start("ingest_http");

    let dir = tempfile::tempdir().expect("tempdir");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let port = support::free_port();
    let db = dir.path().join("ingest.db");
    let config = support::write_config(dir.path(), port, &db, &rules, "");
    let server = support::spawn(&config, port);
    support::wait_ready(&server);
    let gen_ = Arc::new(RunGen::new(SYNCS));
    let next = Arc::new(AtomicU64::new(0));

    // 1. Batched. The server's CPU time per run is a figure that does not
    // depend on what else the machine runs.
    let (cpu0, n0) = (
        support::cpu_seconds(server.pid()),
        next.load(Ordering::Relaxed),
    );
    let (runs_s, lat) = rt.block_on(support::load(
        std::slice::from_ref(&server),
        gen_.clone(),
        next.clone(),
        BATCH_CONNECTIONS,
        BATCH,
        PHASES,
    ));
    let (cpu1, n1) = (
        support::cpu_seconds(server.pid()),
        next.load(Ordering::Relaxed),
    );
    let ingest_per_cpu = (n1 - n0) as f64 / (cpu1 - cpu0).max(0.01);
    report.line(format!(
        "batched: {BATCH_CONNECTIONS} connections × {BATCH}-run batches ({ERRORS_PER_RUN} record errors each): \
         {runs_s:.0} runs/s ({:.0} batches/s), batch latency p50 {:.2} ms, p99 {:.2} ms (target 40,000 runs/s)",
        runs_s / BATCH as f64,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
    ));
    report.line(format!(
        "batched: server CPU {:.2} s for {} runs: {ingest_per_cpu:.0} runs per CPU-second",
        cpu1 - cpu0,
        n1 - n0
    ));

    // 2. Single runs.
    let (req_s, lat) = rt.block_on(support::load(
        std::slice::from_ref(&server),
        gen_.clone(),
        next.clone(),
        SINGLE_CONNECTIONS,
        1,
        PHASES,
    ));
    report.line(format!(
        "single (reqwest): {SINGLE_CONNECTIONS} keep-alive connections × 1 run: {req_s:.0} req/s, \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target ≥ 5,000/s, p99 ≤ 20 ms)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or_default(),
    ));

    // 3. wrk shapes.
    let wrk = which("wrk");
    if wrk {
        let script = lua_script(dir.path(), "single");
        if let Some(w) = run_wrk(2, SINGLE_CONNECTIONS, &script, &server.url("/v1/runs")) {
            report.line(format!(
                "single (wrk -t2 -c{SINGLE_CONNECTIONS}): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, non-2xx {}",
                w.req_s, w.p50_ms, w.p99_ms, w.non_2xx
            ));
        }
        let script = lua_script(dir.path(), "runs");
        if let Some(w) = run_wrk(2, 8, &script, &server.url("/v1/runs")) {
            report.line(format!(
                "batched (wrk -t2 -c8, {BATCH}-run batches): {:.0} runs/s, batch p50 {:.2} ms, p99 {:.2} ms, non-2xx {}",
                w.req_s * BATCH as f64,
                w.p50_ms,
                w.p99_ms,
                w.non_2xx
            ));
            report.line(format!(
                "syncwarden RSS after the load: {:.1} MiB (peak {:.1} MiB)",
                support::rss_mib(server.pid()).0,
                support::rss_mib(server.pid()).1
            ));
        }
    } else {
        report.line("wrk not installed: wrk figures and the Alertmanager comparison skipped");
    }
    let stored = rt.block_on(count_runs(&db));
    report.line(format!("runs stored by syncwarden in this run: {stored}"));
    server.stop();

    if wrk {
        match alertmanager(dir.path()) {
            Some((alerts_s, rss)) => report.line(format!(
                "alertmanager (wrk -t2 -c8, {BATCH}-alert batches, in memory): {alerts_s:.0} alerts/s, RSS after {:.1} MiB",
                rss
            )),
            None => report.line(
                "alertmanager not installed: compare with the 35,000 alerts/s reference measured on this machine",
            ),
        }
    }

    // 4. The physical bound, same rows, same kind of file.
    let me = std::process::id();
    let cpu0 = support::cpu_seconds(me);
    let bound = rt.block_on(bound(dir.path(), &gen_));
    let bound_per_cpu =
        (BOUND_BATCHES * BATCH as u64) as f64 / (support::cpu_seconds(me) - cpu0).max(0.01);
    report.line(format!(
        "bound: raw sqlx push_values, one transaction per {BATCH}-run batch (runs + record errors + rollups): \
         {bound:.0} runs/s, {bound_per_cpu:.0} runs per CPU-second"
    ));
    report.line(format!(
        "ratio: batched ingest / bound = {:.2} (target ≥ 0.5); per CPU-second {:.2}",
        runs_s / bound,
        ingest_per_cpu / bound_per_cpu
    ));
    report.line(format!(
        "load average during the run: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    ));
    report.append_if_asked();
}

fn which(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn count_runs(db: &Path) -> i64 {
    let pool = support::open_db(db, true).await;
    let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM runs")
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n.0
}

/// A wrk script posting `kind` bodies: `single` (one run), `runs` (100-run
/// batches) or `alerts` (100-alert batches for Alertmanager). Run ids are
/// unique per thread and request; `finished_at` increases.
fn lua_script(dir: &Path, kind: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{kind}.lua"));
    let per = if kind == "single" { 1 } else { BATCH };
    // wrk's threads are separate Lua states: `setup` gives each an id.
    // After the reqwest phases' runs (which end well before now), the
    // batched wrk phase after the single one, each a run per ms per thread:
    // in order, recent, and in the past for any plausible rate.
    let now_s = syncwarden::model::Timestamp::now().0 / 1000;
    let base_s = if kind == "runs" {
        now_s - 200
    } else {
        now_s - 270
    };
    let script = format!(
        r#"
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
local counter = 0
local kind = "{kind}"
local per = {per}
local base = {base_s}
local function ts(ms)
  return os.date("!%Y-%m-%dT%H:%M:%S", base + math.floor(ms / 1000)) .. string.format(".%03dZ", ms % 1000)
end
local function run(n)
  local id = tid .. "-" .. n
  local sync = string.format("warehouse_to_crm_%04d", n % {SYNCS})
  local failed = (n % 50 == 7)
  local errs = {{}}
  for e = 0, {errors} do
    errs[#errs + 1] = string.format('{{"record_id":"%s-%d","code":"INVALID_EMAIL","message":"invalid email address: user%sx%d@example","field":"email"}}', id, e, id, e)
  end
  local ms = n + tid
  local err = ""
  if failed then err = '"error":{{"code":"DEST_TIMEOUT","message":"destination timed out after 30s"}},' end
  return string.format('{{"sync_id":"%s","run_id":"wrk-{kind}-%s","status":"%s","finished_at":"%s","started_at":"%s","records":{{"processed":1000,"succeeded":995,"failed":5,"invalid":0}},%s"record_errors":[%s],"source":"census","labels":{{"team":"growth"}}}}',
    sync, id, failed and "failed" or "success", ts(ms), ts(ms), err, table.concat(errs, ","))
end
local function alert(n)
  local id = tid .. "-" .. n
  return string.format('{{"labels":{{"alertname":"SyncBroken","sync_id":"warehouse_to_crm_%04d","run":"%s","severity":"page"}},"annotations":{{"summary":"sync failed: destination timed out after 30s"}},"startsAt":"%s","generatorURL":"http://127.0.0.1/x"}}',
    n % {SYNCS}, id, ts(n * 2 + tid))
end
request = function()
  local parts = {{}}
  for i = 1, per do
    counter = counter + 1
    if kind == "alerts" then parts[i] = alert(counter) else parts[i] = run(counter) end
  end
  local body
  if kind == "single" then body = parts[1] else body = "[" .. table.concat(parts, ",") .. "]" end
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, body)
end
"#,
        errors = ERRORS_PER_RUN - 1,
    );
    std::fs::write(&path, script).expect("lua script");
    path
}

struct Wrk {
    req_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

fn run_wrk(threads: usize, conns: usize, script: &Path, url: &str) -> Option<Wrk> {
    let out = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{}s", PHASE.as_secs()))
        .arg("--timeout")
        .arg("10s")
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let ms = |v: &str| -> f64 {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
        let n: f64 = num.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n / 1e3,
            "ms" => n,
            "s" => n * 1e3,
            "m" => n * 60e3,
            _ => n,
        }
    };
    let mut w = Wrk {
        req_s: 0.0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        non_2xx: 0,
    };
    for line in text.lines() {
        let t = line.trim();
        let f: Vec<&str> = t.split_whitespace().collect();
        if t.starts_with("Requests/sec:") {
            w.req_s = f.get(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        } else if t.starts_with("50%") {
            w.p50_ms = f.get(1).map(|v| ms(v)).unwrap_or(f64::NAN);
        } else if t.starts_with("99%") {
            w.p99_ms = f.get(1).map(|v| ms(v)).unwrap_or(f64::NAN);
        } else if t.starts_with("Non-2xx") {
            w.non_2xx = f.last().and_then(|v| v.parse().ok()).unwrap_or(0);
        }
    }
    if w.req_s == 0.0 {
        eprintln!("wrk output not understood:\n{text}");
        return None;
    }
    Some(w)
}

/// Alertmanager on loopback, in memory, driven by the same wrk shape.
/// Returns alerts/s and its RSS after the load.
fn alertmanager(dir: &Path) -> Option<(f64, f64)> {
    let bin = ["/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let cfg = dir.join("am.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: blackhole\n  group_by: ['sync_id']\nreceivers:\n  - name: blackhole\n",
    )
    .ok()?;
    let port = support::free_port();
    let storage = dir.join("am-data");
    let mut child = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let ok = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if ok || Instant::now() > deadline {
            break ok;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let result = if ready {
        std::thread::sleep(Duration::from_millis(300));
        let script = lua_script(dir, "alerts");
        run_wrk(
            2,
            8,
            &script,
            &format!("http://127.0.0.1:{port}/api/v2/alerts"),
        )
        .map(|w| (w.req_s * BATCH as f64, support::rss_mib(child.id()).0))
    } else {
        None
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Inserts `BOUND_BATCHES` batches of the generator's rows straight into a
/// fresh database (the crate's schema), one transaction per batch: runs
/// with their ids back, their record errors, and the hourly rollups.
/// Hand-written SQL on purpose, not `store::runs`: the bound is what
/// SQLite alone allows, which the store's own path is compared against.
async fn bound(dir: &Path, gen_: &RunGen) -> f64 {
    let path = dir.join("bound.db");
    let store = syncwarden::store::Store::open(&path.display().to_string())
        .await
        .expect("open bound db");
    let now = syncwarden::model::Timestamp::now().0;
    let start = Instant::now();
    for b in 0..BOUND_BATCHES {
        let first = b * BATCH as u64;
        let ns: Vec<u64> = (first..first + BATCH as u64).collect();
        let syncwarden::store::WriteTx::Sqlite(mut tx) = store.begin().await.expect("begin") else {
            panic!("the raw-SQLite bound needs a SQLite store");
        };
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO runs (sync_id, run_id, status, finished_ms, started_ms, processed, \
             succeeded, failed, invalid, error_code, error_message, url, source, labels, \
             record_errors_total, record_errors_stored, error_classes, received_ms, evaluation) ",
        );
        qb.push_values(&ns, |mut q, &n| {
            let failed = RunGen::failed(n);
            let fin = gen_.finished_ms(n);
            q.push_bind(gen_.sync_id(n))
                .push_bind(format!("run-{n}"))
                .push_bind(if failed { "failed" } else { "success" })
                .push_bind(fin)
                .push_bind(fin - 60_000);
            support::push_record_counts(&mut q);
            q.push_bind(failed.then_some("DEST_TIMEOUT"))
                .push_bind(failed.then_some("destination timed out after 30s"))
                .push_bind(None::<String>)
                .push_bind("census")
                .push_bind("{\"team\":\"growth\"}")
                .push_bind(ERRORS_PER_RUN as i64)
                .push_bind(ERRORS_PER_RUN as i64)
                .push_bind("[{\"signature\":\"INVALID_EMAIL: invalid email address: <email>\",\"count\":5}]")
                .push_bind(now)
                .push_bind("evaluated");
        });
        qb.push(" RETURNING id");
        let ids: Vec<(i64,)> = qb
            .build_query_as()
            .fetch_all(&mut *tx)
            .await
            .expect("insert runs");
        let errors: Vec<(i64, u64, usize)> = ids
            .iter()
            .zip(&ns)
            .flat_map(|(id, &n)| (0..ERRORS_PER_RUN).map(move |e| (id.0, n, e)))
            .collect();
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO record_errors (run_pk, seq, record_id, code, message, field) ",
        );
        qb.push_values(&errors, |mut q, &(id, n, e)| {
            q.push_bind(id)
                .push_bind(e as i64)
                .push_bind(format!("{n}-{e}"))
                .push_bind("INVALID_EMAIL")
                .push_bind(format!("invalid email address: user{n}x{e}@example"))
                .push_bind("email");
        });
        qb.build()
            .execute(&mut *tx)
            .await
            .expect("insert record errors");
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO sync_hourly (sync_id, hour_ms, runs, runs_success, runs_failed, \
             runs_cancelled, processed, succeeded, failed, invalid) ",
        );
        qb.push_values(&ns, |mut q, &n| {
            let failed = RunGen::failed(n) as i64;
            let hour = gen_.finished_ms(n).div_euclid(3_600_000) * 3_600_000;
            q.push_bind(gen_.sync_id(n))
                .push_bind(hour)
                .push_bind(1_i64)
                .push_bind(1 - failed)
                .push_bind(failed)
                .push_bind(0_i64);
            support::push_record_counts(&mut q);
        });
        qb.push(
            " ON CONFLICT (sync_id, hour_ms) DO UPDATE SET runs = runs + excluded.runs, \
             runs_success = runs_success + excluded.runs_success, \
             runs_failed = runs_failed + excluded.runs_failed, \
             processed = processed + excluded.processed, \
             succeeded = succeeded + excluded.succeeded, \
             failed = failed + excluded.failed",
        );
        qb.build().execute(&mut *tx).await.expect("rollups");
        tx.commit().await.expect("commit");
    }
    let elapsed = start.elapsed().as_secs_f64();
    store.close().await;
    (BOUND_BATCHES * BATCH as u64) as f64 / elapsed
}
