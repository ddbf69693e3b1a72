//! The apply pipeline: a run in the audit store, conversations worked on concurrently under the
//! client's rate limiter, every outcome recorded, and a summary at the end.
//!
//! Used by `apply` (a desired state, a saved plan, or `--resume`) and by `set` (one target).

pub mod call_events;
mod events;
mod observer;
pub mod progress;
mod results;
mod settle;
pub mod stop;
pub mod target_text;
pub mod worker;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use futures::StreamExt;
use genesys_core::GenesysClient;
use reconcile::{
    Action, DesiredEntry, DesiredState, InputTable, PlannedTarget, Selector, SourceInfo, Target,
};

use crate::Ui;
use crate::exit::Exit;
use crate::output::progress_mode;
use audit::{
    AuditStore, NewRun, NewTarget, ObservedValues, RunId, RunStatus, TargetRecord, TargetStatus,
};

pub use events::Events;
pub(crate) use settle::settle_dead_runs;

/// The request observer that records a run's requests in the audit store.
pub(crate) fn observer_for(
    audit: AuditStore,
    run: RunId,
) -> Arc<dyn genesys_core::RequestObserver> {
    observer::AuditObserver::shared(audit, run)
}
use progress::Progress;
pub use results::RESULT_COLUMNS;
use stop::StopSignal;
use worker::{Job, Pipeline};
pub use worker::{TargetResult, VerifiedBy};

/// What a run works on, once read and validated.
pub enum Work {
    /// A desired state, read from a CSV or SQLite source (or built by `set`/`tag`): planned per
    /// conversation against the read that precedes its PATCHes.
    Desired(DesiredState),
    /// A saved plan: executed as planned, each update re-checked against the live call first.
    Planned {
        source: SourceInfo,
        targets: Vec<PlannedTarget>,
        /// The rows of the input the plan was made from.
        input: InputTable,
    },
    /// The unfinished targets of an earlier run.
    Resume {
        run: RunId,
        source: SourceInfo,
        targets: Vec<TargetRecord>,
    },
}

pub struct ApplySettings {
    pub command: String,
    pub concurrency: usize,
    pub verify_timeout: Duration,
    pub results_dir: Option<PathBuf>,
    pub rate_per_minute: f64,
    pub options: serde_json::Value,
    /// `--rate auto`, and the factor from a token's rate to the run's `rate_per_minute` (the
    /// tokens of the pool): the org is asked through the run's client before its first other
    /// request, and the run's rate and options are recorded again with what was settled on.
    pub auto_rate: Option<(crate::settings::AutoRate, f64)>,
}

/// What the command prints at the end and decides its exit code from.
pub struct RunReport {
    pub run: RunId,
    pub results: Vec<TargetResult>,
    pub interrupted: bool,
    pub elapsed: Duration,
    pub exit: Exit,
}

