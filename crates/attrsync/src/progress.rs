//! Progress of a run, shown as a bar on a terminal, as a periodic plain line elsewhere, or not at
//! all (see `output::progress_mode`). Fed by the engine's reports (see `observer.rs`).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use audit::{StatusClass, TargetStatus};
use genesys_core::GenesysClient;
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::ProgressMode;

/// How often a plain progress line is printed when there is no terminal.
const LINE_INTERVAL: Duration = Duration::from_secs(5);

pub struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    started: Instant,
    total_conversations: AtomicU64,
    conversations_done: AtomicU64,
    /// Targets per status, as the engine reported them.
    statuses: [AtomicU64; TargetStatus::ALL.len()],
    client: OnceLock<GenesysClient>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::new(0);
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
            total_conversations: AtomicU64::new(0),
            conversations_done: AtomicU64::new(0),
            statuses: Default::default(),
            client: OnceLock::new(),
        }
    }

    /// The run's client, whose counters the progress shows.
    pub fn connected(&self, client: &GenesysClient) {
        let _ = self.client.set(client.clone());
    }

    pub fn target_done(&self, status: TargetStatus) {
        if let Some(slot) = TargetStatus::ALL.iter().position(|s| *s == status) {
            self.statuses[slot].fetch_add(1, Ordering::Relaxed);
        }
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

    fn count(&self, wanted: impl Fn(TargetStatus) -> bool) -> u64 {
        TargetStatus::ALL
            .iter()
            .zip(&self.statuses)
            .filter(|(status, _)| wanted(**status))
            .map(|(_, n)| n.load(Ordering::Relaxed))
            .sum()
    }

    fn counts_text(&self) -> String {
        let (throttled, retries) = self
            .client
            .get()
            .map(|c| c.stats())
            .map_or((0, 0), |s| (s.throttled, s.retries));
        format!(
            "verified {} unchanged {} skipped {} not done {} | 429s {throttled} retries {retries}",
            self.count(|s| s == TargetStatus::Verified),
            self.count(|s| s == TargetStatus::Unchanged),
            self.count(|s| s.class() == StatusClass::Gone),
            self.count(|s| s.class() == StatusClass::NotDone),
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
