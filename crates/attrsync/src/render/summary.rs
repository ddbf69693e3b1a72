//! The summary printed on stderr at the end of a run, from what the run recorded.

use std::path::Path;

use audit::TargetStatus;
use engine::{Ending, RunOutcome};

use crate::hints::Hints;

pub fn run_summary(outcome: &RunOutcome, audit_path: &Path, hints: &Hints) -> String {
    let parts: Vec<String> = TargetStatus::ALL
        .iter()
        .filter(|s| outcome.counts.get(**s) > 0)
        .map(|s| format!("{} {s}", outcome.counts.get(*s)))
        .collect();
    let mut counted = if parts.is_empty() {
        "no targets".to_owned()
    } else {
        parts.join(", ")
    };
    if outcome.ended_rows > 0 {
        counted.push_str(&format!(
            "; {} of calls that had ended",
            report::text::plural(outcome.ended_rows, "row", "rows")
        ));
    }
    if outcome.no_live_call_rows > 0 {
        counted.push_str(&format!(
            "; {} with numbers no live call had",
            report::text::plural(outcome.no_live_call_rows, "row", "rows")
        ));
    }
    let head = if outcome.is_interrupted() {
        "Interrupted run"
    } else {
        "Run"
    };
    let run = outcome.run.as_str();
    let mut text = format!(
        "{head} {run}: {counted} in {:.1}s.\nAudit store: {}  ({})",
        outcome.elapsed.as_secs_f64(),
        audit_path.display(),
        hints.review(&["audit", "show", run]),
    );
    if matches!(outcome.ending, Ending::Interrupted) {
        text.push_str(&format!(
            "\nResume with: {}",
            hints.connect(&["apply", "--resume", run])
        ));
    }
    text
}

/// Said even with -q when the API's budget stopped a run with work left: when and how to go on.
pub fn stopped_early(outcome: &RunOutcome, hints: &Hints) -> Option<String> {
    let Ending::StoppedEarly { message } = &outcome.ending else {
        return None;
    };
    Some(format!(
        "attrsync: {message}; {} targets are left for later: `{}`",
        outcome.unfinished,
        hints.connect(&["apply", "--resume", outcome.run.as_str()])
    ))
}
