//! syncwarden: an alerting sidecar for data sync pipelines.
//!
//! Run results flow through one pipeline, and the modules are declared in
//! the order a run meets them:
//!
//! 1. [`ingest`] turns untrusted bytes (the canonical run JSON, vendor
//!    payloads) into validated [`model::Run`]s and error classes.
//! 2. [`store`] keeps runs, record errors, alert state and the notice outbox
//!    in SQLite; all SQL lives there.
//! 3. [`evaluate`] is the pure alert engine: runs, timers and holds in,
//!    notices out, with time passed in explicitly. It does no I/O.
//! 4. [`notify`] delivers the outbox: email, Slack, webhooks, rate-limited.
//! 5. [`telemetry`] wires `tracing` and OpenTelemetry.
//!
//! Around them: [`config`] (one typed configuration), [`api`] (the HTTP
//! surface), [`ui`] (the status pages, server-rendered HTML), [`app`] (builds and runs the sidecar, owns every task) and
//! [`cli`] (the command line, with [`client`] for `report` and `exec`).

pub mod model;

pub mod ingest;

pub mod store;

pub mod evaluate;

pub mod notify;

pub mod telemetry;

pub mod config;

pub mod api;

pub mod ui;

pub mod app;

pub mod cli;

pub mod client;
