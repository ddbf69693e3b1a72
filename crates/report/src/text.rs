//! The words of the audit store's records, as people read them: the report's page and the
//! binary's terminal renderings (`audit runs|show|list`, plans) say them the same way.

use std::fmt::Write;

use audit::{RunRecord, RunSummary, StatusCounts, TargetRecord, TargetStatus};

/// A value as it is shown to people: JSON-quoted, so that "" and " x" are visible.
pub fn quoted(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

/// Wall-clock time from start to finish; `None` while the run has not finished.
pub fn duration_ms(run: &RunRecord) -> Option<i64> {
    run.finished_at
        .map(|finished| (finished.as_millis() - run.started_at.as_millis()).max(0))
}

/// `850ms`, `12.3s`, `4m05s`, `2h03m`: short enough for a table column.
pub fn format_millis(millis: i64) -> String {
    if millis < 1_000 {
        format!("{millis}ms")
    } else if millis < 60_000 {
        format!("{:.1}s", millis as f64 / 1000.0)
    } else if millis < 3_600_000 {
        format!("{}m{:02}s", millis / 60_000, (millis / 1000) % 60)
    } else {
        format!("{}h{:02}m", millis / 3_600_000, (millis / 60_000) % 60)
    }
}

/// `1 row`, `2 rows`: a count with its noun.
pub fn plural(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// A run's rows whose call had ended, in words.
pub fn ended_rows_text(rows: u64) -> String {
    format!(
        "{} that had ended (skipped: no request, no target row)",
        plural(rows, "row named a call", "rows named calls")
    )
}

/// The run's duration, or its status when it has none (`running`).
pub fn duration_text(run: &RunRecord) -> String {
    duration_ms(run).map_or_else(|| run.status.to_string(), format_millis)
}

/// `10 verified, 2 drift`: the non-zero counts in lifecycle order.
pub fn counts_text(counts: &StatusCounts) -> String {
    let parts: Vec<String> = TargetStatus::ALL
        .iter()
        .filter(|status| counts.get(**status) > 0)
        .map(|status| format!("{} {status}", counts.get(*status)))
        .collect();
    if parts.is_empty() {
        "no targets".to_owned()
    } else {
        parts.join(", ")
    }
}

/// A run that reverted another, as the reverted run's show and report name it: `run ID
/// (completed, exit 3): 10 skipped, 20 stale, 170 verified` (verified: put back; unchanged:
/// found already back; stale and skipped: left alone).
pub fn revert_text(revert: &RunSummary) -> String {
    let run = &revert.run;
    let exit = run
        .exit_code
        .map_or_else(String::new, |code| format!(", exit {code}"));
    format!(
        "run {} ({}{exit}): {}",
        run.id,
        run.status,
        counts_text(&revert.counts)
    )
}

/// `campaign: "fall" → "spring"`, `tier = "gold"` (already so), and what a later read saw when
/// it differs from the desire (drift).
pub fn changes_text(target: &TargetRecord) -> String {
    target
        .desired
        .iter()
        .map(|(key, desired)| {
            let before = target.before.get(key).cloned().flatten();
            let mut text = match before {
                Some(before) if before == *desired => format!("{key} = {}", quoted(desired)),
                Some(before) => format!("{key}: {} → {}", quoted(&before), value_text(desired)),
                None => format!("{key}: (absent) → {}", value_text(desired)),
            };
            let observed = target
                .observed
                .as_ref()
                .and_then(|observed| observed.get(key));
            match observed {
                Some(Some(seen)) if seen != desired => {
                    let _ = write!(text, " (now {})", quoted(seen));
                }
                Some(None) if !desired.is_empty() => text.push_str(" (now absent)"),
                _ => {}
            }
            text
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A desired value; `""` is how Genesys clears a key.
fn value_text(desired: &str) -> String {
    if desired.is_empty() {
        "(cleared)".to_owned()
    } else {
        quoted(desired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::target;

    #[test]
    fn durations_are_short_and_readable() {
        assert_eq!(format_millis(850), "850ms");
        assert_eq!(format_millis(12_345), "12.3s");
        assert_eq!(format_millis(245_000), "4m05s");
        assert_eq!(format_millis(7_380_000), "2h03m");
    }

    #[test]
    fn counts_list_only_present_statuses_in_lifecycle_order() {
        let mut counts = StatusCounts::default();
        assert_eq!(counts_text(&counts), "no targets");
        counts.add(TargetStatus::Failed, 1);
        counts.add(TargetStatus::Verified, 10);
        assert_eq!(counts_text(&counts), "10 verified, 1 failed");
    }

    #[test]
    fn changes_show_before_after_unchanged_cleared_and_drift() {
        let mut drifted = target(TargetStatus::Drift);
        drifted.observed = Some(
            [
                ("campaign".to_owned(), Some("flow".to_owned())),
                ("tier".to_owned(), Some("gold".to_owned())),
                ("note".to_owned(), None),
            ]
            .into(),
        );
        assert_eq!(
            changes_text(&drifted),
            r#"campaign: "fall" → "spring" (now "flow"), note: (absent) → (cleared), tier = "gold""#
        );
    }
}

/// ANSI styling that is a no-op when color is off.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    pub fn green(self, t: &str) -> String {
        self.paint("32", t)
    }
    pub fn yellow(self, t: &str) -> String {
        self.paint("33", t)
    }
    pub fn red(self, t: &str) -> String {
        self.paint("31", t)
    }
    pub fn bold(self, t: &str) -> String {
        self.paint("1", t)
    }
    pub fn dim(self, t: &str) -> String {
        self.paint("2", t)
    }
}
