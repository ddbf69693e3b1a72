//! What a run ended as, read from the audit store: the engine's typed outcome, which the binary
//! renders and maps to an exit code in one place.

use std::time::Duration;

use audit::{RunId, RunStatus, StatusClass, StatusCounts};
use genesys_core::ClientStats;

use crate::apply::TargetResult;

/// The kind of run, which decides what its end means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// A snapshot (`apply`, `set`, `tag`, `demo`, a `reconcile` iteration): it ends when its
    /// targets do, and a stop before that leaves it resumable.
    Snapshot,
    /// A follow: it ends when it is stopped, which is its normal end.
    Follow,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Every target reached its end (a follow: stopped, its normal end).
    Completed,
    /// Stopped on request with targets not finished: resumable.
    Interrupted,
    /// Stopped by the API's budget (or a refused given token) with targets not finished:
    /// resumable once the API allows it.
    StoppedEarly { message: String },
    /// Another process took over a lock the run held.
    LockLost { message: String },
    /// An error ended the run (the audit store failed, the client could not be built, the
    /// result files could not be written).
    Failed,
}

#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub run: RunId,
    pub kind: RunKind,
    pub ending: Ending,
    /// The status recorded for the run.
    pub status: RunStatus,
    /// Targets per status, as recorded (every process of a resumed run).
    pub counts: StatusCounts,
    /// Desired rows whose call had ended: skipped with no request and no target row (see
    /// `audit::RunRecord::ended_rows`); of the class gone, like a skipped target.
    pub ended_rows: u64,
    /// Desired rows selecting calls by a number no live call had (see
    /// `audit::RunRecord::no_live_call_rows`): no request, no target row.
    pub no_live_call_rows: u64,
    /// Targets left `planned`, `sending` or `applied`: what `--resume` would revisit.
    pub unfinished: u64,
    pub elapsed: Duration,
    pub stats: ClientStats,
    /// The results this process reported, in the order they came (empty for a follow).
    pub results: Vec<TargetResult>,
    /// The exit code recorded with the run (the binary's mapping, [`crate::RunConfig::exit_code`]).
    pub exit_code: u8,
}

impl RunOutcome {
    /// Targets not as desired (failed, drift, stale, unknown).
    pub fn not_done(&self) -> u64 {
        self.counts.of_class(StatusClass::NotDone)
    }

    pub fn is_interrupted(&self) -> bool {
        matches!(
            self.ending,
            Ending::Interrupted | Ending::StoppedEarly { .. } | Ending::LockLost { .. }
        )
    }
}

impl Ending {
    /// The status the run is recorded with.
    pub fn run_status(&self) -> RunStatus {
        match self {
            Ending::Completed => RunStatus::Completed,
            Ending::Failed => RunStatus::Failed,
            Ending::Interrupted | Ending::StoppedEarly { .. } | Ending::LockLost { .. } => {
                RunStatus::Interrupted
            }
        }
    }
}
