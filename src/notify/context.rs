//! The data one notice is rendered from.
//!
//! The outbox worker builds a [`NoticeContext`] from the store (the engine's
//! notice plus the incident's bad runs, error classes and totals) and hands it
//! to the channels. It is plain serde data on purpose: the templates, the Slack
//! payload and the webhook body all read the same structure, a user-edited
//! template sees exactly the fields documented in `templates/README.md`, and
//! the webhook publishes it unchanged as its versioned JSON contract. Nothing
//! here refers to the engine's types, so the engine can change its internals
//! without breaking a template anyone wrote.
//!
//! Every field is always serialised (absent values as `null`, never left
//! out): templates run with strict undefined-variable checks, and a field that
//! silently disappeared would turn into a render error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ingest::classes::ErrorClass;
use crate::model::Timestamp;

/// Everything a message about one notice says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeContext {
    /// The dedup key `incident_id:kind:seq` (SPEC §3.6).
    pub key: String,
    /// `firing`, `reminder` or `resolved`.
    pub kind: String,
    /// Firing and reminder notices: `failed_runs`, `record_failures`, `stale`
    /// or `flapping`.
    #[serde(default)]
    pub cause: Option<String>,
    pub rule: String,
    /// The rule's `severity` (free text such as `critical`).
    pub severity: String,
    pub sync_id: String,
    pub incident_id: String,
    /// When the notice became due: the causing run's `finished_at`, a timer's
    /// instant, or the end of a hold.
    pub at: Timestamp,
    /// Start of the incident.
    pub since: Timestamp,
    /// A sentence with the actual values that made the decision.
    pub condition: String,
    /// Why a resolve was forced (`rule_removed`, `rule_no_longer_matches`).
    #[serde(default)]
    pub reason: Option<String>,
    /// The runner (`census`, `dbt`, …).
    #[serde(default)]
    pub source: Option<String>,
    /// The `destination` label, lifted out because every notice shows it.
    #[serde(default)]
    pub destination: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The sync's owner from the `[[sync]]` catalogue (usually an address).
    #[serde(default)]
    pub owner: Option<String>,
    /// Direct downstream syncs held back while this one is broken.
    #[serde(default)]
    pub downstream: Vec<String>,
    /// Direct upstream syncs (`depends_on`).
    #[serde(default)]
    pub upstream: Vec<String>,
    /// The incident's bad runs, newest first. The worker caps the list; the
    /// templates show at most the first 10.
    #[serde(default)]
    pub bad_runs: Vec<RunSummary>,
    /// Record-error classes of the incident, largest first.
    #[serde(default)]
    pub error_classes: Vec<ErrorClass>,
    /// The latest run-level error message.
    #[serde(default)]
    pub run_error: Option<String>,
    /// Resolved notices: what the incident cost.
    #[serde(default)]
    pub totals: Option<IncidentTotals>,
    pub links: Links,
    /// A ready-to-paste command that silences this sync.
    pub silence_hint: String,
}

/// One run in the bad-runs table of a notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    /// `success`, `failed`, `cancelled` (a `success` run can be bad through
    /// its record failures).
    pub status: String,
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
    #[serde(default)]
    pub processed: Option<u64>,
    #[serde(default)]
    pub succeeded: Option<u64>,
    #[serde(default)]
    pub failed: Option<u64>,
    #[serde(default)]
    pub invalid: Option<u64>,
    /// Run-level error message (with its code when there is one).
    #[serde(default)]
    pub error: Option<String>,
    /// The run's page in the runner's UI.
    #[serde(default)]
    pub url: Option<String>,
}

/// What an incident cost, for the resolved notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentTotals {
    /// From `since` to the resolving event.
    pub duration_ms: i64,
    /// Runs evaluated during the incident.
    pub runs: u64,
    pub runs_failed: u64,
    pub records_failed: u64,
    pub records_invalid: u64,
}

/// Where a reader goes next. All absolute URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// The sync's page on the sidecar.
    pub sync: String,
    /// The newest bad run's page on the sidecar.
    #[serde(default)]
    pub run: Option<String>,
    pub incident: String,
    /// Where to create a silence for this sync.
    pub silence: String,
    /// The newest bad run in the runner's own UI (`run.url`).
    #[serde(default)]
    pub runner: Option<String>,
}

impl NoticeContext {
    /// `true` for the notices that report a breakage (firing and reminder).
    pub fn is_failure(&self) -> bool {
        self.kind != "resolved"
    }

