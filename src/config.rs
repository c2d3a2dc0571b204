//! One typed configuration: `syncwarden.toml` + environment + flags.
//!
//! Every key is optional, so `syncwarden serve` runs with no file at all
//! (SPEC §8). Any string value may be `"env:VAR"`: such values are resolved
//! from the environment while loading, before deserialisation, so the typed
//! structs never see the indirection. Values that are secrets are held in
//! [`Secret`], whose `Debug` prints `[redacted]`; `Config` can therefore be
//! logged without leaking tokens, passwords or webhook URLs.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use thiserror::Error;

/// A secret string (token, password, signing key, webhook URL). Never
/// printed by `Debug`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(SecretString::from(s.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A secret, or a list of them (rotation: the old and the new key are both
/// accepted while senders switch over).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Secrets {
    One(Secret),
    Many(Vec<Secret>),
}

impl Secrets {
    pub fn list(&self) -> Vec<&Secret> {
        match self {
            Secrets::One(s) => vec![s],
            Secrets::Many(v) => v.iter().collect(),
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "config file {path}: key `{key}` refers to environment variable {var}, which is not set"
    )]
    MissingEnv {
        path: PathBuf,
        key: String,
        var: String,
    },
    #[error("config: {0}")]
    Invalid(String),
}

/// The whole configuration. Field docs double as the config reference in
/// README.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds. Loopback by default: binding another
    /// address without API tokens is refused unless `allow_unauthenticated`.
    pub listen: SocketAddr,
    /// Database: a SQLite path (or `sqlite:` URL), the embedded default, or
    /// a `postgres://user:password@host/db` URL for several replicas sharing
    /// one PostgreSQL database. Logs show it without the password.
    pub database: String,
    /// Directory of rule files.
    pub rules: PathBuf,
    /// Directory of notice templates.
    pub templates: PathBuf,
    /// Base of the links placed in notices.
    pub public_url: String,
    /// Permit a non-loopback `listen` with no tokens configured.
    pub allow_unauthenticated: bool,
    pub api: ApiConfig,
    pub store: StoreConfig,
    pub channels: ChannelsConfig,
    pub delivery: DeliveryConfig,
    pub telemetry: TelemetryConfig,
    /// Vendor sources (webhook secrets, API pollers). Typed by the adapters
    /// that read them.
    pub sources: toml::Table,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8686)),
            database: "syncwarden.db".into(),
            rules: "rules".into(),
            templates: "templates".into(),
            public_url: "http://localhost:8686".into(),
            allow_unauthenticated: false,
            api: ApiConfig::default(),
            store: StoreConfig::default(),
            channels: ChannelsConfig::default(),
            delivery: DeliveryConfig::default(),
            telemetry: TelemetryConfig::default(),
            sources: toml::Table::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Bearer tokens accepted on `/v1` and the UI; none = no auth.
    pub tokens: Vec<Secret>,
    /// Largest request body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Per-client request rate (burst the same); 0 disables the limit.
    pub requests_per_second: u32,
    /// A request not answered within this (reading its body included) is
    /// answered 408 (default `30s`).
    #[serde(with = "humantime_serde_compat")]
    pub request_timeout: std::time::Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            tokens: Vec::new(),
            max_body_bytes: 10 * 1024 * 1024,
            requests_per_second: 200,
            request_timeout: std::time::Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Record errors kept per run; the true total is always kept.
    pub record_errors_per_run: usize,
    /// Runs per ingest transaction at most (group commit).
    pub max_batch_runs: usize,
    /// How long a write waits for a lock another process holds on the
    /// database before the request is answered 503 (default `5s`).
    #[serde(with = "humantime_serde_compat")]
    pub busy_timeout: std::time::Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            record_errors_per_run: 1000,
            max_batch_runs: 5000,
            busy_timeout: crate::store::DEFAULT_BUSY_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelsConfig {
    pub email: BTreeMap<String, EmailChannel>,
    pub slack: BTreeMap<String, SlackChannel>,
    pub webhook: BTreeMap<String, WebhookChannel>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailChannel {
    /// `smtp://user:pass@host:port?tls=required|wrapper|none`; absent =
    /// write `.eml` files to `outbox_dir`.
    pub smtp_url: Option<Secret>,
    pub outbox_dir: PathBuf,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Also mail the `owner` of the sync from the `[[sync]]` catalogue.
    pub include_owner: bool,
    /// governor quota, e.g. `30/min`, `5/s`, `100/h`.
    pub rate: Option<String>,
    pub burst: Option<u32>,
    /// Longest wait for the SMTP server at each step (connect, greeting,
    /// each command, the message) before the attempt counts as a transient
    /// failure (default `30s`).
    #[serde(with = "humantime_serde_option")]
    pub timeout: Option<std::time::Duration>,
}

impl Default for EmailChannel {
    fn default() -> Self {
        EmailChannel {
            smtp_url: None,
            outbox_dir: "outbox".into(),
            from: "syncwarden@localhost".into(),
            to: Vec::new(),
            cc: Vec::new(),
            include_owner: true,
            rate: None,
            burst: None,
            timeout: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackChannel {
    pub webhook_url: Secret,
    #[serde(default)]
    pub rate: Option<String>,
    #[serde(default)]
    pub burst: Option<u32>,
    /// Whole-request timeout of one delivery attempt (default `10s`); a
    /// timed-out attempt is retried like any transient failure.
    #[serde(default, with = "humantime_serde_option")]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    pub url: Secret,
    /// HMAC-SHA256 key for the signature header; absent = unsigned.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub rate: Option<String>,
    #[serde(default)]
    pub burst: Option<u32>,
    /// Whole-request timeout of one delivery attempt (default `10s`).
    #[serde(default, with = "humantime_serde_option")]
    pub timeout: Option<std::time::Duration>,
}

/// How the outbox worker retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// First retry delay after a transient failure; doubles each attempt
    /// (with jitter) up to `retry_max`.
    #[serde(with = "humantime_serde_compat")]
    pub retry_initial: std::time::Duration,
    #[serde(with = "humantime_serde_compat")]
    pub retry_max: std::time::Duration,
    /// How long a replica's claim on a delivery it is sending lasts. If the
    /// replica dies mid-send, another one retries the delivery once the
    /// claim runs out; keep it above the slowest channel's `timeout`.
    #[serde(with = "humantime_serde_compat")]
    pub claim_lease: std::time::Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            retry_initial: std::time::Duration::from_secs(2),
            retry_max: std::time::Duration::from_secs(600),
            claim_lease: std::time::Duration::from_secs(120),
        }
    }
}

/// An optional duration (`timeout = "10s"`), absent = the default.
mod humantime_serde_option {
    use serde::Deserializer;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        super::humantime_serde_compat::deserialize(d).map(Some)
    }
}

