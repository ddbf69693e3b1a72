//! Progress of a run, shown as a bar on a terminal, as a periodic plain line elsewhere, or not at
//! all (see `output::progress_mode`). Fed by the engine's reports (see `observer.rs`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use audit::{StatusClass, TargetStatus};
use engine::apply::verifications::{Verifications, VerifyingNow};
use genesys_core::{BudgetWait, GenesysClient};
use indicatif::{ProgressBar, ProgressStyle};

use crate::output::ProgressMode;

/// How often a plain progress line is printed when there is no terminal.
const LINE_INTERVAL: Duration = Duration::from_secs(5);
/// How often the display looks at the limiter (a wait longer than `SILENT_WAIT_LIMIT` is named
/// within this long).
const TICK: Duration = Duration::from_secs(1);
/// A wait up to this long goes unnamed; a longer one says what it waits for and until when.
const SILENT_WAIT_LIMIT: Duration = Duration::from_secs(2);
/// The trailing window of the recent rate (and of the estimate of the time left).
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// What the progress display shows besides the counts, decided from plain values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProgressView {
    pub done: u64,
    pub total: u64,
    /// Calls finished per second over the trailing [`RATE_WINDOW`] (see [`recent_rate`]).
    pub recent_rate: Option<f64>,
    /// Requests held by the rate limiter, if any.
    pub budget_wait: Option<BudgetWait>,
    /// Read-back verifications under way, if any.
    pub verifying: Option<VerifyingNow>,
}

/// Calls per second over the trailing `window`: from the oldest sample inside it (or the newest
/// before it) to the newest. `samples` are (time since start, calls done), oldest first.
pub fn recent_rate(samples: &[(Duration, u64)], now: Duration, window: Duration) -> Option<f64> {
    let since = now.saturating_sub(window);
    let first = samples
        .iter()
        .rposition(|(at, _)| *at <= since)
        .unwrap_or(0);
    let (from_at, from_done) = *samples.get(first)?;
    let (_, to_done) = *samples.last()?;
    let span = now.saturating_sub(from_at).as_secs_f64();
    (span > 0.0).then(|| to_done.saturating_sub(from_done) as f64 / span)
}

/// `23:41:07 UTC`: a time of day to wait until.
pub(crate) fn time_of_day(at: SystemTime) -> String {
    let text = humantime::format_rfc3339_seconds(at).to_string();
    format!("{} UTC", text.get(11..19).unwrap_or(&text))
}

/// Whole seconds, rounded up (a wait of 0.2 s is "1 s", never "0 s").
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// What a wait for the budget is named, once it is longer than [`SILENT_WAIT_LIMIT`].
pub fn wait_text(wait: &BudgetWait, now: SystemTime) -> Option<String> {
    (wait.next_start_in > SILENT_WAIT_LIMIT).then(|| {
        format!(
            "waiting for the API budget: next request at {} (in {} s), {} waiting",
            time_of_day(now + wait.next_start_in),
            whole_seconds(wait.next_start_in),
            wait.waiting
        )
    })
}

/// What a verification is named, once the oldest under way has gone on for longer than
/// [`SILENT_WAIT_LIMIT`].
pub fn verifying_text(verifying: &VerifyingNow, now: SystemTime) -> Option<String> {
    let going_on = now
        .duration_since(verifying.oldest_since)
        .unwrap_or_default();
    (going_on > SILENT_WAIT_LIMIT).then(|| {
        let left = verifying.until.duration_since(now).unwrap_or_default();
        format!(
            "verifying {} calls' changes: until {} at the latest (in {} s)",
            verifying.calls,
            time_of_day(verifying.until),
            whole_seconds(left)
        )
    })
}

/// Whether the display names a wait now (a plain line is printed at once when one begins).
pub fn names_a_wait(view: &ProgressView, now: SystemTime) -> bool {
    view.budget_wait
        .as_ref()
        .and_then(|w| wait_text(w, now))
        .is_some()
        || view
            .verifying
            .as_ref()
            .and_then(|v| verifying_text(v, now))
            .is_some()
}

