//! Validation of the canonical run record (SPEC §1): the only way untrusted
//! JSON becomes [`Run`]s.
//!
//! Everything downstream trusts a `Run` (the model says so), so this module
//! checks every rule once, at the edge, and reports *all* the problems of a
//! request at once: a client fixing its payload should not have to resend it
//! once per mistake. Each problem names the element (`index`), the field path
//! (`records.failed`, `record_errors[3].message`, `labels.team`) and what was
//! expected. A batch is all-or-nothing: no run is returned unless every
//! element is valid.
//!
//! The input is walked as a [`serde_json::Value`] rather than deserialized
//! into a struct, because serde stops at the first error and its messages
//! name Rust types, not our fields.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{RecordCounts, RecordError, Run, RunError, RunStatus, Timestamp};

/// One problem with one field of one element of a request.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FieldError {
    /// Position of the element in the batch (0 for a single object).
    pub index: usize,
    /// Path of the offending field, e.g. `records.failed`; `""` for the whole
    /// element or body.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(index: usize, field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            index,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "[{}] {}", self.index, self.message)
        } else {
            write!(f, "[{}] {}: {}", self.index, self.field, self.message)
        }
    }
}

/// How far in the future `finished_at` may lie: runners' clocks drift a
/// little, but a run that ends tomorrow would freeze staleness and ordering.
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;
pub const MAX_ID_CHARS: usize = 200;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_SOURCE_CHARS: usize = 100;
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY_CHARS: usize = 100;
pub const MAX_LABEL_VALUE_CHARS: usize = 500;
pub const MAX_MESSAGE_CHARS: usize = 10_000;
pub const MAX_CODE_CHARS: usize = 200;
/// Record ids and field names share the id cap.
pub const MAX_RECORD_ID_CHARS: usize = 200;
pub const MAX_FIELD_CHARS: usize = 200;
/// A response listing every problem of a 10 MB batch of broken elements
/// would be far larger than the request; past this many, the list is cut and
/// ends with a note saying so.
pub const MAX_REPORTED_ERRORS: usize = 1000;

/// The largest count SQLite can store (its integers are signed 64-bit).
const MAX_COUNT: u64 = i64::MAX as u64;

/// The top-level fields of a run. Anything else is rejected, naming the
/// field: a typo such as `finshed_at` must fail loudly, not be silently
/// dropped while the run is accepted without its finish time.
pub const RUN_FIELDS: &[&str] = &[
    "sync_id",
    "run_id",
    "status",
    "finished_at",
    "started_at",
    "records",
    "error",
    "record_errors",
    "url",
    "source",
    "labels",
];
const RECORD_FIELDS: &[&str] = &["processed", "succeeded", "failed", "invalid"];
const ERROR_FIELDS: &[&str] = &["code", "message"];
const RECORD_ERROR_FIELDS: &[&str] = &["record_id", "code", "message", "field"];

/// Parses a request body: one run object or a non-empty array of them.
///
/// Malformed JSON yields a single error naming line and column; otherwise
/// every offending field of every element is reported (up to
/// [`MAX_REPORTED_ERRORS`]), and runs are returned only if all are valid.
pub fn parse_body(bytes: &[u8], now: Timestamp) -> Result<Vec<Run>, Vec<FieldError>> {
    let value: Value = parse_json(bytes)
        .map_err(|e| vec![FieldError::new(0, "", format!("malformed JSON: {e}"))])?;
    match value {
        Value::Array(items) if items.is_empty() => Err(vec![FieldError::new(
            0,
            "",
            "empty array: send one run object or an array of at least one",
        )]),
        Value::Array(items) => collect(items.iter().enumerate(), Some(now)),
        Value::Object(_) => parse_value(&value, 0, Some(now)).map(|run| vec![run]),
        other => Err(vec![FieldError::new(
            0,
            "",
            format!(
                "expected a run object or an array of run objects, found {}",
                type_name(&other)
            ),
        )]),
    }
}

/// Parses NDJSON (one run per line, blank lines skipped), as the CLI's
/// `backtest` reads it. `index` in errors is the 0-based line index (line
/// number − 1); `now = None` skips the future check.
pub fn parse_ndjson(text: &str, now: Option<Timestamp>) -> Result<Vec<Run>, Vec<FieldError>> {
    let mut runs = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_json(line.as_bytes()) {
            Ok(v) => match parse_value(&v, i, now) {
                Ok(run) => runs.push(run),
                Err(errs) => errors.extend(errs),
            },
            Err(e) => errors.push(FieldError::new(i, "", format!("malformed JSON: {e}"))),
        }
        if errors.len() >= MAX_REPORTED_ERRORS {
            return Err(truncated(errors, i));
        }
    }
    if errors.is_empty() {
        Ok(runs)
    } else {
        Err(errors)
    }
}

/// JSON text to a [`Value`], refusing an object that repeats a key.
///
/// `serde_json` keeps the last of two equal keys without a word, and other
/// parsers keep the first, so `{"sync_id":"a","sync_id":"b"}` would mean
/// different runs to different readers of the same bytes (a signing proxy,
/// a log, us). The canonical record is ours to define: a repeated key is an
/// error, reported with its line and column. Nesting is still bounded by
/// serde_json's recursion limit (128 levels).
pub fn parse_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Builds a [`Value`] like serde_json's own, with the duplicate-key check.
struct StrictValue;

