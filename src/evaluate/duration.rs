//! Human durations in rules files ("90m", "2h", "1d", "30s").
//!
//! Rules speak humantime's vocabulary so an on-call engineer writes what
//! they would say; the engine itself only ever sees whole milliseconds.

use std::time::Duration;

/// Parses a rules-file duration. `allow_zero` exists for `group_wait`, whose
/// documented default is `"0s"`; every other duration must be positive.
pub fn parse_duration(text: &str, allow_zero: bool) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e})"))?;
    if d.is_zero() && !allow_zero {
        return Err(format!("{text:?} must be longer than zero"));
    }
    if millis(d) == i64::MAX {
        return Err(format!("{text:?} is too long"));
    }
    Ok(d)
}

/// A duration as whole milliseconds, saturating: the engine's unit.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Formats milliseconds the way a rule author would write them ("3h",
/// "1h 30m"), for the sentences in notices.
pub fn human(ms: i64) -> String {
    let d = Duration::from_millis(ms.max(0).unsigned_abs());
    // humantime prints "1h 30m"; whole seconds are plenty for people.
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_durations_parse_in_the_units_people_write() {
        assert_eq!(parse_duration("90m", false), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2h", false), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d", false), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_duration("30s", false), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn zero_is_only_allowed_where_asked_for() {
        assert!(parse_duration("0s", false).is_err());
        assert_eq!(parse_duration("0s", true), Ok(Duration::ZERO));
        assert!(parse_duration("soon", true).is_err());
    }

    #[test]
    fn milliseconds_print_back_as_human_durations() {
        assert_eq!(human(3 * 3_600_000), "3h");
        assert_eq!(human(5_400_000), "1h 30m");
    }
}
