//! The one run lifecycle. Every command that records a run (apply, set, tag, demo, a reconcile
//! iteration, a follow) goes through it:
//!
//! 1. [`begin`] (or [`reopen`]): the run exists in the store before the first request;
//! 2. [`ActiveRun::start`]: the client whose every request is logged to the run, `--rate auto`
//!    asked through it, rows that dead runs left settled, the run's heartbeat, and the stop
//!    relay (a stop request stops the client sending: nothing new leaves, what is on the wire
//!    finishes and is recorded);
//! 3. the work (the apply pipeline or a follow);
//! 4. [`ActiveRun::finish`]: the outcome is read from the store, the result files are written,
//!    and the run is recorded with its status and the exit code the binary maps it to; or
//!    [`ActiveRun::fail`] when an error ended it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use audit::{AuditStore, NewRun, RunId, StatusCounts, TargetFilter};
use genesys_core::{ClientBuildError, GenesysClient, RequestObserver};
use reconcile::SourceInfo;

use crate::apply::{TargetResult, request_log, results, settle};
use crate::auto_rate::AutoRate;
use crate::error::EngineError;
use crate::observer::{Note, RunObserver};
use crate::outcome::{Ending, RunKind, RunOutcome};
use crate::stop::{StopReason, StopSignal};

/// Builds the run's client; its observer logs every request to the run.
pub type ClientFactory<'a> =
    &'a (dyn Fn(Arc<dyn RequestObserver>) -> Result<GenesysClient, ClientBuildError> + Send + Sync);

/// What a run needs besides its work: one value per command, built by the binary's settings.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The command recorded with the run (`apply`, `set`, `tag`, `demo`, `reconcile`).
    pub command: String,
    pub concurrency: usize,
    /// Conversation ids per multi-id analytics read when a desired state's run first finds
    /// which calls ended (`--liveness-batch`); `None`: every call is read (`set`, `tag`).
    pub liveness_batch: Option<usize>,
    pub verify_timeout: Duration,
    /// How a snapshot run verifies its changes (a follow's own setting is its `FollowSettings`).
    pub verify_via: crate::apply::VerifyVia,
    pub results_dir: Option<PathBuf>,
    /// Requests per minute over every token of the run's client.
    pub rate_per_minute: f64,
    /// The options recorded with the run.
    pub options: serde_json::Value,
    /// `--rate auto`, and the factor from a token's rate to the run's `rate_per_minute` (the
    /// tokens of the pool): the org is asked through the run's client before its first other
    /// request, and the run's rate and options are recorded again with what was settled on.
    pub auto_rate: Option<(AutoRate, f64)>,
    /// Who ran it (`$USER`).
    pub operator: Option<String>,
    /// The binary's one mapping from an outcome to an exit code, so that the store records
    /// what the process exits with.
    pub exit_code: fn(&RunOutcome) -> u8,
}

/// A new run in the store; `reverts` names the run it puts back (`attrsync revert`).
pub async fn begin(
    audit: &AuditStore,
    config: &RunConfig,
    source: &SourceInfo,
    reverts: Option<RunId>,
) -> Result<RunId, EngineError> {
    Ok(audit
        .begin_run(NewRun {
            command: config.command.clone(),
            source_path: Some(source.path.clone()),
            source_sha256: Some(source.sha256.clone()).filter(|s| !s.is_empty()),
            options: config.options.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            operator: config.operator.clone(),
            rate_per_minute: Some(config.rate_per_minute),
            reverts,
        })
        .await?)
}

/// An earlier run, taken up again by this process (`--resume`).
pub async fn reopen(
    audit: &AuditStore,
    config: &RunConfig,
    run: &RunId,
) -> Result<(), EngineError> {
    audit.reopen_run(run, &config.command).await?;
    Ok(())
}

/// A run this process works on.
pub(crate) struct ActiveRun {
    pub audit: AuditStore,
    pub run: RunId,
    pub client: GenesysClient,
    pub stop: StopSignal,
    config: RunConfig,
    started: Instant,
    heartbeat: tokio::task::JoinHandle<()>,
    stop_relay: tokio::task::JoinHandle<()>,
    /// A follow settles what dead runs left alongside its work (settling waits out visibility
    /// lag per call, which must not hold up subscribing); finished before the run is.
    settling: Option<tokio::task::JoinHandle<Result<(), EngineError>>>,
    verifications: Arc<crate::apply::verifications::Verifications>,
}

