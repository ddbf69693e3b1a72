//! Rows a dead process left unfinished are settled by the next run, from the live state, so that
//! no row stays `planned` or `sending` once a later run has finished, and a change that reached
//! Genesys before a crash is recorded as a change with its true before-value.
//!
//! - `planned`: never sent -> `not_applied`.
//! - `sending`/`applied`: maybe sent. The managed keys read as desired -> `verified`; a key holds
//!   a third value -> `drift`; the before-values are still there -> `not_applied`; the call or
//!   participant is gone, so nobody can tell -> `unknown`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;

use tokio::time::Instant;

use audit::{AuditStore, Outcome, RunId, TargetRecord, TargetStatus};
use genesys_core::GenesysClient;
use reconcile::{LiveConversation, Verification};

use super::target_from_record;
use super::verifications::Verifications;
use crate::error::EngineError;
use crate::observer::{Note, RunObserver};
use crate::stop::StopSignal;

/// Settles every unfinished row of dead runs other than `current`; returns how many. A value
/// not visible yet is read again with backoff for up to `verify_timeout`, as verification
/// does: 202 means accepted, and what was accepted may show a little later. Calls are settled
/// concurrently; a stop leaves what is not settled yet for a later run.
pub async fn settle_dead_runs(
    client: &GenesysClient,
    audit: &AuditStore,
    current: &RunId,
    verify_timeout: Duration,
    stop: &StopSignal,
    verifications: &Arc<Verifications>,
    observer: &dyn RunObserver,
) -> Result<usize, EngineError> {
    audit.mark_interrupted_runs().await?;
    let rows = audit.unsettled_targets(current).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let count = rows.len();
    let mut by_conversation: BTreeMap<String, Vec<TargetRecord>> = BTreeMap::new();
    for row in rows {
        by_conversation
            .entry(row.conversation_id.clone())
            .or_default()
            .push(row);
    }
    observer.note(Note::Info(format!(
        "settling {} rows of {} calls that earlier runs left unfinished when their process died \
         (reading each call, for up to --verify-timeout {})",
        count,
        by_conversation.len(),
        humantime::format_duration(verify_timeout)
    )));
    let mut settling = futures::stream::iter(by_conversation)
        .map(|(cid, waiting)| {
            // A call being settled is a verification under way: a display names a long one
            // with until when it may take (no silent wait).
            let verifying = verifications.begin(SystemTime::now() + verify_timeout);
            async move {
                let _verifying = verifying;
                settle_call(client, audit, current, verify_timeout, stop, cid, waiting).await
            }
        })
        .buffer_unordered(SETTLE_CONCURRENCY);
    while let Some(settled) = settling.next().await {
        settled?;
    }
    Ok(count)
}

/// Calls settled at once: settling waits out visibility lag per call, so one slow call must not
/// hold up the others (the client's limiter still paces every read).
const SETTLE_CONCURRENCY: usize = 16;

async fn settle_call(
    client: &GenesysClient,
    audit: &AuditStore,
    current: &RunId,
    verify_timeout: Duration,
    stop: &StopSignal,
    cid: String,
    mut waiting: Vec<TargetRecord>,
) -> Result<(), EngineError> {
    let cid = cid.as_str();
    let deadline = Instant::now() + verify_timeout;
    let mut delay = Duration::from_millis(100);
    loop {
        let maybe_sent = waiting
            .iter()
            .any(|r| r.status != TargetStatus::Planned && r.participant_id.is_some());
        let live = if maybe_sent {
            match client.find_call(cid).await {
                Ok(Some(fetched)) => Some(LiveConversation::Found(fetched.value)),
                Ok(None) => Some(LiveConversation::NotFound),
                // Unreadable now (or the run was asked to stop): a later run settles them.
                Err(err) => {
                    tracing::debug!(conversation = cid, %err, "cannot settle rows of a dead run yet");
                    return Ok(());
                }
            }
        } else {
            None
        };
        let time_is_up = Instant::now() + delay > deadline;
        let mut still = Vec::new();
        for row in waiting {
            match settle(&row, live.as_ref(), current) {
                Settled::Final(outcome) => audit.record_outcome(row.id, outcome).await?,
                Settled::NotVisibleYet(outcome) if time_is_up => {
                    audit.record_outcome(row.id, outcome).await?;
                }
                Settled::NotVisibleYet(_) => still.push(row),
                Settled::Unread => {}
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        waiting = still;
        tokio::select! {
            () = stop.stopped() => return Ok(()),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// What a dead run's row settles to, given the call as read now.
enum Settled {
    Final(Outcome),
    /// The before-values still show: final only once the visibility wait is over.
    NotVisibleYet(Outcome),
    /// The call was not read: nothing can be said yet.
    Unread,
}

/// The outcome a dead run's row settles to, given the call as read now (`None`: not read).
fn settle(row: &TargetRecord, live: Option<&LiveConversation>, by: &RunId) -> Settled {
    let settled = |status, reason: String, observed: Option<audit::ObservedValues>| Outcome {
        status: Some(status),
        reason: Some(format!("{reason} (settled by run {by})")),
        // Whatever settles a row by its values has read them.
        verified_via: observed.as_ref().map(|_| audit::VerifiedVia::Read),
        observed,
        ..Outcome::default()
    };
    if row.status == TargetStatus::Planned || row.participant_id.is_none() {
        return Settled::Final(settled(
            TargetStatus::NotApplied,
            "never sent: its run ended first".into(),
            None,
        ));
    }
    let Some(live) = live else {
        return Settled::Unread;
    };
    let target = target_from_record(row);
    let participant = row
        .participant_id
        .as_deref()
        .and_then(|pid| live.participant(pid))
        .filter(|p| !reconcile::is_gone(p));
    let Some(participant) = participant else {
        let reason = if row.status == TargetStatus::Applied {
            "accepted (HTTP 202) before its run ended; the call ended before it could be verified"
        } else {
            "its run ended while sending, and the call has ended since"
        };
        return Settled::Final(settled(TargetStatus::Unknown, reason.into(), None));
    };
    let observed = target.observed(&participant.attributes);
    match target.verification(&participant.attributes) {
        Verification::Done => Settled::Final(settled(
            TargetStatus::Verified,
            "sent before its run ended; the values are there".into(),
            Some(observed),
        )),
        Verification::Overwritten(key) => Settled::Final(settled(
            TargetStatus::Drift,
            format!("`{key}` holds neither the value before nor the one sent"),
            Some(observed),
        )),
        // Genesys accepted it (202 recorded) but it never showed; nobody overwrote it either.
        Verification::NotYetVisible if row.status == TargetStatus::Applied => {
            Settled::NotVisibleYet(settled(
                TargetStatus::Unknown,
                "accepted before its run ended, but not visible within --verify-timeout".into(),
                Some(observed),
            ))
        }
        Verification::NotYetVisible => Settled::NotVisibleYet(settled(
            TargetStatus::NotApplied,
            "its run ended while sending; the change is not there".into(),
            Some(observed),
        )),
    }
}
