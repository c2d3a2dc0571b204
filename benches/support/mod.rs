//! Shared by the whole-process benches: start the release `syncwarden`
//! binary on a temp dir, wait for `/readyz`, read its memory, describe the
//! machine, open its database, and append figures to `BENCHMARKS.md` on
//! request.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `syncwarden` binary cargo built beside this bench (release profile
/// under `cargo bench`).
pub const BIN: &str = env!("CARGO_BIN_EXE_syncwarden");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A running `syncwarden serve`; killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    /// When the process was spawned.
    pub spawned: Instant,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process with SIGTERM (graceful) and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Writes `dir/syncwarden.toml` for a server on `port` with its database
/// at `db`, rules from `rules`, the per-client rate limit off, and `extra`
/// appended verbatim.
pub fn write_config(dir: &Path, port: u16, db: &Path, rules: &Path, extra: &str) -> PathBuf {
    write_config_db(dir, port, &db.display().to_string(), rules, extra)
}

/// [`write_config`] with `database` as written in the file: a SQLite path
/// or a `postgres://` URL.
pub fn write_config_db(
    dir: &Path,
    port: u16,
    database: &str,
    rules: &Path,
    extra: &str,
) -> PathBuf {
    let path = dir.join("syncwarden.toml");
    let text = format!(
        "listen = \"127.0.0.1:{port}\"\ndatabase = \"{database}\"\nrules = \"{}\"\ntemplates = \"{}\"\n\
         [api]\nrequests_per_second = 0\n{extra}",
        rules.display(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
    );
    std::fs::write(&path, text).expect("config file");
    path
}

/// Spawns `syncwarden serve --config <config>` listening on `port`.
pub fn spawn(config: &Path, port: u16) -> Server {
    let spawned = Instant::now();
    let child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn syncwarden (cargo bench builds it)");
    Server {
        child,
        port,
        spawned,
    }
}

/// Polls `/readyz` every millisecond until it answers 200; returns the
/// time since the process was spawned.
pub fn wait_ready(server: &Server) -> Duration {
    let addr = format!("127.0.0.1:{}", server.port);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if readyz_ok(&addr) {
            return server.spawned.elapsed();
        }
        assert!(Instant::now() < deadline, "syncwarden never became ready");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A minimal blocking HTTP/1.1 GET of `/readyz` (no client start-up cost in
/// the start-up figure).
fn readyz_ok(addr: &str) -> bool {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && &buf[9..12] == b"200"
}

/// `VmRSS` and `VmHWM` (peak) of a process, in MiB.
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) of a process so far, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`, which may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after `)`.
    (ticks(11) + ticks(12)) / 100.0
}

/// "2 cores, 24 GiB, Debian GNU/Linux 12 (bookworm), rustc 1.95.0".
pub fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| (kb / 1024.0 / 1024.0).round())
        .unwrap_or(0.0);
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown OS".into());
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| v.split_whitespace().take(2).last().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    format!("{cores} cores, {mem_gib} GiB, {os}, rustc {rustc}")
}

/// What every whole-process bench starts with: the TLS provider reqwest
/// needs, its report headed by the machine, and a current-thread runtime
/// (the load comes from the server, not from this side).
pub fn start(bench: &'static str) -> (Report, tokio::runtime::Runtime) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut report = Report::new(bench);
    report.line(format!("machine: {}", machine()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    (report, rt)
}

/// A pool on the server's database file, beside the running server (WAL
/// lets a reader in while it writes).
pub async fn open_db(db: &Path, read_only: bool) -> sqlx::SqlitePool {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(read_only);
    sqlx::SqlitePool::connect_with(opts).await.expect("open db")
}

/// Posts one JSON batch to `url` (`/v1/runs`) and checks it was accepted.
pub async fn post_runs(http: &reqwest::Client, url: &str, body: String) {
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 202, "the batch was accepted");
}

/// The median of `v` (sorted in place); 0 when empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Prints a figure line, and keeps it for [`Report::append_if_asked`].
pub struct Report {
    bench: &'static str,
    lines: Vec<String>,
}

impl Report {
    pub fn new(bench: &'static str) -> Self {
        Report {
            bench,
            lines: Vec::new(),
        }
    }

    pub fn line(&mut self, text: impl Into<String>) {
        let text = text.into();
        println!("{}: {text}", self.bench);
        self.lines.push(text);
    }

    /// With `SYNCWARDEN_BENCH_APPEND=1`, appends the figures to
    /// `BENCHMARKS.md` as a raw, dated block with the machine.
    pub fn append_if_asked(&self) {
        if std::env::var("SYNCWARDEN_BENCH_APPEND").as_deref() != Ok("1") {
            return;
        }
        let today = Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
        let mut text = format!(
            "\n#### `cargo bench --bench {}` — {today} — {}\n\n```text\n",
            self.bench,
            machine()
        );
        for l in &self.lines {
            text.push_str(l);
            text.push('\n');
        }
        text.push_str("```\n");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .expect("BENCHMARKS.md");
        f.write_all(text.as_bytes()).expect("append BENCHMARKS.md");
    }
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// The generated runs: `n` → one run of one of `syncs` syncs, finished
/// `n / 4` ms after `base_ms` (so per sync they arrive in order, and stay
/// in the recent past), 5 record errors each, one in fifty failed.
pub struct RunGen {
    pub base_ms: i64,
    pub syncs: u64,
}