/// Durations written as `2s`, `10m`, `1h` in the config file.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
        let s = String::deserialize(d)?;
        let v = humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!("{s:?} is not a duration like 30s or 5m: {e}"))
        })?;
        if v.is_zero() {
            return Err(serde::de::Error::custom("duration must be > 0"));
        }
        Ok(v)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP base endpoint (`http://collector:4318`; `/v1/metrics` and
    /// `/v1/traces` are appended); absent = `OTEL_EXPORTER_OTLP_ENDPOINT`, or off.
    pub otlp_endpoint: Option<String>,
    /// Default `OTEL_SERVICE_NAME`, else `syncwarden`.
    pub service_name: Option<String>,
    /// Serve Prometheus text on `GET /metrics`.
    pub prometheus: bool,
    /// How often metrics are pushed over OTLP (default `60s`).
    #[serde(with = "humantime_serde_compat")]
    pub export_interval: std::time::Duration,
    /// Most distinct `sync_id` attribute values on metrics; later ones are
    /// recorded as `sync_id="other"` (default 2000).
    pub max_sync_ids: usize,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: None,
            prometheus: false,
            export_interval: std::time::Duration::from_secs(60),
            max_sync_ids: 2000,
        }
    }
}

/// Flags that override the file (SPEC §8: flags win).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub database: Option<String>,
    pub rules: Option<PathBuf>,
    pub templates: Option<PathBuf>,
}

