//! The one follow of `tag --queue Q --follow k=v` (one row for every call) and `reconcile
//! SOURCE --follow --queue Q` (the source's rows, watched for new versions): the engine's
//! follow (`engine::follow`), until Ctrl-C or SIGTERM (its normal end).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use engine::StopSignal;
use engine::follow::{FollowDesired, FollowSource, SourceWatch};
use engine::queues::QueueRef;

use super::apply::open_audit;
use crate::cli::SourceArgs;
use crate::exit::Exit;
use crate::observer::CliObserver;
use crate::settings::RunSettings;
use crate::ui::Ui;

/// What the followed calls are kept equal to.
pub enum Desired {
    /// `tag --follow`: one row for every call.
    EveryCall(FollowDesired),
    /// `reconcile --follow`: a CSV or SQLite source, looked at every `poll_interval`.
    Source {
        path: PathBuf,
        args: SourceArgs,
        poll_interval: Duration,
    },
}

/// A follow's flags, as `tag` and `reconcile` both have them.
pub struct Follow {
    pub queues: Vec<QueueRef>,
    pub desired: Desired,
    pub lookback: Duration,
    pub verify_via: engine::VerifyVia,
    pub backfill_lag: Duration,
    pub socket_idle_timeout: Duration,
    pub metrics_file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
}

pub async fn run(follow: Follow, run_settings: RunSettings, ui: Ui) -> anyhow::Result<Exit> {
    let stop = StopSignal::default();
    let _listening = crate::signals::stop_on_signals(
        &stop,
        "finishing the requests already sent and recording them; calls not yet sent are recorded as unprocessed",
        run_settings.stop_within(),
    );
    // The source's first version, before anything is sent or recorded: an invalid one ends the
    // command with its problems. The watch starts first, so that a change made meanwhile is
    // seen at its first poll.
    let (desired, source) = match follow.desired {
        Desired::EveryCall(desired) => (desired, None),
        Desired::Source {
            path,
            args,
            poll_interval,
        } => {
            // A follow records no input rows and writes no result files: none are kept.
            let options = reconcile::ReadOptions {
                keep_input: false,
                ..super::source::read_options(&args)
            };
            let watch = SourceWatch::open(
                &path,
                super::source::sqlite_select(&args),
                options.clone(),
                poll_interval,
            )
            .await?;
            let first = super::source::read_desired_with(&path, &args, &options, ui).await?;
            let info = first.source.clone();
            let desired = FollowDesired::from_state(first);
            (desired, Some(FollowSource { info, watch }))
        }
    };
    let watching_source = source.is_some();
    // Before any run is recorded (a stop meanwhile ends the follow as soon as it starts).
    let client = run_settings.connection.connect(ui).await?;
    let queue_ids: Vec<String> = engine::queues::resolve_all(&client, &follow.queues)
        .await?
        .into_iter()
        .map(|q| q.id)
        .collect();
    drop(client);
    let run_settings = &run_settings.with_resolved_queues(&queue_ids);
    let settings = engine::follow::FollowSettings {
        queues: queue_ids,
        desired,
        source,
        lookback: follow.lookback,
        verify_via: follow.verify_via,
        backfill_lag: follow.backfill_lag,
        socket_idle_timeout: follow.socket_idle_timeout,
    };
    let audit = open_audit(&run_settings.audit_path).await?;
    let observer = CliObserver::for_follow(ui, run_settings.json, follow.metrics_file);
    let _serving = match follow.listen {
        Some(addr) => Some(serve_follow(addr, &observer).await?),
        None => None,
    };
    let connection = &run_settings.connection;
    let connect = |log: Arc<dyn genesys_core::RequestObserver>| connection.build_client(Some(log));
    let outcome = engine::follow::follow(
        settings,
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
        let versions = if watching_source {
            format!(
                "; {} new source versions in force, {} refused",
                m.source_versions_applied, m.source_versions_refused
            )
        } else {
            String::new()
        };
        ui.note(format_args!(
            "run {}: followed for {}: {} calls seen, {} tagged ({} verified by event, {} by read), \
             {} skipped, {} failed, {} drift, {} unprocessed; {} requests, {} answered 429{versions}",
            outcome.run,
            humantime::format_duration(Duration::from_secs(outcome.elapsed.as_secs())),
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
    addr: SocketAddr,
    observer: &Arc<CliObserver>,
) -> anyhow::Result<engine::service::serve::Serving> {
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
