//! The status UI (SPEC §6, issue #8): a few server-rendered HTML pages served
//! by the sidecar itself, so whoever gets a failure notice can see what
//! broke, since when and which records — with no front-end build and no
//! JavaScript.
//!
//! - `/` fleet ([`fleet`]), `/syncs/{id}` ([`sync`]), `/runs/{sync}/{run}`
//!   ([`run`]), `/incidents` ([`incidents`]), `/silences` ([`silences`]).
//! - Templates are minijinja files under `templates/ui/`, HTML-escaped by
//!   extension, with built-in copies ([`page`]); charts are inline SVG drawn
//!   here ([`svg`]); the one stylesheet is compiled into the binary.
//! - Every page reads rollups and bounded pages, never a scan of `runs`:
//!   the fleet page of a thousand syncs must render in milliseconds.
//! - Auth is the API's: with tokens configured every page needs a bearer
//!   token, which browsers keep in an `HttpOnly; SameSite=Strict` cookie set
//!   by `/login`. Forms carry a CSRF token ([`csrf`]). Every page gets a
//!   strict Content-Security-Policy: no script runs, inline or not.

mod csrf;
mod fleet;
mod incidents;
mod page;
mod run;
mod silences;
mod svg;
mod sync;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;

use crate::api::AppState;
use crate::store::StoreError;

pub use page::UiTemplates;

/// Name of the cookie that carries the API token for browsers.
const TOKEN_COOKIE: &str = "syncwarden_token";

/// The stylesheet, served at [`STYLE_PATH`] with a long cache lifetime; the
/// path carries the version so an upgrade is never served a stale copy.
const STYLE: &str = include_str!("../../templates/ui/style.css");
const STYLE_PATH: &str = concat!("/ui/style.css?v=", env!("CARGO_PKG_VERSION"));

/// What every UI handler reaches: the API state plus the templates and the
/// CSRF key, built once per process.
#[derive(Clone)]
pub(crate) struct Ui {
    app: AppState,
    templates: Arc<UiTemplates>,
    csrf: Arc<csrf::Csrf>,
}

/// The UI routes, merged into the API router by [`crate::api::router`].
pub fn router(state: &AppState) -> Router<AppState> {
    let ui = Ui {
        templates: Arc::new(UiTemplates::load(&state.config.templates.join("ui"))),
        csrf: Arc::new(csrf::Csrf::new()),
        app: state.clone(),
    };
    Router::new()
        .route("/", get(fleet::page))
        .route("/syncs/{sync_id}", get(sync::page))
        .route("/runs/{sync_id}/{run_id}", get(run::page))
        .route("/incidents", get(incidents::page))
        .route("/silences", get(silences::page).post(silences::create))
        .route("/silences/{id}/expire", post(silences::expire))
        .route_layer(middleware::from_fn_with_state(ui.clone(), require_login))
        .route("/login", get(login_form).post(login))
        .route("/ui/style.css", get(style))
        .layer(middleware::from_fn(security_headers))
        .with_state(ui)
}

/// Why a page could not be shown; answered as an HTML page.
#[derive(Debug)]
pub(crate) enum UiError {
    BadRequest(String),
    Forbidden(String),
    NotFound(String),
    Unavailable,
    Internal,
}

impl UiError {
    fn status(&self) -> StatusCode {
        match self {
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Forbidden(_) => StatusCode::FORBIDDEN,
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            UiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> String {
        match self {
            UiError::BadRequest(m) | UiError::Forbidden(m) | UiError::NotFound(m) => m.clone(),
            UiError::Unavailable => "The store is busy; reload in a moment.".into(),
            UiError::Internal => "Something went wrong; the details are in the log.".into(),
        }
    }
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        // Same policy as the API: log the detail, show none of it.
        if e.is_unstorable_text() {
            UiError::BadRequest("a text value contains a NUL character".into())
        } else if e.is_transient() {
            tracing::warn!(error = %e, "store unavailable");
            UiError::Unavailable
        } else {
            tracing::error!(error = %e, "store error");
            UiError::Internal
        }
    }
}

impl From<crate::app::writer::WriteError> for UiError {
    fn from(e: crate::app::writer::WriteError) -> Self {
        match e {
            crate::app::writer::WriteError::Store(e) => e.into(),
            crate::app::writer::WriteError::Closed => UiError::Unavailable,
        }
    }
}

impl Ui {
    /// Renders `name` with `ctx`, adding what every page needs (the
    /// stylesheet path, whether auth is on, the active nav entry).
    pub(crate) fn render(&self, name: &str, ctx: minijinja::Value) -> Response {
        self.render_status(StatusCode::OK, name, ctx)
    }

