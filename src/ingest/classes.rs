//! Error classes: record-level errors grouped by what went wrong rather than
//! by which record it happened to.
//!
//! A destination rejects thousands of records with messages that differ only
//! in the record's id, e-mail, number or quoted value ("invalid email address:
//! user488@example", "… user722@example"). A failure notice that lists them
//! one by one is unreadable, so each message is reduced to a *signature* in
//! which those variable parts become placeholders, and records are counted per
//! `(code, signature)`. SPEC §3.7 asks for exactly this in every failure
//! notice, and the store keeps the classes of each run.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::model::RecordError;

/// Signatures longer than this are cut: a class is named by its beginning,
/// and an unbounded message must not become an unbounded key.
pub const MAX_SIGNATURE_CHARS: usize = 300;

/// How many example record ids a class keeps.
pub const MAX_EXAMPLES: usize = 5;

/// Longest quoted JSON value kept verbatim when it is a structural field such
/// as `"error":"INVALID_EMAIL"`; longer ones are data, not structure.
const MAX_KEPT_JSON_VALUE: usize = 64;

/// JSON keys whose short identifier-like values describe the *kind* of error
/// (HubSpot's `{"error":"INVALID_EMAIL","name":"email"}`), so they stay in the
/// signature; every other quoted value is data and becomes `<value>`.
const STRUCTURAL_JSON_KEYS: &[&str] = &[
    "error",
    "code",
    "errorcode",
    "error_code",
    "errortype",
    "name",
    "field",
    "fieldname",
    "propertyname",
    "property",
    "category",
    "subcategory",
    "type",
    "status",
];

static URL: LazyLock<Regex> = LazyLock::new(|| {
    // Ends on a character that is not sentence punctuation, so the full stop
    // after a link stays in the message.
    Regex::new(r#"(?i)\b(?:https?|ftp)://[^\s'"<>]*[^\s'"<>.,;:!?)\]]"#).expect("static regex")
});

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    // The domain is optional on purpose: the invalid addresses destinations
    // complain about are exactly the ones like `jane.doe@` or `user@example`.
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]*(?:\.[A-Za-z0-9\-]+)*").expect("static regex")
});

static UUID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
        .expect("static regex")
});

static HEX_PREFIXED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b0[xX][0-9a-fA-F]+\b").expect("static regex"));

/// The token pattern [`replace_tokens`] follows by hand; the tests' oracle
/// runs it.
#[cfg(test)]
static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    // A word, possibly joined by `-`, `.` or `:` to further words, so that
    // `0035e00000AbCdE`, `cust_9912`, `3.14`, `10.0.0.1` and `06:02:09` are one
    // token each; `Email: invalid` is not, since a space follows the colon.
    Regex::new(r"[A-Za-z0-9_]+(?:[\-.:][A-Za-z0-9_]+)*").expect("static regex")
});

static WHITESPACE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\s+").expect("static regex"));

