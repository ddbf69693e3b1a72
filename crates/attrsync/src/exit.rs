//! Exit codes: a documented, stable API (README "Exit codes"). Only the binary decides them.

use std::process::ExitCode;

use engine::{Ending, RunKind, RunOutcome};

/// How a command ended. The numeric values are part of attrsync's interface: scripts and
/// schedulers branch on them, so they never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Success; for `plan --detailed-exitcode`, also "in sync".
    Success,
    /// Failure: nothing or not all of the work could run (bad input, auth, unreachable API).
    Failure,
    /// `plan --detailed-exitcode` only: changes are pending.
    ChangesPending,
    /// Partial: some targets failed or drifted; the rest is done and recorded.
    Partial,
    /// Stopped early, resumable: the API asked to wait longer than `--max-wait` on every token
    /// (a daily limit, or a budget used up elsewhere; `ApiError::is_resume_later`), or a
    /// given token expired. What ran is recorded; resume later (`apply --resume`). Not 130,
    /// which means a signal, nor 75, which means another run holds the store.
    StoppedEarly,
    /// Another attrsync run holds the audit store's lock (`reconcile`).
    Locked,
    /// Usage error: bad flags or arguments.
    Usage,
    /// Interrupted by Ctrl-C or SIGTERM; the run is recorded and resumable.
    Interrupted,
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::ChangesPending => 2,
            Exit::Partial => 3,
            Exit::StoppedEarly => 4,
            Exit::Locked => 75,
            Exit::Usage => 64,
            Exit::Interrupted => 130,
        }
    }
}

/// The one mapping from a run's outcome to its exit code: every command that records a run
/// exits with it, and the store records it.
pub fn for_run(outcome: &RunOutcome) -> Exit {
    match &outcome.ending {
        Ending::Failed => Exit::Failure,
        Ending::StoppedEarly { .. } => Exit::StoppedEarly,
        Ending::LockLost { .. } => Exit::Locked,
        Ending::Interrupted => Exit::Interrupted,
        Ending::Completed => {
            // Not as desired, or accepted and not seen yet: not done. Rows of calls that
            // ended count as skipped targets did (gone): done with, not failed.
            let bad = outcome.not_done() + outcome.unfinished;
            if bad == 0 {
                Exit::Success
            } else if outcome.kind == RunKind::Snapshot
                && outcome.not_done() > 0
                && bad == outcome.counts.total() + outcome.ended_rows
            {
                Exit::Failure
            } else {
                Exit::Partial
            }
        }
    }
}

/// [`for_run`] as the number the engine records with the run.
pub fn code_for_run(outcome: &RunOutcome) -> u8 {
    for_run(outcome).code()
}

/// The exit code of a command that ended with an error: a lock another process holds is 75, the
/// API's budget (or a refused given token) is 4, a closed stdout is a success, anything else 1.
pub fn for_error(err: &anyhow::Error) -> Exit {
    let mut exit = Exit::Failure;
    for cause in err.chain() {
        if is_broken_pipe(cause) {
            return Exit::Success;
        }
        if cause
            .downcast_ref::<engine::EngineError>()
            .is_some_and(engine::EngineError::is_locked)
        {
            return Exit::Locked;
        }
        if cause
            .downcast_ref::<genesys_core::ApiError>()
            .is_some_and(genesys_core::ApiError::is_resume_later)
        {
            exit = Exit::StoppedEarly;
        }
    }
    exit
}

