//! Small formatting helpers shared by the templates (as filters) and the
//! Slack payload, so a notice reads the same in every channel: durations as
//! `5h 12m`, counts as `1,200`, instants as `2026-03-02 11:00 UTC`.
//!
//! [`one_line`] is also the guard that keeps third-party text from breaking
//! out of a one-line context (an e-mail subject, a Slack header).

use crate::model::Timestamp;

/// `5h 12m`, `2d 3h`, `45s`; never more than two units, because "broken for
/// 2d 3h 12m 5s" is noise. Negative durations print as `0s`.
pub fn human_duration(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let parts: Vec<String> = [(d, "d"), (h, "h"), (m, "m"), (s, "s")]
        .iter()
        .skip_while(|(v, _)| *v == 0)
        .take(2)
        .filter(|(v, _)| *v > 0)
        .map(|(v, u)| format!("{v}{u}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

/// `1200` → `1,200`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `2026-03-02 11:00 UTC`; seconds only when they are not zero.
pub fn when(t: Timestamp) -> String {
    let iso = t.to_rfc3339();
    // `YYYY-MM-DDTHH:MM:SS[.mmm]Z`; anything else (a far-off year) prints
    // as the raw RFC 3339 text rather than being mangled.
    let (Some(date), Some(time)) = (iso.get(..10), iso.get(11..19)) else {
        return iso;
    };
    if iso.len() < 20 || !iso.ends_with('Z') {
        return iso;
    }
    match time.strip_suffix(":00") {
        Some(hm) if !iso[19..].starts_with('.') => format!("{date} {hm} UTC"),
        _ => format!("{date} {time} UTC"),
    }
}

/// Collapses every run of whitespace and control characters (CR, LF, TAB,
/// NUL, U+2028, …) to one space, drops bidirectional-override characters
/// (which can make a subject read differently from what it says), trims,
/// and caps the result at `max` characters with a trailing `…`.
pub fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut gap = false;
    for c in s.chars() {
        if is_bidi_control(c) {
            continue;
        }
        if c.is_whitespace() || c.is_control() {
            gap = true;
            continue;
        }
        if gap && !out.is_empty() {
            out.push(' ');
        }
        gap = false;
        out.push(c);
    }
    cap(&out, max)
}

/// Cuts `s` to at most `max` characters, marking a cut with `…`.
pub fn cap(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Only `http://` and `https://` URLs become links: a runner URL comes from
/// third-party input, and `javascript:` or `data:` links must not be
/// clickable in a notice.
pub fn is_http_url(s: &str) -> bool {
    let lower = s.trim_start().get(..8).unwrap_or(s).to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://"))
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Words for a notice's cause, for headings.
pub fn cause_text(kind: &str, cause: Option<&str>) -> &'static str {
    if kind == "resolved" {
        return "recovered";
    }
    match cause {
        Some("failed_runs") => "runs are failing",
        Some("record_failures") => "records are being rejected",
        Some("stale") => "no recent runs (stale)",
        Some("flapping") => "flapping between failing and healthy",
        _ => "broken",
    }
}

/// `FIRING`, `STILL FIRING` or `RESOLVED`.
pub fn kind_label(kind: &str) -> &'static str {
    match kind {
        "resolved" => "RESOLVED",
        "reminder" => "STILL FIRING",
        _ => "FIRING",
    }
}

/// Counts of a group's notices by kind, `(firing, reminder, resolved)`, and
/// the phrase both the e-mail subject and the Slack heading use:
/// `2 firing, 1 resolved`.
pub fn group_breakdown(
    kinds: impl Iterator<Item = impl AsRef<str>>,
) -> (usize, usize, usize, String) {
    let (mut firing, mut reminder, mut resolved) = (0, 0, 0);
    for k in kinds {
        match k.as_ref() {
            "reminder" => reminder += 1,
            "resolved" => resolved += 1,
            _ => firing += 1,
        }
    }
    let phrase = [
        (firing, "firing"),
        (reminder, "still firing"),
        (resolved, "resolved"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, k)| format!("{n} {k}"))
    .collect::<Vec<_>>()
    .join(", ");
    (firing, reminder, resolved, phrase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_the_two_largest_units() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(-5), "0s");
        assert_eq!(human_duration(45_000), "45s");
        assert_eq!(human_duration(5 * 3_600_000), "5h");
        assert_eq!(human_duration(5 * 3_600_000 + 12 * 60_000 + 5000), "5h 12m");
        assert_eq!(human_duration(2 * 86_400_000 + 3_600_000 + 60_000), "2d 1h");
        assert_eq!(human_duration(86_400_000 + 60_000), "1d");
    }

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1200), "1,200");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn instants_read_as_utc_minutes() {
        let t = |s| Timestamp::parse_rfc3339(s).expect("valid");
        assert_eq!(when(t("2026-03-02T11:00:00Z")), "2026-03-02 11:00 UTC");
        assert_eq!(when(t("2026-03-02T11:00:07Z")), "2026-03-02 11:00:07 UTC");
        assert_eq!(
            when(t("2026-03-02T11:00:00.250Z")),
            "2026-03-02 11:00:00 UTC"
        );
    }

    #[test]
    fn one_line_removes_every_way_to_start_a_new_line() {
        assert_eq!(
            one_line("sync\r\nBcc: evil@x\u{2028}x\u{85}y\0z\t", 200),
            "sync Bcc: evil@x x y z"
        );
        assert_eq!(one_line("a\u{202E}b", 200), "ab");
        assert_eq!(one_line(&"x".repeat(300), 10), "xxxxxxxxx…");
        assert_eq!(one_line("  ", 10), "");
    }

    #[test]
    fn only_http_urls_are_links() {
        assert!(is_http_url("https://app.getcensus.com/x"));
        assert!(is_http_url("HTTP://x"));
        assert!(!is_http_url("javascript:alert(1)"));
        assert!(!is_http_url("https://x/\"onmouseover=x y"));
        assert!(!is_http_url("data:text/html,hi"));
        assert!(!is_http_url(""));
    }
}