/// Reduces a record-error message to its class signature: URLs, e-mail
/// addresses, UUIDs, ids (Salesforce 15/18-character ids, hex ids, any word
/// mixing letters with two or more digits), numbers and quoted values become
/// `<url>`, `<email>`, `<uuid>`, `<id>`, `<n>` and `<value>`; whitespace is
/// collapsed and the result is capped at [`MAX_SIGNATURE_CHARS`].
///
/// Words with a single digit (`utf8`, `OAuth2`, `S3`) are kept: they are far
/// more often part of the vocabulary than an identifier.
pub fn signature(message: &str) -> String {
    // Each pass runs only when a byte scan says it can change something, so
    // a plain message costs a few scans instead of six regex passes; the
    // result is the same as running every pass (see `reference_signature`
    // in the tests, which does, and the property test holding them equal).
    // Quotes first: a quoted value is replaced whole, whatever it contains.
    let mut s: Cow<'_, str> = if message.contains(['"', '\'']) {
        Cow::Owned(replace_quoted(message))
    } else {
        Cow::Borrowed(message)
    };
    // Then each pass, in order, where its cheap test says it can match.
    let guarded: [GuardedPass; 4] = [
        (|s| s.contains("://"), &URL, "<url>"),
        (|s| s.contains('@'), &EMAIL, "<email>"),
        (|s| s.contains('-'), &UUID, "<uuid>"),
        (
            |s| s.contains("0x") || s.contains("0X"),
            &HEX_PREFIXED,
            "<id>",
        ),
    ];
    for (may_match, pass, with) in guarded {
        if may_match(&s) {
            let next = into_owned_if_changed(&s, pass.replace_all(&s, with));
            s = next;
        }
    }
    // A token changes only when it holds a digit.
    let s = if s.as_bytes().iter().any(u8::is_ascii_digit) {
        Cow::Owned(replace_tokens(&s))
    } else {
        s
    };
    // `\s+` → " " changes nothing in ASCII text whose only whitespace is
    // single spaces; anything else (tabs, runs, non-ASCII) takes the regex.
    let plain_spacing =
        s.is_ascii() && !s.contains("  ") && !s.contains(['\t', '\n', '\r', '\x0b', '\x0c']);
    let s = if plain_spacing {
        s
    } else {
        into_owned_if_changed(&s, WHITESPACE.replace_all(&s, " "))
    };
    cap_chars(s.trim(), MAX_SIGNATURE_CHARS)
}

/// A regex pass of [`signature`]: the cheap test that says it can match,
/// the pattern, and what replaces a match.
type GuardedPass = (fn(&str) -> bool, &'static Regex, &'static str);

/// `after` (a regex result borrowing `before`, or a new string) as a value
/// that no longer borrows it.
fn into_owned_if_changed<'a>(before: &Cow<'a, str>, after: Cow<'_, str>) -> Cow<'a, str> {
    match after {
        Cow::Borrowed(_) => before.clone(),
        Cow::Owned(s) => Cow::Owned(s),
    }
}

/// The `TOKEN` pass by hand: the same leftmost-first matches of
/// `[A-Za-z0-9_]+(?:[\-.:][A-Za-z0-9_]+)*` (ASCII classes, so a byte scan
/// finds them), each replaced by [`classify_token`], with no allocation per
/// token.
fn replace_tokens(s: &str) -> String {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if !word(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && word(b[i]) {
            i += 1;
        }
        while i + 1 < b.len() && matches!(b[i], b'-' | b'.' | b':') && word(b[i + 1]) {
            i += 1;
            while i < b.len() && word(b[i]) {
                i += 1;
            }
        }
        // Token boundaries are ASCII bytes, so these are char boundaries.
        out.push_str(&s[copied..start]);
        out.push_str(classify_token(&s[start..i]));
        copied = i;
    }
    out.push_str(&s[copied..]);
    out
}

/// What a single token becomes: itself, `<n>` or `<id>`.
fn classify_token(token: &str) -> &str {
    let digits = token.bytes().filter(u8::is_ascii_digit).count();
    let letters = token.bytes().filter(u8::is_ascii_alphabetic).count();
    if digits == 0 {
        return token;
    }
    if letters == 0 {
        return "<n>";
    }
    let alnum_only = token.bytes().all(|c| c.is_ascii_alphanumeric());
    let all_hex = token.bytes().all(|c| c.is_ascii_hexdigit());
    let salesforce_id = alnum_only && (token.len() == 15 || token.len() == 18);
    if digits >= 2 || salesforce_id || (all_hex && token.len() >= 8) {
        "<id>"
    } else {
        token
    }
}