/// Runs the whole pipeline. `connect` builds the client once the run exists, so that its
/// request log can be attributed to the run.
pub async fn execute(
    work: Work,
    settings: ApplySettings,
    audit: AuditStore,
    connect: impl FnOnce(Arc<dyn genesys_core::RequestObserver>) -> anyhow::Result<GenesysClient>,
    ui: Ui,
    events: &Events,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let (run, source, jobs, next_seq, planned_results) = prepare(work, &settings, &audit).await?;
    events.run_started(&run, &source);
    ui.note(format_args!("run {run}: {} calls to work on", jobs.len()));

    let client = match connect(observer::AuditObserver::shared(audit.clone(), run.clone())) {
        Ok(client) => client,
        Err(err) => {
            fail_run(&audit, &run).await?;
            return Err(err);
        }
    };
    if let Some((auto, tokens)) = &settings.auto_rate {
        let learned = auto.apply(&client, ui).await;
        let mut options = settings.options.clone();
        if options.is_object() {
            options["rate"] = learned.rate.with_burst(1).to_string().into();
            options["rate_auto"] = serde_json::json!({
                "namespace": auto.namespace,
                "from_org": learned.from_org,
                "note": learned.note,
            });
        }
        audit
            .update_run_rate(&run, learned.rate.per_minute() * tokens, &options)
            .await?;
    }
    let settled = settle::settle_dead_runs(&client, &audit, &run, settings.verify_timeout).await?;
    if settled > 0 {
        ui.note(format_args!(
            "settled {settled} rows that earlier runs left unfinished when their process died"
        ));
    }
    let heartbeat = tokio::spawn({
        let (audit, run) = (audit.clone(), run.clone());
        async move {
            let mut every = tokio::time::interval(audit::RUN_HEARTBEAT);
            loop {
                every.tick().await;
                if let Err(err) = audit.heartbeat_run(&run).await {
                    tracing::warn!(%err, "cannot refresh the run's heartbeat");
                }
            }
        }
    });
    let stop = StopSignal::default();
    let _listening = stop.listen();
    let progress = Arc::new(Progress::new(
        progress_mode(ui.output),
        jobs.len() as u64,
        client.clone(),
    ));
    let ticker = progress.start_ticker();
    let pipeline = Pipeline {
        client: client.clone(),
        audit: audit.clone(),
        run: run.clone(),
        source: source.clone(),
        verify_timeout: settings.verify_timeout,
        next_seq: AtomicU32::new(next_seq),
        stop: stop.clone(),
        progress: Arc::clone(&progress),
        call_events: None,
    };

    let mut results = planned_results;
    let mut fatal = None;
    let mut work_stream = futures::stream::iter(jobs)
        .map(|job| {
            let pipeline = &pipeline;
            async move {
                if pipeline.stop.is_stopping() {
                    return Ok(Vec::new());
                }
                let outcome = pipeline.process(job).await;
                pipeline.progress.conversation_done();
                outcome
            }
        })
        .buffer_unordered(settings.concurrency.max(1));
    while let Some(outcome) = work_stream.next().await {
        match outcome {
            Ok(done) => {
                for result in &done {
                    events.target(result);
                }
                results.extend(done);
            }
            Err(err) => {
                // The audit store failed: stop sending, since we could no longer prove what we did.
                stop.stop();
                fatal.get_or_insert(err);
            }
        }
    }
    drop(work_stream);
    heartbeat.abort();
    if let Some(t) = ticker {
        t.abort();
    }
    progress.finish();
    audit.flush().await?;

    let unfinished = audit.unfinished_targets(&run).await?.len();
    let interrupted = stop.is_stopping() && unfinished > 0;
    if let Some(err) = fatal {
        fail_run(&audit, &run).await?;
        return Err(err.context(format!("run {run} stopped")));
    }
    // The exit code follows from what the run recorded (all its processes, for a resume).
    let counts = audit.run_summary(&run).await?.counts;
    let budget = stop.resumable_message();
    let (status, exit) = match (&budget, interrupted) {
        (Some(_), _) if unfinished > 0 => (RunStatus::Interrupted, Exit::StoppedEarly),
        (_, true) => (RunStatus::Interrupted, Exit::Interrupted),
        _ => (RunStatus::Completed, exit_for(&counts)),
    };
    if let (Some(message), Exit::StoppedEarly) = (&budget, exit) {
        // Shown even with -q: the run did not finish, and this says when and how to go on.
        eprintln!(
            "attrsync: {message}; {unfinished} targets are left for later: `attrsync apply --resume {run}`"
        );
    }
    // Result files are written before the run is finished, so that failing to write them is the
    // run's recorded outcome as well as the process's.
    if let Some(dir) = &settings.results_dir
        && let Err(err) = write_results(&audit, &run, dir).await
    {
        fail_run(&audit, &run).await?;
        return Err(err.context(format!(
            "run {run} made its changes, but its result files could not be written"
        )));
    }
    audit
        .finish_run(&run, status, Some(i32::from(exit.code())))
        .await?;
    if let Some(dir) = &settings.results_dir {
        ui.note(format_args!("results written to {}", dir.display()));
    }
    let report = RunReport {
        run,
        results,
        interrupted,
        elapsed: started.elapsed(),
        exit,
    };
    let stats = client.stats();
    // What the run learned of the server's budget, for the next run's --rate.
    for token in stats
        .tokens
        .iter()
        .filter(|t| t.budget < t.configured_budget)
    {
        ui.note(format_args!(
            "token {}: the server allowed about {:.0}/min, not {:.0}/min (--rate); pacing to that",
            token.slot + 1,
            token.budget_per_minute(),
            f64::from(token.configured_budget) * 60.0 / token.window.as_secs_f64()
        ));
    }
    events.run_finished(&report, &stats);
    Ok(report)
}