/// The rate, the estimate of the time left, and any wait worth naming.
pub fn status_text(view: &ProgressView, now: SystemTime) -> String {
    let remaining = view.total.saturating_sub(view.done);
    let mut parts = Vec::new();
    match view.recent_rate {
        Some(rate) => parts.push(format!("{rate:.1} calls/s (last 30 s)")),
        None => parts.push("rate not known yet".to_owned()),
    }
    match view.recent_rate {
        _ if remaining == 0 => {}
        Some(rate) if rate > 0.0 => {
            let left = Duration::from_secs(((remaining as f64) / rate).ceil() as u64);
            parts.push(format!(
                "ETA {} ({})",
                humantime::format_duration(left),
                time_of_day(now + left)
            ));
        }
        _ => parts.push("ETA unknown".to_owned()),
    }
    if let Some(wait) = view.budget_wait.as_ref().and_then(|w| wait_text(w, now)) {
        parts.push(wait);
    }
    if let Some(verifying) = view.verifying.as_ref().and_then(|v| verifying_text(v, now)) {
        parts.push(verifying);
    }
    parts.join("  ")
}

pub struct Progress {
    mode: ProgressMode,
    bar: Option<ProgressBar>,
    started: Instant,
    total_conversations: AtomicU64,
    conversations_done: AtomicU64,
    /// Targets per status, as the engine reported them.
    statuses: [AtomicU64; TargetStatus::ALL.len()],
    client: OnceLock<GenesysClient>,
    verifications: OnceLock<std::sync::Arc<Verifications>>,
    /// (time since start, calls done) of the last [`RATE_WINDOW`] and one before it.
    samples: Mutex<VecDeque<(Duration, u64)>>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Self {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} calls  {msg}",
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
            verifications: OnceLock::new(),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// The run's client, whose counters the progress shows.
    pub fn connected(&self, client: &GenesysClient) {
        let _ = self.client.set(client.clone());
    }

