//! `attrsync tag --queue ID|NAME... [--purpose customer] [--dry-run] key=value...`: every live call of
//! the queues gets the attributes, through the same plan -> apply -> verify -> audit pipeline as
//! `apply`. The desired state is built in memory from the live-call listing; its source is
//! recorded as `queue:ID[,ID...]`. Every `--queue` is resolved to one queue of the org first
//! (`engine::queues`): an unknown or ambiguous queue ends the command before a run begins. With `--follow`, see `crate::follow`.

use std::io::Write as _;

use anyhow::Context as _;
use engine::live::{fetch_live, live_call_ids};
use engine::{StopSignal, Work};
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

/// `tag --follow`: the engine's follow, until Ctrl-C or SIGTERM (its normal end).
async fn follow(
    args: &TagArgs,
    attributes: Attributes,
    run_settings: RunSettings,
    ui: Ui,
) -> anyhow::Result<Exit> {
    let stop = StopSignal::default();
    let _listening = crate::signals::stop_on_signals(
        &stop,
        "finishing the requests already sent and recording them; calls not yet sent are recorded as unprocessed",
        run_settings.stop_within(),
    );
    // Before any run is recorded (a stop meanwhile ends the follow as soon as it starts).
    let client = run_settings.connection.connect(ui).await?;
    let queue_ids: Vec<String> = engine::queues::resolve_all(&client, &args.queues)
        .await?
        .into_iter()
        .map(|q| q.id)
        .collect();
    drop(client);
    let run_settings = &run_settings.with_resolved_queues(&queue_ids);
    let settings = engine::follow::FollowSettings {
        queues: queue_ids,
        selector: Selector::Purpose(args.purpose.to_lowercase()),
        attributes,
        lookback: args.lookback,
        verify_via: args.verify.verify_via.into(),
        backfill_lag: args.backfill_lag,
        socket_idle_timeout: args.socket_idle_timeout,
    };
    let audit = open_audit(&run_settings.audit_path).await?;
    let observer = CliObserver::for_follow(ui, run_settings.json, args.metrics_file.clone());
    let _serving = match args.listen {
        Some(addr) => Some(serve_follow(addr, &observer).await?),
        None => None,
    };
    let connection = &run_settings.connection;
    let connect =
        |log: std::sync::Arc<dyn genesys_core::RequestObserver>| connection.build_client(Some(log));
    let outcome = engine::follow::follow(
        &settings,
        &run_settings.run_config(),
        &audit,
        &connect,
        observer.clone(),
        &stop,
    )
    .await?;
    if let engine::Ending::StoppedEarly { message } = &outcome.ending {
        eprintln!(
            "attrsync: {message}; {} targets were not finished: start the follow again once the API allows it (it lists the queues' live calls first, and settles what run {} left)",
            outcome.unfinished, outcome.run
        );
    }
    if let Some(m) = observer.follow_metrics() {
        ui.note(format_args!(
            "run {}: followed for {}: {} calls seen, {} tagged ({} verified by event, {} by read), \
             {} skipped, {} failed, {} drift, {} unprocessed; {} requests, {} answered 429",
            outcome.run,
            humantime::format_duration(std::time::Duration::from_secs(outcome.elapsed.as_secs())),
            m.calls_seen,
            m.tagged,
            m.verified_by_event,
            m.verified_by_read,
            m.skipped,
            m.failed,
            m.drift,
            outcome.counts.get(audit::TargetStatus::Unprocessed),
            outcome.stats.requests,
            outcome.stats.throttled,
        ));
    }
    Ok(crate::exit::for_run(&outcome))
}

/// `--listen`: `/metrics` from the follow's last counters, `/healthz` while its loop reports
/// (it reports every 10 s; three missed reports is a stuck follow). Stops when dropped.
async fn serve_follow(
    addr: std::net::SocketAddr,
    observer: &std::sync::Arc<CliObserver>,
) -> anyhow::Result<engine::service::serve::Serving> {
    use std::sync::Arc;
    let metrics_observer = Arc::clone(observer);
    let health_observer = Arc::clone(observer);
    Ok(engine::service::serve::listen(
        addr,
        Arc::new(move || {
            metrics_observer
                .follow_metrics()
                .map(|m| engine::service::metrics::render_follow(&m))
                .unwrap_or_default()
        }),
        Arc::new(move || health_observer.follow_health()),
    )
    .await?)
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
