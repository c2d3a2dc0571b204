//! Logging through `tracing` (human-readable by default, JSON with
//! `--log-format json`, filtered by `RUST_LOG`, default `info`), plus
//! OpenTelemetry (SPEC §7) when an endpoint is configured:
//!
//! * metrics over OTLP/HTTP (protobuf), pushed by a periodic reader every
//!   `telemetry.export_interval`; the instruments are in [`metrics`];
//! * traces over OTLP/HTTP through a batch processor with a bounded queue
//!   (spans are dropped, never waited for, when the collector is down), fed
//!   by the `tracing` spans via `tracing-opentelemetry`: `ingest` →
//!   `store` → `evaluate`, and `deliver` in the outbox;
//! * optionally Prometheus text on `GET /metrics` (`telemetry.prometheus`),
//!   from the same meter provider.
//!
//! The endpoint is `telemetry.otlp_endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (a base URL: `/v1/metrics` and `/v1/traces` are appended);
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES` are honoured. Nothing configured = no exporter,
//! and every metric call is a no-op.
//!
//! Secrets never reach a log line: configuration values that are secrets are
//! `config::Secret`, whose `Debug` is redacted, and request headers are not
//! logged.

pub mod metrics;

use std::sync::RwLock;

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use metrics::{
    delivery_retried, ingest_answered, notice_delivered, notice_held, outbox_depth, run_ingested,
    store_written,
};

use crate::config::TelemetryConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Most spans waiting for export; beyond it new spans are dropped.
const MAX_QUEUED_SPANS: usize = 2048;

/// The Prometheus registry behind `GET /metrics`, when enabled.
static PROMETHEUS: RwLock<Option<prometheus::Registry>> = RwLock::new(None);

/// The installed providers; [`Telemetry::shutdown`] flushes them.
#[must_use = "call shutdown() at exit to flush telemetry"]
pub struct Telemetry {
    meter_provider: Option<SdkMeterProvider>,
    tracer_provider: Option<SdkTracerProvider>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("metrics", &self.meter_provider.is_some())
            .field("traces", &self.tracer_provider.is_some())
            .finish()
    }
}

/// The OTLP base endpoint: config first, then `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub fn otlp_endpoint(cfg: &TelemetryConfig) -> Option<String> {
    cfg.otlp_endpoint
        .clone()
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .map(|s| s.trim().trim_end_matches('/').to_string())
        .filter(|s| !s.is_empty())
}

/// `OTEL_SERVICE_NAME`, else `telemetry.service_name`, else `syncwarden`.
pub fn service_name(cfg: &TelemetryConfig) -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| cfg.service_name.clone())
        .unwrap_or_else(|| "syncwarden".to_string())
}

/// Targets whose spans and events are never exported: the exporters' own
/// HTTP stack would otherwise produce telemetry about sending telemetry.
fn exportable(target: &str) -> bool {
    !["opentelemetry", "hyper", "reqwest", "h2", "tower", "rustls"]
        .iter()
        .any(|p| target.starts_with(p))
}

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn,tower_http=warn"))
}

/// Installs the global `tracing` subscriber with logging only (once; later
/// calls are ignored). For the offline commands.
pub fn init_logging(format: LogFormat) {
    install_subscriber(format, None);
}

fn install_subscriber(format: LogFormat, tracer: Option<opentelemetry_sdk::trace::Tracer>) {
    let fmt: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let otel = tracer.map(|t| {
        tracing_opentelemetry::layer().with_tracer(t).with_filter(
            tracing_subscriber::filter::filter_fn(|m| exportable(m.target())),
        )
    });
    // Already installed (a second init in one process, as in tests): keep
    // the first.
    let _ = tracing_subscriber::registry()
        .with(env_filter())
        .with(fmt)
        .with(otel)
        .try_init();
}

