//! Property tests for every decoder of untrusted input: the canonical run
//! decoder, each vendor adapter, the signature checks and the rules parser.
//!
//! cargo-fuzz needs a nightly toolchain, so these stand in for fuzzing:
//! arbitrary bytes, arbitrary JSON, and the recorded vendor fixtures with
//! one value swapped for something hostile (deep nesting, huge numbers,
//! wrong types, NUL, unicode, very long strings, duplicated keys). Each
//! decoder must return (never panic, never overflow the stack) and, when it
//! refuses, say why. Case counts come from `PROPTEST_CASES` (CI sets 64).

use proptest::prelude::*;
use serde_json::{Value, json};
use syncwarden::evaluate as rules;
use syncwarden::ingest::adapters::{
    self, AdapterError, airbyte, census, cloudevents, dbt, fivetran, hightouch, signature,
};
use syncwarden::ingest::validate::{self, FieldError};
use syncwarden::model::Timestamp;

macro_rules! fixture {
    ($path:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/ingest/adapters/testdata/",
            $path
        ))
    };
}

/// The recorded vendor payloads, by the decoder that reads them.
const CENSUS_WEBHOOKS: [&str; 2] = [
    fixture!("census/webhook_sync_completed.json"),
    fixture!("census/webhook_sync_failed.json"),
];
const CENSUS_RUNS: [&str; 2] = [
    fixture!("census/sync_run_completed_partial.json"),
    fixture!("census/sync_run_failed.json"),
];
const CENSUS_LIST: &str = fixture!("census/sync_runs_list.json");
const CENSUS_RECORDS: &str = fixture!("census/sync_run_records_rejected.json");
const HIGHTOUCH: &str = fixture!("hightouch/sync_runs_warning.json");
const AIRBYTE: [&str; 2] = [
    fixture!("airbyte/webhook_sync_failed.json"),
    fixture!("airbyte/webhook_sync_succeeded.json"),
];
const FIVETRAN: [&str; 3] = [
    fixture!("fivetran/webhook_sync_end_failure.json"),
    fixture!("fivetran/webhook_sync_end_success.json"),
    fixture!("fivetran/webhook_test_event.json"),
];
const DBT_RESULTS: &str = fixture!("dbt/run_results.json");
const DBT_CLOUD: &str = fixture!("dbt/cloud_webhook_job_errored.json");
const RULES: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/rules/default.toml"));

fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-03-01T12:00:00Z").expect("fixed instant")
}

/// A valid canonical run, as a runner would post it.
fn canonical_run() -> Value {
    json!({
        "sync_id": "census:4812",
        "run_id": "r-1",
        "status": "success",
        "started_at": "2026-03-01T10:00:00Z",
        "finished_at": "2026-03-01T10:05:00Z",
        "records": { "processed": 100, "succeeded": 90, "failed": 8, "invalid": 2 },
        "error": { "code": "E", "message": "boom" },
        "record_errors": [
            { "record_id": "42", "code": "INVALID_EMAIL", "message": "bad email", "field": "Email" }
        ],
        "url": "https://app.getcensus.com/syncs/4812",
        "source": "census",
        "labels": { "team": "growth" },
    })
}

/// A hostile JSON value: what a confused or malicious sender may put where
/// a string, a number or an object is expected.
fn hostile_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!(1e308)),
        Just(json!(-0.0)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!("")),
        Just(json!("\u{0}")),
        Just(json!("a\u{0}b")),
        Just(json!("line\r\nBcc: victim@example.com")),
        Just(json!("\u{202e}\u{feff}🦀 ﷽")),
        Just(json!("2026-02-30T25:61:61Z")),
        Just(json!("99999-01-01T00:00:00Z")),
        "\\PC{0,40}".prop_map(Value::from),
        (1usize..200_000).prop_map(|n| Value::from("x".repeat(n))),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// Arbitrary JSON, nested a few levels, mixing hostile leaves.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    hostile_leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

/// A document both mutators walk: JSON seeds and TOML rule files.
trait Tree {
    fn children(&self) -> Vec<(PathStep, &Self)>;
    fn child_mut(&mut self, step: &PathStep) -> Option<&mut Self>;
}

