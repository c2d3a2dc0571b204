//! `spawn_app()` and friends: a real syncwarden on 127.0.0.1:0 with a
//! temporary SQLite database and a rules directory written by the test.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value;
use syncwarden::app::App;
use syncwarden::config::{Config, Secret};
use tokio::sync::oneshot;

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Options for a test server.
#[derive(Default, Clone)]
pub struct Opts {
    pub rules: Option<String>,
    pub tokens: Vec<String>,
    pub max_body_bytes: Option<usize>,
    pub record_errors_per_run: Option<usize>,
    pub requests_per_second: Option<u32>,
    /// TOML text of the `[sources]` table (without the `[sources]` header:
    /// `[census]`, `[[hightouch]]`, …), parsed into `Config.sources`.
    pub sources: Option<String>,
    /// TOML text of the `[channels]` table (without its header:
    /// `[email.default]`, `[slack.x]`, …). Without it, `email:default`
    /// writes `.eml` files into the test's temporary directory.
    pub channels: Option<String>,
    pub public_url: Option<String>,
    /// `[telemetry]` settings (OTLP endpoint, `/metrics`, …).
    pub telemetry: Option<syncwarden::config::TelemetryConfig>,
    /// `api.request_timeout`.
    pub request_timeout: Option<std::time::Duration>,
    /// `store.busy_timeout` (fault tests keep it short).
    pub busy_timeout: Option<std::time::Duration>,
    /// Database path instead of `syncwarden.db` in the test's directory
    /// (fault tests put it on a small tmpfs).
    pub database: Option<std::path::PathBuf>,
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn config_for(dir: &Path, opts: &Opts) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database: dir.join("syncwarden.db").display().to_string(),
        rules: dir.join("rules"),
        templates: dir.join("templates"),
        ..Config::default()
    };
    c.api.tokens = opts.tokens.iter().map(Secret::new).collect();
    // Tests fire many requests from one address: no per-client limit unless
    // a test asks for one.
    c.api.requests_per_second = opts.requests_per_second.unwrap_or(0);
    if let Some(n) = opts.max_body_bytes {
        c.api.max_body_bytes = n;
    }
    if let Some(n) = opts.record_errors_per_run {
        c.store.record_errors_per_run = n;
    }
    if let Some(text) = &opts.sources {
        c.sources = toml::from_str(text).expect("sources TOML");
    }
    match &opts.channels {
        Some(text) => c.channels = toml::from_str(text).expect("channels TOML"),
        None => {
            c.channels.email.insert(
                "default".into(),
                syncwarden::config::EmailChannel {
                    outbox_dir: dir.join("outbox"),
                    ..Default::default()
                },
            );
        }
    }
    if let Some(url) = &opts.public_url {
        c.public_url = url.clone();
    }
    if let Some(t) = &opts.telemetry {
        c.telemetry = t.clone();
    }
    if let Some(d) = opts.request_timeout {
        c.api.request_timeout = d;
    }
    if let Some(d) = opts.busy_timeout {
        c.store.busy_timeout = d;
    }
    if let Some(db) = &opts.database {
        c.database = db.display().to_string();
    }
    // Retries in milliseconds, not minutes: fault tests wait for them.
    c.delivery.retry_initial = std::time::Duration::from_millis(50);
    c.delivery.retry_max = std::time::Duration::from_millis(400);
    c
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Opts::default()).await
}

pub async fn spawn_with(opts: Opts) -> TestApp {
    install_crypto();
    let dir = tempfile::tempdir().expect("tempdir");
    if let Some(rules) = &opts.rules {
        std::fs::create_dir_all(dir.path().join("rules")).expect("rules dir");
        std::fs::write(dir.path().join("rules/rules.toml"), rules).expect("rules file");
    }
    start(dir, opts).await
}

async fn start(dir: tempfile::TempDir, opts: Opts) -> TestApp {
    let config = config_for(dir.path(), &opts);
    let app = App::build(config).await.expect("app builds");
    let addr = app.addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let join = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        http: reqwest::Client::new(),
        dir,
        token: opts.tokens.first().cloned(),
        stop: Some(stop),
        join: Some(join),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .auth(self.http.post(self.url(path)).json(body))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .auth(
                self.http
                    .post(self.url(path))
                    .header("content-type", "application/json")
                    .body(body),
            )
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .auth(self.http.get(self.url(path)))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let resp = self
            .auth(self.http.delete(self.url(path)))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Stops the server gracefully and starts a new one on the same
    /// database and rules.
    pub async fn restart(mut self, opts: Opts) -> TestApp {
        self.shutdown().await;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        start(dir, opts).await
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            join.await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }
}

/// A canonical run with sensible defaults, for tests to adjust.
pub fn run(sync: &str, run_id: &str, status: &str, finished_at: &str) -> Value {
    serde_json::json!({
        "sync_id": sync,
        "run_id": run_id,
        "status": status,
        "finished_at": finished_at,
    })
}

/// An RFC 3339 timestamp `minutes` from now (negative = in the past).
pub fn minutes_from_now(minutes: i64) -> String {
    syncwarden::model::Timestamp::now()
        .plus_millis(minutes * 60_000)
        .to_rfc3339()
}
