//! `syncwarden report` and `syncwarden exec`: the runner side for scripts
//! and cron jobs (SPEC §5, §8).
//!
//! `report` posts one canonical run. `exec` wraps a job: it runs the command
//! with stdin and stdout passed through and stderr copied through while the
//! last lines are kept, then reports the outcome (`source = "exec"`) with
//! the exit code as the error code (`exit_<n>`, `signal_<n>`, `timeout`) and
//! the tail of stderr as the message. It exits like the job (128 + signal
//! when killed, 124 on timeout, as coreutils `timeout` does), so it can
//! replace the bare command in a crontab; a sidecar that cannot be reached
//! is said on stderr and never fails the job.
//!
//! The job runs in its own process group, like under `timeout`: on timeout
//! the whole group gets SIGTERM, then SIGKILL after `--kill-after`, so a
//! shell script's children go too; SIGINT, SIGTERM, SIGHUP and SIGQUIT sent
//! to `exec` are forwarded to the group.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::{ClientArgs, api_url, http_client, parse_kv, parse_ts, send};
use crate::ingest::validate;
use crate::model::Timestamp;

/// Stderr kept for the error message: at most this many bytes…
const TAIL_BYTES: usize = 4096;
/// …and of those, the last lines.
const TAIL_LINES: usize = 20;
/// How long stderr may stay open after the job ended (a background child
/// that inherited it) before it is no longer waited for.
const STDERR_DRAIN: Duration = Duration::from_secs(2);

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Sync id, e.g. `orders_to_salesforce`.
    #[arg(long)]
    pub sync: String,
    #[arg(long, value_parser = ["success", "failed", "cancelled", "running"])]
    pub status: String,
    /// Records the run tried to sync.
    #[arg(long)]
    pub processed: Option<u64>,
    #[arg(long)]
    pub succeeded: Option<u64>,
    /// Records rejected by the destination.
    #[arg(long)]
    pub failed: Option<u64>,
    /// Records rejected before sending (bad data).
    #[arg(long)]
    pub invalid: Option<u64>,
    /// Run-level error message.
    #[arg(long)]
    pub error: Option<String>,
    /// Run-level error code.
    #[arg(long)]
    pub error_code: Option<String>,
    /// Link to the run in the runner's UI or logs.
    #[arg(long)]
    pub url: Option<String>,
    /// `key=value` (repeatable).
    #[arg(long = "label", value_parser = parse_kv)]
    pub labels: Vec<(String, String)>,
    /// Idempotency key; default a fresh unique id. Reuse it when retrying
    /// a report.
    #[arg(long)]
    pub run_id: Option<String>,
    /// RFC 3339.
    #[arg(long, value_parser = parse_ts)]
    pub started_at: Option<Timestamp>,
    /// RFC 3339; default now (none for a running run).
    #[arg(long, value_parser = parse_ts)]
    pub finished_at: Option<Timestamp>,
    /// Which runner reports.
    #[arg(long, default_value = "report")]
    pub source: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Sync id the job's runs belong to.
    #[arg(long)]
    pub sync: String,
    /// Stop the job after this long (e.g. `30m`): SIGTERM, then SIGKILL
    /// after --kill-after; exit code 124.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Grace between SIGTERM and SIGKILL on timeout.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub kill_after: Duration,
    /// Idempotency key; default a fresh unique id.
    #[arg(long)]
    pub run_id: Option<String>,
    /// `key=value` (repeatable).
    #[arg(long = "label", value_parser = parse_kv)]
    pub labels: Vec<(String, String)>,
    /// Link to the job's logs.
    #[arg(long)]
    pub url: Option<String>,
    /// The job: `-- COMMAND [ARGS…]`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{s:?} is not a duration ({e})"))
}

/// The canonical run a report describes.
struct RunFields<'a> {
    sync: &'a str,
    run_id: &'a str,
    status: &'a str,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
    records: BTreeMap<&'static str, u64>,
    error: Option<(Option<String>, String)>,
    url: Option<&'a str>,
    source: &'a str,
    labels: &'a [(String, String)],
}

