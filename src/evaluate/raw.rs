//! The rules file exactly as written: serde shapes with source spans.
//!
//! These types only describe the syntax (unknown keys are refused here);
//! `check_rule.rs` turns them into the validated model of `rules.rs` and
//! reports every semantic problem with the line it came from, which is why
//! nearly every field keeps its [`Spanned`] position.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// Every key name a rules file may contain at any depth, for typo hints.
pub const ALL_KEYS: &[&str] = &[
    "name",
    "match",
    "bad_when",
    "fire_after",
    "resolve_after",
    "flap",
    "stale_after",
    "repeat_every",
    "group_by",
    "group_wait",
    "notify",
    "severity",
    "auto",
    "sync",
    "labels",
    "status",
    "failed_ratio_above",
    "failed_records_above",
    "window",
    "high",
    "low",
    "target",
    "min",
    "max",
    "learn",
    "warmup",
    "stale_factor",
    "stale_min",
    "id",
    "depends_on",
    "owner",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: Spanned<String>,
    #[serde(rename = "match")]
    pub matcher: Option<Spanned<RawMatch>>,
    pub bad_when: Option<RawBadWhen>,
    /// An integer or `"auto"`: kept as a raw value so a wrong type gets our
    /// own message instead of serde's.
    pub fire_after: Option<Spanned<toml::Value>>,
    pub resolve_after: Option<Spanned<i64>>,
    pub flap: Option<Spanned<RawFlap>>,
    pub stale_after: Option<Spanned<String>>,
    pub repeat_every: Option<Spanned<String>>,
    pub group_by: Option<Vec<Spanned<String>>>,
    pub group_wait: Option<Spanned<String>>,
    pub notify: Option<Spanned<Vec<Spanned<String>>>>,
    pub severity: Option<Spanned<String>>,
    pub auto: Option<RawAuto>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub sync: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBadWhen {
    pub status: Option<Vec<Spanned<String>>>,
    pub failed_ratio_above: Option<Spanned<f64>>,
    pub failed_records_above: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlap {
    pub window: Spanned<i64>,
    pub high: Spanned<f64>,
    pub low: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuto {
    pub target: Option<Spanned<f64>>,
    pub min: Option<Spanned<i64>>,
    pub max: Option<Spanned<i64>>,
    pub learn: Option<Spanned<i64>>,
    pub warmup: Option<Spanned<i64>>,
    pub stale_factor: Option<Spanned<f64>>,
    pub stale_min: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub id: Spanned<String>,
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    pub owner: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}
