//! Learned thresholds (SPEC §3.2, `"auto"`): the alert's own history sets
//! how many BAD runs in a row are news and how long a silence is suspicious.
//!
//! Both learners are pure functions of small persisted histories (the calm
//! verdicts and the last 20 gaps, see `history.rs`), so a restored engine
//! learns exactly what an uninterrupted one would. Both are O(1) per run:
//! the histories keep the counts and the sorted gaps they need.

use super::duration::millis;
use super::history::{Gaps, Verdicts};
use super::rules::AutoParams;

/// Fewer gaps than this and a sync is never considered stale.
pub const GAPS_NEEDED: usize = 5;
/// Relative tolerance of `p^k ≤ target`.
const TOLERANCE: f64 = 1e-9;

/// The learned `fire_after` and the numbers behind it, for the API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnedK {
    pub k: u32,
    /// Share of BAD among the calm verdicts considered; `None` in warm-up.
    pub p: Option<f64>,
    /// Calm verdicts considered (trailing BADs left out).
    pub considered: usize,
}

/// `fire_after` for the next verdict, from the calm history as it stands.
pub fn auto_k(calm: &Verdicts, auto: &AutoParams) -> LearnedK {
    // The BADs at the end are the streak being judged, not noise yet.
    let n = calm.len() - calm.trailing_bad();
    if n < auto.warmup || n == 0 {
        return LearnedK {
            k: auto.min,
            p: None,
            considered: n,
        };
    }
    let bad = calm.bad() - calm.trailing_bad();
    let p = bad as f64 / n as f64;
    let limit = auto.target * (1.0 + TOLERANCE);
    let k = (auto.min..=auto.max)
        .find(|&k| p.powi(k as i32) <= limit)
        .unwrap_or(auto.max);
    LearnedK {
        k,
        p: Some(p),
        considered: n,
    }
}

/// Appends a calm verdict, keeping the last `learn`.
pub fn push_calm(calm: &mut Verdicts, bad: bool, learn: usize) {
    calm.push(bad, learn);
}

/// Records the gap before a run, keeping the last 20.
pub fn push_gap(gaps: &mut Gaps, gap_ms: i64) {
    gaps.push(gap_ms);
}

/// The element at index ⌊n/2⌋ of the sorted gaps, with at least
/// [`GAPS_NEEDED`] of them.
pub fn median_gap(gaps: &Gaps) -> Option<i64> {
    if gaps.len() < GAPS_NEEDED {
        return None;
    }
    gaps.nth_smallest(gaps.len() / 2)
}

/// The learned silence budget: `max(stale_min, stale_factor × median gap)`.
pub fn stale_budget(gaps: &Gaps, auto: &AutoParams) -> Option<i64> {
    let median = median_gap(gaps)?;
    let scaled = (auto.stale_factor * median as f64).round();
    let scaled = if scaled >= i64::MAX as f64 {
        i64::MAX
    } else {
        scaled as i64
    };
    Some(scaled.max(millis(auto.stale_min)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn auto() -> AutoParams {
        AutoParams::default()
    }

    fn history(good: usize, bad: usize) -> Verdicts {
        // Spread the BADs so none of them trails.
        let mut s = "B".repeat(bad);
        s.push_str(&"G".repeat(good));
        gb(&s)
    }

    fn gb(text: &str) -> Verdicts {
        Verdicts::from_gb(text).expect("a G/B history")
    }

    fn gaps(list: &[i64]) -> Gaps {
        let mut g = Gaps::default();
        for &gap in list {
            g.push(gap);
        }
        g
    }

    #[test]
    fn warm_up_uses_min() {
        let l = auto_k(&gb(&"G".repeat(19)), &auto());
        assert_eq!((l.k, l.p), (2, None));
        assert_eq!(auto_k(&gb(&"G".repeat(20)), &auto()).p, Some(0.0));
    }

    #[test]
    fn trailing_bads_are_not_noise_yet() {
        // 19 calm verdicts once the streak is left out: still warming up.
        let mut calm = "G".repeat(19);
        calm.push_str("BBB");
        let l = auto_k(&gb(&calm), &auto());
        assert_eq!((l.k, l.considered), (2, 19));
        // A BAD in the middle counts.
        let l = auto_k(
            &gb(&format!("{}B{}", "G".repeat(10), "G".repeat(9))),
            &auto(),
        );
        assert_eq!(l.p, Some(0.05));
    }

    #[test]
    fn a_quiet_history_gives_min_and_an_always_bad_one_gives_max() {
        assert_eq!(auto_k(&gb(&"G".repeat(50)), &auto()).k, 2);
        // p = 1 needs the BADs not to trail: end on a GOOD.
        let mut calm = "B".repeat(40);
        calm.push('G');
        assert_eq!(auto_k(&gb(&calm), &auto()).k, 6);
    }

    #[test]
    fn p_to_the_k_equal_to_target_counts_within_tolerance() {
        // p = 0.1: 0.1^4 is 1.0000000000000005e-4 in floating point.
        let l = auto_k(&history(90, 10), &auto());
        assert_eq!(l.p, Some(0.1));
        assert!(0.1f64.powi(4) > 1e-4, "the case this test is about");
        assert_eq!(l.k, 4);
        // p = 0.2: 0.2^5 = 3.2e-4, 0.2^6 = 6.4e-5.
        assert_eq!(auto_k(&history(80, 20), &auto()).k, 6);
    }

    #[test]
    fn gaps_need_five_and_use_the_upper_median() {
        let mut gaps = Gaps::default();
        for g in [10, 40, 20, 30] {
            push_gap(&mut gaps, g);
        }
        assert_eq!(median_gap(&gaps), None);
        push_gap(&mut gaps, 50);
        assert_eq!(median_gap(&gaps), Some(30));
        push_gap(&mut gaps, 60);
        // Six gaps: index 3 of [10,20,30,40,50,60].
        assert_eq!(median_gap(&gaps), Some(40));
    }

    #[test]
    fn only_the_last_twenty_gaps_count() {
        let mut gaps = Gaps::default();
        for _ in 0..20 {
            push_gap(&mut gaps, 1_000_000);
        }
        for _ in 0..20 {
            push_gap(&mut gaps, 60_000);
        }
        assert_eq!(gaps.len(), 20);
        assert_eq!(median_gap(&gaps), Some(60_000));
    }

    #[test]
    fn the_stale_budget_never_drops_below_stale_min() {
        let minute = 60_000;
        let a = auto();
        assert_eq!(stale_budget(&gaps(&[minute; 5]), &a), Some(30 * minute));
        assert_eq!(
            stale_budget(&gaps(&[15 * minute; 5]), &a),
            Some(60 * minute)
        );
        let a = AutoParams {
            stale_min: Duration::from_secs(1),
            stale_factor: 2.5,
            ..a
        };
        assert_eq!(stale_budget(&gaps(&[minute; 5]), &a), Some(150_000));
    }
}
