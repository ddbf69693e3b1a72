//! Errors of the audit store. Every message names the database file so that an operator with
//! several stores (one per job) knows which one is meant.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::time::UnixMillis;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot create the directory of audit store {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The store does not exist (and the opener was not to create it).
    #[error("no audit store at {path}")]
    NotFound { path: PathBuf },

    #[error("cannot open audit store {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot migrate audit store {path}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// The store lacks migrations this build embeds: it was last written by an older version
    /// and must be upgraded (migrated) before it can be read.
    #[error(
        "audit store {path} was written by an older attrsync: its schema lacks migration{} {}",
        if missing.len() == 1 { "" } else { "s" },
        missing.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
    )]
    OutdatedSchema { path: PathBuf, missing: Vec<i64> },

    /// The store records migrations this build does not embed: a newer attrsync migrated it.
    /// This one neither reads nor writes it (it cannot know what the newer schema means).
    #[error(
        "audit store {path} was written by a newer attrsync: its schema has migration{} {} that \
         this attrsync ({version}) does not know; use that newer attrsync with this store",
        if unknown.len() == 1 { "" } else { "s" },
        unknown.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
    )]
    NewerSchema {
        path: PathBuf,
        unknown: Vec<i64>,
        /// This build's version.
        version: &'static str,
    },

    /// The file has no table at all, still after waiting for another attrsync to finish
    /// creating it (a store is created in one transaction).
    #[error(
        "audit store {path} has no schema yet (waited {}): another attrsync may still be \
         creating it, or it is not an attrsync audit store",
        humantime::format_duration(*waited)
    )]
    Uninitialized { path: PathBuf, waited: Duration },

    /// The file is an SQLite database with tables, but attrsync never migrated it.
    #[error("{path} is not an attrsync audit store (it has tables but no migration history)")]
    NotAnAuditStore { path: PathBuf },

    /// A write through a store opened read-only.
    #[error("audit store {path} is open read-only")]
    ReadOnly { path: PathBuf },

    #[error("audit store {path}")]
    Database {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },

    /// A group commit failed; every caller whose write was in the batch receives the same cause.
    #[error("audit store {path}: group commit failed")]
    Commit {
        path: PathBuf,
        #[source]
        source: Arc<sqlx::Error>,
    },

    #[error("audit store {path}: the background writer has stopped")]
    WriterStopped { path: PathBuf },

    #[error("audit store {path}: no run matches {run:?}")]
    RunNotFound { path: PathBuf, run: String },

    #[error("audit store {path}: run prefix {prefix:?} is ambiguous ({matches} runs match)")]
    AmbiguousRun {
        path: PathBuf,
        prefix: String,
        matches: usize,
    },

    #[error("audit store {path}: no runs recorded yet")]
    NoRuns { path: PathBuf },

    #[error(
        "audit store {path}: run {run} is still running in process {pid} on {host}; \
         it cannot be resumed concurrently"
    )]
    RunActive {
        path: PathBuf,
        run: String,
        pid: u32,
        host: String,
    },

    #[error("audit store {path}: no target with id {target}")]
    UnknownTarget { path: PathBuf, target: i64 },

    #[error(
        "audit store {path}: lock {lock:?} is held by process {pid} on {host} \
         (since {acquired_at}, last heartbeat {heartbeat_at})"
    )]
    Locked {
        path: PathBuf,
        lock: String,
        pid: u32,
        host: String,
        acquired_at: UnixMillis,
        heartbeat_at: UnixMillis,
    },

    #[error("audit store {path}: lock {lock:?} was taken over by another process")]
    LockLost { path: PathBuf, lock: String },

    #[error("audit store {path}: unreadable {what}: {detail}")]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
}