impl RunFields<'_> {
    fn to_json(&self) -> Value {
        let mut run = json!({
            "sync_id": self.sync,
            "run_id": self.run_id,
            "status": self.status,
            "source": self.source,
        });
        let obj = run.as_object_mut().expect("a JSON object");
        if let Some(t) = self.finished_at {
            obj.insert("finished_at".into(), json!(t.to_rfc3339()));
        }
        if let Some(t) = self.started_at {
            obj.insert("started_at".into(), json!(t.to_rfc3339()));
        }
        if !self.records.is_empty() {
            obj.insert("records".into(), json!(self.records));
        }
        if let Some((code, message)) = &self.error {
            let mut e = json!({ "message": message });
            if let Some(code) = code {
                e["code"] = json!(code);
            }
            obj.insert("error".into(), e);
        }
        if let Some(url) = self.url {
            obj.insert("url".into(), json!(url));
        }
        if !self.labels.is_empty() {
            let labels: BTreeMap<&str, &str> = self
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            obj.insert("labels".into(), json!(labels));
        }
        run
    }
}

/// The run checked as the sidecar will check it, so a typo is reported
/// before anything runs or is sent.
fn check(run: &Value, now: Timestamp) -> Result<(), String> {
    validate::parse_value(run, 0, Some(now))
        .map(|_| ())
        .map_err(|errors| {
            errors
                .iter()
                .map(|e| format!("  {}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("\n")
        })
}

async fn post_run(client: &ClientArgs, run: &Value) -> anyhow::Result<Value> {
    let http = http_client()?;
    let url = api_url(&client.server, &["v1", "runs"])?;
    send(client, http.post(url).json(run)).await
}

fn fresh_run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `syncwarden report`.
pub async fn report(args: ReportArgs) -> anyhow::Result<i32> {
    let now = Timestamp::now();
    let run_id = args.run_id.clone().unwrap_or_else(fresh_run_id);
    let finished_at = match args.status.as_str() {
        "running" => args.finished_at,
        _ => Some(args.finished_at.unwrap_or(now)),
    };
    let records: BTreeMap<&'static str, u64> = [
        ("processed", args.processed),
        ("succeeded", args.succeeded),
        ("failed", args.failed),
        ("invalid", args.invalid),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let error = match (&args.error, &args.error_code) {
        (Some(m), code) => Some((code.clone(), m.clone())),
        (None, Some(code)) => Some((Some(code.clone()), code.clone())),
        (None, None) => None,
    };
    let run = RunFields {
        sync: &args.sync,
        run_id: &run_id,
        status: &args.status,
        started_at: args.started_at,
        finished_at,
        records,
        error,
        url: args.url.as_deref(),
        source: &args.source,
        labels: &args.labels,
    }
    .to_json();
    if let Err(problems) = check(&run, now) {
        eprintln!("syncwarden report: the run is not valid:\n{problems}");
        return Ok(2);
    }
    let ack = post_run(&args.client, &run).await?;
    let duplicate = ack["duplicates"].as_u64().unwrap_or(0) > 0;
    println!(
        "run {run_id} of {} reported as {}{}",
        args.sync,
        args.status,
        if duplicate {
            " (a duplicate: already reported)"
        } else {
            ""
        }
    );
    Ok(0)
}

/// How the job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobEnd {
    /// What `exec` exits with.
    exit_code: i32,
    /// `None` for success, else `exit_<n>`, `signal_<n>` or `timeout`.
    error_code: Option<String>,
    /// Said when stderr was silent.
    summary: String,
}

/// `syncwarden exec`.
pub async fn exec(args: ExecArgs) -> anyhow::Result<i32> {
    let run_id = args.run_id.clone().unwrap_or_else(fresh_run_id);
    let program = args.command[0].clone();
    // Check the sync id, labels and URL before the job runs.
    let probe = RunFields {
        sync: &args.sync,
        run_id: &run_id,
        status: "running",
        started_at: None,
        finished_at: None,
        records: BTreeMap::new(),
        error: None,
        url: args.url.as_deref(),
        source: "exec",
        labels: &args.labels,
    }
    .to_json();
    if let Err(problems) = check(&probe, Timestamp::now()) {
        eprintln!(
            "syncwarden exec: the run would not be valid, the job was not started:\n{problems}"
        );
        return Ok(2);
    }

    let started = Timestamp::now();
    let (end, tail) = run_job(&args).await;
    let finished = Timestamp::now().max(started);

    let message = if tail.trim().is_empty() {
        end.summary.replace("{program}", &program)
    } else {
        tail
    };
    let run = RunFields {
        sync: &args.sync,
        run_id: &run_id,
        status: if end.error_code.is_none() {
            "success"
        } else {
            "failed"
        },
        started_at: Some(started),
        finished_at: Some(finished),
        records: BTreeMap::new(),
        error: end.error_code.clone().map(|code| (Some(code), message)),
        url: args.url.as_deref(),
        source: "exec",
        labels: &args.labels,
    }
    .to_json();
    if let Err(e) = post_run(&args.client, &run).await {
        eprintln!(
            "syncwarden exec: the run was not reported (the job's own exit code is kept): {e:#}"
        );
    }
    Ok(end.exit_code)
}

/// Runs the job to its end; returns how it ended and the tail of stderr.
async fn run_job(args: &ExecArgs) -> (JobEnd, String) {
    let program = &args.command[0];
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&args.command[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            // The shell's conventions: 127 not found, 126 not runnable.
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            let message = format!("cannot run `{program}`: {e}");
            eprintln!("syncwarden exec: {message}");
            let end = JobEnd {
                exit_code: code,
                error_code: Some(format!("exit_{code}")),
                summary: message,
            };
            return (end, String::new());
        }
    };

    let tail = Arc::new(Mutex::new(Vec::<u8>::new()));
    let copier = child
        .stderr
        .take()
        .map(|stderr| tokio::spawn(copy_stderr(stderr, tail.clone())));

    let status = wait(&mut child, args).await;

    if let Some(copier) = copier {
        let abort = copier.abort_handle();
        if tokio::time::timeout(STDERR_DRAIN, copier).await.is_err() {
            abort.abort();
        }
    }
    let bytes = tail.lock().map(|t| t.clone()).unwrap_or_default();
    (status, tail_text(&bytes))
}

