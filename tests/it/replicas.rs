//! Several `syncwarden serve` processes on one PostgreSQL database: the
//! real binary, three replicas, each with its own config file and port, one
//! real SMTP server (aiosmtpd). The fleet-30d history (rules without
//! wall-clock timers, SPEC §5) is posted in `finished_at` order, round-robin
//! across the replicas, one request at a time. Afterwards:
//! - every run is stored once, whichever replica took it;
//! - the notices the replicas recorded are exactly the ones `backtest`
//!   gives for the same rules and runs, none twice (evaluation is
//!   serialized across replicas);
//! - every notice that is not held reached the SMTP server, once (outbox
//!   deliveries are claimed by one replica at a time).
//!
//! The second test SIGKILLs one replica a third of the way through, while
//! a request to it is in flight, and finishes the history on the other two:
//! the same notices, each delivered at least once, at most one duplicate
//! (a claim the dead replica held when it died, taken over after
//! `[delivery] claim_lease`), and a duplicate carries the same Message-ID.
//!
//! Needs `SYNCWARDEN_TEST_PG` (an admin URL of a throwaway cluster); each
//! test creates its own database there and drops it when it passes (a
//! failed test leaves it for inspection). Without it the tests are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use syncwarden::evaluate::{self, Notice};
use syncwarden::model::Run;

use crate::helpers::TestDb;
use crate::smtp::SmtpServer;

const BIN: &str = env!("CARGO_BIN_EXE_syncwarden");
const FLEET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/scenarios/fleet-30d");
const REPLICAS: usize = 3;
/// Runs per POST: about 130 requests for the history.
const BATCH: usize = 250;
/// Rule keys driven by the wall clock in `serve` (SPEC §5): left out, so
/// `serve` and `backtest` must agree.
const WALL_CLOCK_KEYS: [&str; 2] = ["stale_after", "repeat_every"];
/// How long a replica may take to answer `/readyz` (migrations included).
const READY: Duration = Duration::from_secs(30);
/// How long the outbox may take to deliver every notice after the last run.
const DELIVERY: Duration = Duration::from_secs(30);

