//! The engine's errors. Each says what failed in its own words and keeps its cause as a source,
//! so that the binary prints the chain once.

use std::path::PathBuf;

use audit::{AuditError, RunId};
use genesys_core::{ApiError, ClientBuildError};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The audit store failed: the run stops, since it could no longer prove what it did.
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("cannot set up the Genesys client")]
    Client(#[source] ClientBuildError),
    /// A request whose failure ends the command (not one target's failure, which is recorded).
    #[error("{what}")]
    Api {
        what: String,
        #[source]
        source: ApiError,
    },
    /// Another process holds a lock the run needs (exit 75 in attrsync).
    #[error("{holder}\n{what}; this one exits without doing anything")]
    Locked {
        /// Who holds it, as the store says.
        holder: AuditError,
        /// What the lock protects, in the user's words.
        what: String,
    },
    #[error("cannot write the result files in {}", dir.display())]
    Results {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the notification watch ended")]
    WatchEnded,
    /// Genesys refused what a follow needs, and retrying cannot help.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    TooManyQueues(#[from] genesys_core::notifications::TooManyQueues),
    #[error("a follow job panicked")]
    JobPanicked(#[source] tokio::task::JoinError),
    /// A run that stopped on an error; the run is recorded as failed.
    #[error("run {run} stopped")]
    RunStopped {
        run: RunId,
        #[source]
        source: Box<EngineError>,
    },
    /// `attrsync revert` of a run that is itself a revert.
    #[error(
        "run {run} is a revert (of run {original}) and is not reverted in turn: to have run \
         {original}'s changes back, run its command again"
    )]
    RevertOfRevert { run: RunId, original: RunId },
    #[error("run {run} made its changes, but its result files could not be written")]
    ResultsNotWritten {
        run: RunId,
        #[source]
        source: Box<EngineError>,
    },
}

impl EngineError {
    /// Another process holds a lock this run needs.
    pub fn is_locked(&self) -> bool {
        matches!(self, EngineError::Locked { .. })
    }
}

impl From<csv::Error> for EngineError {
    fn from(err: csv::Error) -> Self {
        // Result files are the only CSV the engine writes; `write_results` adds the directory.
        EngineError::Results {
            dir: PathBuf::new(),
            source: std::io::Error::other(err),
        }
    }
}

/// The chain of an error, each cause once: `context: cause: root cause`. A cause whose text the
/// message so far already ends with (a library error that repeats its source in its own
/// message, as some of sqlx's do) is not repeated.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    for cause in std::iter::successors(Some(err), |e| e.source()) {
        let message = cause.to_string();
        if text.ends_with(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}