/// Copies the job's stderr through, keeping the last [`TAIL_BYTES`].
async fn copy_stderr(mut from: tokio::process::ChildStderr, tail: Arc<Mutex<Vec<u8>>>) {
    let mut out = tokio::io::stderr();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = out.write_all(&buf[..n]).await;
        let _ = out.flush().await;
        if let Ok(mut t) = tail.lock() {
            t.extend_from_slice(&buf[..n]);
            if t.len() > TAIL_BYTES * 2 {
                let cut = t.len() - TAIL_BYTES;
                t.drain(..cut);
            }
        }
    }
}

/// The last lines of stderr, at most [`TAIL_LINES`] lines and
/// [`TAIL_BYTES`] bytes, as text.
fn tail_text(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(TAIL_BYTES);
    let mut text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    if start > 0 {
        // The cut fell inside a line: drop that partial line.
        if let Some(nl) = text.find('\n') {
            text.drain(..=nl);
        }
    }
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let keep = &lines[lines.len().saturating_sub(TAIL_LINES)..];
    keep.join("\n").trim().to_owned()
}

/// Waits for the job, enforcing the timeout and forwarding signals.
async fn wait(child: &mut tokio::process::Child, args: &ExecArgs) -> JobEnd {
    let pid = child.id();
    let timeout = async {
        match args.timeout {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    let mut timed_out = false;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut signals = Signals::new();
    let status = loop {
        let kill_due = async {
            match kill_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait() => break status,
            () = &mut timeout, if !timed_out => {
                timed_out = true;
                signal_group(pid, "TERM").await;
                kill_at = Some(tokio::time::Instant::now() + args.kill_after);
            }
            () = kill_due => {
                kill_at = None;
                signal_group(pid, "KILL").await;
                let _ = child.start_kill();
            }
            name = signals.recv() => signal_group(pid, name).await,
        }
    };
    let summary_timeout = || {
        format!(
            "`{{program}}` timed out after {}",
            humantime::format_duration(args.timeout.unwrap_or_default())
        )
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            return JobEnd {
                exit_code: 1,
                error_code: Some("exit_1".into()),
                summary: format!("waiting for `{{program}}` failed: {e}"),
            };
        }
    };
    if timed_out {
        return JobEnd {
            exit_code: 124,
            error_code: Some("timeout".into()),
            summary: summary_timeout(),
        };
    }
    end_of(status)
}

fn end_of(status: std::process::ExitStatus) -> JobEnd {
    if let Some(code) = status.code() {
        return JobEnd {
            exit_code: code,
            error_code: (code != 0).then(|| format!("exit_{code}")),
            summary: format!("`{{program}}` exited with code {code}"),
        };
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return JobEnd {
                exit_code: 128 + sig,
                error_code: Some(format!("signal_{sig}")),
                summary: format!("`{{program}}` was killed by signal {sig}"),
            };
        }
    }
    JobEnd {
        exit_code: 1,
        error_code: Some("exit_1".into()),
        summary: "`{program}` ended abnormally".into(),
    }
}

