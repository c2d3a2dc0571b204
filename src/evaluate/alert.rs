//! One alert — one (rule, sync) pair — and its state machine (SPEC §3.2–3.3).
//!
//! [`AlertState`] is everything the engine knows about the pair, and it is
//! self-contained on purpose: the server persists it as one JSON document per
//! alert and a restarted engine continues from it without replaying runs.
//! The engine (`engine/`) decides *when* each method runs and what holds
//! apply; this file decides what each run or stale deadline does to the
//! underlying state, and `incident.rs` what is said about it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::duration::{human, millis};
use super::history::{Gaps, Verdicts};
use super::incident::Incident;
use super::notice::{Cause, HoldReason};
use super::rules::{FireAfter, Rule, StaleAfter};
use super::shared;
use super::verdict::{Verdict, Why, classify};
use super::{flap, learn};
use crate::model::{Run, Timestamp};

/// An alert is keyed by rule name and sync: a renamed rule is a new alert.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertKey {
    pub rule: String,
    pub sync_id: String,
}

impl AlertKey {
    pub fn new(rule: &str, sync_id: &str) -> Self {
        AlertKey {
            rule: rule.to_string(),
            sync_id: sync_id.to_string(),
        }
    }
}

/// The underlying state of SPEC §3.2 (flapping is tracked beside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Underlying {
    #[default]
    Ok,
    Pending,
    Firing,
}

/// The kind of the last notice actually sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Notified {
    #[default]
    None,
    Firing,
    Resolved,
}

/// What the "auto" learners last computed, so the API can explain them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Learned {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_gap_ms: Option<i64>,
}

/// Everything about one alert; see the module doc.
///
/// Cheap to clone on purpose (the undo journal copies a state on its first
/// change after every commit): text and labels are shared (`Arc`), the
/// histories are inline rings. The JSON form is that of the plain values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    #[serde(with = "shared::arc")]
    pub key: Arc<AlertKey>,
    /// `finished_at` of the first matching run; part of every incident id so
    /// a removed and re-added rule never reuses one.
    pub created_at: Timestamp,
    /// Labels and source of the last matching run.
    #[serde(default, with = "shared::arc", skip_serializing_if = "no_labels")]
    pub labels: Arc<BTreeMap<String, String>>,
    #[serde(
        default,
        with = "shared::opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub source: Option<Arc<str>>,
    #[serde(default)]
    pub state: Underlying,
    /// Why the underlying state is firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// The sentence for `cause`, with the values that tipped it.
    #[serde(
        default,
        with = "shared::opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub condition: Option<Arc<str>>,
    /// When the firing underlying state began (first BAD of the streak, or
    /// the newest run for stale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_since: Option<Timestamp>,
    #[serde(default)]
    pub bad_streak: u32,
    #[serde(default)]
    pub good_streak: u32,
    /// `finished_at` of the first BAD run of the current streak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streak_start: Option<Timestamp>,
    /// The last `flap.window` verdicts, `G`/`B`, oldest first.
    #[serde(default)]
    pub flap_window: Verdicts,
    #[serde(default)]
    pub flapping: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap_share: Option<f64>,
    #[serde(default)]
    pub notified: Notified,
    /// Incidents opened so far (the next one gets this + 1).
    #[serde(default)]
    pub incidents: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Incident>,
    /// The hold that applied at the last settle (SPEC §3.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<HoldReason>,
    /// Newest `finished_at` seen, neutral runs included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_deadline: Option<Timestamp>,
    /// GOOD/BAD verdicts received while not firing, `G`/`B`, oldest first.
    #[serde(default)]
    pub calm: Verdicts,
    /// Milliseconds between consecutive matched runs, the last 20.
    #[serde(default)]
    pub gaps: Gaps,
    #[serde(default)]
    pub learned: Learned,
    /// What last made things better, for the resolved notice's sentence.
    #[serde(
        default,
        with = "shared::opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_change: Option<Arc<str>>,
}

fn no_labels(labels: &Arc<BTreeMap<String, String>>) -> bool {
    labels.is_empty()
}

impl AlertState {
    pub fn new(key: AlertKey, created_at: Timestamp) -> Self {
        Self::with_key(Arc::new(key), created_at)
    }

    pub(crate) fn with_key(key: Arc<AlertKey>, created_at: Timestamp) -> Self {
        AlertState {
            key,
            created_at,
            labels: Arc::default(),
            source: None,
            state: Underlying::Ok,
            cause: None,
            condition: None,
            fired_since: None,
            bad_streak: 0,
            good_streak: 0,
            streak_start: None,
            flap_window: Verdicts::default(),
            flapping: false,
            flap_share: None,
            notified: Notified::None,
            incidents: 0,
            incident: None,
            held: None,
            newest: None,
            stale_deadline: None,
            calm: Verdicts::default(),
            gaps: Gaps::default(),
            learned: Learned::default(),
            last_change: None,
        }
    }

