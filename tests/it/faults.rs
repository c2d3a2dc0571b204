//! Storage faults: the database locked by another process, and the
//! database volume full. In both a `POST /v1/runs` is answered a clear 503
//! JSON with `Retry-After` within a bounded time, nothing of the refused
//! batch is stored, the engine forgets what it evaluated for it (so the
//! retry fires exactly the notices it should), reads keep working, and once
//! the fault is gone the same POST succeeds with nothing corrupted.
//!
//! The full-disk test mounts a small tmpfs, which needs root (CI runs as
//! root). Elsewhere it fails with a clear message rather than pass without
//! testing anything, unless `SYNCWARDEN_SKIP_TMPFS_TESTS=1` opts out.
//!
//! Both faults are the SQLite file's: under the PostgreSQL test matrix
//! (`SYNCWARDEN_TEST_BACKEND=postgres`) the tests skip themselves.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Opts, TestApp, backend_is_postgres, minutes_from_now, run, spawn_with};

const RULES: &str = r#"
[[rule]]
name = "sync-broken"
match = { sync = "*" }
bad_when = { status = ["failed"] }
fire_after = 2
resolve_after = 1
notify = ["email:default"]
"#;

/// A second process holding `BEGIN EXCLUSIVE` on the database until it is
/// dropped (its stdin closes, or it is killed).
struct ForeignLock {
    child: Child,
}

impl ForeignLock {
    fn take(db: &Path) -> ForeignLock {
        let script = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN EXCLUSIVE")
db.execute("UPDATE syncs SET runs_total = runs_total WHERE 0")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"#;
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (it is installed for the SMTP tests too)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        assert_eq!(line.trim(), "locked", "the lock holder failed to lock");
        ForeignLock { child }
    }

    fn release(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "lock holder: {status}");
    }
}

/// Another replica stuck inside evaluate-and-commit, on PostgreSQL: a
/// session holding the store's writer lock until released.
struct ForeignPgLock {
    conn: sqlx::PgConnection,
}

impl ForeignPgLock {
    async fn take(url: &str) -> ForeignPgLock {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(syncwarden::store::WRITER_LOCK)
            .execute(&mut conn)
            .await
            .expect("take the writer lock");
        ForeignPgLock { conn }
    }

    async fn release(self) {
        use sqlx::Connection;
        self.conn.close().await.expect("close");
    }
}

/// The lock another writer holds, whichever the backend.
enum Held {
    Sqlite(ForeignLock),
    Pg(ForeignPgLock),
}

impl Held {
    async fn take(app: &TestApp) -> Held {
        match app.database_url() {
            Some(url) => Held::Pg(ForeignPgLock::take(url).await),
            None => Held::Sqlite(ForeignLock::take(&app.dir.path().join("syncwarden.db"))),
        }
    }

    async fn release(self) {
        match self {
            Held::Sqlite(l) => l.release(),
            Held::Pg(l) => l.release().await,
        }
    }
}

impl Drop for ForeignLock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn post_timed(app: &TestApp, body: &Value) -> (u16, Option<String>, Value, Duration) {
    let started = Instant::now();
    let resp = app
        .http
        .post(app.url("/v1/runs"))
        .json(body)
        .send()
        .await
        .expect("request");
    let took = started.elapsed();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, retry_after, body, took)
}