/// Counts per final status, for the summary and the exit code.
pub fn counts(results: &[TargetResult]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for r in results {
        *counts.entry(r.status.as_str()).or_insert(0) += 1;
    }
    counts
}

/// Records a run that could not go on as failed, exit 1 (what the process then exits with).
pub(crate) async fn fail_run(audit: &AuditStore, run: &RunId) -> anyhow::Result<()> {
    Ok(audit
        .finish_run(
            run,
            RunStatus::Failed,
            Some(i32::from(Exit::Failure.code())),
        )
        .await?)
}

/// Targets a run recorded as not done: failed, drifted, gone stale, or unknown.
pub(crate) fn not_done(counts: &audit::StatusCounts) -> u64 {
    [
        TargetStatus::Failed,
        TargetStatus::Drift,
        TargetStatus::Stale,
        TargetStatus::Unknown,
    ]
    .into_iter()
    .map(|s| counts.get(s))
    .sum()
}

/// The exit code of a finished run from its recorded statuses: 1 when no target is done, 3
/// when some are not.
fn exit_for(counts: &audit::StatusCounts) -> Exit {
    let bad = not_done(counts);
    if bad == 0 {
        Exit::Success
    } else if bad == counts.total() {
        Exit::Failure
    } else {
        Exit::Partial
    }
}

async fn write_results(audit: &AuditStore, run: &RunId, dir: &Path) -> anyhow::Result<()> {
    let targets = audit
        .list_targets(&audit::TargetFilter {
            run: Some(run.clone()),
            ..Default::default()
        })
        .await?;
    let input = audit.recorded_input(run).await?;
    results::write(dir, input.as_ref(), &targets)
}

/// Creates (or reopens) the run and its target rows before the first request, and groups the
/// work per conversation. Returns the run, the source, the jobs, the next free `seq`, and the
/// results of targets whose plan is already final (a saved plan's unchanged and skipped ones).
async fn prepare(
    work: Work,
    settings: &ApplySettings,
    audit: &AuditStore,
) -> anyhow::Result<(RunId, SourceInfo, Vec<Job>, u32, Vec<TargetResult>)> {
    let mut jobs = Jobs::default();
    let mut final_results = Vec::new();
    let (run, source, next_seq) = match work {
        Work::Desired(desired) => {
            let source = desired.source.clone();
            let run = begin(audit, settings, &source).await?;
            record_input(audit, &run, &desired.input).await?;
            // One row per input entry until its call is read and planned (see worker).
            let new: Vec<NewTarget> = desired
                .entries
                .iter()
                .enumerate()
                .map(|(seq, entry)| NewTarget {
                    seq: seq as u32,
                    conversation_id: entry.target.conversation_id.clone(),
                    // No participant until its call is read and planned: that is how a resume
                    // tells an entry nobody planned from a planned target.
                    participant_id: None,
                    selector: entry.target.selector.to_string(),
                    purpose: None,
                    input_lines: target_text::lines_text(&source, &entry.lines),
                    status: TargetStatus::Planned,
                    reason: None,
                    before: ObservedValues::new(),
                    desired: entry.attributes.clone(),
                })
                .collect();
            let rows = audit.insert_targets(&run, &new).await?;
            let next_seq = rows.len() as u32;
            for (row, entry) in rows.into_iter().zip(desired.entries) {
                jobs.get(&entry.target.conversation_id)
                    .entries
                    .push((row, entry));
            }
            (run, source, next_seq)
        }
        Work::Planned {
            source,
            targets,
            input,
        } => {
            let run = begin(audit, settings, &source).await?;
            record_input(audit, &run, &input).await?;
            let new: Vec<NewTarget> = targets
                .iter()
                .enumerate()
                .map(|(seq, t)| worker::new_target(seq as u32, &source, t))
                .collect();
            let rows = audit.insert_targets(&run, &new).await?;
            let next_seq = rows.len() as u32;
            for ((row, target), recorded) in rows.into_iter().zip(targets).zip(new) {
                if matches!(target.action, Action::Update { .. }) {
                    jobs.get(&target.conversation_id)
                        .planned
                        .push((row, target));
                } else {
                    final_results.push(TargetResult {
                        conversation_id: target.conversation_id,
                        participant_id: target.participant_id,
                        lines: target.lines,
                        status: recorded.status,
                        http_status: None,
                        error_code: None,
                        message: recorded.reason,
                        correlation_id: None,
                        verified_by: None,
                        planned: None,
                        row: Some(row),
                    });
                }
            }
            (run, source, next_seq)
        }
        Work::Resume {
            run,
            source,
            targets,
        } => {
            audit.reopen_run(&run, &settings.command).await?;
            for record in targets {
                let job = jobs.get(&record.conversation_id);
                match (&record.participant_id, record.status) {
                    (None, _) => job.entries.push((record.id, entry_from_record(&record))),
                    (Some(_), TargetStatus::Planned) => {
                        job.planned.push((record.id, target_from_record(&record)));
                    }
                    (Some(_), _) => job.in_doubt.push((record.id, target_from_record(&record))),
                }
            }
            let next_seq = audit.max_seq(&run).await?.map_or(0, |s| s + 1);
            (run, source, next_seq)
        }
    };
    Ok((run, source, jobs.into_vec(), next_seq, final_results))
}

