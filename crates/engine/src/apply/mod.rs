//! The apply pipeline: conversations worked on concurrently under the client's rate limiter,
//! every outcome recorded, within the one run lifecycle (`crate::lifecycle`).
//!
//! Used by `apply` (a desired state, a saved plan, or `--resume`), `set`, `tag`, `demo` and each
//! `reconcile` iteration.

pub mod call_events;
pub(crate) mod read_ahead;
pub(crate) mod request_log;
pub(crate) mod results;
pub(crate) mod settle;
pub mod target_text;
pub mod verifications;
pub mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use reconcile::{
    Action, DesiredEntry, DesiredState, InputTable, PlannedTarget, Selector, SourceInfo, Target,
};

use crate::error::EngineError;
use crate::lifecycle::{self, ActiveRun, ClientFactory, RunConfig};
use crate::observer::{Note, RunObserver};
use crate::outcome::{RunKind, RunOutcome};
use crate::stop::StopSignal;
use audit::{AuditStore, NewTarget, ObservedValues, RunId, TargetRecord, TargetStatus};

pub use results::RESULT_COLUMNS;
use worker::Job;
pub use worker::{TargetResult, VerifiedBy, planned_status};

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
        /// The API's budget stopped it: resumed cautiously (see `read_ahead`).
        budget_stopped: bool,
    },
}

/// Runs the whole pipeline as one run: see `crate::lifecycle`. `connect` builds the client
/// once the run exists, so that its request log can be attributed to the run; `stop` ends it
/// early (nothing new is sent, what is on the wire finishes and is recorded).
pub async fn execute(
    work: Work,
    config: &RunConfig,
    audit: &AuditStore,
    connect: ClientFactory<'_>,
    observer: Arc<dyn RunObserver>,
    stop: &StopSignal,
) -> Result<RunOutcome, EngineError> {
    let cautious = matches!(
        work,
        Work::Resume {
            budget_stopped: true,
            ..
        }
    );
    let (run, source, jobs, next_seq, planned_results) = prepare(work, config, audit).await?;
    let read_ahead = read_ahead::ReadAhead::new(
        if cautious { 1 } else { config.concurrency },
        config.concurrency,
    );
    observer.run_started(&run, &source, jobs.len() as u64);
    observer.note(Note::Info(format!(
        "run {run}: {} calls to work on",
        jobs.len()
    )));
    let active = ActiveRun::start(
        audit,
        run.clone(),
        config,
        connect,
        &observer,
        stop,
        RunKind::Snapshot,
    )
    .await?;
    let pipeline = active.pipeline(&source, next_seq, None);

    let mut results = planned_results;
    for result in &results {
        observer.target_finished(result);
    }
    let mut fatal = None;
    // New calls start one at a time, each once no request waits for budget: when the budget
    // is short, the calls already read get their PATCHes before more calls are read, so that a
    // run the budget stops (and each resume) makes progress.
    let starting = tokio::sync::Mutex::new(());
    let mut work_stream = futures::stream::iter(jobs)
        .map(|job| {
            let (pipeline, starting, read_ahead) = (&pipeline, &starting, &read_ahead);
            async move {
                let mut job = job;
                job.read_ahead = Some(read_ahead.ticket().await);
                let mut work = {
                    let _turn = starting.lock().await;
                    pipeline.client.until_nothing_waits().await;
                    if pipeline.stop.is_stopping() {
                        return Ok(Vec::new());
                    }
                    let mut work = Box::pin(pipeline.process(job));
                    // Polled once: its read is admitted, or counted as waiting, before the
                    // next call may start.
                    tokio::select! {
                        biased;
                        done = &mut work => return done,
                        () = std::future::ready(()) => {}
                    }
                    work
                };
                (&mut work).await
            }
        })
        .buffer_unordered(config.concurrency.max(1));
    while let Some(outcome) = work_stream.next().await {
        match outcome {
            Ok(done) => {
                observer.conversation_done();
                for result in &done {
                    observer.target_finished(result);
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
    if let Some(err) = fatal {
        return Err(active.fail(err).await);
    }
    active
        .finish(RunKind::Snapshot, results, observer.as_ref())
        .await
}

/// Creates (or reopens) the run and its target rows before the first request, and groups the
/// work per conversation. Returns the run, the source, the jobs, the next free `seq`, and the
/// results of targets whose plan is already final (a saved plan's unchanged and skipped ones).
async fn prepare(
    work: Work,
    config: &RunConfig,
    audit: &AuditStore,
) -> Result<(RunId, SourceInfo, Vec<Job>, u32, Vec<TargetResult>), EngineError> {
    let mut jobs = Jobs::default();
    let mut final_results = Vec::new();
    let (run, source, next_seq) = match work {
        Work::Desired(desired) => {
            let source = desired.source.clone();
            let run = lifecycle::begin(audit, config, &source).await?;
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
            let run = lifecycle::begin(audit, config, &source).await?;
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
            ..
        } => {
            lifecycle::reopen(audit, config, &run).await?;
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
async fn record_input(
    audit: &AuditStore,
    run: &RunId,
    input: &InputTable,
) -> Result<(), EngineError> {
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
