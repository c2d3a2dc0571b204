//! `spawn_app()` and friends: a real syncwarden on 127.0.0.1:0 with a
//! temporary database and a rules directory written by the test.
//!
//! The database is a SQLite file in the test's directory, or, with
//! `SYNCWARDEN_TEST_BACKEND=postgres`, a fresh PostgreSQL database created
//! on the server at `SYNCWARDEN_TEST_PG` (an admin URL; `bash .ci/run`
//! starts a throwaway cluster) and dropped with the test's server.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use syncwarden::app::App;
use syncwarden::config::{Config, Secret};
use tokio::sync::oneshot;

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub token: Option<String>,
    db: Option<TestDb>,
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
    /// (fault tests put it on a small tmpfs). An explicit path is SQLite on
    /// either backend of the test matrix.
    pub database: Option<std::path::PathBuf>,
}

/// Whether the suite runs against PostgreSQL (`SYNCWARDEN_TEST_BACKEND=postgres`)
/// rather than SQLite (unset, empty or `sqlite`).
pub fn backend_is_postgres() -> bool {
    match std::env::var("SYNCWARDEN_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => false,
        Ok("postgres") => true,
        Ok(other) => panic!("SYNCWARDEN_TEST_BACKEND={other:?}: expected `sqlite` or `postgres`"),
    }
}

/// The admin URL of the PostgreSQL server the matrix creates databases on.
fn pg_admin_url() -> String {
    match std::env::var("SYNCWARDEN_TEST_PG") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "SYNCWARDEN_TEST_BACKEND=postgres needs SYNCWARDEN_TEST_PG, the URL of a \
             PostgreSQL server on which the tests may create and drop databases \
             (e.g. postgres://postgres@127.0.0.1:55432/postgres; `bash .ci/run` starts one)"
        ),
    }
}

/// `url` with its database (the path) replaced by `name`; the query string
/// is kept.
fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority..].find('/') {
        Some(i) => &base[..authority + i],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// The database of one test server: `syncwarden.db` in the test's
/// directory, or a fresh PostgreSQL database under the PostgreSQL matrix,
/// dropped (best effort) when this value is.
pub struct TestDb {
    url: String,
    /// `(admin URL, database name)` of a database created for the test.
    created: Option<(String, String)>,
}

static DATABASES: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    fn sqlite(path: &Path) -> TestDb {
        TestDb {
            url: path.display().to_string(),
            created: None,
        }
    }

    /// A fresh database on `SYNCWARDEN_TEST_PG` (whatever the matrix).
    pub async fn postgres() -> TestDb {
        use sqlx::Connection;
        let admin = pg_admin_url();
        let name = format!(
            "sw_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("connect to SYNCWARDEN_TEST_PG ({admin}): {e}"));
        // A leftover of an earlier run whose process had the same id.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("drop the old database {name}: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("create the test database {name}: {e}"));
        let _ = conn.close().await;
        TestDb {
            url: with_database_name(&admin, &name),
            created: Some((admin, name)),
        }
    }

    /// What goes into `Config.database` (or a config file's `database`).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn is_postgres(&self) -> bool {
        self.created.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.created.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on:
        // the statement runs on a thread with its own. `FORCE` ends the
        // connections a server that was never shut down still holds.
        let _ = std::thread::spawn(move || {
            use sqlx::Connection;
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(10), async {
                    let mut conn = sqlx::PgConnection::connect(&admin).await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await?;
                    conn.close().await
                })
                .await;
            });
        })
        .join();
    }
}

/// A database for a test server in `dir`: a fresh PostgreSQL database
/// under the PostgreSQL matrix, else `dir/syncwarden.db`. Tests that start
/// the binary with a config file of their own put `url()` in its
/// `database` line and keep the value alive while the server runs.
pub async fn test_database(dir: &Path) -> TestDb {
    if backend_is_postgres() {
        TestDb::postgres().await
    } else {
        TestDb::sqlite(&dir.join("syncwarden.db"))
    }
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn config_for(dir: &Path, database: &str, opts: &Opts) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database: database.to_owned(),
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
    // Retries in milliseconds, not minutes: fault tests wait for them.
    c.delivery.retry_initial = std::time::Duration::from_millis(50);
    c.delivery.retry_max = std::time::Duration::from_millis(400);
    // A claim a killed server left is retried soon (PostgreSQL keeps it).
    c.delivery.claim_lease = std::time::Duration::from_secs(2);
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
    start(dir, opts, None).await
}

/// Starts a server in `dir` on an explicit `opts.database` (SQLite), else
/// on `db` (a restart's PostgreSQL database), else on a fresh test database.
async fn start(dir: tempfile::TempDir, opts: Opts, db: Option<TestDb>) -> TestApp {
    let db = match (&opts.database, db) {
        (Some(path), _) => TestDb::sqlite(path),
        (None, Some(db)) => db,
        (None, None) => test_database(dir.path()).await,
    };
    let config = config_for(dir.path(), db.url(), &opts);
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
        db: Some(db),
        stop: Some(stop),
        join: Some(join),
    }
}

impl TestApp {
    /// The PostgreSQL URL of this server's database (`None` on SQLite).
    pub fn database_url(&self) -> Option<&str> {
        self.db
            .as_ref()
            .filter(|d| d.is_postgres())
            .map(|d| d.url())
    }

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
        // SQLite: the same file in the same directory. PostgreSQL: the same
        // database, handed over so it is not dropped with `self`.
        let db = self.db.take().filter(TestDb::is_postgres);
        start(dir, opts, db).await
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

#[test]
fn with_database_name_replaces_only_the_database_name() {
    assert_eq!(
        with_database_name("postgres://postgres@127.0.0.1:55432/postgres", "x_1"),
        "postgres://postgres@127.0.0.1:55432/x_1"
    );
    assert_eq!(
        with_database_name("postgres://u:p@h/postgres?sslmode=disable", "x_1"),
        "postgres://u:p@h/x_1?sslmode=disable"
    );
    assert_eq!(
        with_database_name("postgres://h:5432", "x_1"),
        "postgres://h:5432/x_1"
    );
}
