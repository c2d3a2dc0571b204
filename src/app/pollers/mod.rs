//! The vendor integrations that need I/O: the Census and Hightouch API
//! clients and the pollers that walk them, plus the status `/readyz` shows.
//!
//! [`Vendors`] is built once from the typed `[sources]` section and shared
//! by the webhook handlers (a Census webhook fetches its run through the
//! same client, quota and backoff as the poller) and the pollers. A poller
//! is one task per polled workspace: every `poll_interval` it lists the
//! workspace's syncs, lists each sync's runs since its cursor
//! ([`cursor`]), ingests the new finished ones through the writer, and only
//! then stores the cursor. A vendor outage fails a poll, which is logged and
//! shown in `/readyz`; the task carries on at the next interval.

pub mod census;
pub mod cursor;
pub mod hightouch;
pub mod http;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::writer::WriterHandle;
use crate::ingest::sources::Sources;
use crate::model::{Run, Timestamp};
use crate::store::{self, Store};
use census::CensusApi;
use cursor::Cursor;
use hightouch::HightouchApi;
use status::{SourceHealth, SourceStatus};

/// Runs per ingest request from a poller (a first backfill may be large).
const INGEST_CHUNK: usize = 500;

/// The configured sources with their API clients and status.
#[derive(Default)]
pub struct Vendors {
    pub sources: Sources,
    /// One per `sources.census` entry, in order: its API client, if it has
    /// a token.
    pub census_apis: Vec<Option<Arc<CensusApi>>>,
    hightouch_apis: Vec<Arc<HightouchApi>>,
    pub status: SourceStatus,
}

impl Vendors {
    pub fn build(sources: Sources) -> anyhow::Result<Vendors> {
        let status = SourceStatus::default();
        let mut census_apis = Vec::new();
        for c in &sources.census {
            let api = CensusApi::new(c)
                .with_context(|| format!("building the API client of {}", c.label))?;
            let mut mode = Vec::new();
            if !c.webhook_secrets.is_empty() {
                mode.push("webhook".to_owned());
            }
            if api.is_some() {
                mode.push("api".to_owned());
            }
            if let Some(every) = c.poll_interval {
                mode.push(format!("poll every {}", humantime::format_duration(every)));
            }
            let polled = c.poll_interval.is_some();
            let mut health = SourceHealth::new(
                "census",
                mode.join(" + "),
                if polled { "starting" } else { "ok" },
            );
            health.polled = polled;
            if api.is_none() {
                health.detail = Some(
                    "webhook only: runs are stored with their outcome but without record \
                     counts or record errors; set api_token so they are fetched from the \
                     Census API"
                        .to_owned(),
                );
            }
            status.register(&c.label, health);
            census_apis.push(api.map(Arc::new));
        }
        let mut hightouch_apis = Vec::new();
        for h in &sources.hightouch {
            let api = HightouchApi::new(h)
                .with_context(|| format!("building the API client of {}", h.label))?;
            let mode = format!("poll every {}", humantime::format_duration(h.poll_interval));
            let mut health = SourceHealth::new("hightouch", mode, "starting");
            health.polled = true;
            status.register(&h.label, health);
            hightouch_apis.push(Arc::new(api));
        }
        let webhook_only = [
            ("fivetran", sources.fivetran.is_some()),
            ("dbt", sources.dbt.is_some()),
            ("airbyte", sources.airbyte.is_some()),
            ("generic", sources.generic.is_some()),
        ];
        for (kind, configured) in webhook_only {
            if configured {
                status.register(kind, SourceHealth::new(kind, "webhook".to_owned(), "ok"));
            }
        }
        Ok(Vendors {
            sources,
            census_apis,
            hightouch_apis,
            status,
        })
    }
}

