//! A plan in the style of `terraform plan`: what changes, per participant, then one summary line.

use std::fmt::Write;

use reconcile::{Action, Plan, PlanSummary, PlannedTarget};

use super::{Style, quoted};

/// Version of `plan --json` output; bumped when a field changes meaning or disappears.
const PLAN_JSON_FORMAT_VERSION: u32 = 2;

/// The plan as `plan --json` (and `revert --dry-run --json`) prints it.
pub fn plan_document(plan: &Plan) -> serde_json::Value {
    serde_json::json!({
        "format_version": PLAN_JSON_FORMAT_VERSION,
        "summary": plan.summary(),
        "targets": plan.targets,
    })
}

pub fn plan_text(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    let mut any_change = false;
    for target in &plan.targets {
        match &target.action {
            Action::Update { set, clear } => {
                any_change = true;
                let _ = writeln!(out, "  {} {}", style.yellow("~"), heading(target, style));
                let width = set
                    .keys()
                    .chain(clear.keys())
                    .map(|k| k.chars().count())
                    .max()
                    .unwrap_or(0);
                for (key, change) in set {
                    match &change.before {
                        None => {
                            let _ = writeln!(
                                out,
                                "      {} {key:<width$} = {}",
                                style.green("+"),
                                quoted(&change.after)
                            );
                        }
                        Some(before) => {
                            let _ = writeln!(
                                out,
                                "      {} {key:<width$} = {} -> {}",
                                style.yellow("~"),
                                quoted(before),
                                quoted(&change.after)
                            );
                        }
                    }
                }
                for (key, before) in clear {
                    let _ = writeln!(
                        out,
                        "      {} {key:<width$} = {} -> \"\" (clear)",
                        style.red("-"),
                        quoted(before)
                    );
                }
                out.push('\n');
            }
            Action::Skip { reason, detail } => {
                any_change = true;
                let detail = detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                // One classification: what apply would record this target as.
                let (mark, what) = match engine::planned_status(&target.action).class() {
                    audit::StatusClass::NotDone => (style.red("x"), "fails"),
                    _ => (style.dim("!"), "skipped"),
                };
                let _ = writeln!(
                    out,
                    "  {mark} {}: {what}, {}{detail}\n",
                    heading(target, style),
                    reason.describe()
                );
            }
            Action::Unchanged => {}
        }
    }
    if !any_change {
        out.push_str("No changes. Live calls match the desired state.\n\n");
    }
    let _ = writeln!(out, "{}", summary_line(&plan.summary(), style));
    out
}

fn heading(target: &PlannedTarget, style: Style) -> String {
    let who = match (&target.participant_id, &target.purpose) {
        (Some(pid), Some(purpose)) => format!("participant {pid} ({purpose})"),
        (Some(pid), None) => format!("participant {pid}"),
        (None, _) => engine::apply::target_text::selectors_text(&target.selectors),
    };
    let lines = target
        .lines
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if lines.is_empty() {
        // A revert's targets come from a run, not from input lines.
        return format!("{} {who}", style.bold(&target.conversation_id));
    }
    format!(
        "{} {who} {}",
        style.bold(&target.conversation_id),
        style.dim(&format!("# line {lines}"))
    )
}

pub fn summary_line(s: &PlanSummary, style: Style) -> String {
    let conflicts = match s.conflicts {
        0 => String::new(),
        n => format!(", {n} in conflict (the input gives one key two values: apply fails them)"),
    };
    format!(
        "{} {} to update ({} {} set, {} cleared), {} unchanged, {} skipped{conflicts}.",
        style.bold("Plan:"),
        s.to_update,
        s.keys_set,
        if s.keys_set == 1 { "key" } else { "keys" },
        s.keys_cleared,
        s.unchanged,
        s.skipped
    )
}