    /// A realistic firing notice: a Census sync to Salesforce whose runs fail
    /// with rejected records. Used by tests, snapshot tests and by
    /// `Templates::reload` to check that edited templates still render.
    pub fn example_outage() -> NoticeContext {
        let ts = |s: &str| Timestamp::parse_rfc3339(s).unwrap_or_default();
        let base = "http://localhost:8686";
        let sync = "orders_to_salesforce";
        let incident = "9f1c2a7b3d4e5f60";
        let runner = |run: &str| format!("https://app.getcensus.com/syncs/4812/sync-history/{run}");
        let run = |run_id: &str, at: &str, counts: [u64; 4], error: &str| RunSummary {
            run_id: run_id.to_owned(),
            status: "failed".to_owned(),
            finished_at: Some(ts(at)),
            processed: Some(counts[0]),
            succeeded: Some(counts[1]),
            failed: Some(counts[2]),
            invalid: Some(counts[3]),
            error: Some(error.to_owned()),
            url: Some(runner(run_id)),
        };
        let class =
            |count, code: &str, signature: &str, examples: &[&str], field: &str| ErrorClass {
                code: Some(code.to_owned()),
                signature: signature.to_owned(),
                count,
                examples: examples.iter().map(|s| (*s).to_owned()).collect(),
                field: Some(field.to_owned()),
            };
        NoticeContext {
            key: format!("{incident}:firing:0"),
            kind: "firing".to_owned(),
            cause: Some("failed_runs".to_owned()),
            rule: "sync-broken".to_owned(),
            severity: "critical".to_owned(),
            sync_id: sync.to_owned(),
            incident_id: incident.to_owned(),
            at: ts("2026-03-02T11:00:00Z"),
            since: ts("2026-03-02T10:00:00Z"),
            condition: "2 bad runs in a row (fire_after = 2); latest: run 1042 failed: \
                        Too many records rejected by Salesforce (412 of 1200)"
                .to_owned(),
            reason: None,
            source: Some("census".to_owned()),
            destination: Some("salesforce".to_owned()),
            labels: BTreeMap::from([
                ("destination".to_owned(), "salesforce".to_owned()),
                ("object".to_owned(), "Contact".to_owned()),
                ("team".to_owned(), "growth".to_owned()),
            ]),
            owner: Some("growth@example.com".to_owned()),
            downstream: vec![
                "hubspot_contacts".to_owned(),
                "dbt:marts.revenue".to_owned(),
            ],
            upstream: vec!["dbt:orders".to_owned()],
            bad_runs: vec![
                run(
                    "1042",
                    "2026-03-02T11:00:00Z",
                    [1200, 788, 398, 14],
                    "Too many records rejected by Salesforce (412 of 1200)",
                ),
                run(
                    "1041",
                    "2026-03-02T10:00:00Z",
                    [1180, 802, 366, 12],
                    "Too many records rejected by Salesforce (378 of 1180)",
                ),
            ],
            error_classes: vec![
                class(
                    512,
                    "INVALID_EMAIL_ADDRESS",
                    "INVALID_EMAIL_ADDRESS: Email: invalid email address: <email>",
                    &["0035e00000AbCdE", "0035e00000AbCdF", "0035e00000AbCdG"],
                    "Email",
                ),
                class(
                    252,
                    "STRING_TOO_LONG",
                    "Company: data value too large: <value> (max length=<n>)",
                    &["0035e00000XyZ01", "0035e00000XyZ02"],
                    "Company",
                ),
                class(
                    26,
                    "REQUIRED_FIELD_MISSING",
                    "Required fields are missing: [LastName]",
                    &["ord_88121"],
                    "LastName",
                ),
            ],
            run_error: Some("Too many records rejected by Salesforce (412 of 1200)".to_owned()),
            totals: None,
            links: Links {
                sync: format!("{base}/syncs/{sync}"),
                run: Some(format!("{base}/runs/{sync}/1042")),
                incident: format!("{base}/incidents?sync_id={sync}"),
                silence: format!("{base}/silences?sync={sync}"),
                runner: Some(runner("1042")),
            },
            silence_hint: format!(
                "syncwarden silence add --sync '{sync}' --duration 2h --comment 'investigating'"
            ),
        }
    }

