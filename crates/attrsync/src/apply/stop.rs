//! Ctrl-C and SIGTERM: stop starting new work, let in-flight requests finish and be recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Debug, Default)]
pub struct StopSignal {
    stopping: Arc<AtomicBool>,
}

impl StopSignal {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Sets the signal on the first Ctrl-C or SIGTERM. A second Ctrl-C is left to the default
    /// handler's successor: we exit at once (the audit store is consistent at every commit).
    /// Listening ends when the returned guard is dropped, so that a process running one run
    /// after another (`reconcile`) never has more than one listener.
    #[must_use = "listening stops when the guard is dropped"]
    pub fn listen(&self) -> Listening {
        let stop = self.clone();
        Listening(tokio::spawn(async move {
            wait_for_signal().await;
            eprintln!(
                "\nattrsync: stopping: finishing in-flight requests (Ctrl-C again to quit now)"
            );
            stop.stop();
            wait_for_signal().await;
            std::process::exit(i32::from(crate::exit::Exit::Interrupted.code()));
        }))
    }
}

/// Keeps a `StopSignal` listening; aborts the listener when dropped.
#[derive(Debug)]
pub struct Listening(tokio::task::JoinHandle<()>);

impl Drop for Listening {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits for the next Ctrl-C or SIGTERM.
#[cfg(unix)]
pub async fn wait_for_signal() {
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
pub async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