/// The two value types have the same shape (a map, an array, scalars) and
/// the same `get_mut` by key and by index.
macro_rules! tree {
    ($ty:ty, $map:path, $array:path) => {
        impl Tree for $ty {
            fn children(&self) -> Vec<(PathStep, &Self)> {
                match self {
                    $map(m) => m
                        .iter()
                        .map(|(k, c)| (PathStep::Key(k.clone()), c))
                        .collect(),
                    $array(a) => a
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (PathStep::Index(i), c))
                        .collect(),
                    _ => Vec::new(),
                }
            }

            fn child_mut(&mut self, step: &PathStep) -> Option<&mut Self> {
                match step {
                    PathStep::Key(k) => self.get_mut(k.as_str()),
                    PathStep::Index(i) => self.get_mut(*i),
                }
            }
        }
    };
}

tree!(Value, Value::Object, Value::Array);
tree!(toml::Value, toml::Value::Table, toml::Value::Array);

/// Every path (keys and indices) to a value inside `v`, the root's empty
/// path first, parents before their children.
fn paths<T: Tree>(v: &T) -> Vec<Vec<PathStep>> {
    let mut out = vec![Vec::new()];
    for (step, child) in v.children() {
        for mut p in paths(child) {
            p.insert(0, step.clone());
            out.push(p);
        }
    }
    out
}

fn at_path<'a, T: Tree>(v: &'a mut T, path: &[PathStep]) -> Option<&'a mut T> {
    let mut cur = v;
    for step in path {
        cur = cur.child_mut(step)?;
    }
    Some(cur)
}

