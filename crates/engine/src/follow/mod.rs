//! `attrsync tag --queue ID... --follow key=value...` and `attrsync reconcile SOURCE --follow
//! --queue ID...`: keep the queues' live calls, and every call that enters them, equal to a
//! desired state until stopped. One implementation: `tag` follows a desired state of one row
//! for every call, `reconcile` the rows of its source, per conversation id
//! ([`desired::FollowDesired`]). One audit run per invocation, its targets appended as calls
//! arrive.
//!
//! A source is watched for new versions ([`source::SourceWatch`]): a valid one replaces the
//! desired state, and only the followed calls whose desired values it changed are planned
//! again, from their latest event (no read); an invalid one is refused whole with its problems,
//! and the previous state stays in force.
//!
//! Calls are learnt of through the Notification API (`genesys_core::notifications`): each event
//! carries the whole conversation with every participant's attributes, so a new call is planned
//! from the event (no read), and the event that shows the written values verifies the change (a
//! read only when none comes within `--verify-timeout`, or with `--verify-via get`). Events are
//! not durable: after every (re)connection the queues are listed through the analytics query
//! (the backfill), once at once and once more after `--backfill-lag` for calls the query had not
//! indexed yet, and only calls not already tagged are read.
//!
//! A stop is the normal end: in-flight work is finished and recorded, calls seen but not sent
//! are recorded as `unprocessed`, and the run is `completed`. The run lives through the one
//! lifecycle (`crate::lifecycle`): heartbeat, `--rate auto`, settling, locks.

pub mod desired;
pub mod source;
mod tracker;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use genesys_core::GenesysClient;
use genesys_core::models::CallConversation;
use genesys_core::notifications::{Notice, WatchOptions, watch_queues};
use reconcile::{DesiredEntry, LiveConversation, SourceFormat, SourceInfo};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use audit::{AuditStore, NewTarget, ObservedValues, Outcome, RunId, TargetStatus};

use crate::apply::call_events::CallEvents;
use crate::apply::worker::{Job, Pipeline};
use crate::apply::{TargetResult, VerifiedBy};
use crate::error::EngineError;
use crate::lifecycle::{self, ActiveRun, ClientFactory, RunConfig};
use crate::observer::{Note, RunObserver};
use crate::outcome::{RunKind, RunOutcome};
use crate::plural;
use crate::stop::StopSignal;
pub use desired::{CallView, FollowDesired};
pub use source::{SourceVersion, SourceWatch, SourceWatchError};
pub use tracker::Tracker;

/// A lock per followed queue: two follows of one queue on one audit store would tag its calls
/// twice and fight over what the audit says.
const LOCK_PREFIX: &str = "follow:queue:";
/// The observer hears the follow's counters at least this often (`--metrics-file` is rewritten
/// then, so its age is a liveness signal).
const TICK_EVERY: Duration = Duration::from_secs(10);

pub use crate::apply::VerifyVia;

/// A backfill's listing of the queues' live calls: each call's id, and its numbers and queues
/// when rows select calls by number.
type Listing = Result<Vec<(String, Option<CallView>)>, genesys_core::ApiError>;

/// What a follow needs besides the run's config.
#[derive(Debug)]
pub struct FollowSettings {
    pub queues: Vec<String>,
    /// The desired state at the start (for `reconcile --follow`, the source's first version).
    pub desired: FollowDesired,
    /// `reconcile --follow`: the source, watched for new versions; `None` for `tag --follow`.
    pub source: Option<FollowSource>,
    pub lookback: Duration,
    pub verify_via: VerifyVia,
    pub backfill_lag: Duration,
    pub socket_idle_timeout: Duration,
}

/// The source a follow keeps its calls equal to.
#[derive(Debug)]
pub struct FollowSource {
    /// As its first version was read (the run's recorded source).
    pub info: SourceInfo,
    pub watch: SourceWatch,
}

/// Counters of a follow, for the metrics and the summary.
#[derive(Debug, Default)]
pub struct FollowCounters {
    /// New versions of the source that validated and became the desired state.
    pub source_versions_applied: AtomicU64,
    /// New versions of the source refused (they did not validate).
    pub source_versions_refused: AtomicU64,
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
    /// Since when (Unix ms) a notification socket has not been connected; 0 while all are.
    pub socket_down_since_ms: AtomicU64,
}

fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl FollowCounters {
    fn count(&self, result: &TargetResult) {
        use audit::StatusClass;
        let counter = match (result.status, result.status.class()) {
            (TargetStatus::Drift, _) => &self.drift,
            (_, StatusClass::Done) => &self.tagged,
            (TargetStatus::Stale, _) | (_, StatusClass::Gone) => &self.skipped,
            (_, StatusClass::NotDone) => &self.failed,
            (_, StatusClass::NotReached) => return,
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

    /// The mean time from a change's acceptance to the event that showed it.
    pub fn event_lag(&self) -> Option<Duration> {
        let count = self.event_lag_count.load(Ordering::Relaxed);
        (count > 0)
            .then(|| Duration::from_millis(self.event_lag_ms_sum.load(Ordering::Relaxed) / count))
    }
}

/// Follows the queues until `stop`: one run, through the one lifecycle. Another process
/// following one of the queues on this store, or for `reconcile --follow` another reconcile
/// on it, is [`EngineError::Locked`].
pub async fn follow(
    mut settings: FollowSettings,
    config: &RunConfig,
    audit: &AuditStore,
    connect: ClientFactory<'_>,
    observer: Arc<dyn RunObserver>,
    stop: &StopSignal,
) -> Result<RunOutcome, EngineError> {
    let names: Vec<String> = settings
        .queues
        .iter()
        .map(|queue| format!("{LOCK_PREFIX}{queue}"))
        .collect();
    let what = format!(
        "another follow (`attrsync tag --follow` or `reconcile --follow`) follows queue {} on this audit store",
        settings.queues.join(", ")
    );
    // `reconcile --follow` is a reconcile: it holds the store's reconcile lock too.
    let reconciling = match settings.source {
        Some(_) => Some(crate::locks::hold_reconcile(audit).await?),
        None => None,
    };
    let queues = match crate::locks::hold(audit, &names, &what).await {
        Ok(queues) => queues,
        Err(err) => {
            if let Some(lock) = reconciling {
                lock.release().await;
            }
            return Err(err);
        }
    };
    let locks: Vec<crate::locks::Held> = reconciling.into_iter().chain([queues]).collect();
    let watching: Vec<_> = locks.iter().map(|lock| lock.stop_on_loss(stop)).collect();
    let outcome = follow_locked(&mut settings, config, audit, connect, observer, stop).await;
    for (lock, watch) in locks.into_iter().zip(watching) {
        watch.abort();
        lock.release().await;
    }
    outcome
}

async fn follow_locked(
    settings: &mut FollowSettings,
    config: &RunConfig,
    audit: &AuditStore,
    connect: ClientFactory<'_>,
    observer: Arc<dyn RunObserver>,
    stop: &StopSignal,
) -> Result<RunOutcome, EngineError> {
    let followed_source = settings.source.take();
    // Moved, not copied: a desired state of a million numbers is held once, by the tracker.
    let desired = std::mem::take(&mut settings.desired);
    let settings = &*settings;
    let (source, watch) = match followed_source {
        Some(FollowSource { info, watch }) => (info, Some(watch)),
        None => (
            SourceInfo {
                path: format!("queue:{}", settings.queues.join(",")),
                format: SourceFormat::CsvWide,
                sha256: String::new(),
            },
            None,
        ),
    };
    let run = lifecycle::begin(audit, config, &source, None).await?;
    observer.run_started(&run, &source, 0);
    let active = ActiveRun::start(
        audit,
        run.clone(),
        config,
        connect,
        &observer,
        stop,
        RunKind::Follow,
    )
    .await?;
    let watching = match &watch {
        Some(_) => format!(
            " equal to {} ({}), watched for new versions",
            source.path,
            plural(desired.rows(), "row")
        ),
        None => String::new(),
    };
    observer.note(Note::Info(format!(
        "run {run}: following {}{watching} (Ctrl-C or SIGTERM ends it)",
        plural(settings.queues.len(), "queue")
    )));
    let call_events = Arc::new(CallEvents::default());
    let pipeline = Arc::new(active.pipeline(
        &source,
        0,
        (settings.verify_via == VerifyVia::Event).then(|| Arc::clone(&call_events)),
        None,
    ));
    let counters = Arc::new(FollowCounters::default());
    // Connecting: not connected yet.
    counters
        .socket_down_since_ms
        .store(unix_ms_now(), Ordering::Relaxed);
    let mut follower = Follower {
        settings,
        audit,
        run: &run,
        client: &active.client,
        pipeline,
        call_events,
        tracker: Tracker::new(desired),
        source: &source,
        versions: None,
        resync: HashSet::new(),
        jobs: JoinSet::new(),
        permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
        counters: Arc::clone(&counters),
        down: std::collections::BTreeSet::from([0]),
        observer: Arc::clone(&observer),
        fatal: None,
    };
    let polling = watch.map(|watch| {
        let (versions_tx, versions) = mpsc::channel(4);
        follower.versions = Some(versions);
        watch.spawn(versions_tx)
    });
    let result = follower.follow_until_stopped(stop).await;
    let fatal = follower.fatal.take();
    drop(follower);
    if let Some(polling) = polling {
        polling.abort();
    }
    if let Some(err) = result.err().or(fatal) {
        return Err(active.fail(err).await);
    }
    // Calls seen but not sent: a follow's normal end, not a failure, nothing to resume.
    if let Err(err) = record_unprocessed(audit, &run).await {
        return Err(active.fail(err).await);
    }
    counters.tracked_calls.store(0, Ordering::Relaxed);
    observer.follow_tick(&counters, &active.client.stats());
    active
        .finish(RunKind::Follow, Vec::new(), observer.as_ref())
        .await
}

/// Rows still `planned` when a follow stops: calls it saw and had not sent anything for.
async fn record_unprocessed(audit: &AuditStore, run: &RunId) -> Result<(), EngineError> {
    audit.flush().await?;
    let unsent = audit.unfinished_targets(run).await?;
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
    Ok(audit.flush().await?)
}

/// A job's end: its call and what it recorded.
type JobEnd = (String, Result<Vec<TargetResult>, EngineError>);

struct Follower<'a> {
    settings: &'a FollowSettings,
    audit: &'a AuditStore,
    run: &'a RunId,
    client: &'a GenesysClient,
    pipeline: Arc<Pipeline>,
    call_events: Arc<CallEvents>,
    tracker: Tracker,
    /// The run's source (its name in the audit's input lines).
    source: &'a SourceInfo,
    /// New versions of a watched source.
    versions: Option<mpsc::Receiver<SourceVersion>>,
    /// Busy calls a new version concerned: planned again when their job ends.
    resync: HashSet<String>,
    jobs: JoinSet<JobEnd>,
    permits: Arc<Semaphore>,
    counters: Arc<FollowCounters>,
    /// Channels whose socket is not connected now (the first is, until it connects).
    down: std::collections::BTreeSet<usize>,
    observer: Arc<dyn RunObserver>,
    /// The audit store failed: the follow stops, since it could no longer prove what it did.
    fatal: Option<EngineError>,
}

impl Follower<'_> {
    async fn follow_until_stopped(&mut self, stop: &StopSignal) -> Result<(), EngineError> {
        let options = WatchOptions {
            idle_timeout: self.settings.socket_idle_timeout,
            ..WatchOptions::default()
        };
        let mut watch = watch_queues(self.client, &self.settings.queues, options)?;
        let (listed_tx, mut listed) = mpsc::channel::<Listing>(16);
        let mut tick_every = tokio::time::interval(TICK_EVERY);
        loop {
            if stop.is_stopping() || self.fatal.is_some() {
                break;
            }
            tokio::select! {
                notice = watch.notices.recv() => match notice {
                    Some(notice) => self.on_notice(notice, &listed_tx).await?,
                    None => return Err(EngineError::WatchEnded),
                },
                Some(ids) = listed.recv() => match ids {
                    Ok(ids) => self.on_listed(ids).await?,
                    Err(err) => tracing::warn!("cannot list the queues' live calls: {err}"),
                },
                Some(end) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    self.on_job_end(end).await?;
                }
                Some(version) = next_version(&mut self.versions) => {
                    self.on_source_version(version).await?;
                }
                _ = tick_every.tick() => {
                    self.counters
                        .tracked_calls
                        .store(self.tracker.len() as u64, Ordering::Relaxed);
                    tracing::debug!(
                        tracked = self.tracker.len(),
                        with_events = self.call_events.len(),
                        "calls followed now"
                    );
                    self.observer.follow_tick(&self.counters, &self.client.stats());
                }
                () = stop.stopped() => {}
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
        listed_tx: &mpsc::Sender<Listing>,
    ) -> Result<(), EngineError> {
        match notice {
            Notice::Connected { channel, gap, why } => {
                self.down.remove(&channel);
                if self.down.is_empty() {
                    self.counters
                        .socket_down_since_ms
                        .store(0, Ordering::Relaxed);
                }
                if why != genesys_core::notifications::Reconnect::First {
                    self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(channel, "notification socket reconnected: {why}");
                }
                if gap {
                    self.backfill(listed_tx.clone());
                }
            }
            Notice::Trouble { channel, message } => {
                if self.down.insert(channel) && self.down.len() == 1 {
                    self.counters
                        .socket_down_since_ms
                        .store(unix_ms_now(), Ordering::Relaxed);
                }
                tracing::warn!(channel, "{message}; retrying");
            }
            // Retrying cannot help: a refused given token (or the budget) stops the follow
            // resumable; anything else (an unknown queue, a missing permission) fails it.
            Notice::Refused {
                message,
                resume_later: true,
                ..
            } => {
                self.pipeline
                    .stop
                    .stop_because(crate::stop::StopReason::Budget(message));
            }
            Notice::Refused { message, .. } => {
                return Err(EngineError::Refused(message));
            }
            // A follow subscribes queue topics only.
            Notice::Attributes { .. } => {}
            Notice::Call { call, .. } => {
                let call = Arc::new(lowercase_id(call));
                self.call_events.publish(Arc::clone(&call));
                if reconcile::has_ended(&call) {
                    if !self.tracker.is_busy(&call.id) {
                        self.tracker.forget(&call.id);
                        self.call_events.forget(&call.id);
                    }
                    return Ok(());
                }
                if self.tracker.is_busy(&call.id) {
                    return Ok(());
                }
                self.assess(&call).await?;
            }
        }
        Ok(())
    }

    /// What the call's latest event asks for: drift recorded, work started from the event.
    async fn assess(&mut self, call: &CallConversation) -> Result<(), EngineError> {
        let assessment = self.tracker.assess(call);
        for drift in assessment.drift {
            self.record_drift(drift).await?;
        }
        if !assessment.work.is_empty() {
            self.start(&call.id, assessment.work, true).await?;
        }
        Ok(())
    }

    /// A new version of the source: refused with its problems, or in force from now on, the
    /// calls whose desired values it changed planned again from their latest event.
    async fn on_source_version(&mut self, version: SourceVersion) -> Result<(), EngineError> {
        let (desired, source) = match version {
            SourceVersion::Refused { path, problems } => {
                self.counters
                    .source_versions_refused
                    .fetch_add(1, Ordering::Relaxed);
                // The metrics say so at once, not at the next tick.
                self.observer
                    .follow_tick(&self.counters, &self.client.stats());
                self.observer.note(Note::Warning(format!(
                    "a new version of {} is refused; the previous desired state stays in force: {problems}",
                    path.display()
                )));
                return Ok(());
            }
            SourceVersion::Valid {
                desired,
                source,
                warnings,
            } => {
                if !warnings.is_empty() {
                    self.observer.note(Note::Warning(format!(
                        "a new version of {}:\n{warnings}",
                        source.path
                    )));
                }
                (desired, source)
            }
        };
        let rows = desired.rows();
        // The same desired state (a commit that changed other tables, say): nothing to do.
        let Some(concerned) = self.tracker.replace_desired(desired) else {
            return Ok(());
        };
        self.counters
            .source_versions_applied
            .fetch_add(1, Ordering::Relaxed);
        self.observer
            .follow_tick(&self.counters, &self.client.stats());
        self.observer.note(Note::Info(format!(
            "a new version of {} is in force ({}): {} concerned",
            source.path,
            plural(rows, "row"),
            plural(concerned.len(), "live call")
        )));
        for cid in concerned {
            if self.tracker.is_busy(&cid) {
                self.resync.insert(cid);
                continue;
            }
            self.plan_again(&cid).await?;
        }
        Ok(())
    }

    /// A followed call whose desired values changed: planned from its latest event, or read
    /// when no event of it is kept.
    async fn plan_again(&mut self, cid: &str) -> Result<(), EngineError> {
        match self.call_events.latest(cid) {
            Some(call) if reconcile::has_ended(&call) => {
                self.tracker.forget(cid);
                self.call_events.forget(cid);
                Ok(())
            }
            Some(call) => self.assess(&call).await,
            None => {
                let entries = self.tracker.entries(cid, None);
                if entries.is_empty() {
                    return Ok(());
                }
                self.start(cid, entries, false).await
            }
        }
    }

    /// Lists the queues' live calls now and once more after the analytics indexing lag.
    fn backfill(&self, listed_tx: mpsc::Sender<Listing>) {
        self.counters.backfills.fetch_add(1, Ordering::Relaxed);
        let client = self.client.clone();
        let queues = self.settings.queues.clone();
        let lookback = self.settings.lookback;
        let lag = self.settings.backfill_lag;
        // A call's numbers are kept only when rows select calls by number.
        let numbers = self
            .tracker
            .has_number_rows()
            .then(|| self.tracker.region());
        tokio::spawn(async move {
            for delay in [Duration::ZERO, lag] {
                tokio::time::sleep(delay).await;
                let listed =
                    crate::live::live_calls_of_queues(&client, &queues, lookback, |call| {
                        numbers.map(|region| CallView::of_listing(call, region))
                    })
                    .await;
                if listed_tx.send(listed).await.is_err() {
                    return;
                }
            }
        });
    }

    async fn on_listed(
        &mut self,
        listed: Vec<(String, Option<CallView>)>,
    ) -> Result<(), EngineError> {
        for (cid, view) in listed {
            if !self.tracker.needs_read(&cid) {
                continue;
            }
            if let Some(view) = view {
                self.tracker.remember_view(&cid, view);
            }
            if !self.tracker.may_concern(&cid) {
                self.tracker.keep_in_mind(&cid);
                continue;
            }
            // Events seen before the gap may be stale: the read is the truth.
            self.call_events.forget(&cid);
            let entries = self.tracker.entries(&cid, None);
            self.start(&cid, entries, false).await?;
        }
        Ok(())
    }

    /// Records the call's entries and queues its job: planned from its newest event when
    /// `from_event`, else from a read.
    async fn start(
        &mut self,
        cid: &str,
        entries: Vec<DesiredEntry>,
        from_event: bool,
    ) -> Result<(), EngineError> {
        self.tracker.mark_busy(cid);
        self.counters.calls_seen.fetch_add(1, Ordering::Relaxed);
        let new: Vec<NewTarget> = entries
            .iter()
            .map(|entry| NewTarget {
                seq: self.pipeline.next_seq.fetch_add(1, Ordering::Relaxed),
                conversation_id: cid.to_owned(),
                participant_id: None,
                selector: entry.target.selector.to_string(),
                purpose: None,
                input_lines: if entry.lines.is_empty() {
                    String::new()
                } else {
                    crate::apply::target_text::lines_text(self.source, &entry.lines)
                },
                status: TargetStatus::Planned,
                reason: None,
                before: ObservedValues::new(),
                desired: entry.attributes.clone(),
            })
            .collect();
        let rows = self.audit.insert_targets(self.run, &new).await?;
        self.observer.conversations_added(1);
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
            (cid, outcome)
        });
        Ok(())
    }

    async fn on_job_end(
        &mut self,
        end: Result<JobEnd, tokio::task::JoinError>,
    ) -> Result<(), EngineError> {
        let (cid, outcome) = end.map_err(EngineError::JobPanicked)?;
        let results = match outcome {
            Ok(results) => results,
            Err(err) => {
                self.pipeline.stop.stop();
                self.fatal.get_or_insert(err);
                return Ok(());
            }
        };
        self.observer.conversation_done();
        for result in &results {
            self.counters.count(result);
            self.observer.target_finished(result);
        }
        let again = self.tracker.job_done(&cid, &results);
        if self.pipeline.stop.is_stopping() {
            return Ok(());
        }
        if !again.is_empty() {
            // A drift seen at verification: its one re-application, from a fresh read.
            self.call_events.forget(&cid);
            return self.start(&cid, again, false).await;
        }
        let resync = self.resync.remove(&cid);
        // Events that came while the job ran: anything new (another participant, an overwrite,
        // new desired values)?
        if let Some(call) = self.call_events.latest(&cid) {
            if reconcile::has_ended(&call) {
                self.tracker.forget(&cid);
                self.call_events.forget(&cid);
                return Ok(());
            }
            self.assess(&call).await?;
        } else if resync {
            self.plan_again(&cid).await?;
        }
        Ok(())
    }

    async fn record_drift(&self, drift: tracker::Overwritten) -> Result<(), EngineError> {
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

/// The next version of a watched source; never, without one.
async fn next_version(
    versions: &mut Option<mpsc::Receiver<SourceVersion>>,
) -> Option<SourceVersion> {
    match versions {
        Some(versions) => versions.recv().await,
        None => std::future::pending().await,
    }
}

fn lowercase_id(mut call: CallConversation) -> CallConversation {
    call.id = call.id.to_lowercase();
    call
}
