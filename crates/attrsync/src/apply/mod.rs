//! The apply pipeline: a run in the audit store, conversations worked on concurrently under the
//! client's rate limiter, every outcome recorded, and a summary at the end.
//!
//! Used by `apply` (a desired state, a saved plan, or `--resume`) and by `set` (one target).

mod events;
mod observer;
pub mod progress;
mod results;
pub mod stop;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use futures::StreamExt;
use genesys_core::GenesysClient;
use reconcile::{DesiredEntry, DesiredState, Selector, SourceInfo, Target};

use crate::Ui;
use crate::audit::{
    AuditStore, NewRun, NewTarget, ObservedValues, RunId, RunStatus, TargetRecord, TargetStatus,
};
use crate::exit::Exit;
use crate::output::progress_mode;

pub use events::Events;
use progress::Progress;
pub use results::RESULT_COLUMNS;
use stop::StopSignal;
pub use worker::TargetResult;
use worker::{Job, JobEntry, Pipeline};

/// What a run works on, once read and validated.
pub enum Work {
    /// A desired state, read from a CSV or SQLite source (or built by `set`).
    Desired(DesiredState),
    /// Updates from a saved plan: each with the values the plan saw, for stale detection.
    Planned {
        source: SourceInfo,
        entries: Vec<(DesiredEntry, ObservedValues)>,
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
    let (run, source, jobs, next_seq) = prepare(&work, &settings, &audit).await?;
    events.run_started(&run, &source);
    ui.note(format_args!("run {run}: {} calls to work on", jobs.len()));

    let client = match connect(observer::AuditObserver::shared(audit.clone(), run.clone())) {
        Ok(client) => client,
        Err(err) => {
            audit
                .finish_run(
                    &run,
                    RunStatus::Failed,
                    Some(i32::from(Exit::Failure.code())),
                )
                .await?;
            return Err(err);
        }
    };
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
    };

    let mut results = Vec::new();
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
    if let Some(t) = ticker {
        t.abort();
    }
    progress.finish();
    audit.flush().await?;

    let unfinished = audit.unfinished_targets(&run).await?.len();
    let interrupted = stop.is_stopping() && unfinished > 0;
    let exit = if let Some(err) = fatal {
        audit
            .finish_run(
                &run,
                RunStatus::Failed,
                Some(i32::from(Exit::Failure.code())),
            )
            .await?;
        return Err(err.context(format!("run {run} stopped")));
    } else if interrupted {
        Exit::Interrupted
    } else {
        exit_for(&results)
    };
    let status = if interrupted {
        RunStatus::Interrupted
    } else {
        RunStatus::Completed
    };
    audit
        .finish_run(&run, status, Some(i32::from(exit.code())))
        .await?;

