//! attrsync's engine: everything a run does between "the settings are resolved" and "here is
//! what the run recorded".
//!
//! - [`lifecycle`]: the one run lifecycle (begin, the observed client, `--rate auto`, settling
//!   what dead runs left, the heartbeat, locks with lost-lock detection, stop, finish from the
//!   store), used by every command that records a run.
//! - [`apply`]: the snapshot pipeline (`apply`, `set`, `tag`, `demo`, `reconcile` iterations):
//!   conversations worked on concurrently, read -> plan -> re-check -> PATCH -> verify.
//! - [`follow`]: `tag --follow` and `reconcile --follow`: calls planned and verified from
//!   notification events, kept equal to a desired state (a source's, watched for new versions).
//! - [`revert`]: `attrsync revert RUN`, a plan made from what a run recorded, applied as a saved
//!   plan.
//! - [`live`]: the batched reads of live calls (the analytics listing, reads of many calls).
//! - [`queues`]: `--queue` by name or id, resolved through the routing queues API before a
//!   run begins; the queue listing of `attrsync queues` with live-call counts.
//! - [`doctor`]: the checks of `attrsync doctor` (hosts, grant, read, notifications, budget), as
//!   typed results.
//! - [`service`]: the service surface of long-running commands: Prometheus metrics (a
//!   textfile collector's file, a scrape) and the `/metrics` and `/healthz` server.
//!
//! The engine prints nothing and knows no exit code: it reports through a [`RunObserver`] and
//! returns a typed [`RunOutcome`], read from the audit store. The binary renders both and maps
//! the outcome to an exit code in one place; it hands that mapping in ([`RunConfig::exit_code`])
//! so that the store records the code the process exits with.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod apply;
pub mod auto_rate;
pub mod doctor;
mod error;
pub mod follow;
pub mod lifecycle;
pub mod live;
pub mod locks;
pub mod numbered;
pub mod observer;
pub mod outcome;
pub mod queues;
pub mod revert;
pub mod service;
pub mod stop;

pub use apply::{TargetResult, VerifiedBy, VerifyVia, Work, execute, planned_status};
pub use error::{EngineError, error_chain};
pub use lifecycle::{ClientFactory, RunConfig};
pub use observer::{Note, RunObserver};
pub use outcome::{Ending, RunKind, RunOutcome};
pub use stop::StopSignal;

/// `1 row`, `2 rows`: the engine's notes count as the binary's report does
/// (`report::text::plural`, which the engine does not depend on).
pub(crate) fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
