//! What goes into the audit store and what comes back out of it.

use std::collections::BTreeMap;

use super::ids::{RunId, TargetId};
use super::status::{RunStatus, StatusCounts, TargetStatus};
use super::time::UnixMillis;

/// Values of the managed keys as read live: `None` means the key was absent.
pub type ObservedValues = BTreeMap<String, Option<String>>;

/// Values of the managed keys as desired: `""` means clear (Genesys's only way to clear a key).
pub type DesiredValues = BTreeMap<String, String>;

/// A run about to start. Host and pid are filled in by the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// e.g. `apply`, `reconcile`, `tag`.
    pub command: String,
    pub source_path: Option<String>,
    pub source_sha256: Option<String>,
    /// Effective options (never credentials), as JSON.
    pub options: serde_json::Value,
    pub tool_version: String,
    /// The operator's login name (`$USER`), read by the binary's environment module.
    pub operator: Option<String>,
    /// Configured request budget in requests per minute, drawn in the report.
    pub rate_per_minute: Option<f64>,
    /// The run this one reverts (`attrsync revert`).
    pub reverts: Option<RunId>,
}

/// One target of a run, as planned.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTarget {
    /// Position in the plan; unique within a run.
    pub seq: u32,
    pub conversation_id: String,
    pub participant_id: Option<String>,
    /// The selector as written, e.g. `purpose=customer`.
    pub selector: String,
    pub purpose: Option<String>,
    /// Where the desire came from, e.g. `desired.csv:12,13`.
    pub input_lines: String,
    /// `planned`, or a final plan outcome: `unchanged`, `skipped`, `stale`.
    pub status: TargetStatus,
    pub reason: Option<String>,
    pub before: ObservedValues,
    pub desired: DesiredValues,
}

/// The result of one step for one target. `None` fields keep what the row already holds, so a
/// verification outcome does not erase the PATCH's HTTP status or correlation id; the error
/// fields describe this outcome and are replaced as given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub status: Option<TargetStatus>,
    pub reason: Option<String>,
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub correlation_id: Option<String>,
    pub attempts: Option<u32>,
    pub observed: Option<ObservedValues>,
    /// What showed the observed values.
    pub verified_via: Option<VerifiedVia>,
}

/// What showed a target's values after its change (the `verified_via` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifiedVia {
    /// A notification event.
    Event,
    /// A read of the call.
    Read,
}

impl VerifiedVia {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Read => "read",
        }
    }
}

impl std::str::FromStr for VerifiedVia {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "event" => Ok(Self::Event),
            "read" => Ok(Self::Read),
            other => Err(format!("unknown verification {other:?}")),
        }
    }
}

impl Outcome {
    #[cfg_attr(not(test), allow(dead_code))] // A shorthand only the store's tests use yet.
    pub fn status(status: TargetStatus) -> Self {
        Self {
            status: Some(status),
            ..Self::default()
        }
    }
}

/// One HTTP attempt. Used both to record and to read back the timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RequestRow {
    pub run_id: RunId,
    pub at: UnixMillis,
    pub method: String,
    /// Templated route, e.g. `/api/v2/conversations/calls/{conversationId}`.
    pub route: String,
    pub conversation_id: Option<String>,
    pub participant_id: Option<String>,
    /// `None` for a transport error (no response).
    pub status: Option<u16>,
    pub latency_ms: u32,
    /// 1 for the first try.
    pub attempt: u32,
    pub retry_after_ms: Option<u32>,
    pub error_class: Option<String>,
    pub correlation_id: Option<String>,
    /// Index of the token in the pool, never the token itself.
    pub token_slot: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunRecord {
    pub id: RunId,
    pub started_at: UnixMillis,
    pub finished_at: Option<UnixMillis>,
    pub status: RunStatus,
    pub exit_code: Option<i32>,
    pub command: String,
    pub source_path: Option<String>,
    pub source_sha256: Option<String>,
    pub options: serde_json::Value,
    pub tool_version: String,
    pub host: String,
    pub pid: u32,
    pub operator: Option<String>,
    pub rate_per_minute: Option<f64>,
    pub resumed_count: u32,
    /// The run this one reverts (`attrsync revert`); the store may no longer hold it (pruned).
    pub reverts: Option<RunId>,
    /// Desired rows whose conversation had ended when the run began: skipped without a request
    /// or a target row of their own.
    pub ended_rows: u64,
    /// Desired rows that select calls by number, when no live call had it as the run began:
    /// no request, no target row.
    pub no_live_call_rows: u64,
}

/// One process that worked on a run: its first, or a `--resume`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunProcess {
    pub command: String,
    pub host: String,
    pub pid: u32,
    pub started_at: UnixMillis,
    pub finished_at: Option<UnixMillis>,
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TargetRecord {
    pub id: TargetId,
    pub run_id: RunId,
    pub seq: u32,
    pub conversation_id: String,
    pub participant_id: Option<String>,
    pub selector: String,
    pub purpose: Option<String>,
    pub input_lines: String,
    pub status: TargetStatus,
    pub reason: Option<String>,
    pub before: ObservedValues,
    pub desired: DesiredValues,
    pub observed: Option<ObservedValues>,
    pub http_status: Option<u16>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub correlation_id: Option<String>,
    pub attempts: u32,
    /// What showed the observed values, when a verification looked.
    pub verified_via: Option<VerifiedVia>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub sent_at: Option<UnixMillis>,
}

/// Aggregates over a run's HTTP attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestStats {
    pub total: u64,
    /// Responses with status 429.
    pub throttled: u64,
    /// Attempts after the first (`attempt > 1`).
    pub retries: u64,
    /// Attempts without a response.
    pub transport_errors: u64,
    pub first_at: Option<UnixMillis>,
    pub last_at: Option<UnixMillis>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
    pub run: RunRecord,
    pub counts: StatusCounts,
    pub requests: RequestStats,
}

/// Order of `list_targets` results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TargetOrder {
    /// By run (oldest first), then position in the plan: the natural order of `audit show`.
    #[default]
    Plan,
    /// Most recently updated first: the natural order of `audit list` across runs.
    NewestFirst,
}

/// Filters of `list_targets`; every `None`/empty field matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetFilter {
    pub run: Option<RunId>,
    pub conversation: Option<String>,
    pub participant: Option<String>,
    /// Any of these statuses.
    pub statuses: Vec<TargetStatus>,
    /// Targets whose desired or before values name this key.
    pub key: Option<String>,
    /// Last updated at or after.
    pub since: Option<UnixMillis>,
    /// Last updated before.
    pub until: Option<UnixMillis>,
    pub limit: Option<u32>,
    pub order: TargetOrder,
}
