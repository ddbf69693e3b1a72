//! The summary printed on stderr at the end of a run, from what the run recorded.

use std::path::Path;

use audit::TargetStatus;
use engine::{Ending, RunOutcome};

pub fn run_summary(outcome: &RunOutcome, audit_path: &Path) -> String {
    let parts: Vec<String> = TargetStatus::ALL
        .iter()
        .filter(|s| outcome.counts.get(**s) > 0)
        .map(|s| format!("{} {s}", outcome.counts.get(*s)))
        .collect();
    let counted = if parts.is_empty() {
        "no targets".to_owned()
    } else {
        parts.join(", ")
    };
    let head = if outcome.is_interrupted() {
        "Interrupted run"
    } else {
        "Run"
    };
    let mut text = format!(
        "{head} {}: {counted} in {:.1}s.\nAudit store: {}  (attrsync audit show {})",
        outcome.run,
        outcome.elapsed.as_secs_f64(),
        audit_path.display(),
        outcome.run,
    );
    if matches!(outcome.ending, Ending::Interrupted) {
        text.push_str(&format!(
            "\nResume with: attrsync apply --resume {}",
            outcome.run
        ));
    }
    text
}

/// Said even with -q when the API's budget stopped a run with work left: when and how to go on.
pub fn stopped_early(outcome: &RunOutcome) -> Option<String> {
    let Ending::StoppedEarly { message } = &outcome.ending else {
        return None;
    };
    Some(format!(
        "attrsync: {message}; {} targets are left for later: `attrsync apply --resume {}`",
        outcome.unfinished, outcome.run
    ))
}
