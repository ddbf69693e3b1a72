//! `attrsync reconcile SOURCE --every 5m | --once`: scheduled reconciliation. With `--follow
//! --queue Q`, continuous reconciliation of the queues' live calls: the one follow of
//! `super::follow` ([`follow`]).
//!
//! Each iteration re-reads the source (a CRM may have rewritten it) and runs the same pipeline
//! as `apply`, as a run of its own in the audit store. One reconcile at a time per audit store:
//! the store's `reconcile` lock is held, and heartbeated, for the whole process. Quiet by
//! design: one summary line per iteration on stderr. Ctrl-C and SIGTERM let the iteration in
//! flight finish its in-flight requests, then the process exits (0 between iterations, 130 if
//! an iteration was cut short). With `--listen`, `/metrics` serves the last iteration's metrics
//! and `/healthz` whether the loop is alive ([`loop_health`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use super::apply::open_audit;
use super::source::read_desired;
use crate::cli::ReconcileArgs;
use crate::exit::Exit;
use crate::observer::CliObserver;
use crate::output::OutputContext;
use crate::settings::RunSettings;
use crate::ui::Ui;
use audit::{AuditStore, RunId, StatusClass, StatusCounts, TargetStatus};
use engine::service::metrics::{self, IterationMetrics};
use engine::{StopSignal, Work};

/// Why the loop stops before the next iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    Signal,
    /// Another process took the lock over (we were presumed dead, e.g. after a suspend).
    LockLost,
}

/// The first stop request wins; later ones change nothing.
type StopSender = Arc<watch::Sender<Option<StopReason>>>;

fn request_stop(sender: &StopSender, reason: StopReason) {
    sender.send_if_modified(|current| {
        let first = current.is_none();
        if first {
            *current = Some(reason);
        }
        first
    });
}

/// Where the loop is, for `/healthz`.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Between iterations since this instant (the loop's start, before the first).
    Waiting(std::time::Instant),
    /// In an iteration.
    Iterating,
}

/// What the loop leaves for `--listen`: the last iteration's metrics (the text
/// `--metrics-file` gets) and where the loop is.
struct Served {
    metrics: String,
    phase: Phase,
}

type LoopState = Arc<Mutex<Served>>;

fn set_phase(state: &LoopState, phase: Phase) {
    state.lock().unwrap_or_else(PoisonError::into_inner).phase = phase;
}

/// `/healthz` of the loop: alive while the last iteration finished or started within twice the
/// interval plus that iteration's own running time. So an iteration in flight is alive, however
/// long it takes (its requests have their own timeouts, and a lost lock stops it); between
/// iterations the next one is due an interval after the last one started, so twice the interval
/// after the last one finished it is overdue. A lost lock or a requested stop is unhealthy at
/// once: the process is ending.
fn loop_health(
    phase: Phase,
    every: Duration,
    stop: Option<StopReason>,
    now: std::time::Instant,
) -> Result<(), String> {
    match stop {
        Some(StopReason::LockLost) => {
            return Err(
                "the reconcile lock was taken over by another process; stopping".to_owned(),
            );
        }
        Some(StopReason::Signal) => return Err("stopping: a stop was requested".to_owned()),
        None => {}
    }
    match phase {
        Phase::Iterating => Ok(()),
        Phase::Waiting(since) => {
            let waited = now.saturating_duration_since(since);
            if waited <= every.saturating_mul(2) {
                Ok(())
            } else {
                Err(format!(
                    "no iteration for {}s, though one is due every {}",
                    waited.as_secs(),
                    humantime::format_duration(every)
                ))
            }
        }
    }
}

/// `--listen`: `/metrics` from the last iteration, `/healthz` from [`loop_health`]. Stops
/// when dropped.
async fn serve_loop(
    addr: std::net::SocketAddr,
    every: Duration,
    state: &LoopState,
    stop: watch::Receiver<Option<StopReason>>,
) -> anyhow::Result<engine::service::serve::Serving> {
    let metrics_state = Arc::clone(state);
    let health_state = Arc::clone(state);
    Ok(engine::service::serve::listen(
        addr,
        Arc::new(move || {
            metrics_state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .metrics
                .clone()
        }),
        Arc::new(move || {
            let phase = health_state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .phase;
            loop_health(phase, every, *stop.borrow(), std::time::Instant::now())
        }),
    )
    .await?)
}

/// How one iteration ended, for the summary line, the metrics and the exit code.
struct Iteration {
    run: RunId,
    counts: StatusCounts,
    /// Desired rows whose call had ended (a count on the run, no targets).
    ended_rows: u64,
    /// Desired rows selecting calls by a number no live call had (a count, no targets).
    no_live_call_rows: u64,
    requests: u64,
    throttled: u64,
    interrupted: bool,
    exit: Exit,
}