    /// The resolved notice that closes [`example_outage`](Self::example_outage).
    pub fn example_recovery() -> NoticeContext {
        let ts = |s: &str| Timestamp::parse_rfc3339(s).unwrap_or_default();
        let firing = NoticeContext::example_outage();
        NoticeContext {
            key: format!("{}:resolved:1", firing.incident_id),
            kind: "resolved".to_owned(),
            cause: None,
            at: ts("2026-03-02T15:00:00Z"),
            condition: "2 good runs in a row (resolve_after = 2); latest: run 1046 success"
                .to_owned(),
            downstream: Vec::new(),
            totals: Some(IncidentTotals {
                duration_ms: 5 * 3_600_000,
                runs: 5,
                runs_failed: 3,
                records_failed: 1_142,
                records_invalid: 38,
            }),
            ..firing
        }
    }

    /// A notice with every optional field empty: what a stale sync with no
    /// runs at all looks like. Templates must render it too.
    pub fn example_minimal() -> NoticeContext {
        let ts = |s: &str| Timestamp::parse_rfc3339(s).unwrap_or_default();
        NoticeContext {
            key: "0000000000000000:firing:0".to_owned(),
            kind: "firing".to_owned(),
            cause: Some("stale".to_owned()),
            rule: "sync-stale".to_owned(),
            severity: "warning".to_owned(),
            sync_id: "nightly_export".to_owned(),
            incident_id: "0000000000000000".to_owned(),
            at: ts("2026-03-02T06:00:00Z"),
            since: ts("2026-03-02T06:00:00Z"),
            condition: "no finished run for 4h (stale_after = 4h)".to_owned(),
            reason: None,
            source: None,
            destination: None,
            labels: BTreeMap::new(),
            owner: None,
            downstream: Vec::new(),
            upstream: Vec::new(),
            bad_runs: Vec::new(),
            error_classes: Vec::new(),
            run_error: None,
            totals: None,
            links: Links {
                sync: "http://localhost:8686/syncs/nightly_export".to_owned(),
                run: None,
                incident: "http://localhost:8686/incidents?sync_id=nightly_export".to_owned(),
                silence: "http://localhost:8686/silences?sync=nightly_export".to_owned(),
                runner: None,
            },
            silence_hint: "syncwarden silence add --sync 'nightly_export' --duration 2h \
                           --comment 'investigating'"
                .to_owned(),
        }
    }
}

/// Third-party text that tries to break out of every context it lands in.
#[cfg(test)]
pub(crate) const HOSTILE: &str = "<script>alert(1)</script> <b>bold</b>\r\nBcc: evil@x";

#[cfg(test)]
impl NoticeContext {
    /// The example outage with every third-party string made hostile:
    /// HTML, script, `javascript:` links and CRLF header injections.
    pub(crate) fn example_hostile() -> NoticeContext {
        let mut ctx = NoticeContext::example_outage();
        ctx.sync_id = format!("census:1{HOSTILE}");
        ctx.condition = format!("run failed: {HOSTILE}");
        ctx.run_error = Some(HOSTILE.to_owned());
        ctx.bad_runs[0].error = Some(HOSTILE.to_owned());
        ctx.bad_runs[0].run_id = "<img src=x onerror=alert(2)>".to_owned();
        ctx.bad_runs[0].url = Some("javascript:alert(3)".to_owned());
        ctx.links.runner = Some("javascript:alert(4)".to_owned());
        ctx.labels
            .insert("team".to_owned(), "<i>growth</i>".to_owned());
        ctx.error_classes.insert(
            0,
            ErrorClass {
                code: Some("<b>CODE</b>".to_owned()),
                signature: HOSTILE.to_owned(),
                count: 1000,
                examples: vec!["<svg onload=alert(5)>".to_owned()],
                field: Some("\"><script>x</script>".to_owned()),
            },
        );
        ctx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_round_trips_through_json_with_every_field_present() {
        let ctx = NoticeContext::example_outage();
        let json = serde_json::to_value(&ctx).expect("serialises");
        // Absent values are explicit nulls, so strict templates can test them.
        assert!(json["reason"].is_null());
        assert!(json["totals"].is_null());
        assert_eq!(json["at"], "2026-03-02T11:00:00Z");
        let back: NoticeContext = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, ctx);
    }

    #[test]
    fn the_recovery_example_shares_the_incident() {
        let firing = NoticeContext::example_outage();
        let resolved = NoticeContext::example_recovery();
        assert_eq!(firing.incident_id, resolved.incident_id);
        assert!(firing.is_failure());
        assert!(!resolved.is_failure());
        assert!(resolved.totals.is_some());
    }
}
