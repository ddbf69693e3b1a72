//! The audit store: a SQLite file (through sqlx, WAL) that records every run, every target of a
//! run with its before/desired/observed values and outcome, every HTTP attempt, and the run
//! lock. It never receives a credential or a token.
//!
//! Writes on the hot path of `apply` (`mark_sending`, `record_outcome`,
//! `record_request(s)`) go through a group-commit writer (see `writer`); everything else uses
//! the pool directly. A store opened with [`AuditStore::open_read_only`] has no writer and
//! opens the file read-only, for review.

// A library prints nothing: it returns typed errors and values; only the binary prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod decode;
mod error;
mod ids;
mod inputs;
mod lock;
mod process;
mod prune;
mod records;
mod requests;
mod runs;
mod status;
mod targets;
mod time;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions as _, SqlitePool};

pub use error::AuditError;
pub use ids::{RunId, TargetId};
pub use inputs::{InputRecord, RecordedInput};
pub use lock::{LockLease, RECONCILE_LOCK};
pub use prune::{PrunableRun, PruneSelection};
pub use records::{
    NewRun, NewTarget, ObservedValues, Outcome, RequestRow, RequestStats, RunProcess, RunRecord,
    RunSummary, TargetFilter, TargetOrder, TargetRecord,
};
pub use status::{RunStatus, StatusClass, StatusCounts, TargetStatus};
pub use targets::Resolution;
pub use time::UnixMillis;
// The rest of the store's vocabulary, which no command names yet (the store resolves `latest`
// itself and returns these types from its own methods).
#[allow(unused_imports)]
pub use {
    lock::LockHolder,
    records::DesiredValues,
    runs::{LATEST, REMOTE_RUN_QUIET_LIMIT, RUN_HEARTBEAT},
    status::UnknownStatus,
};

use writer::GroupWriter;

/// How long a connection waits for another writer (another attrsync process, or `audit`
/// readers checkpointing) before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One writer task plus a few readers; SQLite serialises writers anyway.
const MAX_CONNECTIONS: u32 = 4;

/// The migrations of `migrations/` at the workspace root, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Statements slower than this are logged at debug level only: a store locked by another
/// writer makes statements wait up to `BUSY_TIMEOUT`, which is expected, not worth a warning.
const SLOW_STATEMENT: Duration = Duration::from_secs(1);

/// Options common to both ways of opening a store.
fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        .log_slow_statements(log::LevelFilter::Debug, SLOW_STATEMENT)
}

/// Options for a writable connection. Durability: WAL with synchronous=FULL fsyncs the WAL at
/// every commit. NORMAL would survive a process crash but could lose the last commits on power
/// loss, and a lost `sending` record would hide a PATCH that reached Genesys. Group commit makes
/// the per-commit fsync cheap enough to afford FULL.
///
/// A long-running writer (`tag --follow`, `reconcile --every`) must not grow with its store:
/// each connection's page cache is capped at 1 MiB (SQLite's default is 2 MiB per connection,
/// filled as the store grows).
fn write_options(path: &Path) -> SqliteConnectOptions {
    connect_options(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .pragma("cache_size", "-1024")
}

async fn migrate(pool: &SqlitePool, path: &Path) -> Result<(), AuditError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|source| AuditError::Migrate {
            path: path.to_path_buf(),
            source,
        })
}