impl ActiveRun {
    /// Everything between a run's row and its first request of work: see the module docs.
    pub async fn start(
        audit: &AuditStore,
        run: RunId,
        config: &RunConfig,
        connect: ClientFactory<'_>,
        observer: &Arc<dyn RunObserver>,
        stop: &StopSignal,
        kind: RunKind,
    ) -> Result<Self, EngineError> {
        let observer_ref = observer.as_ref();
        let started = Instant::now();
        let client = match connect(request_log::RequestLog::shared(audit.clone(), run.clone())) {
            Ok(client) => client,
            Err(err) => {
                fail_run(audit, config, &run, started).await?;
                return Err(EngineError::Client(err));
            }
        };
        observer_ref.connected(&client);
        let verifications = Arc::new(crate::apply::verifications::Verifications::default());
        observer_ref.verifications(&verifications);
        let stop_relay = tokio::spawn({
            let (stop, client) = (stop.clone(), client.clone());
            async move {
                stop.stopped().await;
                client.stop_sending();
            }
        });
        let heartbeat = tokio::spawn({
            let (audit, run, observer) = (audit.clone(), run.clone(), Arc::clone(observer));
            async move {
                let mut every = tokio::time::interval(audit::RUN_HEARTBEAT);
                loop {
                    every.tick().await;
                    let written = audit.heartbeat_run(&run).await.map_err(|err| {
                        tracing::warn!("cannot refresh the run's heartbeat: {err}");
                        err.to_string()
                    });
                    observer.heartbeat(&written);
                }
            }
        });
        let mut active = ActiveRun {
            audit: audit.clone(),
            run,
            client,
            stop: stop.clone(),
            config: config.clone(),
            started,
            heartbeat,
            stop_relay,
            settling: None,
            verifications,
        };
        if let Err(err) = active.ask_rate(observer_ref).await {
            return Err(active.fail(err).await);
        }
        match kind {
            RunKind::Snapshot => {
                if let Err(err) = active.settle(observer_ref).await {
                    return Err(active.fail(err).await);
                }
            }
            RunKind::Follow => {
                let (client, audit, run) = (
                    active.client.clone(),
                    active.audit.clone(),
                    active.run.clone(),
                );
                let (stop, verify_timeout) = (active.stop.clone(), config.verify_timeout);
                let verifications = Arc::clone(&active.verifications);
                let observer = Arc::clone(observer);
                active.settling = Some(tokio::spawn(async move {
                    settle(
                        &client,
                        &audit,
                        &run,
                        verify_timeout,
                        &stop,
                        &verifications,
                        observer.as_ref(),
                    )
                    .await
                }));
            }
        }
        Ok(active)
    }

    /// The pipeline that works on this run's calls.
    pub fn pipeline(
        &self,
        source: &SourceInfo,
        next_seq: u32,
        call_events: Option<Arc<crate::apply::call_events::CallEvents>>,
        event_watch: Option<Arc<crate::apply::event_watch::LazyEventWatch>>,
    ) -> crate::apply::worker::Pipeline {
        crate::apply::worker::Pipeline {
            client: self.client.clone(),
            audit: self.audit.clone(),
            run: self.run.clone(),
            source: source.clone(),
            verify_timeout: self.config.verify_timeout,
            next_seq: std::sync::atomic::AtomicU32::new(next_seq),
            stop: self.stop.clone(),
            call_events,
            event_watch,
            verifications: Arc::clone(&self.verifications),
        }
    }

    /// `--rate auto`: the org's own limit, before any other request of the run.
    async fn ask_rate(&self, observer: &dyn RunObserver) -> Result<(), EngineError> {
        if let Some((auto, tokens)) = &self.config.auto_rate {
            let learned = auto.apply(&self.client, observer).await;
            let mut options = self.config.options.clone();
            if options.is_object() {
                options["rate"] = learned.rate.with_burst(1).to_string().into();
                options["rate_auto"] = serde_json::json!({
                    "namespace": auto.namespace,
                    "from_org": learned.from_org,
                    "note": learned.note,
                });
            }
            self.audit
                .update_run_rate(&self.run, learned.rate.per_minute() * tokens, &options)
                .await?;
        }
        Ok(())
    }