pub async fn run(args: ReconcileArgs, settings: RunSettings, ui: Ui) -> anyhow::Result<Exit> {
    let audit = open_audit(&settings.audit_path).await?;
    let lock = engine::locks::hold_reconcile(&audit).await?;
    // Runs left `running` by a crashed predecessor; safe to settle now that we hold the lock.
    match audit.mark_interrupted_runs().await {
        Ok(settled) if !settled.is_empty() => tracing::warn!(
            runs = settled.len(),
            "marked runs of processes that are gone as interrupted"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(
            "cannot settle runs of processes that are gone: {}",
            engine::error_chain(&err)
        ),
    }

    let (sender, stop) = watch::channel(None);
    let sender: StopSender = Arc::new(sender);
    let signals = {
        let sender = Arc::clone(&sender);
        tokio::spawn(async move {
            crate::signals::received_at_least(1).await;
            request_stop(&sender, StopReason::Signal);
        })
    };
    // Stop requests are this loop's to handle until it returns.
    let handling = crate::signals::Handling::start();
    // A lock taken over stops the iteration in flight, and the loop.
    let iteration_stop = StopSignal::default();
    let lock_watch = lock.stop_on_loss(&iteration_stop);
    let lost = {
        let sender = Arc::clone(&sender);
        let iteration_stop = iteration_stop.clone();
        tokio::spawn(async move {
            iteration_stop.stopped().await;
            if matches!(
                iteration_stop.reason(),
                Some(engine::stop::StopReason::LockLost(_))
            ) {
                request_stop(&sender, StopReason::LockLost);
            }
        })
    };

    let state: LoopState = Arc::new(Mutex::new(Served {
        metrics: String::new(),
        phase: Phase::Waiting(std::time::Instant::now()),
    }));
    let outcome = async {
        let _serving = match (args.listen, args.every) {
            (Some(addr), Some(every)) => Some(serve_loop(addr, every, &state, stop.clone()).await?),
            _ => None,
        };
        schedule(&args, &settings, ui, &audit, &state, stop, &iteration_stop).await
    }
    .await;

    lock_watch.abort();
    lost.abort();
    signals.abort();
    drop(handling);
    lock.release().await;
    audit.close().await?;
    outcome
}

/// `reconcile SOURCE --follow --queue Q...`: the queues' live calls kept equal to the source,
/// looked at for new versions every `poll_interval`.
pub async fn follow(
    args: ReconcileArgs,
    poll_interval: Duration,
    settings: RunSettings,
    ui: Ui,
) -> anyhow::Result<Exit> {
    let follow = super::follow::Follow {
        queues: args.queues,
        desired: super::follow::Desired::Source {
            path: args.source,
            args: args.source_args,
            poll_interval,
        },
        lookback: args.lookback,
        verify_via: args.verify.verify_via.into(),
        backfill_lag: args.backfill_lag,
        socket_idle_timeout: args.socket_idle_timeout,
        metrics_file: args.metrics_file,
        listen: args.listen,
    };
    super::follow::run(follow, settings, ui).await
}

/// When iterations run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Schedule {
    Once,
    Every(Duration),
}

/// The loop (or the single iteration of `--once`) and its exit code.
async fn schedule(
    args: &ReconcileArgs,
    settings: &RunSettings,
    ui: Ui,
    audit: &AuditStore,
    state: &LoopState,
    mut stop: watch::Receiver<Option<StopReason>>,
    iteration_stop: &StopSignal,
) -> anyhow::Result<Exit> {
    let schedule = match (args.once, args.every) {
        (true, _) => Schedule::Once,
        (false, Some(every)) => Schedule::Every(every),
        (false, None) => anyhow::bail!("give --every DURATION, or --once"),
    };
    loop {
        let started = Instant::now();
        set_phase(state, Phase::Iterating);
        let outcome = iterate(args, settings, ui, audit, &stop, iteration_stop).await;
        let exit = report(args, ui, state, &outcome, started.elapsed());
        set_phase(state, Phase::Waiting(std::time::Instant::now()));
        let Schedule::Every(every) = schedule else {
            return outcome.map(|_| exit);
        };
        let interrupted = matches!(&outcome, Ok(Some(done)) if done.interrupted);
        let requested = *stop.borrow();
        if let Some(reason) = requested {
            return Ok(stopped(reason, interrupted, ui));
        }
        tokio::select! {
            () = tokio::time::sleep_until(started + every) => {}
            changed = stop.wait_for(Option::is_some) => {
                let reason = changed.ok().and_then(|r| *r).unwrap_or(StopReason::Signal);
                return Ok(stopped(reason, false, ui));
            }
        }
    }
}

