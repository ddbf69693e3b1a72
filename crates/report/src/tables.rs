//! `attrsync audit runs|show|list|prune`: runs and targets of the audit store as text tables,
//! and the JSON shape of a run.

use std::fmt::Write;

use crate::text::{Style, changes_text, counts_text, duration_ms, duration_text, revert_text};
use audit::{
    PrunableRun, RequestStats, RunProcess, RunRecord, RunSummary, StatusCounts, TargetRecord,
};

/// A run as `--json` shows it: the record, its duration, outcome counts and request statistics.
#[derive(Debug, serde::Serialize)]
pub struct RunView<'a> {
    #[serde(flatten)]
    pub run: &'a RunRecord,
    /// `None` while the run has not finished.
    pub duration_ms: Option<i64>,
    pub counts: &'a StatusCounts,
    pub requests: &'a RequestStats,
}

impl<'a> RunView<'a> {
    pub fn new(summary: &'a RunSummary) -> Self {
        Self {
            run: &summary.run,
            duration_ms: duration_ms(&summary.run),
            counts: &summary.counts,
            requests: &summary.requests,
        }
    }
}

/// `audit runs`: one line per run.
pub fn runs_table(runs: &[RunSummary], style: Style) -> String {
    let header = [
        "RUN", "STARTED", "DURATION", "COMMAND", "SOURCE", "STATUS", "EXIT", "TARGETS",
    ];
    let rows = runs
        .iter()
        .map(|summary| {
            let run = &summary.run;
            vec![
                run.id.to_string(),
                run.started_at.to_string(),
                duration_text(run),
                run.command.clone(),
                run.source_path.clone().unwrap_or_else(|| "-".to_owned()),
                run.status.to_string(),
                run.exit_code
                    .map_or_else(|| "-".to_owned(), |code| code.to_string()),
                counts_text(&summary.counts),
            ]
        })
        .collect();
    table(&header, rows, style)
}

/// `audit prune` (a dry run): one line per run that would be deleted, with its rows.
pub fn prune_table(runs: &[PrunableRun], style: Style) -> String {
    let header = [
        "RUN",
        "COMMAND",
        "STATUS",
        "ENDED",
        "TARGETS",
        "INPUT ROWS",
        "REQUESTS",
    ];
    let count =
        |run: &PrunableRun, table: &str| run.rows.get(table).copied().unwrap_or(0).to_string();
    let rows = runs
        .iter()
        .map(|run| {
            vec![
                run.id.to_string(),
                run.command.clone(),
                run.status.to_string(),
                run.ended_at.to_string(),
                count(run, "targets"),
                count(run, "input_rows"),
                count(run, "requests"),
            ]
        })
        .collect();
    table(&header, rows, style)
}

/// `audit show`: everything recorded about a run but its targets; `reverted_by` are the runs
/// that reverted it.
pub fn run_details(
    summary: &RunSummary,
    processes: &[RunProcess],
    reverted_by: &[RunSummary],
    style: Style,
) -> String {
    let run = &summary.run;
    let mut out = String::new();
    let exit = run
        .exit_code
        .map_or_else(String::new, |code| format!(", exit {code}"));
    let _ = writeln!(
        out,
        "{} {}  {}{exit}",
        style.bold("Run"),
        run.id,
        run.status
    );
    let mut field = |name: &str, value: String| {
        let _ = writeln!(out, "  {:<10} {value}", style.dim(name));
    };
    field("command", run.command.clone());
    if let Some(original) = &run.reverts {
        field("reverts", format!("run {original}"));
    }
    if let Some(source) = &run.source_path {
        field("source", source.clone());
    }
    if let Some(sha256) = &run.source_sha256 {
        field("sha256", sha256.clone());
    }
    field("started", run.started_at.to_string());
    field(
        "finished",
        match run.finished_at {
            Some(finished) => format!("{finished} ({})", duration_text(run)),
            None => "-".to_owned(),
        },
    );
    field("tool", format!("attrsync {}", run.tool_version));
    field("host", format!("{} (pid {})", run.host, run.pid));
    field(
        "operator",
        run.operator.clone().unwrap_or_else(|| "-".to_owned()),
    );
    if let Some(rate) = run.rate_per_minute {
        field("budget", format!("{rate} requests/min"));
    }
    field("options", run.options.to_string());
    if run.resumed_count > 0 {
        field("resumed", format!("{} time(s)", run.resumed_count));
    }
    if run.ended_rows > 0 {
        field("ended", crate::text::ended_rows_text(run.ended_rows));
    }
    if run.no_live_call_rows > 0 {
        field(
            "no live call",
            format!(
                "{} calls by a number no live call had (no request, no target row)",
                crate::text::plural(run.no_live_call_rows, "row selected", "rows selected")
            ),
        );
    }
    // Every process that worked on the run: the first, then each `--resume`.
    for process in processes {
        let ended = match (process.finished_at, process.exit_code) {
            (Some(at), Some(code)) => format!("until {at}, exit {code}"),
            (Some(at), None) => format!("until {at}"),
            (None, _) => "did not finish".to_owned(),
        };
        field(
            "process",
            format!(
                "{} by pid {} on {} from {}, {ended}",
                process.command, process.pid, process.host, process.started_at
            ),
        );
    }
    let requests = &summary.requests;
    field(
        "requests",
        format!(
            "{} total, {} throttled (429), {} retries, {} without response",
            requests.total, requests.throttled, requests.retries, requests.transport_errors
        ),
    );
    field("targets", counts_text(&summary.counts));
    for revert in reverted_by {
        field("reverted", format!("by {}", revert_text(revert)));
    }
    out
}

