//! The `[sources.*]` section of `syncwarden.toml`, typed (SPEC §8).
//!
//! `Config.sources` arrives as a raw TOML table (with `env:VAR` strings
//! already resolved); [`Sources::parse`] turns it into one struct per vendor
//! and checks it at start-up, so a typo or a missing token stops `serve`
//! with a message naming the key instead of surfacing as a 404 or a silent
//! poller later. Census and Hightouch may be arrays of tables
//! (`[[sources.census]]`, each with a `name`) for several workspaces; the
//! webhook-only sources take a list of secrets instead, which covers several
//! senders as well as rotation.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Secret, Secrets};
use crate::ingest::adapters::signature::standard_webhook_key;

/// A problem in `[sources]`, naming the key (`sources.census[1].api_url`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SourcesError {
    pub key: String,
    pub message: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> SourcesError {
    SourcesError {
        key: key.into(),
        message: message.into(),
    }
}

/// Every configured source. Absent sources are empty / `None`: their
/// webhooks answer 404 and nothing is polled.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub census: Vec<CensusSource>,
    pub hightouch: Vec<HightouchSource>,
    pub fivetran: Option<WebhookSource>,
    pub dbt: Option<WebhookSource>,
    pub airbyte: Option<WebhookSource>,
    pub generic: Option<WebhookSource>,
}

/// One Census workspace: a webhook, an API to fetch counts, a poller.
#[derive(Debug, Clone)]
pub struct CensusSource {
    /// `census` or `census:<name>`: the key in `/readyz` and the cursors.
    pub label: String,
    /// Secrets of `X-Signature`; empty = the webhook answers 404.
    pub webhook_secrets: Vec<Secret>,
    /// Bearer token of the Census API; without it the webhook stores the
    /// outcome only (no counts, no record errors) and nothing is polled.
    pub api_token: Option<Secret>,
    /// `None` = webhook-driven only.
    pub poll_interval: Option<Duration>,
    /// Rejected records fetched per run as its `record_errors` sample.
    pub record_errors_sample: usize,
    pub api: ApiSettings,
}

/// One Hightouch workspace, polled.
#[derive(Debug, Clone)]
pub struct HightouchSource {
    pub label: String,
    pub api_token: Secret,
    pub poll_interval: Duration,
    pub api: ApiSettings,
}

/// How a vendor API is called: where, how fast, how patiently.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub api_url: reqwest::Url,
    /// On the first poll of a sync (no cursor yet), runs that finished this
    /// long ago or less are taken; older history is left alone so a fresh
    /// install does not page anyone about last week.
    pub backfill: Duration,
    /// Per request, connection included.
    pub request_timeout: Duration,
    /// governor quota on this workspace's API calls (burst the same).
    pub requests_per_second: u32,
    /// Retries of a request after a 429, a 5xx or a transport error.
    pub max_retries: u32,
    /// First retry wait, doubled at each retry.
    pub backoff: Duration,
    /// Cap on any wait, `Retry-After` included.
    pub max_backoff: Duration,
}

/// A webhook-only source: its secrets (signing keys or path tokens).
#[derive(Debug, Clone)]
pub struct WebhookSource {
    pub secrets: Vec<Secret>,
}

