//! Silences (SPEC §3.5, §6): time-boxed holds matched on a rule-name glob, a
//! sync glob and label equality.
//!
//! The engine keeps silences compiled next to their serde form so matching
//! is cheap on every settle; an unparsable glob (the API validates, but the
//! database may hold old rows) falls back to exact equality rather than
//! matching everything.

use std::collections::BTreeMap;

use globset::GlobMatcher;
use serde::{Deserialize, Serialize};

use super::alert::AlertKey;
use super::rules::compile_glob;
use crate::model::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    /// Glob on the rule name; `*` silences every rule.
    pub rule: String,
    /// Glob on the sync id.
    pub sync: String,
    /// Equality on the alert's labels (those of its last matching run).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
}

impl Silence {
    /// Active for `starts_at ≤ t < ends_at`.
    pub fn is_active(&self, t: Timestamp) -> bool {
        self.starts_at <= t && t < self.ends_at
    }

    /// What the API should refuse before storing a silence.
    pub fn check(&self) -> Result<(), String> {
        compile_glob(&self.rule).map_err(|e| format!("rule glob {:?}: {}", self.rule, e.kind()))?;
        compile_glob(&self.sync).map_err(|e| format!("sync glob {:?}: {}", self.sync, e.kind()))?;
        if self.ends_at <= self.starts_at {
            return Err("ends_at must be after starts_at".into());
        }
        Ok(())
    }
}

/// A silence with its globs compiled.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub silence: Silence,
    rule: Option<GlobMatcher>,
    sync: Option<GlobMatcher>,
}

impl Compiled {
    pub fn new(silence: Silence) -> Self {
        Compiled {
            rule: compile_glob(&silence.rule).ok(),
            sync: compile_glob(&silence.sync).ok(),
            silence,
        }
    }

    pub fn matches(&self, key: &AlertKey, labels: &BTreeMap<String, String>) -> bool {
        let glob = |g: &Option<GlobMatcher>, pattern: &str, text: &str| match g {
            Some(g) => g.is_match(text),
            None => pattern == text,
        };
        glob(&self.rule, &self.silence.rule, &key.rule)
            && glob(&self.sync, &self.silence.sync, &key.sync_id)
            && self
                .silence
                .labels
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
    }
}
