//! `/silences` — silences (active and upcoming; `?all=1` adds the ended
//! ones), a form to create one and a button to expire each. Both forms are
//! POSTs with a CSRF token; a silence is validated and written exactly as
//! `POST /v1/silences` does it (through the writer, so the engine applies it
//! at once). `?sync=` pre-fills the form: the link notices carry.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::{Ui, UiError, csrf};
use crate::api::alerts::{NewSilence, SilenceView};
use crate::model::Timestamp;
use crate::store::silences::{self, SilenceRow};

#[derive(Debug, Default, Deserialize)]
pub struct SilencesQuery {
    /// Include silences that have ended.
    all: Option<String>,
    /// Pre-fills the form's sync glob.
    sync: Option<String>,
    rule: Option<String>,
}

/// The create form, as posted.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct SilenceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    sync: String,
    #[serde(default)]
    duration: String,
    #[serde(default)]
    author: String,
    #[serde(default)]
    comment: String,
}

/// A silence as `GET /v1/silences` shows it, plus what the table needs.
#[derive(Serialize)]
struct View {
    #[serde(flatten)]
    silence: SilenceView,
    /// `active`, `upcoming` or `ended`.
    status: &'static str,
    expire_href: String,
}

fn view(s: SilenceRow, now: Timestamp) -> View {
    View {
        status: if s.ends_ms <= now.0 {
            "ended"
        } else if s.starts_ms > now.0 {
            "upcoming"
        } else {
            "active"
        },
        expire_href: format!("/silences/{}/expire", super::seg(&s.id)),
        silence: SilenceView::new(s, now),
    }
}

pub(crate) async fn page(
    State(ui): State<Ui>,
    headers: HeaderMap,
    query: Result<Query<SilencesQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let Query(q) = query.map_err(|e| UiError::BadRequest(e.body_text()))?;
        let form = SilenceForm {
            rule: q.rule.clone().unwrap_or_else(|| "*".into()),
            sync: q.sync.clone().unwrap_or_else(|| "*".into()),
            duration: "2h".into(),
            ..SilenceForm::default()
        };
        let all = q.all.as_deref().is_some_and(|v| !v.is_empty() && v != "0");
        render(&ui, &headers, StatusCode::OK, all, &form, &[]).await
    }
    .await;
    ui.finish(result)
}

async fn render(
    ui: &Ui,
    headers: &HeaderMap,
    status: StatusCode,
    all: bool,
    form: &SilenceForm,
    problems: &[String],
) -> Result<Response, UiError> {
    let now = Timestamp::now();
    let rows: Vec<View> = silences::list(ui.app.store.reader(), now.0, all)
        .await?
        .into_iter()
        .map(|s| view(s, now))
        .collect();
    let (token, set_cookie) = ui.csrf.token_for(headers);
    let mut resp = ui.render_status(
        status,
        "silences.html",
        minijinja::context! {
            title => "Silences",
            nav => "silences",
            rows => minijinja::value::Serde(&rows),
            all => all,
            csrf => token,
            form => minijinja::value::Serde(form),
            problems => minijinja::value::Serde(problems),
        },
    );
    if let Some(c) = set_cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

pub(crate) async fn create(
    State(ui): State<Ui>,
    headers: HeaderMap,
    form: Result<Form<SilenceForm>, FormRejection>,
) -> Response {
    let result = async {
        let Form(form) = form.map_err(|e| {
            UiError::BadRequest(format!(
                "The silence form could not be read: {}",
                e.body_text()
            ))
        })?;
        if !ui.csrf.verify(&headers, &form.csrf) {
            return Err(csrf::rejection());
        }
        let req = NewSilence {
            rule: non_empty(&form.rule),
            sync: non_empty(&form.sync),
            labels: BTreeMap::new(),
            starts_at: None,
            ends_at: None,
            duration: Some(form.duration.trim().to_string()),
            author: form.author.trim().to_string(),
            comment: form.comment.trim().to_string(),
        };
        match req.into_row(Timestamp::now()) {
            Ok(row) => {
                ui.app.writer.add_silence(row).await?;
                Ok(Redirect::to("/silences").into_response())
            }
            Err(problems) => {
                render(
                    &ui,
                    &headers,
                    StatusCode::BAD_REQUEST,
                    false,
                    &form,
                    &problems,
                )
                .await
            }
        }
    }
    .await;
    ui.finish(result)
}

fn non_empty(s: &str) -> String {
    match s.trim() {
        "" => "*".into(),
        t => t.to_string(),
    }
}

pub(crate) async fn expire(
    State(ui): State<Ui>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<super::CsrfOnly>, FormRejection>,
) -> Response {
    let result = async {
        let Path(id) = path.map_err(|e| UiError::BadRequest(e.body_text()))?;
        let token = form.map(|f| f.0.csrf).unwrap_or_default();
        if !ui.csrf.verify(&headers, &token) {
            return Err(csrf::rejection());
        }
        if !ui.app.writer.expire_silence(id.clone()).await? {
            return Err(UiError::NotFound(format!("No silence {id:?}.")));
        }
        Ok(Redirect::to("/silences").into_response())
    }
    .await;
    ui.finish(result)
}
