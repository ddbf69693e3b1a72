//! The summary printed on stderr at the end of a run.

use std::path::Path;

use crate::apply::{RunReport, counts};

pub fn run_summary(report: &RunReport, audit_path: &Path) -> String {
    let counts = counts(&report.results);
    let parts: Vec<String> = [
        "verified",
        "unchanged",
        "skipped",
        "stale",
        "drift",
        "failed",
    ]
    .iter()
    .filter_map(|s| counts.get(s).map(|n| format!("{n} {s}")))
    .collect();
    let outcome = if parts.is_empty() {
        "no targets".to_owned()
    } else {
        parts.join(", ")
    };
    let head = if report.interrupted {
        "Interrupted run"
    } else {
        "Run"
    };
    let mut text = format!(
        "{head} {}: {outcome} in {:.1}s.\nAudit store: {}  (attrsync audit show {})",
        report.run,
        report.elapsed.as_secs_f64(),
        audit_path.display(),
        report.run,
    );
    if report.interrupted {
        text.push_str(&format!(
            "\nResume with: attrsync apply --resume {}",
            report.run
        ));
    }
    text
}
