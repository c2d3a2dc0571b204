//! Memory and start-up of the whole process (release binary).
//!
//! `cargo bench --bench footprint`:
//!
//! 1. **idle**: `serve` on an empty database; `VmRSS` once `/readyz` is 200
//!    and after a second of idling. Target ≤ 20 MB.
//! 2. **10,000 syncs, 10,000 firing alerts**: failing runs posted for 10,000
//!    syncs under a `fire_after = 1` rule with an email channel writing
//!    `.eml` files, until the outbox has drained; RSS of that process, and
//!    of a fresh process restarted on that database. Target ≤ 80 MB.
//! 3. **start-up with 1,000,000 stored runs**: the runs are bulk-inserted
//!    into the same database (the crate's schema); time from spawn to the
//!    first `/readyz` 200, beside the same on an empty database (process and
//!    exec cost). Target ≤ 200 ms.
//!
//! Prints the figures; `SYNCWARDEN_BENCH_APPEND=1` also appends them to
//! `BENCHMARKS.md`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::{QueryBuilder, Sqlite};
use support::RunGen;

const SYNCS: u64 = 10_000;
const STORED_RUNS: u64 = 1_000_000;
const STARTS: usize = 5;

fn main() {
    let (mut report, rt) = support::start("footprint");
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(
        rules.join("r.toml"),
        "[[rule]]\nname = \"broken\"\nmatch = { sync = \"*\" }\nfire_after = 1\n\
         notify = [\"email:default\"]\n",
    )
    .expect("rules");
    let outbox = dir.path().join("outbox");
    let extra = format!(
        "[channels.email.default]\noutbox_dir = \"{}\"\nto = [\"oncall@example.com\"]\n",
        outbox.display()
    );

    // Empty-database start-up (process + exec + migrations), and idle RSS.
    let mut empty_starts = Vec::new();
    let mut idle = (0.0, 0.0);
    for i in 0..STARTS {
        let sub = dir.path().join(format!("empty{i}"));
        std::fs::create_dir_all(&sub).expect("dir");
        let port = support::free_port();
        let config = support::write_config(&sub, port, &sub.join("e.db"), &rules, &extra);
        let server = support::spawn(&config, port);
        empty_starts.push(support::wait_ready(&server).as_secs_f64() * 1e3);
        if i == 0 {
            let ready = support::rss_mib(server.pid());
            std::thread::sleep(Duration::from_secs(1));
            let after = support::rss_mib(server.pid());
            report.line(format!(
                "idle RSS: {:.1} MiB at ready, {:.1} MiB after 1 s (peak {:.1} MiB) (target ≤ 20 MB)",
                ready.0, after.0, after.1
            ));
            idle = after;
        }
        server.stop();
    }
    let _ = idle;

    // 10,000 syncs with a firing alert each.
    let db = dir.path().join("fleet.db");
    let port = support::free_port();
    let config = support::write_config(dir.path(), port, &db, &rules, &extra);
    let server = support::spawn(&config, port);
    support::wait_ready(&server);
    let gen_ = RunGen::new(SYNCS);
    let seeded = Instant::now();
    rt.block_on(support::post_failing_runs(&server, &gen_, SYNCS));
    let posted = seeded.elapsed();
    let (firing, pending) = rt.block_on(wait_outbox(&db, Duration::from_secs(30)));
    report.line(format!(
        "seeded {SYNCS} syncs in {:.2} s; {firing} firing alerts; outbox drained in {:.2} s ({pending} deliveries left)",
        posted.as_secs_f64(),
        seeded.elapsed().as_secs_f64()
    ));
    std::thread::sleep(Duration::from_secs(1));
    let live = support::rss_mib(server.pid());
    report.line(format!(
        "RSS with {SYNCS} syncs and {firing} firing alerts (the process that took them): {:.1} MiB (peak {:.1} MiB) (target ≤ 80 MB)",
        live.0, live.1
    ));
    server.stop();
    // Restarts on that database: start-up with the alert states and no
    // history yet, and the RSS of a process that loaded them.
    let mut alert_starts = Vec::new();
    let mut restarted = (0.0, 0.0);
    for _ in 0..STARTS {
        let server = support::spawn(&config, port);
        alert_starts.push(support::wait_ready(&server).as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_secs(1));
        restarted = support::rss_mib(server.pid());
        server.stop();
    }
    report.line(format!(
        "RSS with {SYNCS} syncs and {firing} firing alerts (restarted on that database): {:.1} MiB (peak {:.1} MiB) (target ≤ 80 MB)",
        restarted.0, restarted.1
    ));

    // 1,000,000 stored runs beside those alerts.
    let t = Instant::now();
    rt.block_on(seed_runs(&db, &gen_));
    report.line(format!(
        "bulk-inserted {STORED_RUNS} runs in {:.1} s; database {:.0} MiB",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0
    ));
    let mut full_starts = Vec::new();
    let mut full_rss = (0.0, 0.0);
    for _ in 0..STARTS {
        let server = support::spawn(&config, port);
        full_starts.push(support::wait_ready(&server).as_secs_f64() * 1e3);
        full_rss = support::rss_mib(server.pid());
        server.stop();
    }
    let empty = support::median(&mut empty_starts);
    let alerts = support::median(&mut alert_starts);
    let full = support::median(&mut full_starts);
    report.line(format!(
        "start-up to /readyz 200, median of {STARTS}: empty database {empty:.1} ms; \
         {SYNCS} syncs + {firing} alert states {alerts:.1} ms; \
         the same + {STORED_RUNS} runs {full:.1} ms \
         (history adds {:.1} ms; all: {:?}) (target ≤ 200 ms)",
        full - alerts,
        full_starts
            .iter()
            .map(|v| (v * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    ));
    report.line(format!(
        "RSS at ready with {STORED_RUNS} runs stored: {:.1} MiB",
        full_rss.0
    ));
    report.append_if_asked();
}

/// Waits until no delivery is pending; returns (firing alerts, deliveries
/// still pending).
async fn wait_outbox(db: &Path, limit: Duration) -> (i64, i64) {
    let pool = support::open_db(db, true).await;
    let deadline = Instant::now() + limit;
    let pending = loop {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'sending')",
        )
        .fetch_one(&pool)
        .await
        .expect("count deliveries");
        if n == 0 || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (firing,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM alerts WHERE state_name = 'firing'")
            .fetch_one(&pool)
            .await
            .expect("count alerts");
    pool.close().await;
    (firing, pending)
}

/// Bulk-inserts `STORED_RUNS` finished runs of the seeded syncs, older than
/// everything evaluated, in 100,000-run transactions.
async fn seed_runs(db: &Path, gen_: &RunGen) {
    let pool = support::open_db(db, false).await;
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&pool)
        .await
        .expect("wal");
    const ROWS: u64 = 1_500; // 19 columns: under SQLite's 32,766 parameters
    let mut n = 0;
    while n < STORED_RUNS {
        let mut tx = pool.begin().await.expect("begin");
        let tx_end = (n + 100_000).min(STORED_RUNS);
        while n < tx_end {
            let end = (n + ROWS).min(tx_end);
            let ns: Vec<u64> = (n..end).collect();
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO runs (sync_id, run_id, status, finished_ms, started_ms, processed, \
                 succeeded, failed, invalid, error_code, error_message, url, source, labels, \
                 record_errors_total, record_errors_stored, error_classes, received_ms, evaluation) ",
            );
            qb.push_values(&ns, |mut q, &n| {
                // Before the seeded failing runs: history, already evaluated.
                let fin = gen_.base_ms - 1_000_000_000 + n as i64;
                // 1 ms apart: per sync a run every 10 s, 11 days back.
                q.push_bind(gen_.sync_id(n))
                    .push_bind(format!("hist-{n}"))
                    .push_bind("success")
                    .push_bind(fin)
                    .push_bind(fin - 60_000);
                support::push_record_counts(&mut q);
                q.push_bind(None::<String>)
                    .push_bind(None::<String>)
                    .push_bind(None::<String>)
                    .push_bind("census")
                    .push_bind("{\"team\":\"growth\"}")
                    .push_bind(5_i64)
                    .push_bind(0_i64)
                    .push_bind("[]")
                    .push_bind(fin)
                    .push_bind("evaluated");
            });
            qb.build().execute(&mut *tx).await.expect("insert runs");
            n = end;
        }
        tx.commit().await.expect("commit");
    }
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await
        .expect("checkpoint");
    pool.close().await;
}