impl<'de> serde::de::DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // One search of the map per key: the vacant entry takes the value.
            match obj.entry(key) {
                serde_json::map::Entry::Occupied(e) => {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate key {:?}",
                        clip(e.key(), 100)
                    )));
                }
                serde_json::map::Entry::Vacant(e) => {
                    e.insert(map.next_value_seed(StrictValue)?);
                }
            }
        }
        Ok(Value::Object(obj))
    }
}

fn collect<'a>(
    items: impl Iterator<Item = (usize, &'a Value)>,
    now: Option<Timestamp>,
) -> Result<Vec<Run>, Vec<FieldError>> {
    let mut runs = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in items {
        match parse_value(item, i, now) {
            Ok(run) => runs.push(run),
            Err(errs) => errors.extend(errs),
        }
        if errors.len() >= MAX_REPORTED_ERRORS {
            return Err(truncated(errors, i));
        }
    }
    if errors.is_empty() {
        Ok(runs)
    } else {
        Err(errors)
    }
}

fn truncated(mut errors: Vec<FieldError>, index: usize) -> Vec<FieldError> {
    errors.truncate(MAX_REPORTED_ERRORS);
    errors.push(FieldError::new(
        index,
        "",
        format!("too many errors: the first {MAX_REPORTED_ERRORS} are listed, checking stopped at this element"),
    ));
    errors
}

/// Re-checks a run built in code (by a vendor adapter) against the same
/// rules, by way of its canonical JSON. `now = None` skips the future check.
pub fn check_run(run: &Run, now: Option<Timestamp>) -> Result<(), Vec<FieldError>> {
    let value = serde_json::to_value(run).map_err(|e| {
        vec![FieldError::new(
            0,
            "",
            format!("run cannot be serialized: {e}"),
        )]
    })?;
    parse_value(&value, 0, now).map(|_| ())
}

/// Parses one run object; `index` is its position in the batch, used in the
/// errors. `now = None` skips the future check (the offline backtest has no
/// wall clock).
///
/// Unknown fields are rejected, at the top level and inside `records`,
/// `error` and `record_errors[i]`, each named (with a "did you mean" hint
/// when close to a known one): a typo such as `finshed_at` must not be
/// silently dropped.
pub fn parse_value(
    v: &Value,
    index: usize,
    now: Option<Timestamp>,
) -> Result<Run, Vec<FieldError>> {
    let Some(obj) = v.as_object() else {
        return Err(vec![FieldError::new(
            index,
            "",
            format!("expected a run object, found {}", type_name(v)),
        )]);
    };
    let mut cx = Cx {
        index,
        errors: Vec::new(),
    };
    reject_unknown(&mut cx, obj, "", RUN_FIELDS);

    let sync_id = required(&mut cx, obj, "sync_id").and_then(|v| sync_id(&mut cx, v));
    let run_id = required(&mut cx, obj, "run_id").and_then(|v| run_id(&mut cx, v));
    let status = required(&mut cx, obj, "status").and_then(|v| status(&mut cx, v));

    let finished_at = optional(obj, "finished_at").map(|v| timestamp(&mut cx, "finished_at", v));
    let started_at = optional(obj, "started_at").map(|v| timestamp(&mut cx, "started_at", v));
    match (status, &finished_at) {
        (Some(RunStatus::Running), Some(_)) => cx.err(
            "finished_at",
            "must be absent while status is \"running\": a running run has not finished",
        ),
        (Some(s), None) if s != RunStatus::Running => cx.err(
            "finished_at",
            format!("is required when status is \"{s}\" (RFC 3339, e.g. \"2026-03-01T10:05:00Z\")"),
        ),
        _ => {}
    }
    if let Some(now) = now {
        for (name, ts) in [("finished_at", &finished_at), ("started_at", &started_at)] {
            if let Some(Some(t)) = ts
                && t.0 > now.0.saturating_add(MAX_FUTURE_MS)
            {
                cx.err(
                    name,
                    format!(
                        "{t} is more than 5 minutes in the future (now is {now}); check the runner's clock"
                    ),
                );
            }
        }
    }
    if let (Some(Some(s)), Some(Some(f))) = (&started_at, &finished_at)
        && s > f
    {
        cx.err("started_at", format!("{s} is after finished_at {f}"));
    }

    let records = optional(obj, "records").map(|v| records(&mut cx, v));
    let error = optional(obj, "error").map(|v| run_error(&mut cx, v));
    let record_errors = optional(obj, "record_errors").map(|v| record_errors(&mut cx, v));
    let url = optional(obj, "url").map(|v| url(&mut cx, v));
    let source = optional(obj, "source")
        .map(|v| string(&mut cx, "source", v, 1, MAX_SOURCE_CHARS, Controls::Forbid));
    let labels = optional(obj, "labels").map(|v| labels(&mut cx, v));

    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    // Every field parsed without error, so each `Option` below is filled; the
    // `let … else` only guards against a future edit forgetting a report.
    let (Some(sync_id), Some(run_id), Some(status)) = (sync_id, run_id, status) else {
        return Err(vec![FieldError::new(index, "", "invalid run")]);
    };
    Ok(Run {
        sync_id,
        run_id,
        status,
        finished_at: finished_at.flatten(),
        started_at: started_at.flatten(),
        records: records.flatten().unwrap_or_default(),
        error: error.flatten(),
        record_errors: record_errors.flatten().unwrap_or_default(),
        url: url.flatten(),
        source: source.flatten(),
        labels: labels.flatten().unwrap_or_default(),
    })
}