const KINDS: [&str; 6] = [
    "census",
    "hightouch",
    "fivetran",
    "dbt",
    "airbyte",
    "generic",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCensus {
    name: Option<String>,
    webhook_secret: Option<Secrets>,
    api_token: Option<Secret>,
    api_url: Option<String>,
    poll_interval: Option<String>,
    record_errors_sample: Option<usize>,
    backfill: Option<String>,
    request_timeout: Option<String>,
    requests_per_second: Option<u32>,
    max_retries: Option<u32>,
    backoff: Option<String>,
    max_backoff: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHightouch {
    name: Option<String>,
    api_token: Option<Secret>,
    api_url: Option<String>,
    poll_interval: Option<String>,
    backfill: Option<String>,
    request_timeout: Option<String>,
    requests_per_second: Option<u32>,
    max_retries: Option<u32>,
    backoff: Option<String>,
    max_backoff: Option<String>,
}

/// The API keys shared by the polled sources. (Repeated in each raw struct
/// rather than `#[serde(flatten)]`ed: serde's `deny_unknown_fields` does not
/// work through `flatten`.)
struct RawTuning<'a> {
    backfill: Option<&'a str>,
    request_timeout: Option<&'a str>,
    requests_per_second: Option<u32>,
    max_retries: Option<u32>,
    backoff: Option<&'a str>,
    max_backoff: Option<&'a str>,
}

macro_rules! tuning {
    ($raw:expr) => {
        RawTuning {
            backfill: $raw.backfill.as_deref(),
            request_timeout: $raw.request_timeout.as_deref(),
            requests_per_second: $raw.requests_per_second,
            max_retries: $raw.max_retries,
            backoff: $raw.backoff.as_deref(),
            max_backoff: $raw.max_backoff.as_deref(),
        }
    };
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigned {
    webhook_secret: Option<Secrets>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAirbyte {
    webhook_token: Option<Secrets>,
}

impl Sources {
    /// Types and checks `Config.sources`.
    pub fn parse(table: &toml::Table) -> Result<Sources, SourcesError> {
        let mut sources = Sources::default();
        for (kind, value) in table {
            let key = format!("sources.{kind}");
            match kind.as_str() {
                "census" => {
                    for (key, t) in tables(&key, value, true)? {
                        sources.census.push(census(&key, t)?);
                    }
                    unique_labels(&key, sources.census.iter().map(|c| c.label.as_str()))?;
                }
                "hightouch" => {
                    for (key, t) in tables(&key, value, true)? {
                        sources.hightouch.push(hightouch(&key, t)?);
                    }
                    unique_labels(&key, sources.hightouch.iter().map(|c| c.label.as_str()))?;
                }
                "fivetran" | "dbt" | "generic" => {
                    let (key, t) = single(&key, value)?;
                    let raw: RawSigned = typed(&key, t)?;
                    let secrets =
                        secrets(&format!("{key}.webhook_secret"), raw.webhook_secret, true)?;
                    if kind == "generic" {
                        for (i, s) in secrets.iter().enumerate() {
                            standard_webhook_key(s.expose()).map_err(|_| {
                                err(
                                    format!("{key}.webhook_secret[{i}]"),
                                    "is not a Standard Webhooks secret: expected whsec_<base64>",
                                )
                            })?;
                        }
                    }
                    let source = Some(WebhookSource { secrets });
                    match kind.as_str() {
                        "fivetran" => sources.fivetran = source,
                        "dbt" => sources.dbt = source,
                        _ => sources.generic = source,
                    }
                }
                "airbyte" => {
                    let (key, t) = single(&key, value)?;
                    let raw: RawAirbyte = typed(&key, t)?;
                    let secrets =
                        secrets(&format!("{key}.webhook_token"), raw.webhook_token, true)?;
                    sources.airbyte = Some(WebhookSource { secrets });
                }
                other => {
                    return Err(err(
                        key,
                        format!(
                            "unknown source {other:?}; expected one of {}",
                            KINDS.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(sources)
    }

    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.census.is_empty()
            && self.hightouch.is_empty()
            && self.fivetran.is_none()
            && self.dbt.is_none()
            && self.airbyte.is_none()
            && self.generic.is_none()
    }
}

/// A copy of `Config.sources` fit for logs: every secret-bearing key
/// (`webhook_secret`, `webhook_token`, `api_token`) reads `[redacted]`.
pub fn redacted(table: &toml::Table) -> toml::Table {
    fn walk(v: &mut toml::Value) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t.iter_mut() {
                    if matches!(k.as_str(), "webhook_secret" | "webhook_token" | "api_token") {
                        *v = toml::Value::String("[redacted]".into());
                    } else {
                        walk(v);
                    }
                }
            }
            toml::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut copy = toml::Value::Table(table.clone());
    walk(&mut copy);
    match copy {
        toml::Value::Table(t) => t,
        _ => toml::Table::new(),
    }
}

/// The tables of a source given as one table or an array of tables, each
/// with its key. In an array every entry needs a `name`.
fn tables<'a>(
    key: &str,
    value: &'a toml::Value,
    allow_array: bool,
) -> Result<Vec<(String, &'a toml::Table)>, SourcesError> {
    match value {
        toml::Value::Table(t) => Ok(vec![(key.to_owned(), t)]),
        toml::Value::Array(items) if allow_array => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let key = format!("{key}[{i}]");
                match item {
                    toml::Value::Table(t) if t.contains_key("name") => Ok((key, t)),
                    toml::Value::Table(_) => Err(err(
                        key,
                        "needs a `name` (several workspaces of one vendor are told apart by it)",
                    )),
                    _ => Err(err(key, "expected a table")),
                }
            })
            .collect(),
        _ => Err(err(key, "expected a table")),
    }
}

fn single<'a>(
    key: &str,
    value: &'a toml::Value,
) -> Result<(String, &'a toml::Table), SourcesError> {
    match value {
        toml::Value::Table(t) => Ok((key.to_owned(), t)),
        toml::Value::Array(_) => Err(err(
            key,
            "expected a table, not an array: for several senders or for rotation, \
             give the secret as a list",
        )),
        _ => Err(err(key, "expected a table")),
    }
}

fn typed<T: for<'de> Deserialize<'de>>(key: &str, t: &toml::Table) -> Result<T, SourcesError> {
    // serde names the unknown or missing field; the key names the table.
    toml::Value::Table(t.clone())
        .try_into()
        .map_err(|e: toml::de::Error| err(key, e.message().trim().to_owned()))
}

fn label(kind: &str, key: &str, name: Option<String>) -> Result<String, SourcesError> {
    let Some(name) = name else {
        return Ok(kind.to_owned());
    };
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(err(
            format!("{key}.name"),
            format!("{name:?} must be 1–64 characters of A-Z a-z 0-9 _ -"),
        ));
    }
    Ok(format!("{kind}:{name}"))
}

fn unique_labels<'a>(key: &str, labels: impl Iterator<Item = &'a str>) -> Result<(), SourcesError> {
    let mut seen = BTreeSet::new();
    for l in labels {
        if !seen.insert(l) {
            return Err(err(key, format!("the name of {l:?} is used twice")));
        }
    }
    Ok(())
}

fn secrets(key: &str, given: Option<Secrets>, required: bool) -> Result<Vec<Secret>, SourcesError> {
    let list: Vec<Secret> = match given {
        None if required => return Err(err(key, "is required")),
        None => return Ok(Vec::new()),
        Some(s) => s.list().into_iter().cloned().collect(),
    };
    if list.is_empty() {
        return Err(err(key, "is an empty list"));
    }
    if let Some(i) = list.iter().position(|s| s.expose().trim().is_empty()) {
        return Err(err(
            format!("{key}[{i}]"),
            "is empty (an unset environment variable?)",
        ));
    }
    Ok(list)
}

fn duration(
    key: &str,
    text: Option<&str>,
    default: Duration,
    allow_zero: bool,
) -> Result<Duration, SourcesError> {
    let Some(text) = text else {
        return Ok(default);
    };
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        err(
            key,
            format!("{text:?} is not a duration such as 30s, 5m or 1h ({e})"),
        )
    })?;
    if d.is_zero() && !allow_zero {
        return Err(err(key, format!("{text:?} must be longer than zero")));
    }
    Ok(d)
}