    /// Desired is firing when the underlying state is firing or the sync
    /// flaps (SPEC §3.4).
    pub fn desired_firing(&self) -> bool {
        self.state == Underlying::Firing || self.flapping
    }

    pub fn incident_id(&self) -> Option<&str> {
        self.incident.as_ref().map(|i| &*i.id)
    }

    pub fn reminder_due(&self) -> Option<Timestamp> {
        self.incident.as_ref().and_then(|i| i.reminder_due)
    }

    /// One word for the UI: held, stale, firing, flapping, pending or ok.
    pub fn state_name(&self) -> &'static str {
        if self.desired_firing() && self.notified != Notified::Firing && self.held.is_some() {
            "held"
        } else if self.state == Underlying::Firing && self.cause == Some(Cause::Stale) {
            "stale"
        } else if self.state == Underlying::Firing {
            "firing"
        } else if self.flapping {
            "flapping"
        } else if self.state == Underlying::Pending {
            "pending"
        } else {
            "ok"
        }
    }

    /// Applies one matched, finished run: verdict, streaks, learners, flap
    /// window, staleness bookkeeping. Notices come from [`Self::settle`].
    pub(crate) fn observe(&mut self, rule: &Rule, run: &Run, at: Timestamp) {
        let (verdict, why) = classify(&rule.bad_when, run);
        if *self.labels != run.labels {
            self.labels = Arc::new(run.labels.clone());
        }
        if self.source.as_deref() != run.source.as_deref() {
            self.source = run.source.as_deref().map(Arc::from);
        }
        if let Some(prev) = self.newest {
            learn::push_gap(&mut self.gaps, at.0.saturating_sub(prev.0));
        }
        self.newest = Some(self.newest.map_or(at, |n| n.max(at)));
        self.learned.median_gap_ms = learn::median_gap(&self.gaps);
        let bad = match verdict {
            Verdict::Neutral => {
                self.stale_deadline = self.compute_stale_deadline(rule);
                return;
            }
            Verdict::Good => None,
            Verdict::Bad(cause) => Some(cause),
        };
        let was_firing = self.state == Underlying::Firing;
        let k = match rule.fire_after {
            FireAfter::Fixed(k) => k,
            FireAfter::Auto => {
                let l = learn::auto_k(&self.calm, &rule.auto);
                self.learned.k = Some(l.k);
                self.learned.p = l.p;
                l.k
            }
        };
        match bad {
            Some(cause) => self.on_bad(rule, cause, k, (why, run), at),
            None => self.on_good(rule, (why, run)),
        }
        if !was_firing {
            learn::push_calm(&mut self.calm, bad.is_some(), rule.auto.learn);
        }
        self.update_flap(rule, bad.is_some());
        self.stale_deadline = self.compute_stale_deadline(rule);
    }

    /// `why` and `run` give the verdict's sentence, written only if used.
    fn on_bad(
        &mut self,
        rule: &Rule,
        cause: Cause,
        k: u32,
        (why, run): (Why, &Run),
        at: Timestamp,
    ) {
        self.bad_streak = self.bad_streak.saturating_add(1);
        self.good_streak = 0;
        if self.bad_streak == 1 || self.streak_start.is_none() {
            self.streak_start = Some(at);
        }
        if self.state == Underlying::Firing {
            // Firing for any cause, stale included, stays as it is.
            return;
        }
        if self.bad_streak < k {
            self.state = Underlying::Pending;
            return;
        }
        self.state = Underlying::Firing;
        self.cause = Some(cause);
        self.fired_since = self.streak_start;
        let threshold = match rule.fire_after {
            FireAfter::Fixed(k) => format!("fire_after = {k}"),
            FireAfter::Auto => match self.learned.p {
                Some(p) => format!("fire_after = auto → {k}, learned from a BAD share of {p:.3}"),
                None => format!("fire_after = auto → {k} while still learning"),
            },
        };
        let n = self.bad_streak;
        let detail = why.detail(run);
        self.condition = Some(Arc::from(match cause {
            Cause::RecordFailures if n == 1 => format!("{detail} ({threshold})"),
            Cause::RecordFailures => {
                format!("{detail}; {n} consecutive bad runs ({threshold})")
            }
            _ => format!("{n} consecutive failed runs ({threshold}); last: {detail}"),
        }));
    }

    fn on_good(&mut self, rule: &Rule, (why, run): (Why, &Run)) {
        self.good_streak = self.good_streak.saturating_add(1);
        self.bad_streak = 0;
        self.streak_start = None;
        match self.state {
            Underlying::Ok => {}
            Underlying::Pending => self.state = Underlying::Ok,
            Underlying::Firing => {
                let stale = self.cause == Some(Cause::Stale);
                if stale || self.good_streak >= rule.resolve_after {
                    self.last_change = Some(Arc::from(if stale {
                        format!("the sync reported again ({})", why.detail(run))
                    } else {
                        format!(
                            "{} consecutive good runs (resolve_after = {})",
                            self.good_streak, rule.resolve_after
                        )
                    }));
                    self.state = Underlying::Ok;
                    self.cause = None;
                    self.condition = None;
                    self.fired_since = None;
                }
            }
        }
    }

    fn update_flap(&mut self, rule: &Rule, bad: bool) {
        let Some(f) = rule.flap else {
            self.flap_window.clear();
            self.flapping = false;
            self.flap_share = None;
            return;
        };
        flap::push(&mut self.flap_window, bad, f.window);
        if self.flap_window.len() < f.window {
            self.flapping = false;
            self.flap_share = None;
            return;
        }
        let share = flap::share(&self.flap_window);
        let next = flap::next_flag(self.flapping, share, &f);
        if self.flapping && !next {
            self.last_change = Some(Arc::from(format!(
                "flapping stopped: change share {share:.2} < {:.2} over {} runs",
                f.low, f.window
            )));
        }
        self.flapping = next;
        self.flap_share = Some(share);
    }

    /// The stale deadline implied by the state and the rule; none while
    /// firing (a firing sync stays as it is).
    pub(crate) fn compute_stale_deadline(&self, rule: &Rule) -> Option<Timestamp> {
        if self.state == Underlying::Firing {
            return None;
        }
        let newest = self.newest?;
        let budget = match rule.stale_after? {
            StaleAfter::Fixed(d) => millis(d),
            StaleAfter::Auto => learn::stale_budget(&self.gaps, &rule.auto)?,
        };
        Some(newest.plus_millis(budget))
    }

    /// The stale timer fired at `at`: ok/pending becomes firing (stale).
    pub(crate) fn go_stale(&mut self, rule: &Rule, at: Timestamp) {
        self.stale_deadline = None;
        if self.state == Underlying::Firing {
            return;
        }
        let newest = self.newest.unwrap_or(at);
        let setting = match rule.stale_after {
            Some(StaleAfter::Auto) => format!(
                "stale_after = auto → {}, from a usual gap of {}",
                human(at.0 - newest.0),
                human(self.learned.median_gap_ms.unwrap_or(0))
            ),
            Some(StaleAfter::Fixed(d)) => format!("stale_after = {}", human(millis(d))),
            None => "stale_after".to_string(),
        };
        self.state = Underlying::Firing;
        self.cause = Some(Cause::Stale);
        self.fired_since = Some(newest);
        self.condition = Some(Arc::from(format!(
            "no finished run for {} ({setting})",
            human(at.0 - newest.0)
        )));
    }

    /// Repairs what a JSON round trip can lose: serde_json may read a float
    /// back one ulp off, and the flap share is shown rounded (`{:.2}`), so
    /// at a tie a restarted engine would word a notice differently from an
    /// uninterrupted one. The share is a function of the window: when the
    /// stored one is that value up to parsing noise, take the exact value.
    pub(crate) fn after_load(&mut self, rule: &Rule) {
        if let (Some(f), Some(stored)) = (rule.flap, self.flap_share)
            && self.flap_window.len() == f.window
        {
            let exact = flap::share(&self.flap_window);
            if (stored - exact).abs() <= 1e-12 {
                self.flap_share = Some(exact);
            }
        }
    }

    /// Adopts a reloaded rule's parameters (SPEC §3.6): windows shrink to the
    /// new sizes and timers are recomputed, never earlier than `floor`.
    pub(crate) fn retune(&mut self, rule: &Rule, floor: Option<Timestamp>) {
        match rule.flap {
            Some(f) => {
                self.flap_window.truncate_front(f.window);
                if self.flap_window.len() < f.window {
                    self.flapping = false;
                    self.flap_share = None;
                }
            }
            None => {
                self.flap_window.clear();
                self.flapping = false;
                self.flap_share = None;
            }
        }
        self.calm.truncate_front(rule.auto.learn);
        let clamp = |t: Timestamp| floor.map_or(t, |f| t.max(f));
        self.stale_deadline = self.compute_stale_deadline(rule).map(clamp);
        let firing_sent = self.notified == Notified::Firing && self.desired_firing();
        if let Some(inc) = self.incident.as_mut() {
            inc.reminder_due = match (rule.repeat_every, inc.last_sent) {
                (Some(r), Some(last)) if firing_sent && !inc.reminder_owed => {
                    Some(clamp(last.plus_millis(millis(r))))
                }
                _ => None,
            };
        }
    }
}
