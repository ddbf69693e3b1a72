//! `attrsync audit report`: one self-contained HTML page about one run, made from what the
//! audit store recorded (its [`RunSummary`](audit::RunSummary), its requests and the targets
//! that did not end as planned); and [`text`], the words of those records that the page and the
//! binary's terminal renderings share; and [`export`], the targets as CSV, JSON or NDJSON for
//! `attrsync audit export`.
//!
//! What counts as a problem is [`audit::StatusClass`]'s to say: every target whose status is
//! not of the class `Done` (see [`is_problem`]).

// A library prints nothing: it returns the page or a typed error; only the binary writes files.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod charts;
pub mod export;
mod page;
pub mod tables;
pub mod text;

#[cfg(test)]
mod fixtures;

pub use page::{
    LATENCY_CHART_ID, MAX_PROBLEM_ROWS, OUTCOMES_CHART_ID, RATE_CHART_ID, ReportInput, html_report,
    is_problem, problem_statuses,
};

/// A report that could not be made: one of its charts could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the report's {chart} chart")]
pub struct ReportError {
    chart: &'static str,
    #[source]
    source: charts::DrawError,
}