/// Sends a signal to the job's process group (its id is the job's pid).
/// `kill(1)` does it: the crate forbids `unsafe`, so no libc call.
async fn signal_group(pid: Option<u32>, name: &str) {
    let Some(pid) = pid else { return };
    #[cfg(unix)]
    {
        let _ = tokio::process::Command::new("kill")
            .args(["-s", name, "--", &format!("-{pid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
    #[cfg(not(unix))]
    let _ = (pid, name);
}

/// Signals to forward to the job (none off Unix).
struct Signals {
    #[cfg(unix)]
    streams: Vec<(&'static str, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let kinds = [
                ("INT", SignalKind::interrupt()),
                ("TERM", SignalKind::terminate()),
                ("HUP", SignalKind::hangup()),
                ("QUIT", SignalKind::quit()),
            ];
            let streams = kinds
                .into_iter()
                .filter_map(|(name, kind)| signal(kind).ok().map(|s| (name, s)))
                .collect();
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The name of the next signal received.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            if self.streams.is_empty() {
                return std::future::pending().await;
            }
            let futures = self.streams.iter_mut().map(|(name, s)| {
                Box::pin(async move {
                    s.recv().await;
                    *name
                })
            });
            futures_util::future::select_all(futures).await.0
        }
        #[cfg(not(unix))]
        std::future::pending().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines_and_bytes() {
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let tail = tail_text(text.as_bytes());
        assert!(tail.starts_with("line 11\n"), "{tail}");
        assert!(tail.ends_with("line 30"));
        let long = format!("{}\nlast", "x".repeat(10_000));
        assert_eq!(tail_text(long.as_bytes()), "last");
        assert_eq!(tail_text(b"  \n"), "");
    }

    #[test]
    fn exit_statuses_become_codes() {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            let ok = end_of(std::process::ExitStatus::from_raw(0));
            assert_eq!((ok.exit_code, ok.error_code), (0, None));
            let three = end_of(std::process::ExitStatus::from_raw(3 << 8));
            assert_eq!(
                (three.exit_code, three.error_code.as_deref()),
                (3, Some("exit_3"))
            );
            let killed = end_of(std::process::ExitStatus::from_raw(9));
            assert_eq!(
                (killed.exit_code, killed.error_code.as_deref()),
                (137, Some("signal_9"))
            );
        }
    }

    #[test]
    fn a_report_is_a_canonical_run() {
        let labels = vec![("team".to_owned(), "data".to_owned())];
        let run = RunFields {
            sync: "nightly_export",
            run_id: "r1",
            status: "failed",
            started_at: None,
            finished_at: Some(Timestamp(1_700_000_000_000)),
            records: BTreeMap::from([("processed", 10), ("failed", 2)]),
            error: Some((Some("exit_3".into()), "boom".into())),
            url: None,
            source: "exec",
            labels: &labels,
        }
        .to_json();
        assert_eq!(check(&run, Timestamp(1_700_000_000_000)), Ok(()));
        assert_eq!(run["records"]["failed"], 2);
        assert_eq!(run["error"]["code"], "exit_3");
        assert_eq!(run["labels"]["team"], "data");
        let mut bad = run.clone();
        bad["sync_id"] = json!("has space");
        assert!(check(&bad, Timestamp(1_700_000_000_000)).is_err_and(|e| e.contains("sync_id")));
    }
}
