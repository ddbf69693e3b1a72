//! One snapshot run through the engine, as every command that makes one (`apply`, `set`, `tag`,
//! `demo`, a `reconcile` iteration) runs it: the CLI's observer, Ctrl-C and SIGTERM as the stop.

use std::sync::Arc;

use audit::AuditStore;
use engine::{RunOutcome, StopSignal, Work};

use crate::observer::CliObserver;
use crate::settings::RunSettings;

pub async fn run(
    work: Work,
    settings: &RunSettings,
    audit: &AuditStore,
    observer: Arc<CliObserver>,
) -> anyhow::Result<RunOutcome> {
    run_until(work, settings, audit, observer, &StopSignal::default()).await
}

/// [`run`], stopped also by `stop` (a `reconcile` whose lock was taken over).
pub async fn run_until(
    work: Work,
    settings: &RunSettings,
    audit: &AuditStore,
    observer: Arc<CliObserver>,
    stop: &StopSignal,
) -> anyhow::Result<RunOutcome> {
    let _listening = crate::signals::stop_on_signals(
        stop,
        "finishing the requests already sent and recording them (the run stays resumable)",
        settings.stop_within(),
    );
    let connection = &settings.connection;
    let connect = |log: Arc<dyn genesys_core::RequestObserver>| connection.build_client(Some(log));
    Ok(engine::execute(
        work,
        &settings.run_config(),
        audit,
        &connect,
        observer,
        stop,
    )
    .await?)
}