/// The element being checked and the problems found so far.
struct Cx {
    index: usize,
    errors: Vec<FieldError>,
}

impl Cx {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors
            .push(FieldError::new(self.index, field, message));
    }
}

/// Whether control characters are allowed in a string: messages may carry
/// line breaks and tabs (stack traces), ids and labels may not.
#[derive(Clone, Copy, PartialEq)]
enum Controls {
    Forbid,
    AllowLineBreaks,
}

/// A field that may be absent; JSON `null` counts as absent (many runners
/// write `"url": null`, and a null count is an unknown count).
fn optional<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn required<'a>(cx: &mut Cx, obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    match obj.get(key) {
        None => {
            cx.err(key, "is required");
            None
        }
        Some(Value::Null) => {
            cx.err(key, "is required (found null)");
            None
        }
        Some(v) => Some(v),
    }
}

fn reject_unknown(cx: &mut Cx, obj: &Map<String, Value>, prefix: &str, known: &[&str]) {
    for key in obj.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        let shown = clip(key, 100);
        let mut message = format!("unknown field `{shown}`");
        if let Some(near) = known
            .iter()
            .filter(|k| edit_distance(k, key) <= 2)
            .min_by_key(|k| edit_distance(k, key))
        {
            message.push_str(&format!(" (did you mean `{near}`?)"));
        } else {
            message.push_str(&format!("; allowed: {}", known.join(", ")));
        }
        cx.err(join(prefix, &shown), message);
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn sync_id(cx: &mut Cx, v: &Value) -> Option<String> {
    let s = string(cx, "sync_id", v, 1, MAX_ID_CHARS, Controls::Forbid)?;
    if let Some(bad) = s.chars().find(|c| !is_sync_id_char(*c)) {
        cx.err(
            "sync_id",
            format!(
                "contains {}; allowed are letters, digits and _ . : / @ -",
                describe_char(bad)
            ),
        );
        return None;
    }
    Some(s)
}

/// The characters of a `sync_id` (SPEC §1): safe in URLs once
/// percent-encoded, in globs and in log lines.
pub fn is_sync_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '@' | '-')
}

fn run_id(cx: &mut Cx, v: &Value) -> Option<String> {
    let s = string(cx, "run_id", v, 1, MAX_ID_CHARS, Controls::Forbid)?;
    if let Some(bad) = s.chars().find(|c| is_invisible_format(*c)) {
        cx.err(
            "run_id",
            format!("contains {}, which is not printable", describe_char(bad)),
        );
        return None;
    }
    Some(s)
}

/// Invisible formatting characters (zero-width and bidirectional controls)
/// that are not `char::is_control` but would make two run ids look equal, or
/// reorder the text around them, in the UI and in notices.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn status(cx: &mut Cx, v: &Value) -> Option<RunStatus> {
    let allowed = "success, failed, cancelled, running";
    let Some(s) = v.as_str() else {
        cx.err(
            "status",
            format!(
                "expected a string (one of {allowed}), found {}",
                type_name(v)
            ),
        );
        return None;
    };
    let parsed = RunStatus::parse(s);
    if parsed.is_none() {
        cx.err(
            "status",
            format!("must be one of {allowed}; got {:?}", clip(s, 50)),
        );
    }
    parsed
}

fn timestamp(cx: &mut Cx, path: &str, v: &Value) -> Option<Timestamp> {
    let Some(s) = v.as_str() else {
        cx.err(
            path,
            format!(
                "expected an RFC 3339 timestamp string, found {}",
                type_name(v)
            ),
        );
        return None;
    };
    match Timestamp::parse_rfc3339(s) {
        Ok(t) => Some(t),
        Err(_) => {
            cx.err(
                path,
                format!(
                    "{:?} is not an RFC 3339 timestamp (e.g. \"2026-03-01T10:05:00Z\")",
                    clip(s, 50)
                ),
            );
            None
        }
    }
}

fn records(cx: &mut Cx, v: &Value) -> Option<RecordCounts> {
    let Some(obj) = v.as_object() else {
        cx.err(
            "records",
            format!(
                "expected an object {{processed, succeeded, failed, invalid}}, found {}",
                type_name(v)
            ),
        );
        return None;
    };
    let before = cx.errors.len();
    reject_unknown(cx, obj, "records", RECORD_FIELDS);
    let mut get =
        |name: &str| optional(obj, name).and_then(|v| count(cx, &format!("records.{name}"), v));
    let counts = RecordCounts {
        processed: get("processed"),
        succeeded: get("succeeded"),
        failed: get("failed"),
        invalid: get("invalid"),
    };
    if cx.errors.len() > before {
        return None;
    }
    if let Some(processed) = counts.processed {
        // Both terms are at most i64::MAX, so the sum fits in a u64.
        let rejected = counts.failed.unwrap_or(0) + counts.invalid.unwrap_or(0);
        if rejected > processed {
            let field = if counts.failed.is_some() {
                "records.failed"
            } else {
                "records.invalid"
            };
            cx.err(
                field,
                format!(
                    "failed + invalid ({} + {} = {rejected}) exceeds processed ({processed})",
                    counts.failed.unwrap_or(0),
                    counts.invalid.unwrap_or(0)
                ),
            );
        }
        if let Some(succeeded) = counts.succeeded
            && succeeded > processed
        {
            cx.err(
                "records.succeeded",
                format!("succeeded ({succeeded}) exceeds processed ({processed})"),
            );
        }
    }
    (cx.errors.len() == before).then_some(counts)
}

