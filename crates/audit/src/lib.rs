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
mod ended;
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
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection, SqlitePool};

pub use ended::EndedConversation;
pub use error::AuditError;
pub use ids::{RunId, TargetId};
pub use inputs::{InputRecord, RecordedInput};
pub use lock::{LockLease, RECONCILE_LOCK};
pub use prune::{PrunableRun, PruneSelection};
pub use records::{
    NewRun, NewTarget, ObservedValues, Outcome, RequestRow, RequestStats, RunProcess, RunRecord,
    RunSummary, TargetFilter, TargetOrder, TargetRecord, VerifiedVia,
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

/// [`write_options`] creating the file when it is missing.
fn write_options_creating(path: &Path) -> SqliteConnectOptions {
    write_options(path).create_if_missing(true)
}

/// How long an opener that finds a store with no schema at all waits for it to get one before
/// saying so. Another attrsync creates a store in one transaction (see [`migrate_exclusively`]),
/// so such a store is either being created right now, and is complete in milliseconds, or is
/// not an audit store.
const CREATION_WAIT: Duration = BUSY_TIMEOUT;

/// What a store's `_sqlx_migrations` table records.
#[derive(Debug)]
struct RecordedMigrations {
    /// Versions applied successfully.
    applied: Vec<i64>,
    /// Versions recorded (applied or not) that this build does not embed: a newer attrsync
    /// migrated the store.
    unknown: Vec<i64>,
}

/// What a store's schema says about it. Reads only.
#[derive(Debug)]
enum Schema {
    /// No table at all: a new file, or one whose creation has not committed yet.
    Empty,
    /// Tables, but no `_sqlx_migrations`: not a store attrsync ever migrated.
    Foreign,
    Migrated(RecordedMigrations),
}

async fn read_schema(conn: &mut SqliteConnection) -> Result<Schema, sqlx::Error> {
    let (tables, has_migrations): (i64, bool) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(name = '_sqlx_migrations'), 0) > 0 \
         FROM sqlite_master WHERE type = 'table'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !has_migrations {
        return Ok(if tables == 0 {
            Schema::Empty
        } else {
            Schema::Foreign
        });
    }
    let rows: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    let embedded: Vec<i64> = MIGRATOR.iter().map(|migration| migration.version).collect();
    Ok(Schema::Migrated(RecordedMigrations {
        applied: rows
            .iter()
            .filter(|(_, success)| *success)
            .map(|(version, _)| *version)
            .collect(),
        unknown: rows
            .iter()
            .map(|(version, _)| *version)
            .filter(|version| !embedded.contains(version))
            .collect(),
    }))
}

/// The embedded migrations whose version is not in `applied`, in order.
fn missing_migrations(applied: &[i64]) -> Vec<i64> {
    MIGRATOR
        .iter()
        .map(|migration| migration.version)
        .filter(|version| !applied.contains(version))
        .collect()
}

/// Fails with [`AuditError::NewerSchema`] when a migration this build does not know was
/// applied to the store: a newer attrsync wrote it, and this one must neither read nor write it.
fn refuse_newer(path: &Path, recorded: &RecordedMigrations) -> Result<(), AuditError> {
    if recorded.unknown.is_empty() {
        Ok(())
    } else {
        Err(AuditError::NewerSchema {
            path: path.to_path_buf(),
            unknown: recorded.unknown.clone(),
            version: env!("CARGO_PKG_VERSION"),
        })
    }
}

/// Brings the store up to this build's schema and returns the versions it applied (empty when
/// it was current). Safe under concurrent openers, in this process or others.
///
/// Why `BEGIN EXCLUSIVE` on one connection rather than sqlx's migrator alone or an OS file
/// lock: sqlx's lock is a no-op on SQLite and its migrator reads what is applied before it
/// takes any lock, so two processes opening a new store both ran the first migration ("table
/// runs already exists"). Here the check and the migrations run inside one exclusive
/// transaction: SQLite's own lock on the database file serialises the openers (a second one
/// waits in the busy handler, up to `BUSY_TIMEOUT`), the second one re-reads what is applied
/// once it holds the lock and finds nothing left to do, and the whole creation commits at once,
/// so no reader ever sees half a schema: a store has either no table at all or every migration
/// it records. It needs nothing beside the store (a sidecar lock file would have to be created,
/// could be left behind or deleted by hand, and would not be honoured by a plain `sqlite3`
/// user), and if the process dies mid-way its lock goes with it and SQLite discards the
/// uncommitted transaction, leaving the store as it was. sqlx runs each migration in a
/// savepoint of this transaction.
async fn migrate_exclusively(pool: &SqlitePool, path: &Path) -> Result<Vec<i64>, AuditError> {
    let database = |source| AuditError::Database {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = pool.acquire().await.map_err(database)?;
    let mut tx = conn.begin_with("BEGIN EXCLUSIVE").await.map_err(database)?;
    let result = async {
        let applied = match read_schema(&mut tx).await.map_err(database)? {
            Schema::Migrated(recorded) => {
                refuse_newer(path, &recorded)?;
                recorded.applied
            }
            Schema::Empty | Schema::Foreign => Vec::new(),
        };
        // Run even when nothing is missing: it also checks that no landed migration was edited.
        // `run_direct` is `run` on a connection already in hand: `run(&mut *tx)` makes the
        // future not `Send` (sqlx's "`Acquire` is not general enough", which it names as the
        // reason `run_direct` exists).
        MIGRATOR
            .run_direct(None, &mut *tx, false)
            .await
            .map_err(|source| AuditError::Migrate {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(missing_migrations(&applied))
    }
    .await;
    match result {
        Ok(applied) => {
            tx.commit().await.map_err(database)?;
            Ok(applied)
        }
        Err(error) => {
            tx.rollback().await.map_err(database)?;
            Err(error)
        }
    }
}

/// Connects a pool to the store at `path`. A store that does not exist (`options` not creating
/// it) is [`AuditError::NotFound`].
///
/// Connecting is retried while SQLite answers `SQLITE_BUSY`, for up to `BUSY_TIMEOUT`: the
/// `journal_mode = WAL` that every writable connection sets converts a new file to WAL, and
/// that conversion fails at once, without going through SQLite's busy handler, while another
/// process is converting or creating the same new file ("database is locked" for one of
/// several openers of a new store). It is transient: the other opener is done in milliseconds.
async fn connect(path: &Path, options: SqliteConnectOptions) -> Result<SqlitePool, AuditError> {
    let deadline = tokio::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    loop {
        let source = match SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => return Ok(pool),
            Err(source) => source,
        };
        if is_busy(&source) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + pause)).await;
            pause = (pause * 2).min(Duration::from_millis(100));
            continue;
        }
        return Err(match tokio::fs::metadata(path).await {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => AuditError::NotFound {
                path: path.to_path_buf(),
            },
            _ => AuditError::Open {
                path: path.to_path_buf(),
                source,
            },
        });
    }
}

