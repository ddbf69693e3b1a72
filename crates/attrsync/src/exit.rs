//! Exit codes: a documented, stable API (README "Exit codes"). Only the binary decides them.

use std::process::ExitCode;

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

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
