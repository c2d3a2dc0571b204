//! Outbox drain rate (release binary): how fast a backlog of firing notices
//! leaves the outbox.
//!
//! `cargo bench --bench outbox_drain`:
//!
//! 1. seeds `SYNCS` syncs with one failing run each under a `fire_after = 1`
//!    rule while the email channel is held back by `rate = "1/h"`, so the
//!    notices stay queued (one delivery sent, the rest pending);
//! 2. restarts `serve` on that database with the channel unlimited and
//!    times spawn → no delivery pending, once with `.eml` files and once
//!    with a real SMTP server (aiosmtpd, `tests/support/smtp_sink.py`, on a
//!    copy of the same database).
//!
//! `SYNCWARDEN_DRAIN_SYNCS` overrides the backlog size (default 3,000).
//! Prints the figures; `SYNCWARDEN_BENCH_APPEND=1` also appends them to
//! `BENCHMARKS.md`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::RunGen;

fn main() {
    let syncs: u64 = std::env::var("SYNCWARDEN_DRAIN_SYNCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let (mut report, rt) = support::start("outbox_drain");
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
    let channel = |more: &str| {
        format!(
            "[channels.email.default]\noutbox_dir = \"{}\"\nto = [\"oncall@example.com\"]\n{more}",
            outbox.display()
        )
    };

    // 1. The backlog, held back by the channel's rate limit.
    let db = dir.path().join("fleet.db");
    let port = support::free_port();
    let config = support::write_config(
        dir.path(),
        port,
        &db,
        &rules,
        &channel("rate = \"1/h\"\nburst = 1\n"),
    );
    let server = support::spawn(&config, port);
    support::wait_ready(&server);
    let gen_ = RunGen::new(syncs);
    rt.block_on(support::post_failing_runs(&server, &gen_, syncs));
    std::thread::sleep(Duration::from_millis(500));
    server.stop();
    let backlog = rt.block_on(pending(&db));
    report.line(format!(
        "backlog: {syncs} syncs with a firing alert each, {backlog} deliveries pending"
    ));
    let smtp_db = dir.path().join("smtp.db");
    std::fs::copy(&db, &smtp_db).expect("copy database");

    // 2a. Drain to `.eml` files.
    let files = drain(&rt, dir.path(), "files", &db, &rules, &channel(""), backlog);
    report.line(files);

    // 2b. Drain to a real SMTP server.
    let sink = support::start_sink();
    let smtp = channel(&format!(
        "smtp_url = \"smtp://127.0.0.1:{}?tls=none\"\n",
        sink.port
    ));
    let line = drain(&rt, dir.path(), "smtp", &smtp_db, &rules, &smtp, backlog);
    let got = std::fs::read_dir(sink.dir.path().join("mail"))
        .map(|d| d.count())
        .unwrap_or(0);
    report.line(format!("{line}; the SMTP server holds {got} messages"));
    report.line(format!(
        "load average after the run: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    ));
    report.append_if_asked();
}

/// Restarts `serve` on `db` with `extra` and waits for the outbox to empty.
fn drain(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    name: &str,
    db: &Path,
    rules: &Path,
    extra: &str,
    backlog: i64,
) -> String {
    let sub = dir.join(name);
    std::fs::create_dir_all(&sub).expect("dir");
    let port = support::free_port();
    let config = support::write_config(&sub, port, db, rules, extra);
    let server = support::spawn(&config, port);
    let started = Instant::now();
    let cpu0 = support::cpu_seconds(server.pid());
    let left = rt.block_on(async {
        let deadline = started + Duration::from_secs(300);
        loop {
            let n = pending(db).await;
            if n == 0 || Instant::now() > deadline {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let cpu = support::cpu_seconds(server.pid()) - cpu0;
    server.stop();
    let done = backlog - left;
    format!(
        "drain ({name}): {done} of {backlog} deliveries in {secs:.2} s from spawn: {:.0} deliveries/s; server CPU {cpu:.2} s ({:.0} µs per delivery)",
        done as f64 / secs,
        cpu * 1e6 / done.max(1) as f64
    )
}

async fn pending(db: &Path) -> i64 {
    let pool = support::open_db(db, true).await;
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'sending')")
            .fetch_one(&pool)
            .await
            .expect("count deliveries");
    pool.close().await;
    n
}