fn count(cx: &mut Cx, path: &str, v: &Value) -> Option<u64> {
    let Value::Number(n) = v else {
        cx.err(
            path,
            format!("expected a non-negative integer, found {}", type_name(v)),
        );
        return None;
    };
    if let Some(u) = n.as_u64() {
        if u > MAX_COUNT {
            cx.err(
                path,
                format!("{u} is above the largest storable count ({MAX_COUNT})"),
            );
            return None;
        }
        return Some(u);
    }
    if let Some(i) = n.as_i64() {
        cx.err(path, format!("must not be negative, got {i}"));
        return None;
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f < 0.0 {
        cx.err(path, format!("must not be negative, got {n}"));
    } else if f.fract() == 0.0 && f > MAX_COUNT as f64 {
        cx.err(
            path,
            format!("{n} is above the largest storable count ({MAX_COUNT})"),
        );
    } else {
        cx.err(path, format!("must be a whole number, got {n}"));
    }
    None
}

fn run_error(cx: &mut Cx, v: &Value) -> Option<RunError> {
    let Some(obj) = v.as_object() else {
        cx.err(
            "error",
            format!(
                "expected an object {{code?, message}}, found {}",
                type_name(v)
            ),
        );
        return None;
    };
    let before = cx.errors.len();
    reject_unknown(cx, obj, "error", ERROR_FIELDS);
    let code = optional(obj, "code")
        .and_then(|v| string(cx, "error.code", v, 1, MAX_CODE_CHARS, Controls::Forbid));
    let message = match obj.get("message") {
        None | Some(Value::Null) => {
            cx.err("error.message", "is required");
            None
        }
        Some(v) => string(
            cx,
            "error.message",
            v,
            0,
            MAX_MESSAGE_CHARS,
            Controls::AllowLineBreaks,
        ),
    };
    if cx.errors.len() > before {
        return None;
    }
    message.map(|message| RunError { code, message })
}

fn record_errors(cx: &mut Cx, v: &Value) -> Option<Vec<RecordError>> {
    let Some(items) = v.as_array() else {
        cx.err(
            "record_errors",
            format!(
                "expected an array of {{record_id?, code?, message, field?}}, found {}",
                type_name(v)
            ),
        );
        return None;
    };
    let before = cx.errors.len();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("record_errors[{i}]");
        let Some(obj) = item.as_object() else {
            cx.err(
                path,
                format!(
                    "expected an object {{record_id?, code?, message, field?}}, found {}",
                    type_name(item)
                ),
            );
            continue;
        };
        reject_unknown(cx, obj, &path, RECORD_ERROR_FIELDS);
        let mut opt = |name: &str, max: usize| {
            optional(obj, name)
                .and_then(|v| string(cx, &format!("{path}.{name}"), v, 1, max, Controls::Forbid))
        };
        let record_id = opt("record_id", MAX_RECORD_ID_CHARS);
        let code = opt("code", MAX_CODE_CHARS);
        let field = opt("field", MAX_FIELD_CHARS);
        let message = match obj.get("message") {
            None | Some(Value::Null) => {
                cx.err(format!("{path}.message"), "is required");
                None
            }
            Some(v) => string(
                cx,
                &format!("{path}.message"),
                v,
                0,
                MAX_MESSAGE_CHARS,
                Controls::AllowLineBreaks,
            ),
        };
        if let Some(message) = message {
            out.push(RecordError {
                record_id,
                code,
                message,
                field,
            });
        }
        if cx.errors.len() - before >= MAX_REPORTED_ERRORS {
            break;
        }
    }
    (cx.errors.len() == before).then_some(out)
}

fn url(cx: &mut Cx, v: &Value) -> Option<String> {
    let s = string(cx, "url", v, 1, MAX_URL_CHARS, Controls::Forbid)?;
    let lower = s.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        None => {
            cx.err("url", "must be an http:// or https:// URL");
            None
        }
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            cx.err("url", "has no host");
            None
        }
        Some(_) if s.chars().any(char::is_whitespace) => {
            cx.err("url", "must not contain whitespace (percent-encode it)");
            None
        }
        Some(_) => Some(s),
    }
}

