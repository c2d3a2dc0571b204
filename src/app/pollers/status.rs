//! What each source has been doing, for the `sources` detail of `/readyz`.
//!
//! A vendor outage is not the sidecar's outage: `/readyz` stays ready (its
//! webhooks and API still work), and this detail says which source is
//! failing, since when, and the last error, so an operator looks here
//! instead of in the logs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::model::Timestamp;

/// Shared, cheap to clone.
#[derive(Clone, Default)]
pub struct SourceStatus(Arc<Mutex<BTreeMap<String, SourceHealth>>>);

#[derive(Debug, Clone, Serialize)]
pub struct SourceHealth {
    pub kind: &'static str,
    /// How runs arrive: `webhook`, `webhook + api`, `poll every 1m`, …
    pub mode: String,
    /// `ok`, `starting` (no poll finished yet), `degraded` (some syncs could
    /// not be polled), `error` (the last poll, or the last API call a
    /// webhook needed, failed) or `standby` (another replica on the same
    /// database polls this source).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub webhooks_accepted: u64,
    pub webhooks_rejected: u64,
    pub last_webhook_at: Option<Timestamp>,
    pub runs_ingested: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syncs: Option<usize>,
    pub last_poll_at: Option<Timestamp>,
    pub last_success_at: Option<Timestamp>,
    pub last_error_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    /// Polled sources take their state from their polls only.
    #[serde(skip)]
    pub polled: bool,
}

impl SourceHealth {
    pub fn new(kind: &'static str, mode: String, state: &'static str) -> Self {
        SourceHealth {
            polled: false,
            kind,
            mode,
            state,
            detail: None,
            webhooks_accepted: 0,
            webhooks_rejected: 0,
            last_webhook_at: None,
            runs_ingested: 0,
            syncs: None,
            last_poll_at: None,
            last_success_at: None,
            last_error_at: None,
            last_error: None,
            consecutive_failures: 0,
        }
    }
}

impl SourceStatus {
    pub fn register(&self, label: &str, health: SourceHealth) {
        self.lock().insert(label.to_owned(), health);
    }

    /// Changes one source's entry (a no-op for an unknown label).
    pub fn update(&self, label: &str, f: impl FnOnce(&mut SourceHealth)) {
        if let Some(h) = self.lock().get_mut(label) {
            f(h);
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, SourceHealth> {
        self.lock().clone()
    }

    /// A webhook was authenticated and handled.
    pub fn webhook_ok(&self, label: &str, runs: usize, now: Timestamp) {
        self.update(label, |h| {
            h.webhooks_accepted += 1;
            h.runs_ingested += runs as u64;
            h.last_webhook_at = Some(now);
        });
    }

    /// A webhook failed authentication.
    pub fn webhook_rejected(&self, label: &str) {
        self.update(label, |h| h.webhooks_rejected += 1);
    }

    /// A vendor API call (a poll, or the fetch a webhook needed) failed.
    pub fn api_failed(&self, label: &str, error: &str, now: Timestamp) {
        self.update(label, |h| {
            h.state = "error";
            h.last_error = Some(error.to_owned());
            h.last_error_at = Some(now);
            h.consecutive_failures = h.consecutive_failures.saturating_add(1);
        });
    }

    /// A vendor API call succeeded (the state of a polled source is only
    /// changed by its polls: one good fetch says little about every sync).
    pub fn api_ok(&self, label: &str, now: Timestamp) {
        self.update(label, |h| {
            if !h.polled && h.state == "error" {
                h.state = "ok";
                h.consecutive_failures = 0;
            }
            h.last_success_at = Some(now);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, SourceHealth>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
