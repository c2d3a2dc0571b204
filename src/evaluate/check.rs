//! `rules check`: every problem of a rules directory, each with its file,
//! line and a hint that says how to fix it.
//!
//! A rules file is edited by people under pressure (an incident, a noisy
//! night), so the checker never stops at the first mistake: it reports all
//! of them, across all files, in file and line order. Rule fields are checked
//! in `check_rule.rs`; this file drives the files and checks what spans
//! files (duplicate names, the `[[sync]]` catalogue and its cycles).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::check_rule::check_rule;
use super::raw::{ALL_KEYS, RawRule, RawSync};
use super::rules::{Rule, RuleSet, SyncEntry};

/// One thing wrong with a rules directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(file: &Path, line: Option<usize>, message: String, hint: Option<String>) -> Self {
        Problem {
            file: file.to_path_buf(),
            line,
            message,
            hint,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// Problems of one file being checked, with its text to turn byte spans
/// into line numbers.
pub(super) struct FileCheck<'a> {
    pub file: &'a Path,
    text: &'a str,
    pub problems: Vec<Problem>,
}

impl<'a> FileCheck<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        FileCheck {
            file,
            text,
            problems: Vec::new(),
        }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub fn report(
        &mut self,
        span: &Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let line = self.line(span);
        self.problems.push(Problem::new(
            self.file,
            Some(line),
            message.into(),
            Some(hint.into()),
        ));
    }
}

/// The `*.toml` files of a rules directory, sorted by file name.
pub(super) fn list_rule_files(dir: &Path) -> Result<Vec<PathBuf>, Vec<Problem>> {
    let fail =
        |message: String, hint: &str| vec![Problem::new(dir, None, message, Some(hint.into()))];
    if !dir.exists() {
        return Err(fail(
            "the rules directory does not exist".into(),
            "create it (the shipped rules/default.toml is a good start) or point --rules at the right folder",
        ));
    }
    let entries = std::fs::read_dir(dir).map_err(|e| {
        fail(
            format!("cannot read the rules directory: {e}"),
            "rules must be a readable directory of *.toml files",
        )
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if files.is_empty() {
        return Err(fail(
            "no *.toml rules files in this directory".into(),
            "add at least one file with a [[rule]] table, e.g. a copy of the shipped rules/default.toml",
        ));
    }
    Ok(files)
}

/// A `[[sync]]` entry with the positions its problems point at.
struct PlacedSync {
    entry: SyncEntry,
    file: PathBuf,
    line: usize,
    dep_lines: Vec<usize>,
}

/// Checks the files of one rules directory, in the given order.
pub(super) fn check_files(files: &[(PathBuf, String)]) -> Result<RuleSet, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut rules = Vec::new();
    let mut syncs = Vec::new();
    for (path, text) in files {
        let mut c = FileCheck::new(path, text);
        check_document(&mut c, &mut rules, &mut syncs);
        problems.append(&mut c.problems);
    }
    let mut seen: BTreeMap<String, (PathBuf, usize)> = BTreeMap::new();
    for rule in &rules {
        if let Some((file, line)) = seen.get(&rule.name) {
            problems.push(Problem::new(
                &rule.file,
                Some(rule.line),
                format!("duplicate rule name {:?}", rule.name),
                Some(format!(
                    "already defined at {}:{line}; alerts are keyed by rule name, so rename one",
                    file.display()
                )),
            ));
        } else {
            seen.insert(rule.name.clone(), (rule.file.clone(), rule.line));
        }
    }
    check_catalogue(&syncs, &mut problems);
    if !problems.is_empty() {
        let order: BTreeMap<&Path, usize> = files
            .iter()
            .enumerate()
            .map(|(i, (p, _))| (p.as_path(), i))
            .collect();
        problems.sort_by_key(|p| (order.get(p.file.as_path()).copied(), p.line));
        return Err(problems);
    }
    Ok(RuleSet::assemble(
        rules,
        syncs.into_iter().map(|s| s.entry).collect(),
    ))
}

fn check_document(c: &mut FileCheck<'_>, rules: &mut Vec<Rule>, syncs: &mut Vec<PlacedSync>) {
    let (doc, errors) = DeTable::parse_recoverable(c.text);
    if !errors.is_empty() {
        // Recovery often adds follow-on errors on the same line: the first
        // one per line is the one that helps.
        let mut lines_seen = BTreeSet::new();
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            if !lines_seen.insert(c.line(&span)) {
                continue;
            }
            c.report(
                &span,
                format!("TOML syntax error: {}", e.message().trim()),
                "fix the syntax first; rules are [[rule]] tables of key = value lines",
            );
        }
        return;
    }
    for (key, value) in doc.get_ref().iter() {
        let span = key.span();
        let entries = match (key.get_ref().as_ref(), value.get_ref()) {
            ("rule" | "sync", DeValue::Array(items)) => items.iter().cloned().collect::<Vec<_>>(),
            (name @ ("rule" | "sync"), _) => {
                c.report(
                    &span,
                    format!("`{name}` must be an array of tables"),
                    format!("write each entry under its own [[{name}]] header"),
                );
                continue;
            }
            (other, _) => {
                c.report(
                    &span,
                    format!("unknown top-level key `{other}`"),
                    "a rules file holds [[rule]] and [[sync]] tables only",
                );
                continue;
            }
        };
        let is_rule = key.get_ref().as_ref() == "rule";
        for entry in entries {
            let entry_span = entry.span();
            if is_rule {
                match RawRule::deserialize(ValueDeserializer::from(entry)) {
                    Ok(raw) => {
                        let line = c.line(&raw.name.span());
                        if let Some(rule) = check_rule(c, raw, line) {
                            rules.push(rule);
                        }
                    }
                    Err(e) => report_shape(c, &e, &entry_span, "rule"),
                }
            } else {
                match RawSync::deserialize(ValueDeserializer::from(entry)) {
                    Ok(raw) => {
                        if let Some(s) = check_sync(c, raw) {
                            syncs.push(s);
                        }
                    }
                    Err(e) => report_shape(c, &e, &entry_span, "sync"),
                }
            }
        }
    }
}

