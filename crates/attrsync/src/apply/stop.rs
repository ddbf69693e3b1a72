//! Stopping a run early: on Ctrl-C and SIGTERM, or when the API asks every token to wait
//! longer than `--max-wait`. Either way: stop starting new work, let in-flight requests finish
//! and be recorded, and leave the run resumable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::signals;

#[derive(Clone, Debug, Default)]
pub struct StopSignal {
    stopping: Arc<AtomicBool>,
    /// Why the API's budget stopped the run (the first such error's message), if it did.
    budget: Arc<Mutex<Option<String>>>,
}

impl StopSignal {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Stops the run, resumable: every token must wait longer than `--max-wait`, or a fixed
    /// access token was refused (`ApiError::is_resume_later`).
    pub fn stop_resumable(&self, err: &genesys_core::ApiError) {
        self.budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| err.to_string());
        self.stop();
    }

    /// The message of the error that stopped the run resumable, if one did.
    pub fn resumable_message(&self) -> Option<String> {
        self.budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets the signal on the first Ctrl-C or SIGTERM (see `crate::signals`). Nothing here exits
    /// the process: the run ends through its caller and `main`, so that the audit store is
    /// flushed and the run recorded as interrupted. A second Ctrl-C only says what is left.
    /// Listening ends when the returned guard is dropped, so that a process running one run
    /// after another (`reconcile`) never has more than one listener.
    #[must_use = "listening stops when the guard is dropped"]
    pub fn listen(&self) -> Listening {
        self.listen_saying(
            "finishing in-flight requests and recording them (the run stays resumable)",
        )
    }

    /// [`Self::listen`], saying `what` happens on the first signal (a follow ends normally).
    #[must_use = "listening stops when the guard is dropped"]
    pub fn listen_saying(&self, what: &'static str) -> Listening {
        let stop = self.clone();
        let handling = signals::Handling::start();
        let task = tokio::spawn(async move {
            signals::received_at_least(1).await;
            eprintln!("\nattrsync: stopping: {what}");
            stop.stop();
            signals::received_at_least(2).await;
            eprintln!(
                "attrsync: still stopping: waiting only for requests already sent, so that none is lost from the audit store"
            );
        });
        Listening {
            task,
            _handling: handling,
        }
    }
}

/// Keeps a `StopSignal` listening (and stop requests handled); aborts the listener when dropped.
#[derive(Debug)]
pub struct Listening {
    task: tokio::task::JoinHandle<()>,
    _handling: signals::Handling,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}
