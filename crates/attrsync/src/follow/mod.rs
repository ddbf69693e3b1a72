//! `attrsync tag --queue ID... --follow key=value...`: tags the queues' live calls, then every
//! call that enters them, until stopped. One audit run per invocation, its targets appended as
//! calls arrive.
//!
//! Calls are learnt of through the Notification API (`genesys_core::notifications`): each event
//! carries the whole conversation with every participant's attributes, so a new call is planned
//! from the event (no read), and the event that shows the written values verifies the change (a
//! read only when none comes within `--verify-timeout`, or with `--verify-via get`). Events are
//! not durable: after every (re)connection the queues are listed through the analytics query
//! (the backfill), once at once and once more after `--backfill-lag` for calls the query had not
//! indexed yet, and only calls not already tagged are read.
//!
//! A stop signal is the normal end: in-flight work is finished and recorded, calls seen but not
//! sent are recorded as `unprocessed`, and the run is `completed` (exit 0, or 3 if a target
//! failed or drifted).

mod tracker;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use genesys_core::GenesysClient;
use genesys_core::models::{Attributes, CallConversation};
use genesys_core::notifications::{Notice, WatchOptions, watch_queues};
use reconcile::{LiveConversation, Selector, SourceFormat, SourceInfo};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use audit::{
    AuditError, AuditStore, LockLease, NewRun, NewTarget, ObservedValues, Outcome, RunId,
    RunStatus, TargetStatus,
};

use crate::Ui;
use crate::apply::call_events::CallEvents;
use crate::apply::progress::Progress;
use crate::apply::stop::StopSignal;
use crate::apply::worker::{Job, Pipeline};
use crate::apply::{Events, TargetResult, VerifiedBy};
use crate::exit::Exit;
use crate::output::progress_mode;
use crate::settings::RunSettings;
pub use tracker::Tracker;

/// A lock per followed queue: two follows of one queue on one audit store would tag its calls
/// twice and fight over what the audit says.
const LOCK_PREFIX: &str = "follow:queue:";
const LOCK_STALE_AFTER: Duration = Duration::from_secs(10 * 60);
const LOCK_HEARTBEAT_EVERY: Duration = Duration::from_secs(60);
/// `--metrics-file` is rewritten at least this often, so its age is a liveness signal.
const METRICS_EVERY: Duration = Duration::from_secs(10);

/// How events verify a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyVia {
    /// The queue event that shows the written values; a read when none comes in time.
    Event,
    /// A read after every change, as `tag` and `apply` do.
    Get,
}

/// What a follow needs besides the run settings.
#[derive(Debug)]
pub struct FollowSettings {
    pub queues: Vec<String>,
    pub selector: Selector,
    pub attributes: Attributes,
    pub lookback: Duration,
    pub verify_via: VerifyVia,
    pub backfill_lag: Duration,
    pub socket_idle_timeout: Duration,
    pub metrics_file: Option<PathBuf>,
    pub json: bool,
}

/// Counters of a follow, for `--metrics-file` and the summary.
#[derive(Debug, Default)]
pub struct FollowCounters {
    pub calls_seen: AtomicU64,
    pub tagged: AtomicU64,
    pub verified_by_event: AtomicU64,
    pub verified_by_read: AtomicU64,
    pub skipped: AtomicU64,
    pub failed: AtomicU64,
    pub drift: AtomicU64,
    pub reconnects: AtomicU64,
    pub backfills: AtomicU64,
    /// Sum and count of the time from a change's acceptance to the event that showed it.
    pub event_lag_ms_sum: AtomicU64,
    pub event_lag_count: AtomicU64,
    /// Live calls followed now (a call is forgotten when it ends): flat in a steady campaign.
    pub tracked_calls: AtomicU64,
}