/// The running pollers.
pub struct Pollers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts one poller per polled workspace.
pub fn spawn(vendors: &Vendors, writer: WriterHandle, store: Store) -> Pollers {
    let (stop, stopped) = watch::channel(false);
    let mut pollers = Vec::new();
    for (c, api) in vendors.sources.census.iter().zip(&vendors.census_apis) {
        if let (Some(every), Some(api)) = (c.poll_interval, api) {
            pollers.push((
                c.label.clone(),
                Api::Census(api.clone()),
                every,
                c.api.backfill,
            ));
        }
    }
    for (h, api) in vendors
        .sources
        .hightouch
        .iter()
        .zip(&vendors.hightouch_apis)
    {
        pollers.push((
            h.label.clone(),
            Api::Hightouch(api.clone()),
            h.poll_interval,
            h.api.backfill,
        ));
    }
    let tasks = pollers
        .into_iter()
        .map(|(label, api, interval, backfill)| {
            let poller = Poller {
                label,
                api,
                interval,
                backfill,
                writer: writer.clone(),
                store: store.clone(),
                status: vendors.status.clone(),
                cursors: None,
                owner: replica_id(),
                leading: false,
            };
            tokio::spawn(poller.run(stopped.clone()))
        })
        .collect();
    Pollers { stop, tasks }
}

impl Pollers {
    /// Stops every poller: a poll in progress is abandoned (its runs are
    /// fetched again after a restart, as duplicates at worst).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

enum Api {
    Census(Arc<CensusApi>),
    Hightouch(Arc<HightouchApi>),
}

impl Api {
    async fn list_syncs(&self) -> Result<Vec<String>, http::VendorError> {
        match self {
            Api::Census(a) => a.list_syncs().await,
            Api::Hightouch(a) => a.list_syncs().await,
        }
    }

    async fn runs_since(
        &self,
        sync_id: &str,
        from: Timestamp,
    ) -> Result<Vec<Run>, http::VendorError> {
        match self {
            Api::Census(a) => a.runs_since(sync_id, from).await,
            Api::Hightouch(a) => a.runs_since(sync_id, from).await,
        }
    }

    /// Completes a listed run (Census: its record-error sample).
    async fn complete(&self, run: Run) -> Run {
        match self {
            Api::Census(a) => a.with_record_errors(run, None).await,
            Api::Hightouch(_) => run,
        }
    }
}

struct Poller {
    label: String,
    api: Api,
    interval: Duration,
    backfill: Duration,
    writer: WriterHandle,
    store: Store,
    status: SourceStatus,
    /// Loaded at the first poll; then kept in step with the database.
    cursors: Option<HashMap<String, Cursor>>,
    /// This process, as the holder of poll leases.
    owner: String,
    /// Whether this replica held the source's lease at its last round.
    leading: bool,
}

/// Names this process among replicas sharing a database: host, pid and a
/// random part (a restarted process is a new owner).
fn replica_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}

