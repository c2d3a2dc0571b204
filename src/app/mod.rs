//! The running sidecar: `App::build(config)` opens the store, loads rules
//! and state, binds the listener; `run_until_stopped(shutdown)` serves until
//! the shutdown future completes, then drains in-flight requests, lets the
//! writer finish what is queued, and closes the database.
//!
//! This module owns every task; it is the only I/O around the engine.

pub mod pollers;
pub mod reload;
pub mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::evaluate::{self, RuleSet};
use crate::ingest::sources::Sources;
use crate::model::Timestamp;
use crate::notify::render::Templates;
use crate::notify::worker::Outbox;
use crate::notify::{self, Channels};
use crate::store::Store;
use writer::{Writer, WriterConfig, WriterHandle};

pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    writer_join: tokio::task::JoinHandle<()>,
    store: Store,
    outbox: Outbox,
    outbox_signal: tokio::sync::watch::Receiver<u64>,
}

/// Loads the rules directory. A directory that does not exist means "no
/// rules yet" (the sidecar still stores runs); one that exists must pass
/// `rules check` in full, and every channel a rule notifies must exist.
pub fn load_rules(dir: &Path, channels: &Channels) -> anyhow::Result<RuleSet> {
    if !dir.exists() {
        tracing::warn!(dir = %dir.display(), "rules directory not found: runs are stored but no alerts are evaluated");
        return Ok(RuleSet::default());
    }
    let rules = evaluate::load_dir(dir).map_err(|problems| {
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow::anyhow!(
            "rules in {} have {} problem(s):\n{}",
            dir.display(),
            problems.len(),
            text.join("\n")
        )
    })?;
    let mut unknown = Vec::new();
    for rule in &rules.rules {
        for ch in &rule.notify {
            if let Err(e) = channels.resolve(ch) {
                unknown.push(format!(
                    "{}:{}: rule {:?}: {e}",
                    rule.file.display(),
                    rule.line,
                    rule.name
                ));
            }
        }
    }
    if !unknown.is_empty() {
        anyhow::bail!(
            "rules name channels that are not configured:\n{}",
            unknown.join("\n")
        );
    }
    Ok(rules)
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let sources = Sources::parse(&config.sources)
            .map_err(|e| anyhow::anyhow!("invalid [sources] configuration: {e}"))?;
        let vendors = Arc::new(pollers::Vendors::build(sources)?);
        let templates = Templates::load(&config.templates)
            .with_context(|| format!("loading templates from {}", config.templates.display()))?;
        let channels = Arc::new(
            Channels::from_config(&config.channels, Arc::new(templates))
                .context("configuring notification channels")?,
        );
        let rules = load_rules(&config.rules, &channels)?;
        let store = Store::open_with(&config.database, config.store.busy_timeout)
            .await
            .with_context(|| {
                format!(
                    "opening database {}",
                    crate::store::redacted(&config.database)
                )
            })?;
        let writer = Writer::load(
            store.clone(),
            rules,
            WriterConfig {
                record_errors_per_run: config.store.record_errors_per_run,
                max_batch_runs: config.store.max_batch_runs,
            },
            Timestamp::now,
        )
        .await
        .context("loading alert state")?;
        let outbox = Outbox {
            store: store.clone(),
            channels: channels.clone(),
            rules: writer.rules(),
            public_url: config.public_url.clone(),
            retry: config.delivery.clone(),
        };
        let outbox_signal = writer.outbox_signal();
        let rules_rx = writer.rules();
        let (handle, writer_join) = writer.spawn();
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let state = AppState::new(Arc::new(config), store.clone(), handle, channels)
            .with_vendors(vendors)
            .with_rules(rules_rx);
        Ok(App {
            listener,
            addr,
            state,
            writer_join,
            store,
            outbox,
            outbox_signal,
        })
    }

    /// The bound address (useful with port 0 in tests).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn writer(&self) -> WriterHandle {
        self.state.writer.clone()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App {
            listener,
            addr,
            state,
            writer_join,
            store,
            outbox,
            outbox_signal,
        } = self;
        let workers = notify::worker::spawn(outbox, outbox_signal)
            .await
            .context("starting the outbox worker")?;
        let reload_task = reload::spawn(state.clone());
        let maintenance = api::spawn_maintenance(state.clone());
        let outbox_sampler = crate::telemetry::spawn_outbox_sampler(
            store.clone(),
            state.config.telemetry.export_interval,
        );
        let pollers = pollers::spawn(&state.vendors, state.writer.clone(), store.clone());
        let router = api::router(state);
        tracing::info!(%addr, "syncwarden listening");
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server")?;
        reload_task.abort();
        maintenance.abort();
        outbox_sampler.abort();
        // A delivery cut off here stays `sending` and is retried at the next
        // start with the same Message-ID.
        for w in &workers {
            w.abort();
        }
        let _ = reload_task.await;
        let _ = maintenance.await;
        for w in workers {
            let _ = w.await;
        }
        // Pollers hold writer handles too: they stop before the writer.
        pollers.stop().await;
        // The router (and with it the last writer handle) is gone: the
        // writer finishes its queue and stops.
        let _ = writer_join.await;
        store.close().await;
        tracing::info!("syncwarden stopped");
        Ok(())
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested");
}
