//! `attrsync audit show RUN|latest`: one run's summary and its targets.

use super::{AUDIT_JSON_FORMAT_VERSION, open_existing, print_json, print_text, resolve_run};
use crate::cli::AuditShowArgs;
use crate::exit::Exit;
use crate::render::Style;
use crate::ui::Ui;
use audit::{TargetFilter, TargetOrder};
use report::tables::{RunView, run_details, targets_table};

pub async fn run(args: AuditShowArgs, ui: Ui) -> anyhow::Result<Exit> {
    let ui = ui.with_json(args.json);
    let store = open_existing(&args.audit).await?;
    let run = resolve_run(&store, &args.run).await?;
    let summary = store.run_summary(&run).await?;
    let processes = store.run_processes(&run).await?;
    let reverted_by = store.reverted_by(&run).await?;
    let targets = store
        .list_targets(&TargetFilter {
            run: Some(run),
            statuses: args.statuses.clone(),
            order: TargetOrder::Plan,
            limit: Some(args.limit).filter(|&n| n > 0),
            ..TargetFilter::default()
        })
        .await?;
    let matching: u64 = if args.statuses.is_empty() {
        summary.counts.total()
    } else {
        args.statuses.iter().map(|s| summary.counts.get(*s)).sum()
    };
    let more = matching.saturating_sub(targets.len() as u64);
    if args.json {
        print_json(&serde_json::json!({
            "format_version": AUDIT_JSON_FORMAT_VERSION,
            "run": RunView::new(&summary),
            "processes": processes,
            "reverted_by": reverted_by.iter().map(RunView::new).collect::<Vec<_>>(),
            "targets": targets,
            "targets_not_shown": more,
        }))?;
    } else {
        let style = Style { color: ui.color };
        let mut text = run_details(&summary, &processes, &reverted_by, style);
        text.push('\n');
        if targets.is_empty() {
            text.push_str("(no targets");
            text.push_str(if args.statuses.is_empty() {
                ")\n"
            } else {
                " with the given status)\n"
            });
        } else {
            text.push_str(&targets_table(&targets, false, style));
            if more > 0 {
                text.push_str(&format!(
                    "... and {more} more targets (--limit 0 shows all, --status narrows)\n"
                ));
            }
        }
        print_text(&text)?;
    }
    store.close().await?;
    Ok(Exit::Success)
}