/// `audit show` and `audit list`: one line per target; `with_run` adds the run and update time
/// (for listings across runs).
pub fn targets_table(targets: &[TargetRecord], with_run: bool, style: Style) -> String {
    let mut header = vec![
        "SEQ",
        "STATUS",
        "CONVERSATION",
        "PARTICIPANT",
        "CHANGES",
        "DETAIL",
    ];
    if with_run {
        header.splice(0..0, ["RUN", "UPDATED"]);
    }
    let rows = targets
        .iter()
        .map(|target| {
            let mut row = vec![
                target.seq.to_string(),
                target.status.to_string(),
                target.conversation_id.clone(),
                target
                    .participant_id
                    .clone()
                    .unwrap_or_else(|| target.selector.clone()),
                changes_text(target),
                detail_text(target),
            ];
            if with_run {
                row.splice(
                    0..0,
                    [target.run_id.to_string(), target.updated_at.to_string()],
                );
            }
            row
        })
        .collect();
    table(&header, rows, style)
}

/// Why a target ended as it did: the recorded error, else the recorded reason. A recorded error
/// message is the error's whole one-line description (status, code, the server's message,
/// correlation id), so it is shown as it is; the status and code stand in for a row without one.
pub fn detail_text(target: &TargetRecord) -> String {
    if let Some(message) = &target.error_message {
        return message.clone();
    }
    match (target.http_status, &target.error_code, &target.reason) {
        (Some(status), Some(code), _) => format!("HTTP {status} {code}"),
        (None, Some(code), _) => code.clone(),
        (_, None, Some(reason)) => reason.clone(),
        (_, None, None) => String::new(),
    }
}

/// Left-aligned columns under a dim header; the last one is not padded. Every text table of
/// the tool (the audit views, `live`, `queues`) is laid out here.
pub fn table(header: &[&str], rows: Vec<Vec<String>>, style: Style) -> String {
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        text.trim_end().to_owned()
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", style.dim(&line(header)));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::target;
    use audit::TargetStatus;

    #[test]
    fn detail_prefers_the_genesys_error_over_the_reason() {
        let mut failed = target(TargetStatus::Failed);
        failed.reason = Some("terminal error".into());
        failed.http_status = Some(400);
        failed.error_code = Some("bad.request".into());
        assert_eq!(detail_text(&failed), "HTTP 400 bad.request");
        let mut skipped = target(TargetStatus::Skipped);
        skipped.reason = Some("conversation ended".into());
        assert_eq!(detail_text(&skipped), "conversation ended");
    }

    /// A failed target's row holds the status, the code and the correlation id apart, and the
    /// error's message as the client words it (which has them all): each is shown once.
    #[test]
    fn a_recorded_api_error_is_shown_with_each_piece_once() {
        let error = genesys_core::ApiError::Http(Box::new(genesys_core::HttpFailure {
            route: "PATCH /x",
            status: 404,
            code: Some("not.found".into()),
            message: Some("The requested resource was not found.".into()),
            correlation_id: Some("c-1".into()),
            retry_after: None,
            attempts: 1,
        }));
        let mut failed = target(TargetStatus::Failed);
        failed.http_status = error.status();
        failed.error_code = error.code().map(str::to_owned);
        failed.correlation_id = error.correlation_id().map(str::to_owned);
        failed.error_message = Some(error.to_string());
        assert_eq!(
            detail_text(&failed),
            "HTTP 404 not.found: The requested resource was not found. (correlation id c-1)"
        );
    }

    #[test]
    fn target_table_aligns_columns_and_can_name_the_run() {
        let text = targets_table(
            &[target(TargetStatus::Verified)],
            true,
            Style { color: false },
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("RUN"), "{text}");
        assert!(lines[1].starts_with("20261124T101530Z-ab12cd"), "{text}");
        assert_eq!(lines[0].find("STATUS"), lines[1].find("verified"), "{text}");
    }
}