fn stopped(reason: StopReason, iteration_interrupted: bool, ui: Ui) -> Exit {
    match reason {
        StopReason::LockLost => {
            eprintln!("error: reconcile: the lock was taken over by another process; stopping");
            Exit::Locked
        }
        StopReason::Signal if iteration_interrupted => {
            ui.note("reconcile: stopped during an iteration; the next run finishes its work");
            Exit::Interrupted
        }
        StopReason::Signal => {
            ui.note("reconcile: stopped");
            Exit::Success
        }
    }
}

/// One iteration: read the source, run the pipeline. `Ok(None)`: a stop was requested before
/// the pipeline started, so nothing was sent.
async fn iterate(
    args: &ReconcileArgs,
    settings: &RunSettings,
    ui: Ui,
    audit: &AuditStore,
    stop: &watch::Receiver<Option<StopReason>>,
    iteration_stop: &StopSignal,
) -> anyhow::Result<Option<Iteration>> {
    // The pipeline's own notes and progress would be noise every few minutes; the summary
    // line says what matters. Warnings and errors still reach stderr.
    let quiet = Ui {
        quiet: true,
        output: OutputContext {
            quiet: true,
            ..ui.output
        },
        ..ui
    };
    if stop.borrow().is_some() {
        return Ok(None);
    }
    let desired = read_desired(&args.source, &args.source_args, quiet).await?;
    if stop.borrow().is_some() {
        return Ok(None);
    }
    let work = super::guard::max_changes(Work::Desired(desired), settings, quiet).await?;
    let outcome = super::snapshot::run_until(
        work,
        settings,
        audit,
        CliObserver::new(quiet, false),
        iteration_stop,
    )
    .await?;
    Ok(Some(Iteration {
        run: outcome.run.clone(),
        counts: outcome.counts,
        ended_rows: outcome.ended_rows,
        no_live_call_rows: outcome.no_live_call_rows,
        requests: outcome.stats.requests,
        throttled: outcome.stats.throttled,
        interrupted: outcome.is_interrupted(),
        exit: crate::exit::for_run(&outcome),
    }))
}

/// Keeps the iteration's metrics for `/metrics` and writes them to `--metrics-file`, then
/// prints the iteration's one line (so that its metrics are served once it shows), and returns
/// its exit code.
fn report(
    args: &ReconcileArgs,
    ui: Ui,
    state: &LoopState,
    outcome: &anyhow::Result<Option<Iteration>>,
    elapsed: Duration,
) -> Exit {
    let (exit, metrics) = match outcome {
        Ok(Some(done)) => {
            let metrics = IterationMetrics {
                finished_at: SystemTime::now(),
                duration: elapsed,
                exit_code: done.exit.code(),
                targets: done.counts,
                ended_rows: done.ended_rows,
                requests: done.requests,
                throttled: done.throttled,
            };
            (done.exit, Some(metrics))
        }
        // Stopped before sending anything: nothing to report, the previous metrics stand.
        Ok(None) => (Exit::Interrupted, None),
        Err(_) => {
            let metrics = IterationMetrics {
                finished_at: SystemTime::now(),
                duration: elapsed,
                exit_code: Exit::Failure.code(),
                targets: StatusCounts::default(),
                ended_rows: 0,
                requests: 0,
                throttled: 0,
            };
            (Exit::Failure, Some(metrics))
        }
    };
    if let Some(metrics) = metrics {
        let text = metrics::render(&metrics);
        // Both under the lock: `/metrics` and the file never show different iterations.
        let mut served = state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(path) = &args.metrics_file
            && let Err(err) = metrics::write_atomically(path, &text)
        {
            eprintln!(
                "error: reconcile: cannot write the metrics file {}: {err}",
                path.display()
            );
        }
        served.metrics = text;
    }
    match outcome {
        Ok(Some(done)) => ui.note(summary_line(done, elapsed)),
        Ok(None) => {}
        // Logged here, not returned: the loop goes on (for --once the caller returns it).
        Err(err) if !args.once => eprintln!(
            "error: reconcile: iteration failed after {:.1}s: {err:#}",
            elapsed.as_secs_f64()
        ),
        Err(_) => {}
    }
    exit
}

