//! `attrsync audit runs`: one line per run, newest first.

use super::{AUDIT_JSON_FORMAT_VERSION, open_existing, print_json, print_text};
use crate::cli::AuditRunsArgs;
use crate::exit::Exit;
use crate::render::Style;
use crate::ui::Ui;
use report::tables::{RunView, runs_table};

pub async fn run(args: AuditRunsArgs, ui: Ui) -> anyhow::Result<Exit> {
    let ui = ui.with_json(args.json);
    let store = open_existing(&args.audit).await?;
    let runs = store.list_runs(args.limit).await?;
    if args.json {
        let views: Vec<RunView<'_>> = runs.iter().map(RunView::new).collect();
        print_json(&serde_json::json!({
            "format_version": AUDIT_JSON_FORMAT_VERSION,
            "runs": views,
        }))?;
    } else if runs.is_empty() {
        ui.note(format_args!(
            "no runs recorded in {}",
            store.path().display()
        ));
    } else {
        print_text(&runs_table(&runs, Style { color: ui.color }))?;
    }
    store.close().await?;
    Ok(Exit::Success)
}
