//! The audit store: a SQLite file (through sqlx, WAL) that records every run, every target of a
//! run with its before/desired/observed values and outcome, every HTTP attempt, and the run
//! lock. It never receives a credential or a token.
//!
//! Writes on the hot path of `apply` (`resolve_target`, `mark_sending`, `record_outcome`,
//! `record_request(s)`) go through a group-commit writer (see `writer`); everything else uses
//! the pool directly.

mod decode;
mod error;
mod ids;
mod lock;
mod process;
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

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use error::AuditError;
pub use ids::{RunId, TargetId};
pub use lock::{LockLease, RECONCILE_LOCK};
pub use records::{
    NewRun, NewTarget, ObservedValues, Outcome, RequestRow, RequestStats, RunRecord, RunSummary,
    TargetFilter, TargetOrder, TargetRecord,
};
pub use status::{RunStatus, StatusCounts, TargetStatus};
pub use time::UnixMillis;
// The rest of the store's vocabulary, which no command names yet (the store resolves `latest`
// itself and returns these types from its own methods).
#[allow(unused_imports)]
pub use {
    lock::LockHolder,
    records::DesiredValues,
    runs::{LATEST, REMOTE_RUN_QUIET_LIMIT},
    status::UnknownStatus,
};

use writer::GroupWriter;

/// How long a connection waits for another writer (another attrsync process, or `audit`
/// readers checkpointing) before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One writer task plus a few readers; SQLite serialises writers anyway.
const MAX_CONNECTIONS: u32 = 4;

/// Handle to an open audit store. Cheap to clone; all clones share one pool and one writer.
#[derive(Debug, Clone)]
pub struct AuditStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: SqlitePool,
    path: Arc<Path>,
    writer: GroupWriter,
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

        // Durability: WAL with synchronous=FULL fsyncs the WAL at every commit. NORMAL would
        // survive a process crash but could lose the last commits on power loss, and a lost
        // `sending` record would hide a PATCH that reached Genesys. Group commit makes the
        // per-commit fsync cheap enough to afford FULL.
        let options = SqliteConnectOptions::new()
            .filename(&*path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| AuditError::Open {
                path: path.to_path_buf(),
                source,
            })?;

        sqlx::migrate!("../../migrations")
            .run(&pool)
            .await
            .map_err(|source| AuditError::Migrate {
                path: path.to_path_buf(),
                source,
            })?;

        let writer = GroupWriter::spawn(pool.clone(), Arc::clone(&path));
        Ok(Self {
            inner: Arc::new(Inner { pool, path, writer }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Transactions committed by the group-commit writer since `open` (diagnostics, tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn group_commits(&self) -> u64 {
        self.inner.writer.commits()
    }

    /// Waits until every write queued before this call (including fire-and-forget request
    /// rows) has committed.
    pub async fn flush(&self) -> Result<(), AuditError> {
        self.inner.writer.flush().await
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

    fn writer(&self) -> &GroupWriter {
        &self.inner.writer
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
