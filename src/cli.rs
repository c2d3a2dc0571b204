//! The command line (SPEC §5): `serve` runs the sidecar; the other commands
//! are offline tools (`rules check`, `backtest`) or small clients of a
//! running sidecar (`silence`, and `report` / `exec` in [`crate::client`]).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::app::App;
use crate::config::{Config, Overrides};
use crate::evaluate;
use crate::model::Timestamp;
use crate::telemetry::{LogFormat, Telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "syncwarden",
    version,
    about = "Alerting sidecar for data sync pipelines: one notice on real breakage, one on recovery."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar (defaults work with no config file).
    Serve(ServeArgs),
    /// Validate rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Replay runs through the rules offline and print the notices.
    Backtest(BacktestArgs),
    /// Manage silences on a running sidecar.
    Silence {
        #[command(subcommand)]
        command: SilenceCommand,
    },
    /// Report one run of a script to a running sidecar.
    Report(crate::client::ReportArgs),
    /// Run a job, pass its output through, and report how it ended.
    Exec(crate::client::ExecArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML).
    #[arg(long, env = "SYNCWARDEN_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Database: a SQLite path, or a `postgres://` URL shared by several
    /// replicas (the environment keeps a password off the command line).
    #[arg(long, env = "SYNCWARDEN_DB", hide_env_values = true)]
    pub db: Option<String>,
    #[arg(long)]
    pub rules: Option<PathBuf>,
    #[arg(long)]
    pub templates: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Print every problem with file, line and a hint; exit 1 on any.
    Check {
        /// Rules directory.
        #[arg(default_value = "rules")]
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    #[arg(long)]
    pub rules: PathBuf,
    /// NDJSON file of runs, in any order.
    #[arg(long)]
    pub runs: PathBuf,
    /// Advance time to this instant (RFC 3339); default: the last run.
    #[arg(long, value_parser = parse_ts)]
    pub until: Option<Timestamp>,
    /// Also print held firings (`"held":"inhibited"`).
    #[arg(long)]
    pub all: bool,
    /// Score the firing notices against labeled episodes (a `truth.json`:
    /// `[{sync_id, kind, start, end}]`) and print precision and recall
    /// instead of the notices.
    #[arg(long, value_name = "EPISODES.json")]
    pub score: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// URL of the running sidecar.
    #[arg(long, env = "SYNCWARDEN_URL", default_value = "http://127.0.0.1:8686")]
    pub server: String,
    /// API token, when the sidecar has tokens configured.
    #[arg(long, env = "SYNCWARDEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Silence matching alerts for a while.
    Add {
        #[command(flatten)]
        client: ClientArgs,
        /// Glob on the sync id.
        #[arg(long, default_value = "*")]
        sync: String,
        /// Glob on the rule name.
        #[arg(long, default_value = "*")]
        rule: String,
        /// Label equality, `key=value` (repeatable).
        #[arg(long = "label", value_parser = parse_kv)]
        labels: Vec<(String, String)>,
        /// How long, e.g. `2h`.
        #[arg(long, default_value = "2h")]
        duration: String,
        #[arg(long, env = "USER", default_value = "unknown")]
        author: String,
        /// Why (required).
        #[arg(long)]
        comment: String,
    },
    /// List silences.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Include ended silences.
        #[arg(long)]
        all: bool,
    },
    /// End a silence now.
    Expire {
        #[command(flatten)]
        client: ClientArgs,
        id: String,
    },
}

pub(crate) fn parse_ts(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s)
}

pub(crate) fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

