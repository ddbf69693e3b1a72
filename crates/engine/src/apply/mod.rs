//! The apply pipeline: conversations worked on concurrently under the client's rate limiter,
//! every outcome recorded, within the one run lifecycle (`crate::lifecycle`).
//!
//! Used by `apply` (a desired state, a saved plan, or `--resume`), `set`, `tag`, `demo`, `revert`
//! and each `reconcile` iteration.

pub mod call_events;
pub mod event_watch;
pub(crate) mod read_ahead;
pub(crate) mod request_log;
pub(crate) mod results;
pub(crate) mod settle;
pub mod target_text;
pub mod verifications;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use reconcile::{
    Action, DesiredEntry, DesiredState, InputTable, PlannedTarget, Selector, SkipReason,
    SourceInfo, Target,
};

use crate::error::EngineError;
use crate::lifecycle::{self, ActiveRun, ClientFactory, RunConfig};
use crate::observer::{Note, RunObserver};
use crate::outcome::{RunKind, RunOutcome};
use crate::stop::StopSignal;
use audit::{AuditStore, NewTarget, ObservedValues, RunId, TargetRecord, TargetStatus};

pub use results::RESULT_COLUMNS;
use worker::Job;
pub use worker::{TargetResult, VerifiedBy, VerifyVia, planned_status};