/// Both tests start three servers and load one database: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn postgres_available() -> bool {
    // CI runs the suite once per backend; these tests are PostgreSQL's own,
    // so they run in its pass only.
    if std::env::var("SYNCWARDEN_TEST_BACKEND").as_deref() == Ok("sqlite") {
        println!("skipped: runs in the postgres pass (SYNCWARDEN_TEST_BACKEND=postgres)");
        return false;
    }
    match std::env::var("SYNCWARDEN_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => true,
        _ => {
            println!("skipped: SYNCWARDEN_TEST_PG not set");
            false
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// One `syncwarden serve` process; its stderr goes to a log file that
/// panic messages quote. Killed on drop.
struct Replica {
    name: String,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

struct Setup<'a> {
    root: &'a Path,
    database: &'a str,
    rules: &'a Path,
    smtp_url: &'a str,
    claim_lease: Option<&'a str>,
}

impl Replica {
    fn spawn(setup: &Setup<'_>, i: usize) -> Replica {
        let name = format!("replica-{i}");
        let port = free_port();
        let mut config = format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase = {db}\nrules = {rules}\ntemplates = {templates}\n\
             [api]\nrequests_per_second = 0\n\
             [delivery]\nretry_initial = \"50ms\"\nretry_max = \"300ms\"\n",
            db = toml_str(setup.database),
            rules = toml_str(&setup.rules.display().to_string()),
            templates = toml_str(concat!(env!("CARGO_MANIFEST_DIR"), "/templates")),
        );
        if let Some(lease) = setup.claim_lease {
            config.push_str(&format!("claim_lease = {}\n", toml_str(lease)));
        }
        config.push_str(&format!(
            "[channels.email.default]\nsmtp_url = {}\nfrom = \"syncwarden@example.com\"\n\
             to = [\"oncall@example.com\"]\n",
            toml_str(setup.smtp_url)
        ));
        let config_path = setup.root.join(format!("{name}.toml"));
        std::fs::write(&config_path, config).expect("config file");
        let log = setup.root.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start syncwarden serve");
        Replica {
            name,
            port,
            log,
            child: Some(child),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// The last lines the process wrote to stderr.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(15);
        format!("{} stderr:\n{}", self.name, lines[from..].join("\n"))
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) {
        let start = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "{} exited ({status}) before it was ready\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if let Ok(resp) = http.get(self.url("/readyz")).send().await
                && resp.status() == 200
            {
                return;
            }
            assert!(
                start.elapsed() < READY,
                "{} not ready after {READY:?}\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, no goodbye.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The fleet-30d rules without wall-clock timers, written into `dir`.
fn write_rules(dir: &Path) {
    std::fs::create_dir_all(dir).expect("rules dir");
    let src = Path::new(FLEET).join("rules");
    let mut files = 0;
    for entry in std::fs::read_dir(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display())) {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("rules file");
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                !WALL_CLOCK_KEYS.iter().any(|k| l.starts_with(k))
            })
            .collect();
        let out = kept.join("\n") + "\n";
        for key in WALL_CLOCK_KEYS {
            assert!(
                !out.lines()
                    .filter(|l| !l.trim_start().starts_with('#'))
                    .any(|l| l.contains(key)),
                "{}: {key} left inside a table; remove it by hand",
                path.display()
            );
        }
        std::fs::write(dir.join(path.file_name().expect("file name")), out).expect("write rules");
        files += 1;
    }
    assert!(files > 0, "no rules in {}", src.display());
}

/// The history as posted: every finished run (duplicate copies included),
/// in (`finished_at`, `sync_id`, `run_id`) order — the engine's event
/// order, so no run is late and ties fall the way `backtest` orders them.
struct History {
    posted: Vec<Value>,
    parsed: Vec<Run>,
    /// Distinct (sync_id, run_id) per sync.
    distinct: BTreeMap<String, usize>,
}

fn history() -> History {
    let path = format!("{FLEET}/runs.ndjson");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut both: Vec<(Value, Run)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("run JSON");
            let r: Run = serde_json::from_value(v.clone()).expect("run");
            (v, r)
        })
        .filter(|(_, r)| r.is_finished())
        .collect();
    // Stable: duplicate copies keep their file order.
    both.sort_by(|a, b| {
        (a.1.finished_at, &a.1.sync_id, &a.1.run_id).cmp(&(
            b.1.finished_at,
            &b.1.sync_id,
            &b.1.run_id,
        ))
    });
    let mut keys = BTreeSet::new();
    let mut distinct: BTreeMap<String, usize> = BTreeMap::new();
    for (_, r) in &both {
        if keys.insert((r.sync_id.clone(), r.run_id.clone())) {
            *distinct.entry(r.sync_id.clone()).or_default() += 1;
        }
    }
    let (posted, parsed) = both.into_iter().unzip();
    History {
        posted,
        parsed,
        distinct,
    }
}

/// (sync, rule, kind, seq, held, at, cause, key).
type Row = (
    String,
    String,
    String,
    u32,
    bool,
    String,
    Option<String>,
    String,
);

fn seq_of(key: &str) -> u32 {
    key.strip_suffix(":held")
        .unwrap_or(key)
        .rsplit(':')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("notice key {key:?} is not incident:kind:seq"))
}

fn from_backtest(n: &Notice) -> Row {
    (
        n.sync_id.clone(),
        n.rule.clone(),
        n.kind.as_str().to_string(),
        n.seq,
        n.held.is_some(),
        n.at.to_rfc3339(),
        n.cause.map(|c| c.as_str().to_string()),
        n.key(),
    )
}

fn from_api(v: &Value) -> Row {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let key = s("key");
    (
        s("sync_id"),
        s("rule"),
        s("kind"),
        seq_of(&key),
        v["status"] == "held",
        s("at"),
        v["cause"].as_str().map(str::to_string),
        key,
    )
}

fn show(r: &Row) -> String {
    let held = if r.4 { " (held)" } else { "" };
    let cause = r.6.as_deref().map(|c| format!(" {c}")).unwrap_or_default();
    format!(
        "{} {} {} #{} at {}{cause}{held} [{}]",
        r.0, r.1, r.2, r.3, r.5, r.7
    )
}

