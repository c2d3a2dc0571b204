//! The store: every SQL statement of syncwarden lives under this folder,
//! one function per query, on one of two backends.
//!
//! * **SQLite** (the embedded default): a single-connection writer (SQLite
//!   has one writer anyway, and one connection makes `BEGIN IMMEDIATE` never
//!   wait on itself) and a reader pool that WAL lets run beside it.
//! * **PostgreSQL** (`postgres://…`): one pool, shared by several replicas.
//!   A write transaction takes one advisory lock, so evaluate-and-commit is
//!   serialized across replicas (a hold spans two syncs, so a per-sync lock
//!   would not do), and counts a generation so a replica notices that
//!   another one changed the alert state since its own last commit.
//!
//! The queries are written once, in `sql/`, and compiled once per backend
//! (`sqlite::…`, `pg::…`) against a `Db` type alias: no runtime `Any`
//! driver, every bind and decode typed for its backend. The modules named
//! here (`alerts`, `runs`, …) hold the row types and dispatch each call to
//! the backend of the pool or transaction given. Migrations are embedded in
//! the binary, one folder per backend with the same intent, and immutable
//! once released.

pub mod alerts;
pub mod cursors;
pub mod deliveries;
pub mod notices;
pub mod rollups;
pub mod runs;
pub mod silences;
pub mod syncs;

/// The same queries compiled for PostgreSQL.
pub(crate) mod pg;
/// The queries compiled for SQLite.
pub(crate) mod sqlite;

/// Calls `module::function(pool, args…)` on the backend of `pool`.
macro_rules! on_pool {
    ($pool:expr, $m:ident :: $f:ident ( $($a:expr),* $(,)? )) => {
        match $pool {
            $crate::store::Pool::Sqlite(p) => $crate::store::sqlite::$m::$f(p $(, $a)*).await,
            $crate::store::Pool::Pg(p) => $crate::store::pg::$m::$f(p $(, $a)*).await,
        }
    };
}
/// Calls `module::function(tx, args…)` on the backend of the transaction.
macro_rules! on_tx {
    ($tx:expr, $m:ident :: $f:ident ( $($a:expr),* $(,)? )) => {
        match $tx {
            $crate::store::WriteTx::Sqlite(t) => $crate::store::sqlite::$m::$f(t $(, $a)*).await,
            $crate::store::WriteTx::Pg(t) => $crate::store::pg::$m::$f(t $(, $a)*).await,
        }
    };
}
pub(crate) use {on_pool, on_tx};

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};
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

    /// A value the database cannot hold as text: PostgreSQL refuses NUL
    /// characters (SQLSTATE 22021) where SQLite stores them. Ingest refuses
    /// control characters before the store, so this is a lookup by such an
    /// id: the client's mistake (400), not the server's.
    pub fn is_unstorable_text(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(e))
            if e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some()
                && matches!(e.code().as_deref(), Some("22021" | "22P05")))
    }

    /// Which transient failure this is, if it is one.
    pub fn unavailable(&self) -> Option<Unavailable> {
        match self {
            StoreError::Db(sqlx::Error::Database(e))
                if e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some() =>
            {
                pg_unavailable(e.code().as_deref().unwrap_or_default())
            }
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
            StoreError::Db(sqlx::Error::PoolClosed) => Some(Unavailable::Io),
            StoreError::Db(sqlx::Error::Tls(_)) => Some(Unavailable::Io),
            StoreError::Db(sqlx::Error::Io(e)) if e.raw_os_error() == Some(ENOSPC) => {
                Some(Unavailable::Full)
            }
            StoreError::Db(sqlx::Error::Io(_)) => Some(Unavailable::Io),
            StoreError::Unavailable(u) => Some(*u),
            _ => None,
        }
    }
}

/// PostgreSQL SQLSTATEs worth a retry: lock and serialization conflicts
/// (class 40, `55P03`), a full disk (`53100`) or other exhausted resources
/// (class 53), and a server going away (classes 08 and 57P, `58030`).
fn pg_unavailable(code: &str) -> Option<Unavailable> {
    match code {
        "53100" => Some(Unavailable::Full),
        "55P03" | "57014" => Some(Unavailable::Busy),
        "58030" => Some(Unavailable::Io),
        c if c.starts_with("40") || c.starts_with("53") => Some(Unavailable::Busy),
        c if c.starts_with("08") || c.starts_with("57P") => Some(Unavailable::Io),
        _ => None,
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

/// A connection pool of either backend. Store functions take it and run
/// their query on its backend.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

impl Pool {
    /// The SQLite pool, for SQLite-only maintenance and tests.
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Pool::Sqlite(p) => Some(p),
            Pool::Pg(_) => None,
        }
    }

    async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Pg(p) => p.close().await,
        }
    }
}

