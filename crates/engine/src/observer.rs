//! How a run reports while it runs: the binary's progress display, NDJSON events, notes and
//! metrics are observers. Every method has a default that ignores the report, so an observer
//! implements only what it shows.

use std::sync::Arc;

use audit::RunId;
use genesys_core::{ClientStats, GenesysClient};
use reconcile::SourceInfo;

use crate::apply::TargetResult;
use crate::follow::FollowCounters;
use crate::outcome::RunOutcome;

/// A line for the person running the command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// Commentary (`-q` hides it).
    Info(String),
    /// Something the person did not ask for and should know, even under `-q`.
    Warning(String),
}

pub trait RunObserver: Send + Sync {
    /// The run exists in the store; `conversations` calls are known so far.
    fn run_started(&self, _run: &RunId, _source: &SourceInfo, _conversations: u64) {}
    /// The run's client exists (its counters say how the budget is going).
    fn connected(&self, _client: &GenesysClient) {}
    /// The run's read-back verifications under way, to name a long one (see
    /// [`crate::apply::verifications`]).
    fn verifications(&self, _verifications: &Arc<crate::apply::verifications::Verifications>) {}
    fn note(&self, _note: Note) {}
    /// More calls to work on (a follow learns of calls as they arrive).
    fn conversations_added(&self, _count: u64) {}
    /// One call's work is over; its targets' results follow.
    fn conversation_done(&self) {}
    /// A target's final word in this run.
    fn target_finished(&self, _result: &TargetResult) {}
    /// A follow's counters, every few seconds and at its end.
    fn follow_tick(&self, _counters: &FollowCounters, _client: &ClientStats) {}
    /// The run's heartbeat was written to the audit store, or could not be.
    fn heartbeat(&self, _written: &Result<(), String>) {}
    /// The run is recorded as finished.
    fn run_finished(&self, _outcome: &RunOutcome) {}
}

/// An observer that shows nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl RunObserver for Silent {}
