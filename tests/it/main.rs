//! The integration test binary: one `spawn_app()` that starts the real
//! server on a random port with a temporary database, then one module per
//! concern. Tests talk HTTP to it, as users do.

mod scenarios;

mod helpers;

mod ingest_api;

mod query_api;

mod serve_alerts;

mod serve_vs_backtest;

mod smtp;

mod notify_email;

mod crash;

mod replicas;

mod webhooks;

mod pollers;

mod exec_report;

mod openapi;

mod faults;
mod junk;

mod notify_faults;

mod secrets;

mod tidy_sql;
mod ui;

mod ui_browser;