fn labels(cx: &mut Cx, v: &Value) -> Option<BTreeMap<String, String>> {
    let Some(obj) = v.as_object() else {
        cx.err(
            "labels",
            format!(
                "expected an object of string → string, found {}",
                type_name(v)
            ),
        );
        return None;
    };
    let before = cx.errors.len();
    if obj.len() > MAX_LABELS {
        cx.err(
            "labels",
            format!("at most {MAX_LABELS} labels are allowed, got {}", obj.len()),
        );
        return None;
    }
    let mut out = BTreeMap::new();
    for (key, value) in obj {
        let path = format!("labels.{}", clip(key, 100));
        let key_len = key.chars().count();
        if key_len == 0 || key_len > MAX_LABEL_KEY_CHARS {
            cx.err(
                &path,
                format!("label names must be 1–{MAX_LABEL_KEY_CHARS} characters, got {key_len}"),
            );
            continue;
        }
        if let Some(bad) = key
            .chars()
            .find(|c| c.is_control() || is_invisible_format(*c))
        {
            cx.err(&path, format!("label name contains {}", describe_char(bad)));
            continue;
        }
        if let Some(s) = string(cx, &path, value, 0, MAX_LABEL_VALUE_CHARS, Controls::Forbid) {
            out.insert(key.clone(), s);
        }
    }
    (cx.errors.len() == before).then_some(out)
}