/// A write transaction: `BEGIN IMMEDIATE` on the SQLite writer connection,
/// or `BEGIN` plus the cluster-wide advisory lock on PostgreSQL.
pub enum WriteTx {
    Sqlite(Transaction<'static, Sqlite>),
    Pg(Transaction<'static, Postgres>),
}

impl WriteTx {
    pub async fn commit(self) -> Result<()> {
        match self {
            WriteTx::Sqlite(t) => t.commit().await?,
            WriteTx::Pg(t) => t.commit().await?,
        }
        Ok(())
    }

    /// The generation of the shared alert state this transaction starts
    /// from, and the last generation that was a reset: bumped by every
    /// commit that changed it, so a replica whose own last commit is not the
    /// latest knows to reload. `None` on SQLite, where this process is the
    /// only writer.
    pub async fn generation(&mut self) -> Result<Option<(i64, i64)>> {
        match self {
            WriteTx::Sqlite(_) => Ok(None),
            WriteTx::Pg(t) => Ok(Some(pg::epoch::current(&mut **t).await?)),
        }
    }

    /// Records that this transaction changes the shared alert state (a
    /// `reset` when it removed alerts or changed silences or rules, which
    /// other replicas then reload whole); returns the generation it will
    /// have once committed.
    pub async fn bump_generation(&mut self, reset: bool) -> Result<Option<i64>> {
        match self {
            WriteTx::Sqlite(_) => Ok(None),
            WriteTx::Pg(t) => Ok(Some(pg::epoch::bump(&mut **t, reset).await?)),
        }
    }
}

/// Handle to the database: cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    write: Pool,
    read: Pool,
    checkpointer: Option<SqlitePool>,
}

/// How long a statement waits for a lock held by another connection.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The one advisory lock every replica's write transaction takes
/// (`pg_advisory_xact_lock`, released at commit or rollback): "SWRDN\0\0\1".
pub const WRITER_LOCK: i64 = 0x5357_5244_4e00_0001;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./src/store/migrations/sqlite");
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./src/store/migrations/postgres");

/// True for a `postgres://` or `postgresql://` URL.
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// `database` fit for logs: a URL's password replaced by `***`.
pub fn redacted(database: &str) -> String {
    match reqwest::Url::parse(database) {
        Ok(mut url) if url.password().is_some() => {
            // Only a URL that cannot have a password refuses this.
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => database.to_string(),
    }
}

impl Store {
    /// Opens (creating if missing) and migrates the database at `database`:
    /// a path, a `sqlite:` URL or a `postgres://` URL.
    pub async fn open(database: &str) -> Result<Store> {
        Store::open_with(database, DEFAULT_BUSY_TIMEOUT).await
    }

    /// [`Store::open`] with the time a statement waits for another
    /// connection's lock before failing as busy (answered as 503).
    pub async fn open_with(database: &str, busy_timeout: Duration) -> Result<Store> {
        if is_postgres_url(database) {
            Store::open_pg(database, busy_timeout).await
        } else {
            Store::open_sqlite(database, busy_timeout).await
        }
    }

    async fn open_sqlite(database: &str, busy_timeout: Duration) -> Result<Store> {
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
        SQLITE_MIGRATOR.run(&write).await?;
        // One process owns a SQLite file: a delivery it was sending when it
        // stopped is retried now, not when its claim would have run out, and
        // its pollers poll at once.
        sqlite::deliveries::release_claims(&write).await?;
        sqlite::cursors::release_all(&write).await?;
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
        let store = Store {
            write: Pool::Sqlite(write),
            read: Pool::Sqlite(read),
            checkpointer: Some(checkpointer),
        };
        store.backfill().await?;
        Ok(store)
    }

    /// One pool for reads and writes: PostgreSQL runs both concurrently, and
    /// replicas share the server. `lock_timeout` bounds the wait for the
    /// writer lock (then 503, like SQLite's busy timeout), and a
    /// transaction left idle by a stuck replica is ended by the server so
    /// its lock cannot stall the others.
    async fn open_pg(database: &str, busy_timeout: Duration) -> Result<Store> {
        let lock_ms = busy_timeout.as_millis().max(1).to_string();
        let opts = PgConnectOptions::from_str(database)?
            .application_name("syncwarden")
            .statement_cache_capacity(200)
            .options([
                ("lock_timeout", lock_ms.as_str()),
                ("idle_in_transaction_session_timeout", "60000"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        // sqlx holds an advisory lock while it migrates, so replicas that
        // start together migrate once.
        PG_MIGRATOR.run(&pool).await?;
        let store = Store {
            write: Pool::Pg(pool.clone()),
            read: Pool::Pg(pool),
            checkpointer: None,
        };
        store.backfill().await?;
        Ok(store)
    }

    /// Databases from before the UI's summaries get them once.
    async fn backfill(&self) -> Result<()> {
        let mut tx = self.begin().await?;
        rollups::backfill_summaries(&mut tx).await?;
        tx.commit().await
    }

    /// True when several replicas may share this database (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self.write, Pool::Pg(_))
    }

    /// Starts a write transaction.
    ///
    /// SQLite: `BEGIN IMMEDIATE` takes the write lock up front, so a read
    /// inside the transaction never has to upgrade (and fail with
    /// SQLITE_BUSY) halfway through. SQLite rolls a transaction back by
    /// itself on some errors (SQLITE_FULL, some I/O errors); sqlx's own
    /// ROLLBACK on drop then finds no transaction, fails, and leaves the
    /// connection counting one open, so every later `BEGIN` is refused. Such
    /// a connection is closed here (the pool opens a fresh one) instead of
    /// wedging the writer until a restart.
    ///
    /// PostgreSQL: `BEGIN`, then the writer lock, held until the end of the
    /// transaction: one replica evaluates and commits at a time.
    pub async fn begin(&self) -> Result<WriteTx> {
        match &self.write {
            Pool::Sqlite(write) => match write.begin_with("BEGIN IMMEDIATE").await {
                Err(sqlx::Error::InvalidSavePointStatement) => {
                    tracing::warn!(
                        "writer connection still counted a transaction SQLite had rolled back; reopening it"
                    );
                    let stale = write.acquire().await?;
                    if let Err(e) = stale.close().await {
                        tracing::debug!(error = %e, "closing the stale writer connection");
                    }
                    Ok(WriteTx::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?))
                }
                other => Ok(WriteTx::Sqlite(other?)),
            },
            Pool::Pg(pool) => {
                let mut tx = pool.begin().await?;
                pg::epoch::lock(&mut tx, WRITER_LOCK).await?;
                Ok(WriteTx::Pg(tx))
            }
        }
    }

    /// The committed generation of the shared alert state, read without the
    /// writer lock (a replica's cheap "did anyone else commit?" check).
    /// `None` on SQLite.
    pub async fn generation(&self) -> Result<Option<i64>> {
        match &self.write {
            Pool::Sqlite(_) => Ok(None),
            Pool::Pg(p) => Ok(Some(pg::epoch::current(p).await?.0)),
        }
    }

    pub fn reader(&self) -> &Pool {
        &self.read
    }

    pub fn writer(&self) -> &Pool {
        &self.write
    }

    /// A cheap liveness probe of the reader pool.
    pub async fn ping(&self) -> Result<()> {
        match &self.read {
            Pool::Sqlite(p) => {
                sqlx::query("SELECT 1").execute(p).await?;
            }
            Pool::Pg(p) => {
                sqlx::query("SELECT 1").execute(p).await?;
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.read.close().await;
        if let Some(c) = &self.checkpointer {
            c.close().await;
        }
        self.write.close().await;
    }
}

/// Stores for tests: SQLite always, and PostgreSQL too when
/// `SYNCWARDEN_TEST_PG` names a server (a fresh database each call).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub(crate) async fn stores(dir: &std::path::Path) -> Vec<Store> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let mut out = vec![
            Store::open(&dir.join(format!("t{n}.db")).display().to_string())
                .await
                .expect("sqlite store"),
        ];
        if let Ok(admin) = std::env::var("SYNCWARDEN_TEST_PG") {
            let name = format!("sw_unit_{}_{n}", std::process::id());
            let pool = PgPool::connect(&admin).await.expect("admin connection");
            for sql in [
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                format!("CREATE DATABASE {name}"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&pool)
                    .await
                    .expect("create database");
            }
            pool.close().await;
            let mut url = reqwest::Url::parse(&admin).expect("SYNCWARDEN_TEST_PG is a URL");
            url.set_path(&name);
            out.push(Store::open(url.as_str()).await.expect("postgres store"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_is_logged_without_its_password() {
        assert_eq!(
            redacted("postgres://sw:hunter2@db.internal:5432/syncwarden"),
            "postgres://sw:***@db.internal:5432/syncwarden"
        );
        assert_eq!(redacted("postgres://db/sw"), "postgres://db/sw");
        assert_eq!(redacted("syncwarden.db"), "syncwarden.db");
        assert!(is_postgres_url("postgresql://h/d") && !is_postgres_url("sqlite:x.db"));
    }

    #[test]
    fn postgres_lock_and_resource_errors_are_worth_a_retry() {
        assert_eq!(pg_unavailable("55P03"), Some(Unavailable::Busy));
        assert_eq!(pg_unavailable("40001"), Some(Unavailable::Busy));
        assert_eq!(pg_unavailable("53100"), Some(Unavailable::Full));
        assert_eq!(pg_unavailable("57P01"), Some(Unavailable::Io));
        assert_eq!(pg_unavailable("23505"), None, "a unique violation is a bug");
    }
}