/// Replaces quoted values ('…' and "…") by `<value>`.
///
/// A single quote opens only where a word does not continue (`doesn't` is
/// not a quote) and must be closed the same way. A double-quoted string
/// followed by `:` is a JSON key and is kept, as is the short identifier value
/// of a structural key (see [`STRUCTURAL_JSON_KEYS`]), so HubSpot's
/// `[{"isValid":false,"message":"…","error":"INVALID_EMAIL","name":"email"}]`
/// keeps its error kind and property name and loses only the data.
fn replace_quoted(message: &str) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len());
    // The last JSON key seen, lower-cased, while its value is pending.
    let mut pending_key: Option<String> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            if let Some(end) = closing_double_quote(&chars, i + 1) {
                let content: String = chars[i + 1..end].iter().collect();
                let next = next_non_space(&chars, end + 1);
                if next == Some(':') {
                    out.push('"');
                    out.push_str(&content);
                    out.push('"');
                    pending_key = Some(content.to_ascii_lowercase());
                } else {
                    let after_colon = prev_non_space(&chars, i) == Some(':');
                    let keep = after_colon
                        && pending_key
                            .as_deref()
                            .is_some_and(|k| STRUCTURAL_JSON_KEYS.contains(&k))
                        && is_identifier_like(&content);
                    if keep {
                        out.push('"');
                        out.push_str(&content);
                        out.push('"');
                    } else {
                        out.push_str("<value>");
                    }
                    pending_key = None;
                }
                i = end + 1;
                continue;
            }
        } else if c == '\'' && !is_word_char(i.checked_sub(1).map(|p| chars[p])) {
            if let Some(end) = closing_single_quote(&chars, i + 1) {
                out.push_str("<value>");
                i = end + 1;
                continue;
            }
        } else if c == ',' || c == '}' || c == '{' {
            pending_key = None;
        }
        out.push(c);
        i += 1;
    }
    out
}

fn closing_double_quote(chars: &[char], from: usize) -> Option<usize> {
    let mut j = from;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 2,
            '"' => return Some(j),
            _ => j += 1,
        }
    }
    None
}

fn closing_single_quote(chars: &[char], from: usize) -> Option<usize> {
    (from..chars.len()).find(|&j| chars[j] == '\'' && !is_word_char(chars.get(j + 1).copied()))
}

fn is_word_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

fn next_non_space(chars: &[char], from: usize) -> Option<char> {
    chars[from.min(chars.len())..]
        .iter()
        .copied()
        .find(|c| !c.is_whitespace())
}

fn prev_non_space(chars: &[char], before: usize) -> Option<char> {
    chars[..before]
        .iter()
        .rev()
        .copied()
        .find(|c| !c.is_whitespace())
}

fn is_identifier_like(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_KEPT_JSON_VALUE
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && s.chars().filter(char::is_ascii_digit).count() < 2
}

/// Cuts `s` to at most `max` characters, marking a cut with `…`.
fn cap_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A group of record errors that share a code and a message signature.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorClass {
    pub code: Option<String>,
    pub signature: String,
    /// Record errors in the class (of those given: a run may carry a sample).
    pub count: u64,
    /// Up to [`MAX_EXAMPLES`] distinct record ids, in order of appearance.
    pub examples: Vec<String>,
    /// The field every error of the class names; `None` when they name none
    /// or disagree.
    pub field: Option<String>,
}

impl ErrorClass {
    /// One line for a notice: `312 × INVALID_EMAIL_ADDRESS: invalid email
    /// address: <email>`. The code is not repeated when the message already
    /// starts with it, as Census's `CODE: message` texts do.
    pub fn headline(&self) -> String {
        match self.code.as_deref() {
            Some(code) if !self.signature.starts_with(code) => {
                format!("{} × {code}: {}", self.count, self.signature)
            }
            _ => format!("{} × {}", self.count, self.signature),
        }
    }
}

