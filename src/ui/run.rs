//! `/runs/{sync_id}/{run_id}` — one run: its counts, run-level error,
//! record-error classes with counts and example records, a sample of the
//! stored record errors, and the link back to the runner.
//!
//! Every string here may come from a third party (the destination's error
//! messages): the template escapes all of it, and the runner link is shown
//! only when it is an http(s) URL.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Serialize;

use super::{Ui, UiError, sync_href};
use crate::notify::format::is_http_url;
use crate::store::runs;

/// Stored record errors shown under the classes.
const ERRORS_SHOWN: i64 = 200;

#[derive(Serialize)]
struct ClassView {
    headline: String,
    code: Option<String>,
    signature: String,
    count: u64,
    field: Option<String>,
    examples: Vec<String>,
}

pub(crate) async fn page(
    State(ui): State<Ui>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let result = async {
        let Path((sync_id, run_id)) = path.map_err(|e| UiError::BadRequest(e.body_text()))?;
        render(&ui, &sync_id, &run_id).await
    }
    .await;
    ui.finish(result)
}

async fn render(ui: &Ui, sync_id: &str, run_id: &str) -> Result<Response, UiError> {
    let stored = runs::get(ui.app.store.reader(), sync_id, run_id, ERRORS_SHOWN)
        .await?
        .ok_or_else(|| {
            UiError::NotFound(format!("No run {run_id:?} of sync {sync_id:?} is stored."))
        })?;
    let classes: Vec<ClassView> = stored
        .error_classes
        .iter()
        .map(|c| ClassView {
            headline: c.headline(),
            code: c.code.clone(),
            signature: c.signature.clone(),
            count: c.count,
            field: c.field.clone(),
            examples: c.examples.clone(),
        })
        .collect();
    let run = &stored.run;
    let runner = run.url.as_deref().filter(|u| is_http_url(u));
    let row = super::sync::RunRow::from(&stored);
    Ok(ui.render(
        "run.html",
        minijinja::context! {
            title => format!("{sync_id} · run {run_id}"),
            nav => "fleet",
            sync_id => sync_id,
            sync_href => sync_href(sync_id),
            run => minijinja::value::Serde(&row),
            started_at => minijinja::value::Serde(run.started_at),
            source => minijinja::value::Serde(&run.source),
            labels => minijinja::value::Serde(&run.labels),
            error_code => run.error.as_ref().and_then(|e| e.code.clone()),
            error_message => run.error.as_ref().map(|e| e.message.clone()),
            runner => runner,
            received_at => minijinja::value::Serde(stored.received_at),
            classes => minijinja::value::Serde(&classes),
            record_errors => minijinja::value::Serde(&run.record_errors),
            record_errors_total => stored.record_errors_total,
            record_errors_stored => stored.record_errors_stored,
        },
    ))
}
