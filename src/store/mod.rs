//! The SQLite store: every SQL statement of syncwarden lives under this
//! folder, one function per query.
//!
//! Two pools: a single-connection writer (SQLite has one writer anyway, and
//! one connection makes `BEGIN IMMEDIATE` never wait on itself) and a reader
//! pool that WAL lets run beside it. Migrations are embedded in the binary
//! and immutable once released.

pub mod alerts;
pub mod cursors;
pub mod deliveries;
pub mod notices;
pub mod runs;
pub mod silences;
pub mod syncs;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use thiserror::Error;

/// A store failure. Callers answer these as 503 (busy, full disk) or 500.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt stored value in {what}: {message}")]
    Corrupt { what: &'static str, message: String },
}

impl StoreError {
    /// Busy, locked or out of space: worth retrying later, reported as 503.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => {
                let code = e.code().unwrap_or_default();
                // SQLITE_BUSY 5, SQLITE_LOCKED 6, SQLITE_FULL 13, SQLITE_IOERR 10
                // (extended codes keep the primary code in the low byte).
                let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(-1);
                matches!(primary, 5 | 6 | 10 | 13)
            }
            StoreError::Db(sqlx::Error::PoolTimedOut) => true,
            StoreError::Db(sqlx::Error::Io(_)) => true,
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn corrupt(what: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        message: e.to_string(),
    }
}

/// How often the checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Checkpoints the WAL beside the writer. A passive checkpoint neither waits
/// for the writer nor blocks it; a WAL fully copied is restarted from its
/// start by the writer's next transaction, so it stays small. Ends when
/// [`Store::close`] closes the pool.
async fn checkpoint_loop(pool: SqlitePool) {
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
        }
    }
}

/// Handle to the database: cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    write: SqlitePool,
    read: SqlitePool,
    checkpointer: SqlitePool,
}

/// A write transaction (`BEGIN IMMEDIATE` on the writer connection).
pub type WriteTx = Transaction<'static, Sqlite>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./src/store/migrations");

impl Store {
    /// Opens (creating if missing) and migrates the database at `database`:
    /// a path, or a `sqlite:` URL.
    pub async fn open(database: &str) -> Result<Store> {
        let url = if database.starts_with("sqlite:") {
            database.to_string()
        } else {
            format!("sqlite://{database}")
        };
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .statement_cache_capacity(200)
            .optimize_on_close(true, None);
        // The writer never checkpoints: an automatic checkpoint runs inside
        // the COMMIT that crosses 1,000 WAL pages, copying pages and fsyncing
        // the database while every request of that group commit waits.
        // A checkpointer connection of its own does it beside the writer.
        // The writer's statement journals (a multi-row INSERT that may need
        // undoing on a constraint error keeps the pages it changed) stay in
        // memory: on disk they are a temp file written and read per
        // statement, a fifth of the raw insert cost measured here.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(
                opts.clone()
                    .pragma("wal_autocheckpoint", "0")
                    .pragma("temp_store", "memory"),
            )
            .await?;
        MIGRATOR.run(&write).await?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(opts.clone())
            .await?;
        tokio::spawn(checkpoint_loop(checkpointer.clone()));
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Store {
            write,
            read,
            checkpointer,
        })
    }

    /// Starts a write transaction. `BEGIN IMMEDIATE` takes the write lock up
    /// front, so a read inside the transaction never has to upgrade (and
    /// fail with SQLITE_BUSY) halfway through.
    pub async fn begin(&self) -> Result<WriteTx> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub fn reader(&self) -> &SqlitePool {
        &self.read
    }

    pub fn writer(&self) -> &SqlitePool {
        &self.write
    }

    /// A cheap liveness probe of the reader pool.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.checkpointer.close().await;
        self.write.close().await;
    }
}
