//! `attrsync plan SOURCE`: read the desired state, ask analytics which of its calls ended
//! (batched) and which live calls its numbered rows select, read each other call once, print what
//! would change. Never sends a PATCH.

use std::io::Write;

use anyhow::Context;
use engine::numbered::plan_live;

use super::source::read_desired;
use crate::cli::PlanArgs;
use crate::exit::Exit;
use crate::render::{
    Style,
    plan::{plan_document, plan_text},
};
use crate::settings::Connection;
use crate::ui::Ui;

pub async fn run(args: PlanArgs, connection: Connection, ui: Ui) -> anyhow::Result<Exit> {
    // Settled before the source is read: a wrong ATTRSYNC_LIVENESS_BATCH reads nothing.
    let batch = crate::settings::liveness_batch(args.liveness_batch).map_err(|err| match err {
        crate::settings::ResolveError::Config(err) => err,
        crate::settings::ResolveError::Usage(err) => anyhow::Error::from(*err),
    })?;
    let desired = read_desired(&args.source, &args.source_args, ui).await?;
    let client = connection.connect(ui).await?;
    let planned = plan_live(&client, &desired, batch, args.concurrency).await?;
    for note in &planned.notes {
        eprintln!("warning: {note}");
    }
    let plan = &planned.plan;

    if let Some(out) = &args.out {
        let metadata = reconcile::saved_plan::PlanMetadata {
            input: desired.input.clone(),
            no_live_call: planned.no_live_call.clone(),
            ..reconcile::saved_plan::PlanMetadata::new(
                desired.source.clone(),
                &args.source_args.default_purpose,
                std::time::SystemTime::now(),
            )
        };
        reconcile::saved_plan::save(plan, &metadata, out)
            .with_context(|| format!("cannot save the plan to {}", out.display()))?;
        ui.note(format_args!(
            "plan saved to {}; apply it with `{}`",
            out.display(),
            connection
                .hints
                .connect(&["apply", &out.display().to_string()])
        ));
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &plan_document(plan))?;
        writeln!(stdout)?;
    } else {
        write!(stdout, "{}", plan_text(plan, Style { color: ui.color }))?;
    }
    let summary = plan.summary();
    if summary.conflicts > 0 {
        // `apply` would fail these targets: the plan says so with the same exit code.
        eprintln!(
            "error: {} targets are in conflict (two input rows give one key different values); fix the input",
            summary.conflicts
        );
        return Ok(Exit::Failure);
    }
    let pending = summary.to_update > 0;
    Ok(if args.detailed_exitcode && pending {
        Exit::ChangesPending
    } else {
        Exit::Success
    })
}
