//! CloudEvents 1.0 in JSON (structured mode: one event; batch mode: an
//! array of events) whose `data` is a canonical run record.
//!
//! This is the generic webhook for runners with no adapter of their own
//! (Airflow and Dagster callbacks, in-house schedulers): any CloudEvents
//! producer can wrap the SPEC §1 record in an event and sign it with
//! Standard Webhooks ([`super::signature::verify_standard_webhook`]). The
//! envelope is checked here and the run is checked by
//! [`validate::parse_value`], so the same rules and the same error list
//! apply as for `POST /v1/runs`; field paths of the run are prefixed with
//! `data.`. The event `type` is not restricted, since the route already says
//! what the events are for.

use serde_json::{Map, Value};

use crate::ingest::validate::{self, FieldError, MAX_REPORTED_ERRORS};
use crate::model::{Run, Timestamp};

/// The attributes an event must carry (CloudEvents 1.0 §3.1, required).
const REQUIRED: [&str; 3] = ["id", "source", "type"];

/// Parses one structured event or a batch (a non-empty array). Like
/// [`validate::parse_body`], every problem of every event is reported, each
/// with its index, and runs are returned only if all are valid.
pub fn parse_body(body: &[u8], now: Timestamp) -> Result<Vec<Run>, Vec<FieldError>> {
    let value: Value = validate::parse_json(body)
        .map_err(|e| vec![FieldError::new(0, "", format!("malformed JSON: {e}"))])?;
    let events: Vec<&Value> = match &value {
        Value::Array(items) if items.is_empty() => {
            return Err(vec![FieldError::new(
                0,
                "",
                "empty batch: send at least one event",
            )]);
        }
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut runs = Vec::with_capacity(events.len());
    let mut errors = Vec::new();
    for (i, event) in events.into_iter().enumerate() {
        match parse_event(event, i, Some(now)) {
            Ok(run) => runs.push(run),
            Err(errs) => errors.extend(errs),
        }
        if errors.len() >= MAX_REPORTED_ERRORS {
            errors.truncate(MAX_REPORTED_ERRORS);
            errors.push(FieldError::new(
                i,
                "",
                format!("too many errors: the first {MAX_REPORTED_ERRORS} are listed, checking stopped at this event"),
            ));
            break;
        }
    }
    if errors.is_empty() {
        Ok(runs)
    } else {
        Err(errors)
    }
}

/// Parses one event at position `index` of a batch; `now = None` skips the
/// future check on the run.
pub fn parse_event(
    event: &Value,
    index: usize,
    now: Option<Timestamp>,
) -> Result<Run, Vec<FieldError>> {
    let Some(obj) = event.as_object() else {
        return Err(vec![FieldError::new(
            index,
            "",
            "expected a CloudEvents object (structured mode JSON)",
        )]);
    };
    let mut errors = envelope_errors(obj, index);
    let run = match obj.get("data") {
        None | Some(Value::Null) => {
            let message = if obj.contains_key("data_base64") {
                "data_base64 is not supported: send the run record as JSON in `data`"
            } else {
                "is required: the canonical run record"
            };
            errors.push(FieldError::new(index, "data", message));
            None
        }
        Some(data) => match validate::parse_value(data, index, now) {
            Ok(run) => Some(run),
            Err(errs) => {
                errors.extend(errs.into_iter().map(|e| FieldError {
                    field: if e.field.is_empty() {
                        "data".to_owned()
                    } else {
                        format!("data.{}", e.field)
                    },
                    ..e
                }));
                None
            }
        },
    };
    match run {
        Some(run) if errors.is_empty() => Ok(run),
        _ => Err(errors),
    }
}

fn envelope_errors(obj: &Map<String, Value>, index: usize) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match obj.get("specversion") {
        Some(Value::String(v)) if v == "1.0" => {}
        Some(other) => errors.push(FieldError::new(
            index,
            "specversion",
            format!("must be \"1.0\", got {other}"),
        )),
        None => errors.push(FieldError::new(
            index,
            "specversion",
            "is required (\"1.0\")",
        )),
    }
    for attr in REQUIRED {
        match obj.get(attr) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::String(_)) => {
                errors.push(FieldError::new(index, attr, "must not be empty"));
            }
            Some(_) => errors.push(FieldError::new(index, attr, "expected a string")),
            None => errors.push(FieldError::new(index, attr, "is required")),
        }
    }
    if let Some(ct) = obj.get("datacontenttype") {
        let ok = ct.as_str().is_some_and(|ct| {
            let media = ct
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            media == "application/json" || media.ends_with("+json")
        });
        if !ok {
            errors.push(FieldError::new(
                index,
                "datacontenttype",
                "must be application/json (or a +json type): `data` is the run record",
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunStatus;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-03-02T12:00:00Z").expect("valid")
    }

    fn event(data: Value) -> Value {
        json!({
            "specversion": "1.0",
            "id": "evt-1",
            "source": "/airflow/dags/orders",
            "type": "dev.syncwarden.run",
            "time": "2026-03-02T11:00:01Z",
            "datacontenttype": "application/json",
            "data": data
        })
    }

    fn run() -> Value {
        json!({"sync_id": "airflow:orders", "run_id": "scheduled__2026-03-02", "status": "failed",
               "finished_at": "2026-03-02T11:00:00Z", "error": {"message": "task failed"}})
    }

    #[test]
    fn a_structured_event_carries_one_run() {
        let runs = parse_body(event(run()).to_string().as_bytes(), now()).expect("valid");
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].sync_id, "airflow:orders");
        assert_eq!(runs[0].status, RunStatus::Failed);
    }

    #[test]
    fn a_batch_carries_several_and_reports_every_bad_event() {
        let ok = parse_body(
            json!([event(run()), event(run())]).to_string().as_bytes(),
            now(),
        )
        .expect("valid");
        assert_eq!(ok.len(), 2);

        let mut bad_envelope = event(run());
        bad_envelope["specversion"] = json!("0.3");
        bad_envelope.as_object_mut().expect("object").remove("id");
        let mut bad_run = run();
        bad_run["status"] = json!("ok");
        let body = json!([
            event(run()),
            bad_envelope,
            event(bad_run),
            json!({"specversion":"1.0","id":"x","source":"s","type":"t","data_base64":"e30="})
        ]);
        let errs = parse_body(body.to_string().as_bytes(), now()).expect_err("invalid");
        let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.index, e.field.as_str())).collect();
        assert_eq!(
            got,
            [
                (1, "specversion"),
                (1, "id"),
                (2, "data.status"),
                (3, "data")
            ]
        );
        assert!(errs[3].message.contains("data_base64"));
    }

    #[test]
    fn envelope_and_body_shapes() {
        let mut e = event(run());
        e["datacontenttype"] = json!("text/plain");
        let errs = parse_body(e.to_string().as_bytes(), now()).expect_err("content type");
        assert_eq!(errs[0].field, "datacontenttype");
        e["datacontenttype"] = json!("application/cloudevents+json; charset=utf-8");
        assert!(parse_body(e.to_string().as_bytes(), now()).is_ok());

        let errs = parse_body(event(json!("run")).to_string().as_bytes(), now()).expect_err("data");
        assert_eq!(
            (errs[0].field.as_str(), errs[0].message.as_str()),
            ("data", "expected a run object, found a string")
        );
        assert!(parse_body(b"[]", now()).is_err());
        assert!(
            parse_body(b"{", now()).expect_err("json")[0]
                .message
                .contains("line 1")
        );
        assert!(parse_body(b"[1]", now()).is_err());

        // The run's own future check applies.
        let mut future = run();
        future["finished_at"] = json!("2026-03-03T00:00:00Z");
        let errs =
            parse_body(event(future.clone()).to_string().as_bytes(), now()).expect_err("future");
        assert_eq!(errs[0].field, "data.finished_at");
        assert!(parse_event(&event(future), 0, None).is_ok());
    }
}