impl Telemetry {
    /// Sets up logging and, when an endpoint is configured, OTLP metrics and
    /// traces; with `telemetry.prometheus`, the `/metrics` registry. Installs
    /// the global meter/tracer providers and W3C trace-context propagator.
    ///
    /// Must run inside a Tokio runtime or not: the exporters use blocking
    /// HTTP on their own threads.
    pub fn init(cfg: &TelemetryConfig, format: LogFormat) -> Telemetry {
        let endpoint = otlp_endpoint(cfg);
        let mut problems = Vec::new();
        let resource = Resource::builder()
            .with_service_name(service_name(cfg))
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();

        let mut meter_builder = SdkMeterProvider::builder().with_resource(resource.clone());
        let mut have_reader = false;
        if let Some(base) = &endpoint {
            match opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_endpoint(format!("{base}/v1/metrics"))
                .with_timeout(std::time::Duration::from_secs(10))
                .build()
            {
                Ok(exporter) => {
                    let reader = PeriodicReader::builder(exporter)
                        .with_interval(
                            cfg.export_interval
                                .max(std::time::Duration::from_millis(100)),
                        )
                        .build();
                    meter_builder = meter_builder.with_reader(reader);
                    have_reader = true;
                }
                Err(e) => problems.push(format!("OTLP metrics exporter: {e}")),
            }
        }
        if cfg.prometheus {
            let registry = prometheus::Registry::new();
            match opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                .scope_info_enabled(false)
                .build()
            {
                Ok(reader) => {
                    meter_builder = meter_builder.with_reader(reader);
                    have_reader = true;
                    if let Ok(mut g) = PROMETHEUS.write() {
                        *g = Some(registry);
                    }
                }
                Err(e) => problems.push(format!("Prometheus exporter: {e}")),
            }
        }
        let meter_provider = have_reader.then(|| {
            let p = meter_builder.build();
            opentelemetry::global::set_meter_provider(p.clone());
            p
        });

        let tracer_provider = endpoint.as_ref().and_then(|base| {
            match opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{base}/v1/traces"))
                .with_timeout(std::time::Duration::from_secs(10))
                .build()
            {
                Ok(exporter) => {
                    let processor = BatchSpanProcessor::builder(exporter)
                        .with_batch_config(
                            BatchConfigBuilder::default()
                                .with_max_queue_size(MAX_QUEUED_SPANS)
                                .with_scheduled_delay(
                                    cfg.export_interval.min(std::time::Duration::from_secs(5)),
                                )
                                .build(),
                        )
                        .build();
                    Some(
                        SdkTracerProvider::builder()
                            .with_span_processor(processor)
                            .with_resource(resource.clone())
                            .build(),
                    )
                }
                Err(e) => {
                    problems.push(format!("OTLP trace exporter: {e}"));
                    None
                }
            }
        });
        let tracer = tracer_provider.as_ref().map(|p| {
            opentelemetry::global::set_tracer_provider(p.clone());
            p.tracer("syncwarden")
        });
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        install_subscriber(format, tracer);
        metrics::install(cfg.max_sync_ids);

        for p in &problems {
            tracing::error!(problem = %p, "telemetry disabled in part");
        }
        match &endpoint {
            Some(e) => {
                tracing::info!(endpoint = %e, service = %service_name(cfg), "exporting OpenTelemetry metrics and traces over OTLP/HTTP")
            }
            None => tracing::debug!("no OTLP endpoint configured: OpenTelemetry export is off"),
        }
        Telemetry {
            meter_provider,
            tracer_provider,
        }
    }

    /// Flushes and stops the exporters. Blocks (up to the export timeout):
    /// call it outside async code, or use [`Telemetry::shutdown_async`].
    pub fn shutdown(self) {
        if let Some(p) = &self.tracer_provider {
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
        if let Some(p) = &self.meter_provider {
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
    }

    /// [`Telemetry::shutdown`] on a blocking thread.
    pub async fn shutdown_async(self) {
        let _ = tokio::task::spawn_blocking(move || self.shutdown()).await;
    }

    /// Pushes metrics and spans now (blocking-safe: runs on a blocking
    /// thread). For tests and for a clean stop.
    pub async fn flush(&self) {
        let m = self.meter_provider.clone();
        let t = self.tracer_provider.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(t) = t {
                let _ = t.force_flush();
            }
            if let Some(m) = m {
                let _ = m.force_flush();
            }
        })
        .await;
    }
}

/// The Prometheus text exposition of every metric, when
/// `telemetry.prometheus` is on and [`Telemetry::init`] ran.
pub fn prometheus_text() -> Option<String> {
    let registry = PROMETHEUS.read().ok()?.clone()?;
    let mut out = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&registry.gather(), &mut out)
        .ok()?;
    Some(out)
}

struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the W3C `traceparent` in `headers`, if any.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !headers.contains_key("traceparent") {
        return;
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    let _ = span.set_parent(cx);
}

/// Samples the outbox depth for `syncwarden.outbox.depth` every `every`.
pub fn spawn_outbox_sampler(
    store: crate::store::Store,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(std::time::Duration::from_millis(100)));
        loop {
            tick.tick().await;
            if let Ok((n, oldest)) = crate::store::deliveries::depth(store.reader()).await {
                outbox_depth(n);
                let now = crate::model::Timestamp::now().0;
                metrics::outbox_oldest_age(oldest.map_or(0, |due| now - due));
            }
            if let Ok(states) = crate::store::alerts::names_all(store.reader()).await {
                metrics::alert_states(states);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exporter_targets_are_not_exported() {
        assert!(!exportable("opentelemetry_sdk::metrics"));
        assert!(!exportable("hyper_util::client"));
        assert!(!exportable("reqwest::connect"));
        assert!(exportable("syncwarden::api::runs"));
    }

    #[test]
    fn endpoint_from_config_is_trimmed() {
        let cfg = TelemetryConfig {
            otlp_endpoint: Some("http://collector:4318/".into()),
            ..Default::default()
        };
        assert_eq!(
            otlp_endpoint(&cfg).as_deref(),
            Some("http://collector:4318")
        );
    }
}
