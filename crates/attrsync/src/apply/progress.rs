//! Progress of a run: counters shared by the workers, shown as a bar on a terminal, as a
//! periodic plain line elsewhere, or not at all (see `output::progress_mode`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use genesys_core::GenesysClient;
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::ProgressMode;
use audit::TargetStatus;

/// How often a plain progress line is printed when there is no terminal.
const LINE_INTERVAL: Duration = Duration::from_secs(5);

pub struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    started: Instant,
    total_conversations: AtomicU64,
    conversations_done: AtomicU64,
    verified: AtomicU64,
    unchanged: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    drift: AtomicU64,
    client: GenesysClient,
}

impl Progress {
    pub fn new(mode: ProgressMode, total_conversations: u64, client: GenesysClient) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::new(total_conversations);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} calls  {per_sec}  ETA {eta}  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            mode,
            bar,
            started: Instant::now(),
            total_conversations: AtomicU64::new(total_conversations),
            conversations_done: AtomicU64::new(0),
            verified: AtomicU64::new(0),
            unchanged: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            drift: AtomicU64::new(0),
            client,
        }
    }

    pub fn target_done(&self, status: TargetStatus) {
        let counter = match status {
            TargetStatus::Verified | TargetStatus::Applied => &self.verified,
            TargetStatus::Unchanged => &self.unchanged,
            TargetStatus::Skipped | TargetStatus::Stale => &self.skipped,
            TargetStatus::Failed | TargetStatus::Unknown => &self.failed,
            TargetStatus::Drift => &self.drift,
            TargetStatus::Planned
            | TargetStatus::Sending
            | TargetStatus::NotApplied
            | TargetStatus::Unprocessed => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// More calls to work on (a follow learns of calls as they arrive).
    pub fn add_conversations(&self, count: u64) {
        self.total_conversations.fetch_add(count, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc_length(count);
        }
    }

    pub fn conversation_done(&self) {
        self.conversations_done.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(self.counts_text());
        }
    }

    fn counts_text(&self) -> String {
        let stats = self.client.stats();
        let (throttled, retries) = (stats.throttled, stats.retries);
        format!(
            "verified {} unchanged {} skipped {} failed {} drift {} | 429s {throttled} retries {retries}",
            self.verified.load(Ordering::Relaxed),
            self.unchanged.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.drift.load(Ordering::Relaxed),
        )
    }

    /// The plain line printed periodically in `Lines` mode.
    pub fn line(&self) -> String {
        let done = self.conversations_done.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        format!(
            "progress: {done}/{} calls ({:.1}/s) {}",
            self.total_conversations.load(Ordering::Relaxed),
            done as f64 / secs,
            self.counts_text()
        )
    }

    /// In `Lines` mode, prints a line every few seconds until the returned task is aborted.
    pub fn start_ticker(self: &std::sync::Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if self.mode != ProgressMode::Lines {
            return None;
        }
        let progress = std::sync::Arc::clone(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(LINE_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!("{}", progress.line());
            }
        }))
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