/// Reports a serde error (unknown key, wrong type, missing field) with a
/// hint that names the likely intended key.
fn report_shape(c: &mut FileCheck<'_>, e: &toml::de::Error, entry: &Range<usize>, table: &str) {
    let span = e.span().unwrap_or_else(|| entry.clone());
    let message = e.message().trim().to_string();
    let hint = if let Some(unknown) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        match closest_key(unknown) {
            Some(k) => format!("did you mean `{k}`? (keys are case-sensitive; see SPEC §2)"),
            None => format!("remove it; the keys a [[{table}]] accepts are listed in SPEC §2"),
        }
    } else if message.starts_with("missing field") {
        format!("every [[{table}]] needs this key")
    } else {
        "check the value's type against SPEC §2 (strings are quoted, numbers are not)".to_string()
    };
    c.report(&span, format!("in [[{table}]]: {message}"), hint);
}

/// The known key closest to a typo, if it is close enough to be a guess.
fn closest_key(typo: &str) -> Option<&'static str> {
    ALL_KEYS
        .iter()
        .map(|k| (edit_distance(typo, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn check_sync(c: &mut FileCheck<'_>, raw: RawSync) -> Option<PlacedSync> {
    let before = c.problems.len();
    let line = c.line(&raw.id.span());
    let id = raw.id.get_ref().trim().to_string();
    if id.is_empty() {
        c.report(
            &raw.id.span(),
            "empty sync id",
            "use the sync_id its runs carry, e.g. \"census:4812\"",
        );
    }
    let mut depends_on = Vec::new();
    let mut dep_lines = Vec::new();
    for dep in &raw.depends_on {
        let name = dep.get_ref().trim();
        if name.is_empty() {
            c.report(
                &dep.span(),
                "empty entry in depends_on",
                "list upstream sync ids, e.g. [\"dbt:marts\"]",
            );
        } else {
            depends_on.push(name.to_string());
            dep_lines.push(c.line(&dep.span()));
        }
    }
    (c.problems.len() == before).then(|| PlacedSync {
        entry: SyncEntry {
            id,
            depends_on,
            owner: raw.owner,
            labels: raw.labels,
        },
        file: c.file.to_path_buf(),
        line,
        dep_lines,
    })
}

/// Duplicate sync ids and `depends_on` cycles across all files.
fn check_catalogue(syncs: &[PlacedSync], problems: &mut Vec<Problem>) {
    let mut by_id: BTreeMap<&str, &PlacedSync> = BTreeMap::new();
    for s in syncs {
        if let Some(first) = by_id.get(s.entry.id.as_str()) {
            problems.push(Problem::new(
                &s.file,
                Some(s.line),
                format!("duplicate [[sync]] id {:?}", s.entry.id),
                Some(format!(
                    "already listed at {}:{}; merge the two entries",
                    first.file.display(),
                    first.line
                )),
            ));
        } else {
            by_id.insert(&s.entry.id, s);
        }
    }
    let mut reported: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for start in by_id.keys() {
        if !done.contains(start) {
            let mut path: Vec<&str> = vec![start];
            find_cycles(&by_id, &mut path, &mut done, &mut reported, problems);
        }
    }
}

/// Depth-first search from the last node of `path` (the grey nodes),
/// reporting each cycle once at the `depends_on` entry that closes it;
/// `done` holds finished nodes so the walk stays linear.
fn find_cycles<'a>(
    by_id: &BTreeMap<&'a str, &'a PlacedSync>,
    path: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
    reported: &mut BTreeSet<Vec<String>>,
    problems: &mut Vec<Problem>,
) {
    let Some(node) = path.last().and_then(|id| by_id.get(id)) else {
        return;
    };
    for (dep, dep_line) in node.entry.depends_on.iter().zip(&node.dep_lines) {
        if let Some(pos) = path.iter().position(|p| *p == dep) {
            let cycle: Vec<String> = path[pos..].iter().map(|s| s.to_string()).collect();
            let mut key = cycle.clone();
            key.sort();
            if reported.insert(key) {
                let mut shown = cycle.join(" → ");
                shown.push_str(&format!(" → {dep}"));
                let message = if cycle.len() == 1 {
                    format!("sync {dep:?} depends on itself")
                } else {
                    format!("depends_on cycle: {shown}")
                };
                problems.push(Problem::new(
                    &node.file,
                    Some(*dep_line),
                    message,
                    Some("holds follow depends_on, so a cycle would let syncs hold each other forever; remove one edge".into()),
                ));
            }
            continue;
        }
        if let Some((k, _)) = by_id.get_key_value(dep.as_str())
            && !done.contains(k)
        {
            path.push(k);
            find_cycles(by_id, path, done, reported, problems);
            path.pop();
        }
    }
    if let Some(finished) = path.last() {
        done.insert(finished);
    }
}
