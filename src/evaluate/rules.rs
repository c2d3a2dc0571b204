//! The validated rules model (SPEC §2): what a rules directory means once
//! every problem has been ruled out.
//!
//! Nothing here can be half-valid: a [`RuleSet`] only comes out of
//! [`load_dir`] / [`parse_str`] when every file checked clean, so the engine
//! never re-checks a threshold or a glob. Parsing and checking live in
//! `raw.rs` and `check.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use serde::Serialize;

use super::check::{self, Problem};
use crate::model::RunStatus;

/// Every rule and the `[[sync]]` catalogue of one rules directory.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub syncs: Vec<SyncEntry>,
    by_name: BTreeMap<String, usize>,
    upstream: BTreeMap<String, Vec<String>>,
    downstream: BTreeMap<String, Vec<String>>,
}

/// One `[[rule]]`. Each (rule, sync) pair it matches is its own alert.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub name: String,
    /// Where it was defined, for messages that send people back to the file.
    pub file: PathBuf,
    pub line: usize,
    #[serde(rename = "match")]
    pub matcher: Matcher,
    pub bad_when: BadWhen,
    pub fire_after: FireAfter,
    pub resolve_after: u32,
    pub flap: Option<Flap>,
    pub stale_after: Option<StaleAfter>,
    pub repeat_every: Option<Duration>,
    pub group_by: Vec<String>,
    pub group_wait: Duration,
    pub notify: Vec<String>,
    pub severity: String,
    pub auto: AutoParams,
}

/// Which runs a rule sees: a glob on `sync_id` and label equality.
#[derive(Debug, Clone, Serialize)]
pub struct Matcher {
    pub sync: String,
    pub labels: BTreeMap<String, String>,
    #[serde(skip)]
    glob: GlobMatcher,
}

/// When a run is BAD (SPEC §3.1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadWhen {
    pub status: Vec<RunStatus>,
    pub failed_ratio_above: Option<f64>,
    pub failed_records_above: Option<u64>,
}

/// A fixed streak length, or one learned from the alert's calm history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FireAfter {
    Fixed(u32),
    Auto,
}

/// A fixed silence budget, or one learned from the sync's usual gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StaleAfter {
    Fixed(Duration),
    Auto,
}

/// Flap detection parameters (SPEC §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Flap {
    pub window: usize,
    pub high: f64,
    pub low: f64,
}

/// The rule's `auto` table: how learned thresholds are derived (SPEC §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AutoParams {
    pub target: f64,
    pub min: u32,
    pub max: u32,
    pub learn: usize,
    pub warmup: usize,
    pub stale_factor: f64,
    pub stale_min: Duration,
}

impl Default for AutoParams {
    fn default() -> Self {
        AutoParams {
            target: 1e-4,
            min: 2,
            max: 6,
            learn: 200,
            warmup: 20,
            stale_factor: 4.0,
            stale_min: Duration::from_secs(30 * 60),
        }
    }
}

/// One `[[sync]]` catalogue entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncEntry {
    pub id: String,
    pub depends_on: Vec<String>,
    pub owner: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl Matcher {
    /// Builds a matcher; `*` also crosses `/` and `:` because sync ids such
    /// as `census:12` or `dbt:model.a/b` are not paths.
    pub fn new(sync: &str, labels: BTreeMap<String, String>) -> Result<Self, globset::Error> {
        Ok(Matcher {
            sync: sync.to_string(),
            labels,
            glob: compile_glob(sync)?,
        })
    }

    pub fn matches(&self, sync_id: &str, labels: &BTreeMap<String, String>) -> bool {
        self.glob_matches(sync_id) && self.labels_match(labels)
    }

    /// The glob half: depends on the sync id only, so the engine caches it
    /// per sync.
    pub fn glob_matches(&self, sync_id: &str) -> bool {
        self.glob.is_match(sync_id)
    }

    /// The label half: every matcher label equals the run's.
    pub fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
    }
}

/// The one glob dialect of rules and silences.
pub fn compile_glob(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    Ok(GlobBuilder::new(pattern)
        .literal_separator(false)
        .build()?
        .compile_matcher())
}

impl Rule {
    pub fn matches(&self, sync_id: &str, labels: &BTreeMap<String, String>) -> bool {
        self.matcher.matches(sync_id, labels)
    }
}

impl RuleSet {
    /// Assembles a checked set and its dependency indexes. Callers outside
    /// this module go through [`load_dir`] or [`parse_str`].
    pub(crate) fn assemble(rules: Vec<Rule>, syncs: Vec<SyncEntry>) -> Self {
        let by_name = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.clone(), i))
            .collect();
        let mut upstream: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut downstream: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in &syncs {
            for up in &s.depends_on {
                push_unique(upstream.entry(s.id.clone()).or_default(), up);
                push_unique(downstream.entry(up.clone()).or_default(), &s.id);
            }
        }
        for list in upstream.values_mut().chain(downstream.values_mut()) {
            list.sort();
        }
        RuleSet {
            rules,
            syncs,
            by_name,
            upstream,
            downstream,
        }
    }

    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.by_name.get(name).and_then(|&i| self.rules.get(i))
    }

    /// Rules that apply to a run of `sync_id` carrying `labels`, in file order.
    pub fn matching<'a>(
        &'a self,
        sync_id: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules
            .iter()
            .filter(move |r| r.matches(sync_id, labels))
    }

    /// Direct upstream syncs (`depends_on`), sorted.
    pub fn upstream_of(&self, sync_id: &str) -> &[String] {
        self.upstream.get(sync_id).map_or(&[], Vec::as_slice)
    }

    /// Syncs that name `sync_id` in their `depends_on`, sorted.
    pub fn downstream_of(&self, sync_id: &str) -> &[String] {
        self.downstream.get(sync_id).map_or(&[], Vec::as_slice)
    }

    pub fn sync(&self, id: &str) -> Option<&SyncEntry> {
        self.syncs.iter().find(|s| s.id == id)
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_string());
    }
}

/// Loads every `*.toml` file of `dir` in sorted file-name order, reporting
/// every problem of every file at once.
pub fn load_dir(dir: &Path) -> Result<RuleSet, Vec<Problem>> {
    let files = check::list_rule_files(dir)?;
    let mut texts = Vec::with_capacity(files.len());
    let mut problems = Vec::new();
    for path in files {
        match std::fs::read_to_string(&path) {
            Ok(text) => texts.push((path, text)),
            Err(e) => problems.push(Problem::new(
                &path,
                None,
                format!("cannot read the file: {e}"),
                Some("rules files must be readable UTF-8 text".into()),
            )),
        }
    }
    let result = check::check_files(&texts);
    match (result, problems.is_empty()) {
        (Ok(set), true) => Ok(set),
        (Ok(_), false) => Err(problems),
        (Err(mut more), _) => {
            problems.append(&mut more);
            Err(problems)
        }
    }
}

/// Parses one rules file held in memory (tests, `rules check` on stdin).
pub fn parse_str(file_name: &str, text: &str) -> Result<RuleSet, Vec<Problem>> {
    check::check_files(&[(PathBuf::from(file_name), text.to_string())])
}