impl Config {
    /// Loads `path` if given (a missing explicit file is an error), applies
    /// the overrides and checks the cross-field rules.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                Config::from_toml(&text, p, &|var| std::env::var(var).ok())?
            }
            None => Config::default(),
        };
        config.apply(overrides);
        config.check()?;
        Ok(config)
    }

    /// Parses TOML text, resolving `env:VAR` strings with `env`.
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        resolve_env(&mut table, "", path, env)?;
        Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    pub fn apply(&mut self, o: &Overrides) {
        if let Some(v) = o.listen {
            self.listen = v;
        }
        if let Some(v) = &o.database {
            self.database = v.clone();
        }
        if let Some(v) = &o.rules {
            self.rules = v.clone();
        }
        if let Some(v) = &o.templates {
            self.templates = v.clone();
        }
    }

    /// Cross-field rules that serde cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        if !self.listen.ip().is_loopback()
            && self.api.tokens.is_empty()
            && !self.allow_unauthenticated
        {
            return Err(ConfigError::Invalid(format!(
                "listen = {} is not a loopback address and no [api] tokens are configured; \
                 add tokens or set allow_unauthenticated = true",
                self.listen
            )));
        }
        if self.api.max_body_bytes == 0 {
            return Err(ConfigError::Invalid(
                "[api] max_body_bytes must be > 0".into(),
            ));
        }
        if self.store.max_batch_runs == 0 {
            return Err(ConfigError::Invalid(
                "[store] max_batch_runs must be > 0".into(),
            ));
        }
        Ok(())
    }
}

/// Replaces every `"env:VAR"` string in the tree by the variable's value.
fn resolve_env(
    table: &mut toml::Table,
    prefix: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for (k, v) in table.iter_mut() {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        resolve_value(v, &key, path, env)?;
    }
    Ok(())
}

fn resolve_value(
    v: &mut toml::Value,
    key: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match v {
        toml::Value::String(s) => {
            if let Some(var) = s.strip_prefix("env:") {
                let value = env(var).ok_or_else(|| ConfigError::MissingEnv {
                    path: path.to_path_buf(),
                    key: key.to_string(),
                    var: var.to_string(),
                })?;
                *s = value;
            }
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                resolve_value(item, &format!("{key}[{i}]"), path, env)?;
            }
        }
        toml::Value::Table(t) => resolve_env(t, key, path, env)?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        (var == "TOKEN").then(|| "s3cret-token".to_string())
    }

    #[test]
    fn an_empty_file_gives_the_embedded_defaults() {
        let c = Config::from_toml("", Path::new("x.toml"), &env).expect("parses");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8686");
        assert_eq!(c.database, "syncwarden.db");
        assert_eq!(c.api.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(c.store.record_errors_per_run, 1000);
        c.check().expect("defaults are valid");
    }

    #[test]
    fn env_indirection_resolves_and_secrets_stay_out_of_debug() {
        let c = Config::from_toml(
            "[api]\ntokens = [\"env:TOKEN\"]\n",
            Path::new("x.toml"),
            &env,
        )
        .expect("parses");
        assert_eq!(c.api.tokens[0].expose(), "s3cret-token");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn a_missing_env_var_names_the_key_and_the_variable() {
        let err = Config::from_toml(
            "[channels.slack.x]\nwebhook_url = \"env:NOPE\"\n",
            Path::new("x.toml"),
            &env,
        )
        .expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("channels.slack.x.webhook_url"), "{msg}");
        assert!(msg.contains("NOPE"), "{msg}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err =
            Config::from_toml("lisen = \"x\"\n", Path::new("x.toml"), &env).expect_err("must fail");
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn the_default_listen_address_is_loopback() {
        assert!(Config::default().listen.ip().is_loopback());
        assert!(Config::default().check().is_ok());
    }

    #[test]
    fn a_public_bind_without_tokens_is_refused() {
        let mut c = Config {
            listen: "0.0.0.0:8686".parse().expect("addr"),
            ..Config::default()
        };
        assert!(c.check().is_err());
        c.allow_unauthenticated = true;
        assert!(c.check().is_ok());
        c.allow_unauthenticated = false;
        c.api.tokens = vec![Secret::new("t")];
        assert!(c.check().is_ok());
    }
}