/// Groups record errors by `(code, signature)`, largest class first, then by
/// code and signature so the order is stable.
pub fn classify<'a>(errors: impl IntoIterator<Item = &'a RecordError>) -> Vec<ErrorClass> {
    // Field agreement per class: Some(Some(f)) while all agree on f,
    // Some(None) once they disagree or one names no field.
    struct Acc {
        class: ErrorClass,
        field: Option<Option<String>>,
    }
    let mut index: HashMap<(Option<String>, String), usize> = HashMap::new();
    let mut accs: Vec<Acc> = Vec::new();
    for e in errors {
        let key = (e.code.clone(), signature(&e.message));
        let i = *index.entry(key.clone()).or_insert_with(|| {
            accs.push(Acc {
                class: ErrorClass {
                    code: key.0,
                    signature: key.1,
                    count: 0,
                    examples: Vec::new(),
                    field: None,
                },
                field: None,
            });
            accs.len() - 1
        });
        let acc = &mut accs[i];
        acc.class.count += 1;
        if let Some(id) = &e.record_id
            && acc.class.examples.len() < MAX_EXAMPLES
            && !acc.class.examples.contains(id)
        {
            acc.class.examples.push(id.clone());
        }
        acc.field = match acc.field.take() {
            None => Some(e.field.clone()),
            Some(prev) if prev == e.field => Some(prev),
            Some(_) => Some(None),
        };
    }
    let mut classes: Vec<ErrorClass> = accs
        .into_iter()
        .map(|a| ErrorClass {
            field: a.field.flatten(),
            ..a.class
        })
        .collect();
    classes.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.code.cmp(&b.code))
            .then_with(|| a.signature.cmp(&b.signature))
    });
    classes
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use regex::Captures;

    /// The signature as it was computed before the byte-scan fast paths:
    /// every regex pass, always. The oracle for `signature`.
    fn reference_signature(message: &str) -> String {
        let s = replace_quoted(message);
        let s = URL.replace_all(&s, "<url>");
        let s = EMAIL.replace_all(&s, "<email>");
        let s = UUID.replace_all(&s, "<uuid>");
        let s = HEX_PREFIXED.replace_all(&s, "<id>");
        let s = TOKEN.replace_all(&s, |c: &Captures<'_>| classify_token(&c[0]).to_owned());
        let s = WHITESPACE.replace_all(&s, " ");
        cap_chars(s.trim(), MAX_SIGNATURE_CHARS)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]

        /// The fast paths change no signature: random text over the bytes
        /// each pass looks for (quotes, `://`, `@`, `-`, `0x`, digits,
        /// whitespace of every kind, non-ASCII).
        #[test]
        fn the_fast_signature_equals_every_pass_run(
            message in "([a-fA-F0-9xX_ .:,;/@'\"{}\\-]|\t|\n|  |\u{a0}|\u{2003}|é|https?://|ftp://|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\"error\": ?|[A-Za-z]{1,6}){0,40}"
        ) {
            prop_assert_eq!(signature(&message), reference_signature(&message));
        }

        #[test]
        fn the_fast_signature_equals_every_pass_run_on_any_text(message in "\\PC{0,80}") {
            prop_assert_eq!(signature(&message), reference_signature(&message));
        }
    }

    use super::*;

    fn err(id: &str, code: &str, message: &str) -> RecordError {
        RecordError {
            record_id: Some(id.to_owned()),
            code: Some(code.to_owned()),
            message: message.to_owned(),
            field: None,
        }
    }

    #[test]
    fn salesforce_messages_from_the_fleet_normalize() {
        let cases = [
            (
                "invalid email address: user488@example",
                "invalid email address: <email>",
            ),
            (
                "duplicate value found: External_Id__c duplicates value on record with id: 0031774",
                "duplicate value found: External_Id__c duplicates value on record with id: <n>",
            ),
            (
                "Company: data value too large: 'user524' (max length=80)",
                "Company: data value too large: <value> (max length=<n>)",
            ),
            (
                "Annual revenue must be positive (value 87847)",
                "Annual revenue must be positive (value <n>)",
            ),
            (
                "TotalRequests Limit exceeded.",
                "TotalRequests Limit exceeded.",
            ),
        ];
        for (message, want) in cases {
            assert_eq!(signature(message), want, "{message}");
        }
    }

    #[test]
    fn census_fixture_messages_normalize() {
        assert_eq!(
            signature("INVALID_EMAIL_ADDRESS: Email: invalid email address: jane.doe@"),
            "INVALID_EMAIL_ADDRESS: Email: invalid email address: <email>"
        );
        assert_eq!(
            signature(
                "DUPLICATE_VALUE: duplicate value found: External_Id__c duplicates value on record with id: 0035e00000AbCdE"
            ),
            "DUPLICATE_VALUE: duplicate value found: External_Id__c duplicates value on record with id: <id>"
        );
        // 18-character Salesforce ids and ids with a single digit are ids too.
        assert_eq!(
            signature("entity is deleted: 001Ab0000XyZabcDEF"),
            "entity is deleted: <id>"
        );
        assert_eq!(
            signature("insufficient access rights on cross-reference id: 0015e00000ABCDE"),
            "insufficient access rights on cross-reference id: <id>"
        );
    }

    #[test]
    fn hubspot_property_errors_keep_their_kind_and_lose_their_data() {
        let a = r#"Property values were not valid: [{"isValid":false,"message":"Email address jane@ is invalid","error":"INVALID_EMAIL","name":"email","portalId":4411}]"#;
        let b = r#"Property values were not valid: [{"isValid":false,"message":"Email address bob@x.io is invalid","error":"INVALID_EMAIL","name":"email","portalId":9921}]"#;
        let c = r#"Property values were not valid: [{"isValid":false,"message":"1234abcd was not a valid number","error":"INVALID_INTEGER","name":"annualrevenue","portalId":4411}]"#;
        assert_eq!(
            signature(a),
            r#"Property values were not valid: [{"isValid":false,"message":<value>,"error":"INVALID_EMAIL","name":"email","portalId":<n>}]"#
        );
        assert_eq!(signature(a), signature(b));
        assert_ne!(signature(a), signature(c));
    }

    #[test]
    fn urls_uuids_hex_and_apostrophes() {
        assert_eq!(
            signature("see https://app.example.com/runs/123?x=1. Then retry"),
            "see <url>. Then retry"
        );
        assert_eq!(
            signature("job 550e8400-e29b-41d4-a716-446655440000 failed at 0x7ffd1234"),
            "job <uuid> failed at <id>"
        );
        assert_eq!(
            signature("object deadbeef01 missing"),
            "object <id> missing"
        );
        assert_eq!(
            signature("value doesn't match 'Acme Corp' for utf8 field"),
            "value doesn't match <value> for utf8 field"
        );
        assert_eq!(
            signature(r#"column "arr_usd" does not exist"#),
            "column <value> does not exist"
        );
        assert_eq!(signature("  a \n\t b  "), "a b");
        assert_eq!(signature(""), "");
    }

    #[test]
    fn an_email_with_a_stray_space_still_groups() {
        // Scenario 03 sends `user0@exa mple.com`, `user1@exa mple.com`, ….
        assert_eq!(
            signature("invalid email address: user0@exa mple.com"),
            signature("invalid email address: user17@exa mple.com")
        );
    }

    #[test]
    fn signatures_are_capped() {
        let long = "word ".repeat(500);
        let s = signature(&long);
        assert_eq!(s.chars().count(), MAX_SIGNATURE_CHARS);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn messages_differing_only_in_data_share_a_class_and_others_do_not() {
        let errors = vec![
            err(
                "rec1",
                "INVALID_EMAIL_ADDRESS",
                "invalid email address: user488@example",
            ),
            err(
                "rec2",
                "INVALID_EMAIL_ADDRESS",
                "invalid email address: user722@example",
            ),
            err(
                "rec3",
                "STRING_TOO_LONG",
                "Company: data value too large: 'user524' (max length=80)",
            ),
            err(
                "rec4",
                "STRING_TOO_LONG",
                "Company: data value too large: 'user856' (max length=80)",
            ),
            err(
                "rec5",
                "INVALID_EMAIL_ADDRESS",
                "invalid email address: jane@example.com",
            ),
            err(
                "rec6",
                "DUPLICATE_VALUE",
                "duplicate value found: External_Id__c duplicates value on record with id: 0031774",
            ),
            err(
                "rec7",
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "Annual revenue must be positive (value 87847)",
            ),
            err(
                "rec8",
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "Annual revenue must be positive (value 11276)",
            ),
        ];
        let classes = classify(&errors);
        let summary: Vec<(u64, &str)> = classes
            .iter()
            .map(|c| (c.count, c.code.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            summary,
            vec![
                (3, "INVALID_EMAIL_ADDRESS"),
                (2, "FIELD_CUSTOM_VALIDATION_EXCEPTION"),
                (2, "STRING_TOO_LONG"),
                (1, "DUPLICATE_VALUE"),
            ]
        );
        assert_eq!(classes[0].examples, ["rec1", "rec2", "rec5"]);
        assert_eq!(
            classes[0].headline(),
            "3 × INVALID_EMAIL_ADDRESS: invalid email address: <email>"
        );
    }

    #[test]
    fn same_message_with_different_codes_are_different_classes() {
        let errors = vec![
            err("a", "X", "boom 1234"),
            err("b", "Y", "boom 5678"),
            RecordError {
                record_id: None,
                code: None,
                message: "boom 9".to_owned(),
                field: None,
            },
        ];
        let classes = classify(&errors);
        assert_eq!(classes.len(), 3);
        // Equal counts sort by code, None first.
        assert_eq!(classes[0].code, None);
        assert_eq!(classes[0].headline(), "1 × boom <n>");
        assert!(classes[0].examples.is_empty());
    }

    #[test]
    fn examples_are_distinct_and_capped_and_fields_must_agree() {
        let mut errors: Vec<RecordError> = (0..8)
            .map(|i| RecordError {
                record_id: Some(format!("r{}", i % 7)),
                code: Some("C".to_owned()),
                message: format!("bad {i}00"),
                field: Some("Email".to_owned()),
            })
            .collect();
        let classes = classify(&errors);
        assert_eq!(classes.len(), 1);
        assert_eq!(classes[0].count, 8);
        assert_eq!(classes[0].examples, ["r0", "r1", "r2", "r3", "r4"]);
        assert_eq!(classes[0].field.as_deref(), Some("Email"));

        errors[3].field = Some("Phone".to_owned());
        assert_eq!(classify(&errors)[0].field, None);
    }

    #[test]
    fn the_headline_does_not_repeat_a_code_the_message_starts_with() {
        let errors = vec![err(
            "0035e00000AbCdE",
            "INVALID_EMAIL_ADDRESS",
            "INVALID_EMAIL_ADDRESS: Email: invalid email address: jane.doe@",
        )];
        assert_eq!(
            classify(&errors)[0].headline(),
            "1 × INVALID_EMAIL_ADDRESS: Email: invalid email address: <email>"
        );
    }

    #[test]
    fn every_fleet_record_error_falls_into_one_class_per_code() {
        // The first 40 runs with record errors of /work/shared/scenarios/fleet-30d.
        let text = include_str!("testdata/fleet-sample.ndjson");
        let mut errors = Vec::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("fleet line is JSON");
            if let Some(list) = v.get("record_errors") {
                let list: Vec<RecordError> =
                    serde_json::from_value(list.clone()).expect("record errors");
                errors.extend(list);
            }
        }
        assert!(errors.len() >= 100);
        let classes = classify(&errors);
        assert_eq!(classes.len(), 5, "{classes:#?}");
    }
}
