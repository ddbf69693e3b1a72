//! Stopping a run early: asked by the person (a signal the binary turns into
//! [`StopSignal::stop`]), by the API's budget (every token must wait longer than `--max-wait`,
//! or a given token was refused), or by a lost lock. Either way: no new request leaves, requests
//! already on the wire finish and are recorded, and the run stays resumable.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// Why a run stopped early, the first reason winning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The person asked (Ctrl-C, SIGTERM).
    Requested,
    /// The API's budget: the first such error's message.
    Budget(String),
    /// Another process took over a lock this run held (it was presumed dead).
    LockLost(String),
}

#[derive(Clone, Debug)]
pub struct StopSignal {
    reason: Arc<Mutex<Option<StopReason>>>,
    stopping: Arc<watch::Sender<bool>>,
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal {
            reason: Arc::default(),
            stopping: Arc::new(watch::channel(false).0),
        }
    }
}

impl StopSignal {
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// The person asked the run to stop.
    pub fn stop(&self) {
        self.stop_because(StopReason::Requested);
    }

    /// Stops the run, resumable: every token must wait longer than `--max-wait`, or a fixed
    /// access token was refused (`ApiError::is_resume_later`).
    pub fn stop_resumable(&self, err: &genesys_core::ApiError) {
        self.stop_because(StopReason::Budget(err.to_string()));
    }

    pub fn stop_because(&self, reason: StopReason) {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(reason);
        self.stopping.send_replace(true);
    }

    /// Why the run stopped, if it did.
    pub fn reason(&self) -> Option<StopReason> {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Resolves once a stop is asked for.
    pub async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        // The sender lives as long as this signal: `wait_for` ends only when it is set.
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_wins_and_waiters_wake() {
        let stop = StopSignal::default();
        let waiter = tokio::spawn({
            let stop = stop.clone();
            async move { stop.stopped().await }
        });
        assert!(!stop.is_stopping());
        stop.stop_because(StopReason::LockLost("x".into()));
        stop.stop();
        waiter.await.unwrap();
        assert!(stop.is_stopping());
        assert_eq!(stop.reason(), Some(StopReason::LockLost("x".into())));
    }
}