/// What a run works on, once read and validated.
pub enum Work {
    /// A desired state, read from a CSV or SQLite source (or built by `set`/`tag`): planned per
    /// conversation against the read that precedes its PATCHes.
    Desired(DesiredState),
    /// A saved plan: executed as planned, each update re-checked against the live call first.
    /// A revert is one too (see `crate::revert`): its updates expect what the reverted run
    /// wrote and put back what was there before.
    Planned {
        source: SourceInfo,
        targets: Vec<PlannedTarget>,
        /// The rows of the input the plan was made from.
        input: InputTable,
        /// The run this plan reverts, recorded with the new run.
        reverts: Option<RunId>,
        /// Lines of rows selecting calls by a number no live call had when it was planned
        /// (`--max-changes`): a count on the run, like ended rows.
        no_live_call: Vec<u64>,
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
    // A desired state whose calls are looked up before any row (which ended, which live calls
    // its numbered rows select) is prepared through the run's client.
    let looked_up = match &work {
        Work::Desired(desired) => {
            config.liveness_batch.is_some() || !desired.number_rules().is_empty()
        }
        _ => false,
    };
    let (active, source, prepared) = match (work, looked_up) {
        (Work::Desired(desired), true) => {
            // Which conversations ended is asked through the run's client, before any row.
            let source = desired.source.clone();
            let run = lifecycle::begin(audit, config, &source, None).await?;
            observer.run_started(&run, &source, 0);
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
            let prepared = match prepare_live(desired, &active, config, observer.as_ref()).await {
                Ok(prepared) => prepared,
                Err(err) => return Err(active.fail(err).await),
            };
            observer.conversations_added(prepared.jobs.len() as u64);
            (active, source, prepared)
        }
        (work, _) => {
            let (run, source, prepared) = prepare(work, config, audit).await?;
            observer.run_started(&run, &source, prepared.jobs.len() as u64);
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
            (active, source, prepared)
        }
    };
    let Prepared {
        jobs,
        next_seq,
        final_results: planned_results,
        ended_rows,
    } = prepared;
    let run = active.run.clone();
    observer.note(Note::Info(if ended_rows > 0 {
        format!(
            "run {run}: {} calls to work on; {ended_rows} rows name calls that ended (skipped, \
             no request)",
            jobs.len()
        )
    } else {
        format!("run {run}: {} calls to work on", jobs.len())
    }));
    let read_ahead = read_ahead::ReadAhead::new(
        if cautious { 1 } else { config.concurrency },
        config.concurrency,
    );
    // Before the first PATCH: the calls' attribute topics, so that events verify the changes.
    let event_watch = match config.verify_via {
        VerifyVia::Event if !jobs.is_empty() => Some(Arc::new(event_watch::LazyEventWatch::new(
            active.client.clone(),
            jobs.iter().map(|job| job.conversation_id.clone()).collect(),
            Arc::clone(&observer),
        ))),
        _ => None,
    };
    let pipeline = active.pipeline(&source, next_seq, None, event_watch.clone());

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
    // The run's sockets close here; whether events came at all is said first.
    if let Some(watch) = &event_watch {
        watch.close();
    }
    if let Some(events) = event_watch.as_ref().and_then(|watch| watch.events())
        && events.none_come()
    {
        observer.note(Note::Warning(format!(
            "no attribute event showed any of {} changes within --verify-timeout, and none \
             came at all: the changes after them were read back at once (--verify-via get \
             where Genesys sends no attribute events)",
            call_events::UNSEEN_BEFORE_READING_AT_ONCE
        )));
    }
    if let Some(err) = fatal {
        return Err(active.fail(err).await);
    }
    active
        .finish(RunKind::Snapshot, results, observer.as_ref())
        .await
}

/// The work of a run, grouped per conversation, with its rows in the store.
struct Prepared {
    jobs: Vec<Job>,
    /// The next free `seq`.
    next_seq: u32,
    /// Results of targets whose plan is already final (a saved plan's unchanged and skipped).
    final_results: Vec<TargetResult>,
    /// Desired rows whose conversation had ended: a count on the run, no target rows.
    ended_rows: u64,
}

/// Creates (or reopens) the run and its target rows before the first request, and groups the
/// work per conversation. Returns the run, the source and the prepared work.
async fn prepare(
    work: Work,
    config: &RunConfig,
    audit: &AuditStore,
) -> Result<(RunId, SourceInfo, Prepared), EngineError> {
    let mut jobs = Jobs::default();
    let mut final_results = Vec::new();
    let mut ended_rows = 0;
    let (run, source, next_seq) = match work {
        Work::Desired(desired) => {
            let source = desired.source.clone();
            let run = lifecycle::begin(audit, config, &source, None).await?;
            record_input(audit, &run, &desired.input, &RowsWithoutTargets::default()).await?;
            let entries = desired.to_entries();
            let next_seq = insert_entries(audit, &run, &source, entries, &mut jobs).await?;
            (run, source, next_seq)
        }
        Work::Planned {
            source,
            targets,
            input,
            reverts,
            no_live_call,
        } => {
            let run = lifecycle::begin(audit, config, &source, reverts).await?;
            // A plan made through the liveness lookup (`--max-changes`) skips the rows of
            // calls that ended: they are a count on the run, like a desired state's.
            let (targets, ended): (Vec<PlannedTarget>, Vec<PlannedTarget>) =
                targets.into_iter().partition(|t| {
                    config.liveness_batch.is_none()
                        || !matches!(
                            t.action,
                            Action::Skip {
                                reason: SkipReason::ConversationEnded,
                                ..
                            }
                        )
                });
            let mut without_targets = RowsWithoutTargets::of_targets(&ended);
            without_targets.no_live_call = no_live_call;
            let without_targets = without_targets.keeping(config);
            record_input(audit, &run, &input, &without_targets).await?;
            ended_rows = without_targets.rows;
            audit
                .set_rows_without_targets(
                    &run,
                    ended_rows,
                    without_targets.no_live_call.len() as u64,
                )
                .await?;
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
    Ok((
        run,
        source,
        Prepared {
            jobs: jobs.into_vec(),
            next_seq,
            final_results,
            ended_rows,
        },
    ))
}

/// A desired state's work once the run's client has found which of its conversations ended
/// (the audit store's memory, then batched analytics reads): their rows are a count on the run,
/// the others get a row each, as in [`prepare`]. A lookup that failed leaves every conversation
/// not known ended to be read, as before.
async fn prepare_live(
    desired: DesiredState,
    active: &ActiveRun,
    config: &RunConfig,
    observer: &dyn RunObserver,
) -> Result<Prepared, EngineError> {
    let (audit, run) = (&active.audit, &active.run);
    let numbered = crate::numbered::numbered_calls(&active.client, &desired)
        .await
        .map_err(|source| EngineError::Api {
            what: "cannot list the live calls that rows select by number".to_owned(),
            source,
        })?;
    if let Some(note) = numbered.unmatched_note() {
        observer.note(Note::Info(note));
    }
    let conversations = desired.conversations();
    let found = match config.liveness_batch {
        Some(batch) => {
            let known = crate::live::known_ended(audit, &conversations).await?;
            let client = &active.client;
            crate::live::liveness(client, &conversations, known, batch, config.concurrency).await
        }
        None => crate::live::Liveness {
            ended: vec![false; conversations.len()],
            ..crate::live::Liveness::default()
        },
    };
    if let Some(note) = found.problem_note() {
        observer.note(Note::Warning(note));
    }
    for chunk in found.newly_ended_records(10_000) {
        audit.record_ended(&chunk).await?;
    }
    // Only the entries of calls not known ended are made whole; the others are a count.
    let not_ended: HashSet<uuid::Uuid> = conversations
        .iter()
        .zip(&found.ended)
        .filter(|(_, ended)| !**ended)
        .map(|(id, _)| *id)
        .collect();
    drop((conversations, found));
    let mut entries = Vec::with_capacity(not_ended.len());
    let mut without_targets = RowsWithoutTargets::default();
    for i in 0..desired.len() {
        if not_ended.contains(&desired.conversation(i)) {
            entries.push(desired.entry(i));
        } else {
            without_targets.add(desired.lines(i));
        }
    }
    // The calls numbered rows select were listed live: their rows join the others'.
    entries.extend(numbered.entries);
    without_targets.no_live_call = numbered.unmatched_lines;
    let without_targets = without_targets.keeping(config);
    record_input(audit, run, &desired.input, &without_targets).await?;
    audit
        .set_rows_without_targets(
            run,
            without_targets.rows,
            without_targets.no_live_call.len() as u64,
        )
        .await?;
    let mut jobs = Jobs::default();
    let next_seq = insert_entries(audit, run, &desired.source, entries, &mut jobs).await?;
    Ok(Prepared {
        jobs: jobs.into_vec(),
        next_seq,
        final_results: Vec::new(),
        ended_rows: without_targets.rows,
    })
}

/// One row per input entry until its call is read and planned (see worker); returns the next
/// free `seq`.
async fn insert_entries(
    audit: &AuditStore,
    run: &RunId,
    source: &SourceInfo,
    entries: Vec<DesiredEntry>,
    jobs: &mut Jobs,
) -> Result<u32, EngineError> {
    let new: Vec<NewTarget> = entries
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
            input_lines: target_text::lines_text(source, &entry.lines),
            status: TargetStatus::Planned,
            reason: None,
            before: ObservedValues::new(),
            desired: entry.attributes.clone(),
        })
        .collect();
    let rows = audit.insert_targets(run, &new).await?;
    let next_seq = rows.len() as u32;
    for (row, entry) in rows.into_iter().zip(entries) {
        jobs.get(&entry.target.conversation_id)
            .entries
            .push((row, entry));
    }
    Ok(next_seq)
}

/// The input rows that get no target: rows of conversations that ended, and numbered rows
/// whose numbers no live call has. Both are a count on the run, and their rows are listed in
/// the result files.
#[derive(Default)]
struct RowsWithoutTargets {
    /// The ended conversations' input lines, ascending once [`Self::keeping`] sorted them.
    lines: Vec<u64>,
    /// How many rows of ended conversations: their lines, and entries without one.
    rows: u64,
    /// Entries without a line (not read from a source).
    without_line: u64,
    /// The lines of numbered rows that matched no live call, ascending.
    no_live_call: Vec<u64>,
    /// Whether their input rows are recorded (flagged), for the result files.
    record: bool,
}

impl RowsWithoutTargets {
    fn of_targets(targets: &[PlannedTarget]) -> Self {
        let mut ended = Self::default();
        for target in targets {
            ended.add(target.lines.clone());
        }
        ended
    }