/// A string field of `min..=max` characters.
fn string(
    cx: &mut Cx,
    path: &str,
    v: &Value,
    min: usize,
    max: usize,
    controls: Controls,
) -> Option<String> {
    let Some(s) = v.as_str() else {
        cx.err(path, format!("expected a string, found {}", type_name(v)));
        return None;
    };
    let len = s.chars().count();
    if len < min {
        cx.err(path, "must not be empty");
        return None;
    }
    if len > max {
        cx.err(
            path,
            format!("is {len} characters long; at most {max} are allowed"),
        );
        return None;
    }
    let allowed =
        |c: char| controls == Controls::AllowLineBreaks && matches!(c, '\n' | '\r' | '\t');
    if let Some(bad) = s.chars().find(|&c| c.is_control() && !allowed(c)) {
        cx.err(
            path,
            format!(
                "contains {}; control characters are not allowed",
                describe_char(bad)
            ),
        );
        return None;
    }
    Some(s.to_owned())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn describe_char(c: char) -> String {
    if c.is_control() || c.is_whitespace() || is_invisible_format(c) {
        format!("the character U+{:04X}", c as u32)
    } else {
        format!("the character {c:?}")
    }
}

/// The first `max` characters of `s`, for echoing untrusted input in an
/// error without echoing all of it.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

/// Levenshtein distance, for "did you mean" hints on short field names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    if b.len() > 64 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-03-02T12:00:00Z").expect("valid")
    }

    #[test]
    fn a_repeated_key_is_refused_wherever_it_is() {
        for body in [
            r#"{"sync_id":"a","sync_id":"b","run_id":"r","status":"running"}"#,
            r#"[{"sync_id":"a","run_id":"r","status":"running","labels":{"t":"x","t":"y"}}]"#,
        ] {
            let errs = parse_body(body.as_bytes(), now()).expect_err(body);
            assert!(
                errs[0].message.contains("duplicate key") && errs[0].message.contains("column"),
                "{errs:?}"
            );
        }
        let errs = parse_ndjson("{\"a\":1,\"a\":2}\n", None).expect_err("dup");
        assert!(errs[0].message.contains("duplicate key \"a\""), "{errs:?}");
        // The same key in sibling objects is no repetition.
        let ok = r#"[{"sync_id":"a","run_id":"r","status":"running"},{"sync_id":"a","run_id":"s","status":"running"}]"#;
        assert_eq!(parse_body(ok.as_bytes(), now()).expect("valid").len(), 2);
        assert_eq!(
            parse_json(b"[1, -2, 2.5, null, true, \"s\", {}]").expect("json"),
            json!([1, -2, 2.5, null, true, "s", {}])
        );
    }

    fn good() -> Value {
        json!({
            "sync_id": "census:4812",
            "run_id": "r-1",
            "status": "success",
            "finished_at": "2026-03-02T11:00:00Z",
            "started_at": "2026-03-02T10:57:00Z",
            "records": {"processed": 100, "succeeded": 90, "failed": 8, "invalid": 2},
            "error": {"code": "E", "message": "boom"},
            "record_errors": [{"record_id": "a", "code": "X", "message": "m", "field": "Email"}],
            "url": "https://app.getcensus.com/syncs/4812",
            "source": "census",
            "labels": {"destination": "salesforce", "team": "growth"}
        })
    }

    fn errors_of(v: Value) -> Vec<(String, String)> {
        match parse_value(&v, 0, Some(now())) {
            Ok(run) => panic!("expected errors, got {run:?}"),
            Err(errs) => errs.into_iter().map(|e| (e.field, e.message)).collect(),
        }
    }

    fn fields_of(v: Value) -> Vec<String> {
        errors_of(v).into_iter().map(|(f, _)| f).collect()
    }

    fn with(mut v: Value, path: &[&str], value: Value) -> Value {
        let mut cur = &mut v;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[*p];
        }
        cur[path[path.len() - 1]] = value;
        v
    }

    fn without(mut v: Value, key: &str) -> Value {
        v.as_object_mut().expect("object").remove(key);
        v
    }

    #[test]
    fn a_complete_run_parses_into_every_field() {
        let run = parse_value(&good(), 0, Some(now())).expect("valid");
        assert_eq!(run.sync_id, "census:4812");
        assert_eq!(run.status, RunStatus::Success);
        assert_eq!(
            run.finished_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-03-02T11:00:00Z")
        );
        assert_eq!(run.records.failed, Some(8));
        assert_eq!(run.error.as_ref().map(|e| e.message.as_str()), Some("boom"));
        assert_eq!(run.record_errors.len(), 1);
        assert_eq!(run.labels["team"], "growth");
        // The canonical JSON of a parsed run parses back to the same run.
        assert!(check_run(&run, Some(now())).is_ok());
        let again =
            parse_value(&serde_json::to_value(&run).expect("json"), 0, None).expect("valid");
        assert_eq!(again, run);
    }

    #[test]
    fn a_minimal_run_and_nulls_for_optional_fields_are_fine() {
        let run = parse_value(
            &json!({"sync_id": "a", "run_id": "1", "status": "running", "url": null,
                    "records": {"processed": null, "failed": 3}, "labels": null}),
            0,
            Some(now()),
        )
        .expect("valid");
        assert_eq!(run.finished_at, None);
        // A null count is unknown, never 0.
        assert_eq!(run.records.processed, None);
        assert_eq!(run.records.failed, Some(3));
    }

    #[test]
    fn missing_required_fields_are_each_named() {
        let f = fields_of(json!({}));
        assert_eq!(f, ["sync_id", "run_id", "status"]);
        let f = fields_of(without(good(), "finished_at"));
        assert_eq!(f, ["finished_at"]);
        let e = errors_of(with(good(), &["sync_id"], Value::Null));
        assert_eq!(e[0].1, "is required (found null)");
    }

    #[test]
    fn wrong_types_name_the_expected_type() {
        let cases = [
            (
                vec!["sync_id"],
                json!(4812),
                "sync_id",
                "expected a string, found a number",
            ),
            (vec!["status"], json!(true), "status", "expected a string"),
            (
                vec!["finished_at"],
                json!(1700000000),
                "finished_at",
                "expected an RFC 3339 timestamp string",
            ),
            (vec!["records"], json!([1]), "records", "expected an object"),
            (
                vec!["records", "failed"],
                json!("3"),
                "records.failed",
                "expected a non-negative integer, found a string",
            ),
            (
                vec!["error"],
                json!("boom"),
                "error",
                "expected an object {code?, message}",
            ),
            (
                vec!["error", "message"],
                json!(5),
                "error.message",
                "expected a string",
            ),
            (
                vec!["record_errors"],
                json!({}),
                "record_errors",
                "expected an array",
            ),
            (
                vec!["url"],
                json!(["x"]),
                "url",
                "expected a string, found an array",
            ),
            (
                vec!["labels"],
                json!("team=growth"),
                "labels",
                "expected an object of string → string",
            ),
            (
                vec!["labels", "team"],
                json!(7),
                "labels.team",
                "expected a string, found a number",
            ),
        ];
        for (path, value, field, message) in cases {
            let errs = errors_of(with(good(), &path, value));
            assert_eq!(errs.len(), 1, "{path:?}: {errs:?}");
            assert_eq!(errs[0].0, field);
            assert!(errs[0].1.contains(message), "{path:?}: {}", errs[0].1);
        }
    }

    #[test]
    fn counts_must_be_non_negative_storable_integers() {
        for (value, message) in [
            (json!(-1), "must not be negative, got -1"),
            (json!(1.5), "must be a whole number, got 1.5"),
            (json!(2.0), "must be a whole number"),
            (
                json!(9_223_372_036_854_775_808_u64),
                "above the largest storable count",
            ),
            (json!(1e20), "above the largest storable count"),
            (json!(-1e20), "must not be negative"),
        ] {
            let errs = errors_of(with(good(), &["records", "processed"], value.clone()));
            assert_eq!(errs.len(), 1, "{value}: {errs:?}");
            assert_eq!(errs[0].0, "records.processed");
            assert!(errs[0].1.contains(message), "{value}: {}", errs[0].1);
        }
        let run = parse_value(
            &with(
                good(),
                &["records"],
                json!({"processed": i64::MAX, "failed": 0}),
            ),
            0,
            None,
        )
        .expect("i64::MAX is storable");
        assert_eq!(run.records.processed, Some(i64::MAX as u64));
    }

    #[test]
    fn inconsistent_counts_are_rejected() {
        let e = errors_of(with(
            good(),
            &["records"],
            json!({"processed": 10, "failed": 8, "invalid": 3}),
        ));
        assert_eq!(
            e,
            [(
                "records.failed".to_owned(),
                "failed + invalid (8 + 3 = 11) exceeds processed (10)".to_owned()
            )]
        );
        let e = fields_of(with(
            good(),
            &["records"],
            json!({"processed": 0, "invalid": 1}),
        ));
        assert_eq!(e, ["records.invalid"]);
        let e = fields_of(with(
            good(),
            &["records"],
            json!({"processed": 10, "succeeded": 11}),
        ));
        assert_eq!(e, ["records.succeeded"]);
        // Without processed there is nothing to compare with.
        assert!(
            parse_value(
                &with(good(), &["records"], json!({"failed": 10_000})),
                0,
                None
            )
            .is_ok()
        );
        let e = fields_of(with(good(), &["records", "procesed"], json!(1)));
        assert_eq!(e, ["records.procesed"]);
    }

    #[test]
    fn timestamps_are_rfc3339_not_in_the_future_and_ordered() {
        for bad in ["2026-03-02 11:00", "yesterday", "2026-13-01T00:00:00Z", ""] {
            let e = errors_of(with(good(), &["finished_at"], json!(bad)));
            assert_eq!(e.len(), 1);
            assert!(e[0].1.contains("not an RFC 3339 timestamp"), "{}", e[0].1);
        }
        // Four minutes ahead is clock drift; six is a bug.
        assert!(
            parse_value(
                &with(good(), &["finished_at"], json!("2026-03-02T12:04:00Z")),
                0,
                Some(now())
            )
            .is_ok()
        );
        let e = errors_of(with(
            good(),
            &["finished_at"],
            json!("2026-03-02T12:06:00Z"),
        ));
        assert_eq!(e[0].0, "finished_at");
        assert!(e[0].1.contains("more than 5 minutes in the future"));
        let far = with(good(), &["finished_at"], json!("2099-01-01T00:00:00Z"));
        assert_eq!(fields_of(far.clone()), ["finished_at"]);
        // The offline backtest has no clock and skips the check.
        assert!(parse_value(&far, 0, None).is_ok());

        let e = errors_of(with(good(), &["started_at"], json!("2026-03-02T11:30:00Z")));
        assert_eq!(e[0].0, "started_at");
        assert!(e[0].1.contains("is after finished_at"));
        let e = fields_of(with(good(), &["status"], json!("running")));
        assert_eq!(e, ["finished_at"]);
    }

    #[test]
    fn an_unknown_status_lists_the_allowed_values() {
        let e = errors_of(with(good(), &["status"], json!("ok")));
        assert_eq!(
            e,
            [(
                "status".to_owned(),
                "must be one of success, failed, cancelled, running; got \"ok\"".to_owned()
            )]
        );
        assert_eq!(
            fields_of(with(good(), &["status"], json!("Success"))),
            ["status"]
        );
    }

    #[test]
    fn ids_with_forbidden_or_control_characters_are_rejected() {
        for bad in ["orders to sf", "a\u{0}b", "é", "a#b", "a?b", ""] {
            assert_eq!(
                fields_of(with(good(), &["sync_id"], json!(bad))),
                ["sync_id"],
                "{bad:?}"
            );
        }
        assert_eq!(
            fields_of(with(good(), &["sync_id"], json!("x".repeat(201)))),
            ["sync_id"]
        );
        assert!(parse_value(&with(good(), &["sync_id"], json!("a-Z_0.9:x/y@z")), 0, None).is_ok());
        assert!(parse_value(&with(good(), &["sync_id"], json!("x".repeat(200))), 0, None).is_ok());

        for bad in [
            "line\nbreak",
            "tab\there",
            "bell\u{7}",
            "",
            "zero\u{200B}width",
            "\u{202E}evil",
        ] {
            assert_eq!(
                fields_of(with(good(), &["run_id"], json!(bad))),
                ["run_id"],
                "{bad:?}"
            );
        }
        // Spaces and non-ASCII text are printable.
        assert!(parse_value(&with(good(), &["run_id"], json!("run 7 — été")), 0, None).is_ok());
    }

    #[test]
    fn unknown_fields_are_rejected_with_a_hint() {
        let v = with(
            without(good(), "finished_at"),
            &["finshed_at"],
            json!("2026-03-02T11:00:00Z"),
        );
        let e = errors_of(v);
        assert_eq!(
            e[0],
            (
                "finshed_at".to_owned(),
                "unknown field `finshed_at` (did you mean `finished_at`?)".to_owned()
            )
        );
        assert_eq!(e[1].0, "finished_at");
        let e = errors_of(with(good(), &["colour"], json!(1)));
        assert!(
            e[0].1
                .starts_with("unknown field `colour`; allowed: sync_id"),
            "{}",
            e[0].1
        );
        assert_eq!(
            fields_of(with(good(), &["error", "detail"], json!("x"))),
            ["error.detail"]
        );
    }

    #[test]
    fn errors_and_record_errors_need_a_message_and_respect_caps() {
        assert_eq!(
            fields_of(with(good(), &["error"], json!({"code": "E"}))),
            ["error.message"]
        );
        let v = with(
            good(),
            &["record_errors"],
            json!([
                {"message": "ok"},
                {"record_id": 5, "message": "x"},
                "oops",
                {"code": "C"},
                {"message": "m".repeat(10_001)},
                {"message": "m", "code": "c".repeat(201), "recordid": "1"},
                {"message": "multi\nline\tis fine"}
            ]),
        );
        assert_eq!(
            fields_of(v),
            [
                "record_errors[1].record_id",
                "record_errors[2]",
                "record_errors[3].message",
                "record_errors[4].message",
                "record_errors[5].recordid",
                "record_errors[5].code",
            ]
        );
        assert_eq!(
            fields_of(with(good(), &["error", "message"], json!("x\u{0}"))),
            ["error.message"]
        );
    }

    #[test]
    fn url_source_and_labels_are_checked() {
        for bad in [
            "ftp://x",
            "javascript:alert(1)",
            "https://",
            "http:///path",
            "https://a b",
        ] {
            assert_eq!(
                fields_of(with(good(), &["url"], json!(bad))),
                ["url"],
                "{bad}"
            );
        }
        let long = format!("https://x.io/{}", "a".repeat(2048));
        assert_eq!(fields_of(with(good(), &["url"], json!(long))), ["url"]);
        assert!(parse_value(&with(good(), &["url"], json!("HTTP://x.io/a?b=c")), 0, None).is_ok());

        assert_eq!(
            fields_of(with(good(), &["source"], json!("s".repeat(101)))),
            ["source"]
        );

        let too_many: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            fields_of(with(good(), &["labels"], Value::Object(too_many))),
            ["labels"]
        );
        let v = with(
            good(),
            &["labels"],
            json!({"": "x", "team": "v".repeat(501), "k".repeat(101): "x", "ok": "fine", "n": null}),
        );
        let f = fields_of(v);
        assert_eq!(f.len(), 4, "{f:?}");
        assert!(f.contains(&"labels.".to_owned()));
        assert!(f.contains(&"labels.team".to_owned()));
        assert!(f.contains(&"labels.n".to_owned()));
    }

    #[test]
    fn every_problem_of_an_element_is_reported_at_once() {
        let v = json!({
            "sync_id": "bad id",
            "run_id": "",
            "status": "done",
            "finished_at": "soon",
            "records": {"processed": -1, "failed": 1.5},
            "url": "ftp://x",
            "extra": 1
        });
        let f = fields_of(v);
        assert_eq!(
            f,
            [
                "extra",
                "sync_id",
                "run_id",
                "status",
                "finished_at",
                "records.processed",
                "records.failed",
                "url"
            ]
        );
    }

    #[test]
    fn a_batch_reports_every_bad_element_with_its_index_and_returns_nothing() {
        let body = json!([
            good(),
            with(good(), &["status"], json!("nope")),
            good(),
            with(
                with(good(), &["records", "failed"], json!(-3)),
                &["sync_id"],
                json!("a b")
            ),
            without(good(), "run_id"),
        ]);
        let errs = parse_body(body.to_string().as_bytes(), now()).expect_err("invalid batch");
        let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.index, e.field.as_str())).collect();
        assert_eq!(
            got,
            [
                (1, "status"),
                (3, "sync_id"),
                (3, "records.failed"),
                (4, "run_id")
            ]
        );
    }

    #[test]
    fn body_shapes() {
        let one = parse_body(good().to_string().as_bytes(), now()).expect("one object");
        assert_eq!(one.len(), 1);
        let two = parse_body(json!([good(), good()]).to_string().as_bytes(), now()).expect("array");
        assert_eq!(two.len(), 2);

        let e = parse_body(b"[]", now()).expect_err("empty");
        assert_eq!(e.len(), 1);
        assert!(e[0].message.starts_with("empty array"));

        let e = parse_body(b"{\"sync_id\": \"a\",\n  \"run_id\": }", now()).expect_err("malformed");
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].index, e[0].field.as_str()), (0, ""));
        assert!(
            e[0].message.contains("line 2 column 13"),
            "{}",
            e[0].message
        );

        let e = parse_body(b"\"run\"", now()).expect_err("string");
        assert!(e[0].message.contains("found a string"));
        let e = parse_body(json!([good(), 3]).to_string().as_bytes(), now()).expect_err("number");
        assert_eq!(
            (e[0].index, e[0].message.as_str()),
            (1, "expected a run object, found a number")
        );
        assert!(parse_body(b"\xff\xfe", now()).is_err());
    }

    #[test]
    fn the_error_list_of_a_huge_bad_batch_is_capped() {
        let body = Value::Array(vec![json!({}); 600]);
        let errs = parse_body(body.to_string().as_bytes(), now()).expect_err("bad");
        assert_eq!(errs.len(), MAX_REPORTED_ERRORS + 1);
        assert!(
            errs[MAX_REPORTED_ERRORS]
                .message
                .starts_with("too many errors")
        );
    }

    #[test]
    fn the_scenario_runs_parse() {
        let text = include_str!("testdata/02-real-outage.ndjson");
        let later = Timestamp::parse_rfc3339("2026-04-01T00:00:00Z").expect("valid");
        let runs = parse_ndjson(text, Some(later)).expect("02-real-outage parses");
        assert_eq!(runs.len(), 11);
        assert_eq!(runs[2].status, RunStatus::Failed);
        assert_eq!(
            runs[2].error,
            Some(RunError {
                code: Some("INVALID_SESSION_ID".to_owned()),
                message: "Session expired or invalid".to_owned()
            })
        );
        assert_eq!(runs[0].labels["destination"], "salesforce");
        let runs = parse_ndjson(include_str!("testdata/03-partial-records.ndjson"), None)
            .expect("03-partial-records parses");
        assert!(runs.iter().any(|r| {
            r.record_errors
                .iter()
                .any(|e| e.field.as_deref() == Some("Email"))
        }));
        let runs =
            parse_ndjson(include_str!("testdata/fleet-sample.ndjson"), None).expect("fleet parses");
        assert_eq!(runs.len(), 40);
    }

    #[test]
    fn ndjson_errors_carry_the_line_index() {
        let text = format!(
            "{}\n\n{{oops\n{}\n",
            good(),
            with(good(), &["status"], json!(1))
        );
        let e = parse_ndjson(&text, None).expect_err("bad lines");
        let got: Vec<(usize, &str)> = e.iter().map(|e| (e.index, e.field.as_str())).collect();
        assert_eq!(got, [(2, ""), (3, "status")]);
    }
}
