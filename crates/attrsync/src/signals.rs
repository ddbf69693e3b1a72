//! Ctrl-C and SIGTERM become requests; nothing exits the process from a task.
//!
//! `main` installs one listener for the whole process. Each signal increments a counter that
//! anyone may watch. A command that can stop cleanly (an apply run, `reconcile`, `sim`) holds a
//! [`Handling`] guard while it can: the first signal is then its stop request, and it returns
//! through `main` like any other outcome, so the audit writer flushes and every destructor runs.
//! With no handler, `main` stops waiting for the command at the first signal
//! ([`quit_requested`]) and exits 130, again by returning.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::watch;

/// Signals received so far.
static RECEIVED: OnceLock<watch::Sender<u32>> = OnceLock::new();
/// Signals that arrived while no command was handling stop requests.
static UNHANDLED: OnceLock<watch::Sender<u32>> = OnceLock::new();
/// Live [`Handling`] guards.
static HANDLERS: AtomicUsize = AtomicUsize::new(0);

fn received() -> &'static watch::Sender<u32> {
    RECEIVED.get_or_init(|| watch::channel(0).0)
}

fn unhandled() -> &'static watch::Sender<u32> {
    UNHANDLED.get_or_init(|| watch::channel(0).0)
}

/// Starts listening for Ctrl-C and SIGTERM (inside the runtime, once, before any command runs).
pub fn install() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        loop {
            wait_for_signal().await;
            // Whether anyone handles it is decided when it arrives, not when a waiter wakes:
            // a command that has just finished handling must not turn it into a quit.
            if HANDLERS.load(Ordering::SeqCst) == 0 {
                unhandled().send_modify(|count| *count += 1);
            }
            received().send_modify(|count| *count += 1);
        }
    })
}

/// The number of signals received so far, and every change of it.
pub fn subscribe() -> watch::Receiver<u32> {
    received().subscribe()
}

/// Says that a stop request will be honoured while this guard lives.
#[derive(Debug)]
pub struct Handling(());

impl Handling {
    #[must_use = "stop requests are handled only while the guard lives"]
    pub fn start() -> Self {
        HANDLERS.fetch_add(1, Ordering::SeqCst);
        Handling(())
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        HANDLERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits until at least `count` signals have been received.
pub async fn received_at_least(count: u32) {
    let mut changes = subscribe();
    // The sender lives in a static: `wait_for` only ends when the condition holds.
    let _ = changes.wait_for(|received| *received >= count).await;
}

/// Resolves when a signal arrives while no command is handling stop requests: `main` then
/// stops waiting for the command and exits 130.
pub async fn quit_requested() {
    let mut changes = unhandled().subscribe();
    // The sender lives in a static: `wait_for` only ends when the condition holds.
    let _ = changes.wait_for(|count| *count > 0).await;
}

/// Waits for the next Ctrl-C or SIGTERM.
#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// Turns the first Ctrl-C or SIGTERM into `stop`, saying `what` happens then; a second ends the
/// process at once (see `main`). Nothing here exits the process: the run ends through the engine
/// and `main`, so that the audit store is flushed and the run recorded. Listening ends when the
/// returned guard is dropped, so that a process running one run after another (`reconcile`)
/// never has more than one listener.
#[must_use = "listening stops when the guard is dropped"]
///
/// `within` bounds the wait for what is already under way (a request on the wire, its
/// verification): the message says until when, so that no stop waits silently.
pub fn stop_on_signals(
    stop: &engine::StopSignal,
    what: &'static str,
    within: std::time::Duration,
) -> Listening {
    let stop = stop.clone();
    let handling = Handling::start();
    let task = tokio::spawn(async move {
        received_at_least(1).await;
        eprintln!(
            "\nattrsync: {}",
            stopping_text(what, within, std::time::SystemTime::now())
        );
        stop.stop();
    });
    Listening {
        task,
        _handling: handling,
    }
}

/// What a stop says: what it finishes, and by when at the latest.
fn stopping_text(what: &str, within: std::time::Duration, now: std::time::SystemTime) -> String {
    format!(
        "stopping: {what}, by {} at the latest (in {}); a second Ctrl-C stops at once",
        crate::progress::time_of_day(now + within),
        humantime::format_duration(within)
    )
}

/// Keeps a stop signal listening (and stop requests handled); aborts the listener when dropped.
#[derive(Debug)]
pub struct Listening {
    task: tokio::task::JoinHandle<()>,
    _handling: Handling,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stop_says_what_it_finishes_and_by_when() {
        let now = humantime::parse_rfc3339("2026-12-06T23:40:00Z").unwrap();
        assert_eq!(
            super::stopping_text(
                "finishing the requests already sent",
                std::time::Duration::from_secs(40),
                now
            ),
            "stopping: finishing the requests already sent, by 23:40:40 UTC at the latest (in 40s); a second Ctrl-C stops at once"
        );
    }
}
