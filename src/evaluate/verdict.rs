//! The verdict of one run under one rule (SPEC §3.1): BAD with a cause,
//! GOOD, or neutral.
//!
//! Kept apart from the state machine because it is the one place that reads
//! a run's status and counts; everything downstream only sees verdicts.

use super::notice::Cause;
use super::rules::BadWhen;
use crate::model::{Run, RunStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Bad(Cause),
    Good,
    /// A cancelled run without a record breach: a sign of life only.
    Neutral,
}

/// A verdict and the sentence that explains it, for notice conditions.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub verdict: Verdict,
    pub detail: String,
}

pub fn judge(bad_when: &BadWhen, run: &Run) -> Judged {
    let (verdict, why) = classify(bad_when, run);
    Judged {
        verdict,
        detail: why.detail(run),
    }
}

/// Which clause of SPEC §3.1 decided, with the numbers it compared: enough
/// to write the sentence later, so the hot path allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Why {
    /// `status` is in `bad_when.status`: the run-level error is quoted.
    Status,
    /// No BAD clause applied.
    Plain,
    Ratio {
        ratio: f64,
        limit: f64,
    },
    Records {
        rejected: u64,
        limit: u64,
    },
}

impl Why {
    /// The sentence [`judge`] returns as `detail`.
    pub(crate) fn detail(self, run: &Run) -> String {
        match self {
            Why::Status => {
                let mut detail = format!("run {} {}", run.run_id, run.status);
                if let Some(err) = &run.error {
                    detail.push_str(": ");
                    detail.extend(err.message.chars().take(200));
                }
                detail
            }
            Why::Plain => format!("run {} {}", run.run_id, run.status),
            Why::Ratio { ratio, limit } => {
                format!("failed ratio {ratio:.3} > {limit} on run {}", run.run_id)
            }
            Why::Records { rejected, limit } => format!(
                "{rejected} rejected records > {limit} on run {}",
                run.run_id
            ),
        }
    }
}

/// The verdict of [`judge`] without its sentence.
pub(crate) fn classify(bad_when: &BadWhen, run: &Run) -> (Verdict, Why) {
    if bad_when.status.contains(&run.status) {
        return (Verdict::Bad(Cause::FailedRuns), Why::Status);
    }
    let ratio = run.records.failed_ratio();
    if let (Some(r), Some(limit)) = (ratio, bad_when.failed_ratio_above)
        && r > limit
    {
        return (
            Verdict::Bad(Cause::RecordFailures),
            Why::Ratio { ratio: r, limit },
        );
    }
    let rejected = run.records.rejected();
    if let Some(limit) = bad_when.failed_records_above
        && rejected > limit
    {
        return (
            Verdict::Bad(Cause::RecordFailures),
            Why::Records { rejected, limit },
        );
    }
    let verdict = if run.status == RunStatus::Success {
        Verdict::Good
    } else {
        Verdict::Neutral
    };
    (verdict, Why::Plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RecordCounts, Timestamp};

    pub(crate) fn run(status: RunStatus, processed: Option<u64>, failed: Option<u64>) -> Run {
        Run {
            sync_id: "s".into(),
            run_id: "r1".into(),
            status,
            finished_at: Some(Timestamp(0)),
            started_at: None,
            records: RecordCounts {
                processed,
                failed,
                ..Default::default()
            },
            error: None,
            record_errors: vec![],
            url: None,
            source: None,
            labels: Default::default(),
        }
    }

    fn rules(ratio: Option<f64>, records: Option<u64>) -> BadWhen {
        BadWhen {
            status: vec![RunStatus::Failed],
            failed_ratio_above: ratio,
            failed_records_above: records,
        }
    }

    #[test]
    fn a_failed_status_is_bad_before_any_record_check() {
        let j = judge(
            &rules(Some(0.1), None),
            &run(RunStatus::Failed, Some(10), Some(5)),
        );
        assert_eq!(j.verdict, Verdict::Bad(Cause::FailedRuns));
    }

    #[test]
    fn record_thresholds_are_strictly_greater() {
        let b = rules(Some(0.1), Some(5));
        assert_eq!(
            judge(&b, &run(RunStatus::Success, Some(50), Some(5))).verdict,
            Verdict::Good
        );
        assert_eq!(
            judge(&b, &run(RunStatus::Success, Some(50), Some(6))).verdict,
            Verdict::Bad(Cause::RecordFailures)
        );
        assert_eq!(
            judge(
                &rules(Some(0.1), None),
                &run(RunStatus::Success, Some(10), Some(2))
            )
            .verdict,
            Verdict::Bad(Cause::RecordFailures)
        );
    }

    #[test]
    fn cancelled_is_neutral_unless_records_breach() {
        let b = rules(Some(0.1), None);
        assert_eq!(
            judge(&b, &run(RunStatus::Cancelled, None, None)).verdict,
            Verdict::Neutral
        );
        assert_eq!(
            judge(&b, &run(RunStatus::Cancelled, Some(10), Some(5))).verdict,
            Verdict::Bad(Cause::RecordFailures)
        );
    }

    #[test]
    fn only_a_bad_status_quotes_the_run_error() {
        let b = rules(None, None);
        let mut r = run(RunStatus::Failed, None, None);
        r.error = Some(crate::model::RunError {
            code: None,
            message: "boom".into(),
        });
        assert_eq!(judge(&b, &r).detail, "run r1 failed: boom");
        r.status = RunStatus::Success;
        assert_eq!(judge(&b, &r).detail, "run r1 success");
    }

    #[test]
    fn no_ratio_without_processed_records() {
        let b = rules(Some(0.0), None);
        assert_eq!(
            judge(&b, &run(RunStatus::Success, None, Some(3))).verdict,
            Verdict::Good
        );
        assert_eq!(
            judge(&b, &run(RunStatus::Success, Some(0), Some(3))).verdict,
            Verdict::Good
        );
    }
}