/// Versions recorded as successfully applied in the store (none when it has no
/// `_sqlx_migrations` table, i.e. was never migrated). Reads only.
async fn applied_migrations(pool: &SqlitePool) -> Result<Vec<i64>, sqlx::Error> {
    let has_table: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master \
         WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await?;
    if !has_table {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
        .fetch_all(pool)
        .await
}

/// The embedded migrations whose version is not in `applied`, in order.
fn missing_migrations(applied: &[i64]) -> Vec<i64> {
    MIGRATOR
        .iter()
        .map(|migration| migration.version)
        .filter(|version| !applied.contains(version))
        .collect()
}

async fn connect(path: &Path, options: SqliteConnectOptions) -> Result<SqlitePool, AuditError> {
    SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect_with(options)
        .await
        .map_err(|source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// Handle to an open audit store. Cheap to clone; all clones share one pool and one writer.
#[derive(Debug, Clone)]
pub struct AuditStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: SqlitePool,
    path: Arc<Path>,
    /// `None` when opened read-only.
    writer: Option<GroupWriter>,
}

impl AuditStore {
    /// Opens (creating it and its directory if missing) and migrates the store at `path`.
    /// Must be called inside a Tokio runtime: it starts the group-commit writer task.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| AuditError::CreateDir {
                    path: path.to_path_buf(),
                    source,
                })?;
        }

        let options = write_options(&path).create_if_missing(true);
        let pool = connect(&path, options).await?;
        migrate(&pool, &path).await?;

        let writer = GroupWriter::spawn(pool.clone(), Arc::clone(&path));
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                path,
                writer: Some(writer),
            }),
        })
    }

    /// Opens the existing store at `path` for reading only: the file is opened read-only
    /// (SQLite `SQLITE_OPEN_READONLY`), no migration runs and no writer task starts, so nothing
    /// is ever written through the handle; every write method fails. A missing file is an
    /// error (nothing is created), and so is a store whose schema lacks a migration this build
    /// embeds ([`AuditError::OutdatedSchema`]): [`AuditStore::upgrade`] migrates it.
    pub async fn open_read_only(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        let options = connect_options(&path).read_only(true);
        let pool = connect(&path, options).await?;
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                path,
                writer: None,
            }),
        };
        if let Err(error) = store.check_schema_current().await {
            store.inner.pool.close().await;
            return Err(error);
        }
        Ok(store)
    }

    /// Opens the existing store at `path` for writing, without creating it and without
    /// migrating it: a missing file is an error, and so is a store whose schema lacks a
    /// migration this build embeds ([`AuditError::OutdatedSchema`]; [`AuditStore::upgrade`]
    /// migrates it). For maintenance that must not bring a store into being (`audit prune`).
    pub async fn open_existing(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        let pool = connect(&path, write_options(&path)).await?;
        let writer = GroupWriter::spawn(pool.clone(), Arc::clone(&path));
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                path,
                writer: Some(writer),
            }),
        };
        if let Err(error) = store.check_schema_current().await {
            let _ = store.close().await;
            return Err(error);
        }
        Ok(store)
    }

    /// Fails with [`AuditError::OutdatedSchema`] when a migration embedded in this build has
    /// not been applied to the store (the store was written by an older version).
    async fn check_schema_current(&self) -> Result<(), AuditError> {
        let applied = applied_migrations(self.pool())
            .await
            .map_err(|error| self.db_error(error))?;
        let missing = missing_migrations(&applied);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(AuditError::OutdatedSchema {
                path: self.path_buf(),
                missing,
            })
        }
    }

    /// Applies to the existing store at `path` the migrations this build embeds and it lacks,
    /// and returns their versions (empty when it was current). Creates nothing and starts no
    /// writer: this is how a store written by an older version becomes readable with
    /// [`AuditStore::open_read_only`] again.
    pub async fn upgrade(path: impl AsRef<Path>) -> Result<Vec<i64>, AuditError> {
        let path = path.as_ref();
        let pool = connect(path, write_options(path)).await?;
        let result = async {
            let applied =
                applied_migrations(&pool)
                    .await
                    .map_err(|source| AuditError::Database {
                        path: path.to_path_buf(),
                        source,
                    })?;
            migrate(&pool, path).await?;
            Ok(missing_migrations(&applied))
        }
        .await;
        pool.close().await;
        result
    }

    /// True when the store was opened with [`AuditStore::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.inner.writer.is_none()
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Transactions committed by the group-commit writer since `open` (diagnostics, tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn group_commits(&self) -> u64 {
        self.inner.writer.as_ref().map_or(0, GroupWriter::commits)
    }

    /// Waits until every write queued before this call (including fire-and-forget request
    /// rows) has committed.
    pub async fn flush(&self) -> Result<(), AuditError> {
        match &self.inner.writer {
            Some(writer) => writer.flush().await,
            None => Ok(()), // Read-only: nothing is ever queued.
        }
    }

    /// Flushes pending writes and closes the pool (checkpointing the WAL). Further calls on any
    /// clone fail.
    pub async fn close(&self) -> Result<(), AuditError> {
        self.flush().await?;
        self.inner.pool.close().await;
        Ok(())
    }

    fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    /// The group-commit writer; a read-only store has none.
    fn writer(&self) -> Result<&GroupWriter, AuditError> {
        self.inner
            .writer
            .as_ref()
            .ok_or_else(|| AuditError::ReadOnly {
                path: self.path_buf(),
            })
    }

    fn path_buf(&self) -> PathBuf {
        self.inner.path.to_path_buf()
    }

    fn db_error(&self, source: sqlx::Error) -> AuditError {
        AuditError::Database {
            path: self.path_buf(),
            source,
        }
    }
}
