//! The queries of `sql/`, compiled for PostgreSQL. The files are shared with the
//! other backend: each reads its database type from `Db` here.
#![allow(clippy::duplicate_mod)]

pub(crate) type Db = sqlx::Postgres;
pub(crate) type Pool = sqlx::Pool<Db>;
pub(crate) type Tx = sqlx::Transaction<'static, Db>;
/// Where the two dialects differ, a query picks its text by this.
#[allow(dead_code)]
pub(crate) const PG: bool = true;

#[path = "sql/alerts.rs"]
pub(crate) mod alerts;
#[path = "sql/cursors.rs"]
pub(crate) mod cursors;
#[path = "sql/deliveries.rs"]
pub(crate) mod deliveries;
#[path = "sql/epoch.rs"]
pub(crate) mod epoch;
#[path = "sql/notices.rs"]
pub(crate) mod notices;
#[path = "sql/rollups.rs"]
pub(crate) mod rollups;
#[path = "sql/runs.rs"]
pub(crate) mod runs;
#[path = "sql/silences.rs"]
pub(crate) mod silences;
#[path = "sql/syncs.rs"]
pub(crate) mod syncs;
