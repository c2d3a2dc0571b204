//! Flap detection (SPEC §3.3): Nagios's weighted change share with
//! hysteresis.
//!
//! The window is a [`Verdicts`] ring: persisted as a string of `G`/`B`,
//! oldest first (compact in the alert JSON and readable when debugging an
//! alert by hand), and keeping the counts that make the share O(1).

use super::history::Verdicts;
use super::rules::Flap;

/// Thresholds within this distance count as reached, so floating-point
/// rounding (0.39999999999999997 for 0.4) never decides.
pub const TOLERANCE: f64 = 1e-9;

/// Appends a verdict, keeping only the last `size`.
pub fn push(window: &mut Verdicts, bad: bool, size: usize) {
    window.push(bad, size);
}

/// The weighted share of changed transitions; transition `i` (1-based,
/// oldest first) weighs `0.75 + 0.5 · (i − 1) / (n − 2)`.
pub fn share(window: &Verdicts) -> f64 {
    window.share()
}

/// The flag after a new share: start at `high`, stop below `low`, keep it
/// in between.
pub fn next_flag(flapping: bool, share: f64, flap: &Flap) -> bool {
    if share >= flap.high - TOLERANCE {
        true
    } else if share < flap.low - TOLERANCE {
        false
    } else {
        flapping
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(window: &str) -> f64 {
        super::share(&Verdicts::from_gb(window).expect("a G/B window"))
    }

    const FLAP: Flap = Flap {
        window: 10,
        high: 0.5,
        low: 0.25,
    };

    #[test]
    fn the_window_keeps_the_newest_verdicts() {
        let mut w = Verdicts::default();
        for bad in [true, false, false, true] {
            push(&mut w, bad, 3);
        }
        assert_eq!(w, "GGB");
    }

    #[test]
    fn weights_follow_the_nagios_curve() {
        // Every transition changes: the weights sum to window − 1.
        assert!((share("GBGBGBGBGB") - 1.0).abs() < 1e-12);
        assert_eq!(share("GGGGGGGGGG"), 0.0);
        // Only the newest transition changes: weight 1.25 over 9.
        assert!((share("GGGGGGGGGB") - 1.25 / 9.0).abs() < 1e-12);
        // Only the oldest: 0.75 over 9.
        assert!((share("BGGGGGGGGG") - 0.75 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn hysteresis_keeps_the_flag_between_low_and_high() {
        assert!(next_flag(false, 0.5, &FLAP));
        assert!(!next_flag(false, 0.4, &FLAP));
        assert!(next_flag(true, 0.4, &FLAP));
        assert!(next_flag(true, 0.25, &FLAP));
        assert!(!next_flag(true, 0.2499, &FLAP));
    }

    #[test]
    fn a_share_within_tolerance_of_a_threshold_counts_as_equal() {
        let f = Flap {
            window: 10,
            high: 0.4,
            low: 0.1,
        };
        // 0.1 + 0.3 is 0.4000000000000001 and 0.7 - 0.3 is 0.39999999999999997.
        let just_below = 0.7 - 0.3;
        assert!(just_below < 0.4);
        assert!(next_flag(false, just_below, &f));
        let stop = Flap {
            window: 10,
            high: 0.9,
            low: 0.4,
        };
        assert!(
            next_flag(true, just_below, &stop),
            "0.39999999999999997 is not below 0.4"
        );
    }
}