/// The notices in the outbox, as `kind` strings, oldest first.
async fn notice_kinds(app: &TestApp) -> Vec<String> {
    let (status, body) = app.get("/v1/notifications").await;
    assert_eq!(status, 200, "{body}");
    let mut kinds: Vec<(String, String)> = body["notifications"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| {
            (
                n["at"].as_str().unwrap_or_default().to_string(),
                n["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    kinds.sort();
    kinds.into_iter().map(|(_, k)| k).collect()
}

#[tokio::test]
async fn a_database_locked_by_another_process_gets_a_503_and_the_retry_succeeds() {
    // SQLite: another process holds the file's write lock. PostgreSQL:
    // another replica holds the writer lock.
    let app = spawn_with(Opts {
        rules: Some(RULES.into()),
        busy_timeout: Some(Duration::from_millis(300)),
        ..Opts::default()
    })
    .await;
    let first = run("orders", "r1", "failed", &minutes_from_now(-3));
    let second = run("orders", "r2", "failed", &minutes_from_now(-2));
    assert_eq!(app.post_json("/v1/runs", &first).await.0, 202);

    let lock = Held::take(&app).await;
    // r2 is the second failure in a row: evaluating it fires. The commit
    // cannot happen, so neither the run nor the firing may survive.
    let (status, retry_after, body, took) = post_timed(&app, &second).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(msg.contains("busy") && msg.contains("locked"), "{body}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    // Reads go on beside the foreign writer (WAL), and show nothing of r2.
    assert_eq!(app.get("/v1/runs/orders/r2").await.0, 404);
    let (status, sync) = app.get("/v1/syncs/orders").await;
    assert_eq!(status, 200, "{sync}");
    assert_eq!(sync["sync"]["runs_total"], 1);
    let (_, ready) = app.get("/readyz").await;
    let writes = ready["checks"]["writes"].as_str().unwrap_or_default();
    assert!(writes.contains("locked"), "{ready}");
    lock.release().await;

    // The same POST now succeeds, as a new run, not a duplicate.
    let (status, body) = app.post_json("/v1/runs", &second).await;
    assert_eq!(
        (status, &body),
        (202, &json!({"accepted": 1, "duplicates": 0}))
    );
    // Exactly one firing: had the engine kept r2's evaluation from the
    // failed attempt, the retry would have found the alert already firing
    // and the firing notice would be lost.
    assert_eq!(notice_kinds(&app).await, vec!["firing"]);
    let recovered = run("orders", "r3", "success", &minutes_from_now(-1));
    assert_eq!(app.post_json("/v1/runs", &recovered).await.0, 202);
    assert_eq!(notice_kinds(&app).await, vec!["firing", "resolved"]);
}

/// A tmpfs mounted for one test, unmounted when dropped (even on failure).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when the environment opted out of tmpfs tests.
    fn mount(size: &str) -> Option<Tmpfs> {
        if std::env::var("SYNCWARDEN_SKIP_TMPFS_TESTS").as_deref() == Ok("1") {
            eprintln!("SYNCWARDEN_SKIP_TMPFS_TESTS=1: full-disk test skipped");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the full-disk test mounts a tmpfs, which needs root (CI runs as root); \
             set SYNCWARDEN_SKIP_TMPFS_TESTS=1 to skip it. mount said: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still in use (a failed test left the server up): detach it.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Fills the volume: writes until the kernel says no space is left.
fn fill(path: &Path) -> PathBuf {
    let filler = path.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the tmpfs: {e}"),
        }
    }
    // Byte by byte for the last partial chunk.
    while f.write(&[0]).is_ok_and(|n| n == 1) {}
    let _ = f.sync_all();
    filler
}

/// A batch large enough that the WAL must grow to hold it.
fn big_batch(prefix: &str, n: usize) -> Value {
    let runs: Vec<Value> = (0..n)
        .map(|i| {
            let errors: Vec<Value> = (0..40)
                .map(|j| {
                    json!({ "record_id": format!("{i}-{j}"), "code": "INVALID_EMAIL",
                            "message": format!("{} {i} {j}", "invalid email address".repeat(8)) })
                })
                .collect();
            json!({
                "sync_id": format!("bulk{}", i % 7), "run_id": format!("{prefix}-{i}"),
                "status": "success", "finished_at": minutes_from_now(-10),
                "records": { "processed": 100, "failed": 40 },
                "record_errors": errors,
            })
        })
        .collect();
    Value::Array(runs)
}

#[tokio::test]
async fn a_full_disk_gets_a_503_naming_it_and_writes_resume_when_space_returns() {
    if backend_is_postgres() {
        eprintln!(
            "skipped on postgres: fills a SQLite file's volume and checks the file (the SQLite pass runs it)"
        );
        return;
    }
    let Some(volume) = Tmpfs::mount("6m") else {
        return;
    };
    let db = volume.path().join("syncwarden.db");
    let mut app = spawn_with(Opts {
        rules: Some(RULES.into()),
        database: Some(db.clone()),
        busy_timeout: Some(Duration::from_millis(300)),
        ..Opts::default()
    })
    .await;
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    let before = big_batch("before", 20);
    let (status, body) = app.post_json("/v1/runs", &before).await;
    assert_eq!(status, 202, "{body}");
    for r in before.as_array().expect("batch") {
        acknowledged.push((r["sync_id"].to_string(), r["run_id"].to_string()));
    }

    let filler = fill(volume.path());
    let during = big_batch("during", 60);
    let mut refused = 0;
    for _ in 0..3 {
        let (status, retry_after, body, took) = post_timed(&app, &during).await;
        assert_eq!(status, 503, "{body}");
        assert!(retry_after.is_some(), "503 without Retry-After");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(msg.contains("storage full"), "{body}");
        assert!(took < Duration::from_secs(10), "answered after {took:?}");
        refused += 1;
    }
    assert_eq!(refused, 3);
    // The server stays up and reads still answer; readiness says what
    // fails but stays ready (a restart would free no space).
    assert_eq!(app.get("/healthz").await.0, 200);
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    let writes = ready["checks"]["writes"].as_str().unwrap_or_default();
    assert!(
        writes.contains("failing since") && writes.contains("full"),
        "{ready}"
    );
    let (status, _) = app.get("/v1/syncs").await;
    assert_eq!(status, 200);
    assert_eq!(app.get("/v1/runs/bulk0/during-0").await.0, 404);

    std::fs::remove_file(&filler).expect("free the space");
    let (status, body) = app.post_json("/v1/runs", &during).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["accepted"], 60,
        "nothing of the refused batch was stored"
    );
    assert_eq!(app.get("/readyz").await.1["checks"]["writes"], "ok");
    for r in during.as_array().expect("batch") {
        acknowledged.push((r["sync_id"].to_string(), r["run_id"].to_string()));
    }
    for (sync, run_id) in &acknowledged {
        let path = format!(
            "/v1/runs/{}/{}",
            sync.trim_matches('"'),
            run_id.trim_matches('"')
        );
        assert_eq!(app.get(&path).await.0, 200, "{path} lost");
    }
    app.shutdown().await;

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .expect("open the database");
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .expect("integrity_check");
    assert_eq!(check, "ok");
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM runs")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(runs as usize, acknowledged.len());
    pool.close().await;
}