pub const ERRORS_PER_RUN: usize = 5;

impl RunGen {
    pub fn new(syncs: u64) -> Self {
        // Recent (no sync looks stale), and 2.4 M runs stay in the past.
        let now = syncwarden::model::Timestamp::now().0;
        RunGen {
            base_ms: now - 10 * 60_000,
            syncs,
        }
    }

    pub fn sync_id(&self, n: u64) -> String {
        format!("warehouse_to_crm_{:04}", n % self.syncs)
    }

    pub fn finished_ms(&self, n: u64) -> i64 {
        self.base_ms + (n / 4) as i64
    }

    pub fn failed(n: u64) -> bool {
        n % 50 == 7
    }

    /// One run as canonical JSON (SPEC §1).
    pub fn push_json(&self, n: u64, out: &mut String) {
        use std::fmt::Write as _;
        let fin = syncwarden::model::Timestamp(self.finished_ms(n));
        let start = syncwarden::model::Timestamp(self.finished_ms(n) - 60_000);
        let failed = Self::failed(n);
        let _ = write!(
            out,
            "{{\"sync_id\":\"{}\",\"run_id\":\"run-{n}\",\"status\":\"{}\",\
             \"finished_at\":\"{}\",\"started_at\":\"{}\",\
             \"records\":{{\"processed\":1000,\"succeeded\":995,\"failed\":5,\"invalid\":0}},",
            self.sync_id(n),
            if failed { "failed" } else { "success" },
            fin.to_rfc3339(),
            start.to_rfc3339(),
        );
        if failed {
            out.push_str("\"error\":{\"code\":\"DEST_TIMEOUT\",\"message\":\"destination timed out after 30s\"},");
        }
        out.push_str("\"record_errors\":[");
        for e in 0..ERRORS_PER_RUN {
            if e > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"record_id\":\"{n}-{e}\",\"code\":\"INVALID_EMAIL\",\
                 \"message\":\"invalid email address: user{n}x{e}@example\",\"field\":\"email\"}}"
            );
        }
        out.push_str("],\"source\":\"census\",\"labels\":{\"team\":\"growth\"}}");
    }

    /// A JSON array of runs `first .. first + count`.
    pub fn batch_json(&self, first: u64, count: usize) -> String {
        let mut s = String::with_capacity(count * 700);
        s.push('[');
        for i in 0..count as u64 {
            if i > 0 {
                s.push(',');
            }
            self.push_json(first + i, &mut s);
        }
        s.push(']');
        s
    }
}