    /// One more ended entry or target, with its lines.
    fn add(&mut self, lines: Vec<u64>) {
        if lines.is_empty() {
            self.without_line += 1;
        }
        self.lines.extend(lines);
    }

    /// Whether `line` is a row of a call that ended.
    fn of_ended_call(&self, line: u64) -> bool {
        self.lines.binary_search(&line).is_ok()
    }

    /// Whether `line` is a numbered row that matched no live call.
    fn of_no_live_call(&self, line: u64) -> bool {
        self.no_live_call.binary_search(&line).is_ok()
    }

    /// Their input rows are recorded only for result files, which list them.
    fn keeping(mut self, config: &RunConfig) -> Self {
        self.lines.sort_unstable();
        self.lines.dedup();
        self.rows = self.lines.len() as u64 + self.without_line;
        self.record = config.results_dir.is_some();
        self
    }
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
/// Rows without targets (of calls that ended, of numbers no live call has) are recorded
/// (flagged) only when the result files need them.
async fn record_input(
    audit: &AuditStore,
    run: &RunId,
    input: &InputTable,
    without_targets: &RowsWithoutTargets,
) -> Result<(), EngineError> {
    if input.header.is_empty() {
        return Ok(());
    }
    let recorded = audit::RecordedInput {
        header: input.header.clone(),
        rows: input
            .rows()
            .filter_map(|row| {
                let conversation_ended =
                    row.problem.is_none() && without_targets.of_ended_call(row.line);
                let no_live_call =
                    row.problem.is_none() && without_targets.of_no_live_call(row.line);
                (!(conversation_ended || no_live_call) || without_targets.record).then(|| {
                    let row = row.to_owned();
                    audit::InputRecord {
                        line: row.line,
                        cells: row.cells,
                        problem: row.problem,
                        conversation_ended,
                        no_live_call,
                    }
                })
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