    /// The rows dead runs left.
    async fn settle(&self, observer: &dyn RunObserver) -> Result<(), EngineError> {
        settle(
            &self.client,
            &self.audit,
            &self.run,
            self.config.verify_timeout,
            &self.stop,
            &self.verifications,
            observer,
        )
        .await
    }

    /// Records the outcome read from the store: see the module docs. `results` are what this
    /// process reported (a snapshot's; empty for a follow).
    pub async fn finish(
        mut self,
        kind: RunKind,
        results: Vec<TargetResult>,
        observer: &dyn RunObserver,
    ) -> Result<RunOutcome, EngineError> {
        if let Err(err) = self.settled().await {
            return Err(self.fail(err).await);
        }
        self.heartbeat.abort();
        self.stop_relay.abort();
        if let Err(err) = self.audit.flush().await {
            return Err(self.fail(err.into()).await);
        }
        let outcome = match self.outcome(kind, results).await {
            Ok(outcome) => outcome,
            Err(err) => return Err(self.fail(err).await),
        };
        // Result files are written before the run is finished, so that failing to write them is
        // the run's recorded outcome as well as the process's.
        if let Some(dir) = &self.config.results_dir
            && let Err(err) = write_results(&self.audit, &self.run, dir).await
        {
            let run = self.run.clone();
            let err = self.fail(err).await;
            return Err(EngineError::ResultsNotWritten {
                run,
                source: Box::new(err),
            });
        }
        self.audit
            .finish_run(
                &self.run,
                outcome.status,
                Some(i32::from(outcome.exit_code)),
            )
            .await?;
        if let Some(dir) = &self.config.results_dir {
            observer.note(Note::Info(format!("results written to {}", dir.display())));
        }
        // What the run learned of the server's budget, for the next run's --rate.
        for token in outcome
            .stats
            .tokens
            .iter()
            .filter(|t| t.budget < t.configured_budget)
        {
            observer.note(Note::Info(format!(
                "token {}: the server allowed about {:.0}/min, not {:.0}/min (--rate); pacing to that",
                token.slot + 1,
                token.budget_per_minute(),
                f64::from(token.configured_budget) * 60.0 / token.window.as_secs_f64()
            )));
        }
        observer.run_finished(&outcome);
        Ok(outcome)
    }

    async fn outcome(
        &self,
        kind: RunKind,
        results: Vec<TargetResult>,
    ) -> Result<RunOutcome, EngineError> {
        let unfinished = self.audit.unfinished_targets(&self.run).await?.len() as u64;
        let summary = self.audit.run_summary(&self.run).await?;
        let (counts, ended_rows) = (summary.counts, summary.run.ended_rows);
        let no_live_call_rows = summary.run.no_live_call_rows;
        let ending = ending(kind, self.stop.reason(), unfinished);
        let mut outcome = RunOutcome {
            run: self.run.clone(),
            kind,
            status: ending.run_status(),
            ending,
            counts,
            ended_rows,
            no_live_call_rows,
            unfinished,
            elapsed: self.started.elapsed(),
            stats: self.client.stats(),
            results,
            exit_code: 0,
        };
        outcome.exit_code = (self.config.exit_code)(&outcome);
        Ok(outcome)
    }

    /// Waits for settling alongside the work (a stop ends it soon).
    async fn settled(&mut self) -> Result<(), EngineError> {
        match self.settling.take() {
            Some(settling) => settling.await.map_err(EngineError::JobPanicked)?,
            None => Ok(()),
        }
    }

    /// Records the run as failed, and returns the error that ended it, naming the run.
    pub async fn fail(mut self, err: EngineError) -> EngineError {
        if let Some(settling) = self.settling.take() {
            settling.abort();
        }
        self.heartbeat.abort();
        self.stop_relay.abort();
        let _ = self.audit.flush().await;
        if let Err(record) = fail_run(&self.audit, &self.config, &self.run, self.started).await {
            tracing::warn!("cannot record run {} as failed: {record}", self.run);
        }
        match err {
            err @ (EngineError::RunStopped { .. } | EngineError::ResultsNotWritten { .. }) => err,
            err => EngineError::RunStopped {
                run: self.run,
                source: Box::new(err),
            },
        }
    }
}