/// Posts one failing run for each of `syncs` syncs (the generator's runs,
/// each turned into a failure, keeping its own sync id), in batches of 100.
pub async fn post_failing_runs(server: &Server, gen_: &RunGen, syncs: u64) {
    let http = reqwest::Client::new();
    let url = server.url("/v1/runs");
    for b in 0..syncs.div_ceil(100) {
        let mut body = String::from("[");
        for i in 0..100.min(syncs - b * 100) {
            let n = b * 100 + i;
            if i > 0 {
                body.push(',');
            }
            // n % 50 == 7 is the generator's failed run: shift each run
            // onto one, keeping its own sync id.
            let mut run = String::new();
            gen_.push_json(n, &mut run);
            body.push_str(&run.replace("\"status\":\"success\"", "\"status\":\"failed\""));
        }
        body.push(']');
        post_runs(&http, &url, body).await;
    }
}

/// The record counts every generated run carries (processed, succeeded,
/// failed, invalid), bound in that column order.
pub fn push_record_counts(q: &mut sqlx::query_builder::Separated<'_, sqlx::Sqlite, &str>) {
    q.push_bind(1000_i64)
        .push_bind(995_i64)
        .push_bind(5_i64)
        .push_bind(0_i64);
}

/// A real SMTP server (aiosmtpd running `tests/support/smtp_sink.py`) on a
/// free port, storing into `dir` (`mail/`, and `received.log` with the
/// arrival time of each message); killed on drop.
pub struct Sink {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a [`Sink`] and waits until it says it is ready.
pub fn start_sink() -> Sink {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let child = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/smtp_sink.py"
        ))
        .arg(port.to_string())
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 with aiosmtpd");
    let start = Instant::now();
    while !dir.path().join("ready").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "SMTP sink did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Sink { child, dir, port }
}

/// An HTTP client that keeps enough idle connections for the load phases.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client")
}

/// How long a load phase warms up, then measures.
#[derive(Clone, Copy)]
pub struct Phase {
    pub warmup: Duration,
    pub measure: Duration,
}

/// `connections` keep-alive connections POST for `warmup` + `measure`,
/// each request `per_request` runs (a bare run when 1, else a JSON array),
/// request `k` to server `k mod n`. Returns runs/s over `measure` and the
/// sorted latencies (ms) of the requests in it.
pub async fn load(
    servers: &[Server],
    gen_: std::sync::Arc<RunGen>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
    connections: usize,
    per_request: usize,
    phase: Phase,
) -> (f64, Vec<f64>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let http = client();
    let urls: Arc<Vec<String>> = Arc::new(servers.iter().map(|s| s.url("/v1/runs")).collect());
    let requests = Arc::new(AtomicU64::new(0));
    let measure_from = Instant::now() + phase.warmup;
    let end = measure_from + phase.measure;
    let counted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (http, urls, gen_, next, requests, counted) = (
            http.clone(),
            urls.clone(),
            gen_.clone(),
            next.clone(),
            requests.clone(),
            counted.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut single = String::with_capacity(1024);
            while Instant::now() < end {
                let first = next.fetch_add(per_request as u64, Ordering::Relaxed);
                let body = if per_request == 1 {
                    single.clear();
                    gen_.push_json(first, &mut single);
                    single.clone()
                } else {
                    gen_.batch_json(first, per_request)
                };
                let k = requests.fetch_add(1, Ordering::Relaxed) as usize;
                let url = &urls[k % urls.len()];
                let t0 = Instant::now();
                let resp = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("post");
                let status = resp.status();
                let _ = resp.bytes().await;
                assert_eq!(status, 202, "{url} answered {status}");
                let done = Instant::now();
                if t0 >= measure_from && done <= end {
                    lat.push(done.duration_since(t0).as_secs_f64() * 1e3);
                    counted.fetch_add(per_request as u64, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("load task"));
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let runs = counted.load(Ordering::Relaxed) as f64;
    (runs / phase.measure.as_secs_f64(), lat)
}

/// Wall-clock arrival times (unix ns) of the messages the sink received.
pub fn received(sink: &Sink) -> Vec<u128> {
    std::fs::read_to_string(sink.dir.path().join("received.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// Now, unix ns (comparable with [`received`]).
pub fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
