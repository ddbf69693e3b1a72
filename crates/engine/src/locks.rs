//! Locks a process holds in the audit store while it works (one `reconcile` per store, one
//! follow per queue), heartbeated, and watched: a lock another process took over (this one was
//! presumed dead, e.g. after a suspend) stops the work that needed it.

use std::collections::BTreeSet;
use std::time::Duration;

use audit::{AuditError, AuditStore, LockLease};
use tokio::sync::watch;

use crate::error::EngineError;
use crate::stop::{StopReason, StopSignal};

/// A holder that has not heartbeated for this long is presumed dead and may be replaced.
pub const LOCK_STALE_AFTER: Duration = Duration::from_secs(10 * 60);
/// Well within [`LOCK_STALE_AFTER`], independent of how long the work takes.
const LOCK_HEARTBEAT_EVERY: Duration = Duration::from_secs(60);

/// Locks held, heartbeated until released.
#[derive(Debug)]
pub struct Held {
    audit: AuditStore,
    leases: Vec<LockLease>,
    heartbeat: tokio::task::JoinHandle<()>,
    lost: watch::Receiver<Option<String>>,
}

/// Takes the store's `reconcile` lock: one `attrsync reconcile` per store, scheduled or
/// following, for two desired states applied to one store's calls would fight.
pub async fn hold_reconcile(audit: &AuditStore) -> Result<Held, EngineError> {
    hold(
        audit,
        &[audit::RECONCILE_LOCK.to_owned()],
        "another `attrsync reconcile` is working on this audit store",
    )
    .await
}

/// Takes every lock of `names` (each once, in order) or none: `what` says what they protect, for
/// the message when another process holds one.
pub async fn hold(audit: &AuditStore, names: &[String], what: &str) -> Result<Held, EngineError> {
    let mut leases = Vec::new();
    for name in names.iter().collect::<BTreeSet<_>>() {
        match audit.acquire_lock(name, LOCK_STALE_AFTER).await {
            Ok(lease) => {
                if let Some(previous) = &lease.took_over {
                    tracing::warn!(
                        "took over the lock {name} from process {} on {} (last heartbeat {})",
                        previous.pid,
                        previous.host,
                        previous.heartbeat_at
                    );
                }
                leases.push(lease);
            }
            Err(err) => {
                for lease in leases {
                    let _ = audit.release_lock(lease).await;
                }
                return Err(match err {
                    holder @ AuditError::Locked { .. } => EngineError::Locked {
                        holder,
                        what: what.to_owned(),
                    },
                    other => other.into(),
                });
            }
        }
    }
    let (lost_tx, lost) = watch::channel(None);
    let heartbeat = tokio::spawn(heartbeat(audit.clone(), leases.clone(), lost_tx));
    Ok(Held {
        audit: audit.clone(),
        leases,
        heartbeat,
        lost,
    })
}

async fn heartbeat(audit: AuditStore, leases: Vec<LockLease>, lost: watch::Sender<Option<String>>) {
    let mut ticks = tokio::time::interval(LOCK_HEARTBEAT_EVERY);
    ticks.tick().await; // the first tick is immediate: the locks were just taken
    loop {
        ticks.tick().await;
        for lease in &leases {
            match audit.heartbeat_lock(lease).await {
                Ok(()) => {}
                Err(err @ AuditError::LockLost { .. }) => {
                    lost.send_replace(Some(err.to_string()));
                    return;
                }
                // A busy store is not a lost lock: the next beat will do.
                Err(err) => tracing::warn!("cannot heartbeat a lock: {err}"),
            }
        }
    }
}

impl Held {
    /// Why a lock was lost, once one is.
    pub fn lost(&self) -> Option<String> {
        self.lost.borrow().clone()
    }

    /// Resolves with the message once a lock is lost.
    pub async fn wait_lost(&self) -> String {
        let mut lost = self.lost.clone();
        match lost.wait_for(Option::is_some).await {
            Ok(message) => message.clone().unwrap_or_default(),
            // The heartbeat ended without losing anything: never resolves.
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops `stop` when a lock is lost, until the returned task is aborted.
    pub fn stop_on_loss(&self, stop: &StopSignal) -> tokio::task::JoinHandle<()> {
        let mut lost = self.lost.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Ok(message) = lost.wait_for(Option::is_some).await {
                let message = message.clone().unwrap_or_default();
                stop.stop_because(StopReason::LockLost(message));
            }
        })
    }

    /// Releases the locks; one taken over belongs to the process that took it.
    pub async fn release(self) {
        self.heartbeat.abort();
        if self.lost().is_some() {
            return;
        }
        for lease in self.leases {
            if let Err(err) = self.audit.release_lock(lease).await {
                tracing::warn!("cannot release a lock: {err}");
            }
        }
    }
}