    if let Some(dir) = &settings.results_dir {
        let targets = audit
            .list_targets(&crate::audit::TargetFilter {
                run: Some(run.clone()),
                ..Default::default()
            })
            .await?;
        results::write(dir, &source, &targets)?;
        ui.note(format_args!("results written to {}", dir.display()));
    }
    let report = RunReport {
        run,
        results,
        interrupted,
        elapsed: started.elapsed(),
        exit,
    };
    events.run_finished(&report, &client.stats());
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

fn exit_for(results: &[TargetResult]) -> Exit {
    let bad = results
        .iter()
        .filter(|r| matches!(r.status, TargetStatus::Failed | TargetStatus::Drift))
        .count();
    if bad == 0 {
        Exit::Success
    } else if bad == results.len() {
        Exit::Failure
    } else {
        Exit::Partial
    }
}

/// Creates (or reopens) the run and its target rows before the first request, and groups the
/// work per conversation.
/// The entries to work on (each with the values a saved plan saw), where they came from, the
/// run, and the rows they already have (when resuming).
type PreparedWork = (
    Vec<(DesiredEntry, Option<ObservedValues>)>,
    SourceInfo,
    RunId,
    Option<Vec<crate::audit::TargetId>>,
);

async fn prepare(
    work: &Work,
    settings: &ApplySettings,
    audit: &AuditStore,
) -> anyhow::Result<(RunId, SourceInfo, Vec<Job>, u32)> {
    let (entries, source, run, existing_rows): PreparedWork = match work {
        Work::Desired(desired) => {
            let run = begin(audit, settings, &desired.source).await?;
            (
                desired.entries.iter().map(|e| (e.clone(), None)).collect(),
                desired.source.clone(),
                run,
                None,
            )
        }
        Work::Planned { source, entries } => {
            let run = begin(audit, settings, source).await?;
            (
                entries
                    .iter()
                    .map(|(e, before)| (e.clone(), Some(before.clone())))
                    .collect(),
                source.clone(),
                run,
                None,
            )
        }
        Work::Resume {
            run,
            source,
            targets,
        } => {
            audit.reopen_run(run).await?;
            let entries = targets
                .iter()
                .map(|t| (entry_from_record(t), None))
                .collect();
            (
                entries,
                source.clone(),
                run.clone(),
                Some(targets.iter().map(|t| t.id).collect::<Vec<_>>()),
            )
        }
    };

    let rows = match existing_rows {
        Some(rows) => rows,
        None => {
            let new: Vec<NewTarget> = entries
                .iter()
                .enumerate()
                .map(|(seq, (entry, _))| NewTarget {
                    seq: seq as u32,
                    conversation_id: entry.target.conversation_id.clone(),
                    participant_id: match &entry.target.selector {
                        Selector::ParticipantId(pid) => Some(pid.clone()),
                        _ => None,
                    },
                    selector: entry.target.selector.to_string(),
                    purpose: None,
                    input_lines: worker::lines_text(&source, &entry.lines),
                    status: TargetStatus::Planned,
                    reason: None,
                    before: ObservedValues::new(),
                    desired: entry.attributes.clone(),
                })
                .collect();
            audit.insert_targets(&run, &new).await?
        }
    };
    let next_seq = match work {
        Work::Resume { run, .. } => audit.max_seq(run).await?.map_or(0, |s| s + 1),
        _ => entries.len() as u32,
    };

    let mut jobs: Vec<Job> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for ((entry, expected_before), row) in entries.into_iter().zip(rows) {
        let cid = entry.target.conversation_id.clone();
        let slot = *index.entry(cid.clone()).or_insert_with(|| {
            jobs.push(Job {
                conversation_id: cid,
                entries: Vec::new(),
            });
            jobs.len() - 1
        });
        jobs[slot].entries.push(JobEntry {
            row,
            entry,
            expected_before,
        });
    }
    Ok((run, source, jobs, next_seq))
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

/// A desired entry rebuilt from an audit row, for `--resume`. A row whose participant is known
/// is pinned to it, so a purpose selector that matched two participants resumes both exactly.
fn entry_from_record(t: &TargetRecord) -> DesiredEntry {
    let selector = match &t.participant_id {
        Some(pid) => Selector::ParticipantId(pid.clone()),
        None => parse_selector(&t.selector).unwrap_or_else(|| Selector::Purpose("customer".into())),
    };
    let lines = worker::input_lines(&t.input_lines);
    DesiredEntry {
        target: Target {
            conversation_id: t.conversation_id.clone(),
            selector,
        },
        attributes: t.desired.clone(),
        lines,
    }
}

fn parse_selector(text: &str) -> Option<Selector> {
    let (column, value) = text.split_once('=')?;
    let value = value.to_owned();
    match column {
        "participant_id" => Some(Selector::ParticipantId(value)),
        "purpose" => Some(Selector::Purpose(value)),
        "user_id" => Some(Selector::UserId(value)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_round_trip_through_their_audit_text() {
        for s in [
            Selector::Purpose("customer".into()),
            Selector::ParticipantId("p".into()),
            Selector::UserId("u".into()),
        ] {
            assert_eq!(parse_selector(&s.to_string()), Some(s));
        }
        assert_eq!(parse_selector("nonsense"), None);
    }
}
