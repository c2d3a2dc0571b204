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
pub mod rollups;
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
    /// A transient failure without its original error: one failed group
    /// commit is answered to each of its requests, and `sqlx::Error` is not
    /// `Clone`.
    #[error("{0}")]
    Unavailable(Unavailable),
}

/// Why the store cannot take a write right now; each is worth a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Another connection (another process) holds the write lock past the
    /// busy timeout.
    Busy,
    /// The database volume has no space left (SQLITE_FULL, ENOSPC).
    Full,
    /// Any other I/O failure of the database files.
    Io,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unavailable::Busy => "the database is locked by another connection",
            Unavailable::Full => "the database volume is full",
            Unavailable::Io => "the database files cannot be read or written",
        })
    }
}

/// ENOSPC on Linux and the BSDs.
const ENOSPC: i32 = 28;

impl StoreError {
    /// Busy, locked, out of space or failing I/O: worth retrying later,
    /// reported as 503.
    pub fn is_transient(&self) -> bool {
        self.unavailable().is_some()
    }

    /// Which transient failure this is, if it is one.
    pub fn unavailable(&self) -> Option<Unavailable> {
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => {
                let code = e.code().unwrap_or_default();
                // SQLITE_BUSY 5, SQLITE_LOCKED 6, SQLITE_IOERR 10, SQLITE_FULL 13
                // (extended codes keep the primary code in the low byte).
                match code.parse::<i32>().map(|c| c & 0xff).unwrap_or(-1) {
                    5 | 6 => Some(Unavailable::Busy),
                    13 => Some(Unavailable::Full),
                    10 => Some(Unavailable::Io),
                    _ => None,
                }
            }
            StoreError::Db(sqlx::Error::PoolTimedOut) => Some(Unavailable::Busy),
            StoreError::Db(sqlx::Error::Io(e)) if e.raw_os_error() == Some(ENOSPC) => {
                Some(Unavailable::Full)
            }
            StoreError::Db(sqlx::Error::Io(_)) => Some(Unavailable::Io),
            StoreError::Unavailable(u) => Some(*u),
            _ => None,
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

/// How long a statement waits for a lock held by another connection.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A write transaction (`BEGIN IMMEDIATE` on the writer connection).
pub type WriteTx = Transaction<'static, Sqlite>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./src/store/migrations");

impl Store {
    /// Opens (creating if missing) and migrates the database at `database`:
    /// a path, or a `sqlite:` URL.
    pub async fn open(database: &str) -> Result<Store> {
        Store::open_with(database, DEFAULT_BUSY_TIMEOUT).await
    }

    /// [`Store::open`] with the time a statement waits for another
    /// connection's lock before failing with SQLITE_BUSY (answered as 503).
    pub async fn open_with(database: &str, busy_timeout: Duration) -> Result<Store> {
        let url = if database.starts_with("sqlite:") {
            database.to_string()
        } else {
            format!("sqlite://{database}")
        };
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(busy_timeout)
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
        // Databases from before the UI's summaries get them once.
        let mut tx = write.begin_with("BEGIN IMMEDIATE").await?;
        rollups::backfill_summaries(&mut tx).await?;
        tx.commit().await?;
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
    ///
    /// SQLite rolls a transaction back by itself on some errors (SQLITE_FULL,
    /// some I/O errors); sqlx's own ROLLBACK on drop then finds no
    /// transaction, fails, and leaves the connection counting one open, so
    /// every later `BEGIN` is refused. Such a connection is closed here (the
    /// pool opens a fresh one) instead of wedging the writer until a restart.
    pub async fn begin(&self) -> Result<WriteTx> {
        match self.write.begin_with("BEGIN IMMEDIATE").await {
            Err(sqlx::Error::InvalidSavePointStatement) => {
                tracing::warn!(
                    "writer connection still counted a transaction SQLite had rolled back; reopening it"
                );
                let stale = self.write.acquire().await?;
                if let Err(e) = stale.close().await {
                    tracing::debug!(error = %e, "closing the stale writer connection");
                }
                Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
            }
            other => Ok(other?),
        }
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