/// Runs the parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    if !matches!(cli.command, Command::Serve(_)) {
        crate::telemetry::init_logging(cli.log_format);
    }
    match cli.command {
        Command::Serve(args) => {
            let overrides = Overrides {
                listen: args.listen,
                database: args.db,
                rules: args.rules,
                templates: args.templates,
            };
            let config = Config::load(args.config.as_deref(), &overrides);
            let telemetry = match &config {
                Ok(c) => Telemetry::init(&c.telemetry, cli.log_format),
                Err(_) => Telemetry::init(&Default::default(), cli.log_format),
            };
            let config = config?;
            let shown = Config {
                sources: crate::ingest::sources::redacted(&config.sources),
                database: crate::store::redacted(&config.database),
                ..config.clone()
            };
            tracing::info!(config = ?shown, "configuration");
            let result = async {
                let app = App::build(config).await?;
                app.run_until_stopped(crate::app::shutdown_signal()).await
            }
            .await;
            telemetry.shutdown_async().await;
            result.map(|()| 0)
        }
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => Ok(rules_check(&dir)),
        Command::Backtest(args) => {
            let stdout = std::io::stdout();
            let stderr = std::io::stderr();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut err = stderr.lock();
            let result = match &args.score {
                Some(episodes) => evaluate::score::score_cli(
                    &args.rules,
                    &args.runs,
                    episodes,
                    args.until,
                    &mut out,
                    &mut err,
                )
                .map(|_| ())
                .map_err(|e| e.to_string()),
                None => evaluate::backtest_cli(
                    &args.rules,
                    &args.runs,
                    args.until,
                    args.all,
                    &mut out,
                    &mut err,
                )
                .map(|_| ())
                .map_err(|e| e.to_string()),
            };
            out.flush()?;
            match result {
                Ok(()) => Ok(0),
                Err(e) => {
                    eprintln!("syncwarden backtest: {e}");
                    Ok(1)
                }
            }
        }
        Command::Silence { command } => silence(command).await,
        Command::Report(args) => crate::client::report(args).await,
        Command::Exec(args) => crate::client::exec(args).await,
    }
}

fn rules_check(dir: &std::path::Path) -> i32 {
    match evaluate::load_dir(dir) {
        Ok(rules) => {
            println!(
                "{}: {} rule(s), {} sync(s) in the catalogue: OK",
                dir.display(),
                rules.rules.len(),
                rules.syncs.len()
            );
            0
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{} problem(s) found", problems.len());
            1
        }
    }
}

pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .context("building HTTP client")
}

pub(crate) async fn send(
    client: &ClientArgs,
    req: reqwest::RequestBuilder,
) -> anyhow::Result<serde_json::Value> {
    let req = match &client.token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach syncwarden at {}", client.server))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        bail!("syncwarden answered {status}: {body}");
    }
    Ok(body)
}

async fn silence(cmd: SilenceCommand) -> anyhow::Result<i32> {
    let http = http_client()?;
    match cmd {
        SilenceCommand::Add {
            client,
            sync,
            rule,
            labels,
            duration,
            author,
            comment,
        } => {
            let labels: std::collections::BTreeMap<_, _> = labels.into_iter().collect();
            let body = serde_json::json!({
                "sync": sync, "rule": rule, "labels": labels,
                "duration": duration, "author": author, "comment": comment,
            });
            let url = api_url(&client.server, &["v1", "silences"])?;
            let v = send(&client, http.post(url).json(&body)).await?;
            println!(
                "silence {} active until {}",
                v["id"].as_str().unwrap_or("?"),
                v["ends_at"].as_str().unwrap_or("?")
            );
        }
        SilenceCommand::List { client, all } => {
            let mut url = api_url(&client.server, &["v1", "silences"])?;
            url.query_pairs_mut().append_pair("all", &all.to_string());
            let v = send(&client, http.get(url)).await?;
            let list = v["silences"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("no silences");
            }
            for s in list {
                println!(
                    "{}  rule={} sync={} labels={}  {} → {}  by {}: {}{}",
                    s["id"].as_str().unwrap_or("?"),
                    s["rule"].as_str().unwrap_or("?"),
                    s["sync"].as_str().unwrap_or("?"),
                    s["labels"],
                    s["starts_at"].as_str().unwrap_or("?"),
                    s["ends_at"].as_str().unwrap_or("?"),
                    s["author"].as_str().unwrap_or("?"),
                    s["comment"].as_str().unwrap_or(""),
                    if s["active"].as_bool() == Some(true) {
                        "  [active]"
                    } else {
                        ""
                    },
                );
            }
        }
        SilenceCommand::Expire { client, id } => {
            let url = api_url(&client.server, &["v1", "silences", &id])?;
            send(&client, http.delete(url)).await?;
            println!("silence {id} expired");
        }
    }
    Ok(0)
}

/// The URL of an API path on the sidecar; each segment is percent-encoded
/// (sync ids contain `/` and `:`).
pub(crate) fn api_url(server: &str, segments: &[&str]) -> anyhow::Result<reqwest::Url> {
    let mut url =
        reqwest::Url::parse(server).with_context(|| format!("--server {server:?} is not a URL"))?;
    url.path_segments_mut()
        .map_err(|_| anyhow::anyhow!("--server {server:?} cannot take a path"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}