impl FollowCounters {
    fn count(&self, result: &TargetResult) {
        let counter = match result.status {
            TargetStatus::Verified => &self.tagged,
            TargetStatus::Skipped | TargetStatus::Stale => &self.skipped,
            TargetStatus::Failed | TargetStatus::Unknown => &self.failed,
            TargetStatus::Drift => &self.drift,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match result.verified_by {
            Some(VerifiedBy::Event(lag)) => {
                self.verified_by_event.fetch_add(1, Ordering::Relaxed);
                self.event_lag_ms_sum
                    .fetch_add(lag.as_millis() as u64, Ordering::Relaxed);
                self.event_lag_count.fetch_add(1, Ordering::Relaxed);
            }
            Some(VerifiedBy::Read) => {
                self.verified_by_read.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
    }
}

pub async fn run(
    settings: FollowSettings,
    run_settings: RunSettings,
    ui: Ui,
) -> anyhow::Result<Exit> {
    let audit = AuditStore::open(&run_settings.audit_path).await?;
    let leases = match take_locks(&audit, &settings.queues).await? {
        Ok(leases) => leases,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(Exit::Locked);
        }
    };
    let lock_heartbeat = tokio::spawn({
        let (audit, leases) = (audit.clone(), leases.clone());
        async move {
            let mut every = tokio::time::interval(LOCK_HEARTBEAT_EVERY);
            loop {
                every.tick().await;
                for lease in &leases {
                    if let Err(err) = audit.heartbeat_lock(lease).await {
                        tracing::warn!(%err, "cannot refresh the follow lock");
                    }
                }
            }
        }
    });
    let outcome = follow(&settings, &run_settings, &audit, ui).await;
    lock_heartbeat.abort();
    for lease in leases {
        if let Err(err) = audit.release_lock(lease).await {
            tracing::warn!(%err, "cannot release the follow lock");
        }
    }
    outcome
}

/// One lock per queue; `Ok(Err(message))` when another process holds one.
async fn take_locks(
    audit: &AuditStore,
    queues: &[String],
) -> anyhow::Result<Result<Vec<LockLease>, String>> {
    let mut leases = Vec::new();
    for queue in queues.iter().collect::<BTreeSet<_>>() {
        match audit
            .acquire_lock(&format!("{LOCK_PREFIX}{queue}"), LOCK_STALE_AFTER)
            .await
        {
            Ok(lease) => leases.push(lease),
            Err(err @ AuditError::Locked { .. }) => {
                for lease in leases {
                    let _ = audit.release_lock(lease).await;
                }
                return Ok(Err(format!(
                    "{err}\nanother `attrsync tag --follow` follows queue {queue} on this audit \
                     store; this one exits without doing anything"
                )));
            }
            Err(err) => return Err(err).context("cannot take the follow lock"),
        }
    }
    Ok(Ok(leases))
}

async fn follow(
    settings: &FollowSettings,
    run_settings: &RunSettings,
    audit: &AuditStore,
    ui: Ui,
) -> anyhow::Result<Exit> {
    let started = Instant::now();
    let source = SourceInfo {
        path: format!("queue:{}", settings.queues.join(",")),
        format: SourceFormat::CsvWide,
        sha256: String::new(),
    };
    let apply = run_settings.apply_settings();
    let run = audit
        .begin_run(NewRun {
            command: apply.command.clone(),
            source_path: Some(source.path.clone()),
            source_sha256: None,
            options: apply.options.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
            operator: crate::env::var(crate::env::USER),
            rate_per_minute: Some(apply.rate_per_minute),
        })
        .await?;
    let events = Events::new(settings.json);
    events.run_started(&run, &source);
    let client = match run_settings
        .connection
        .client(Some(crate::apply::observer_for(audit.clone(), run.clone())))
    {
        Ok(client) => client,
        Err(err) => {
            crate::apply::fail_run(audit, &run).await?;
            return Err(err);
        }
    };
    let settled =
        crate::apply::settle_dead_runs(&client, audit, &run, apply.verify_timeout).await?;
    if settled > 0 {
        ui.note(format_args!(
            "settled {settled} rows that earlier runs left unfinished when their process died"
        ));
    }
    ui.note(format_args!(
        "run {run}: following {} (Ctrl-C or SIGTERM ends it)",
        plural(settings.queues.len(), "queue")
    ));

    let stop = StopSignal::default();
    let _listening = stop.listen_saying(
        "finishing in-flight requests and recording them; calls not yet sent are recorded as unprocessed",
    );
    let progress = Arc::new(Progress::new(progress_mode(ui.output), 0, client.clone()));
    let ticker = progress.start_ticker();
    let call_events = Arc::new(CallEvents::default());
    let pipeline = Arc::new(Pipeline {
        client: client.clone(),
        audit: audit.clone(),
        run: run.clone(),
        source: source.clone(),
        verify_timeout: apply.verify_timeout,
        next_seq: AtomicU32::new(0),
        stop: stop.clone(),
        progress: Arc::clone(&progress),
        call_events: (settings.verify_via == VerifyVia::Event).then(|| Arc::clone(&call_events)),
    });
    let counters = Arc::new(FollowCounters::default());
    let mut follower = Follower {
        settings,
        audit,
        run: &run,
        client: &client,
        pipeline,
        call_events,
        tracker: Tracker::new(settings.selector.clone(), settings.attributes.clone()),
        jobs: JoinSet::new(),
        permits: Arc::new(Semaphore::new(apply.concurrency.max(1))),
        counters: Arc::clone(&counters),
        events: &events,
        fatal: None,
    };
    let result = follower.follow_until_stopped(&stop).await;
    if let Some(t) = ticker {
        t.abort();
    }
    progress.finish();
    let fatal = follower.fatal.take();
    drop(follower);
    audit.flush().await?;
    if let Err(err) = result {
        crate::apply::fail_run(audit, &run).await?;
        return Err(err);
    }
    if let Some(err) = fatal {
        crate::apply::fail_run(audit, &run).await?;
        return Err(err.context(format!("run {run} stopped")));
    }

    // Calls seen but not sent: a follow's normal end, not a failure, nothing to resume.
    let unsent = audit.unfinished_targets(&run).await?;
    for row in unsent.iter().filter(|r| r.status == TargetStatus::Planned) {
        audit
            .record_outcome(
                row.id,
                Outcome {
                    status: Some(TargetStatus::Unprocessed),
                    reason: Some("the follow was stopped before this call's turn".to_owned()),
                    ..Outcome::default()
                },
            )
            .await?;
    }
    audit.flush().await?;
    let unfinished = audit.unfinished_targets(&run).await?.len();
    let counts = audit.run_summary(&run).await?.counts;
    let budget = stop.resumable_message();
    let (status, exit) = match &budget {
        Some(message) if unfinished > 0 => {
            eprintln!(
                "attrsync: {message}; {unfinished} targets were not finished: start the follow again once the API allows it (it lists the queues' live calls first, and settles what run {run} left)"
            );
            (RunStatus::Interrupted, Exit::StoppedEarly)
        }
        // A follow's end is a stop by definition: some targets not done is a partial result.
        _ if crate::apply::not_done(&counts) > 0 => (RunStatus::Completed, Exit::Partial),
        _ => (RunStatus::Completed, Exit::Success),
    };
    audit
        .finish_run(&run, status, Some(i32::from(exit.code())))
        .await?;
    if let Some(path) = &settings.metrics_file {
        write_metrics(path, &counters, &client, started, Some(exit));
    }
    let elapsed = started.elapsed();
    events.follow_finished(&run, &counts, exit, elapsed, &client.stats());
    ui.note(format_args!(
        "run {run}: followed for {}: {} calls seen, {} tagged ({} verified by event, {} by read), \
         {} skipped, {} failed, {} drift, {} unprocessed; {} requests, {} answered 429",
        humantime::format_duration(Duration::from_secs(elapsed.as_secs())),
        counters.calls_seen.load(Ordering::Relaxed),
        counters.tagged.load(Ordering::Relaxed),
        counters.verified_by_event.load(Ordering::Relaxed),
        counters.verified_by_read.load(Ordering::Relaxed),
        counters.skipped.load(Ordering::Relaxed),
        counters.failed.load(Ordering::Relaxed),
        counters.drift.load(Ordering::Relaxed),
        counts.get(TargetStatus::Unprocessed),
        client.stats().requests,
        client.stats().throttled,
    ));
    Ok(exit)
}

/// A job's end: its call and what it recorded.
type JobEnd = (String, anyhow::Result<Vec<TargetResult>>);

struct Follower<'a> {
    settings: &'a FollowSettings,
    audit: &'a AuditStore,
    run: &'a RunId,
    client: &'a GenesysClient,
    pipeline: Arc<Pipeline>,
    call_events: Arc<CallEvents>,
    tracker: Tracker,
    jobs: JoinSet<JobEnd>,
    permits: Arc<Semaphore>,
    counters: Arc<FollowCounters>,
    events: &'a Events,
    /// The audit store failed: the follow stops, since it could no longer prove what it did.
    fatal: Option<anyhow::Error>,
}

impl Follower<'_> {
    async fn follow_until_stopped(&mut self, stop: &StopSignal) -> anyhow::Result<()> {
        let options = WatchOptions {
            idle_timeout: self.settings.socket_idle_timeout,
            ..WatchOptions::default()
        };
        let mut watch = watch_queues(self.client, &self.settings.queues, options)?;
        let (listed_tx, mut listed) = mpsc::channel::<anyhow::Result<Vec<String>>>(16);
        let mut metrics_every = tokio::time::interval(METRICS_EVERY);
        let mut stop_polled = tokio::time::interval(Duration::from_millis(100));
        let started = Instant::now();
        loop {
            if stop.is_stopping() || self.fatal.is_some() {
                break;
            }
            tokio::select! {
                notice = watch.notices.recv() => match notice {
                    Some(notice) => self.on_notice(notice, &listed_tx).await?,
                    None => anyhow::bail!("the notification watch ended"),
                },
                Some(ids) = listed.recv() => match ids {
                    Ok(ids) => self.on_listed(ids).await?,
                    Err(err) => tracing::warn!("cannot list the queues' live calls: {err:#}"),
                },
                Some(end) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    self.on_job_end(end).await?;
                }
                _ = metrics_every.tick() => {
                    self.counters
                        .tracked_calls
                        .store(self.tracker.len() as u64, Ordering::Relaxed);
                    tracing::debug!(
                        tracked = self.tracker.len(),
                        with_events = self.call_events.len(),
                        "calls followed now"
                    );
                    if let Some(path) = &self.settings.metrics_file {
                        write_metrics(path, &self.counters, self.client, started, None);
                    }
                }
                // The stop signal is a flag set by a signal handler or the budget: looked at
                // between notices, and at least this often.
                _ = stop_polled.tick() => {}
            }
        }
        drop(watch);
        // In-flight jobs finish (the pipeline sends nothing new once stopping).
        while let Some(end) = self.jobs.join_next().await {
            self.on_job_end(end).await?;
        }
        Ok(())
    }

    async fn on_notice(
        &mut self,
        notice: Notice,
        listed_tx: &mpsc::Sender<anyhow::Result<Vec<String>>>,
    ) -> anyhow::Result<()> {
        match notice {
            Notice::Connected { channel, gap, why } => {
                if why != genesys_core::notifications::Reconnect::First {
                    self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(channel, "notification socket reconnected: {why}");
                }
                if gap {
                    self.backfill(listed_tx.clone());
                }
            }
            Notice::Trouble { channel, message } => {
                tracing::warn!(channel, "{message}; retrying");
            }
            Notice::Call { call, .. } => {
                let call = Arc::new(lowercase_id(call));
                self.call_events.publish(Arc::clone(&call));
                if tracker::ended(&call) {
                    if !self.tracker.is_busy(&call.id) {
                        self.tracker.forget(&call.id);
                        self.call_events.forget(&call.id);
                    }
                    return Ok(());
                }
                if self.tracker.is_busy(&call.id) {
                    return Ok(());
                }
                let assessment = self.tracker.assess(&call);
                for drift in assessment.drift {
                    self.record_drift(drift).await?;
                }
                if !assessment.work.is_empty() {
                    self.start(&call.id, &assessment.work, true).await?;
                }
            }
        }
        Ok(())
    }

    /// Lists the queues' live calls now and once more after the analytics indexing lag.
    fn backfill(&self, listed_tx: mpsc::Sender<anyhow::Result<Vec<String>>>) {
        self.counters.backfills.fetch_add(1, Ordering::Relaxed);
        let client = self.client.clone();
        let queues = self.settings.queues.clone();
        let lookback = self.settings.lookback;
        let lag = self.settings.backfill_lag;
        tokio::spawn(async move {
            for delay in [Duration::ZERO, lag] {
                tokio::time::sleep(delay).await;
                let listed = crate::commands::tag::live_call_ids(&client, &queues, lookback).await;
                if listed_tx.send(listed).await.is_err() {
                    return;
                }
            }
        });
    }

    async fn on_listed(&mut self, ids: Vec<String>) -> anyhow::Result<()> {
        for cid in ids {
            if self.tracker.needs_read(&cid) {
                // Events seen before the gap may be stale: the read is the truth.
                self.call_events.forget(&cid);
                self.start(&cid, &[], false).await?;
            }
        }
        Ok(())
    }

    /// Records the call's entries and queues its job: planned from its newest event when
    /// `from_event`, else from a read.
    async fn start(
        &mut self,
        cid: &str,
        participants: &[String],
        from_event: bool,
    ) -> anyhow::Result<()> {
        self.tracker.mark_busy(cid);
        self.counters.calls_seen.fetch_add(1, Ordering::Relaxed);
        let entries = self.tracker.entry(cid, participants);
        let new: Vec<NewTarget> = entries
            .iter()
            .map(|entry| NewTarget {
                seq: self.pipeline.next_seq.fetch_add(1, Ordering::Relaxed),
                conversation_id: cid.to_owned(),
                participant_id: None,
                selector: entry.target.selector.to_string(),
                purpose: None,
                input_lines: String::new(),
                status: TargetStatus::Planned,
                reason: None,
                before: ObservedValues::new(),
                desired: entry.attributes.clone(),
            })
            .collect();
        let rows = self.audit.insert_targets(self.run, &new).await?;
        self.pipeline.progress.add_conversations(1);
        let job = Job {
            conversation_id: cid.to_owned(),
            entries: rows.into_iter().zip(entries).collect(),
            ..Job::default()
        };
        let pipeline = Arc::clone(&self.pipeline);
        let permits = Arc::clone(&self.permits);
        let call_events = Arc::clone(&self.call_events);
        let cid = cid.to_owned();
        self.jobs.spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return (cid, Ok(Vec::new()));
            };
            if pipeline.stop.is_stopping() {
                return (cid, Ok(Vec::new()));
            }
            // The newest view when its turn comes: a call that ended meanwhile is skipped.
            let seen = if from_event {
                call_events
                    .latest(&cid)
                    .map(|call| LiveConversation::Found((*call).clone()))
            } else {
                None
            };
            let outcome = pipeline.process_seen(job, seen).await;
            pipeline.progress.conversation_done();
            (cid, outcome)
        });
        Ok(())
    }

    async fn on_job_end(
        &mut self,
        end: Result<JobEnd, tokio::task::JoinError>,
    ) -> anyhow::Result<()> {
        let (cid, outcome) = end.context("a follow job panicked")?;
        let results = match outcome {
            Ok(results) => results,
            Err(err) => {
                self.pipeline.stop.stop();
                self.fatal.get_or_insert(err);
                return Ok(());
            }
        };
        for result in &results {
            self.counters.count(result);
            self.events.target(result);
        }
        let again = self.tracker.job_done(&cid, &results);
        if self.pipeline.stop.is_stopping() {
            return Ok(());
        }
        if !again.is_empty() {
            // A drift seen at verification: its one re-application, from a fresh read.
            self.call_events.forget(&cid);
            return self.start(&cid, &again, false).await;
        }
        // Events that came while the job ran: anything new (another participant, an overwrite)?
        if let Some(call) = self.call_events.latest(&cid) {
            if tracker::ended(&call) {
                self.tracker.forget(&cid);
                self.call_events.forget(&cid);
                return Ok(());
            }
            let assessment = self.tracker.assess(&call);
            for drift in assessment.drift {
                self.record_drift(drift).await?;
            }
            if !assessment.work.is_empty() {
                self.start(&cid, &assessment.work, true).await?;
            }
        }
        Ok(())
    }

    async fn record_drift(&self, drift: tracker::Overwritten) -> anyhow::Result<()> {
        let reason = format!(
            "`{}` was overwritten again after attrsync re-applied it; left alone (a flow or a person sets it)",
            drift.key
        );
        let observed: ObservedValues = drift
            .observed
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        self.audit
            .record_outcome(
                drift.row,
                Outcome {
                    status: Some(TargetStatus::Drift),
                    reason: Some(reason),
                    observed: Some(observed),
                    ..Outcome::default()
                },
            )
            .await?;
        self.counters.drift.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn lowercase_id(mut call: CallConversation) -> CallConversation {
    call.id = call.id.to_lowercase();
    call
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn write_metrics(
    path: &std::path::Path,
    counters: &FollowCounters,
    client: &GenesysClient,
    started: Instant,
    exit: Option<Exit>,
) {
    let stats = client.stats();
    let text = crate::metrics::render_follow(&crate::metrics::FollowMetrics {
        updated_at: SystemTime::now(),
        running_for: started.elapsed(),
        calls_seen: counters.calls_seen.load(Ordering::Relaxed),
        tagged: counters.tagged.load(Ordering::Relaxed),
        verified_by_event: counters.verified_by_event.load(Ordering::Relaxed),
        verified_by_read: counters.verified_by_read.load(Ordering::Relaxed),
        skipped: counters.skipped.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
        drift: counters.drift.load(Ordering::Relaxed),
        reconnects: counters.reconnects.load(Ordering::Relaxed),
        tracked_calls: counters.tracked_calls.load(Ordering::Relaxed),
        requests: stats.requests,
        throttled: stats.throttled,
        event_lag_seconds: {
            let count = counters.event_lag_count.load(Ordering::Relaxed);
            (count > 0).then(|| {
                counters.event_lag_ms_sum.load(Ordering::Relaxed) as f64 / count as f64 / 1000.0
            })
        },
        exit_code: exit.map(Exit::code),
    });
    if let Err(err) = crate::metrics::write_atomically(path, &text) {
        tracing::warn!("cannot write the metrics file {}: {err}", path.display());
    }
}