/// `SQLITE_BUSY` or one of its extended codes (`SQLITE_BUSY_SNAPSHOT`, ...).
fn is_busy(error: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    error
        .as_database_error()
        .and_then(|error| error.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == SQLITE_BUSY)
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
    /// Any number of processes may open a new store at once: one creates it, the others wait
    /// and find it created. A store a newer attrsync migrated is refused
    /// ([`AuditError::NewerSchema`]). Must be called inside a Tokio runtime: it starts the
    /// group-commit writer task.
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
        Self::open_writable(path, write_options_creating).await
    }

    /// [`AuditStore::open`] for a store that must already exist: it is migrated like `open`
    /// does, but neither the file nor its directory is ever created; a missing store is
    /// [`AuditError::NotFound`]. For commands that only make sense on a store with history
    /// (`apply --resume`).
    pub async fn open_no_create(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        Self::open_writable(Arc::from(path.as_ref()), write_options).await
    }

    async fn open_writable(
        path: Arc<Path>,
        options: fn(&Path) -> SqliteConnectOptions,
    ) -> Result<Self, AuditError> {
        let pool = connect(&path, options(&path)).await?;
        if let Err(error) = migrate_exclusively(&pool, &path).await {
            pool.close().await;
            return Err(error);
        }
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
    /// is ever written through the handle; every write method fails. A missing file is
    /// [`AuditError::NotFound`] (nothing is created); a store whose schema lacks a migration
    /// this build embeds is [`AuditError::OutdatedSchema`] ([`AuditStore::upgrade`] migrates
    /// it), one with a migration it does not know [`AuditError::NewerSchema`]. A store with no
    /// schema yet, which another attrsync is creating, is waited for (a few seconds at most,
    /// then [`AuditError::Uninitialized`]).
    pub async fn open_read_only(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        Self::open_read_only_waiting(path.as_ref(), CREATION_WAIT).await
    }

    async fn open_read_only_waiting(path: &Path, wait: Duration) -> Result<Self, AuditError> {
        let path: Arc<Path> = Arc::from(path);
        let options = connect_options(&path).read_only(true);
        let pool = connect(&path, options).await?;
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                path,
                writer: None,
            }),
        };
        if let Err(error) = store.check_schema_current(wait).await {
            store.inner.pool.close().await;
            return Err(error);
        }
        Ok(store)
    }

    /// Opens the existing store at `path` for writing, without creating it and without
    /// migrating it: a missing file is [`AuditError::NotFound`], and a schema other than this
    /// build's is refused as by [`AuditStore::open_read_only`] ([`AuditStore::upgrade`]
    /// migrates an older one). For maintenance that must not bring a store into being
    /// (`audit prune`).
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
        if let Err(error) = store.check_schema_current(CREATION_WAIT).await {
            let _ = store.close().await;
            return Err(error);
        }
        Ok(store)
    }

    /// Fails unless the store's schema is exactly this build's: [`AuditError::NewerSchema`]
    /// when a newer attrsync migrated it, [`AuditError::OutdatedSchema`] when it lacks a
    /// migration this build embeds. A store with no table at all is being created by another
    /// attrsync (creation commits all at once): it is read again until it has its schema or
    /// `wait` has passed ([`AuditError::Uninitialized`]).
    async fn check_schema_current(&self, wait: Duration) -> Result<(), AuditError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(5);
        let recorded = loop {
            let schema = async {
                let mut conn = self.pool().acquire().await?;
                read_schema(&mut conn).await
            }
            .await
            .map_err(|error| self.db_error(error))?;
            match schema {
                Schema::Migrated(recorded) => break recorded,
                Schema::Foreign => {
                    return Err(AuditError::NotAnAuditStore {
                        path: self.path_buf(),
                    });
                }
                Schema::Empty if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + pause))
                        .await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Schema::Empty => {
                    return Err(AuditError::Uninitialized {
                        path: self.path_buf(),
                        waited: wait,
                    });
                }
            }
        };
        refuse_newer(self.path(), &recorded)?;
        let missing = missing_migrations(&recorded.applied);
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
    /// [`AuditStore::open_read_only`] again. Safe beside concurrent openers, like `open`.
    pub async fn upgrade(path: impl AsRef<Path>) -> Result<Vec<i64>, AuditError> {
        let path = path.as_ref();
        let pool = connect(path, write_options(path)).await?;
        let result = migrate_exclusively(&pool, path).await;
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