/// Settles the rows dead runs left, and says how many.
async fn settle(
    client: &GenesysClient,
    audit: &AuditStore,
    run: &RunId,
    verify_timeout: Duration,
    stop: &StopSignal,
    verifications: &Arc<crate::apply::verifications::Verifications>,
    observer: &dyn RunObserver,
) -> Result<(), EngineError> {
    let settled = settle::settle_dead_runs(
        client,
        audit,
        run,
        verify_timeout,
        stop,
        verifications,
        observer,
    )
    .await?;
    if settled > 0 {
        observer.note(Note::Info(format!(
            "settled {settled} rows that earlier runs left unfinished when their process died"
        )));
    }
    Ok(())
}

/// How a run of `kind` ended, from why it stopped (if it did) and what is left unfinished.
fn ending(kind: RunKind, reason: Option<StopReason>, unfinished: u64) -> Ending {
    match reason {
        Some(StopReason::LockLost(message)) => Ending::LockLost { message },
        // A follow stopped by the budget (or a refused given token) did not end as asked, even
        // with nothing left unfinished.
        Some(StopReason::Budget(message)) if unfinished > 0 || kind == RunKind::Follow => {
            Ending::StoppedEarly { message }
        }
        // A follow's end is a stop by definition.
        Some(StopReason::Requested) if kind == RunKind::Snapshot && unfinished > 0 => {
            Ending::Interrupted
        }
        _ => Ending::Completed,
    }
}

/// Records a run that could not go on as failed, with the exit code a failure maps to.
async fn fail_run(
    audit: &AuditStore,
    config: &RunConfig,
    run: &RunId,
    started: Instant,
) -> Result<(), EngineError> {
    let failed = RunOutcome {
        run: run.clone(),
        kind: RunKind::Snapshot,
        ending: Ending::Failed,
        status: audit::RunStatus::Failed,
        counts: StatusCounts::default(),
        ended_rows: 0,
        no_live_call_rows: 0,
        unfinished: 0,
        elapsed: started.elapsed(),
        stats: genesys_core::ClientStats::default(),
        results: Vec::new(),
        exit_code: 0,
    };
    let code = (config.exit_code)(&failed);
    audit
        .finish_run(run, audit::RunStatus::Failed, Some(i32::from(code)))
        .await?;
    Ok(())
}

async fn write_results(
    audit: &AuditStore,
    run: &RunId,
    dir: &std::path::Path,
) -> Result<(), EngineError> {
    let targets = audit
        .list_targets(&TargetFilter {
            run: Some(run.clone()),
            ..Default::default()
        })
        .await?;
    let input = audit.recorded_input(run).await?;
    results::write(dir, input.as_ref(), &targets).map_err(|source| EngineError::Results {
        dir: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_stopped_with_work_left_is_interrupted_and_a_follow_completed() {
        let requested = Some(StopReason::Requested);
        assert_eq!(
            ending(RunKind::Snapshot, requested.clone(), 3),
            Ending::Interrupted
        );
        assert_eq!(
            ending(RunKind::Snapshot, requested.clone(), 0),
            Ending::Completed
        );
        assert_eq!(ending(RunKind::Follow, requested, 3), Ending::Completed);
    }

    #[test]
    fn the_budget_stops_any_run_early_and_a_lost_lock_always_counts() {
        let budget = Some(StopReason::Budget("wait".into()));
        assert_eq!(
            ending(RunKind::Follow, budget.clone(), 1),
            Ending::StoppedEarly {
                message: "wait".into()
            }
        );
        assert_eq!(
            ending(RunKind::Snapshot, budget.clone(), 0),
            Ending::Completed
        );
        assert_eq!(
            ending(RunKind::Follow, budget, 0),
            Ending::StoppedEarly {
                message: "wait".into()
            }
        );
        assert_eq!(
            ending(RunKind::Follow, Some(StopReason::LockLost("x".into())), 0),
            Ending::LockLost {
                message: "x".into()
            }
        );
    }
}
