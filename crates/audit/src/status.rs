//! Lifecycle states of runs and targets, stored as lower-case text (the migration's CHECKs list
//! the same words).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub const ALL: [Self; 4] = [
        Self::Running,
        Self::Completed,
        Self::Failed,
        Self::Interrupted,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// Where one target stands. `planned`, `sending` and `applied` are unfinished: a resumed run
/// re-reads live state for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    Planned,
    Unchanged,
    Skipped,
    Stale,
    Sending,
    Applied,
    Verified,
    Drift,
    Failed,
    /// A row a dead process left `planned` or `sending`, resolved by a later run from the live
    /// state: the change is not there (it was never sent, or never took effect).
    NotApplied,
    /// A row a dead process left `sending` whose call had ended by the time a later run could
    /// look: whether the change reached Genesys cannot be known.
    Unknown,
    /// A call `tag --follow` saw but had not sent anything for when it was stopped (a follow's
    /// normal end): not a failure, and nothing to resume.
    Unprocessed,
}

impl TargetStatus {
    pub const ALL: [Self; 12] = [
        Self::Planned,
        Self::Unchanged,
        Self::Skipped,
        Self::Stale,
        Self::Sending,
        Self::Applied,
        Self::Verified,
        Self::Drift,
        Self::Failed,
        Self::NotApplied,
        Self::Unknown,
        Self::Unprocessed,
    ];

    /// The states `apply --resume` must revisit.
    pub const UNFINISHED: [Self; 3] = [Self::Planned, Self::Sending, Self::Applied];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Unchanged => "unchanged",
            Self::Skipped => "skipped",
            Self::Stale => "stale",
            Self::Sending => "sending",
            Self::Applied => "applied",
            Self::Verified => "verified",
            Self::Drift => "drift",
            Self::Failed => "failed",
            Self::NotApplied => "not_applied",
            Self::Unknown => "unknown",
            Self::Unprocessed => "unprocessed",
        }
    }

    #[allow(dead_code)] // Resume asks the store for unfinished targets instead.
    pub fn is_unfinished(self) -> bool {
        Self::UNFINISHED.contains(&self)
    }

    /// What this status means for its run: the one classification that exit codes, summaries,
    /// progress, metrics, reports and result files all use.
    pub const fn class(self) -> StatusClass {
        match self {
            Self::Verified | Self::Unchanged => StatusClass::Done,
            Self::Skipped => StatusClass::Gone,
            Self::Failed | Self::Drift | Self::Stale | Self::Unknown => StatusClass::NotDone,
            Self::Planned
            | Self::Sending
            | Self::Applied
            | Self::NotApplied
            | Self::Unprocessed => StatusClass::NotReached,
        }
    }
}

/// The classes of [`TargetStatus::class`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusClass {
    /// As desired: verified after the change, or already so.
    Done,
    /// Nothing to do any more: the call ended or the participant left before the change.
    Gone,
    /// Not as desired, and not tried again by this run: failed, overwritten (drift), gone
    /// stale since the plan, or unknown. A run with any is partial (exit 3) or failed (exit 1).
    NotDone,
    /// Not finished: never sent, or sent and not yet verified (`--resume` revisits `planned`,
    /// `sending` and `applied`; `not_applied` and `unprocessed` were settled as never reached).
    NotReached,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for RunStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }
}

impl FromStr for TargetStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for TargetStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Number of targets per status in one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatusCounts {
    pub planned: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub stale: u64,
    pub sending: u64,
    pub applied: u64,
    pub verified: u64,
    pub drift: u64,
    pub failed: u64,
    pub not_applied: u64,
    pub unknown: u64,
    pub unprocessed: u64,
}

impl StatusCounts {
    pub fn get(&self, status: TargetStatus) -> u64 {
        *self.slot(status)
    }

    pub fn add(&mut self, status: TargetStatus, count: u64) {
        *self.slot_mut(status) += count;
    }

    /// Targets of one class.
    pub fn of_class(&self, class: StatusClass) -> u64 {
        TargetStatus::ALL
            .iter()
            .filter(|status| status.class() == class)
            .map(|status| self.get(*status))
            .sum()
    }

    pub fn total(&self) -> u64 {
        TargetStatus::ALL
            .iter()
            .map(|status| self.get(*status))
            .sum()
    }

    fn slot(&self, status: TargetStatus) -> &u64 {
        match status {
            TargetStatus::Planned => &self.planned,
            TargetStatus::Unchanged => &self.unchanged,
            TargetStatus::Skipped => &self.skipped,
            TargetStatus::Stale => &self.stale,
            TargetStatus::Sending => &self.sending,
            TargetStatus::Applied => &self.applied,
            TargetStatus::Verified => &self.verified,
            TargetStatus::Drift => &self.drift,
            TargetStatus::Failed => &self.failed,
            TargetStatus::NotApplied => &self.not_applied,
            TargetStatus::Unknown => &self.unknown,
            TargetStatus::Unprocessed => &self.unprocessed,
        }
    }

    fn slot_mut(&mut self, status: TargetStatus) -> &mut u64 {
        match status {
            TargetStatus::Planned => &mut self.planned,
            TargetStatus::Unchanged => &mut self.unchanged,
            TargetStatus::Skipped => &mut self.skipped,
            TargetStatus::Stale => &mut self.stale,
            TargetStatus::Sending => &mut self.sending,
            TargetStatus::Applied => &mut self.applied,
            TargetStatus::Verified => &mut self.verified,
            TargetStatus::Drift => &mut self.drift,
            TargetStatus::Failed => &mut self.failed,
            TargetStatus::NotApplied => &mut self.not_applied,
            TargetStatus::Unknown => &mut self.unknown,
            TargetStatus::Unprocessed => &mut self.unprocessed,
        }
    }
}
