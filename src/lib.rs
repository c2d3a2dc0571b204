//! syncwarden: an alerting sidecar for data sync pipelines.

pub mod model;

pub mod ingest;

pub mod evaluate;

pub mod config;
