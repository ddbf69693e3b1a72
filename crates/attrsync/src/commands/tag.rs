//! `attrsync tag --queue ID|NAME... [--purpose customer] [--dry-run] key=value...`: every live call of
//! the queues gets the attributes, through the same plan -> apply -> verify -> audit pipeline as
//! `apply`. The desired state is built in memory from the live-call listing; its source is
//! recorded as `queue:ID[,ID...]`. Every `--queue` is resolved to one queue of the org first
//! (`engine::queues`): an unknown or ambiguous queue ends the command before a run begins. With `--follow`, see `crate::follow`.

use std::io::Write as _;

use anyhow::Context as _;
use engine::Work;
use engine::live::{fetch_live, live_call_ids};
use genesys_core::models::Attributes;
use reconcile::{DesiredEntry, DesiredState, Selector, SourceFormat, SourceInfo, Target};

use super::apply::open_audit;
use crate::cli::TagArgs;
use crate::exit::Exit;
use crate::observer::CliObserver;
use crate::render::Style;
use crate::render::plan::plan_text;
use crate::render::summary::{run_summary, stopped_early};
use crate::settings::RunSettings;
use crate::ui::Ui;

/// `attributes` are the `KEY=VALUE` arguments, already checked (`settings::resolve`).
pub async fn run(
    args: TagArgs,
    attributes: Attributes,
    run_settings: RunSettings,
    ui: Ui,
) -> anyhow::Result<Exit> {
    let ui = ui.with_json(run_settings.json);
    if args.follow {
        return follow(&args, attributes, run_settings, ui).await;
    }
    let client = run_settings.connection.connect(ui).await?;
    // Before any run is recorded: a name, a typo or a queue this client may not see stops here.
    let resolved = engine::queues::resolve_all(&client, &args.queues).await?;
    let queue_ids: Vec<String> = resolved.iter().map(|q| q.id.clone()).collect();
    let run_settings = run_settings.with_resolved_queues(&queue_ids);
    let queues = resolved
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let conversation_ids = live_call_ids(&client, &queue_ids, args.lookback)
        .await
        .with_context(|| format!("cannot list the live calls of queue {queues}"))?;
    if conversation_ids.is_empty() {
        ui.note(format_args!(
            "no live calls in queue {queues}; nothing to do"
        ));
        return Ok(Exit::Success);
    }
    ui.note(format_args!(
        "{} live calls in queue {queues}",
        conversation_ids.len()
    ));
    let desired = desired_state(&args, &queue_ids, attributes, &conversation_ids);

    if args.dry_run {
        let live = fetch_live(&client, conversation_ids, run_settings.concurrency).await?;
        let plan = reconcile::diff(&desired, &live);
        let mut stdout = std::io::stdout().lock();
        write!(stdout, "{}", plan_text(&plan, Style { color: ui.color }))?;
        stdout.flush()?;
        ui.note("dry run: nothing was sent");
        return Ok(Exit::Success);
    }

    let audit_path = &run_settings.audit_path;
    let audit = open_audit(audit_path).await?;
    let outcome = super::snapshot::run(
        Work::Desired(desired),
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

/// `tag --follow`: the one follow (`super::follow`), of a desired state of one row for every
/// call.
async fn follow(
    args: &TagArgs,
    attributes: Attributes,
    run_settings: RunSettings,
    ui: Ui,
) -> anyhow::Result<Exit> {
    let desired = engine::follow::FollowDesired::every_call(
        Selector::Purpose(args.purpose.to_lowercase()),
        attributes,
    );
    let follow = super::follow::Follow {
        queues: args.queues.clone(),
        desired: super::follow::Desired::EveryCall(desired),
        lookback: args.lookback,
        verify_via: args.verify.verify_via.into(),
        backfill_lag: args.backfill_lag,
        socket_idle_timeout: args.socket_idle_timeout,
        metrics_file: args.metrics_file.clone(),
        listen: args.listen,
    };
    super::follow::run(follow, run_settings, ui).await
}

/// One target per call: the participants with the purpose get every attribute. The "line" of
/// an entry is the call's position in the listing.
fn desired_state(
    args: &TagArgs,
    queue_ids: &[String],
    attributes: Attributes,
    conversation_ids: &[String],
) -> DesiredState {
    let selector = Selector::Purpose(args.purpose.to_lowercase());
    DesiredState::from_entries(
        conversation_ids
            .iter()
            .zip(1..)
            .map(|(conversation_id, position)| DesiredEntry {
                target: Target {
                    conversation_id: conversation_id.clone(),
                    selector: selector.clone(),
                },
                attributes: attributes.clone(),
                lines: vec![position],
            })
            .collect(),
        SourceInfo {
            path: format!("queue:{}", queue_ids.join(",")),
            format: SourceFormat::CsvWide,
            sha256: String::new(),
        },
    )
}
