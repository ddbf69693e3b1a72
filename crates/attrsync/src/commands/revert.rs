//! `attrsync revert RUN|latest`: the engine plans the revert from the audit store
//! (`engine::revert`); this prints it as `plan` does and, without `--dry-run`, applies it as
//! `apply` applies a saved plan.

use std::io::Write;
use std::path::Path;

use audit::AuditStore;
use engine::revert::{RevertFilter, RevertPlan};

use crate::cli::RevertArgs;
use crate::exit::Exit;
use crate::observer::CliObserver;
use crate::render::Style;
use crate::render::plan::{plan_document, plan_text, summary_line};
use crate::render::summary::{run_summary, stopped_early};
use crate::settings::RunSettings;
use crate::ui::Ui;

/// `--dry-run`: the plan, from the store opened read-only; no request, no run recorded.
pub async fn dry_run(args: RevertArgs, audit_path: &Path, ui: Ui) -> anyhow::Result<Exit> {
    let audit = super::audit::open_read_only_at(audit_path).await?;
    let revert = plan(&audit, &args).await?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &plan_document(&revert.plan))?;
        writeln!(stdout)?;
    } else {
        write!(
            stdout,
            "{}",
            plan_text(&revert.plan, Style { color: ui.color })
        )?;
    }
    ui.note(format_args!(
        "dry run: nothing was sent; applied, each key is put back only if it still reads as run {} wrote it",
        revert.original.id
    ));
    audit.close().await?;
    Ok(Exit::Success)
}

pub async fn run(args: RevertArgs, run_settings: RunSettings, ui: Ui) -> anyhow::Result<Exit> {
    let ui = ui.with_json(run_settings.json);
    let audit_path = &run_settings.audit_path;
    // A revert is a run of its own; like `apply --resume`, it never creates a store.
    let audit = AuditStore::open_no_create(audit_path).await?;
    let revert = plan(&audit, &args).await?;
    let run = revert.original.id.clone();
    if !run_settings.json {
        let mut stdout = std::io::stdout().lock();
        write!(
            stdout,
            "{}",
            plan_text(&revert.plan, Style { color: ui.color })
        )?;
        stdout.flush()?;
    }
    if !revert.plan.has_changes() {
        ui.note(format_args!("run {run} has no change to revert"));
        return Ok(Exit::Success);
    }
    ui.note(format_args!(
        "reverting run {run}: {}",
        summary_line(&revert.plan.summary(), Style { color: false })
    ));
    let work = super::guard::max_changes(revert.into_work(), &run_settings, ui).await?;
    let outcome = super::snapshot::run(
        work,
        &run_settings,
        &audit,
        CliObserver::new(ui, run_settings.json),
    )
    .await?;
    if let Some(line) = stopped_early(&outcome, &run_settings.hints) {
        eprintln!("{line}");
    }
    ui.note(run_summary(&outcome, audit_path, &run_settings.hints));
    Ok(crate::exit::for_run(&outcome))
}

/// The engine's plan of the revert the arguments ask for; warns when the run still runs.
async fn plan(audit: &AuditStore, args: &RevertArgs) -> anyhow::Result<RevertPlan> {
    let run = super::audit::resolve_run(audit, &args.run).await?;
    let filter = RevertFilter {
        conversations: args.conversations.clone(),
        keys: args.keys.clone(),
    };
    let revert = engine::revert::plan(audit, &run, &filter).await?;
    if revert.original_is_running() {
        eprintln!(
            "warning: run {run} is still running: this revert covers the changes it recorded \
             until now, not those it makes from now on (stop it first to revert all of them)"
        );
    }
    Ok(revert)
}