fn api_settings(
    key: &str,
    url: Option<String>,
    default_url: &str,
    t: &RawTuning<'_>,
) -> Result<ApiSettings, SourcesError> {
    let text = url.as_deref().unwrap_or(default_url);
    let api_url = reqwest::Url::parse(text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
        .ok_or_else(|| {
            err(
                format!("{key}.api_url"),
                format!("{text:?} is not an http(s) URL"),
            )
        })?;
    let requests_per_second = t.requests_per_second.unwrap_or(5);
    if requests_per_second == 0 {
        return Err(err(
            format!("{key}.requests_per_second"),
            "must be at least 1",
        ));
    }
    let backoff = duration(
        &format!("{key}.backoff"),
        t.backoff,
        Duration::from_secs(1),
        false,
    )?;
    let max_backoff = duration(
        &format!("{key}.max_backoff"),
        t.max_backoff,
        Duration::from_secs(300),
        false,
    )?;
    if max_backoff < backoff {
        return Err(err(
            format!("{key}.max_backoff"),
            "must not be shorter than backoff",
        ));
    }
    Ok(ApiSettings {
        api_url,
        backfill: duration(
            &format!("{key}.backfill"),
            t.backfill,
            Duration::from_secs(3600),
            true,
        )?,
        request_timeout: duration(
            &format!("{key}.request_timeout"),
            t.request_timeout,
            Duration::from_secs(30),
            false,
        )?,
        requests_per_second,
        max_retries: t.max_retries.unwrap_or(3),
        backoff,
        max_backoff,
    })
}

fn census(key: &str, t: &toml::Table) -> Result<CensusSource, SourcesError> {
    let raw: RawCensus = typed(key, t)?;
    let label = label("census", key, raw.name)?;
    let webhook_secrets = secrets(&format!("{key}.webhook_secret"), raw.webhook_secret, false)?;
    let api_token = raw.api_token;
    if api_token
        .as_ref()
        .is_some_and(|t| t.expose().trim().is_empty())
    {
        return Err(err(
            format!("{key}.api_token"),
            "is empty (an unset environment variable?)",
        ));
    }
    let poll_interval = raw
        .poll_interval
        .as_deref()
        .map(|p| {
            duration(
                &format!("{key}.poll_interval"),
                Some(p),
                Duration::ZERO,
                false,
            )
        })
        .transpose()?;
    if poll_interval.is_some() && api_token.is_none() {
        return Err(err(
            format!("{key}.poll_interval"),
            "polling needs api_token",
        ));
    }
    if webhook_secrets.is_empty() && api_token.is_none() {
        return Err(err(
            key,
            "configures nothing: give webhook_secret (webhooks) and/or api_token (API)",
        ));
    }
    let record_errors_sample = raw.record_errors_sample.unwrap_or(100);
    Ok(CensusSource {
        label,
        webhook_secrets,
        api_token,
        poll_interval,
        record_errors_sample,
        api: api_settings(
            key,
            raw.api_url.clone(),
            "https://app.getcensus.com",
            &tuning!(raw),
        )?,
    })
}

fn hightouch(key: &str, t: &toml::Table) -> Result<HightouchSource, SourcesError> {
    let raw: RawHightouch = typed(key, t)?;
    let label = label("hightouch", key, raw.name)?;
    let api_token = raw
        .api_token
        .filter(|t| !t.expose().trim().is_empty())
        .ok_or_else(|| {
            err(
                format!("{key}.api_token"),
                "is required (Hightouch is polled)",
            )
        })?;
    Ok(HightouchSource {
        label,
        api_token,
        poll_interval: duration(
            &format!("{key}.poll_interval"),
            raw.poll_interval.as_deref(),
            Duration::from_secs(60),
            false,
        )?,
        api: api_settings(
            key,
            raw.api_url.clone(),
            "https://api.hightouch.com",
            &tuning!(raw),
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Sources, SourcesError> {
        Sources::parse(&toml::from_str(text).expect("toml"))
    }

    #[test]
    fn nothing_configured_is_valid() {
        assert!(parse("").expect("empty").is_empty());
    }

    #[test]
    fn every_source_parses_with_defaults() {
        let s = parse(
            r#"
            [census]
            webhook_secret = ["new", "old"]
            api_token = "tok"
            poll_interval = "1m"
            [hightouch]
            api_token = "ht"
            [fivetran]
            webhook_secret = "ft"
            [dbt]
            webhook_secret = "dbt"
            [airbyte]
            webhook_token = "path-token"
            [generic]
            webhook_secret = "whsec_MDEyMzQ1Njc4OWFiY2RlZg=="
            "#,
        )
        .expect("valid");
        let c = &s.census[0];
        assert_eq!(c.label, "census");
        assert_eq!(c.webhook_secrets.len(), 2);
        assert_eq!(c.poll_interval, Some(Duration::from_secs(60)));
        assert_eq!(c.api.api_url.as_str(), "https://app.getcensus.com/");
        assert_eq!(c.api.backfill, Duration::from_secs(3600));
        let h = &s.hightouch[0];
        assert_eq!(h.poll_interval, Duration::from_secs(60));
        assert_eq!(h.api.api_url.as_str(), "https://api.hightouch.com/");
        assert_eq!(
            s.airbyte.expect("airbyte").secrets[0].expose(),
            "path-token"
        );
        assert!(s.fivetran.is_some() && s.dbt.is_some() && s.generic.is_some());
    }

    #[test]
    fn several_workspaces_need_distinct_names() {
        let s = parse(
            r#"
            [[census]]
            name = "eu"
            api_token = "a"
            [[census]]
            name = "us"
            api_token = "b"
            "#,
        )
        .expect("valid");
        let labels: Vec<&str> = s.census.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["census:eu", "census:us"]);

        let e = parse("[[census]]\napi_token = \"a\"\n").expect_err("no name");
        assert_eq!(e.key, "sources.census[0]");
        let e = parse(
            "[[hightouch]]\nname = \"x\"\napi_token = \"a\"\n[[hightouch]]\nname = \"x\"\napi_token = \"b\"\n",
        )
        .expect_err("twice");
        assert!(e.message.contains("twice"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[census]\napi_tokn = \"x\"\n", "sources.census", "api_tokn"),
            (
                "[census]\napi_token = \"x\"\npoll_interval = \"soon\"\n",
                "sources.census.poll_interval",
                "not a duration",
            ),
            (
                "[census]\nwebhook_secret = \"s\"\npoll_interval = \"1m\"\n",
                "sources.census.poll_interval",
                "api_token",
            ),
            (
                "[hightouch]\npoll_interval = \"1m\"\n",
                "sources.hightouch.api_token",
                "required",
            ),
            (
                "[hightouch]\napi_token = \"t\"\napi_url = \"ftp://x\"\n",
                "sources.hightouch.api_url",
                "http",
            ),
            (
                "[fivetran]\n",
                "sources.fivetran.webhook_secret",
                "required",
            ),
            (
                "[fivetran]\nwebhook_secret = []\n",
                "sources.fivetran.webhook_secret",
                "empty",
            ),
            (
                "[dbt]\nwebhook_secret = [\"a\", \"\"]\n",
                "sources.dbt.webhook_secret[1]",
                "empty",
            ),
            (
                "[generic]\nwebhook_secret = \"plain\"\n",
                "sources.generic.webhook_secret[0]",
                "whsec_",
            ),
            (
                "[airbyte]\nwebhook_secret = \"x\"\n",
                "sources.airbyte",
                "webhook_secret",
            ),
            (
                "[[fivetran]]\nwebhook_secret = \"x\"\n",
                "sources.fivetran",
                "list",
            ),
            ("[segment]\n", "sources.segment", "unknown source"),
            ("[census]\n", "sources.census", "configures nothing"),
            (
                "[census]\napi_token = \"t\"\nbackoff = \"10s\"\nmax_backoff = \"1s\"\n",
                "sources.census.max_backoff",
                "shorter",
            ),
        ];
        for (text, key, needle) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn redaction_hides_every_secret_key() {
        let table: toml::Table = toml::from_str(
            r#"
            [census]
            webhook_secret = ["s3cret-a", "s3cret-b"]
            api_token = "s3cret-c"
            api_url = "https://app.getcensus.com"
            [[hightouch]]
            name = "x"
            api_token = "s3cret-d"
            "#,
        )
        .expect("toml");
        let shown = format!("{:?}", redacted(&table));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app.getcensus.com"));
    }
}