/// `reconcile: in sync (120 targets, 0 changes) in 1.2s, run R`, or the counts that moved.
fn summary_line(done: &Iteration, elapsed: Duration) -> String {
    let counts = &done.counts;
    let seconds = elapsed.as_secs_f64();
    // In sync: every target was already as desired, or its call had ended (one classification:
    // `StatusClass`).
    let changes =
        counts.total() - counts.get(TargetStatus::Unchanged) - counts.of_class(StatusClass::Gone);
    let mut ended = match done.ended_rows {
        0 => String::new(),
        n => format!(
            "; {} of ended calls",
            report::text::plural(n, "row", "rows")
        ),
    };
    if done.no_live_call_rows > 0 {
        ended.push_str(&format!(
            "; {} with numbers no live call has",
            report::text::plural(done.no_live_call_rows, "row", "rows")
        ));
    }
    if changes == 0 && !done.interrupted {
        let skipped = match counts.skipped {
            0 => String::new(),
            n => format!(", {n} skipped"),
        };
        return format!(
            "reconcile: in sync ({} targets, 0 changes{skipped}{ended}) in {seconds:.1}s, run {}",
            counts.total(),
            done.run
        );
    }
    let order = [
        TargetStatus::Verified,
        TargetStatus::Unchanged,
        TargetStatus::Skipped,
        TargetStatus::Stale,
        TargetStatus::Drift,
        TargetStatus::Failed,
        TargetStatus::Planned,
        TargetStatus::Sending,
        TargetStatus::Applied,
    ];
    let parts: Vec<String> = order
        .iter()
        .filter(|s| counts.get(**s) > 0)
        .map(|s| format!("{} {s}", counts.get(*s)))
        .collect();
    let head = if done.interrupted {
        "interrupted"
    } else {
        "applied"
    };
    format!(
        "reconcile: {head} ({} targets: {}{ended}) in {seconds:.1}s, run {}",
        counts.total(),
        parts.join(", "),
        done.run
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iteration(counts: &[(TargetStatus, u64)], interrupted: bool) -> Iteration {
        let mut all = StatusCounts::default();
        for (status, n) in counts {
            all.add(*status, *n);
        }
        Iteration {
            run: RunId::from_stored("20260101T000000Z-abcdef".into()),
            counts: all,
            ended_rows: 0,
            no_live_call_rows: 0,
            requests: 0,
            throttled: 0,
            interrupted,
            exit: Exit::Success,
        }
    }

    #[test]
    fn in_sync_is_one_short_line() {
        let done = iteration(
            &[(TargetStatus::Unchanged, 118), (TargetStatus::Skipped, 2)],
            false,
        );
        assert_eq!(
            summary_line(&done, Duration::from_millis(1_240)),
            "reconcile: in sync (120 targets, 0 changes, 2 skipped) in 1.2s, run 20260101T000000Z-abcdef"
        );
    }

    #[test]
    fn changes_are_counted_per_status() {
        let done = iteration(
            &[
                (TargetStatus::Verified, 5),
                (TargetStatus::Unchanged, 113),
                (TargetStatus::Failed, 2),
            ],
            false,
        );
        assert_eq!(
            summary_line(&done, Duration::from_secs(2)),
            "reconcile: applied (120 targets: 5 verified, 113 unchanged, 2 failed) in 2.0s, run 20260101T000000Z-abcdef"
        );
    }

    #[test]
    fn an_interrupted_iteration_says_so() {
        let done = iteration(
            &[(TargetStatus::Verified, 1), (TargetStatus::Planned, 3)],
            true,
        );
        assert!(
            summary_line(&done, Duration::ZERO).starts_with("reconcile: interrupted (4 targets: ")
        );
    }

    #[test]
    fn between_iterations_the_loop_is_alive_for_twice_the_interval() {
        let every = Duration::from_secs(60);
        let finished = std::time::Instant::now();
        let waiting = Phase::Waiting(finished);
        assert_eq!(loop_health(waiting, every, None, finished), Ok(()));
        assert_eq!(
            loop_health(waiting, every, None, finished + every * 2),
            Ok(())
        );
        assert_eq!(
            loop_health(
                waiting,
                every,
                None,
                finished + every * 2 + Duration::from_secs(1)
            ),
            Err("no iteration for 121s, though one is due every 1m".to_owned())
        );
    }

    #[test]
    fn an_iteration_in_flight_is_alive_however_long_it_runs() {
        let every = Duration::from_secs(60);
        let now = std::time::Instant::now() + every * 100;
        assert_eq!(loop_health(Phase::Iterating, every, None, now), Ok(()));
    }

    #[test]
    fn a_lost_lock_or_a_stop_is_unhealthy_at_once() {
        let every = Duration::from_secs(60);
        let now = std::time::Instant::now();
        for phase in [Phase::Waiting(now), Phase::Iterating] {
            assert_eq!(
                loop_health(phase, every, Some(StopReason::LockLost), now),
                Err("the reconcile lock was taken over by another process; stopping".to_owned())
            );
            assert_eq!(
                loop_health(phase, every, Some(StopReason::Signal), now),
                Err("stopping: a stop was requested".to_owned())
            );
        }
    }

    #[test]
    fn the_first_stop_reason_wins() {
        let (sender, receiver) = watch::channel(None);
        let sender = Arc::new(sender);
        request_stop(&sender, StopReason::Signal);
        request_stop(&sender, StopReason::LockLost);
        assert_eq!(*receiver.borrow(), Some(StopReason::Signal));
    }
}
