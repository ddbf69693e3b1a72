//! `attrsync audit report RUN|latest --html FILE`: one self-contained HTML page about a run.

use anyhow::Context;

use super::{open_existing, resolve_run};
use crate::cli::AuditReportArgs;
use crate::exit::Exit;
use crate::ui::Ui;
use audit::{TargetFilter, TargetOrder, UnixMillis};
use report::{MAX_PROBLEM_ROWS, ReportInput, html_report, problem_statuses};

pub async fn run(args: AuditReportArgs, ui: Ui) -> anyhow::Result<Exit> {
    let store = open_existing(&args.audit).await?;
    let run = resolve_run(&store, &args.run).await?;
    let summary = store.run_summary(&run).await?;
    let requests = store.request_timeline(&run).await?;
    let problems = store
        .list_targets(&TargetFilter {
            run: Some(run.clone()),
            statuses: problem_statuses(),
            order: TargetOrder::Plan,
            limit: Some(MAX_PROBLEM_ROWS),
            ..TargetFilter::default()
        })
        .await?;
    let reverted_by = store.reverted_by(&run).await?;
    store.close().await?;

    let page = html_report(&ReportInput {
        summary: &summary,
        requests: &requests,
        problems: &problems,
        reverted_by: &reverted_by,
        tool_version: env!("CARGO_PKG_VERSION"),
        generated_at: UnixMillis::now(),
    })?;
    tokio::fs::write(&args.html, page)
        .await
        .with_context(|| format!("cannot write the report {}", args.html.display()))?;
    ui.note(format_args!(
        "wrote the report of run {run} to {}",
        args.html.display()
    ));
    Ok(Exit::Success)
}