    pub(crate) fn render_status(
        &self,
        status: StatusCode,
        name: &str,
        ctx: minijinja::Value,
    ) -> Response {
        let common = minijinja::context! {
            style => STYLE_PATH,
            auth => !self.app.config.api.tokens.is_empty(),
            ..ctx
        };
        match self.templates.render(name, common) {
            Ok(html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(error = %e, template = name, "UI page failed to render");
                plain_error(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// A page's outcome: the page, or its error as an HTML page.
    pub(crate) fn finish(&self, result: Result<Response, UiError>) -> Response {
        match result {
            Ok(r) => r,
            Err(e) => self.error_page(e),
        }
    }

    /// A page whose only input is its query string: a malformed one is
    /// answered with a 400 page naming the problem, anything else by
    /// `render`.
    pub(crate) async fn query_page<Q, F, Fut>(
        self,
        query: Result<Query<Q>, QueryRejection>,
        render: F,
    ) -> Response
    where
        F: FnOnce(Ui, Q) -> Fut,
        Fut: Future<Output = Result<Response, UiError>>,
    {
        let result = match query {
            Ok(Query(q)) => render(self.clone(), q).await,
            Err(e) => Err(UiError::BadRequest(e.body_text())),
        };
        self.finish(result)
    }

    pub(crate) fn error_page(&self, e: UiError) -> Response {
        let status = e.status();
        self.render_status(
            status,
            "error.html",
            minijinja::context! {
                title => status.canonical_reason().unwrap_or("Error"),
                code => status.as_u16(),
                message => e.message(),
            },
        )
    }
}

/// The last resort when even the error template fails: plain text.
fn plain_error(status: StatusCode) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "syncwarden: the page could not be rendered; see the log.",
    )
        .into_response()
}

/// Headers of every UI response. The policy allows the stylesheet from this
/// origin and nothing else: no script at all, no images (the charts are
/// inline SVG, which is markup), no framing, forms only to this origin.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show live state: never from a cache.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        STYLE,
    )
        .into_response()
}

/// With tokens configured, a page needs one: from `Authorization: Bearer`
/// (scripts, curl) or from the login cookie (browsers). Without, browsers
/// get the login page with a 401.
async fn require_login(State(ui): State<Ui>, req: Request, next: Next) -> Response {
    let config = &ui.app.config;
    if config.api.tokens.is_empty() {
        return next.run(req).await;
    }
    let headers = req.headers();
    let ok = crate::api::bearer(headers).is_some_and(|t| crate::api::token_matches(config, t))
        || cookie(headers, TOKEN_COOKIE)
            .is_some_and(|t| crate::api::token_matches(config, &decode(&t)));
    if ok {
        return next.run(req).await;
    }
    let mut resp = login_page(&ui, headers, StatusCode::UNAUTHORIZED, None);
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

async fn login_form(State(ui): State<Ui>, headers: HeaderMap) -> Response {
    if ui.app.config.api.tokens.is_empty() {
        // Nothing to sign in to.
        return Redirect::to("/").into_response();
    }
    login_page(&ui, &headers, StatusCode::OK, None)
}

fn login_page(ui: &Ui, headers: &HeaderMap, status: StatusCode, error: Option<&str>) -> Response {
    let (token, set_cookie) = ui.csrf.token_for(headers);
    let mut resp = ui.render_status(
        status,
        "login.html",
        minijinja::context! { title => "Sign in", csrf => token, error => error },
    );
    if let Some(c) = set_cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    csrf: String,
    token: String,
}

async fn login(
    State(ui): State<Ui>,
    headers: HeaderMap,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match form {
        Ok(axum::Form(form)) => form,
        Err(e) => {
            return ui.error_page(UiError::BadRequest(format!(
                "The sign-in form could not be read: {}",
                e.body_text()
            )));
        }
    };
    if !ui.csrf.verify(&headers, &form.csrf) {
        return ui.error_page(csrf::rejection());
    }
    if !crate::api::token_matches(&ui.app.config, form.token.trim()) {
        return login_page(
            &ui,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid."),
        );
    }
    let secure = if ui.app.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{TOKEN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        query_value(form.token.trim())
    );
    let mut resp = Redirect::to("/").into_response();
    match HeaderValue::from_str(&cookie) {
        Ok(v) => {
            resp.headers_mut().append(header::SET_COOKIE, v);
            resp
        }
        // The token matched, but cannot travel in a cookie header.
        Err(_) => ui.error_page(UiError::BadRequest(
            "That token cannot be kept in a cookie; send it as `Authorization: Bearer` instead."
                .into(),
        )),
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    csrf: String,
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Cookie values may not hold `;`, `,`, spaces or quotes: tokens are
/// percent-encoded into the cookie ([`query_value`]) and decoded out of it.
fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Characters escaped in a path segment: those of the URL path set plus
/// `/` (ids contain it), `%`, and the HTML-special `&` and `'`, so a link
/// can go into an attribute unchanged. `:` and `@` stay readable.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'?')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

/// Percent-encodes one path segment (sync ids hold `/` and `:`).
pub(crate) fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// `/syncs/{id}`: the link notices carry (notify/gather.rs builds the same
/// path under `public_url`).
pub(crate) fn sync_href(sync_id: &str) -> String {
    format!("/syncs/{}", seg(sync_id))
}

/// `/runs/{sync_id}/{run_id}`.
pub(crate) fn run_href(sync_id: &str, run_id: &str) -> String {
    format!("/runs/{}/{}", seg(sync_id), seg(run_id))
}

/// Encodes a query-string value (or a cookie value): everything but ASCII
/// letters and digits.
pub(crate) fn query_value(s: &str) -> String {
    utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_keep_colons_and_escape_slashes_and_html() {
        assert_eq!(sync_href("census:12"), "/syncs/census:12");
        assert_eq!(sync_href("dbt:model.a/b"), "/syncs/dbt:model.a%2Fb");
        assert_eq!(
            run_href("a", "x?y#z&'<\"%"),
            "/runs/a/x%3Fy%23z%26%27%3C%22%25"
        );
    }

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; syncwarden_token=t%3Bx; b=2"),
        );
        assert_eq!(
            cookie(&h, TOKEN_COOKIE).map(|v| decode(&v)),
            Some("t;x".to_string())
        );
        assert_eq!(cookie(&h, "missing"), None);
    }
}
