//! The engine's reports, rendered: notes on stderr, the progress display, NDJSON events on
//! stdout, and a follow's metrics file.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use audit::RunId;
use engine::follow::FollowCounters;
use engine::{Note, RunKind, RunObserver, RunOutcome, TargetResult};
use genesys_core::{ClientStats, GenesysClient};
use reconcile::SourceInfo;

use crate::events::Events;
use crate::output::progress_mode;
use crate::progress::Progress;
use crate::ui::Ui;
use engine::service::metrics::{self, FollowMetrics};

/// Notes only: for a client that asks `--rate auto` outside a run (`plan`, `tag --dry-run`).
pub struct Notes(pub Ui);

impl RunObserver for Notes {
    fn note(&self, note: Note) {
        show_note(self.0, note);
    }
}

fn show_note(ui: Ui, note: Note) {
    match note {
        Note::Info(line) => ui.note(line),
        // Said even under -q: the person did not ask for it.
        Note::Warning(line) => eprintln!("warning: {line}"),
    }
}

/// What a command shows of its run.
pub struct CliObserver {
    ui: Ui,
    events: Events,
    progress: Arc<Progress>,
    ticker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// A follow's `--metrics-file`.
    metrics_file: Option<PathBuf>,
    started: Instant,
    /// A follow's last counters, for its summary and its final metrics.
    follow: Mutex<Option<FollowMetrics>>,
    /// Since when (Unix ms) a notification socket has been down; 0 while all are connected.
    socket_down_since_ms: std::sync::atomic::AtomicU64,
    /// The run's last heartbeat could not be written: the store is not writable.
    store_error: Mutex<Option<String>>,
}

impl CliObserver {
    /// `json`: NDJSON events on stdout (and no progress display).
    pub fn new(ui: Ui, json: bool) -> Arc<Self> {
        let ui = ui.with_json(json);
        Arc::new(CliObserver {
            ui,
            events: Events::new(json),
            progress: Arc::new(Progress::new(progress_mode(ui.output))),
            ticker: Mutex::new(None),
            metrics_file: None,
            started: Instant::now(),
            follow: Mutex::new(None),
            socket_down_since_ms: std::sync::atomic::AtomicU64::new(0),
            store_error: Mutex::new(None),
        })
    }

    /// A follow's observer: its counters also go to `metrics_file`.
    pub fn for_follow(ui: Ui, json: bool, metrics_file: Option<PathBuf>) -> Arc<Self> {
        let mut observer = Arc::into_inner(Self::new(ui, json)).expect("just made");
        observer.metrics_file = metrics_file;
        Arc::new(observer)
    }

    /// The follow's counters as last reported.
    pub fn follow_metrics(&self) -> Option<FollowMetrics> {
        self.follow
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A follow is healthy while its loop reports, its sockets are connected or reconnecting
    /// within a limit, and its audit store takes writes (see [`follow_health`]).
    pub fn follow_health(&self) -> Result<(), String> {
        let metrics = self.follow_metrics();
        let down_since = self.socket_down_since_ms.load(Ordering::Relaxed);
        let socket_down_for = (down_since > 0).then(|| {
            SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH + Duration::from_millis(down_since))
                .unwrap_or_default()
        });
        let store_error = self
            .store_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        engine::service::health::follow(
            metrics.as_ref().is_some_and(|m| m.exit_code.is_some()),
            metrics.and_then(|m| m.updated_at.elapsed().ok()),
            socket_down_for,
            store_error.as_deref(),
        )
    }

    fn write_metrics(&self, metrics: &FollowMetrics) {
        if let Some(path) = &self.metrics_file {
            let text = metrics::render_follow(metrics);
            if let Err(err) = metrics::write_atomically(path, &text) {
                tracing::warn!("cannot write the metrics file {}: {err}", path.display());
            }
        }
    }
}

impl RunObserver for CliObserver {
    fn run_started(&self, run: &RunId, source: &SourceInfo, conversations: u64) {
        self.events.run_started(run, source);
        self.progress.add_conversations(conversations);
        *self.ticker.lock().unwrap_or_else(PoisonError::into_inner) = self.progress.start_ticker();
    }

    fn connected(&self, client: &GenesysClient) {
        self.progress.connected(client);
    }

    fn verifications(&self, verifications: &Arc<engine::apply::verifications::Verifications>) {
        self.progress.verifying(verifications);
    }

    fn note(&self, note: Note) {
        show_note(self.ui, note);
    }

    fn conversations_added(&self, count: u64) {
        self.progress.add_conversations(count);
    }

    fn conversation_done(&self) {
        self.progress.conversation_done();
    }

    fn target_finished(&self, result: &TargetResult) {
        self.progress.target_done(result.status);
        self.events.target(result);
    }

    fn follow_tick(&self, counters: &FollowCounters, client: &ClientStats) {
        let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
        let metrics = FollowMetrics {
            updated_at: SystemTime::now(),
            running_for: self.started.elapsed(),
            calls_seen: load(&counters.calls_seen),
            tagged: load(&counters.tagged),
            verified_by_event: load(&counters.verified_by_event),
            verified_by_read: load(&counters.verified_by_read),
            skipped: load(&counters.skipped),
            failed: load(&counters.failed),
            drift: load(&counters.drift),
            reconnects: load(&counters.reconnects),
            source_versions_applied: load(&counters.source_versions_applied),
            source_versions_refused: load(&counters.source_versions_refused),
            tracked_calls: load(&counters.tracked_calls),
            requests: client.requests,
            throttled: client.throttled,
            event_lag_seconds: counters.event_lag().map(|lag| lag.as_secs_f64()),
            exit_code: None,
        };
        self.write_metrics(&metrics);
        *self.follow.lock().unwrap_or_else(PoisonError::into_inner) = Some(metrics);
        self.socket_down_since_ms.store(
            counters.socket_down_since_ms.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    fn heartbeat(&self, written: &Result<(), String>) {
        *self
            .store_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = written.as_ref().err().cloned();
    }

    fn run_finished(&self, outcome: &RunOutcome) {
        if let Some(ticker) = self
            .ticker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            ticker.abort();
        }
        self.progress.finish();
        if outcome.kind == RunKind::Follow
            && let Some(mut metrics) = self.follow_metrics()
        {
            metrics.exit_code = Some(outcome.exit_code);
            metrics.updated_at = SystemTime::now();
            self.write_metrics(&metrics);
        }
        self.events.run_finished(outcome);
    }
}