/// What differs between two multisets of rows, or `None`.
fn difference(expected: &[Row], got: &[Row]) -> Option<String> {
    let mut count: BTreeMap<&Row, i64> = BTreeMap::new();
    for r in expected {
        *count.entry(r).or_default() += 1;
    }
    for r in got {
        *count.entry(r).or_default() -= 1;
    }
    let missing: Vec<String> = count
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("  missing ×{n}: {}", show(r)))
        .collect();
    let extra: Vec<String> = count
        .iter()
        .filter(|(_, n)| **n < 0)
        .map(|(r, n)| format!("  unexpected ×{}: {}", -n, show(r)))
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return None;
    }
    let mut lines: Vec<String> = missing.into_iter().chain(extra).collect();
    let total = lines.len();
    lines.truncate(40);
    Some(format!(
        "{} notices expected, {} recorded; {total} differences (first 40):\n{}",
        expected.len(),
        got.len(),
        lines.join("\n")
    ))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// What one POST came to.
enum Answer {
    Accepted {
        accepted: u64,
        duplicates: u64,
    },
    /// Connection refused or reset, a timeout, or a 5xx: try another replica.
    Retry(String),
}

async fn post(http: &reqwest::Client, replica: &Replica, body: Vec<u8>) -> Answer {
    let resp = http
        .post(replica.url("/v1/runs"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    answer(&replica.name, resp).await
}

async fn answer(name: &str, resp: reqwest::Result<reqwest::Response>) -> Answer {
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return Answer::Retry(format!("{name}: {e}")),
    };
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    match status {
        202 => Answer::Accepted {
            accepted: body["accepted"].as_u64().unwrap_or_default(),
            duplicates: body["duplicates"].as_u64().unwrap_or_default(),
        },
        500..=599 => Answer::Retry(format!("{name}: {status} {body}")),
        _ => panic!("{name} answered {status} to a batch of the history: {body}"),
    }
}

/// Posts `body`, starting with replica `turn` (mod the live ones) and moving
/// to the next live replica while the answer says retry. Returns the
/// accepted/duplicates counts of the answer that took it.
async fn post_round_robin(
    http: &reqwest::Client,
    replicas: &[Replica],
    turn: usize,
    body: &[u8],
    what: &str,
) -> (u64, u64) {
    let live: Vec<&Replica> = replicas.iter().filter(|r| r.alive()).collect();
    assert!(!live.is_empty(), "no replica left");
    let mut errors = Vec::new();
    let start = Instant::now();
    let mut attempt = 0usize;
    loop {
        let replica = live[(turn + attempt) % live.len()];
        match post(http, replica, body.to_vec()).await {
            Answer::Accepted {
                accepted,
                duplicates,
            } => return (accepted, duplicates),
            Answer::Retry(e) => errors.push(e),
        }
        if start.elapsed() > Duration::from_secs(30) {
            let logs: Vec<String> = live.iter().map(|r| r.log_tail()).collect();
            panic!(
                "{what} never acknowledged: {}\n{}",
                errors.join("\n"),
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50 * (attempt as u64 % 5 + 1))).await;
        attempt += 1;
    }
}

async fn get_json(http: &reqwest::Client, replica: &Replica, path: &str) -> Value {
    let resp = http
        .get(replica.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} GET {path}: {e}\n{}", replica.name, replica.log_tail()));
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{} GET {path}: {body}", replica.name);
    body
}

async fn notifications(http: &reqwest::Client, replica: &Replica) -> Vec<Value> {
    get_json(http, replica, "/v1/notifications?limit=5000").await["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// How the history is fed to the replicas.
struct Plan {
    label: &'static str,
    claim_lease: Option<&'static str>,
    /// SIGKILL the replica whose turn it is a third of the way through,
    /// while its request is in flight.
    kill: bool,
}

/// What the SMTP server received per notice key: the Message-IDs.
type Mailed = BTreeMap<String, Vec<String>>;

fn mailed(smtp: &SmtpServer) -> (Mailed, usize) {
    let mut by_key: Mailed = BTreeMap::new();
    let messages = smtp.messages();
    for m in &messages {
        let key = m.header("X-Syncwarden-Notice-Key").unwrap_or_default();
        by_key.entry(key).or_default().push(m.message_id());
    }
    (by_key, messages.len())
}

/// Runs the whole scenario and returns what was mailed per key, after
/// checking the stored runs and the recorded notices against `backtest`.
async fn run_fleet(plan: Plan) -> (Mailed, BTreeMap<String, Row>) {
    crate::helpers::install_crypto();
    let smtp = SmtpServer::start();
    let db = TestDb::postgres().await;
    let root = tempfile::tempdir().expect("tempdir");
    let rules_dir = root.path().join("rules");
    write_rules(&rules_dir);

    // What backtest gives for the same rules and the same runs.
    let history = history();
    let rules = evaluate::load_dir(&rules_dir).unwrap_or_else(|p| panic!("rules: {p:?}"));
    let (predicted, _) = evaluate::backtest(rules, history.parsed.clone(), None);
    let mut expected: Vec<Row> = predicted.iter().map(from_backtest).collect();
    expected.sort();
    let sent: BTreeMap<String, Row> = expected
        .iter()
        .filter(|r| !r.4)
        .map(|r| (r.7.clone(), r.clone()))
        .collect();
    assert!(
        sent.len() > 100 && expected.iter().any(|r| r.4),
        "fleet-30d should give many notices, some held: {} sent, {} in all",
        sent.len(),
        expected.len()
    );

    let setup = Setup {
        root: root.path(),
        database: db.url(),
        rules: &rules_dir,
        smtp_url: &smtp.url(),
        claim_lease: plan.claim_lease,
    };
    // All three at once on the empty database, as a deploy starts them.
    let mut replicas: Vec<Replica> = (0..REPLICAS).map(|i| Replica::spawn(&setup, i)).collect();
    let http = client();
    for r in &mut replicas {
        r.wait_ready(&http).await;
    }

    let started = Instant::now();
    let batches: Vec<&[Value]> = history.posted.chunks(BATCH).collect();
    let kill_at = plan.kill.then_some(batches.len() / 3);
    let (mut accepted, mut duplicates) = (0u64, 0u64);
    // Batch `b` goes to live replica `b mod live`.
    for (b, batch) in batches.iter().enumerate() {
        let body = serde_json::to_vec(batch).expect("batch JSON");
        let what = format!("batch {b} of {}", batches.len());
        let live: Vec<usize> = (0..replicas.len())
            .filter(|&i| replicas[i].alive())
            .collect();
        if kill_at == Some(b) {
            // The request is in flight when its replica dies; whatever it
            // came to, the runner sends the batch again elsewhere.
            let victim = live[b % live.len()];
            let req = http
                .post(replicas[victim].url("/v1/runs"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send();
            let in_flight = tokio::spawn(req);
            tokio::time::sleep(Duration::from_millis(15)).await;
            replicas[victim].kill();
            let first = in_flight.await.expect("request task");
            match answer(&replicas[victim].name, first).await {
                Answer::Accepted {
                    accepted: a,
                    duplicates: d,
                } => {
                    println!(
                        "{}: {what} was answered before {} died",
                        plan.label, replicas[victim].name
                    );
                    accepted += a;
                    duplicates += d;
                }
                Answer::Retry(e) => {
                    println!(
                        "{}: {what} failed with its replica ({e}); sent again",
                        plan.label
                    );
                    let (a, d) = post_round_robin(&http, &replicas, b, &body, &what).await;
                    accepted += a;
                    duplicates += d;
                }
            }
        } else {
            let (a, d) = post_round_robin(&http, &replicas, b, &body, &what).await;
            accepted += a;
            duplicates += d;
        }
    }
    println!(
        "{}: {} runs in {} batches over {REPLICAS} replicas in {:.1} s",
        plan.label,
        history.posted.len(),
        batches.len(),
        started.elapsed().as_secs_f64()
    );
    let distinct: usize = history.distinct.values().sum();
    if !plan.kill {
        assert_eq!(
            (accepted, duplicates),
            (distinct as u64, (history.posted.len() - distinct) as u64),
            "accepted / duplicates over all answers"
        );
    }

    let live: Vec<&Replica> = replicas.iter().filter(|r| r.alive()).collect();
    // Every run stored once, whichever replica took it.
    let body = get_json(&http, live[0], "/v1/syncs").await;
    let stored: BTreeMap<String, usize> = body["syncs"]
        .as_array()
        .expect("syncs list")
        .iter()
        .map(|s| {
            (
                s["sync_id"].as_str().unwrap_or_default().to_string(),
                s["runs_total"].as_u64().unwrap_or_default() as usize,
            )
        })
        .collect();
    assert_eq!(stored, history.distinct, "runs_total per sync");

    // The notices: what backtest gives, none twice, the same on every
    // live replica (one database).
    for r in &live {
        let list = notifications(&http, r).await;
        let mut got: Vec<Row> = list.iter().map(from_api).collect();
        got.sort();
        let keys: BTreeSet<&str> = got.iter().map(|r| r.7.as_str()).collect();
        assert_eq!(
            keys.len(),
            got.len(),
            "{}: a notice key recorded twice",
            r.name
        );
        if let Some(diff) = difference(&expected, &got) {
            panic!(
                "{}: the recorded notices differ from backtest's: {diff}",
                r.name
            );
        }
    }

    // Every notice that is not held reaches the SMTP server.
    let start = Instant::now();
    loop {
        let (by_key, total) = mailed(&smtp);
        let missing: Vec<&Row> = sent
            .iter()
            .filter(|(k, _)| !by_key.contains_key(*k))
            .map(|(_, r)| r)
            .collect();
        if missing.is_empty() {
            break;
        }
        if start.elapsed() > DELIVERY {
            let first: Vec<String> = missing.iter().take(20).map(|r| show(r)).collect();
            let logs: Vec<String> = live.iter().map(|r| r.log_tail()).collect();
            panic!(
                "after {DELIVERY:?}, {} of {} notices never reached the SMTP server \
                 ({total} messages received); first missing:\n{}\n{}",
                missing.len(),
                sent.len(),
                first.join("\n"),
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // And the outbox records each as sent (a claim the dead replica held
    // is taken over once its lease runs out).
    let start = Instant::now();
    loop {
        let list = notifications(&http, live[0]).await;
        let unsent: Vec<String> = list
            .iter()
            .filter(|n| n["status"] != "held" && n["status"] != "sent")
            .map(|n| {
                format!(
                    "{} {} deliveries {}",
                    n["key"], n["status"], n["deliveries"]
                )
            })
            .collect();
        if unsent.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{} notices mailed but not recorded as sent:\n{}",
            unsent.len(),
            unsent
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Past any lease: a copy sent late because a claim was wrongly taken
    // over would have arrived by now.
    let lease = plan
        .claim_lease
        .and_then(|l| humantime::parse_duration(l).ok())
        .unwrap_or(Duration::from_secs(1));
    tokio::time::sleep(lease + Duration::from_millis(500)).await;
    let (by_key, _) = mailed(&smtp);

    let unknown: Vec<&String> = by_key.keys().filter(|k| !sent.contains_key(*k)).collect();
    assert!(
        unknown.is_empty(),
        "mail for keys backtest does not give: {unknown:?}"
    );
    for (key, ids) in &by_key {
        let want = syncwarden::notify::email::message_id(std::slice::from_ref(key));
        for id in ids {
            assert_eq!(
                id.trim_matches(['<', '>']),
                want.trim_matches(['<', '>']),
                "{key}: Message-ID"
            );
        }
    }

    drop(replicas);
    drop(db);
    (by_key, sent)
}

fn copies(by_key: &Mailed, sent: &BTreeMap<String, Row>) -> Vec<String> {
    by_key
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(k, ids)| {
            let what = sent.get(k).map(show).unwrap_or_else(|| k.clone());
            format!("  ×{}: {what}", ids.len())
        })
        .collect()
}

#[tokio::test]
async fn three_replicas_on_one_database_record_backtests_notices_and_mail_each_once() {
    if !postgres_available() {
        return;
    }
    let _one_at_a_time = SERIAL.lock().await;
    let (by_key, sent) = run_fleet(Plan {
        label: "three",
        claim_lease: None,
        kill: false,
    })
    .await;
    let twice = copies(&by_key, &sent);
    assert!(
        twice.is_empty(),
        "notices mailed more than once:\n{}",
        twice.join("\n")
    );
    assert_eq!(by_key.len(), sent.len());
}

#[tokio::test]
async fn a_replica_killed_mid_history_loses_no_notice_and_mails_at_most_one_twice() {
    if !postgres_available() {
        return;
    }
    let _one_at_a_time = SERIAL.lock().await;
    let (by_key, sent) = run_fleet(Plan {
        label: "killed",
        claim_lease: Some("2s"),
        kill: true,
    })
    .await;
    assert_eq!(by_key.len(), sent.len(), "every notice mailed");
    let twice = copies(&by_key, &sent);
    let duplicates: usize = by_key.values().map(|ids| ids.len() - 1).sum();
    assert!(
        duplicates <= 1,
        "{duplicates} duplicate messages; only a send the killed replica had claimed may repeat:\n{}",
        twice.join("\n")
    );
}

/// A wall-clock deadline with three replicas running: every replica wakes
/// for it (each polls the others' commits and knows the alert), but the
/// stale notice is decided once, under the writer lock, and mailed once.
#[tokio::test]
async fn a_stale_deadline_fires_once_with_three_replicas_running() {
    if !postgres_available() {
        return;
    }
    let _one_at_a_time = SERIAL.lock().await;
    crate::helpers::install_crypto();
    let smtp = SmtpServer::start();
    let db = TestDb::postgres().await;
    let root = tempfile::tempdir().expect("tempdir");
    let rules_dir = root.path().join("rules");
    std::fs::create_dir_all(&rules_dir).expect("rules dir");
    std::fs::write(
        rules_dir.join("r.toml"),
        "[[rule]]\nname = \"quiet\"\nmatch = { sync = \"*\" }\nstale_after = \"3s\"\n",
    )
    .expect("rules");
    let setup = Setup {
        root: root.path(),
        database: db.url(),
        rules: &rules_dir,
        smtp_url: &smtp.url(),
        claim_lease: None,
    };
    let mut replicas: Vec<Replica> = (0..REPLICAS).map(|i| Replica::spawn(&setup, i)).collect();
    let http = client();
    for r in &mut replicas {
        r.wait_ready(&http).await;
    }
    // One good run, to the first replica only; nothing after it.
    let finished = syncwarden::model::Timestamp::now().0;
    let run = serde_json::json!([{
        "sync_id": "orders", "run_id": "1", "status": "success",
        "finished_at": rfc3339(finished),
        "records": {"processed": 10, "succeeded": 10, "failed": 0},
    }]);
    let body = serde_json::to_vec(&run).expect("json");
    assert!(matches!(
        post(&http, &replicas[0], body).await,
        Answer::Accepted { accepted: 1, .. }
    ));

    // The deadline passes while all three run; wait for the mail, then
    // long enough for a second replica's timer to have fired as well.
    let deadline = Instant::now() + DELIVERY;
    loop {
        if !smtp.messages().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no stale notice mailed\n{}",
            replicas
                .iter()
                .map(Replica::log_tail)
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (by_key, total) = mailed(&smtp);
    assert_eq!(total, 1, "one mail in all: {by_key:?}");
    for r in &replicas {
        let notices = notifications(&http, r).await;
        let firing: Vec<&Value> = notices.iter().filter(|n| n["kind"] == "firing").collect();
        assert_eq!(notices.len(), 1, "{} sees one notice: {notices:?}", r.name);
        assert_eq!(firing.len(), 1, "{}: {notices:?}", r.name);
        assert_eq!(firing[0]["cause"], "stale", "{}: {notices:?}", r.name);
    }
    drop(replicas);
    drop(db);
}

fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .expect("a time");
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
}
