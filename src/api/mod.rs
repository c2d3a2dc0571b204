//! The HTTP surface (SPEC §6): JSON under `/v1`, health probes, one router.
//!
//! Cross-cutting layers live here so every route gets them: bearer auth
//! (constant-time), a per-client rate limit (governor, keyed by peer IP),
//! body size limits, a request timeout, and JSON answers for every error —
//! unknown routes, wrong methods and panics included.

pub(crate) mod alerts;
mod error;
mod health;
pub mod openapi;
mod runs;
pub(crate) mod syncs;
mod webhooks;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use subtle::ConstantTimeEq;
use tower_http::catch_panic::CatchPanicLayer;

pub use error::ApiError;

use crate::app::pollers::Vendors;
use crate::app::writer::WriterHandle;
use crate::config::Config;
use crate::evaluate::RuleSet;
use crate::notify::Channels;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub writer: WriterHandle,
    /// Vendor sources: webhook secrets, API clients, their status.
    pub vendors: Arc<Vendors>,
    /// Notification channels (for reload checks and the templates).
    pub channels: Arc<Channels>,
    /// The latest ingest writes' outcome, reported by `/readyz`.
    pub write_health: Arc<health::WriteHealth>,
    /// The rules in force (the `[[sync]]` catalogue: owners, upstreams),
    /// published by the writer on every reload.
    pub rules: tokio::sync::watch::Receiver<Arc<RuleSet>>,
    limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        writer: WriterHandle,
        channels: Arc<Channels>,
    ) -> Self {
        let limiter = NonZeroU32::new(config.api.requests_per_second)
            .map(|n| Arc::new(RateLimiter::keyed(Quota::per_second(n).allow_burst(n))));
        AppState {
            config,
            store,
            writer,
            vendors: Arc::new(Vendors::default()),
            channels,
            write_health: Arc::default(),
            rules: tokio::sync::watch::channel(Arc::new(RuleSet::default())).1,
            limiter,
        }
    }

    pub fn with_rules(mut self, rules: tokio::sync::watch::Receiver<Arc<RuleSet>>) -> Self {
        self.rules = rules;
        self
    }

    pub fn with_vendors(mut self, vendors: Arc<Vendors>) -> Self {
        self.vendors = vendors;
        self
    }
}

pub fn router(state: AppState) -> Router {
    let max_body = state.config.api.max_body_bytes;
    let v1 = Router::new()
        .route("/runs", post(runs::ingest))
        .route("/runs/{sync_id}/{run_id}", get(runs::get_run))
        .route("/syncs", get(syncs::list))
        .route("/syncs/{sync_id}", get(syncs::get_sync))
        .route("/syncs/{sync_id}/runs", get(syncs::runs))
        .route("/incidents", get(alerts::incidents))
        .route("/notifications", get(alerts::notifications))
        .route(
            "/silences",
            get(alerts::list_silences).post(alerts::add_silence),
        )
        .route("/silences/{id}", delete(alerts::expire_silence))
        .route("/openapi.json", get(openapi::document))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));

    Router::new()
        .nest("/v1", v1)
        // Vendors authenticate with their own schemes (SPEC §6): outside
        // the bearer-token layer.
        .nest("/v1/webhooks", webhooks::router())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        // The status UI (HTML), with its own auth, CSRF and error pages.
        .merge(crate::ui::router(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        // The handler sees the real limit; axum's own default (2 MB) is
        // replaced so `max_body_bytes` is the only limit in force.
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_timeout,
        ))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("handler panicked");
                ApiError::Internal.into_response()
            },
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Bearer-token auth on `/v1` when tokens are configured. Every token is
/// compared in constant time, and all of them are always compared, so the
/// timing says nothing about which token (or which prefix) was close.
async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let tokens = &state.config.api.tokens;
    if tokens.is_empty() {
        return next.run(req).await;
    }
    let Some(presented) = bearer(req.headers()) else {
        return ApiError::Unauthorized.into_response();
    };
    if token_matches(&state.config, presented) {
        next.run(req).await
    } else {
        ApiError::Unauthorized.into_response()
    }
}

/// The whole request, reading its body included, within
/// `api.request_timeout`; answered 408 JSON like every other refusal (the
/// tower-http layer answered with an empty body).
async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.config.api.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::RequestTimeout(limit).into_response(),
    }
}

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(headers: &header::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Whether `presented` is one of the configured tokens, in constant time.
pub(crate) fn token_matches(config: &Config, presented: &str) -> bool {
    let mut ok = subtle::Choice::from(0u8);
    for t in &config.api.tokens {
        ok |= t.expose().as_bytes().ct_eq(presented.as_bytes());
    }
    bool::from(ok)
}

/// Per-client rate limit, keyed by the peer address.
async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(limiter) = &state.limiter {
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(ip) = ip
            && let Err(not_until) = limiter.check_key(&ip)
        {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            return ApiError::TooManyRequests {
                retry_after_secs: wait.as_secs().max(1),
            }
            .into_response();
        }
    }
    next.run(req).await
}

/// Housekeeping: keeps the keyed rate limiter from growing without bound.
pub fn spawn_maintenance(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            if let Some(l) = &state.limiter {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
    })
}

/// Parses a `limit` query value within bounds.
pub(crate) fn page_limit(v: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match v {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {max}, got {n}"
        ))),
    }
}