impl Poller {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::info!(source = %self.label, every = ?self.interval, "poller started");
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                () = self.poll() => {}
            }
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
        if self.leading
            && let Err(e) =
                store::cursors::release_source(self.store.writer(), &self.label, &self.owner).await
        {
            tracing::warn!(source = %self.label, error = %e, "poll lease not released; another replica takes over when it runs out");
        }
        tracing::debug!(source = %self.label, "poller stopped");
    }

    /// One poll over every sync of the workspace; the outcome goes to the
    /// status and the log, never up.
    async fn poll(&mut self) {
        let started = Timestamp::now();
        // Replicas on one database poll each source from one of them: the
        // lease holder, renewed every round; the others stand by and take
        // over once it runs out (three rounds).
        let lease = (self.interval.as_millis() as i64)
            .saturating_mul(3)
            .max(30_000);
        match store::cursors::claim_source(
            self.store.writer(),
            &self.label,
            &self.owner,
            started.0,
            started.0.saturating_add(lease),
        )
        .await
        {
            Ok(true) => {
                if !self.leading {
                    // Another replica may have moved the cursors on.
                    self.cursors = None;
                    self.leading = true;
                }
            }
            Ok(false) => {
                self.leading = false;
                self.status.update(&self.label, |h| h.state = "standby");
                tracing::debug!(source = %self.label, "another replica polls this source");
                return;
            }
            Err(e) => {
                let e = format!("taking the poll lease: {e}");
                tracing::warn!(source = %self.label, error = %e, "poll skipped");
                self.status.api_failed(&self.label, &e, Timestamp::now());
                return;
            }
        }
        self.status
            .update(&self.label, |h| h.last_poll_at = Some(started));
        let syncs = match self.list().await {
            Ok(s) => s,
            Err(e) => {
                let e = format!("{e:#}");
                tracing::warn!(source = %self.label, error = %e, "poll failed");
                self.status.api_failed(&self.label, &e, Timestamp::now());
                return;
            }
        };
        let mut ingested = 0u64;
        let mut failures = Vec::new();
        for sync in &syncs {
            match self.poll_sync(sync).await {
                Ok(n) => ingested += n as u64,
                Err(e) => {
                    let e = format!("sync {sync}: {e:#}");
                    tracing::warn!(source = %self.label, error = %e, "sync not polled");
                    failures.push(e);
                }
            }
        }
        let now = Timestamp::now();
        let total = syncs.len();
        self.status.update(&self.label, |h| {
            h.syncs = Some(total);
            h.runs_ingested += ingested;
            if failures.is_empty() {
                h.state = "ok";
                h.last_success_at = Some(now);
                h.consecutive_failures = 0;
            } else {
                h.state = if failures.len() < total {
                    "degraded"
                } else {
                    "error"
                };
                let more = match failures.len() {
                    1 => String::new(),
                    n => format!(" (and {} more failing syncs)", n - 1),
                };
                h.last_error = Some(format!("{}{more}", failures[0]));
                h.last_error_at = Some(now);
                h.consecutive_failures = h.consecutive_failures.saturating_add(1);
            }
        });
        tracing::debug!(source = %self.label, syncs = total, ingested, "poll done");
    }

    async fn list(&mut self) -> anyhow::Result<Vec<String>> {
        if self.cursors.is_none() {
            let stored = store::cursors::load(self.store.reader(), &self.label)
                .await
                .context("reading poll cursors")?;
            let mut cursors = HashMap::new();
            for (sync, text) in stored {
                match serde_json::from_str::<Cursor>(&text) {
                    Ok(c) => {
                        cursors.insert(sync, c);
                    }
                    Err(e) => {
                        tracing::warn!(source = %self.label, %sync, error = %e, "unreadable poll cursor: the sync starts over with its backfill");
                    }
                }
            }
            self.cursors = Some(cursors);
        }
        Ok(self.api.list_syncs().await?)
    }

    /// Ingests the new finished runs of one sync, then stores its cursor.
    async fn poll_sync(&mut self, sync: &str) -> anyhow::Result<usize> {
        let now = Timestamp::now();
        let cursors = self.cursors.get_or_insert_with(HashMap::new);
        let current = cursors.get(sync).cloned();
        let from = cursor::from(current.as_ref(), now, self.backfill);
        let listed = self.api.runs_since(sync, from).await?;
        let (take, next) = cursor::step(current.as_ref(), listed, now, self.backfill);
        let mut runs = Vec::with_capacity(take.len());
        for run in take {
            runs.push(self.api.complete(run).await);
        }
        let mut accepted = 0;
        for chunk in runs.chunks(INGEST_CHUNK) {
            let ack = self
                .writer
                .ingest(chunk.to_vec())
                .await
                .context("storing polled runs")?;
            accepted += ack.accepted;
        }
        if current.as_ref() != Some(&next) {
            let text = serde_json::to_string(&next).context("encoding the cursor")?;
            store::cursors::save(self.store.writer(), &self.label, sync, &text, now.0)
                .await
                .context("storing the poll cursor")?;
            self.cursors
                .get_or_insert_with(HashMap::new)
                .insert(sync.to_owned(), next);
        }
        Ok(accepted)
    }
}