/// How a seed document is damaged.
#[derive(Debug, Clone)]
enum Mutation {
    /// One value (picked by `which`, modulo the number of paths) replaced.
    Replace(usize, Value),
    /// One value removed from its object or array.
    Remove(usize),
    /// One value wrapped in `depth` arrays.
    Nest(usize, usize),
    /// The text duplicated a key: `{"k": x, …}` → `{"k": x, "k": junk, …}`.
    DuplicateKey(usize, Value),
    /// The serialised text cut at a byte offset.
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), arbitrary_json()).prop_map(|(w, v)| Mutation::Replace(w, v)),
        1 => any::<usize>().prop_map(Mutation::Remove),
        1 => (any::<usize>(), 1usize..300).prop_map(|(w, d)| Mutation::Nest(w, d)),
        1 => (any::<usize>(), hostile_leaf()).prop_map(|(w, v)| Mutation::DuplicateKey(w, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Applies `mutations` to the JSON text `seed` and returns the damaged bytes.
fn mutate(seed: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut doc: Value = serde_json::from_str(seed).expect("fixture is JSON");
    let mut truncate = None;
    let mut duplicate = None;
    for m in mutations {
        let all = paths(&doc);
        match m {
            Mutation::Replace(w, v) => {
                if let Some(slot) = at_path(&mut doc, &all[w % all.len()]) {
                    *slot = v.clone();
                }
            }
            Mutation::Remove(w) => {
                let path = &all[w % all.len()];
                if let Some((last, parent)) = path.split_last()
                    && let Some(parent) = at_path(&mut doc, parent)
                {
                    match (last, parent) {
                        (PathStep::Key(k), Value::Object(m)) => {
                            m.remove(k);
                        }
                        (PathStep::Index(i), Value::Array(a)) if *i < a.len() => {
                            a.remove(*i);
                        }
                        _ => {}
                    }
                }
            }
            Mutation::Nest(w, depth) => {
                if let Some(slot) = at_path(&mut doc, &all[w % all.len()]) {
                    let mut v = slot.take();
                    for _ in 0..*depth {
                        v = Value::Array(vec![v]);
                    }
                    *slot = v;
                }
            }
            Mutation::DuplicateKey(w, v) => duplicate = Some((*w, v.clone())),
            Mutation::Truncate(at) => truncate = Some(*at),
        }
    }
    let mut text = serde_json::to_string(&doc).expect("serialise");
    if let Some((w, v)) = duplicate {
        // Re-adds the first key of the document with another value, as raw
        // text: serde_json's Value cannot hold a duplicate.
        if let Some(obj) = doc.as_object()
            && let Some(key) = obj.keys().nth(w % obj.len().max(1))
        {
            let extra = format!("{}:{},", json!(key), v);
            text.insert_str(1, &extra);
        }
    }
    let mut bytes = text.into_bytes();
    if let Some(at) = truncate {
        bytes.truncate(at % (bytes.len() + 1));
    }
    bytes
}

/// A refusal of the canonical decoder names at least one problem, each in
/// words.
fn assert_field_errors_explain(errors: &[FieldError]) -> Result<(), TestCaseError> {
    prop_assert!(!errors.is_empty(), "refused without a reason");
    for e in errors {
        prop_assert!(!e.message.trim().is_empty(), "empty message in {e:?}");
    }
    Ok(())
}

fn assert_adapter_error_explains(e: &AdapterError) -> Result<(), TestCaseError> {
    let text = e.to_string();
    prop_assert!(text.len() > 10, "unhelpful adapter error {text:?}");
    if let AdapterError::Invalid(errors) = e {
        assert_field_errors_explain(errors)?;
    }
    Ok(())
}

/// Every decoder of webhook and API bodies, on the same bytes.
fn decode_everything(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Err(e) = validate::parse_body(bytes, now()) {
        assert_field_errors_explain(&e)?;
    }
    if let Err(e) = cloudevents::parse_body(bytes, now()) {
        assert_field_errors_explain(&e)?;
    }
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Err(e) = validate::parse_ndjson(text, Some(now()))
    {
        assert_field_errors_explain(&e)?;
    }
    let adapter_results: Vec<Result<(), AdapterError>> = vec![
        census::parse_webhook(bytes).and_then(|h| h.to_run(now()).map(|_| ())),
        census::run_from_api(bytes).map(|_| ()),
        census::runs_from_list(bytes).map(|_| ()),
        census::next_page(bytes).map(|_| ()),
        census::rejected_records(bytes, 100).map(|_| ()),
        hightouch::runs_from_api("ht-1", bytes).map(|_| ()),
        airbyte::run_from_webhook(bytes).map(|_| ()),
        fivetran::from_webhook(bytes).map(|_| ()),
        dbt::runs_from_run_results(bytes, None).map(|_| ()),
        dbt::runs_from_run_results(bytes, Some("proj")).map(|_| ()),
        dbt::run_from_cloud_webhook(bytes).map(|_| ()),
    ];
    for r in adapter_results {
        if let Err(e) = r {
            assert_adapter_error_explains(&e)?;
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        decode_everything(&bytes)?;
    }

    #[test]
    fn arbitrary_json_never_panics_any_decoder(v in arbitrary_json()) {
        decode_everything(&serde_json::to_vec(&v).expect("serialise"))?;
    }

    #[test]
    fn a_damaged_canonical_run_is_stored_or_refused_with_reasons(
        ms in prop::collection::vec(mutation(), 1..4),
        batch in any::<bool>(),
    ) {
        let seed = if batch {
            json!([canonical_run(), canonical_run()]).to_string()
        } else {
            canonical_run().to_string()
        };
        let bytes = mutate(&seed, &ms);
        match validate::parse_body(&bytes, now()) {
            Ok(runs) => {
                // Whatever was accepted obeys the canonical rules.
                for run in &runs {
                    prop_assert!(validate::check_run(run, Some(now())).is_ok());
                }
            }
            Err(e) => assert_field_errors_explain(&e)?,
        }
    }

    #[test]
    fn damaged_vendor_fixtures_never_panic_their_adapters(
        pick in 0usize..13,
        ms in prop::collection::vec(mutation(), 1..4),
    ) {
        let seeds: [&str; 13] = [
            CENSUS_WEBHOOKS[0], CENSUS_WEBHOOKS[1], CENSUS_RUNS[0], CENSUS_RUNS[1],
            CENSUS_LIST, CENSUS_RECORDS, HIGHTOUCH, AIRBYTE[0], AIRBYTE[1],
            FIVETRAN[0], FIVETRAN[1], DBT_RESULTS, DBT_CLOUD,
        ];
        let bytes = mutate(seeds[pick], &ms);
        decode_everything(&bytes)?;
        // Whatever an adapter accepts is a valid canonical run.
        let accepted: Vec<syncwarden::model::Run> = [
            census::run_from_api(&bytes).ok().into_iter().collect::<Vec<_>>(),
            census::runs_from_list(&bytes).unwrap_or_default(),
            hightouch::runs_from_api("ht-1", &bytes).unwrap_or_default(),
            airbyte::run_from_webhook(&bytes).ok().into_iter().collect(),
            dbt::runs_from_run_results(&bytes, Some("proj")).unwrap_or_default(),
            dbt::run_from_cloud_webhook(&bytes).ok().into_iter().collect(),
        ]
        .into_iter()
        .flatten()
        .collect();
        for run in &accepted {
            prop_assert!(
                validate::check_run(run, None).is_ok(),
                "adapter let through an invalid run: {run:?}"
            );
        }
    }

    #[test]
    fn vendor_sync_ids_are_checked_not_trusted(id in "\\PC{0,300}") {
        if let Ok(s) = adapters::vendor_sync_id("census", &id) {
            prop_assert!(s.starts_with("census:"));
            prop_assert!(s.chars().all(validate::is_sync_id_char), "{s:?}");
        }
    }

    #[test]
    fn signature_checks_never_panic_and_refuse_what_they_did_not_sign(
        body in prop::collection::vec(any::<u8>(), 0..512),
        header in prop::option::of("\\PC{0,120}"),
        id in prop::option::of("\\PC{0,40}"),
        ts in prop::option::of("\\PC{0,20}"),
        secret in "[ -~]{0,40}",
    ) {
        let h = header.as_deref();
        // A random header is (overwhelmingly likely) not the signature.
        let b64 = signature::verify_hmac_sha256_base64([secret.as_bytes()], &body, h);
        let hex = signature::verify_hmac_sha256_hex([secret.as_bytes()], &body, h);
        prop_assert!(b64.is_err() && hex.is_err());
        let sw = signature::verify_standard_webhook(
            [secret.as_str()], id.as_deref(), ts.as_deref(), &body, h, now(),
        );
        prop_assert!(sw.is_err());
        let _ = signature::standard_webhook_key(&secret);
        let longer = format!("{secret}x");
        prop_assert!(!signature::token_eq(&secret, &longer));
    }

    #[test]
    fn a_correct_signature_verifies_and_a_flipped_byte_does_not(
        body in prop::collection::vec(any::<u8>(), 1..512),
        secret in "[ -~]{1,40}",
        flip in any::<usize>(),
    ) {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(&body);
        let sig = hex::encode(mac.finalize().into_bytes());
        prop_assert!(signature::verify_hmac_sha256_hex([secret.as_bytes()], &body, Some(&sig)).is_ok());
        let mut other = body.clone();
        let i = flip % other.len();
        other[i] ^= 0x01;
        prop_assert_eq!(
            signature::verify_hmac_sha256_hex([secret.as_bytes()], &other, Some(&sig)),
            Err(signature::SignatureError::Mismatch)
        );
    }

    #[test]
    fn arbitrary_text_never_panics_the_rules_parser(text in "\\PC{0,400}") {
        if let Err(problems) = rules::parse_str("fuzz.toml", &text) {
            prop_assert!(!problems.is_empty());
            for p in &problems {
                prop_assert!(!p.to_string().trim().is_empty());
            }
        }
    }

    #[test]
    fn damaged_rule_files_are_refused_with_reasons_naming_the_file(
        line in any::<usize>(),
        junk in prop_oneof![
            Just("= = =".to_string()),
            Just("fire_after = -1".to_string()),
            Just("fire_after = 18446744073709551615".to_string()),
            Just("resolve_after = 0".to_string()),
            Just("flap = { window = 0, high = 2.0, low = -1.0 }".to_string()),
            Just("match = { sync = \"[\" }".to_string()),
            Just("stale_after = \"-5m\"".to_string()),
            Just("bad_when = { failed_ratio_above = nan }".to_string()),
            Just("name = \"\u{0}\"".to_string()),
            Just("[[rule]]\nname = \"sync-broken\"".to_string()),
            Just(format!("name = \"{}\"", "r".repeat(100_000))),
            Just("x = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_string()),
            "\\PC{0,60}",
        ],
    ) {
        let lines: Vec<&str> = RULES.lines().collect();
        let at = line % (lines.len() + 1);
        let mut text: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        text.insert(at, junk);
        let text = text.join("\n");
        if let Err(problems) = rules::parse_str("damaged.toml", &text) {
            prop_assert!(!problems.is_empty());
            for p in &problems {
                let p = p.to_string();
                prop_assert!(p.contains("damaged.toml"), "problem does not name the file: {p}");
            }
        }
    }
}

/// JSON nested far beyond serde_json's 128-level limit is refused with an
/// error (not a stack overflow), by the canonical decoder and by every
/// adapter.
#[test]
fn json_nested_ten_thousand_deep_is_refused_not_overflowed() {
    for open in ["[", "{\"a\":"] {
        let body = open.repeat(10_000);
        let errs = validate::parse_body(body.as_bytes(), now()).expect_err("too deep");
        assert!(
            errs[0].message.contains("malformed JSON") && errs[0].message.contains("recursion"),
            "{errs:?}"
        );
        decode_everything(body.as_bytes()).expect("no adapter panics");
    }
}

/// A fixture whose run is valid is still accepted after the round trip the
/// mutator does (so a mutation, not the harness, is what breaks a case).
#[test]
fn the_unmutated_seeds_decode() {
    assert!(validate::parse_body(&mutate(&canonical_run().to_string(), &[]), now()).is_ok());
    assert!(airbyte::run_from_webhook(&mutate(AIRBYTE[0], &[])).is_ok());
    assert!(census::run_from_api(&mutate(CENSUS_RUNS[1], &[])).is_ok());
    assert!(dbt::runs_from_run_results(&mutate(DBT_RESULTS, &[]), Some("p")).is_ok());
    assert!(rules::parse_str("default.toml", RULES).is_ok());
}

/// A hostile TOML value for a rule key.
fn hostile_toml() -> impl Strategy<Value = toml::Value> {
    use toml::Value as T;
    prop_oneof![
        any::<i64>().prop_map(T::Integer),
        Just(T::Integer(i64::MIN)),
        Just(T::Integer(0)),
        Just(T::Integer(-1)),
        any::<f64>().prop_map(T::Float),
        Just(T::Float(f64::NAN)),
        Just(T::Float(f64::INFINITY)),
        any::<bool>().prop_map(T::Boolean),
        Just(T::String(String::new())),
        Just(T::String("[".into())),
        Just(T::String("auto".into())),
        Just(T::String("-5m".into())),
        Just(T::String("99999999999999999999h".into())),
        Just(T::String("\u{0}\r\n".into())),
        "\\PC{0,30}".prop_map(T::String),
        Just(T::Array(vec![])),
        Just(T::Array(vec![T::Integer(1), T::String("x".into())])),
        Just(T::Table(toml::Table::new())),
    ]
}

proptest! {
    #[test]
    fn rule_files_with_a_value_of_the_wrong_kind_are_refused_with_reasons(
        edits in prop::collection::vec((any::<usize>(), hostile_toml()), 1..4),
    ) {
        let mut doc = toml::Value::Table(RULES.parse::<toml::Table>().expect("the default rules are TOML"));
        for (which, value) in edits {
            // The document itself is not replaced: a rule file is a table.
            let all = &paths(&doc)[1..];
            if all.is_empty() {
                break;
            }
            if let Some(slot) = at_path(&mut doc, &all[which % all.len()]) {
                *slot = value;
            }
        }
        // A NaN or a mixed array may not serialise; the parser never sees it.
        let Ok(text) = toml::to_string(&doc) else { return Ok(()) };
        if let Err(problems) = rules::parse_str("mutated.toml", &text) {
            prop_assert!(!problems.is_empty());
            for p in &problems {
                let p = p.to_string();
                prop_assert!(p.contains("mutated.toml") && p.len() > "mutated.toml".len() + 5, "{p}");
            }
        }
    }
}
