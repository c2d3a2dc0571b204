//! Gathers what a message says: from a stored notice to a
//! [`NoticeContext`] — the incident's bad runs, merged error classes, what
//! it cost, the catalogue's owner and neighbours, and links.
//!
//! Reads only (the reader pool); the engine's notice carries the decision,
//! the store carries the story.

use std::collections::BTreeMap;

use crate::evaluate::{Notice, NoticeKind, RuleSet, Verdict, judge};
use crate::ingest::classes::ErrorClass;
use crate::model::RunStatus;
use crate::notify::context::{IncidentTotals, Links, NoticeContext, RunSummary};
use crate::store::runs::StoredRun;
use crate::store::{self, Store, StoreError};

/// Most runs looked at when listing an incident's bad runs.
const RUNS_SCANNED: i64 = 200;
/// Most bad runs carried in a notice.
const BAD_RUNS_KEPT: usize = 20;

/// Builds the context of one notice.
pub async fn context(
    store: &Store,
    rules: &RuleSet,
    public_url: &str,
    notice: &Notice,
) -> Result<NoticeContext, StoreError> {
    let pool = store.reader();
    let rule = rules.rule(&notice.rule);
    let recent =
        store::runs::recent_between(pool, &notice.sync_id, notice.since, notice.at, RUNS_SCANNED)
            .await?;
    let is_bad = |r: &StoredRun| match rule {
        Some(rule) => matches!(judge(&rule.bad_when, &r.run).verdict, Verdict::Bad(_)),
        None => r.run.status == RunStatus::Failed,
    };
    let bad: Vec<&StoredRun> = recent
        .iter()
        .filter(|r| is_bad(r))
        .take(BAD_RUNS_KEPT)
        .collect();

    let totals = if notice.kind == NoticeKind::Resolved {
        let t = store::runs::sum_between(pool, &notice.sync_id, notice.since, notice.at).await?;
        Some(IncidentTotals {
            duration_ms: (notice.at.0 - notice.since.0).max(0),
            runs: t.runs.max(0) as u64,
            runs_failed: t.runs_failed.max(0) as u64,
            records_failed: t.records_failed.max(0) as u64,
            records_invalid: t.records_invalid.max(0) as u64,
        })
    } else {
        None
    };

    let base = public_url.trim_end_matches('/');
    let sync_enc = encode(&notice.sync_id);
    let newest_bad = bad.first();
    let links = Links {
        sync: format!("{base}/syncs/{sync_enc}"),
        run: newest_bad.map(|r| format!("{base}/runs/{sync_enc}/{}", encode(&r.run.run_id))),
        incident: format!("{base}/incidents?sync_id={sync_enc}"),
        silence: format!("{base}/silences?sync={sync_enc}"),
        runner: newest_bad.and_then(|r| r.run.url.clone()),
    };
    let catalogue = rules.sync(&notice.sync_id);
    Ok(NoticeContext {
        key: notice.key(),
        kind: notice.kind.as_str().to_string(),
        cause: notice.cause.map(|c| c.as_str().to_string()),
        rule: notice.rule.clone(),
        severity: rule
            .map(|r| r.severity.clone())
            .unwrap_or_else(|| "warning".into()),
        sync_id: notice.sync_id.clone(),
        incident_id: notice.incident_id.clone(),
        at: notice.at,
        since: notice.since,
        condition: notice.condition.clone(),
        reason: notice.reason.clone(),
        source: notice.source.clone(),
        destination: notice.labels.get("destination").cloned(),
        labels: notice.labels.clone(),
        owner: catalogue.and_then(|s| s.owner.clone()),
        downstream: notice.downstream.clone(),
        upstream: rules.upstream_of(&notice.sync_id).to_vec(),
        run_error: bad
            .iter()
            .find_map(|r| r.run.error.as_ref())
            .map(|e| match &e.code {
                Some(c) => format!("{c}: {}", e.message),
                None => e.message.clone(),
            }),
        error_classes: merge_classes(bad.iter().map(|r| &r.error_classes)),
        bad_runs: bad.iter().map(|r| summary(r)).collect(),
        totals,
        links,
        silence_hint: format!(
            "syncwarden silence add --sync '{}' --duration 2h --comment 'investigating'",
            notice.sync_id
        ),
    })
}

fn summary(r: &StoredRun) -> RunSummary {
    RunSummary {
        run_id: r.run.run_id.clone(),
        status: r.run.status.as_str().to_string(),
        finished_at: r.run.finished_at,
        processed: r.run.records.processed,
        succeeded: r.run.records.succeeded,
        failed: r.run.records.failed,
        invalid: r.run.records.invalid,
        error: r.run.error.as_ref().map(|e| match &e.code {
            Some(c) => format!("{c}: {}", e.message),
            None => e.message.clone(),
        }),
        url: r.run.url.clone(),
    }
}

/// Sums the error classes of several runs: same (code, signature) → one
/// class, counts added, examples kept up to five.
fn merge_classes<'a>(lists: impl Iterator<Item = &'a Vec<ErrorClass>>) -> Vec<ErrorClass> {
    let mut merged: BTreeMap<(Option<String>, String), ErrorClass> = BTreeMap::new();
    for list in lists {
        for c in list {
            let key = (c.code.clone(), c.signature.clone());
            match merged.get_mut(&key) {
                Some(m) => {
                    m.count += c.count;
                    for e in &c.examples {
                        if m.examples.len() < 5 && !m.examples.contains(e) {
                            m.examples.push(e.clone());
                        }
                    }
                    if m.field != c.field {
                        m.field = None;
                    }
                }
                None => {
                    merged.insert(key, c.clone());
                }
            }
        }
    }
    let mut out: Vec<ErrorClass> = merged.into_values().collect();
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.signature.cmp(&b.signature))
    });
    out
}

/// Percent-encodes a path segment (sync ids contain `:` and `/`).
fn encode(s: &str) -> String {
    let mut url = reqwest::Url::parse("http://x/").expect("static URL parses");
    if let Ok(mut segs) = url.path_segments_mut() {
        segs.push(s);
    }
    url.path().trim_start_matches('/').to_string()
}
