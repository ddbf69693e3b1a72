//! `attrsync audit list [filters]`: targets across runs, most recently updated first.

use super::{AUDIT_JSON_FORMAT_VERSION, open_existing, print_json, print_text, target_filter};
use crate::cli::AuditListArgs;
use crate::exit::Exit;
use crate::render::Style;
use crate::ui::Ui;
use audit::TargetOrder;
use report::tables::targets_table;

pub async fn run(args: AuditListArgs, ui: Ui) -> anyhow::Result<Exit> {
    let ui = ui.with_json(args.json);
    let store = open_existing(&args.audit).await?;
    let filter = target_filter(
        &store,
        &args.filters,
        Some(args.limit),
        TargetOrder::NewestFirst,
    )
    .await?;
    let targets = store.list_targets(&filter).await?;
    if args.json {
        print_json(&serde_json::json!({
            "format_version": AUDIT_JSON_FORMAT_VERSION,
            "targets": targets,
        }))?;
    } else if targets.is_empty() {
        ui.note("no targets match");
    } else {
        print_text(&targets_table(&targets, true, Style { color: ui.color }))?;
        if targets.len() == args.limit as usize {
            ui.note(format_args!(
                "showing the {} most recently updated targets; narrow the filters or raise --limit",
                args.limit
            ));
        }
    }
    store.close().await?;
    Ok(Exit::Success)
}