    /// The run's verifications under way, which the progress names when one goes on long.
    pub fn verifying(&self, verifications: &std::sync::Arc<Verifications>) {
        let _ = self.verifications.set(std::sync::Arc::clone(verifications));
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
        let done = self.conversations_done.fetch_add(1, Ordering::Relaxed) + 1;
        self.sample(done);
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(self.message());
        }
    }

    /// Records calls done now, keeping the trailing window (and the sample just before it).
    fn sample(&self, done: u64) {
        let now = self.started.elapsed();
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.push_back((now, done));
        while samples.len() > 2 && samples[1].0 + RATE_WINDOW <= now {
            samples.pop_front();
        }
    }

    fn view(&self) -> ProgressView {
        let done = self.conversations_done.load(Ordering::Relaxed);
        self.sample(done);
        let samples: Vec<(Duration, u64)> = self
            .samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        ProgressView {
            done,
            total: self.total_conversations.load(Ordering::Relaxed),
            recent_rate: recent_rate(&samples, self.started.elapsed(), RATE_WINDOW),
            budget_wait: self.client.get().and_then(GenesysClient::budget_wait),
            verifying: self.verifications.get().and_then(|v| v.now()),
        }
    }

    /// The bar's message: rate, time left, a wait, then the counts.
    fn message(&self) -> String {
        format!(
            "{}  {}",
            status_text(&self.view(), SystemTime::now()),
            self.counts_text()
        )
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
        let view = self.view();
        format!(
            "progress: {}/{} calls  {}  {}",
            view.done,
            view.total,
            status_text(&view, SystemTime::now()),
            self.counts_text()
        )
    }

    /// Until the returned task is aborted: the bar's message refreshed every second (so that a
    /// wait is named while no call finishes), or in `Lines` mode a line every few seconds and
    /// at once when a wait for the budget begins.
    pub fn start_ticker(self: &std::sync::Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if self.mode == ProgressMode::Off {
            return None;
        }
        let progress = std::sync::Arc::clone(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.tick().await;
            let mut last_line = Instant::now();
            let mut was_waiting = false;
            loop {
                tick.tick().await;
                if let Some(bar) = &progress.bar {
                    bar.set_message(progress.message());
                    continue;
                }
                let waiting = names_a_wait(&progress.view(), SystemTime::now());
                if (waiting && !was_waiting) || last_line.elapsed() >= LINE_INTERVAL {
                    eprintln!("{}", progress.line());
                    last_line = Instant::now();
                }
                was_waiting = waiting;
            }
        }))
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_rate_is_that_of_the_trailing_window_not_the_whole_run() {
        // 100 calls in the first 10 s, then 10 in the last 30 s.
        let samples = [(secs(0), 0), (secs(10), 100), (secs(40), 110)];
        let rate = recent_rate(&samples, secs(40), RATE_WINDOW).unwrap();
        assert!((rate - 10.0 / 30.0).abs() < 1e-9, "{rate}");
        // Before a window has passed, from the start.
        let rate = recent_rate(&samples[..2], secs(10), RATE_WINDOW).unwrap();
        assert!((rate - 10.0).abs() < 1e-9, "{rate}");
        assert_eq!(recent_rate(&[], secs(5), RATE_WINDOW), None);
        assert_eq!(recent_rate(&[(secs(0), 0)], secs(0), RATE_WINDOW), None);
    }

    #[test]
    fn a_wait_over_two_seconds_says_what_it_waits_for_and_until_when() {
        let now = humantime::parse_rfc3339("2026-12-06T23:40:25Z").unwrap();
        let long = BudgetWait {
            waiting: 32,
            next_start_in: Duration::from_millis(41_200),
        };
        assert_eq!(
            wait_text(&long, now).unwrap(),
            "waiting for the API budget: next request at 23:41:06 UTC (in 42 s), 32 waiting"
        );
        let short = BudgetWait {
            waiting: 3,
            next_start_in: secs(2),
        };
        assert_eq!(wait_text(&short, now), None, "two seconds are not named");
    }

    #[test]
    fn the_status_has_the_recent_rate_the_time_left_and_a_long_wait() {
        let now = humantime::parse_rfc3339("2026-12-06T23:40:00Z").unwrap();
        let view = ProgressView {
            done: 94,
            total: 300,
            recent_rate: Some(2.0),
            budget_wait: Some(BudgetWait {
                waiting: 10,
                next_start_in: secs(30),
            }),
            verifying: None,
        };
        assert_eq!(
            status_text(&view, now),
            "2.0 calls/s (last 30 s)  ETA 1m 43s (23:41:43 UTC)  \
             waiting for the API budget: next request at 23:40:30 UTC (in 30 s), 10 waiting"
        );
        let unknown = ProgressView {
            recent_rate: None,
            budget_wait: None,
            ..view
        };
        assert_eq!(
            status_text(&unknown, now),
            "rate not known yet  ETA unknown"
        );
        let finished = ProgressView {
            done: 300,
            ..unknown
        };
        assert_eq!(status_text(&finished, now), "rate not known yet");
    }

    #[test]
    fn a_verification_is_named_once_it_goes_on_over_two_seconds() {
        let now = humantime::parse_rfc3339("2026-12-06T23:40:00Z").unwrap();
        let verifying = VerifyingNow {
            calls: 3,
            oldest_since: now - secs(3),
            until: now + secs(7),
        };
        assert_eq!(
            verifying_text(&verifying, now).unwrap(),
            "verifying 3 calls' changes: until 23:40:07 UTC at the latest (in 7 s)"
        );
        let recent = VerifyingNow {
            oldest_since: now - secs(1),
            ..verifying
        };
        assert_eq!(verifying_text(&recent, now), None);
        let view = ProgressView {
            done: 1,
            total: 2,
            recent_rate: None,
            budget_wait: None,
            verifying: Some(verifying),
        };
        assert!(names_a_wait(&view, now));
        assert!(!names_a_wait(
            &ProgressView {
                verifying: Some(recent),
                ..view
            },
            now
        ));
    }
}