/// Jobs per conversation, in order of first appearance.
#[derive(Default)]
struct Jobs {
    jobs: Vec<Job>,
    index: HashMap<String, usize>,
}

impl Jobs {
    fn get(&mut self, conversation_id: &str) -> &mut Job {
        let slot = match self.index.get(conversation_id) {
            Some(&slot) => slot,
            None => {
                self.jobs.push(Job {
                    conversation_id: conversation_id.to_owned(),
                    ..Job::default()
                });
                self.index
                    .insert(conversation_id.to_owned(), self.jobs.len() - 1);
                self.jobs.len() - 1
            }
        };
        &mut self.jobs[slot]
    }

    fn into_vec(self) -> Vec<Job> {
        self.jobs
    }
}

/// Records the run's input rows, when the source has them (`tag` builds its desired state).
async fn record_input(audit: &AuditStore, run: &RunId, input: &InputTable) -> anyhow::Result<()> {
    if input.header.is_empty() {
        return Ok(());
    }
    let recorded = audit::RecordedInput {
        header: input.header.clone(),
        rows: input
            .rows
            .iter()
            .map(|row| audit::InputRecord {
                line: row.line,
                cells: row.cells.clone(),
                problem: row.problem.clone(),
            })
            .collect(),
    };
    Ok(audit.record_input(run, &recorded).await?)
}

async fn begin(
    audit: &AuditStore,
    settings: &ApplySettings,
    source: &SourceInfo,
) -> anyhow::Result<RunId> {
    Ok(audit
        .begin_run(NewRun {
            command: settings.command.clone(),
            source_path: Some(source.path.clone()),
            source_sha256: Some(source.sha256.clone()).filter(|s| !s.is_empty()),
            options: settings.options.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            operator: crate::env::var(crate::env::USER),
            rate_per_minute: Some(settings.rate_per_minute),
        })
        .await?)
}

/// An input entry rebuilt from an audit row no process has planned yet (its call was not read).
fn entry_from_record(t: &TargetRecord) -> DesiredEntry {
    let selector = target_text::parse_selectors(&t.selector)
        .into_iter()
        .next()
        .unwrap_or_else(|| Selector::Purpose("customer".into()));
    DesiredEntry {
        target: Target {
            conversation_id: t.conversation_id.clone(),
            selector,
        },
        attributes: t.desired.clone(),
        lines: target_text::input_lines(&t.input_lines),
    }
}

/// A planned target rebuilt from its audit row: pinned to its participant, with the
/// before-values the row recorded.
pub(crate) fn target_from_record(t: &TargetRecord) -> PlannedTarget {
    PlannedTarget::from_recorded(
        t.conversation_id.clone(),
        t.participant_id.clone().unwrap_or_default(),
        t.purpose.clone(),
        target_text::parse_selectors(&t.selector),
        target_text::input_lines(&t.input_lines),
        t.desired.clone(),
        &t.before,
    )
}