/// A closed stdout (`| head`), however the writer wrapped it.
fn is_broken_pipe(cause: &(dyn std::error::Error + 'static)) -> bool {
    let pipe = std::io::ErrorKind::BrokenPipe;
    cause
        .downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == pipe)
        || cause
            .downcast_ref::<serde_json::Error>()
            .is_some_and(|json| json.io_error_kind() == Some(pipe))
        || cause
            .downcast_ref::<csv::Error>()
            .is_some_and(|csv| matches!(csv.kind(), csv::ErrorKind::Io(io) if io.kind() == pipe))
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use anyhow::Context;
    use audit::{RunId, StatusCounts, TargetStatus};

    use super::*;

    fn outcome(kind: RunKind, ending: Ending, statuses: &[(TargetStatus, u64)]) -> RunOutcome {
        let mut counts = StatusCounts::default();
        for (status, n) in statuses {
            counts.add(*status, *n);
        }
        let unfinished = TargetStatus::UNFINISHED
            .iter()
            .map(|s| counts.get(*s))
            .sum();
        RunOutcome {
            run: RunId::from_stored("20260101T000000Z-abcdef".into()),
            kind,
            status: ending.run_status(),
            ending,
            counts,
            ended_rows: 0,
            no_live_call_rows: 0,
            unfinished,
            elapsed: Duration::ZERO,
            stats: genesys_core::ClientStats::default(),
            results: Vec::new(),
            exit_code: 0,
        }
    }

    #[test]
    fn a_finished_run_exits_by_what_it_recorded() {
        use TargetStatus::*;
        let snapshot = |statuses: &[(TargetStatus, u64)]| {
            for_run(&outcome(RunKind::Snapshot, Ending::Completed, statuses))
        };
        assert_eq!(snapshot(&[(Verified, 2), (Unchanged, 1)]), Exit::Success);
        // A call that ended is nothing to do, not a failure (`set` exited 1 for it).
        assert_eq!(snapshot(&[(Skipped, 1)]), Exit::Success);
        assert_eq!(snapshot(&[(Failed, 1)]), Exit::Failure);
        assert_eq!(snapshot(&[(Failed, 1), (Skipped, 1)]), Exit::Partial);
        // Rows of calls that ended are a count, not targets, and count as skipped ones did.
        let mut with_history = outcome(RunKind::Snapshot, Ending::Completed, &[(Failed, 1)]);
        with_history.ended_rows = 1;
        assert_eq!(for_run(&with_history), Exit::Partial);
        with_history.counts = StatusCounts::default();
        assert_eq!(for_run(&with_history), Exit::Success);
        assert_eq!(snapshot(&[(Stale, 1), (Verified, 1)]), Exit::Partial);
        // Accepted and not visible within --verify-timeout: not done, and not a failure.
        assert_eq!(snapshot(&[(Applied, 1)]), Exit::Partial);
        let follow = |statuses: &[(TargetStatus, u64)]| {
            for_run(&outcome(RunKind::Follow, Ending::Completed, statuses))
        };
        assert_eq!(follow(&[(Verified, 3), (Unprocessed, 2)]), Exit::Success);
        assert_eq!(follow(&[(Drift, 1)]), Exit::Partial);
    }

    #[test]
    fn a_stopped_run_exits_by_why_it_stopped() {
        let ended = |ending| for_run(&outcome(RunKind::Snapshot, ending, &[]));
        assert_eq!(ended(Ending::Interrupted), Exit::Interrupted);
        assert_eq!(
            ended(Ending::StoppedEarly {
                message: String::new()
            }),
            Exit::StoppedEarly
        );
        assert_eq!(
            ended(Ending::LockLost {
                message: String::new()
            }),
            Exit::Locked
        );
        assert_eq!(ended(Ending::Failed), Exit::Failure);
    }

    #[test]
    fn an_exhausted_budget_anywhere_in_the_chain_is_a_stop_not_a_failure() {
        let exhausted = genesys_core::ApiError::BudgetExhausted {
            retry_after: Duration::from_secs(3600),
            resume_in: Duration::from_secs(3599),
            max_wait: Duration::from_secs(180),
            attempts: 1,
        };
        let err = Err::<(), _>(exhausted)
            .context("cannot read call c-1")
            .unwrap_err();
        assert_eq!(for_error(&err), Exit::StoppedEarly);
        assert_eq!(for_error(&anyhow::anyhow!("HTTP 500")), Exit::Failure);
        let pipe = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(for_error(&pipe.context("writing")), Exit::Success);
    }

    #[test]
    fn codes_are_the_documented_ones() {
        let table = [
            (Exit::Success, 0),
            (Exit::Failure, 1),
            (Exit::ChangesPending, 2),
            (Exit::Partial, 3),
            (Exit::StoppedEarly, 4),
            (Exit::Usage, 64),
            (Exit::Locked, 75),
            (Exit::Interrupted, 130),
        ];
        for (exit, code) in table {
            assert_eq!(exit.code(), code, "{exit:?}");
        }
    }
}
