//! attrsync's reconcile engine: desired-state sources (CSV wide and long form, SQLite),
//! validation of the whole input, selectors, and the pure diff of desired against live state
//! into a [`Plan`].
//!
//! Reading the source is the only I/O here; live state is fetched by the caller and passed to
//! [`diff`], and applying the plan happens after, elsewhere.

// A library prints nothing: it returns typed errors and values; only the binary prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod call_numbers;
pub mod desired;
mod input;
pub mod number;
pub mod options;
pub mod plan;
pub mod problem;
mod rules;
pub mod saved_plan;
pub mod source;
mod store;
mod validate;

pub use desired::{
    DesiredEntry, DesiredState, InputRow, InputRowRef, InputTable, Selector, SourceFormat,
    SourceInfo, Target, conversation_ids,
};
pub use options::{Limits, ReadOptions};
pub use plan::{
    Action, Change, LiveConversation, LiveState, Plan, PlanSummary, PlannedTarget, Recheck,
    SkipReason, Verification, diff, diff_entries, has_ended, is_gone, participant,
};
pub use problem::{DEFAULT_SHOWN_PROBLEMS, LineUnit, Problem, SourceError, render_problems};
pub use rules::NumberRules;
pub use saved_plan::{PlanMetadata, SavedPlan, SavedPlanError};
pub use source::{SqliteSelect, read_csv, read_csv_from, read_path, read_sqlite};
pub use validate::{COMMAND_LINE, command_line_attributes};
